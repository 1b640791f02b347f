// SIGINT, SIGTERM and SIGHUP as readable events: they are blocked in the calling thread, and so in
// every thread it starts afterwards (vCPUs, device timers), and read from a signalfd by the
// console loop, which turns them into an orderly stop with the terminal restored.
// Create it before any other thread exists, or a thread with the signals unblocked takes them
// and the default action kills the process.
#pragma once

#include "base/error.hpp"

namespace strata {

// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread. main() calls it first of all, so that
// a signal that comes before the SignalFd exists waits for it instead of killing the process.
[[nodiscard]] Result<void> block_stop_signals();

class SignalFd {
public:
    static Result<SignalFd> create();
    SignalFd(SignalFd&& other) noexcept;
    SignalFd& operator=(SignalFd&&) = delete;
    SignalFd(const SignalFd&) = delete;
    ~SignalFd();

    [[nodiscard]] int fd() const { return fd_; }
    // The number of the signal that arrived, or 0 when none is pending.
    [[nodiscard]] int take() const;

private:
    explicit SignalFd(int fd) : fd_(fd) {}
    int fd_;
};

}  // namespace strata
