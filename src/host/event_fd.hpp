// A wake-up flag that poll() can wait on (eventfd), for telling the console loop that the VM
// has stopped.
#pragma once

#include "base/error.hpp"

namespace strata {

class EventFd {
public:
    static Result<EventFd> create();
    EventFd(EventFd&& other) noexcept;
    EventFd& operator=(EventFd&&) = delete;
    EventFd(const EventFd&) = delete;
    ~EventFd();

    void notify() const;  // async-signal-safe
    void drain() const;
    [[nodiscard]] int fd() const { return fd_; }

private:
    explicit EventFd(int fd) : fd_(fd) {}
    int fd_;
};

}  // namespace strata
