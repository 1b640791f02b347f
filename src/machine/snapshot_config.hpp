// The VM's configuration in a snapshot's manifest ("machine" in docs/snapshot-format.md), and
// back: what a restore must build again around the saved state (RAM size, vCPUs, the console
// device, the test devices, and each --disk, --net and --vsock as the flag's own text, parsed
// again by the same code as the command line's, so a snapshot is checked like a command line).
// Not carried: --accel, --api-socket and --name, which `strata restore` takes anew.
#pragma once

#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "machine/machine_config.hpp"

namespace strata {

[[nodiscard]] nlohmann::json snapshot_config(const MachineConfig& config);
// Refuses a member missing or of the wrong type, values the command line would refuse, and a
// disk whose image is not the size it had when the snapshot was taken.
[[nodiscard]] Result<MachineConfig> config_from_snapshot(const nlohmann::json& machine);

// The --disk text that gives `disk` (commas doubled).
[[nodiscard]] std::string disk_option_text(const DiskConfig& disk);

}  // namespace strata
