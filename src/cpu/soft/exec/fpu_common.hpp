// What the x87, MMX and SSE families share: whether an instruction may use the floating-point
// units now (CR0.EM/MP/TS/NE, CR4.OSFXSR/OSXMMEXCPT), the status and control bits of the x87 and
// of MXCSR, and MMX's view of the x87 registers.
//
// Spec: Intel SDM vol. 3A §2.5 (CR0 bits) and table 2-2 "Action Taken By x87 FPU Instructions for
//       Different Combinations of EM, MP, and TS"; vol. 1 §8.1.3 (FSW), §8.1.5 (FCW), §8.6 (x87
//       exception synchronization), §9.5 (MMX and the x87 state), §10.2.3 (MXCSR), §11.5 (SIMD
//       floating-point exceptions); vol. 3B ch. 23 (exception conditions of legacy SIMD/MMX
//       instructions).
// Missing:  with CR0.NE = 0 a pending x87 exception is not reported (no FERR#/IRQ13 wiring): the
//           instruction runs as if it were masked.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>

#include "cpu/soft/cpu.hpp"

namespace strata::soft::fpu {

// CR0 bits the floating-point units check (SDM vol. 3A §2.5); cpu_state.hpp names those the loaders set.
constexpr uint64_t kCr0Mp = 1ull << 1, kCr0Em = 1ull << 2, kCr0Ts = 1ull << 3, kCr0Ne = 1ull << 5;

// x87 status word (SDM vol. 1 §8.1.3, figure 8-4).
namespace fsw {
constexpr uint16_t IE = 1 << 0, DE = 1 << 1, ZE = 1 << 2, OE = 1 << 3, UE = 1 << 4, PE = 1 << 5, SF = 1 << 6,
                   ES = 1 << 7, C0 = 1 << 8, C1 = 1 << 9, C2 = 1 << 10, TOP = 7 << 11, C3 = 1 << 14, B = 1 << 15;
constexpr uint16_t kExceptions = IE | DE | ZE | OE | UE | PE;
constexpr uint16_t kConditions = C0 | C1 | C2 | C3;
}  // namespace fsw

// x87 control word (§8.1.5): exception masks in the same bit positions as the FSW flags.
namespace fcw {
constexpr uint16_t kMasks = 0x3f, PC = 3 << 8, RC = 3 << 10, X = 1 << 12;
constexpr uint16_t kReserved1 = 1 << 6;  // reads as 1 (FLDCW sets it)
constexpr uint16_t kWritable = kMasks | PC | RC | X;
}  // namespace fcw

// MXCSR (§10.2.3, figure 10-3).
namespace mxcsr {
constexpr uint32_t IE = 1 << 0, DE = 1 << 1, ZE = 1 << 2, OE = 1 << 3, UE = 1 << 4, PE = 1 << 5, DAZ = 1 << 6;
constexpr uint32_t kFlags = 0x3f, kMasks = 0x3f << 7, RC = 3 << 13, FTZ = 1 << 15;
constexpr uint32_t kMaskBitsShift = 7;
// MXCSR_MASK: every defined bit, DAZ included (§11.6.6); LDMXCSR/FXRSTOR #GP on the others.
constexpr uint32_t kSupported = 0xffff;
constexpr uint32_t kReset = 0x1f80;
}  // namespace mxcsr

// --- Who may use the units now ---

// x87 instructions: #NM while CR0.EM or CR0.TS is set (table 2-2).
inline void x87_check_available(const Cpu& cpu) {
    if (cpu.cr0 & (kCr0Em | kCr0Ts)) raise_nm();
}

// A waiting x87 instruction (all but FNINIT, FNCLEX, FNSTCW, FNSTSW, FNSTENV, FNSAVE; §8.6) first
// reports an unmasked exception a previous one left pending: #MF with CR0.NE.
inline void x87_check_pending(const Cpu& cpu) {
    if ((cpu.x87.fsw & fsw::ES) && (cpu.cr0 & kCr0Ne)) raise_fault(vec::MF);
}

inline void x87_prologue(const Cpu& cpu) {
    x87_check_available(cpu);
    x87_check_pending(cpu);
}

// MMX instructions (and the SSE ones on MMX registers): #UD with CR0.EM, #NM with CR0.TS, then a
// pending x87 exception (SDM vol. 3A §12.5; vol. 3B ch. 23 "Exception Conditions for Legacy
// SIMD/MMX Instructions").
inline void mmx_prologue(const Cpu& cpu) {
    if (cpu.cr0 & kCr0Em) raise_ud();
    if (cpu.cr0 & kCr0Ts) raise_nm();
    x87_check_pending(cpu);
}

// SSE-SSE4.2 instructions on XMM registers: #UD with CR0.EM or without CR4.OSFXSR, #NM with CR0.TS
// (SDM vol. 3A §13.1, §13.2).
inline void sse_prologue(const Cpu& cpu) {
    if ((cpu.cr0 & kCr0Em) || !(cpu.cr4 & cr4::OSFXSR)) raise_ud();
    if (cpu.cr0 & kCr0Ts) raise_nm();
}

// An unmasked SIMD floating-point exception: #XM with CR4.OSXMMEXCPT, else #UD (§13.2).
[[noreturn]] inline void raise_simd_fp(const Cpu& cpu) {
    if (cpu.cr4 & cr4::OSXMMEXCPT) raise_fault(vec::XM);
    raise_ud();
}

// --- The x87 status word's summary bits ---

// ES and B follow the unmasked exception flags (§8.1.3.1): FLDCW, FLDENV and every operation that
// sets a flag recompute them.
inline void update_summary(X87State& x87) {
    if (x87.fsw & fsw::kExceptions & ~x87.fcw) x87.fsw = static_cast<uint16_t>(x87.fsw | fsw::ES | fsw::B);
    else x87.fsw = static_cast<uint16_t>(x87.fsw & ~(fsw::ES | fsw::B));
}

// --- MMX registers: MMi is the 64-bit significand of physical x87 register Ri (§9.5) ---

using Mm = std::array<uint8_t, 8>;

inline Mm read_mmx(const Cpu& cpu, unsigned reg) {
    Mm value;
    std::memcpy(value.data(), &cpu.x87.st[reg & 7], 8);
    return value;
}

// Writing MMi sets the register's exponent and sign (bits 64-79) to all ones (§9.5.1).
inline void write_mmx(Cpu& cpu, unsigned reg, const Mm& value) {
    static constexpr uint8_t kOnes[2] = {0xff, 0xff};
    auto* bytes = reinterpret_cast<uint8_t*>(&cpu.x87.st[reg & 7]);
    std::memcpy(bytes, value.data(), 8);
    std::memcpy(bytes + 8, kOnes, 2);
}

// Every MMX instruction but EMMS: TOP = 0 and all registers tagged valid (§9.5.1, table 9-2).
inline void mmx_transition(Cpu& cpu) {
    cpu.x87.fsw = static_cast<uint16_t>(cpu.x87.fsw & ~fsw::TOP);
    cpu.x87.ftw = 0;
}

}  // namespace strata::soft::fpu
