// The system family: control and debug registers (MOV CRn/DRn, CLTS, LMSW, SMSW), descriptor
// tables (LGDT/LIDT/SGDT/SIDT, LLDT/SLDT, LTR/STR), descriptor queries (LAR, LSL, VERR, VERW,
// ARPL), TLB and cache control (INVLPG, WBINVD, INVD), HLT, MSRs and the TSC (RDMSR, WRMSR,
// RDTSC, RDTSCP), CPUID, fast system calls (SYSCALL/SYSRET, SYSENTER/SYSEXIT, SWAPGS) and
// software interrupts (INT n, INT3, INTO, INT1, UD0/UD1/UD2).
//
// Privileged instructions raise #GP(0) outside CPL 0 (virtual-8086 mode is CPL 3). Writes to
// CR0, CR3, CR4 and EFER keep the mode cache and the TLB right: long mode becomes active when
// paging starts with EFER.LME (and inactive when it stops); CR3 loads drop non-global
// translations, changes of CR0.PG/WP/PE and CR4.PGE/PAE/PSE drop all (SDM vol. 3A §4.10.4.1).
// Features the CPUID of soft_cpuid.hpp does not advertise raise #UD without a report: XGETBV,
// XSETBV, INVPCID, RDPID, RDRAND, RDSEED, MONITOR, MWAIT, CLAC, STAC, RD/WRFSBASE, RD/WRGSBASE.
// Missing: hardware breakpoints (DR0-DR3 and DR7 hold values; nothing triggers on them but
// DR7.GD; enabling one is said once on stderr), the PAE PDPTE checks of a CR3 load, LAR/LSL of 16-byte system descriptors beyond their
// first 8 bytes.
// Spec: Intel SDM vol. 2 (each instruction's "Operation"), vol. 3A §2.5 (control registers),
// §2.8.1 (privileged instructions), §5.8.7-5.8.8 (SYSENTER/SYSEXIT, SYSCALL/SYSRET), §9.8.5
// (IA-32e mode activation), vol. 3B §18.2 (debug registers).
#include <Zydis/Zydis.h>
#include <fmt/format.h>

#include <atomic>

#include "cpu/soft/descriptors.hpp"
#include "cpu/soft/exec/exec.hpp"
#include "cpu/soft/interrupts.hpp"
#include "cpu/soft/msrs.hpp"
#include "cpu/soft/soft_cpuid.hpp"

