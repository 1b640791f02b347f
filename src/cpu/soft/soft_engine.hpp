// The soft engine: Strata's own x86-64 CPU, for hosts where KVM cannot run guest kernel mode
// natively. Every guest instruction runs in software over the same board, buses and exits as
// the kvm engine.
#pragma once

#include <memory>

#include "base/machine_clock.hpp"
#include "cpu/engine.hpp"

namespace strata::soft {

class SoftEngine;

// Creates the soft engine for `cpus` vCPUs over `memory`; its local-APIC timers and TSC run on
// `timers` (and its clock).
Result<std::unique_ptr<CpuEngine>> create_soft_engine(const GuestMemory& memory, unsigned cpus, TimerService& timers);

}  // namespace strata::soft
