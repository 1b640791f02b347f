// One virtual machine: guest memory, a CPU engine, the PC board, the loaded guest, and the
// console loop that runs until the VM stops.
//
// Lifetime: create() builds everything and loads the guest; run() starts the vCPUs, serves the
// console and signals, and returns the process exit status once every vCPU thread has finished.
// The first stop requested (power-off, reset, debug-exit, guest crash, signal, escape, the API's
// kill) wins.
// Control (--api-socket): the machine is the control API's VmControl. The API's threads hand
// what changes the vCPUs' state (pause, resume, stop) to the thread of run(), which does it
// between two looks at the console, so that the engine is driven from one thread only.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>

#include "api/api_server.hpp"
#include "api/vm_control.hpp"

#include "base/machine_clock.hpp"
#include "bus/machine_control.hpp"
#include "cpu/engine.hpp"
#include "host/event_fd.hpp"
#include "host/signal_fd.hpp"
#include "machine/board.hpp"
#include "machine/machine_config.hpp"
#include "snapshot/snapshot_dir.hpp"

namespace strata {

struct VmMetrics;

// How a VM ended, or why it never started, as one line (or a register dump) on stderr, with
// the prefix every line of Strata's has: "strata: error: " for errors.
void print_stop_reason(const StopReason& reason);

// `strata restore DIR`: the snapshot, and what the command line gives anew.
struct RestoreOptions {
    std::string dir;
    Accel accel = Accel::Auto;
    std::string api_socket;
    std::string name;
    bool paused = false;  // stays paused until the API's resume
    int console_in = 0;
    int console_out = 1;
};

class Machine final : public MachineControl, public api::VmControl {
public:
    // Builds the VM and loads the guest. Fails with a VMM error (status 2) naming the cause, or
    // with the signal that arrived first (SIGINT, SIGTERM, SIGHUP: status 128 + N): signals are
    // taken from the start, while images load.
    static std::expected<std::unique_ptr<Machine>, StopReason> create(const MachineConfig& config);
    // Builds the VM a snapshot directory holds (machine_snapshot.cpp): its RAM mapped from the
    // snapshot, every vCPU's and device's state set; run() then continues it. Everything is
    // checked before any vCPU runs: a snapshot that is corrupt, truncated, of another version or
    // that does not fit fails with one line (status 2).
    static std::expected<std::unique_ptr<Machine>, StopReason> restore(const RestoreOptions& options);
    ~Machine() override;

    // Runs the guest to its end; returns the exit status (see StopReason::exit_status).
    int run();

    void request_stop(StopReason reason) override;
    void request_sleep() override;
    void request_wake() override;

    // api::VmControl, called on the API's threads.
    [[nodiscard]] nlohmann::json info() override;
    [[nodiscard]] api::ApiResult<> pause() override;
    [[nodiscard]] api::ApiResult<> resume() override;
    [[nodiscard]] api::ApiResult<> stop(std::chrono::milliseconds deadline) override;
    [[nodiscard]] api::ApiResult<> kill() override;
    [[nodiscard]] api::ApiResult<nlohmann::json> snapshot(const std::string& path, api::SnapshotMode mode) override;
    [[nodiscard]] nlohmann::json metrics() override;
    [[nodiscard]] std::string metrics_prometheus() override;

private:
    Machine(MachineConfig config, GuestMemory memory, EventFd attention, EventFd console_room, SignalFd signals)
        : config_(std::move(config)),
          memory_(std::move(memory)),
          attention_(std::move(attention)),
          console_room_(std::move(console_room)),
          signals_(std::move(signals)) {}
    // Writes the firmware tables and the kernel into RAM; returns the boot vCPU's entry state.
    [[nodiscard]] Result<CpuState> load_guest();
    // Turns a pending SIGINT/SIGTERM/SIGHUP into the stop request.
    void take_signal();
    // True once a stop is requested; first takes a pending signal.
    bool stop_pending();
    // The stop to report when creation failed with `error`: a signal that came first, else `error`.
    StopReason creation_failure(const Error& error);
    void serve_console();
    // Hands pending console input to COM1, as much as it takes.
    void forward_console_input();
    // After a wake from S3: the boot CPU restarts in real mode at the FACS waking vector.
    [[nodiscard]] Result<void> resume(const Platform& platform);

