// libFuzzer target: virtio-vsock's connection logic (VsockMuxer) as a hostile guest driver and
// hostile host programs drive it, on real Unix sockets with readiness found by poll() (level-
// triggered, like the device's event loop) instead of a loop thread, so that a run is repeatable.
//
// Input: a list of operations, each a kind byte (mod 6) and its operands:
//   0 guest packet:  u8 shape, u8 op, u8 guest port, u8 host port, u16 len, u16 chain payload,
//                    u32 buf_alloc, u32 fwd_cnt, u8 flags. The shape's bits choose src_cid (the
//                    guest's or another), dst_cid (the host or another) and type (STREAM or the
//                    op byte's), so that most packets get past the header checks; the ports map to
//                    a few guest ports and to the host ports in use (5000 with a listener, 5001
//                    without, the first host-initiated ports); the payload is the following bytes.
//   1 guest rx:      u16 room: to_guest() into a buffer of room mod (kMaxPayload + 1) bytes.
//   2 host connect:  u8 length, then that many bytes sent after connecting to the listener.
//   3 host write:    u8 socket, u8 length, then that many bytes written to one host socket.
//   4 host read:     u8 socket, u8 what: read up to 64 KiB, or close it, or shut down its writing.
//   5 dispatch:      every watched descriptor that poll() finds ready gets its handler.
// What is checked: no crash or sanitizer report; every packet for the guest comes from the host to
// the guest's CID (an RST to a packet for another CID from that CID), with a known op, a payload that fits the room and only on RW, and never more RW
// bytes on a connection than the guest's credit allowed (buf_alloc - (tx_cnt - fwd_cnt) as the
// guest last told it); the bytes held for host sockets stay within the connections' buffers; the
// connection count within the limit; and the socket path is gone once the muxer is.
// VSOCK_FUZZ_TRACE=1 prints every packet both ways, to read a finding by.
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "devices/virtio/vsock_muxer.hpp"
#include "fuzz_support.hpp"

