// The user network without a guest: the test plays the guest's network stack, frame by frame
// (ARP, DHCP, TCP and UDP built and parsed here), against a SlirpBackend on an event loop, with
// real host sockets on 127.0.0.1 at the other end.
#include "host/slirp_backend.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/bytes.hpp"
#include "net_backend_support.hpp"

namespace strata {
namespace {

using Bytes = std::vector<uint8_t>;
using namespace std::chrono_literals;

constexpr MacAddress kGuestMac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
constexpr MacAddress kBroadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
constexpr Ipv4Address kGuestIp = SlirpBackend::kFirstDhcpAddress;
constexpr Ipv4Address kLoopback{127, 0, 0, 1};
constexpr uint8_t kTcp = 6, kUdp = 17;
constexpr uint8_t kSyn = 0x02, kAck = 0x10, kPsh = 0x08;

void put16(Bytes& bytes, size_t at, uint16_t value) {
    bytes[at] = static_cast<uint8_t>(value >> 8);
    bytes[at + 1] = static_cast<uint8_t>(value);
}
void put32(Bytes& bytes, size_t at, uint32_t value) {
    put16(bytes, at, static_cast<uint16_t>(value >> 16));
    put16(bytes, at + 2, static_cast<uint16_t>(value));
}
uint16_t get16(const Bytes& bytes, size_t at) { return static_cast<uint16_t>(bytes[at] << 8 | bytes[at + 1]); }
uint32_t get32(const Bytes& bytes, size_t at) { return uint32_t{get16(bytes, at)} << 16 | get16(bytes, at + 2); }
Bytes text_bytes(std::string_view text) { return {text.begin(), text.end()}; }
// `head` and then `tail` (copied into one new buffer: g++ 12 at -O3 warns falsely about
// vector::insert of a range at the end, -Warray-bounds).
Bytes joined(const Bytes& head, const Bytes& tail) {
    Bytes bytes(head.size() + tail.size());
    std::copy(head.begin(), head.end(), bytes.begin());
    std::copy(tail.begin(), tail.end(), bytes.begin() + static_cast<std::ptrdiff_t>(head.size()));
    return bytes;
}

// The Internet checksum (RFC 1071) of `bytes`, added to `sum`.
uint16_t checksum(std::span<const uint8_t> bytes, uint64_t sum = 0) {
    for (size_t i = 0; i < bytes.size(); i += 2) sum += uint64_t{bytes[i]} << 8 | (i + 1 < bytes.size() ? bytes[i + 1] : 0);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
}

Bytes ethernet(const MacAddress& destination, uint16_t type, const Bytes& payload) {
    Bytes frame(14);
    std::copy(destination.begin(), destination.end(), frame.begin());
    std::copy(kGuestMac.begin(), kGuestMac.end(), frame.begin() + 6);
    put16(frame, 12, type);
    return joined(frame, payload);
}

Bytes arp_request(const Ipv4Address& sender, const Ipv4Address& target) {
    Bytes arp(28, 0);
    put16(arp, 0, 1);       // Ethernet
    put16(arp, 2, 0x0800);  // IPv4
    arp[4] = 6;
    arp[5] = 4;
    put16(arp, 6, 1);  // request
    std::copy(kGuestMac.begin(), kGuestMac.end(), arp.begin() + 8);
    std::copy(sender.begin(), sender.end(), arp.begin() + 14);
    std::copy(target.begin(), target.end(), arp.begin() + 24);
    return ethernet(kBroadcast, 0x0806, arp);
}

// An IPv4 packet (header checksum filled in) with `transport`, whose checksum at `checksum_at`
// (when given) is computed over the pseudo-header and the transport bytes.
Bytes ipv4(const Ipv4Address& source, const Ipv4Address& destination, uint8_t protocol, Bytes transport,
           std::optional<size_t> checksum_at) {
    Bytes header(20, 0);
    header[0] = 0x45;
    put16(header, 2, static_cast<uint16_t>(20 + transport.size()));
    header[8] = 64;
    header[9] = protocol;
    std::copy(source.begin(), source.end(), header.begin() + 12);
    std::copy(destination.begin(), destination.end(), header.begin() + 16);
    put16(header, 10, checksum(header));
    if (checksum_at) {
        Bytes pseudo(header.begin() + 12, header.begin() + 20);
        pseudo.push_back(0);
        pseudo.push_back(protocol);
        pseudo.push_back(static_cast<uint8_t>(transport.size() >> 8));
        pseudo.push_back(static_cast<uint8_t>(transport.size()));
        put16(transport, *checksum_at, checksum(joined(pseudo, transport)));
    }
    return joined(header, transport);
}

Bytes udp(const Ipv4Address& source, const Ipv4Address& destination, uint16_t source_port, uint16_t destination_port,
          const Bytes& payload, const MacAddress& to) {
    Bytes datagram(8, 0);
    put16(datagram, 0, source_port);
    put16(datagram, 2, destination_port);
    put16(datagram, 4, static_cast<uint16_t>(8 + payload.size()));
    return ethernet(to, 0x0800, ipv4(source, destination, kUdp, joined(datagram, payload), 6));
}

struct TcpSegment {
    uint16_t source_port = 0, destination_port = 0;
    uint32_t seq = 0, ack = 0;
    uint8_t flags = 0;
    Bytes payload;
};

Bytes tcp(const Ipv4Address& destination, const TcpSegment& segment, const MacAddress& to) {
    Bytes bytes(20, 0);
    put16(bytes, 0, segment.source_port);
    put16(bytes, 2, segment.destination_port);
    put32(bytes, 4, segment.seq);
    put32(bytes, 8, segment.ack);
    bytes[12] = 5 << 4;
    bytes[13] = segment.flags;
    put16(bytes, 14, 65535);
    return ethernet(to, 0x0800, ipv4(kGuestIp, destination, kTcp, joined(bytes, segment.payload), 16));
}

// A received frame's IPv4 transport, when it has one: protocol, addresses, and its bytes.
struct Ipv4Packet {
    uint8_t protocol = 0;
    Ipv4Address source{}, destination{};
    Bytes transport;
};
std::optional<Ipv4Packet> parse_ipv4(const Bytes& frame) {
    if (frame.size() < 34 || get16(frame, 12) != 0x0800) return std::nullopt;
    size_t header = (frame[14] & 0xf) * 4u;
    size_t total = get16(frame, 16);
    if (total < header || 14 + total > frame.size()) return std::nullopt;
    Ipv4Packet packet;
    packet.protocol = frame[23];
    std::copy_n(frame.begin() + 26, 4, packet.source.begin());
    std::copy_n(frame.begin() + 30, 4, packet.destination.begin());
    packet.transport.assign(frame.begin() + static_cast<std::ptrdiff_t>(14 + header),
                            frame.begin() + static_cast<std::ptrdiff_t>(14 + total));
    return packet;
}
std::optional<TcpSegment> parse_tcp(const Bytes& frame) {
    auto packet = parse_ipv4(frame);
    if (!packet || packet->protocol != kTcp || packet->transport.size() < 20) return std::nullopt;
    const Bytes& t = packet->transport;
    TcpSegment segment{get16(t, 0), get16(t, 2), get32(t, 4), get32(t, 8), t[13], {}};
    segment.payload.assign(t.begin() + (t[12] >> 4) * 4, t.end());
    return segment;
}

// The guest side: every frame slirp sends, for the test thread to wait on.
class GuestSide final : public NetBackend::Receiver {
public:
    void receive(std::span<const uint8_t> frame) override {
        std::lock_guard lock(mutex_);
        frames_.emplace_back(frame.begin(), frame.end());
        arrived_.notify_all();
    }
    bool can_receive() const override { return true; }

