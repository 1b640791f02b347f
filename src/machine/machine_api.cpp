// The machine as the control API's VmControl (machine.hpp): what the API's threads may read
// directly (configuration, state, clocks) and what they hand to the thread of run().
#include "machine/machine.hpp"
#include "machine/messages.hpp"
#include "machine/vm_metrics.hpp"

#include <unistd.h>

namespace strata {

namespace {

using nlohmann::json;

api::ApiError conflict(std::string message) { return {409, std::move(message)}; }

std::string_view accel_name(Accel accel) {
    switch (accel) {
        case Accel::Auto: return "auto";
        case Accel::Kvm: return "kvm";
        case Accel::Soft: return "soft";
    }
    return "auto";
}

json config_json(const MachineConfig& config) {
    json disks = json::array();
    for (const DiskConfig& disk : config.disks)
        disks.push_back({{"path", disk.path}, {"read_only", disk.read_only}, {"serial", disk.serial}});
    json nets = json::array();
    for (const NetConfig& net : config.nets) nets.push_back(net.text);
    json result = {
        {"kernel", config.kernel_path},
        {"initrd", config.initrd_path},
        {"cmdline", config.cmdline},
        {"memory_bytes", config.memory},
        {"cpus", config.cpus},
        {"accel", accel_name(config.accel)},
        {"console", config.console == ConsoleDevice::Serial ? "serial" : "virtio"},
        {"disks", disks},
        {"nets", nets},
        {"test_devices", config.test_devices},
    };
    result["vsock"] = config.vsock ? json{{"cid", config.vsock->cid}, {"socket", config.vsock->socket_path}} : json();
    return result;
}

}  // namespace

api::VmState Machine::state_locked() const {
    if (stop_ || stopping_) return api::VmState::Stopping;
    if (paused_) return api::VmState::Paused;
    if (asleep_ || sleep_requested_) return api::VmState::Asleep;
    return api::VmState::Running;
}

api::VmState Machine::state() {
    std::lock_guard lock(stop_mutex_);
    return state_locked();
}

void Machine::note_running() {
    if (restored_from_.empty() || restore_to_running_us_.load() >= 0) return;
    auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started_);
    restore_to_running_us_.store(took.count());
}

json Machine::info() {
    auto uptime = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_);
    json restore;
    if (!restored_from_.empty()) {
        int64_t us = restore_to_running_us_.load();
        restore = {{"from", restored_from_},
                   {"engine", restored_engine_},
                   {"to_running_ms", us < 0 ? json() : json(static_cast<double>(us) / 1000.0)}};
    }
    return {
        {"restore", restore},
        {"name", config_.name},
        {"pid", ::getpid()},
        {"state", api::to_string(state())},
        {"engine", engine_->name()},
        {"vcpus", engine_->vcpu_count()},
        {"uptime_ms", uptime.count()},
        {"guest_time_ms", clock_.now_ns() / 1'000'000},
        {"config", config_json(config_)},
    };
}

VmMetrics Machine::collect_metrics() {
    VmMetrics metrics;
    metrics.name = config_.name;
    metrics.engine = std::string(engine_->name());
    metrics.state = std::string(api::to_string(state()));
    metrics.uptime_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_).count();
    metrics.guest_time_ms = clock_.now_ns() / 1'000'000;
    metrics.vcpus = engine_->metrics();
    collect_accesses(board_->pio(), "pio", metrics.devices);
    collect_accesses(board_->mmio(), "mmio", metrics.devices);
    metrics.interrupts = board_->interrupt_counts();
    return metrics;
}

json Machine::metrics() { return metrics_json(collect_metrics()); }

std::string Machine::metrics_prometheus() { return strata::metrics_prometheus(collect_metrics()); }

api::ApiResult<> Machine::pause() {
    return on_main_loop([this] { return pause_now(); });
}

api::ApiResult<> Machine::resume() {
    return on_main_loop([this] { return resume_now(); });
}

api::ApiResult<> Machine::stop(std::chrono::milliseconds deadline) {
    return on_main_loop([this, deadline] { return stop_now(deadline); });
}

