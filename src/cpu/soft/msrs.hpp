// The soft CPU's model-specific registers (RDMSR/WRMSR) and its time-stamp counter.
//
// State:    Cpu::msr (and EFER, FS/GS base in the segment caches); nothing of its own.
// Features: IA32_TSC (a write moves the offset), IA32_APIC_BASE, IA32_FEATURE_CONTROL (locked,
//           no VMX), IA32_BIOS_SIGN_ID, IA32_ARCH_CAPABILITIES (not vulnerable to the speculative
//           execution attacks an interpreter cannot have), MTRRcap, the fixed and variable MTRRs
//           and MTRRdefType with their memory-type and reserved-bit #GPs, PAT, MISC_ENABLE,
//           DEBUGCTL (zero), SYSENTER_CS/ESP/EIP, IA32_TSC_DEADLINE, EFER (SCE, LME, LMA, NXE;
//           LME fixed while paging), STAR/LSTAR/CSTAR/SFMASK, FS_BASE/GS_BASE/KERNEL_GS_BASE
//           (canonical), TSC_AUX, IA32_MCG_CAP (no banks) and IA32_MCG_STATUS (always clear).
//           Every other index raises #GP, as an absent MSR does.
// APIC:     IA32_APIC_BASE, IA32_TSC_DEADLINE, the x2APIC range 0x800-0x8ff and CR8 belong to
//           Cpu::lapic; a CPU without one (unit tests) keeps APIC base and deadline itself, and
//           x2APIC MSRs raise #GP. IA32_TSC writes move the APIC's TSC offset along.
// Missing:  MCA banks and machine checks (CPUID says neither MCE nor MCA; the two global MCA
//           MSRs answer anyway, as under QEMU and KVM, because software reads MCG_CAP to count
//           banks: kvm-unit-tests' msr), performance counters, SPEC_CTRL/PRED_CMD (not advertised).
// Spec:     Intel SDM vol. 4 (MSR tables), vol. 3A §11.11 (MTRRs), §11.12 (PAT), §17.17 (TSC).
#pragma once

#include <cstdint>
#include <optional>

#include "cpu/soft/cpu.hpp"

namespace strata::soft {

namespace msr_index {
constexpr uint32_t Tsc = 0x10, ApicBase = 0x1b, FeatureControl = 0x3a, BiosSignId = 0x8b, MtrrCap = 0xfe,
                   ArchCapabilities = 0x10a, SysenterCs = 0x174, SysenterEsp = 0x175, SysenterEip = 0x176,
                   McgCap = 0x179, McgStatus = 0x17a, MiscEnable = 0x1a0, DebugCtl = 0x1d9, MtrrPhysBase0 = 0x200, MtrrPhysMask7 = 0x20f,
                   MtrrFix64k = 0x250, MtrrFix16k80000 = 0x258, MtrrFix16kA0000 = 0x259, MtrrFix4kC0000 = 0x268,
                   MtrrFix4kF8000 = 0x26f, Pat = 0x277, MtrrDefType = 0x2ff, TscDeadline = 0x6e0,
                   X2apicFirst = 0x800, X2apicLast = 0x8ff, Efer = 0xc000'0080, Star = 0xc000'0081,
                   Lstar = 0xc000'0082, Cstar = 0xc000'0083, Sfmask = 0xc000'0084, FsBase = 0xc000'0100,
                   GsBase = 0xc000'0101, KernelGsBase = 0xc000'0102, TscAux = 0xc000'0103;
}  // namespace msr_index

// The guest's TSC: a 1 GHz counter (CPUID 0x15/0x16 say so): Cpu::clock's nanoseconds (the
// host's CLOCK_MONOTONIC without one) plus Cpu::msr.tsc_offset.
[[nodiscard]] uint64_t guest_tsc(const Cpu& cpu);

// RDMSR: the value, or nullopt for #GP(0).
[[nodiscard]] std::optional<uint64_t> read_msr(Cpu& cpu, uint32_t index);
// WRMSR: false for #GP(0) (unknown MSR, reserved bits, an invalid value). Ends the block when
// decoding or the mode may change (EFER, FS/GS base).
[[nodiscard]] bool write_msr(Cpu& cpu, uint32_t index, uint64_t value);

// CR8: the local APIC's TPR[7:4] (SDM vol. 3A §11.8.6.1); 0 and ignored without one.
[[nodiscard]] uint64_t read_cr8(const Cpu& cpu);
void write_cr8(Cpu& cpu, uint64_t value);

}  // namespace strata::soft
