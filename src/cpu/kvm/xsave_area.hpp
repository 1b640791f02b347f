// The XSAVE area as KVM_GET_XSAVE(2) and KVM_SET_XSAVE move a vCPU's FPU state: the standard
// (non-compacted) format of the Intel SDM vol. 1 §13.4, whose first 512 bytes are the FXSAVE
// legacy region in its 64-bit layout (§10.5.1, table 10-2) and whose 64-byte header at 512 says in
// XSTATE_BV which state components hold values (§13.4.2).
//
// Why not KVM_GET_FPU/KVM_SET_FPU: they copy the legacy region raw, without the header. While
// XSTATE_BV marks x87 or SSE state initial (a fresh vCPU; a guest that left every XMM register
// zero), the processor loads that component's initial values on XRSTOR and ignores the area
// (§13.8.1), so registers KVM_SET_FPU wrote never reach the guest and KVM_GET_FPU reads stale
// bytes. Writing the header with x87 and SSE present makes set values always take.
// Missing: the AVX and later components; they stay as KVM had them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "cpu/cpu_state.hpp"

namespace strata::kvm::xsave {

// Legacy region and header: what an area must hold for read_fpu() and write_fpu().
constexpr size_t kLegacyAndHeaderSize = 512 + 64;
// KVM_GET_XSAVE's fixed struct kvm_xsave; KVM_CAP_XSAVE2 may ask for more.
constexpr size_t kKvmAreaSize = 4096;

// State-component bits of XSTATE_BV and XCR0 (SDM vol. 1 §13.1).
constexpr uint64_t kX87 = 1u << 0, kSse = 1u << 1, kAvx = 1u << 2;

// The x87 and SSE state in `area` (at least kLegacyAndHeaderSize bytes). A component that
// XSTATE_BV marks initial reads as its initial configuration (SDM vol. 1 §13.6), whatever bytes
// the area holds for it; MXCSR is read as it stands, since XSAVE writes it whenever it saves SSE
// or AVX state, in use or not (§13.7).
[[nodiscard]] FpuState read_fpu(std::span<const uint8_t> area);

// Writes `fpu` into the legacy region of `area` (at least kLegacyAndHeaderSize bytes) and marks
// x87 and SSE present in XSTATE_BV. MXCSR_MASK, the reserved bytes and the other components stay
// as they are, so that `area` should come from KVM_GET_XSAVE of the same vCPU.
void write_fpu(const FpuState& fpu, std::span<uint8_t> area);

}  // namespace strata::kvm::xsave
