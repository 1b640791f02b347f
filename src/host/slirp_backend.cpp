#include "host/slirp_backend.hpp"

#include <slirp/libslirp.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <mutex>

namespace strata {
namespace {

// Every libslirp call of the process, whatever its instance (see the header: libslirp keeps
// process-wide state).
std::mutex& slirp_mutex() {
    static std::mutex mutex;
    return mutex;
}

// Only the first few guest errors are shown: a hostile guest must not be able to flood stderr.
constexpr unsigned kShownGuestErrors = 8;

in_addr to_in_addr(const Ipv4Address& address) {
    in_addr result{};
    std::memcpy(&result.s_addr, address.data(), address.size());  // network order, as the bytes are
    return result;
}

int64_t monotonic_ns() {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

uint32_t to_epoll(int slirp_events) {
    uint32_t events = 0;
    if (slirp_events & SLIRP_POLL_IN) events |= EPOLLIN;
    if (slirp_events & SLIRP_POLL_OUT) events |= EPOLLOUT;
    if (slirp_events & SLIRP_POLL_PRI) events |= EPOLLPRI;
    return events;  // EPOLLERR and EPOLLHUP are always reported
}

int to_slirp(uint32_t epoll_events) {
    int events = 0;
    if (epoll_events & EPOLLIN) events |= SLIRP_POLL_IN;
    if (epoll_events & EPOLLOUT) events |= SLIRP_POLL_OUT;
    if (epoll_events & EPOLLPRI) events |= SLIRP_POLL_PRI;
    if (epoll_events & EPOLLERR) events |= SLIRP_POLL_ERR;
    if (epoll_events & EPOLLHUP) events |= SLIRP_POLL_HUP;
    return events;
}

// A guest address a forward may name: one of 10.0.2.0/24 that is not the network, the host, the
// name server or the broadcast address.
bool valid_guest_address(const Ipv4Address& address) {
    for (size_t i = 0; i < 3; ++i)
        if (address[i] != SlirpBackend::kNetwork[i]) return false;
    return address[3] != 0 && address[3] != SlirpBackend::kHost[3] && address[3] != SlirpBackend::kNameserver[3] &&
           address[3] != 255;
}

}  // namespace

struct SlirpBackend::Timer {
    SlirpTimerId id = SLIRP_TIMER_RA;
    SlirpTimerCb callback = nullptr;  // timer_new's; timer_new_opaque's go through slirp_handle_timer
    void* callback_opaque = nullptr;
    int64_t expire_ms = -1;  // on the monotonic clock; -1 while not pending
};

// libslirp's callbacks (SlirpCb), all called from inside a libslirp call, so under slirp_mutex()
// and on the thread making it; `opaque` is the SlirpBackend.
struct SlirpCallbacks {
    static SlirpBackend& self(void* opaque) { return *static_cast<SlirpBackend*>(opaque); }