    // Runs `task` on the thread of run() and returns its result; refused once run() has stopped
    // taking tasks (the VM is ending).
    [[nodiscard]] api::ApiResult<> on_main_loop(std::function<api::ApiResult<>()> task);
    void run_main_loop_tasks();
    void close_main_loop_tasks();
    // On the thread of run().
    [[nodiscard]] api::ApiResult<> pause_now();
    [[nodiscard]] api::ApiResult<> resume_now();
    [[nodiscard]] api::ApiResult<> stop_now(std::chrono::milliseconds deadline);
    // A snapshot in its parts (machine_snapshot.cpp): the API's thread creates the directory and
    // protects RAM; snapshot_now() takes the state with the VM stopped, on the thread of run();
    // the API's thread then writes RAM while the VM runs on.
    struct SnapshotJob;
    [[nodiscard]] api::ApiResult<> snapshot_now(SnapshotJob& job);
    // The vCPUs', interrupt controllers' and devices' state; stopped and quiesced.
    [[nodiscard]] Result<snapshot::SnapshotContent> capture_state();
    // stop_mutex_ held.
    [[nodiscard]] api::VmState state_locked() const;
    [[nodiscard]] api::VmState state();
    [[nodiscard]] VmMetrics collect_metrics();
    // The vCPUs have just started (run(), resume): a restored machine notes how long that took.
    void note_running();

    MachineConfig config_;
    GuestMemory memory_;
    EventFd attention_;
    EventFd console_room_;  // COM1 can take input again
    SignalFd signals_;
    // Console input read from the host but not yet taken by COM1. While it is not empty a pipe is
    // not read (back-pressure); a terminal is, up to kMaxPendingInput, so that Ctrl-A x works.
    static constexpr size_t kMaxPendingInput = 64 * 1024;
    std::vector<uint8_t> pending_input_;
    // The machine's one clock and timer service: made before the engine and the board, whose
    // devices arm timers on it, and destroyed after both (members go in reverse order).
    MachineClock clock_;
    TimerService timers_{clock_};
    std::unique_ptr<CpuEngine> engine_;
    std::unique_ptr<Board> board_;

    std::mutex stop_mutex_;
    std::optional<StopReason> stop_;
    bool sleep_requested_ = false;  // S3 entered; vCPUs are stopping or stopped
    bool wake_requested_ = false;   // a wake event arrived while asleep
    bool asleep_ = false;           // S3: the vCPUs have stopped; a wake event restarts them
    bool paused_ = false;           // the API paused the VM: vCPUs joined, the clock stopped
    bool stopping_ = false;         // the API pressed the power button; stop_deadline_ is armed

    struct MainLoopTask {
        std::function<api::ApiResult<>()> work;
        std::promise<api::ApiResult<>> done;
    };
    std::mutex tasks_mutex_;
    std::deque<MainLoopTask> tasks_;
    bool tasks_closed_ = false;
    std::optional<Platform> platform_;  // what the vCPUs run on, from run() on
    std::unique_ptr<TimerService::Timer> stop_deadline_;
    std::mutex snapshot_mutex_;
    bool snapshot_busy_ = false;  // a snapshot is being taken or written: one at a time
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    // A restored machine: the snapshot it came from, the engine that took it, and how long from
    // the restore's start (started_) until its vCPUs ran (-1 until they have).
    std::string restored_from_;
    std::string restored_engine_;
    std::atomic<int64_t> restore_to_running_us_{-1};
    // Last: destroyed first, so no API call reaches a machine half gone.
    std::unique_ptr<api::ApiServer> api_server_;
};

}  // namespace strata
