#include "host/tap_backend.hpp"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace strata {

Result<std::unique_ptr<TapBackend>> TapBackend::open(const std::string& ifname) {
    if (ifname.empty() || ifname.size() >= IFNAMSIZ)
        return fail("tap '{}': an interface name has 1 to {} characters", ifname, IFNAMSIZ - 1);
    Fd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
    if (!fd.valid()) {
        int error = errno;
        if (error == ENOENT || error == ENODEV)
            return fail("tap {}: the host has no /dev/net/tun (is the tun module loaded? modprobe tun)", ifname);
        return fail("tap {}: cannot open /dev/net/tun: {}{}", ifname, std::strerror(error),
                    error == EACCES || error == EPERM ? " (it needs root, or read-write access to /dev/net/tun)" : "");
    }
    bool existed = ::if_nametoindex(ifname.c_str()) != 0;
    ifreq request{};
    std::memcpy(request.ifr_name, ifname.data(), ifname.size());
    request.ifr_flags = IFF_TAP | IFF_NO_PI;
    if (::ioctl(fd.get(), TUNSETIFF, &request) < 0) {
        int error = errno;
        switch (error) {
            case EPERM:
                return fail("tap {}: not permitted to {} it: that needs CAP_NET_ADMIN (root), or an interface "
                            "made for this user beforehand (ip tuntap add {} mode tap user $USER)",
                            ifname, existed ? "attach to" : "create", ifname);
            case EBUSY: return fail("tap {}: the interface is in use by another process", ifname);
            case EINVAL:
                if (existed)
                    return fail("tap {}: the interface exists and is not a TAP interface these flags attach to "
                                "(a TUN, a multiqueue TAP, or another kind of interface)",
                                ifname);
                return fail("tap {}: the kernel refuses the name (TUNSETIFF: {})", ifname, std::strerror(error));
            default: return fail("tap {}: TUNSETIFF: {}", ifname, std::strerror(error));
        }
    }
    // The kernel names the interface (a name with %d in it is a pattern).
    std::string actual(request.ifr_name, strnlen(request.ifr_name, IFNAMSIZ));
    return std::unique_ptr<TapBackend>(new TapBackend(std::move(fd), std::move(actual)));
}

TapBackend::TapBackend(Fd fd, std::string ifname)
    : fd_(std::move(fd)), ifname_(std::move(ifname)), name_("tap " + ifname_), buffer_(kMaxFrameSize) {}

Result<void> TapBackend::start(EventLoop& loop, Receiver& receiver) {
    loop_ = &loop;
    receiver_ = &receiver;
    paused_ = false;
    return watch();
}

Result<void> TapBackend::watch() {
    if (auto r = loop_->watch(fd_.get(), [this] { readable(); }); !r) return context(r.error(), name_);
    return {};
}

void TapBackend::stop() {
    if (!receiver_) return;
    if (!paused_) loop_->unwatch(fd_.get());
    receiver_ = nullptr;
}

void TapBackend::receive_ready() {
    if (!receiver_ || !paused_) return;
    paused_ = false;
    if (auto r = watch(); !r) fmt::print(stderr, "strata: {}; frames for the guest stop\n", r.error().message);
}

void TapBackend::readable() {
    for (unsigned frames = 0; receiver_ && frames < kFramesPerWakeup; ++frames) {
        if (!receiver_->can_receive()) {
            // The frames wait in the interface's queue until the guest has buffers again.
            loop_->unwatch(fd_.get());
            paused_ = true;
            return;
        }
        ssize_t n = ::read(fd_.get(), buffer_.data(), buffer_.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            if (errno != EAGAIN) report_once(reported_read_error_, "read");
            return;
        }
        receiver_->receive(std::span<const uint8_t>(buffer_).first(static_cast<size_t>(n)));
    }
}

bool TapBackend::send(std::span<const uint8_t> frame) {
    for (;;) {
        ssize_t n = ::write(fd_.get(), frame.data(), frame.size());
        if (n >= 0) return static_cast<size_t>(n) == frame.size();
        if (errno == EINTR) continue;
        // EAGAIN: the interface's queue is full; EIO: the interface is down. The frame is dropped,
        // as a wire drops it.
        if (errno != EAGAIN) report_once(reported_write_error_, "write");
        return false;
    }
}

void TapBackend::report_once(bool& reported, std::string_view what) {
    if (reported) return;
    reported = true;
    int error = errno;
    fmt::print(stderr, "strata: {}: {}: {}{}; frames are dropped (reported once)\n", name_, what,
               std::strerror(error), error == EIO ? " (is the interface up? ip link set " + ifname_ + " up)" : "");
}

}  // namespace strata