    // A frame for the guest. Without a receiver (stopped) it is dropped, as a NIC without a driver
    // drops it; slirp's TCP retransmits (libslirp.h allows dropping).
    static ssize_t send_packet(const void* buffer, size_t length, void* opaque) {
        SlirpBackend& backend = self(opaque);
        if (backend.receiver_) backend.receiver_->receive({static_cast<const uint8_t*>(buffer), length});
        return static_cast<ssize_t>(length);
    }
    static void guest_error(const char* message, void* opaque) {
        unsigned count = ++self(opaque).guest_errors_;
        if (count <= kShownGuestErrors)
            fmt::print(stderr, "strata: user network: guest error: {}{}\n", message,
                       count == kShownGuestErrors ? " (further such errors are not shown)" : "");
    }
    static int64_t clock_get_ns(void*) { return monotonic_ns(); }
    static void* timer_new(SlirpTimerCb callback, void* callback_opaque, void* opaque) {
        auto timer = std::make_unique<SlirpBackend::Timer>();
        timer->callback = callback;
        timer->callback_opaque = callback_opaque;
        return self(opaque).timers_.emplace_back(std::move(timer)).get();
    }
    static void* timer_new_opaque(SlirpTimerId id, void* callback_opaque, void* opaque) {
        auto timer = std::make_unique<SlirpBackend::Timer>();
        timer->id = id;
        timer->callback_opaque = callback_opaque;
        return self(opaque).timers_.emplace_back(std::move(timer)).get();
    }
    static void timer_free(void* timer, void* opaque) {
        std::erase_if(self(opaque).timers_, [timer](const auto& t) { return t.get() == timer; });
    }
    // `expire_time` is in milliseconds of clock_get_ns's clock; the timer is re-armed by the
    // refresh that follows every libslirp call.
    static void timer_mod(void* timer, int64_t expire_time, void*) {
        static_cast<SlirpBackend::Timer*>(timer)->expire_ms = std::max<int64_t>(expire_time, 0);
    }
    // A socket slirp has just created: its number may be one a closed socket had, which epoll
    // forgot at the close without slirp saying so; its next registration starts afresh.
    static void register_poll_fd(int fd, void* opaque) {
        auto& registrations = self(opaque).registrations_;
        if (auto it = registrations.find(fd); it != registrations.end()) it->second.stale = true;
    }
    static void unregister_poll_fd(int fd, void* opaque) {
        SlirpBackend& backend = self(opaque);
        if (backend.registrations_.erase(fd)) ::epoll_ctl(backend.poller_.get(), EPOLL_CTL_DEL, fd, nullptr);
    }
    // Room in a socket buffer: only ever called inside our own libslirp calls, after each of which
    // the poll set is refreshed anyway.
    static void notify(void*) {}
    static int add_poll(int fd, int events, void* opaque) {
        auto& polled = self(opaque).polled_;
        polled.push_back({fd, events});
        return static_cast<int>(polled.size() - 1);
    }
    static int get_revents(int index, void* opaque) {
        SlirpBackend& backend = self(opaque);
        if (index < 0 || static_cast<size_t>(index) >= backend.polled_.size()) return 0;
        auto it = backend.registrations_.find(backend.polled_[static_cast<size_t>(index)].fd);
        return it == backend.registrations_.end() ? 0 : to_slirp(it->second.ready);
    }
};

std::string format_forward(const HostForward& forward) {
    return fmt::format("{}:{}:{}-{}:{}", forward.protocol == HostForward::Protocol::Udp ? "udp" : "tcp",
                       format_ipv4(forward.host_address), forward.host_port,
                       forward.guest_address ? format_ipv4(*forward.guest_address) : "", forward.guest_port);
}

Result<std::unique_ptr<SlirpBackend>> SlirpBackend::create(std::span<const HostForward> forwards, uint16_t mtu) {
    if (mtu < kMinMtu || mtu > kMaxMtu)
        return fail("user network: MTU {} is outside {} to {}", mtu, kMinMtu, kMaxMtu);
    std::unique_ptr<SlirpBackend> backend(new SlirpBackend());
    backend->mtu_ = mtu;
    backend->poller_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
    if (!backend->poller_.valid()) return fail_errno("user network: epoll_create1");
    backend->timer_ = Fd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!backend->timer_.valid()) return fail_errno("user network: timerfd_create");
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = backend->timer_.get();
    if (::epoll_ctl(backend->poller_.get(), EPOLL_CTL_ADD, backend->timer_.get(), &event) < 0)
        return fail_errno("user network: epoll_ctl for its timer");

    static const SlirpCb callbacks = {
        .send_packet = SlirpCallbacks::send_packet,
        .guest_error = SlirpCallbacks::guest_error,
        .clock_get_ns = SlirpCallbacks::clock_get_ns,
        .timer_new = SlirpCallbacks::timer_new,
        .timer_free = SlirpCallbacks::timer_free,
        .timer_mod = SlirpCallbacks::timer_mod,
        .register_poll_fd = SlirpCallbacks::register_poll_fd,
        .unregister_poll_fd = SlirpCallbacks::unregister_poll_fd,
        .notify = SlirpCallbacks::notify,
        .init_completed = nullptr,
        .timer_new_opaque = SlirpCallbacks::timer_new_opaque,
    };
    SlirpConfig config{};
    config.version = 4;  // up to timer_new_opaque and disable_dhcp
    config.in_enabled = true;
    config.vnetwork = to_in_addr(kNetwork);
    config.vnetmask = to_in_addr(kNetmask);
    config.vhost = to_in_addr(kHost);
    config.vdhcp_start = to_in_addr(kFirstDhcpAddress);
    config.vnameserver = to_in_addr(kNameserver);
    config.in6_enabled = false;
    config.if_mtu = mtu;  // what slirp sends the guest at most (its TCP segments' size)
    config.if_mru = mtu;  // what it takes from the guest

