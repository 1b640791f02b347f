#include "host/signal_fd.hpp"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <utility>

namespace strata {

namespace {

sigset_t stop_signals() {
    sigset_t signals;
    sigemptyset(&signals);
    for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&signals, s);
    return signals;
}

}  // namespace

Result<void> block_stop_signals() {
    sigset_t signals = stop_signals();
    if (pthread_sigmask(SIG_BLOCK, &signals, nullptr) != 0) return fail("blocking SIGINT, SIGTERM and SIGHUP");
    return {};
}

Result<SignalFd> SignalFd::create() {
    if (auto r = block_stop_signals(); !r) return std::unexpected(r.error());
    sigset_t signals = stop_signals();
    int fd = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0) return fail_errno("signalfd");
    return SignalFd(fd);
}

SignalFd::SignalFd(SignalFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

SignalFd::~SignalFd() {
    if (fd_ >= 0) ::close(fd_);
}

int SignalFd::take() const {
    signalfd_siginfo info{};
    if (::read(fd_, &info, sizeof(info)) != sizeof(info)) return 0;
    return static_cast<int>(info.ssi_signo);
}

}  // namespace strata
