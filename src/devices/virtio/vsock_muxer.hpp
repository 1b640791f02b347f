// virtio-vsock's connection logic, apart from the virtqueues so that it can be tested and fuzzed
// alone: the guest's stream connections to the host, carried on Unix sockets as Firecracker
// documents its vsock host side.
//
// Host protocol (Firecracker's, so that its users' tools work):
//   host-initiated: the VMM listens on `socket_path`; a host program connects and sends
//     "CONNECT <port>\n"; the VMM sends REQUEST to the guest's port from a host port it picks
//     (from 2^30 on) and answers "OK <host port>\n" when the guest sends RESPONSE, or closes the
//     Unix socket when the guest refuses (RST). Bytes then flow both ways.
//   guest-initiated: a guest REQUEST to CID 2 port N makes the VMM connect to the Unix socket
//     "<socket_path>_N"; if nothing listens there the guest gets RST (connection refused),
//     otherwise RESPONSE.
//
// State:    the listener; connections by id, and by (guest port, host port) once known, each with
//           its Unix socket, state, credit counters both ways (§5.10.6.3), what the guest shut
//           down, the bytes for the host its socket has not taken yet (at most our buf_alloc, plus
//           an "OK" line), the control packets it owes the guest (flags, so never more than one
//           of each); the connections that have a packet for the guest, in turn (round robin);
//           RSTs owed for packets of no connection (a bounded queue).
// Features: stream sockets (type STREAM) with REQUEST, RESPONSE, RST, SHUTDOWN (RCV, SEND), RW,
//           CREDIT_UPDATE, CREDIT_REQUEST. Flow control both ways: host bytes are read from a
//           socket only into a packet the guest has room for, and no more than the guest's credit
//           (buf_alloc - (tx_cnt - fwd_cnt)), so a fast host cannot make the VMM buffer; the
//           guest gets our buffer (buffer_size) as buf_alloc and a CREDIT_UPDATE when it has used
//           up half of what it last heard, and a guest that sends beyond it is reset. Every guest
//           header is checked: src_cid must be the guest's (otherwise dropped: it cannot be
//           answered), dst_cid the host, type STREAM, op known, len at most kMaxPayload and what
//           the chain carries, and 0 for all but RW; a packet that fails gets RST (unless it is an
//           RST; for another CID, from that CID, so that the guest's socket knows it) and resets
//           its connection, as does a packet its connection's state does not allow (data before
//           RESPONSE or after the guest's SEND shutdown, a RESPONSE to a REQUEST not sent, a second
//           REQUEST). An RST owed for a packet of no connection is dropped when a connection
//           starts on its ports. A host program's line other than "CONNECT <port>" (decimal, at
//           most 2^32 - 1, an optional '\r') within kMaxConnectLine bytes gets its socket closed. Shutdown: a guest SEND shutdown half-closes the host socket (shutdown SHUT_WR)
//           once the buffered bytes are out; a host EOF becomes SHUTDOWN(SEND) to the guest; when
//           the guest has shut down both ways, or each side has stopped sending, the VMM flushes,
//           sends RST and closes (§5.10.6.5's clean disconnect). A host socket error resets the
//           connection. At most max_connections connections (host programs still sending their
//           CONNECT line count): a host connection beyond it is closed at once, a guest REQUEST
//           gets RST.
// Missing:  SEQPACKET (§5.10.6.6); time limits (a host program that never finishes its CONNECT
//           line, a guest that never answers REQUEST, or one that never closes after a
//           half-close, keeps its slot until it does or the device resets); guest-to-guest or
//           other CIDs.
// Threads:  one thread (the device's loop) calls everything; the watcher's handlers come there.
// Spec:     virtio 1.2 §5.10 (Socket Device); Firecracker's docs/vsock.md for the host side.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "devices/virtio/vsock_packet.hpp"
#include "host/event_loop.hpp"
#include "host/unix_socket.hpp"

namespace strata {

// What the muxer needs of an event loop; the device passes its loop, a fuzzer a fake.
class FdWatcher {
public:
    virtual ~FdWatcher() = default;
    // Calls `handler` with what `fd` is ready for, of `wanted`; replaces an earlier watch.
    [[nodiscard]] virtual Result<void> watch(int fd, EventLoop::Ready wanted,
                                             std::function<void(EventLoop::Ready)> handler) = 0;
    virtual void unwatch(int fd) = 0;
};

struct VsockOptions {
    uint64_t guest_cid = vsock::kFirstGuestCid;
    std::string socket_path;  // the host side: the listener, and <path>_<port> for guest connects
    size_t max_connections = 128;
    uint32_t buffer_size = 128 * 1024;  // our buf_alloc per connection: what we hold for the host
};

class VsockMuxer {
public:
    static constexpr size_t kMaxConnectLine = 32;     // "CONNECT 4294967295\r\n" and then some
    static constexpr size_t kMaxQueuedResets = 256;   // RSTs owed for packets of no connection
    static constexpr uint32_t kFirstHostPort = 1u << 30;  // host ports for host-initiated connections

    // Binds the listener at options.socket_path (which must not exist, and must leave room for
    // "_<port>" in a Unix socket path). The guest's connections start with start().
    [[nodiscard]] static Result<std::unique_ptr<VsockMuxer>> create(VsockOptions options);
    ~VsockMuxer();  // closes every connection; the listener's path is removed
    VsockMuxer(const VsockMuxer&) = delete;
    VsockMuxer& operator=(const VsockMuxer&) = delete;