namespace {

using namespace strata;
using vsock::Header;

constexpr uint64_t kCid = 3;
constexpr size_t kMaxConnections = 8;
constexpr uint32_t kBuffer = 8192;

class PollWatcher final : public FdWatcher {
public:
    Result<void> watch(int fd, EventLoop::Ready wanted, std::function<void(EventLoop::Ready)> handler) override {
        watched_[fd] = {wanted, std::make_shared<std::function<void(EventLoop::Ready)>>(std::move(handler))};
        return {};
    }
    void unwatch(int fd) override { watched_.erase(fd); }
    // One round: the handlers of every descriptor ready now (as epoll reports a hang-up or error:
    // as both, so that a handler meets it).
    void dispatch() {
        std::vector<std::pair<int, EventLoop::Ready>> ready;
        for (const auto& [fd, watch] : watched_) {
            short events = static_cast<short>(((watch.wanted & EventLoop::kReadable) ? POLLIN : 0) |
                                              ((watch.wanted & EventLoop::kWritable) ? POLLOUT : 0));
            pollfd p{fd, events, 0};
            if (::poll(&p, 1, 0) != 1) continue;
            EventLoop::Ready r = 0;
            if (p.revents & POLLIN) r |= EventLoop::kReadable;
            if (p.revents & POLLOUT) r |= EventLoop::kWritable;
            if (p.revents & (POLLHUP | POLLERR)) r |= EventLoop::kReadable | EventLoop::kWritable;
            ready.emplace_back(fd, r & watch.wanted ? r & watch.wanted : r);
        }
        for (const auto& [fd, r] : ready) {
            auto it = watched_.find(fd);
            if (it == watched_.end()) continue;  // unwatched by an earlier handler
            auto handler = it->second.handler;   // kept alive while it runs, as EventLoop does
            (*handler)(r);
        }
    }

private:
    struct Watch {
        EventLoop::Ready wanted;
        std::shared_ptr<std::function<void(EventLoop::Ready)>> handler;
    };
    std::map<int, Watch> watched_;
};

class Input {
public:
    explicit Input(std::span<const uint8_t> bytes) : bytes_(bytes) {}
    [[nodiscard]] bool empty() const { return bytes_.empty(); }
    uint8_t u8() { return bytes_.empty() ? 0 : take(1)[0]; }
    uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
    uint32_t u32() { return static_cast<uint32_t>(u16() | (uint32_t{u16()} << 16)); }
    std::span<const uint8_t> take(size_t count) {
        count = std::min(count, bytes_.size());
        auto taken = bytes_.first(count);
        bytes_ = bytes_.subspan(count);
        return taken;
    }

private:
    std::span<const uint8_t> bytes_;
};

const std::string& folder() {
    static const std::string path = [] {
        std::string pattern = "/tmp/strata-vsock-fuzz-XXXXXX";
        if (!::mkdtemp(pattern.data())) fuzz::invariant_failed("mkdtemp", __FILE__, __LINE__);
        return pattern;
    }();
    return path;
}

// The credit a guest gave each connection, as the guest's own bookkeeping would keep it.
struct GuestView {
    uint32_t buf_alloc = 0, fwd_cnt = 0, received = 0;
    bool known = false;
};

uint32_t host_port_of(uint8_t code) {
    switch (code % 4) {
    case 0: return 5000;
    case 1: return 5001;
    default: return VsockMuxer::kFirstHostPort + (code >> 2) % 4;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string path = folder() + "/v.sock";
    auto host_listener = UnixListener::bind(path + "_5000");
    FUZZ_CHECK(host_listener, "host listener: {}", host_listener ? "" : host_listener.error().message);
    auto muxer = VsockMuxer::create({.guest_cid = kCid, .socket_path = path, .max_connections = kMaxConnections,
                                     .buffer_size = kBuffer});
    FUZZ_CHECK(muxer, "create: {}", muxer ? "" : muxer.error().message);
    PollWatcher watcher;
    (*muxer)->start(watcher, [] {});
    std::vector<Fd> host_sockets;
    std::map<std::pair<uint32_t, uint32_t>, GuestView> views;  // (guest port, host port)
    static std::vector<uint8_t> payload(vsock::kMaxPayload + 1);
    static std::vector<uint8_t> room(vsock::kMaxPayload);

    static const bool trace = std::getenv("VSOCK_FUZZ_TRACE") != nullptr;
    Input input({data, size});
    for (int step = 0; step < 512 && !input.empty(); ++step) {
        switch (input.u8() % 6) {
        case 0: {
            Header h{};
            uint8_t shape = input.u8();
            uint8_t op = input.u8();
            h.src_cid = (shape & 1) ? kCid + 1 + (shape >> 4) : kCid;
            h.dst_cid = (shape & 2) ? shape >> 4 : vsock::kHostCid;
            h.src_port = 1000 + input.u8() % 4;
            h.dst_port = host_port_of(input.u8());
            h.op = (shape & 8) ? op : static_cast<uint16_t>(op % 8);
            h.type = (shape & 4) ? op : vsock::kTypeStream;
            h.len = input.u16();
            uint16_t chain = input.u16();
            h.buf_alloc = input.u32() % (4 * kBuffer);
            h.fwd_cnt = input.u32();
            h.flags = input.u8();
            auto bytes = input.take(std::min<size_t>({chain, h.len, vsock::kMaxPayload}));
            std::copy(bytes.begin(), bytes.end(), payload.begin());
            // The guest's credit as it states it: only packets that get past the checks count.
            GuestView& view = views[{h.src_port, h.dst_port}];
            if (h.src_cid == kCid && h.dst_cid == vsock::kHostCid && h.type == vsock::kTypeStream) {
                view.buf_alloc = h.buf_alloc;
                view.fwd_cnt = h.fwd_cnt;
                view.known = true;
                // A REQUEST starts a connection (or resets the one there), an RST ends it.
                if (h.op == static_cast<uint16_t>(vsock::Op::Request) || h.op == static_cast<uint16_t>(vsock::Op::Rst))
                    view.received = 0;
            }
            if (trace) fmt::print(stderr, "from guest: src {} dst {} op {} type {} {}->{} len {} chain {} buf {} fwd {}\n", h.src_cid, h.dst_cid, h.op, h.type, h.src_port, h.dst_port, h.len, chain, h.buf_alloc, h.fwd_cnt);
            (*muxer)->from_guest(h, std::span<const uint8_t>(payload).first(bytes.size()), chain);
            break;
        }
        case 1: {
            size_t capacity = input.u16() % (vsock::kMaxPayload + 1);
            Header h{};
            if (!(*muxer)->to_guest(h, std::span(room).first(capacity))) break;
            // From the host, but for an RST that answers a packet to another CID: it comes from
            // the CID the guest addressed, or the guest's socket would not know it.
            FUZZ_CHECK(h.dst_cid == kCid && (h.src_cid == vsock::kHostCid || h.op == static_cast<uint16_t>(vsock::Op::Rst)),
                       "packet {}->{} op {}", h.src_cid, h.dst_cid, h.op);
            FUZZ_CHECK(h.op >= 1 && h.op <= vsock::kLastOp, "op {}", h.op);
            FUZZ_CHECK(h.len <= capacity, "len {} in a room of {}", h.len, capacity);
            FUZZ_CHECK(h.len == 0 || h.op == static_cast<uint16_t>(vsock::Op::Rw), "len {} on op {}", h.len, h.op);
            FUZZ_CHECK(h.buf_alloc == kBuffer || h.op == static_cast<uint16_t>(vsock::Op::Rst), "buf_alloc {}",
                       h.buf_alloc);
            if (trace) fmt::print(stderr, "to guest: op {} {}->{} len {} fwd {}\n", h.op, h.src_port, h.dst_port, h.len, h.fwd_cnt);
            GuestView& view = views[{h.dst_port, h.src_port}];
            if (h.op == static_cast<uint16_t>(vsock::Op::Rw)) {
                // §5.10.6.3 from the guest's side: what it was sent less what it said it took.
                uint32_t in_flight = view.received + h.len - view.fwd_cnt;
                FUZZ_CHECK(view.known && in_flight <= view.buf_alloc, "{} bytes in flight for a buf_alloc of {}",
                           in_flight, view.buf_alloc);
                view.received += h.len;
            }
            // A new connection starts counting afresh (an RST from another CID is another connection's).
            bool ends = h.op == static_cast<uint16_t>(vsock::Op::Rst) || h.op == static_cast<uint16_t>(vsock::Op::Request);
            if (ends && h.src_cid == vsock::kHostCid) view = GuestView{};
            break;
        }
        case 2: {
            auto line = input.take(input.u8());
            Fd fd = [&] {
                auto connected = connect_unix(path);
                return connected ? std::move(*connected) : Fd();
            }();
            if (!fd.valid()) break;
            if (!line.empty()) (void)::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            host_sockets.push_back(std::move(fd));
            break;
        }
        case 3: {
            uint8_t which = input.u8();
            auto bytes = input.take(input.u8());
            if (host_sockets.empty()) break;
            Fd& fd = host_sockets[which % host_sockets.size()];
            if (fd.valid()) (void)::send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            break;
        }
        case 4: {
            uint8_t which = input.u8(), what = input.u8();
            if (host_sockets.empty()) break;
            Fd& fd = host_sockets[which % host_sockets.size()];
            if (!fd.valid()) break;
            if (what % 3 == 0) (void)::recv(fd.get(), room.data(), room.size(), MSG_DONTWAIT);
            else if (what % 3 == 1) fd.reset();
            else ::shutdown(fd.get(), SHUT_WR);
            break;
        }
        case 5: {
            // The guest's connections to port 5000 reach this listener.
            for (;;) {
                auto accepted = host_listener->accept();
                if (!accepted || !accepted->valid()) break;
                host_sockets.push_back(std::move(*accepted));
            }
            watcher.dispatch();
            break;
        }
        }
        FUZZ_CHECK((*muxer)->connection_count() <= kMaxConnections, "{} connections", (*muxer)->connection_count());
        FUZZ_CHECK((*muxer)->buffered_for_host() <= kMaxConnections * (kBuffer + VsockMuxer::kMaxConnectLine),
                   "{} bytes held for the host", (*muxer)->buffered_for_host());
    }
    muxer->reset();
    struct stat gone {};
    FUZZ_CHECK(::stat(path.c_str(), &gone) != 0, "{} outlived its muxer", path);
    return 0;
}
