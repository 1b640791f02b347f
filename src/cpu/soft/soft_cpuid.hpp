// The soft CPU's CPUID: one coherent feature set for what this engine implements, answered
// through the engine-neutral table (cpu/cpuid.hpp) and its lookup rules.
//
// State:    none: the table is built per vCPU (APIC ID, vCPU count) by soft_cpuid_table(); the
//           engine keeps it and points Cpu::cpuid at it.
// Features: GenuineIntel, family 6, brand string "Strata soft CPU"; x86-64-v2 (SSE to SSE4.2,
//           SSSE3, POPCNT, CMPXCHG16B, LAHF/SAHF in 64-bit mode) with x87, MMX, FXSR, CMOV, CX8,
//           LZCNT; TSC (invariant, 1 GHz: leaves 0x15 and 0x16), RDTSCP, MSR, PAE, PSE, PSE-36,
//           PGE, PAT, MTRR, NX, SYSCALL, SYSENTER, DE, CLFLUSH, x2APIC, TSC-deadline, ARAT,
//           ERMS (a hint), ARCH_CAPABILITIES, the hypervisor bit; caches (leaves 2, 4, 0x80000006),
//           topology (leaves 0xb, 0x1f), 40 physical and 48 linear address bits. The parts that
//           follow state (APIC enabled in IA32_APIC_BASE, MISC_ENABLE's CPUID limit) are applied
//           at each CPUID.
// Not advertised (and so #UD or #GP where they would appear): XSAVE/AVX, SMEP/SMAP, PCID,
//           INVPCID, FSGSBASE, RDRAND/RDSEED, RDPID, MONITOR/MWAIT, VME, MCE/MCA, PCLMULQDQ,
//           AES, MOVBE, BMI, 1 GiB pages, the PMU (leaf 0xa), SPEC_CTRL.
// Spec:     Intel SDM vol. 2A "CPUID—CPU Identification"; vol. 3A §2.5 (CR4 bits and their CPUID).
#pragma once

#include <cstdint>

#include "cpu/cpuid.hpp"
#include "cpu/soft/cpu.hpp"

namespace strata::soft {

// The feature bits other parts of the soft CPU test (CPUID.1 ECX/EDX, CPUID.0x80000001).
namespace cpuid_bit {
constexpr uint32_t Leaf1EdxApic = 1u << 9;
}  // namespace cpuid_bit

// The table of vCPU `apic_id` of `cpus` (the shared policy of cpu/cpuid.hpp applied).
[[nodiscard]] CpuidTable soft_cpuid_table(unsigned apic_id, unsigned cpus);

// The CR4 bits software may set on this CPU (SDM vol. 3A §2.5: a bit whose feature CPUID does
// not report is reserved, and setting it raises #GP).
[[nodiscard]] uint64_t soft_cr4_allowed();

// CPUID as the guest sees it now: Cpu::cpuid's table (a one-vCPU table if the engine set none),
// with the bits that follow the CPU's state.
[[nodiscard]] CpuidLeaf soft_cpuid(const Cpu& cpu, uint32_t function, uint32_t index);

}  // namespace strata::soft