namespace strata::soft {

namespace {

constexpr uint64_t kCr0Ts = 1u << 3, kCr0Em = 1u << 2, kCr0Am = 1u << 18, kCr0Nw = 1u << 29, kCr0Cd = 1u << 30;
constexpr uint64_t kCr0Defined = cr0::PE | cr0::MP | kCr0Em | kCr0Ts | cr0::ET | cr0::NE | cr0::WP | kCr0Am |
                                 kCr0Nw | kCr0Cd | cr0::PG;
constexpr uint64_t kCr4Tsd = 1u << 2, kCr4De = 1u << 3, kCr4Pse = 1u << 4;
constexpr uint64_t kPhysicalMask = (1ull << 40) - 1;  // MAXPHYADDR 40 (CPUID 0x80000008)
constexpr uint64_t kDr6Fixed = 0xffff'0ff0, kDr6Writable = 0xe00f;  // B0-B3, BD, BS, BT
constexpr uint64_t kDr7Fixed = 0x400, kDr7Writable = 0xffff'23ff;    // L0-G3, LE, GE, GD, R/W, LEN
constexpr uint64_t kDr6Bd = 1u << 13, kDr7Gd = 1u << 13;

void require_cpl0(const Cpu& cpu) {
    if (cpu.cpl != 0) raise_gp(0);
}
// LLDT, SLDT, LTR, STR, LAR, LSL, VERR, VERW and ARPL exist only in protected mode.
void require_protected_mode(const Cpu& cpu) {
    if (!cpu.protected_mode || cpu.v86) raise_ud();
}

// --- Control registers ---

void write_cr0(Cpu& cpu, uint64_t value) {
    if (value >> 32) raise_gp(0);
    value = (value & kCr0Defined) | cr0::ET;  // reserved bits of 31:0 are ignored; ET is fixed at 1
    if ((value & cr0::PG) && !(value & cr0::PE)) raise_gp(0);
    if ((value & kCr0Nw) && !(value & kCr0Cd)) raise_gp(0);
    uint64_t old = cpu.cr0;
    uint64_t efer_value = cpu.efer;
    if ((value & cr0::PG) && !(old & cr0::PG) && (cpu.efer & efer::LME)) {
        // IA-32e mode activation (SDM vol. 3A §9.8.5): needs PAE, and not from a 64-bit CS.
        if (!(cpu.cr4 & cr4::PAE) || cpu.seg[CS].l) raise_gp(0);
        efer_value |= efer::LMA;
    }
    if (!(value & cr0::PG) && (old & cr0::PG) && (cpu.efer & efer::LMA)) {
        // Leaving IA-32e mode is allowed only from compatibility mode (§9.8.5.4).
        if (cpu.code64) raise_gp(0);
        efer_value &= ~efer::LMA;
    }
    cpu.cr0 = value;
    cpu.efer = efer_value;
    if ((old ^ value) & (cr0::PG | cr0::WP | cr0::PE)) cpu.flush_tlb(true);
    cpu.refresh_mode();
    cpu.end_block = true;
}

void write_cr3(Cpu& cpu, uint64_t value) {
    // Without PCIDE, bit 63 and the bits above MAXPHYADDR are reserved (SDM vol. 3A §4.5.4).
    if (cpu.long_mode && (value & ~kPhysicalMask)) raise_gp(0);
    cpu.cr3 = cpu.long_mode ? value : value & 0xffff'ffffu;
    cpu.flush_tlb(false);
    cpu.end_block = true;
}

void write_cr4(Cpu& cpu, uint64_t value) {
    if (value & ~soft_cr4_allowed()) raise_gp(0);
    if (cpu.long_mode && !(value & cr4::PAE)) raise_gp(0);  // PAE cannot go while IA-32e mode is on
    uint64_t old = cpu.cr4;
    cpu.cr4 = value;
    // Cached translations carry the fetch and data permissions SMEP and SMAP decide: they go too
    // (the SDM requires it of SMEP 0 -> 1, vol. 3A §4.10.4.1; dropping them always is simpler).
    constexpr uint64_t kCr4SmepSmap = (1u << 20) | (1u << 21);
    if ((old ^ value) & (cr4::PGE | cr4::PAE | kCr4Pse | kCr4SmepSmap)) cpu.flush_tlb(true);
    cpu.refresh_mode();
    cpu.end_block = true;
}

void set_cr8(Cpu& cpu, uint64_t value) {
    if (value & ~0xfull) raise_gp(0);  // bits 63:4 are reserved
    write_cr8(cpu, value);
}

uint64_t read_control(Cpu& cpu, unsigned n) {
    switch (n) {
        case 0: return cpu.cr0;
        case 2: return cpu.cr2;
        case 3: return cpu.cr3;
        case 4: return cpu.cr4;
        case 8: return read_cr8(cpu);
        default: raise_ud();
    }
}

// MOV CRn, r and MOV r, CRn (the register is 32 bits wide outside 64-bit mode, 64 in it).
void mov_control(Cpu& cpu, const Insn& insn) {
    require_cpl0(cpu);
    if (insn.op[0].kind == OpKind::Cr) {
        unsigned n = insn.op[0].reg;
        uint64_t value = read_operand(cpu, insn, 1);
        switch (n) {
            case 0: write_cr0(cpu, value); break;
            case 2: cpu.cr2 = value; break;
            case 3: write_cr3(cpu, value); break;
            case 4: write_cr4(cpu, value); break;
            case 8: set_cr8(cpu, value); break;
            default: raise_ud();
        }
        return;
    }
    write_operand(cpu, insn, 0, read_control(cpu, insn.op[1].reg));
}

// --- Debug registers ---

// DR4 and DR5 are DR6 and DR7 unless CR4.DE makes them #UD; DR7.GD turns every access into a
// #DB fault with DR6.BD (SDM vol. 3B §18.2.2, §18.2.4).
unsigned debug_register(Cpu& cpu, unsigned n) {
    if (n > 7) raise_ud();
    if (n == 4 || n == 5) {
        if (cpu.cr4 & kCr4De) raise_ud();
        n += 2;
    }
    if (cpu.dr7 & kDr7Gd) {
        cpu.dr6 |= kDr6Bd;
        cpu.dr7 &= ~kDr7Gd;  // so that the handler may use the debug registers
        raise_fault(vec::DB);
    }
    return n;
}

// Breakpoints DR7 enables (L0-L3, G0-G3) do not trigger yet: said once on stderr, not a silent
// no-op. The registers themselves hold what the guest writes.
void report_breakpoints(uint64_t dr7) {
    static std::atomic<bool> reported{false};
    if ((dr7 & 0xff) && !reported.exchange(true))
        fmt::print(stderr, "strata: soft engine: hardware breakpoints (DR7 {:#x}) are not implemented; they do not "
                           "trigger\n", dr7);
}

void mov_debug(Cpu& cpu, const Insn& insn) {
    require_cpl0(cpu);
    if (insn.op[0].kind == OpKind::Dr) {
        unsigned n = debug_register(cpu, insn.op[0].reg);
        uint64_t value = read_operand(cpu, insn, 1);
        if (n >= 6 && (value >> 32)) raise_gp(0);
        if (n < 4) cpu.dr[n] = value;
        else if (n == 6) cpu.dr6 = (value & kDr6Writable) | kDr6Fixed;
        else {
            cpu.dr7 = (value & kDr7Writable) | kDr7Fixed;
            report_breakpoints(cpu.dr7);
        }
        return;
    }
    unsigned n = debug_register(cpu, insn.op[1].reg);
    write_operand(cpu, insn, 0, n < 4 ? cpu.dr[n] : n == 6 ? cpu.dr6 : cpu.dr7);
}

void clts(Cpu& cpu, const Insn&) {
    require_cpl0(cpu);
    cpu.cr0 &= ~kCr0Ts;
    cpu.end_block = true;
}

// LMSW loads PE, MP, EM and TS; it can set PE but never clear it.
void lmsw(Cpu& cpu, const Insn& insn) {
    require_cpl0(cpu);
    uint64_t source = read_operand(cpu, insn, 0) & 0xf;
    write_cr0(cpu, (cpu.cr0 & ~0xeull) | source);
}

// SMSW: CR0's low 16 bits to memory, CR0 to a register at the operand size.
void smsw(Cpu& cpu, const Insn& insn) { write_operand(cpu, insn, 0, cpu.cr0); }

// --- Descriptor-table registers ---

// LGDT/LIDT m16&32 (m16&64 in 64-bit mode): a 16-bit operand size keeps 24 bits of the base.
template <bool kIdt>
void load_table_register(Cpu& cpu, const Insn& insn) {
    require_cpl0(cpu);
    uint64_t address = effective_address(cpu, insn);
    unsigned s = insn.mem.seg;
    auto limit = cpu.read<uint16_t>(s, address);
    uint64_t base = cpu.read_sized(s, (address + 2) & LazyFlags::mask(insn.asize), cpu.code64 ? 8 : 4);
    if (cpu.code64 && !Cpu::canonical(base)) raise_gp(0);
    if (!cpu.code64 && insn.osize == 2) base &= 0xff'ffff;
    TableState& table = kIdt ? cpu.idtr : cpu.gdtr;
    table.base = base;
    table.limit = limit;
}

// SGDT/SIDT: the limit, then the base: 32 bits (both operand sizes, as current processors do) or
// 64 bits in 64-bit mode. Not privileged (UMIP is not advertised).
template <bool kIdt>
void store_table_register(Cpu& cpu, const Insn& insn) {
    const TableState& table = kIdt ? cpu.idtr : cpu.gdtr;
    uint64_t address = effective_address(cpu, insn);
    unsigned s = insn.mem.seg;
    cpu.write<uint16_t>(s, address, table.limit);
    cpu.write_sized(s, (address + 2) & LazyFlags::mask(insn.asize), cpu.code64 ? 8 : 4, table.base);
}

// A system descriptor for LLDT/LTR: in the GDT, 16 bytes in IA-32e mode with a zero upper type
// and a canonical base.
Descriptor system_descriptor(Cpu& cpu, uint16_t selector) {
    uint32_t error = selector_error(selector);
    if (selector & 4) raise_gp(error);
    auto d = read_descriptor(cpu, selector, cpu.long_mode ? 16 : 8);
    if (!d || d->code_or_data()) raise_gp(error);
    if (cpu.long_mode && (d->upper_type() != 0 || !Cpu::canonical(d->base64()))) raise_gp(error);
    return *d;
}

SegmentState system_segment(const Cpu& cpu, uint16_t selector, const Descriptor& d) {
    SegmentState s = segment_from(selector, d);
    if (cpu.long_mode) s.base = d.base64();
    return s;
}

void lldt(Cpu& cpu, const Insn& insn) {
    require_protected_mode(cpu);
    require_cpl0(cpu);
    auto selector = static_cast<uint16_t>(read_operand(cpu, insn, 0));
    if (null_selector(selector)) {
        cpu.ldtr = null_segment(selector);  // later LDT references raise #GP
        return;
    }
    Descriptor d = system_descriptor(cpu, selector);
    if (d.type() != seg_type::Ldt) raise_gp(selector_error(selector));
    if (!d.present()) raise_fault(vec::NP, selector_error(selector));
    cpu.ldtr = system_segment(cpu, selector, d);
}

// LTR: an available TSS (32/64-bit; 16-bit outside IA-32e mode), which becomes busy.
void ltr(Cpu& cpu, const Insn& insn) {
    require_protected_mode(cpu);
    require_cpl0(cpu);
    auto selector = static_cast<uint16_t>(read_operand(cpu, insn, 0));
    if (null_selector(selector)) raise_gp(0);
    Descriptor d = system_descriptor(cpu, selector);
    bool available = d.type() == seg_type::TssAvailable || (!cpu.long_mode && d.type() == seg_type::Tss16Available);
    if (!available) raise_gp(selector_error(selector));
    if (!d.present()) raise_fault(vec::NP, selector_error(selector));
    mark_tss_busy(cpu, selector, d);
    cpu.tr = system_segment(cpu, selector, d);
}

// SLDT/STR: the selector, zero-extended in a register, 16 bits in memory.
void sldt(Cpu& cpu, const Insn& insn) {
    require_protected_mode(cpu);
    write_operand(cpu, insn, 0, cpu.ldtr.selector);
}
void str(Cpu& cpu, const Insn& insn) {
    require_protected_mode(cpu);
    write_operand(cpu, insn, 0, cpu.tr.selector);
}

// --- Descriptor queries: ZF says whether the selector passed ---

void set_zf(Cpu& cpu, bool on) {
    cpu.flags.materialize();
    cpu.flags.put(rflags::ZF, on);
}

// Whether the CPU at its CPL may see the descriptor through the selector (SDM vol. 2 LAR:
// conforming code always; everything else with DPL ≥ CPL and DPL ≥ RPL).
bool visible(const Cpu& cpu, uint16_t selector, const Descriptor& d) {
    if (d.conforming_code()) return true;
    return d.dpl() >= cpu.cpl && d.dpl() >= rpl(selector);
}

// The descriptor LAR or LSL reports on, if its type is one they accept (SDM vol. 2 LAR table
// 3-61, LSL table 3-63; IA-32e mode knows only the 64-bit system types).
std::optional<Descriptor> queried_descriptor(Cpu& cpu, uint16_t selector, bool for_lar) {
    if (null_selector(selector)) return std::nullopt;
    auto d = read_descriptor(cpu, selector);
    if (!d || !visible(cpu, selector, *d)) return std::nullopt;
    if (d->code_or_data()) return d;
    using namespace seg_type;
    uint8_t t = d->type();
    bool ok = cpu.long_mode ? (t == Ldt || t == TssAvailable || t == TssBusy || (for_lar && t == CallGate))
                            : (t == Tss16Available || t == Ldt || t == Tss16Busy || t == TssAvailable ||
                               t == TssBusy || (for_lar && (t == CallGate16 || t == TaskGate || t == CallGate)));
    return ok ? d : std::nullopt;
}

uint16_t selector_operand(Cpu& cpu, const Insn& insn, unsigned n) {
    return static_cast<uint16_t>(read_operand(cpu, insn, n));
}

void lar(Cpu& cpu, const Insn& insn) {
    require_protected_mode(cpu);
    auto d = queried_descriptor(cpu, selector_operand(cpu, insn, 1), true);
    if (d) write_operand(cpu, insn, 0, d->high & (insn.osize == 2 ? 0xff00u : 0x00f0'ff00u));
    set_zf(cpu, d.has_value());
}

void lsl(Cpu& cpu, const Insn& insn) {
    require_protected_mode(cpu);
    auto d = queried_descriptor(cpu, selector_operand(cpu, insn, 1), false);
    if (d) write_operand(cpu, insn, 0, d->limit());
    set_zf(cpu, d.has_value());
}

template <bool kWrite>
void verify(Cpu& cpu, const Insn& insn) {
    require_protected_mode(cpu);
    uint16_t selector = selector_operand(cpu, insn, 0);
    bool ok = false;
    if (!null_selector(selector))
        if (auto d = read_descriptor(cpu, selector))
            ok = (kWrite ? d->writable_data() : d->readable()) && visible(cpu, selector, *d);
    set_zf(cpu, ok);
}

// ARPL r/m16, r16: raises the destination selector's RPL to the source's.
void arpl(Cpu& cpu, const Insn& insn) {
    require_protected_mode(cpu);
    auto destination = static_cast<uint16_t>(read_operand(cpu, insn, 0));
    auto source = static_cast<uint16_t>(read_operand(cpu, insn, 1));
    bool raise = rpl(destination) < rpl(source);
    if (raise) write_operand(cpu, insn, 0, (destination & ~3u) | rpl(source));
    set_zf(cpu, raise);
}

// --- TLB, caches, halt ---

// INVLPG m: the linear address without segment checks; a non-canonical one is a no-op.
void invlpg(Cpu& cpu, const Insn& insn) {
    require_cpl0(cpu);
    unsigned s = insn.mem.seg;
    uint64_t offset = effective_address(cpu, insn);
    if (cpu.code64) {
        uint64_t address = offset + (s >= FS ? cpu.seg[s].base : 0);
        if (Cpu::canonical(address)) cpu.flush_tlb_page(address);
    } else {
        cpu.flush_tlb_page((cpu.seg[s].base + offset) & 0xffff'ffffu);
    }
    cpu.end_block = true;
}

// WBINVD, INVD: there are no caches to write back or drop.
void cache_control(Cpu& cpu, const Insn&) { require_cpl0(cpu); }

void hlt(Cpu& cpu, const Insn&) {
    require_cpl0(cpu);
    cpu.halted = true;  // the run loop sleeps until an event
    cpu.end_block = true;
}

// --- MSRs, TSC, CPUID ---

void set_edx_eax(Cpu& cpu, uint64_t value) {
    cpu.set_reg(0, 4, value & 0xffff'ffffu);
    cpu.set_reg(2, 4, value >> 32);
}

void rdmsr(Cpu& cpu, const Insn&) {
    require_cpl0(cpu);
    auto value = read_msr(cpu, static_cast<uint32_t>(cpu.gpr[1]));
    if (!value) raise_gp(0);
    set_edx_eax(cpu, *value);
}

void wrmsr(Cpu& cpu, const Insn&) {
    require_cpl0(cpu);
    uint64_t value = (cpu.gpr[2] << 32) | (cpu.gpr[0] & 0xffff'ffffu);
    if (!write_msr(cpu, static_cast<uint32_t>(cpu.gpr[1]), value)) raise_gp(0);
}

void check_tsc_allowed(const Cpu& cpu) {
    if ((cpu.cr4 & kCr4Tsd) && cpu.cpl != 0) raise_gp(0);
}

void rdtsc(Cpu& cpu, const Insn&) {
    check_tsc_allowed(cpu);
    set_edx_eax(cpu, guest_tsc(cpu));
}

void rdtscp(Cpu& cpu, const Insn&) {
    check_tsc_allowed(cpu);
    set_edx_eax(cpu, guest_tsc(cpu));
    cpu.set_reg(1, 4, cpu.msr.tsc_aux & 0xffff'ffffu);
}

void cpuid(Cpu& cpu, const Insn&) {
    CpuidLeaf leaf = soft_cpuid(cpu, static_cast<uint32_t>(cpu.gpr[0]), static_cast<uint32_t>(cpu.gpr[1]));
    cpu.set_reg(0, 4, leaf.eax);
    cpu.set_reg(3, 4, leaf.ebx);
    cpu.set_reg(1, 4, leaf.ecx);
    cpu.set_reg(2, 4, leaf.edx);
}

// --- Fast system calls: flat segments of fixed attributes (SDM vol. 2 SYSCALL/SYSENTER) ---

SegmentState flat_segment(uint16_t selector, unsigned dpl, bool code, bool long_code) {
    SegmentState s;
    s.base = 0;
    s.limit = 0xffff'ffff;
    s.selector = selector;
    s.type = code ? 0xb : 0x3;  // execute/read accessed, or read/write accessed
    s.present = true;
    s.dpl = static_cast<uint8_t>(dpl);
    s.s = true;
    s.g = true;
    s.l = code && long_code;
    s.db = !(code && long_code);
    s.unusable = false;
    return s;
}

void enter_flat(Cpu& cpu, uint16_t cs, uint16_t ss, unsigned dpl, bool long_code, uint64_t rip) {
    cpu.seg[CS] = flat_segment(cs, dpl, true, long_code);
    cpu.seg[SS] = flat_segment(ss, dpl, false, false);
    cpu.next_rip = rip;
    cpu.refresh_mode();
    cpu.end_block = true;
}

// SYSCALL: from 64-bit mode to LSTAR, and from compatibility mode to CSTAR as AMD's processors
// do (APM vol. 3 SYSCALL). Intel's raise #UD in compatibility mode; this CPU says GenuineIntel
// but takes the AMD path there, as QEMU's TCG does: nothing expects the #UD (an Intel 32-bit
// process enters through SYSENTER), while kvm-unit-tests' syscall test runs 32-bit code through
// SYSCALL. Outside long mode SYSCALL stays #UD (Intel's rule; no legacy-mode STAR entry).
void syscall(Cpu& cpu, const Insn&) {
    if (!cpu.long_mode || !(cpu.efer & efer::SCE)) raise_ud();
    uint64_t flags = cpu.rflags();
    cpu.gpr[1] = cpu.next_rip;
    cpu.gpr[11] = flags & ~rflags::RF;
    cpu.set_rflags(flags & ~(cpu.msr.sfmask | rflags::RF));
    auto selector = static_cast<uint16_t>(cpu.msr.star >> 32);
    uint64_t target = cpu.code64 ? cpu.msr.lstar : cpu.msr.cstar;
    enter_flat(cpu, selector & 0xfffc, static_cast<uint16_t>(selector + 8), 0, true, target);
}

// SYSRET: to 64-bit mode with REX.W, else to compatibility mode; a non-canonical RCX faults at
// CPL 0 (#GP before anything changes, as Intel processors do). A TF set by the RFLAGS it loads
// traps at once, before the first user instruction (the trap Linux's entry code avoids by not
// returning through SYSRET with TF set; QEMU checks TF after SYSRET the same way).
void sysret(Cpu& cpu, const Insn& insn) {
    if (!cpu.code64 || !(cpu.efer & efer::SCE)) raise_ud();
    require_cpl0(cpu);
    bool to64 = insn.osize == 8;
    uint64_t rip = to64 ? cpu.gpr[1] : cpu.gpr[1] & 0xffff'ffffu;
    if (to64 && !Cpu::canonical(rip)) raise_gp(0);
    auto base = static_cast<uint16_t>(cpu.msr.star >> 48);
    uint16_t cs = static_cast<uint16_t>((to64 ? base + 16 : base) | 3);
    cpu.set_rflags((cpu.gpr[11] & 0x3c'7fd7) | rflags::FIXED1);
    enter_flat(cpu, cs, static_cast<uint16_t>((base + 8) | 3), 3, to64, rip);
    if (cpu.rflags() & rflags::TF) {
        cpu.rip = cpu.next_rip;
        cpu.dr6 |= 1u << 14;  // BS
        deliver_event(cpu, vec::DB, EventKind::Trap);
    }
}

void sysenter(Cpu& cpu, const Insn&) {
    uint16_t selector = static_cast<uint16_t>(cpu.msr.sysenter_cs) & 0xfffc;
    if (!cpu.protected_mode || selector == 0) raise_gp(0);
    bool to64 = cpu.long_mode;
    cpu.set_rflags(cpu.rflags() & ~(rflags::VM | rflags::IF | rflags::RF));
    cpu.gpr[4] = to64 ? cpu.msr.sysenter_esp : cpu.msr.sysenter_esp & 0xffff'ffffu;
    uint64_t rip = to64 ? cpu.msr.sysenter_eip : cpu.msr.sysenter_eip & 0xffff'ffffu;
    enter_flat(cpu, selector, static_cast<uint16_t>(selector + 8), 0, to64, rip);
}

void sysexit(Cpu& cpu, const Insn& insn) {
    auto base = static_cast<uint16_t>(cpu.msr.sysenter_cs);
    if (!cpu.protected_mode || (base & 0xfffc) == 0) raise_gp(0);
    require_cpl0(cpu);
    bool to64 = insn.osize == 8;
    uint64_t rsp = to64 ? cpu.gpr[1] : cpu.gpr[1] & 0xffff'ffffu;
    uint64_t rip = to64 ? cpu.gpr[2] : cpu.gpr[2] & 0xffff'ffffu;
    if (to64 && (!Cpu::canonical(rip) || !Cpu::canonical(rsp))) raise_gp(0);
    uint16_t cs = static_cast<uint16_t>((base + (to64 ? 32 : 16)) | 3);
    uint16_t ss = static_cast<uint16_t>((base + (to64 ? 40 : 24)) | 3);
    cpu.gpr[4] = rsp;
    enter_flat(cpu, cs, ss, 3, to64, rip);
}

void swapgs(Cpu& cpu, const Insn&) {
    if (!cpu.code64) raise_ud();
    require_cpl0(cpu);
    std::swap(cpu.seg[GS].base, cpu.msr.kernel_gs_base);
}

// --- Software interrupts ---

// INT n: IOPL-sensitive in virtual-8086 mode (no VME: #GP(0), SDM vol. 3A §20.3.1.1).
void int_n(Cpu& cpu, const Insn& insn) {
    if (cpu.v86 && ((cpu.rflags() >> 12) & 3) != 3) raise_gp(0);
    deliver_event(cpu, static_cast<uint8_t>(insn.imm), EventKind::SoftwareInt);
}
void int3(Cpu& cpu, const Insn&) { deliver_event(cpu, vec::BP, EventKind::SoftwareException); }
void into(Cpu& cpu, const Insn&) {
    if (cpu.flags.of()) deliver_event(cpu, vec::OF, EventKind::SoftwareException);
}
void int1(Cpu& cpu, const Insn&) { deliver_event(cpu, vec::DB, EventKind::PrivilegedSoftware); }

// UD0/UD1/UD2, and the instructions of features this CPU does not advertise.
void undefined(Cpu&, const Insn&) { raise_ud(); }

// RDPMC: no performance counters exist (CPUID leaf 0xa reports none), so every counter is invalid.
void rdpmc(Cpu&, const Insn&) { raise_gp(0); }

}  // namespace

void bind_system(HandlerTable& table) {
    table.bind(ZYDIS_MNEMONIC_MOV, HandlerForm::ControlRegister, &mov_control);
    table.bind(ZYDIS_MNEMONIC_MOV, HandlerForm::DebugRegister, &mov_debug);
    table.bind(ZYDIS_MNEMONIC_CLTS, &clts);
    table.bind(ZYDIS_MNEMONIC_LMSW, &lmsw);
    table.bind(ZYDIS_MNEMONIC_SMSW, &smsw);
    table.bind(ZYDIS_MNEMONIC_LGDT, &load_table_register<false>);
    table.bind(ZYDIS_MNEMONIC_LIDT, &load_table_register<true>);
    table.bind(ZYDIS_MNEMONIC_SGDT, &store_table_register<false>);
    table.bind(ZYDIS_MNEMONIC_SIDT, &store_table_register<true>);
    table.bind(ZYDIS_MNEMONIC_LLDT, &lldt);
    table.bind(ZYDIS_MNEMONIC_SLDT, &sldt);
    table.bind(ZYDIS_MNEMONIC_LTR, &ltr);
    table.bind(ZYDIS_MNEMONIC_STR, &str);
    table.bind(ZYDIS_MNEMONIC_LAR, &lar);
    table.bind(ZYDIS_MNEMONIC_LSL, &lsl);
    table.bind(ZYDIS_MNEMONIC_VERR, &verify<false>);
    table.bind(ZYDIS_MNEMONIC_VERW, &verify<true>);
    table.bind(ZYDIS_MNEMONIC_ARPL, &arpl);
    table.bind(ZYDIS_MNEMONIC_INVLPG, &invlpg);
    table.bind(ZYDIS_MNEMONIC_WBINVD, &cache_control);
    table.bind(ZYDIS_MNEMONIC_INVD, &cache_control);
    table.bind(ZYDIS_MNEMONIC_HLT, &hlt);
    table.bind(ZYDIS_MNEMONIC_RDMSR, &rdmsr);
    table.bind(ZYDIS_MNEMONIC_WRMSR, &wrmsr);
    table.bind(ZYDIS_MNEMONIC_RDTSC, &rdtsc);
    table.bind(ZYDIS_MNEMONIC_RDTSCP, &rdtscp);
    table.bind(ZYDIS_MNEMONIC_RDPMC, &rdpmc);
    table.bind(ZYDIS_MNEMONIC_CPUID, &cpuid);
    table.bind(ZYDIS_MNEMONIC_SYSCALL, &syscall);
    table.bind(ZYDIS_MNEMONIC_SYSRET, &sysret);
    table.bind(ZYDIS_MNEMONIC_SYSENTER, &sysenter);
    table.bind(ZYDIS_MNEMONIC_SYSEXIT, &sysexit);
    table.bind(ZYDIS_MNEMONIC_SWAPGS, &swapgs);
    table.bind(ZYDIS_MNEMONIC_INT, &int_n);
    table.bind(ZYDIS_MNEMONIC_INT3, &int3);
    table.bind(ZYDIS_MNEMONIC_INTO, &into);
    table.bind(ZYDIS_MNEMONIC_INT1, &int1);
    for (ZydisMnemonic m : {ZYDIS_MNEMONIC_UD0, ZYDIS_MNEMONIC_UD1, ZYDIS_MNEMONIC_UD2, ZYDIS_MNEMONIC_XGETBV,
                            ZYDIS_MNEMONIC_XSETBV, ZYDIS_MNEMONIC_INVPCID, ZYDIS_MNEMONIC_RDPID, ZYDIS_MNEMONIC_RDRAND,
                            ZYDIS_MNEMONIC_RDSEED, ZYDIS_MNEMONIC_MONITOR, ZYDIS_MNEMONIC_MWAIT, ZYDIS_MNEMONIC_CLAC,
                            ZYDIS_MNEMONIC_STAC, ZYDIS_MNEMONIC_RDFSBASE, ZYDIS_MNEMONIC_RDGSBASE,
                            ZYDIS_MNEMONIC_WRFSBASE, ZYDIS_MNEMONIC_WRGSBASE})
        table.bind(m, &undefined);
}

}  // namespace strata::soft
