#include "host/event_loop.hpp"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include <array>
#include <cerrno>

namespace strata {

Result<std::unique_ptr<EventLoop>> EventLoop::create(std::string name) {
    std::unique_ptr<EventLoop> loop(new EventLoop());
    loop->epoll_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
    if (!loop->epoll_.valid()) return fail_errno("epoll_create1 for {}", name);
    loop->wake_ = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!loop->wake_.valid()) return fail_errno("eventfd for {}", name);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = loop->wake_.get();
    if (::epoll_ctl(loop->epoll_.get(), EPOLL_CTL_ADD, loop->wake_.get(), &event) < 0)
        return fail_errno("epoll_ctl for {}", name);
    EventLoop* raw = loop.get();
    loop->thread_ = std::thread([raw] { raw->run(); });
    ::pthread_setname_np(loop->thread_.native_handle(), name.substr(0, 15).c_str());
    return loop;
}

EventLoop::~EventLoop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake();
    if (thread_.joinable()) thread_.join();
}

void EventLoop::wake() const {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof(one));
}

Result<void> EventLoop::watch(int fd, std::function<void()> on_readable) {
    return watch(fd, kReadable, [handler = std::move(on_readable)](Ready) { handler(); });
}

Result<void> EventLoop::watch(int fd, Ready wanted, std::function<void(Ready)> on_ready) {
    std::lock_guard lock(mutex_);
    epoll_event event{};
    event.events = ((wanted & kReadable) ? EPOLLIN : 0u) | ((wanted & kWritable) ? EPOLLOUT : 0u);
    event.data.fd = fd;
    bool known = handlers_.contains(fd);
    if (::epoll_ctl(epoll_.get(), known ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &event) < 0)
        return fail_errno("epoll_ctl(fd {})", fd);
    handlers_[fd] = std::make_shared<std::function<void(Ready)>>(std::move(on_ready));
    return {};
}

void EventLoop::unwatch(int fd) {
    std::lock_guard lock(mutex_);
    if (handlers_.erase(fd)) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

void EventLoop::post(std::function<void()> task) {
    {
        std::lock_guard lock(mutex_);
        tasks_.push_back(std::move(task));
    }
    wake();
}

void EventLoop::run_sync(const std::function<void()>& task) {
    if (on_loop_thread()) {
        task();
        return;
    }
    std::mutex done_mutex;
    std::condition_variable done_changed;
    bool done = false;
    post([&] {
        task();
        std::lock_guard lock(done_mutex);
        done = true;
        done_changed.notify_one();
    });
    std::unique_lock lock(done_mutex);
    done_changed.wait(lock, [&] { return done; });
}

void EventLoop::run() {
    std::array<epoll_event, 16> events{};
    for (;;) {
        int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), -1);
        if (n < 0 && errno != EINTR) return;
        for (int i = 0; i < n; ++i) {
            int fd = events[static_cast<size_t>(i)].data.fd;
            uint32_t what = events[static_cast<size_t>(i)].events;
            if (fd == wake_.get()) {
                uint64_t count = 0;
                [[maybe_unused]] ssize_t r = ::read(wake_.get(), &count, sizeof(count));
                continue;
            }
            std::shared_ptr<std::function<void(Ready)>> handler;
            {
                std::lock_guard lock(mutex_);
                auto it = handlers_.find(fd);
                if (it != handlers_.end()) handler = it->second;
            }
            Ready ready = 0;
            if (what & (EPOLLIN | EPOLLHUP | EPOLLERR)) ready |= kReadable;
            if (what & (EPOLLOUT | EPOLLHUP | EPOLLERR)) ready |= kWritable;
            if (handler) (*handler)(ready);
        }
        std::vector<std::function<void()>> tasks;
        bool stop = false;
        {
            std::lock_guard lock(mutex_);
            tasks.swap(tasks_);
            stop = stopping_;
        }
        for (auto& task : tasks) task();
        if (stop) return;
    }
}

}  // namespace strata
