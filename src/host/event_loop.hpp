// A thread that waits on file descriptors and runs what they are for: the home of a device's
// work (virtio queue processing, back-end completions), so that none of it runs on a vCPU thread.
// Device state touched from the loop needs no lock against the loop itself; what vCPU threads
// reach (registers) is synchronized by the device, and run_sync() lets them hand the loop a
// task and wait for it (a device reset that must finish before the register write returns).
//
// State:    an epoll instance, the watched descriptors with their handlers, posted tasks.
// Features: level-triggered readiness (a handler that leaves data unread is called again), for
//           reading, writing or both (a socket back end waits for room only while it has bytes queued);
//           watch/unwatch from any thread, the loop's own included (a handler may unwatch itself);
//           post() and run_sync() from any thread (run_sync() on the loop thread runs at once).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/error.hpp"
#include "base/fd.hpp"

namespace strata {

class EventLoop {
public:
    // Starts the loop's thread, named `name` (at most 15 characters show in ps/top).
    static Result<std::unique_ptr<EventLoop>> create(std::string name);
    ~EventLoop();  // stops and joins the thread; watched descriptors are not closed
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    // Readiness kinds for watch(): bits of `Ready`. A hang-up or error is reported as both, so a
    // handler that reads or writes meets it.
    using Ready = uint32_t;
    static constexpr Ready kReadable = 1, kWritable = 2;

    // Calls `on_readable` on the loop thread whenever `fd` is readable (or has hung up).
    [[nodiscard]] Result<void> watch(int fd, std::function<void()> on_readable);
    // Calls `on_ready` with what `fd` is ready for, of `wanted` (kReadable | kWritable), whenever
    // it is ready for any of it. Watching a watched descriptor again replaces its interest and handler.
    [[nodiscard]] Result<void> watch(int fd, Ready wanted, std::function<void(Ready)> on_ready);
    void unwatch(int fd);
    // Runs `task` on the loop thread soon.
    void post(std::function<void()> task);
    // Runs `task` on the loop thread and returns once it has run.
    void run_sync(const std::function<void()>& task);
    [[nodiscard]] bool on_loop_thread() const { return std::this_thread::get_id() == thread_.get_id(); }

private:
    EventLoop() = default;
    void run();
    void wake() const;

    Fd epoll_;
    Fd wake_;  // an eventfd: tasks were posted, or the loop must stop
    std::mutex mutex_;
    std::map<int, std::shared_ptr<std::function<void(Ready)>>> handlers_;
    std::vector<std::function<void()>> tasks_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace strata