    std::lock_guard lock(slirp_mutex());
    backend->slirp_ = ::slirp_new(&config, &callbacks, backend.get());
    if (!backend->slirp_) return fail("user network: libslirp could not create its stack");
    for (const HostForward& forward : forwards) {
        std::string what = "hostfwd=" + format_forward(forward);
        Ipv4Address guest = forward.guest_address.value_or(kFirstDhcpAddress);
        if (!valid_guest_address(guest))
            return fail("{}: {} is not a guest address of the user network (10.0.2.0/24 but .0, .2, .3 and .255)",
                        what, format_ipv4(guest));
        bool udp = forward.protocol == HostForward::Protocol::Udp;
        errno = 0;
        if (::slirp_add_hostfwd(backend->slirp_, udp ? 1 : 0, to_in_addr(forward.host_address), forward.host_port,
                                to_in_addr(guest), forward.guest_port) < 0) {
            // libslirp keeps the errno of the bind() or listen() that failed.
            int error = errno;
            const char* hint = error == EADDRNOTAVAIL ? " (it is not an address of this host)"
                               : error == EACCES  ? " (a port below 1024 needs privileges)"
                                                  : "";
            return fail("{}: cannot {} {}:{}: {}{}", what, udp ? "bind" : "listen on",
                        format_ipv4(forward.host_address), forward.host_port,
                        error ? std::strerror(error) : "libslirp refused it", hint);
        }
    }
    return backend;
}

SlirpBackend::~SlirpBackend() {
    if (!slirp_) return;
    std::lock_guard lock(slirp_mutex());
    ::slirp_cleanup(slirp_);  // closes every socket; its unregister calls still reach poller_
}

Result<void> SlirpBackend::start(EventLoop& loop, Receiver& receiver) {
    if (receiver_) return {};
    if (auto r = loop.watch(poller_.get(), [this] { poll_ready(); }); !r) return context(r.error(), "user network");
    loop_ = &loop;
    receiver_ = &receiver;
    std::lock_guard lock(slirp_mutex());
    refresh_locked();
    return {};
}

void SlirpBackend::stop() {
    if (!receiver_) return;
    loop_->unwatch(poller_.get());
    receiver_ = nullptr;
}

bool SlirpBackend::send(std::span<const uint8_t> frame) {
    std::lock_guard lock(slirp_mutex());
    ::slirp_input(slirp_, frame.data(), static_cast<int>(frame.size()));
    refresh_locked();
    return true;  // slirp takes every frame (and drops what it cannot use, as a network would)
}

void SlirpBackend::poll_ready() {
    std::array<epoll_event, 64> events{};
    int count = ::epoll_wait(poller_.get(), events.data(), static_cast<int>(events.size()), 0);
    if (count < 0 && errno == EINTR) return;  // level-triggered: called again
    for (int i = 0; i < count; ++i) {
        const epoll_event& event = events[static_cast<size_t>(i)];
        if (event.data.fd == timer_.get()) {
            uint64_t expirations = 0;
            [[maybe_unused]] ssize_t n = ::read(timer_.get(), &expirations, sizeof(expirations));
            armed_deadline_ns_ = -1;
        } else if (auto it = registrations_.find(event.data.fd); it != registrations_.end()) {
            it->second.ready |= event.events;
        }
    }
    std::lock_guard lock(slirp_mutex());
    // Also runs slirp's TCP timers when they are due (it reads the clock itself).
    ::slirp_pollfds_poll(slirp_, count < 0 ? 1 : 0, SlirpCallbacks::get_revents, this);
    for (auto& [fd, registration] : registrations_) registration.ready = 0;
    run_due_timers_locked();
    refresh_locked();
}

void SlirpBackend::refresh_locked() {
    polled_.clear();
    uint32_t timeout_ms = UINT32_MAX;
    ::slirp_pollfds_fill(slirp_, &timeout_ms, SlirpCallbacks::add_poll, this);
    sync_registrations();
    arm_timer(timeout_ms);
}

// The registrations become what the last fill asked for: new descriptors added, changed interests
// modified, descriptors slirp no longer polls removed.
void SlirpBackend::sync_registrations() {
    ++generation_;
    for (const Polled& polled : polled_) {
        uint32_t wanted = to_epoll(polled.events);
        auto [it, inserted] = registrations_.try_emplace(polled.fd);
        Registration& registration = it->second;
        if (inserted || registration.stale)
            control(polled.fd, wanted, registration, true);
        else if (registration.epoll_events != wanted)
            control(polled.fd, wanted, registration, false);
        registration.generation = generation_;
    }
    std::erase_if(registrations_, [this](const auto& entry) {
        if (entry.second.generation == generation_) return false;
        // It may be closed already (epoll then forgot it): ENOENT or EBADF is expected.
        ::epoll_ctl(poller_.get(), EPOLL_CTL_DEL, entry.first, nullptr);
        return true;
    });
}

void SlirpBackend::control(int fd, uint32_t events, Registration& registration, bool fresh) {
    epoll_event event{};
    event.events = events;
    event.data.fd = fd;
    bool ok = ::epoll_ctl(poller_.get(), fresh ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &event) == 0;
    // A stale registration may still be there (EEXIST), and one epoll forgot at a close whose
    // number came back unannounced is not (ENOENT): either way, the other operation.
    if (!ok && ((fresh && errno == EEXIST) || (!fresh && errno == ENOENT)))
        ok = ::epoll_ctl(poller_.get(), fresh ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &event) == 0;
    if (!ok) report_epoll_error(fd);
    registration.epoll_events = events;
    registration.stale = false;
}

void SlirpBackend::report_epoll_error(int fd) {
    if (reported_epoll_error_) return;
    reported_epoll_error_ = true;
    fmt::print(stderr, "strata: user network: cannot poll socket {}: {} (its connection may stall)\n", fd,
               std::strerror(errno));
}

// The timer is brought forward, never pushed back: firing before slirp needs it costs one pass that
// finds nothing due, while re-arming it on every refresh would cost a system call a frame.
void SlirpBackend::arm_timer(uint32_t timeout_ms) {
    int64_t now = monotonic_ns();
    int64_t deadline = timeout_ms == UINT32_MAX ? INT64_MAX : now + int64_t{timeout_ms} * 1'000'000;
    for (const auto& timer : timers_)
        if (timer->expire_ms >= 0) deadline = std::min(deadline, timer->expire_ms * 1'000'000);
    if (deadline == INT64_MAX || (armed_deadline_ns_ >= 0 && armed_deadline_ns_ <= deadline)) return;
    int64_t wait = std::max<int64_t>(deadline - now, 1);  // 0 would disarm it
    itimerspec spec{};
    spec.it_value.tv_sec = wait / 1'000'000'000;
    spec.it_value.tv_nsec = wait % 1'000'000'000;
    if (::timerfd_settime(timer_.get(), 0, &spec, nullptr) == 0) armed_deadline_ns_ = deadline;
}

void SlirpBackend::run_due_timers_locked() {
    // One at a time: a timer's callback may modify or free timers.
    for (;;) {
        int64_t now_ms = monotonic_ns() / 1'000'000;
        auto due = std::ranges::find_if(timers_, [now_ms](const auto& t) { return t->expire_ms >= 0 && t->expire_ms <= now_ms; });
        if (due == timers_.end()) return;
        Timer& timer = **due;
        timer.expire_ms = -1;
        if (timer.callback)
            timer.callback(timer.callback_opaque);
        else
            ::slirp_handle_timer(slirp_, timer.id, timer.callback_opaque);
    }
}

}  // namespace strata
