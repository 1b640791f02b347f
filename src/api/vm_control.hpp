// What the control API drives: one running VM. The machine implements it; the API's router
// (api_router.hpp) and its tests' fake call it. Every call may come from any API connection's
// thread; the implementation serialises them.
//
// State machine of a VM as the API sees it: running ⇄ paused, either → stopping → (the process
// ends). A call that does not fit the current state is refused with 409 and the VM keeps going.
#pragma once

#include <chrono>
#include <expected>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace strata::api {

// A refused or failed request: the HTTP status it answers with (4xx: the request; 5xx: the VMM)
// and one line for the user.
struct ApiError {
    int status = 500;
    std::string message;
};

template <class T = void>
using ApiResult = std::expected<T, ApiError>;

enum class VmState { Running, Paused, Asleep, Stopping };

[[nodiscard]] std::string_view to_string(VmState state);

// How a snapshot of a running VM writes its RAM: Background — the VM runs on while its RAM is
// written, stopped only while its vCPUs' and devices' state is taken (needs a userfaultfd, see
// snapshot/background_memory.hpp); Paused — the VM stays stopped until its RAM is written too; Auto
// — Background where the host allows it, else Paused.
enum class SnapshotMode { Auto, Background, Paused };

// "auto", "background" or "paused"; nullopt for anything else.
[[nodiscard]] std::optional<SnapshotMode> snapshot_mode_named(std::string_view name);

class VmControl {
public:
    virtual ~VmControl() = default;

    // {"state", "engine", "uptime_ms", "guest_time_ms", "config": {...}}: see docs/openapi.yaml.
    [[nodiscard]] virtual nlohmann::json info() = 0;
    // Every vCPU stops at an instruction boundary and the device timers with them; guest time
    // stands still until resume().
    [[nodiscard]] virtual ApiResult<> pause() = 0;
    [[nodiscard]] virtual ApiResult<> resume() = 0;
    // Graceful: the ACPI power button, then a kill once `deadline` has passed without a power-off.
    [[nodiscard]] virtual ApiResult<> stop(std::chrono::milliseconds deadline) = 0;
    [[nodiscard]] virtual ApiResult<> kill() = 0;
    // The whole VM into the new directory `path` (absolute, checked by the router; it must not
    // exist): a running VM is paused for it (for all of it or, `mode` permitting, only while the
    // state of its vCPUs and devices is taken) and runs on after; a paused one stays paused.
    // {"path", "mode", "state_bytes", "memory_bytes", "memory_data_bytes", "took_ms", "paused_ms",
    // "notes"}: see docs/openapi.yaml.
    [[nodiscard]] virtual ApiResult<nlohmann::json> snapshot(const std::string& path, SnapshotMode mode) = 0;
    // The VM's counters (machine/vm_metrics.hpp), as JSON and in the Prometheus text format.
    [[nodiscard]] virtual nlohmann::json metrics() = 0;
    [[nodiscard]] virtual std::string metrics_prometheus() = 0;
};

}  // namespace strata::api
