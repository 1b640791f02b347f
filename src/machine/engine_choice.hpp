// `--accel`: which CPU engine runs the guest, and why.
#pragma once

#include <functional>
#include <memory>
#include <string_view>

#include "base/machine_clock.hpp"
#include "cpu/engine.hpp"
#include "machine/machine_config.hpp"

namespace strata {

// Creates the engine `accel` names; the soft engine's timers run on `timers`. `auto` takes kvm
// where the host runs guest kernel mode natively (VT-x/AMD-V) and the soft engine elsewhere (PVM,
// no VT-x/AMD-V, no usable /dev/kvm), saying why through `note` in one line. `kvm` on a host
// where guest kernel code is emulated by the host, and slow, says so through `warn` once per user
// and host.
Result<std::unique_ptr<CpuEngine>> create_engine(Accel accel, const GuestMemory& memory, unsigned cpus,
                                                 TimerService& timers,
                                                 const std::function<void(std::string_view)>& warn,
                                                 const std::function<void(std::string_view)>& note);

}  // namespace strata
