// `--accel`: which CPU engine runs the guest, and why.
#pragma once

#include <functional>
#include <memory>
#include <string_view>

#include "cpu/engine.hpp"
#include "machine/machine_config.hpp"

namespace strata {

// Creates the engine `accel` names. `auto` takes kvm where the host runs guest kernel mode
// natively (VT-x/AMD-V); on other hosts it still runs kvm until the soft engine exists, where
// guest kernel code is emulated by the host and slow, and says so through `warn` once per user
// and host.
Result<std::unique_ptr<CpuEngine>> create_engine(Accel accel, const GuestMemory& memory, unsigned cpus,
                                                 const std::function<void(std::string_view)>& warn);

}  // namespace strata
