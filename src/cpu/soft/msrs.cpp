#include "cpu/soft/msrs.hpp"

#include <ctime>

#include "base/machine_clock.hpp"
#include "devices/irqchip/local_apic.hpp"
#include "memory/pc_layout.hpp"

namespace strata::soft {

namespace {

constexpr unsigned kPhysicalAddressBits = pc::kPhysicalAddressBits;  // CPUID 0x80000008 EAX[7:0]
constexpr uint64_t kPhysicalMask = (1ull << kPhysicalAddressBits) - 1;

// IA32_MTRRCAP: 8 variable ranges, fixed ranges, write-combining; no SMRR (SDM vol. 3A §11.11.1).
constexpr uint64_t kMtrrCap = 8 | (1u << 8) | (1u << 10);
// IA32_BIOS_SIGN_ID: microcode revision 1 in bits 63:32, what KVM and QEMU report.
constexpr uint64_t kMicrocodeRevision = 1ull << 32;
// IA32_FEATURE_CONTROL: locked, VMX and SMX off (what firmware leaves without VMX).
constexpr uint64_t kFeatureControlLocked = 1;
// IA32_ARCH_CAPABILITIES (SDM vol. 4 table 2-2): an interpreter executes nothing speculatively, so
// it is immune to what these bits deny: RDCL_NO, SKIP_L1DFL_VMENTRY, SSB_NO, MDS_NO,
// PSCHANGE_MC_NO, TAA_NO, SBDR_SSDP_NO, FBSDP_NO, PSDP_NO, BHI_NO, PBRSB_NO, GDS_NO, RFDS_NO,
// ITS_NO (bit 62, indirect target selection). Saying so spares the guest its mitigations
// (page-table isolation above all; ITS_NO the return thunk every kernel RET would jump through).
constexpr uint64_t kArchCapabilities = (1u << 0) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 8) |
                                       (1u << 13) | (1u << 14) | (1u << 15) | (1u << 20) | (1u << 24) |
                                       (1u << 26) | (1u << 27) | (1ull << 62);
// IA32_MCG_CAP (SDM vol. 3B, "Machine-Check Architecture", the IA32_MCG_CAP MSR): no
// error-reporting banks, no IA32_MCG_CTL, no extended state; a bank count of 0 tells software
// that there is nothing to set up.
constexpr uint64_t kMcgCap = 0;
// IA32_APIC_BASE bits (SDM vol. 3A §11.4.4, §11.12.1).
constexpr uint64_t kApicBsp = 1u << 8, kApicExtd = 1u << 10, kApicEnable = 1u << 11;
// IA32_DEBUGCTL: LBR and BTF are accepted and read back as 0 (neither is implemented).
constexpr uint64_t kDebugCtlAccepted = 3;

constexpr uint64_t kEferWritable = efer::SCE | efer::LME | efer::NXE;

// Guest nanoseconds: the machine clock (paused with the VM), or the host's CLOCK_MONOTONIC for a
// CPU without one (unit tests).
int64_t now_ns(const Cpu& cpu) {
    if (cpu.clock) return cpu.clock->now_ns();
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Memory types an MTRR may hold (SDM vol. 3A §11.11.2.1, table 11-8): UC, WC, WT, WP, WB.
bool valid_mtrr_type(uint64_t type) { return type == 0 || type == 1 || type == 4 || type == 5 || type == 6; }
// PAT entries may also be UC- (7) (SDM vol. 3A §11.12.2, table 11-10).
bool valid_pat_type(uint64_t type) { return valid_mtrr_type(type) || type == 7; }

bool every_byte(uint64_t value, bool (*valid)(uint64_t)) {
    for (unsigned i = 0; i < 8; ++i)
        if (!valid((value >> (8 * i)) & 0xff)) return false;
    return true;
}

// The fixed-range MTRRs in the order of Cpu::msr.mtrr_fixed (SDM vol. 3A §11.11.2.2).
std::optional<unsigned> fixed_mtrr_slot(uint32_t index) {
    if (index == msr_index::MtrrFix64k) return 0;
    if (index == msr_index::MtrrFix16k80000) return 1;
    if (index == msr_index::MtrrFix16kA0000) return 2;
    if (index >= msr_index::MtrrFix4kC0000 && index <= msr_index::MtrrFix4kF8000)
        return 3 + (index - msr_index::MtrrFix4kC0000);
    return std::nullopt;
}

bool valid_variable_mtrr(uint32_t index, uint64_t value) {
    if ((index & 1) == 0)  // IA32_MTRR_PHYSBASEn: type, reserved 11:8, base
        return valid_mtrr_type(value & 0xff) && (value & 0xf00) == 0 && (value & ~kPhysicalMask) == 0;
    return (value & 0x7ff) == 0 && (value & ~kPhysicalMask) == 0;  // IA32_MTRR_PHYSMASKn
}

// IA32_APIC_BASE without a local APIC behind it: reserved bits and the mode transitions of
// SDM vol. 3A §11.12.5 (figure 11-26).
bool valid_apic_base(uint64_t old_value, uint64_t value) {
    uint64_t reserved = ~(kPhysicalMask & ~0xfffull) & ~(kApicBsp | kApicExtd | kApicEnable);
    if (value & reserved) return false;
    bool enabled = value & kApicEnable, x2apic = value & kApicExtd;
    bool was_enabled = old_value & kApicEnable, was_x2apic = old_value & kApicExtd;
    if (x2apic && !enabled) return false;                   // invalid state
    if (was_x2apic && was_enabled && enabled && !x2apic) return false;  // x2APIC → xAPIC
    if (!was_enabled && x2apic) return false;               // disabled → x2APIC
    return true;
}

bool is_apic_msr(uint32_t index) {
    return index == msr_index::ApicBase || index == msr_index::TscDeadline ||
           (index >= msr_index::X2apicFirst && index <= msr_index::X2apicLast);
}

}  // namespace

uint64_t guest_tsc(const Cpu& cpu) { return static_cast<uint64_t>(now_ns(cpu)) + static_cast<uint64_t>(cpu.msr.tsc_offset); }

uint64_t read_cr8(const Cpu& cpu) { return cpu.lapic ? cpu.lapic->cr8() : 0; }

void write_cr8(Cpu& cpu, uint64_t value) {
    if (cpu.lapic) cpu.lapic->set_cr8(value);
}

std::optional<uint64_t> read_msr(Cpu& cpu, uint32_t index) {
    using namespace msr_index;
    if (is_apic_msr(index)) {
        if (cpu.lapic) return cpu.lapic->read_msr(index);
        // Without a local APIC (unit tests): the CPU keeps the two MSRs; x2APIC raises #GP.
        if (index == ApicBase) return cpu.msr.apic_base;
        if (index == TscDeadline) return cpu.msr.tsc_deadline;
        return std::nullopt;
    }
    if (index >= MtrrPhysBase0 && index <= MtrrPhysMask7) return cpu.msr.mtrr_var[index - MtrrPhysBase0];
    if (auto slot = fixed_mtrr_slot(index)) return cpu.msr.mtrr_fixed[*slot];
    switch (index) {
        case Tsc: return guest_tsc(cpu);
        case FeatureControl: return kFeatureControlLocked;
        case BiosSignId: return kMicrocodeRevision;
        case MtrrCap: return kMtrrCap;
        case ArchCapabilities: return kArchCapabilities;
        case SysenterCs: return cpu.msr.sysenter_cs;
        case SysenterEsp: return cpu.msr.sysenter_esp;
        case SysenterEip: return cpu.msr.sysenter_eip;
        case McgCap: return kMcgCap;
        case McgStatus: return 0;
        case MiscEnable: return cpu.msr.misc_enable;
        case DebugCtl: return 0;
        case Pat: return cpu.msr.pat;
        case MtrrDefType: return cpu.msr.mtrr_def_type;
        case Efer: return cpu.efer;
        case Star: return cpu.msr.star;
        case Lstar: return cpu.msr.lstar;
        case Cstar: return cpu.msr.cstar;
        case Sfmask: return cpu.msr.sfmask;
        case FsBase: return cpu.seg[FS].base;
        case GsBase: return cpu.seg[GS].base;
        case KernelGsBase: return cpu.msr.kernel_gs_base;
        case TscAux: return cpu.msr.tsc_aux;
        default: return std::nullopt;
    }
}

bool write_msr(Cpu& cpu, uint32_t index, uint64_t value) {
    using namespace msr_index;
    if (is_apic_msr(index)) {
        if (cpu.lapic) {
            if (!cpu.lapic->write_msr(index, value)) return false;
            // The CPU's copy decides whether the xAPIC page decodes and CPUID.1:EDX.APIC.
            if (index == ApicBase) cpu.msr.apic_base = cpu.lapic->apic_base();
            if (index == TscDeadline) cpu.msr.tsc_deadline = value;
            return true;
        }
        if (index == ApicBase) {
            if (!valid_apic_base(cpu.msr.apic_base, value)) return false;
            cpu.msr.apic_base = value;
            return true;
        }
        if (index == TscDeadline) {
            cpu.msr.tsc_deadline = value;
            return true;
        }
        return false;  // x2APIC registers need the local APIC
    }
    if (index >= MtrrPhysBase0 && index <= MtrrPhysMask7) {
        if (!valid_variable_mtrr(index, value)) return false;
        cpu.msr.mtrr_var[index - MtrrPhysBase0] = value;
        return true;
    }
    if (auto slot = fixed_mtrr_slot(index)) {
        if (!every_byte(value, valid_mtrr_type)) return false;
        cpu.msr.mtrr_fixed[*slot] = value;
        return true;
    }
    switch (index) {
        case Tsc:
            // The guest sets the counter's value now; it keeps counting from there.
            cpu.msr.tsc_offset = static_cast<int64_t>(value - static_cast<uint64_t>(now_ns(cpu)));
            if (cpu.lapic) cpu.lapic->set_tsc_offset(static_cast<uint64_t>(cpu.msr.tsc_offset));
            return true;
        case BiosSignId: return true;  // Linux writes 0 before reading the revision (SDM vol. 3A §9.11.7.1)
        case SysenterCs: cpu.msr.sysenter_cs = value & 0xffff'ffffu; return true;
        case SysenterEsp:
        case SysenterEip:
            if (!Cpu::canonical(value)) return false;
            (index == SysenterEsp ? cpu.msr.sysenter_esp : cpu.msr.sysenter_eip) = value;
            return true;
        case McgStatus: return value == 0;  // no machine check is ever in progress to clear
        case MiscEnable: cpu.msr.misc_enable = value; return true;
        case DebugCtl: return (value & ~kDebugCtlAccepted) == 0;
        case Pat:
            if (!every_byte(value, valid_pat_type)) return false;
            cpu.msr.pat = value;
            return true;
        case MtrrDefType:
            // Type in bits 7:0, FE (10) and E (11); the rest is reserved.
            if ((value & ~0xcffull) != 0 || !valid_mtrr_type(value & 0xff)) return false;
            cpu.msr.mtrr_def_type = value;
            return true;
        case Efer: {
            if (value & ~(kEferWritable | efer::LMA)) return false;
            // LME may change only while paging is off (SDM vol. 3A §9.8.5); LMA is read-only.
            if ((cpu.cr0 & cr0::PG) && ((value ^ cpu.efer) & efer::LME)) return false;
            uint64_t next = (value & kEferWritable) | (cpu.efer & efer::LMA);
            bool nx_changed = ((next ^ cpu.efer) & efer::NXE) != 0;
            cpu.efer = next;
            if (nx_changed) cpu.flush_tlb(true);  // cached translations depend on NXE
            cpu.refresh_mode();
            cpu.end_block = true;
            return true;
        }
        case Star: cpu.msr.star = value; return true;
        case Lstar:
        case Cstar:
            if (!Cpu::canonical(value)) return false;
            (index == Lstar ? cpu.msr.lstar : cpu.msr.cstar) = value;
            return true;
        case Sfmask:
            if (value >> 32) return false;
            cpu.msr.sfmask = value;
            return true;
        case FsBase:
        case GsBase:
        case KernelGsBase:
            if (!Cpu::canonical(value)) return false;
            if (index == KernelGsBase) cpu.msr.kernel_gs_base = value;
            else cpu.seg[index == FsBase ? FS : GS].base = value;
            return true;
        case TscAux:
            if (value >> 32) return false;
            cpu.msr.tsc_aux = value;
            return true;
        default: return false;  // absent, or read-only (MTRRcap, FEATURE_CONTROL, ARCH_CAPABILITIES)
    }
}

}  // namespace strata::soft
