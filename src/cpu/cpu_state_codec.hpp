// The snapshot encoding of a vCPU's backend-neutral state (docs/snapshot-format.md, "vcpu/N"):
// what either engine reports through vcpu_state() and takes through set_vcpu_state(), so that a
// snapshot taken under one engine restores under the other.
#pragma once

#include "base/state_stream.hpp"
#include "cpu/cpu_state.hpp"

namespace strata {

// Writes the whole state; `state.extended` must be present (an engine's report).
void encode_cpu_state(StateWriter& out, const CpuState& state);
// Reads it back, refusing what no vCPU could hold (a bad MP state, more MSRs than kSavedMsrs, an
// MSR not among them, a boolean that is not 0 or 1); the engine checks the rest as it applies it.
[[nodiscard]] CpuState decode_cpu_state(StateReader& in);

}  // namespace strata
