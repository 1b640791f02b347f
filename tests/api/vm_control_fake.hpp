// A VmControl that keeps a state and counts what it was asked, for the API's tests: the state
// machine of a real VM (running ⇄ paused → stopping) without one.
#pragma once

#include <atomic>
#include <mutex>

#include "api/vm_control.hpp"

namespace strata::api::testing {

class FakeVm final : public VmControl {
public:
    nlohmann::json info() override {
        std::lock_guard lock(mutex_);
        return {{"state", to_string(state_)}, {"engine", "fake"}, {"config", {{"kernel", "/boot/k\xff"}}}};
    }
    ApiResult<> pause() override {
        std::lock_guard lock(mutex_);
        if (state_ != VmState::Running) return std::unexpected(ApiError{409, "not running"});
        state_ = VmState::Paused;
        ++pauses;
        return {};
    }
    ApiResult<> resume() override {
        std::lock_guard lock(mutex_);
        if (state_ != VmState::Paused) return std::unexpected(ApiError{409, "the VM is not paused"});
        state_ = VmState::Running;
        return {};
    }
    ApiResult<> stop(std::chrono::milliseconds deadline) override {
        std::lock_guard lock(mutex_);
        if (state_ != VmState::Running) return std::unexpected(ApiError{409, "not running"});
        state_ = VmState::Stopping;
        last_deadline = deadline;
        return {};
    }
    ApiResult<> kill() override {
        std::lock_guard lock(mutex_);
        state_ = VmState::Stopping;
        ++kills;
        return {};
    }
    ApiResult<nlohmann::json> snapshot(const std::string& path, SnapshotMode mode) override {
        std::lock_guard lock(mutex_);
        if (state_ == VmState::Stopping) return std::unexpected(ApiError{409, "the VM is stopping"});
        last_snapshot = path;
        last_snapshot_mode = mode;
        ++snapshots;
        return nlohmann::json{{"path", path}};
    }
    nlohmann::json metrics() override { return {{"vcpus", nlohmann::json::array()}}; }
    std::string metrics_prometheus() override { return "strata_uptime_seconds{vm=\"fake\"} 1\n"; }
    [[nodiscard]] VmState state() {
        std::lock_guard lock(mutex_);
        return state_;
    }

    std::atomic<int> pauses{0}, kills{0}, snapshots{0};
    std::string last_snapshot;
    SnapshotMode last_snapshot_mode = SnapshotMode::Auto;
    std::chrono::milliseconds last_deadline{-1};

private:
    std::mutex mutex_;
    VmState state_ = VmState::Running;
};

}  // namespace strata::api::testing