// Not through the main loop: a kill must work even when that loop is busy.
api::ApiResult<> Machine::kill() {
    {
        std::lock_guard lock(stop_mutex_);
        if (stop_) return std::unexpected(conflict(fmt::format("the VM is already stopping: {}", stop_->detail)));
    }
    request_stop({StopKind::Killed, 0, "killed through the control API"});
    return {};
}

api::ApiResult<> Machine::pause_now() {
    {
        std::lock_guard lock(stop_mutex_);
        switch (state_locked()) {
            case api::VmState::Running: break;
            case api::VmState::Paused: return std::unexpected(conflict("the VM is already paused"));
            case api::VmState::Asleep: return std::unexpected(conflict("the guest is asleep (ACPI S3); its vCPUs are already stopped"));
            case api::VmState::Stopping: return std::unexpected(conflict("the VM is stopping"));
        }
        paused_ = true;
    }
    // Every vCPU finishes the instruction (or exit) it is in and its thread ends; then device
    // timers and the guest's clocks stand still.
    engine_->stop();
    engine_->join();
    clock_.pause();
    if (auto r = engine_->freeze_time(); !r)
        warn(fmt::format("pause: guest time will jump on resume: {}", r.error().message));
    return {};
}

api::ApiResult<> Machine::resume_now() {
    {
        std::lock_guard lock(stop_mutex_);
        if (stop_ || stopping_) return std::unexpected(conflict("the VM is stopping"));
        if (!paused_) return std::unexpected(conflict("the VM is not paused"));
        paused_ = false;
    }
    if (auto r = engine_->thaw_time(); !r)
        warn(fmt::format("resume: guest time jumps over the pause: {}", r.error().message));
    clock_.resume();
    engine_->rearm();
    if (auto r = engine_->start(*platform_); !r) {
        request_stop({StopKind::HostError, 0, context(r.error(), "resume").error().message});
        return std::unexpected(api::ApiError{500, r.error().message});
    }
    note_running();
    return {};
}

api::ApiResult<> Machine::stop_now(std::chrono::milliseconds deadline) {
    {
        std::lock_guard lock(stop_mutex_);
        switch (state_locked()) {
            case api::VmState::Running: break;
            case api::VmState::Paused: return std::unexpected(conflict("the VM is paused: resume it first, or kill it"));
            case api::VmState::Asleep: return std::unexpected(conflict("the guest is asleep (ACPI S3): kill it"));
            case api::VmState::Stopping: return std::unexpected(conflict("the VM is already stopping"));
        }
        stopping_ = true;
    }
    stop_deadline_ = timers_.create_timer([this, deadline] {
        request_stop({StopKind::Killed, 0,
                      fmt::format("the guest did not power off within {} ms of the ACPI power button; killed",
                                  deadline.count())});
    });
    stop_deadline_->arm_at(clock_.now_ns() + std::chrono::nanoseconds(deadline).count());
    board_->press_power_button();
    return {};
}

api::ApiResult<> Machine::on_main_loop(std::function<api::ApiResult<>()> task) {
    std::future<api::ApiResult<>> result;
    {
        std::lock_guard lock(tasks_mutex_);
        if (tasks_closed_) return std::unexpected(conflict("the VM is stopping"));
        tasks_.push_back({std::move(task), {}});
        result = tasks_.back().done.get_future();
    }
    attention_.notify();
    return result.get();
}

void Machine::run_main_loop_tasks() {
    for (;;) {
        MainLoopTask task;
        {
            std::lock_guard lock(tasks_mutex_);
            if (tasks_.empty()) return;
            task = std::move(tasks_.front());
            tasks_.pop_front();
        }
        task.done.set_value(task.work());
    }
}

void Machine::close_main_loop_tasks() {
    std::lock_guard lock(tasks_mutex_);
    tasks_closed_ = true;
    for (MainLoopTask& task : tasks_) task.done.set_value(std::unexpected(conflict("the VM is stopping")));
    tasks_.clear();
}

}  // namespace strata
