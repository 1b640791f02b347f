#include "host/event_fd.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <utility>

namespace strata {

Result<EventFd> EventFd::create() {
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) return fail_errno("eventfd");
    return EventFd(fd);
}

EventFd::EventFd(EventFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

EventFd::~EventFd() {
    if (fd_ >= 0) ::close(fd_);
}

void EventFd::notify() const {
    uint64_t one = 1;
    (void)!::write(fd_, &one, sizeof(one));
}

void EventFd::drain() const {
    uint64_t value;
    (void)!::read(fd_, &value, sizeof(value));
}

}  // namespace strata
