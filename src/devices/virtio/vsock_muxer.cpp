#include "devices/virtio/vsock_muxer.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <optional>
#include <string_view>

namespace strata {

using vsock::Header;
using vsock::Op;

namespace {

// The longest "_<port>" a guest connection adds to the socket path.
constexpr size_t kPortSuffixLength = 11;  // "_4294967295"

// "CONNECT <port>" (the newline taken off; a '\r' before it is allowed, as a terminal sends):
// the port in decimal, 1 to 10 digits, at most 2^32 - 1.
std::optional<uint32_t> parse_connect_line(std::string_view line) {
    if (line.ends_with('\r')) line.remove_suffix(1);
    constexpr std::string_view kVerb = "CONNECT ";
    if (!line.starts_with(kVerb)) return std::nullopt;
    line.remove_prefix(kVerb.size());
    if (line.empty() || line.size() > 10) return std::nullopt;
    uint64_t port = 0;
    for (char digit : line) {
        if (digit < '0' || digit > '9') return std::nullopt;
        port = port * 10 + static_cast<uint64_t>(digit - '0');
    }
    if (port > UINT32_MAX) return std::nullopt;
    return static_cast<uint32_t>(port);
}

bool would_block(int error) { return error == EAGAIN || error == EWOULDBLOCK || error == EINTR; }

}  // namespace

Result<std::unique_ptr<VsockMuxer>> VsockMuxer::create(VsockOptions options) {
    if (options.guest_cid < vsock::kFirstGuestCid || options.guest_cid > vsock::kLastGuestCid)
        return fail("guest CID {} is reserved (a guest's CID is {} to {})", options.guest_cid,
                    vsock::kFirstGuestCid, vsock::kLastGuestCid);
    if (options.max_connections == 0 || options.buffer_size == 0)
        return fail("max_connections and buffer_size must not be 0");
    if (options.socket_path.size() + kPortSuffixLength > kMaxUnixPathLength)
        return fail("socket path {} is {} bytes long; it may have at most {}, so that {}_<port> (where the "
                    "guest's connections to host port <port> go) fits a Unix socket path",
                    options.socket_path, options.socket_path.size(), kMaxUnixPathLength - kPortSuffixLength,
                    options.socket_path);
    auto listener = UnixListener::bind(options.socket_path);
    if (!listener) return std::unexpected(listener.error());
    return std::unique_ptr<VsockMuxer>(new VsockMuxer(std::move(options), std::move(*listener)));
}

VsockMuxer::VsockMuxer(VsockOptions options, UnixListener listener)
    : options_(std::move(options)), listener_(std::move(listener)) {}

VsockMuxer::~VsockMuxer() { stop(); }

void VsockMuxer::start(FdWatcher& watcher, std::function<void()> rx_wanted) {
    stop();
    watcher_ = &watcher;
    rx_wanted_ = std::move(rx_wanted);
    // Host programs that connected before the driver was ready waited in the backlog.
    watch_listener();
}

void VsockMuxer::watch_listener() {
    auto r = watcher_->watch(listener_.fd(), EventLoop::kReadable, [this](EventLoop::Ready) { accept_host_connections(); });
    if (r) listener_watched_ = true;
    else fmt::print(stderr, "strata: virtio-vsock: host connections to {} wait: {}\n", socket_path(), r.error().message);
}

void VsockMuxer::stop() {
    if (watcher_) {
        if (listener_watched_) watcher_->unwatch(listener_.fd());
        for (auto& [id, c] : connections_)
            if (c->interest != 0) watcher_->unwatch(c->socket.get());
    }
    listener_watched_ = false;
    watcher_ = nullptr;
    rx_wanted_ = nullptr;
    connections_.clear();  // closes the sockets: the host programs see EOF
    by_key_.clear();
    rx_turns_.clear();
    resets_.clear();
}

size_t VsockMuxer::buffered_for_host() const {
    size_t total = 0;
    for (const auto& [id, c] : connections_) total += c->to_host.size() - c->to_host_start;
    return total;
}

// --- host side ---

void VsockMuxer::accept_host_connections() {
    if (!watcher_) return;  // an event of the batch that stop() came in
    // A bounded batch per wake-up; the level-triggered listener calls again for the rest.
    for (int i = 0; i < 16; ++i) {
        auto socket = listener_.accept();
        if (!socket) {
            // Out of descriptors: leave the rest in the backlog until a connection goes away.
            fmt::print(stderr, "strata: virtio-vsock: {}; new host connections wait until one closes\n",
                       socket.error().message);
            watcher_->unwatch(listener_.fd());
            listener_watched_ = false;
            return;
        }
        if (!socket->valid()) return;
        // Beyond the limit the socket closes here: the host program reads EOF instead of "OK".
        if (connections_.size() >= options_.max_connections) continue;
        Connection& c = add_connection(std::move(*socket), State::AwaitingConnectLine);
        update_interest(c);
    }
}

void VsockMuxer::on_socket_ready(uint64_t id, EventLoop::Ready ready) {
    Connection* c = find(id);
    if (!c || !c->socket.valid()) return;
    if (c->state == State::AwaitingConnectLine) return read_connect_line(*c);
    if (c->state != State::Established) return update_interest(*c);
    if (ready & EventLoop::kWritable) flush_to_host(*c);
    if ((ready & EventLoop::kReadable) && c->state == State::Established && !c->host_readable) {
        // Read when the guest has a buffer for it (to_guest()); until then the socket holds it.
        c->host_readable = true;
        queue_turn(*c);
    }
    update_interest(*c);
}

void VsockMuxer::read_connect_line(Connection& c) {
    // Peek, then take the line and no more: bytes after the newline are the guest's.
    std::array<char, kMaxConnectLine> buffer{};
    size_t room = kMaxConnectLine - c.line.size();
    ssize_t peeked = ::recv(c.socket.get(), buffer.data(), room, MSG_PEEK | MSG_DONTWAIT);
    if (peeked < 0 && would_block(errno)) return;
    if (peeked <= 0) return remove(c);  // closed or failed before its line: nothing to tell the guest
    auto seen = std::string_view(buffer.data(), static_cast<size_t>(peeked));
    size_t newline = seen.find('\n');
    size_t take = newline == std::string_view::npos ? seen.size() : newline + 1;
    if (::recv(c.socket.get(), buffer.data(), take, MSG_DONTWAIT) != static_cast<ssize_t>(take)) return remove(c);
    c.line.append(buffer.data(), newline == std::string_view::npos ? take : newline);
    if (newline == std::string_view::npos) {
        if (c.line.size() >= kMaxConnectLine) remove(c);  // no line: not a client of this protocol
        return;
    }
    std::optional<uint32_t> port = parse_connect_line(c.line);
    if (!port) return remove(c);  // closed, as Firecracker does with a bad line
    uint32_t host_port;
    do {
        host_port = next_host_port_++;
        if (next_host_port_ == UINT32_MAX) next_host_port_ = kFirstHostPort;  // UINT32_MAX is VMADDR_PORT_ANY
    } while (by_key_.contains({*port, host_port}));
    std::string().swap(c.line);
    c.state = State::Requesting;
    set_key(c, *port, host_port);
    update_interest(c);  // nothing is read until the guest accepts
    owe(c, kOweRequest);
}

void VsockMuxer::flush_to_host(Connection& c) {
    while (c.to_host_start < c.to_host.size()) {
        ssize_t sent = ::send(c.socket.get(), c.to_host.data() + c.to_host_start, c.to_host.size() - c.to_host_start,
                              MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return reset_connection(c);  // EPIPE, ECONNRESET: the host program is gone
        }
        auto written = static_cast<size_t>(sent);
        size_t ours = std::min(written, c.to_host_uncounted);
        c.to_host_uncounted -= ours;
        c.fwd_cnt += static_cast<uint32_t>(written - ours);
        c.to_host_start += written;
    }
    if (c.to_host_start == c.to_host.size()) {
        c.to_host.clear();
        c.to_host_start = 0;
    }
    after_host_progress(c);
}

void VsockMuxer::after_host_progress(Connection& c) {
    if (c.state != State::Established) return;
    // §5.10.6.3: the guest counts on our fwd_cnt to send more; tell it once it has used up half
    // of the buffer it last heard of (so a guest waiting for credit always hears).
    uint32_t heard_used = c.rx_cnt - c.fwd_cnt_sent;
    uint32_t heard_free = heard_used >= options_.buffer_size ? 0 : options_.buffer_size - heard_used;
    if (c.fwd_cnt != c.fwd_cnt_sent && heard_free < options_.buffer_size / 2) owe(c, kOweCreditUpdate);
    if (c.to_host_start == c.to_host.size()) {
        if ((c.guest_shutdown & vsock::kShutdownSend) && !c.host_write_shut) {
            ::shutdown(c.socket.get(), SHUT_WR);  // the host program reads EOF
            c.host_write_shut = true;
        }
        // §5.10.6.5: a clean disconnect ends with an RST from the peer of the SHUTDOWN; once neither
        // side sends any more (and the guest has heard our SHUTDOWN), the connection is done.
        bool guest_done = c.guest_shutdown == vsock::kShutdownBoth;
        bool both_sent = (c.guest_shutdown & vsock::kShutdownSend) && c.host_eof && !(c.owed & kOweShutdown);
        if (guest_done || both_sent) return reset_connection(c);
    }
    update_interest(c);
}

uint32_t VsockMuxer::peer_credit(const Connection& c) const {
    // §5.10.6.3: peer_free = peer_buf_alloc - (tx_cnt - peer_fwd_cnt); a fwd_cnt the guest made up
    // (ahead of what it was sent) counts as no room rather than wrapping into a huge credit.
    uint32_t in_flight = c.tx_cnt - c.peer_fwd_cnt;
    return in_flight >= c.peer_buf_alloc ? 0 : c.peer_buf_alloc - in_flight;
}

// --- guest side ---

void VsockMuxer::from_guest(const Header& header, std::span<const uint8_t> payload, uint64_t chain_payload) {
    if (!watcher_) return;
    // A packet claiming another source cannot be answered: dropped (§5.10.6.2 names the guest's
    // CID as the only source the driver may use).
    if (header.src_cid != options_.guest_cid) return;
    bool is_rst = header.op == static_cast<uint16_t>(Op::Rst);
    auto existing = by_key_.find({header.src_port, header.dst_port});
    Connection* c = existing == by_key_.end() || header.dst_cid != vsock::kHostCid ? nullptr : find(existing->second);
    bool valid = header.dst_cid == vsock::kHostCid && header.type == vsock::kTypeStream && header.op != 0 &&
                 header.op <= vsock::kLastOp && header.len <= vsock::kMaxPayload && header.len <= chain_payload &&
                 header.len <= payload.size() &&
                 (header.op == static_cast<uint16_t>(Op::Rw) || header.len == 0);
    if (!valid) {
        // A malformed packet resets its connection; with none, it gets an RST of its own.
        if (c && is_rst) remove(*c);
        else if (c) reset_connection(*c);
        else if (!is_rst) queue_reset_reply(header);
        return;
    }
    if (c) return connection_packet(*c, header, payload.first(header.len));
    if (header.op == static_cast<uint16_t>(Op::Request)) return guest_request(header);
    if (!is_rst) queue_reset_reply(header);  // §5.10.6.5: no such connection
}

void VsockMuxer::guest_request(const Header& header) {
    if (connections_.size() >= options_.max_connections) return queue_reset_reply(header);
    auto socket = connect_unix(fmt::format("{}_{}", options_.socket_path, header.dst_port));
    if (!socket) return queue_reset_reply(header);  // nothing listens there: connection refused
    Connection& c = add_connection(std::move(*socket), State::Established);
    set_key(c, header.src_port, header.dst_port);
    c.peer_buf_alloc = header.buf_alloc;
    c.peer_fwd_cnt = header.fwd_cnt;
    owe(c, kOweResponse);
    update_interest(c);
}

void VsockMuxer::connection_packet(Connection& c, const Header& header, std::span<const uint8_t> data) {
    auto op = static_cast<Op>(header.op);
    if (op == Op::Rst) return remove(c);  // the guest reset it: no answer
    if (c.state == State::Resetting) return;  // our RST is on its way
    // §5.10.6.3: every packet carries the sender's buffer and what it has taken out of it.
    c.peer_buf_alloc = header.buf_alloc;
    c.peer_fwd_cnt = header.fwd_cnt;
    switch (op) {
    case Op::Request:  // the connection exists already
        return reset_connection(c);
    case Op::Response: {
        // An answer to a REQUEST the guest has not been sent yet is no answer.
        if (c.state != State::Requesting || (c.owed & kOweRequest)) return reset_connection(c);
        c.state = State::Established;
        // Firecracker's answer to the host program: "OK <host port>\n", ahead of any data.
        std::string ok = fmt::format("OK {}\n", c.host_port);
        c.to_host.insert(c.to_host.end(), ok.begin(), ok.end());
        c.to_host_uncounted += ok.size();
        return flush_to_host(c);
    }
    case Op::Rw:
        if (c.state != State::Established || (c.guest_shutdown & vsock::kShutdownSend)) return reset_connection(c);
        guest_data(c, data);
        break;
    case Op::Shutdown:
        if (c.state != State::Established) return reset_connection(c);
        c.guest_shutdown |= header.flags & vsock::kShutdownBoth;
        return after_host_progress(c);
    case Op::CreditUpdate:
        break;
    case Op::CreditRequest:
        owe(c, kOweCreditUpdate);
        break;
    case Op::Invalid:
    case Op::Rst:
        break;  // refused or handled above
    }
    if (c.state != State::Established) return;
    // The guest's credit may have grown: data waiting in the socket may go now.
    if (c.host_readable && peer_credit(c) > 0) queue_turn(c);
    update_interest(c);
}

void VsockMuxer::guest_data(Connection& c, std::span<const uint8_t> data) {
    // §5.10.6.3: the guest may send no more than our buf_alloc less what we hold; beyond that it
    // breaks the protocol, and holding more would be unbounded, so the connection is reset.
    uint32_t held = c.rx_cnt - c.fwd_cnt;
    if (data.size() > options_.buffer_size - held) return reset_connection(c);
    c.rx_cnt += static_cast<uint32_t>(data.size());
    if (data.empty()) return;
    if (c.to_host_start > 0 && c.to_host_start >= c.to_host.size() / 2) {
        c.to_host.erase(c.to_host.begin(), c.to_host.begin() + static_cast<std::ptrdiff_t>(c.to_host_start));
        c.to_host_start = 0;
    }
    c.to_host.insert(c.to_host.end(), data.begin(), data.end());
    flush_to_host(c);
}

// --- to the guest ---

bool VsockMuxer::to_guest(Header& header, std::span<uint8_t> payload) {
    if (!resets_.empty()) {
        header = resets_.front();
        resets_.pop_front();
        return true;
    }
    // One round at most: a connection that has nothing for a buffer this small (data, and no
    // room for a byte of it) keeps its turn for the next buffer.
    for (size_t turns = rx_turns_.size(); turns > 0 && !rx_turns_.empty(); --turns) {
        uint64_t id = rx_turns_.front();
        rx_turns_.pop_front();
        Connection* c = find(id);
        if (!c) continue;
        c->in_turns = false;
        bool produced = produce(*c, header, payload);
        // Round robin: a connection with more to say goes to the back.
        c = find(id);
        if (c && !c->in_turns) {
            bool readable = c->state == State::Established && c->host_readable && !c->host_eof &&
                            !(c->guest_shutdown & vsock::kShutdownReceive) && peer_credit(*c) > 0;
            if (c->owed != 0 || c->state == State::Resetting || readable) {
                c->in_turns = true;
                rx_turns_.push_back(id);
            }
        }
        if (produced) return true;
    }
    return false;
}

bool VsockMuxer::produce(Connection& c, Header& header, std::span<uint8_t> payload) {
    if (c.state == State::Resetting) {
        bool rst = (c.owed & kOweRst) != 0;
        if (rst) header = header_for(c, Op::Rst);
        remove(c);
        return rst;
    }
    // A control packet the connection owes, if it owes `what`.
    auto owed = [&](unsigned what, Op op) {
        if (!(c.owed & what)) return false;
        c.owed &= ~what;
        header = header_for(c, op);
        return true;
    };
    if (owed(kOweRequest, Op::Request) || owed(kOweResponse, Op::Response)) return true;
    if (c.state == State::Established && c.host_readable && !c.host_eof &&
        !(c.guest_shutdown & vsock::kShutdownReceive) && !payload.empty()) {
        // Never more than the guest has room for (§5.10.6.3): the rest stays in the host socket.
        size_t want = std::min<size_t>(payload.size(), peer_credit(c));
        if (want > 0) {
            ssize_t got = ::recv(c.socket.get(), payload.data(), want, MSG_DONTWAIT);
            if (got > 0) {
                header = header_for(c, Op::Rw);
                header.len = static_cast<uint32_t>(got);
                c.tx_cnt += static_cast<uint32_t>(got);
                c.owed &= ~kOweCreditUpdate;  // this packet carries the credit
                return true;
            }
            if (got == 0) {
                c.host_readable = false;
                c.host_eof = true;
                c.owed |= kOweShutdown;
            } else if (would_block(errno)) {
                c.host_readable = false;
                update_interest(c);
            } else {
                reset_connection(c);
                return produce(c, header, payload);
            }
        } else {
            c.host_readable = false;  // no credit: the next CREDIT_UPDATE looks again
            update_interest(c);
        }
    }
    if (owed(kOweShutdown, Op::Shutdown)) {
        header.flags = vsock::kShutdownSend;  // the host program sends no more; it may still read
        after_host_progress(c);
        return true;
    }
    return owed(kOweCreditUpdate, Op::CreditUpdate);
}

Header VsockMuxer::header_for(Connection& c, Op op) {
    Header header{};
    header.src_cid = vsock::kHostCid;
    header.dst_cid = options_.guest_cid;
    header.src_port = c.host_port;
    header.dst_port = c.guest_port;
    header.type = vsock::kTypeStream;
    header.op = static_cast<uint16_t>(op);
    header.buf_alloc = options_.buffer_size;
    header.fwd_cnt = c.fwd_cnt;
    c.fwd_cnt_sent = c.fwd_cnt;
    return header;
}

void VsockMuxer::queue_reset_reply(const Header& to) {
    // Beyond the bound the guest's packet goes unanswered (a connect then times out); only a
    // guest flooding the device with bad packets gets there.
    if (resets_.size() >= kMaxQueuedResets) return;
    Header reply{};
    reply.src_cid = to.dst_cid;
    reply.dst_cid = to.src_cid;
    reply.src_port = to.dst_port;
    reply.dst_port = to.src_port;
    // Linux matches an RST to its socket by type too; an unknown type gets STREAM.
    reply.type = to.type == vsock::kTypeSeqpacket ? vsock::kTypeSeqpacket : vsock::kTypeStream;
    reply.op = static_cast<uint16_t>(Op::Rst);
    resets_.push_back(reply);
    notify_rx();
}

// --- connections ---

VsockMuxer::Connection& VsockMuxer::add_connection(Fd socket, State state) {
    auto c = std::make_unique<Connection>();
    c->id = next_id_++;
    c->socket = std::move(socket);
    c->state = state;
    Connection& added = *c;
    connections_.emplace(added.id, std::move(c));
    return added;
}

void VsockMuxer::set_key(Connection& c, uint32_t guest_port, uint32_t host_port) {
    c.guest_port = guest_port;
    c.host_port = host_port;
    c.keyed = true;
    by_key_[{guest_port, host_port}] = c.id;
    // An RST still owed for an earlier packet of these ports would reach the guest after this
    // connection began and end it; it answered a connection that is gone.
    std::erase_if(resets_, [&](const Header& rst) {
        return rst.src_cid == vsock::kHostCid && rst.src_port == host_port && rst.dst_port == guest_port;
    });
}

VsockMuxer::Connection* VsockMuxer::find(uint64_t id) {
    auto it = connections_.find(id);
    return it == connections_.end() ? nullptr : it->second.get();
}

void VsockMuxer::reset_connection(Connection& c) {
    if (c.interest != 0 && watcher_) watcher_->unwatch(c.socket.get());
    c.interest = 0;
    c.socket.reset();
    std::vector<uint8_t>().swap(c.to_host);
    c.to_host_start = c.to_host_uncounted = 0;
    c.state = State::Resetting;
    // Removed when its turn comes (to_guest()), after the RST if the guest knows the connection.
    c.owed = c.keyed ? kOweRst : 0;
    queue_turn(c);
}

void VsockMuxer::remove(Connection& c) {
    if (c.interest != 0 && watcher_) watcher_->unwatch(c.socket.get());
    if (c.keyed) by_key_.erase({c.guest_port, c.host_port});
    connections_.erase(c.id);
    // A descriptor is free again: take the host connections that waited.
    if (!listener_watched_ && watcher_) watch_listener();
}

void VsockMuxer::owe(Connection& c, unsigned what) {
    c.owed |= what;
    queue_turn(c);
}

void VsockMuxer::queue_turn(Connection& c) {
    if (c.in_turns) return;
    c.in_turns = true;
    rx_turns_.push_back(c.id);
    notify_rx();
}

void VsockMuxer::update_interest(Connection& c) {
    if (!watcher_ || !c.socket.valid()) return;
    EventLoop::Ready want = 0;
    if (c.state == State::AwaitingConnectLine) want |= EventLoop::kReadable;
    if (c.state == State::Established) {
        if (c.to_host_start < c.to_host.size()) want |= EventLoop::kWritable;
        // Readable only while the guest can take bytes; a readable socket waits for its turn.
        if (!c.host_readable && !c.host_eof && !(c.guest_shutdown & vsock::kShutdownReceive) && peer_credit(c) > 0)
            want |= EventLoop::kReadable;
    }
    if (want == c.interest) return;
    if (want == 0) {
        watcher_->unwatch(c.socket.get());
        c.interest = 0;
        return;
    }
    uint64_t id = c.id;
    if (auto r = watcher_->watch(c.socket.get(), want, [this, id](EventLoop::Ready ready) { on_socket_ready(id, ready); });
        !r) {
        fmt::print(stderr, "strata: virtio-vsock: connection reset: {}\n", r.error().message);
        c.interest = 0;
        return reset_connection(c);
    }
    c.interest = want;
}

void VsockMuxer::notify_rx() {
    if (rx_wanted_) rx_wanted_();
}

}  // namespace strata
