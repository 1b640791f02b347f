// User-mode networking through libslirp: the guest's frames go into a TCP/IP stack in this process,
// which makes ordinary host sockets of the guest's connections, so the guest reaches the host's
// networks without privileges, a TAP interface or any host configuration.
//
// State:    the Slirp instance (its sockets, connections, ARP table and DHCP leases); the poll set
//           slirp asked for last, as registrations in a private epoll instance; slirp's timers;
//           the receiver while started.
// Features: QEMU's user network, which users know: 10.0.2.0/24, the host (gateway) at 10.0.2.2,
//           DNS at 10.0.2.3 forwarded to the host's resolver, DHCP handing out 10.0.2.15 on; the
//           guest's TCP and UDP go out through host sockets, and 10.0.2.2 reaches the host's own
//           127.0.0.1. Host port forwards (TCP or UDP, host address:port to guest address:port)
//           listen from create() on, so a bad one (a port in use, an address the host does not
//           have) fails before the VM starts, and a client may connect before the guest is up: the
//           host's kernel completes its handshake, and slirp takes the connection to the guest once
//           the device has started.
// Threads:  libslirp is not thread-safe, and it keeps process-wide state beside each instance (its
//           clock `curtime`, the cached host DNS address), so every libslirp call of every instance
//           is made under one process-wide mutex; an instance is used from one thread at a time:
//           create() on any, everything else on the device's loop it was started on. The poll set
//           lives in a private epoll instance whose one descriptor the loop watches (level-
//           triggered, readable when any of slirp's sockets or the timer is ready), so the device's
//           loop needs no knowledge of slirp's sockets. After every libslirp call the poll set is
//           refreshed (slirp_pollfds_fill: registrations added, changed and removed by difference)
//           and the timer brought forward to the earlier of slirp's timeout (its TCP fast and slow
//           timers) and its own timers (timer_mod); a timer that fires early costs one empty pass.
//           The link's MTU is 65520 unless --net user,mtu= says otherwise; the device advertises it
//           to the guest.
// Missing:  IPv6 (slirp's only timer user, its router advertisements, would need it), TFTP and
//           BOOTP file names, guestfwd, restricted mode, removing forwards at run time.
// Spec:     libslirp 4.7's libslirp.h (the poll and timer contract); QEMU's -netdev user addresses.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/fd.hpp"
#include "host/net_backend.hpp"

struct Slirp;  // libslirp.h: typedef struct Slirp Slirp

namespace strata {

// hostfwd=tcp:HOSTADDR:HOSTPORT-GUESTADDR:GUESTPORT: connections to the host's address and port are
// carried to the guest's (a datagram for udp).
struct HostForward {
    enum class Protocol { Tcp, Udp };
    Protocol protocol = Protocol::Tcp;
    Ipv4Address host_address{127, 0, 0, 1};
    uint16_t host_port = 0;
    std::optional<Ipv4Address> guest_address;  // absent: the first DHCP address, 10.0.2.15
    uint16_t guest_port = 0;
};

// "tcp:127.0.0.1:8080-:80", as --net takes it.
[[nodiscard]] std::string format_forward(const HostForward& forward);

class SlirpBackend final : public NetBackend {
public:
    static constexpr Ipv4Address kNetwork{10, 0, 2, 0};
    static constexpr Ipv4Address kNetmask{255, 255, 255, 0};
    static constexpr Ipv4Address kHost{10, 0, 2, 2};
    static constexpr Ipv4Address kNameserver{10, 0, 2, 3};
    static constexpr Ipv4Address kFirstDhcpAddress{10, 0, 2, 15};
    // The link's MTU: slirp4netns's and passt's default, the largest libslirp takes (65521) rounded
    // down to a multiple of 8. The guest's TCP connections end in slirp, which makes ordinary host
    // sockets of them, so nothing outside this process sees the link's MTU; a large one only cuts
    // the number of packets the guest's stack handles (twice the download rate of 1500 here).
    static constexpr uint16_t kDefaultMtu = 65520;
    static constexpr uint16_t kMinMtu = 576;  // the least every IPv4 host must take (RFC 791)
    static constexpr uint16_t kMaxMtu = 65520;

    // A new stack with `forwards` listening and the link's MTU `mtu` (kMinMtu to kMaxMtu). Fails
    // naming the forward that cannot listen (and why: address in use, not an address of this host)
    // or whose guest address is not one of the guest network's.
    [[nodiscard]] static Result<std::unique_ptr<SlirpBackend>> create(std::span<const HostForward> forwards,
                                                                      uint16_t mtu = kDefaultMtu);
    ~SlirpBackend() override;
    SlirpBackend(const SlirpBackend&) = delete;
    SlirpBackend& operator=(const SlirpBackend&) = delete;

    [[nodiscard]] std::string_view name() const override { return "user network"; }
    [[nodiscard]] Result<void> start(EventLoop& loop, Receiver& receiver) override;
    void stop() override;
    [[nodiscard]] bool send(std::span<const uint8_t> frame) override;
    [[nodiscard]] uint16_t mtu() const override { return mtu_; }
    // slirp builds every packet it sends the guest, its checksums computed in full.
    [[nodiscard]] bool checksums_verified() const override { return true; }

private:
    friend struct SlirpCallbacks;  // libslirp's callbacks, in the .cpp
    struct Timer;
    // A descriptor slirp asked to poll, as registered in poller_.
    struct Registration {
        uint32_t epoll_events = 0;  // the interest registered
        uint32_t ready = 0;         // epoll events seen since the last slirp_pollfds_poll
        uint64_t generation = 0;    // the refresh that last asked for it
        bool stale = false;         // slirp registered a socket with this number anew
    };
    struct Polled {
        int fd;
        int events;  // SLIRP_POLL_*
    };

    SlirpBackend() = default;
    void poll_ready();          // poller_ is readable: slirp_pollfds_poll, timers, refresh
    void refresh_locked();      // slirp_pollfds_fill, the registrations and the timer; lock held
    void sync_registrations();
    void arm_timer(uint32_t timeout_ms);
    void run_due_timers_locked();
    void control(int fd, uint32_t events, Registration& registration, bool fresh);
    void report_epoll_error(int fd);

    ::Slirp* slirp_ = nullptr;
    uint16_t mtu_ = kDefaultMtu;
    Fd poller_;  // epoll instance of slirp's sockets and timer_
    Fd timer_;   // timerfd: slirp's timeout and timers
    EventLoop* loop_ = nullptr;
    Receiver* receiver_ = nullptr;  // while started
    int64_t armed_deadline_ns_ = -1;  // when timer_ fires, or -1 while it is disarmed
    uint64_t generation_ = 0;
    std::vector<Polled> polled_;  // the last slirp_pollfds_fill, by the index add_poll returned
    std::unordered_map<int, Registration> registrations_;
    std::vector<std::unique_ptr<Timer>> timers_;
    unsigned guest_errors_ = 0;
    bool reported_epoll_error_ = false;
};

}  // namespace strata