    // The first frame since the last wait that `matches`, waiting up to `limit` for it.
    std::optional<Bytes> wait_for(const std::function<bool(const Bytes&)>& matches, std::chrono::seconds limit = 10s) {
        std::unique_lock lock(mutex_);
        auto deadline = std::chrono::steady_clock::now() + limit;
        for (;;) {
            for (; seen_ < frames_.size(); ++seen_)
                if (matches(frames_[seen_])) return frames_[seen_++];
            if (arrived_.wait_until(lock, deadline) == std::cv_status::timeout && seen_ == frames_.size())
                return std::nullopt;
        }
    }

private:
    std::mutex mutex_;
    std::condition_variable arrived_;
    std::vector<Bytes> frames_;
    size_t seen_ = 0;
};

// A host socket on 127.0.0.1 with the port the kernel chose.
struct HostSocket {
    Fd fd;
    uint16_t port = 0;
};
HostSocket host_socket(int type, bool listening) {
    HostSocket s{Fd(::socket(AF_INET, type | SOCK_CLOEXEC, 0)), 0};
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(s.fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    if (listening) {
        EXPECT_EQ(::listen(s.fd.get(), 4), 0);
    }
    socklen_t length = sizeof(address);
    EXPECT_EQ(::getsockname(s.fd.get(), reinterpret_cast<sockaddr*>(&address), &length), 0);
    s.port = ntohs(address.sin_port);
    return s;
}
// A port that was free a moment ago (bound, then released).
uint16_t free_port() { return host_socket(SOCK_STREAM, false).port; }

bool readable(int fd, std::chrono::milliseconds limit = 10s) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(limit.count())) == 1;
}

struct SlirpBackendTest : ::testing::Test {
    std::unique_ptr<SlirpBackend> slirp;
    GuestSide guest;
    std::unique_ptr<testing::RunningBackend> running;  // stopped before the back end goes
    MacAddress slirp_mac{};