    // The guest's driver is ready: host connections are accepted through `watcher`, and
    // `rx_wanted` is called whenever the muxer gets a packet for the guest (to_guest() then has
    // one). Both stay in use until stop().
    void start(FdWatcher& watcher, std::function<void()> rx_wanted);
    // The device was reset (or failed): every connection is closed, the host programs see EOF.
    void stop();

    // A packet the guest sent (the tx queue): its header, and the payload bytes that follow it in
    // the chain, `chain_payload` of them in all, of which `payload` holds the first
    // min(header.len, chain_payload, kMaxPayload) (what a valid packet needs).
    void from_guest(const vsock::Header& header, std::span<const uint8_t> payload, uint64_t chain_payload);
    // The next packet for the guest (the rx queue), with its payload written into `payload`,
    // whose size is the room the guest's buffer has; false when there is none.
    [[nodiscard]] bool to_guest(vsock::Header& header, std::span<uint8_t> payload);
    [[nodiscard]] bool wants_rx() const { return !resets_.empty() || !rx_turns_.empty(); }

    [[nodiscard]] size_t connection_count() const { return connections_.size(); }
    [[nodiscard]] uint64_t guest_cid() const { return options_.guest_cid; }
    [[nodiscard]] const std::string& socket_path() const { return options_.socket_path; }
    // Bytes held for host sockets that had no room, over all connections.
    [[nodiscard]] size_t buffered_for_host() const;

private:
    enum class State {
        AwaitingConnectLine,  // host-initiated: reading "CONNECT <port>\n"
        Requesting,           // host-initiated: REQUEST sent or owed, waiting for RESPONSE
        Established,
        Resetting,            // socket closed, RST owed to the guest, then removed
    };
    // Control packets a connection owes the guest (sent in this order, before data but RST).
    static constexpr unsigned kOweRst = 1, kOweRequest = 2, kOweResponse = 4, kOweCreditUpdate = 8,
                              kOweShutdown = 16;

    struct Connection {
        uint64_t id = 0;
        Fd socket;
        State state = State::AwaitingConnectLine;
        bool keyed = false;  // in by_key_
        uint32_t guest_port = 0, host_port = 0;
        unsigned owed = 0;
        bool in_turns = false;       // in rx_turns_
        bool host_readable = false;  // the socket said readable and has not said EAGAIN since
        bool host_eof = false;       // the host program will send no more (SHUTDOWN(SEND) owed or sent)
        uint32_t guest_shutdown = 0; // the SHUTDOWN flags the guest sent
        bool host_write_shut = false;  // shutdown(SHUT_WR) done
        EventLoop::Ready interest = 0;
        std::string line;  // the CONNECT line so far
        // Guest to host: bytes received (rx_cnt), taken by the host socket (fwd_cnt), and the
        // fwd_cnt the guest last heard of.
        uint32_t rx_cnt = 0, fwd_cnt = 0, fwd_cnt_sent = 0;
        // Host to guest: bytes sent, and the guest's buffer and what it has taken out of it.
        uint32_t tx_cnt = 0, peer_buf_alloc = 0, peer_fwd_cnt = 0;
        std::vector<uint8_t> to_host;  // bytes the host socket has not taken, from to_host_start
        size_t to_host_start = 0;
        size_t to_host_uncounted = 0;  // leading bytes that are ours ("OK ..."), not the guest's
    };
    using Key = std::pair<uint32_t, uint32_t>;  // guest port, host port

    explicit VsockMuxer(VsockOptions options, UnixListener listener);

    void watch_listener();
    void accept_host_connections();
    void on_socket_ready(uint64_t id, EventLoop::Ready ready);
    void read_connect_line(Connection& c);
    void guest_request(const vsock::Header& header);
    void connection_packet(Connection& c, const vsock::Header& header, std::span<const uint8_t> data);
    void guest_data(Connection& c, std::span<const uint8_t> data);
    void guest_shutdown(Connection& c, uint32_t flags);
    // Writes what the host socket takes of the buffer; resets the connection on an error.
    void flush_to_host(Connection& c);
    void after_host_progress(Connection& c);
    [[nodiscard]] uint32_t peer_credit(const Connection& c) const;

    Connection& add_connection(Fd socket, State state);
    void set_key(Connection& c, uint32_t guest_port, uint32_t host_port);
    Connection* find(uint64_t id);
    // Closes the socket, forgets the packets it owed, and owes the guest an RST.
    void reset_connection(Connection& c);
    void remove(Connection& c);
    void owe(Connection& c, unsigned what);
    void queue_turn(Connection& c);
    void update_interest(Connection& c);
    void queue_reset_reply(const vsock::Header& to);
    // One packet from `c`, if it has one.
    [[nodiscard]] bool produce(Connection& c, vsock::Header& header, std::span<uint8_t> payload);
    [[nodiscard]] vsock::Header header_for(Connection& c, vsock::Op op);
    void notify_rx();

    const VsockOptions options_;
    UnixListener listener_;
    FdWatcher* watcher_ = nullptr;  // between start() and stop()
    std::function<void()> rx_wanted_;
    bool listener_watched_ = false;
    uint64_t next_id_ = 1;
    uint32_t next_host_port_ = kFirstHostPort;
    std::map<uint64_t, std::unique_ptr<Connection>> connections_;
    std::map<Key, uint64_t> by_key_;
    std::deque<uint64_t> rx_turns_;  // ids; a removed connection's id is skipped
    std::deque<vsock::Header> resets_;
};

}  // namespace strata
