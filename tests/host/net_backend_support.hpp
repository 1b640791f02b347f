// For back-end tests: a network back end started on an event loop of its own, as a device's loop
// runs it.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "host/net_backend.hpp"

namespace strata::testing {

class RunningBackend {
public:
    // Starts `backend` on a new loop named `name`, delivering to `receiver`; started() says
    // whether it did.
    RunningBackend(NetBackend& backend, NetBackend::Receiver& receiver, const std::string& name);
    // Stops the back end on its loop, then ends the loop.
    ~RunningBackend();
    RunningBackend(const RunningBackend&) = delete;
    RunningBackend& operator=(const RunningBackend&) = delete;

    [[nodiscard]] const Result<void>& started() const { return started_; }
    // Runs `task` on the loop and returns once it has run (back ends are the loop's).
    void run(const std::function<void()>& task) { loop_->run_sync(task); }
    [[nodiscard]] EventLoop& loop() { return *loop_; }

private:
    NetBackend& backend_;
    std::unique_ptr<EventLoop> loop_;
    Result<void> started_;
};

}  // namespace strata::testing