    void create(std::vector<HostForward> forwards = {}, uint16_t mtu = SlirpBackend::kDefaultMtu) {
        auto created = SlirpBackend::create(forwards, mtu);
        ASSERT_TRUE(created) << created.error().message;
        slirp = std::move(*created);
    }
    void start() {
        running = std::make_unique<testing::RunningBackend>(*slirp, guest, "slirp-test");
        ASSERT_TRUE(running->started()) << running->started().error().message;
    }
    void TearDown() override { running.reset(); }
    void send(const Bytes& frame) {
        running->run([&] { EXPECT_TRUE(slirp->send(frame)); });
    }
    // Asks who has 10.0.2.2, which also tells slirp the guest's MAC.
    void arp() {
        send(arp_request(kGuestIp, SlirpBackend::kHost));
        auto reply = guest.wait_for([](const Bytes& f) { return f.size() >= 42 && get16(f, 12) == 0x0806 && get16(f, 20) == 2; });
        ASSERT_TRUE(reply) << "no ARP reply";
        EXPECT_TRUE(std::equal(reply->begin() + 28, reply->begin() + 32, SlirpBackend::kHost.begin()));
        std::copy_n(reply->begin() + 22, 6, slirp_mac.begin());
    }
};

TEST_F(SlirpBackendTest, ADhcpDiscoverGetsAnOfferOfTheFirstAddress) {
    create();
    start();
    Bytes bootp(236 + 4 + 312, 0);  // struct bootp_t, with its whole options area
    bootp[0] = 1;                   // BOOTREQUEST
    bootp[1] = 1;
    bootp[2] = 6;
    put32(bootp, 4, 0x12345678);  // xid
    std::copy(kGuestMac.begin(), kGuestMac.end(), bootp.begin() + 28);
    put32(bootp, 236, 0x63825363);  // the magic cookie
    const uint8_t options[] = {53, 1, 1, 255};  // DHCPDISCOVER
    std::copy(std::begin(options), std::end(options), bootp.begin() + 240);
    send(udp({0, 0, 0, 0}, {255, 255, 255, 255}, 68, 67, bootp, kBroadcast));

    auto offer = guest.wait_for([](const Bytes& f) {
        auto p = parse_ipv4(f);
        return p && p->protocol == kUdp && get16(p->transport, 0) == 67 && get16(p->transport, 2) == 68;
    });
    ASSERT_TRUE(offer) << "no DHCP answer";
    Bytes reply = parse_ipv4(*offer)->transport;
    ASSERT_GE(reply.size(), 8u + 244u);
    EXPECT_EQ(reply[8], 2) << "BOOTREPLY";
    EXPECT_EQ(get32(reply, 8 + 4), 0x12345678u) << "xid";
    EXPECT_TRUE(std::equal(kGuestIp.begin(), kGuestIp.end(), reply.begin() + 8 + 16)) << "yiaddr 10.0.2.15";
    // Options: message type OFFER (2), router 10.0.2.2, DNS 10.0.2.3.
    std::optional<uint8_t> type;
    Bytes router, dns;
    for (size_t at = 8 + 240; at + 1 < reply.size() && reply[at] != 255;) {
        if (reply[at] == 0) {
            ++at;
            continue;
        }
        uint8_t code = reply[at], length = reply[at + 1];
        Bytes value(reply.begin() + static_cast<std::ptrdiff_t>(at + 2),
                    reply.begin() + static_cast<std::ptrdiff_t>(std::min(reply.size(), at + 2 + length)));
        if (code == 53 && length == 1) type = value[0];
        if (code == 3) router = value;
        if (code == 6) dns = value;
        at += 2 + length;
    }
    EXPECT_EQ(type, 2) << "DHCPOFFER";
    EXPECT_EQ(router, (Bytes{10, 0, 2, 2}));
    EXPECT_EQ(dns, (Bytes{10, 0, 2, 3}));
}

// The guest connects to 10.0.2.2, which is the host's 127.0.0.1: the handshake, then data both ways.
TEST_F(SlirpBackendTest, TcpToTheHostAddressReachesAListenerOnLoopback) {
    HostSocket listener = host_socket(SOCK_STREAM, true);
    create();
    start();
    arp();
    const uint16_t guest_port = 40000;
    auto from_host = [&](uint8_t flags) {
        return [&, flags](const Bytes& f) {
            auto s = parse_tcp(f);
            return s && s->source_port == listener.port && s->destination_port == guest_port && (s->flags & flags) == flags;
        };
    };
    send(tcp(SlirpBackend::kHost, {guest_port, listener.port, 1000, 0, kSyn, {}}, slirp_mac));
    ASSERT_TRUE(readable(listener.fd.get())) << "the SYN did not reach the host";
    Fd accepted(::accept4(listener.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(accepted.valid());
    auto syn_ack = guest.wait_for(from_host(kSyn | kAck));
    ASSERT_TRUE(syn_ack) << "no SYN-ACK";
    auto answer = *parse_tcp(*syn_ack);
    EXPECT_EQ(answer.ack, 1001u);
    uint32_t host_seq = answer.seq + 1;
    send(tcp(SlirpBackend::kHost, {guest_port, listener.port, 1001, host_seq, kAck, {}}, slirp_mac));

    // Host to guest: slirp reads the host socket when the loop sees it readable.
    ASSERT_EQ(::write(accepted.get(), "from-host", 9), 9);
    auto data = guest.wait_for([&](const Bytes& f) {
        auto s = parse_tcp(f);
        return s && s->destination_port == guest_port && !s->payload.empty();
    });
    ASSERT_TRUE(data) << "the host's bytes did not reach the guest";
    EXPECT_EQ(parse_tcp(*data)->payload, text_bytes("from-host"));
    EXPECT_EQ(parse_tcp(*data)->seq, host_seq);

    // Guest to host.
    send(tcp(SlirpBackend::kHost, {guest_port, listener.port, 1001, host_seq + 9, kAck | kPsh, text_bytes("from-guest")},
             slirp_mac));
    ASSERT_TRUE(readable(accepted.get()));
    char buffer[32] = {};
    EXPECT_EQ(::read(accepted.get(), buffer, sizeof(buffer)), 10);
    EXPECT_STREQ(buffer, "from-guest");
}

TEST_F(SlirpBackendTest, UdpToTheHostAddressAndTheAnswerBack) {
    HostSocket host = host_socket(SOCK_DGRAM, false);
    create();
    start();
    arp();
    send(udp(kGuestIp, SlirpBackend::kHost, 5000, host.port, text_bytes("ping"), slirp_mac));
    ASSERT_TRUE(readable(host.fd.get()));
    char buffer[16] = {};
    sockaddr_in from{};
    socklen_t length = sizeof(from);
    ASSERT_EQ(::recvfrom(host.fd.get(), buffer, sizeof(buffer), 0, reinterpret_cast<sockaddr*>(&from), &length), 4);
    EXPECT_STREQ(buffer, "ping");
    ASSERT_EQ(::sendto(host.fd.get(), "pong", 4, 0, reinterpret_cast<sockaddr*>(&from), length), 4);
    auto answer = guest.wait_for([&](const Bytes& f) {
        auto p = parse_ipv4(f);
        return p && p->protocol == kUdp && get16(p->transport, 2) == 5000;
    });
    ASSERT_TRUE(answer);
    auto packet = *parse_ipv4(*answer);
    EXPECT_EQ(packet.source, SlirpBackend::kHost);
    EXPECT_EQ(get16(packet.transport, 0), host.port);
    EXPECT_EQ(Bytes(packet.transport.begin() + 8, packet.transport.end()), text_bytes("pong"));
}

// A forward listens from create() on: a client connects before the device (and so slirp) has
// started, and its connection reaches the guest as a SYN once it has.
TEST_F(SlirpBackendTest, AForwardListensBeforeTheStartAndCarriesConnectionsToTheGuest) {
    uint16_t port = free_port();
    HostForward forward;
    forward.host_port = port;
    forward.guest_port = 8000;
    create({forward});
    Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0)
        << "connect before the start: " << std::strerror(errno);
    start();
    arp();
    auto syn = guest.wait_for([](const Bytes& f) {
        auto s = parse_tcp(f);
        return s && s->destination_port == 8000 && s->flags == kSyn;
    });
    ASSERT_TRUE(syn) << "no SYN to the guest's port 8000";
    auto packet = *parse_ipv4(*syn);
    EXPECT_EQ(packet.destination, kGuestIp);
    EXPECT_EQ(packet.source, SlirpBackend::kHost) << "the host's loopback client appears as 10.0.2.2";
}

TEST_F(SlirpBackendTest, AForwardThatCannotListenFailsTheCreationNamingIt) {
    HostSocket taken = host_socket(SOCK_STREAM, true);
    HostForward forward;
    forward.host_port = taken.port;
    forward.guest_port = 80;
    auto in_use = SlirpBackend::create(std::span(&forward, 1));
    ASSERT_FALSE(in_use);
    EXPECT_EQ(in_use.error().message, fmt::format("hostfwd=tcp:127.0.0.1:{0}-:80: cannot listen on 127.0.0.1:{0}: "
                                                  "Address already in use",
                                                  taken.port));

    HostSocket udp_taken = host_socket(SOCK_DGRAM, false);
    forward.protocol = HostForward::Protocol::Udp;
    forward.host_port = udp_taken.port;
    auto udp_in_use = SlirpBackend::create(std::span(&forward, 1));
    ASSERT_FALSE(udp_in_use);
    EXPECT_NE(udp_in_use.error().message.find(fmt::format("cannot bind 127.0.0.1:{}: Address already in use", udp_taken.port)),
              std::string::npos)
        << udp_in_use.error().message;

    forward.protocol = HostForward::Protocol::Tcp;
    forward.host_address = {192, 0, 2, 1};  // TEST-NET-1: no host has it
    forward.host_port = free_port();
    auto foreign = SlirpBackend::create(std::span(&forward, 1));
    ASSERT_FALSE(foreign);
    EXPECT_NE(foreign.error().message.find("Cannot assign requested address (it is not an address of this host)"),
              std::string::npos)
        << foreign.error().message;

    forward.host_address = kLoopback;
    forward.guest_address = SlirpBackend::kNameserver;
    auto not_guest = SlirpBackend::create(std::span(&forward, 1));
    ASSERT_FALSE(not_guest);
    EXPECT_NE(not_guest.error().message.find("10.0.2.3 is not a guest address of the user network"), std::string::npos)
        << not_guest.error().message;
}

// The maximum segment size slirp's SYN-ACK offers (TCP option 2), if it has one.
std::optional<uint16_t> offered_mss(const Bytes& frame) {
    size_t tcp_at = kEthernetHeaderSize + 4u * (frame[kEthernetHeaderSize] & 0xfu);
    size_t end = tcp_at + 4u * (frame[tcp_at + 12] >> 4);
    for (size_t at = tcp_at + 20; at + 1 < end && at + 1 < frame.size() && frame[at] != 0;) {
        if (frame[at] == 1) {  // NOP
            ++at;
            continue;
        }
        if (frame[at] == 2 && frame[at + 1] == 4 && at + 4 <= frame.size()) return get16(frame, at + 2);
        at += std::max<size_t>(2, frame[at + 1]);
    }
    return std::nullopt;
}

// The link's MTU is slirp's: the segments it offers to take from the guest are that MTU less the
// IP and TCP headers (65480 for the default 65520, 1460 for Ethernet's 1500), and the device
// advertises the same MTU to the guest.
TEST_F(SlirpBackendTest, TheLinkMtuSetsTheSegmentSizeSlirpOffers) {
    HostSocket listener = host_socket(SOCK_STREAM, true);
    for (uint16_t mtu : {SlirpBackend::kDefaultMtu, uint16_t{1500}}) {
        running.reset();
        create({}, mtu);
        EXPECT_EQ(slirp->mtu(), mtu);
        EXPECT_TRUE(slirp->checksums_verified());
        start();
        arp();
        const uint16_t guest_port = 40100;
        send(tcp(SlirpBackend::kHost, {guest_port, listener.port, 5000, 0, kSyn, {}}, slirp_mac));
        ASSERT_TRUE(readable(listener.fd.get())) << "the SYN did not reach the host";
        Fd accepted(::accept4(listener.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
        auto syn_ack = guest.wait_for([&](const Bytes& f) {
            auto s = parse_tcp(f);
            return s && s->destination_port == guest_port && (s->flags & (kSyn | kAck)) == (kSyn | kAck);
        });
        ASSERT_TRUE(syn_ack) << "no SYN-ACK with MTU " << mtu;
        EXPECT_EQ(offered_mss(*syn_ack), mtu - 40) << "MTU " << mtu;
    }
    auto tiny = SlirpBackend::create({}, 575);
    ASSERT_FALSE(tiny);
    EXPECT_EQ(tiny.error().message, "user network: MTU 575 is outside 576 to 65520");
}

// Nothing reaches the receiver once stopped, and a start again resumes.
TEST_F(SlirpBackendTest, StoppedItDeliversNothingAndStartsAgain) {
    create();
    start();
    arp();
    running->run([&] { slirp->stop(); });
    send(arp_request(kGuestIp, SlirpBackend::kHost));
    EXPECT_FALSE(guest.wait_for([](const Bytes& f) { return get16(f, 12) == 0x0806; }, 1s)) << "a frame while stopped";
    Result<void> started;
    running->run([&] { started = slirp->start(running->loop(), guest); });
    ASSERT_TRUE(started);
    arp();
}

}  // namespace
}  // namespace strata
