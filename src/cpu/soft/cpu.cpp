// The soft CPU's mode cache and its exchange with the engine-neutral CpuState.
#include "cpu/soft/cpu.hpp"

#include <algorithm>

namespace strata::soft {

namespace {

// The x87 register stack in FXSAVE order (ST0 first) from physical registers R0-R7.
unsigned x87_top(const X87State& x87) { return (x87.fsw >> 11) & 7; }

}  // namespace

// CPL is SS.DPL in protected mode (SDM vol. 3A §5.5: they are equal except during transitions
// this CPU performs atomically), 0 in real mode and 3 in virtual-8086 mode.
void Cpu::refresh_mode() {
    protected_mode = (cr0 & cr0::PE) != 0;
    v86 = protected_mode && (flags.other & rflags::VM) != 0;
    long_mode = (efer & efer::LMA) != 0;
    code64 = long_mode && seg[CS].l;
    cpl = !protected_mode ? 0 : v86 ? 3 : seg[SS].dpl;
    user_tlb_ = cpl == 3 ? 1 : 0;
    code_bits = code64 ? 64 : (seg[CS].db && !v86) ? 32 : 16;
    stack_bits = code64 ? 64 : (seg[SS].db && !v86) ? 32 : 16;
    ip_mask = code_bits == 64 ? ~0ull : code_bits == 32 ? 0xffff'ffffull : 0xffffull;
    exec_key = (code_bits >> 4) | ((stack_bits >> 4) << 3) | (protected_mode ? 1u << 6 : 0) | (v86 ? 1u << 7 : 0) |
               (long_mode ? 1u << 8 : 0) | (cpl == 3 ? 1u << 9 : 0);
}

CpuState Cpu::state() const {
    CpuState s;
    std::copy_n(gpr.begin(), s.gpr.size(), s.gpr.begin());
    s.rip = rip;
    s.rflags = rflags();
    s.es = seg[ES];
    s.cs = seg[CS];
    s.ss = seg[SS];
    s.ds = seg[DS];
    s.fs = seg[FS];
    s.gs = seg[GS];
    s.tr = tr;
    s.ldt = ldtr;
    s.gdt = gdtr;
    s.idt = idtr;
    s.cr0 = cr0;
    s.cr2 = cr2;
    s.cr3 = cr3;
    s.cr4 = cr4;
    s.efer = efer;
    s.apic_base = msr.apic_base;

    ExtendedCpuState& x = s.extended.emplace();
    unsigned top = x87_top(x87);
    for (unsigned i = 0; i < 8; ++i) {
        x.fpu.st[i] = {};
        std::memcpy(x.fpu.st[i].data(), &x87.st[(top + i) & 7], 10);
    }
    x.fpu.fcw = x87.fcw;
    x.fpu.fsw = x87.fsw;
    x.fpu.ftw_abridged = 0;
    for (unsigned r = 0; r < 8; ++r)
        if (((x87.ftw >> (2 * r)) & 3) != 3) x.fpu.ftw_abridged = static_cast<uint8_t>(x.fpu.ftw_abridged | (1u << r));
    x.fpu.fop = x87.fop;
    x.fpu.fip = x87.fip;
    x.fpu.fdp = x87.fdp;
    x.fpu.xmm = xmm;
    x.fpu.mxcsr = mxcsr;
    x.debug.dr = dr;
    x.debug.dr6 = dr6;
    x.debug.dr7 = dr7;
    x.xcr0 = xcr0;
    for (uint32_t msr_index : kSavedMsrs) {
        uint64_t value = 0;
        switch (msr_index) {
            case 0x10: value = 0; break;  // the TSC: the engine fills it in from the clock
            case 0x174: value = msr.sysenter_cs; break;
            case 0x175: value = msr.sysenter_esp; break;
            case 0x176: value = msr.sysenter_eip; break;
            case 0x1a0: value = msr.misc_enable; break;
            case 0x277: value = msr.pat; break;
            case 0x2ff: value = msr.mtrr_def_type; break;
            case 0xc000'0081: value = msr.star; break;
            case 0xc000'0082: value = msr.lstar; break;
            case 0xc000'0083: value = msr.cstar; break;
            case 0xc000'0084: value = msr.sfmask; break;
            case 0xc000'0102: value = msr.kernel_gs_base; break;
            case 0xc000'0103: value = msr.tsc_aux; break;
            default: continue;
        }
        x.msrs.push_back({msr_index, value});
    }
    x.events.interrupt_shadow = interrupt_shadow;
    x.events.nmi.masked = nmi_masked;
    x.mp_state = halted ? MpState::Halted : MpState::Runnable;
    return s;
}

void Cpu::set_state(const CpuState& s) {
    std::copy_n(s.gpr.begin(), s.gpr.size(), gpr.begin());
    rip = s.rip;
    set_rflags(s.rflags);
    seg[ES] = s.es;
    seg[CS] = s.cs;
    seg[SS] = s.ss;
    seg[DS] = s.ds;
    seg[FS] = s.fs;
    seg[GS] = s.gs;
    tr = s.tr;
    ldtr = s.ldt;
    gdtr = s.gdt;
    idtr = s.idt;
    cr0 = s.cr0;
    cr2 = s.cr2;
    cr3 = s.cr3;
    cr4 = s.cr4;
    efer = s.efer;
    msr.apic_base = s.apic_base;
    if (s.extended) {
        const ExtendedCpuState& x = *s.extended;
        x87.fcw = x.fpu.fcw;
        x87.fsw = x.fpu.fsw;
        unsigned top = x87_top(x87);
        x87.ftw = 0;
        for (unsigned r = 0; r < 8; ++r) {
            // Valid registers are tagged "valid" (00); FXRSTOR does the same refinement lazily.
            bool valid = (x.fpu.ftw_abridged >> r) & 1;
            x87.ftw = static_cast<uint16_t>(x87.ftw | ((valid ? 0u : 3u) << (2 * r)));
        }
        for (unsigned i = 0; i < 8; ++i) std::memcpy(&x87.st[(top + i) & 7], x.fpu.st[i].data(), 10);
        x87.fop = x.fpu.fop;
        x87.fip = x.fpu.fip;
        x87.fdp = x.fpu.fdp;
        xmm = x.fpu.xmm;
        mxcsr = x.fpu.mxcsr;
        dr = x.debug.dr;
        dr6 = x.debug.dr6;
        dr7 = x.debug.dr7;
        xcr0 = x.xcr0;
        for (const MsrValue& m : x.msrs) {
            switch (m.index) {
                case 0x174: msr.sysenter_cs = m.value; break;
                case 0x175: msr.sysenter_esp = m.value; break;
                case 0x176: msr.sysenter_eip = m.value; break;
                case 0x1a0: msr.misc_enable = m.value; break;
                case 0x277: msr.pat = m.value; break;
                case 0x2ff: msr.mtrr_def_type = m.value; break;
                case 0xc000'0081: msr.star = m.value; break;
                case 0xc000'0082: msr.lstar = m.value; break;
                case 0xc000'0083: msr.cstar = m.value; break;
                case 0xc000'0084: msr.sfmask = m.value; break;
                case 0xc000'0102: msr.kernel_gs_base = m.value; break;
                case 0xc000'0103: msr.tsc_aux = m.value; break;
                default: break;
            }
        }
        interrupt_shadow = x.events.interrupt_shadow;
        nmi_masked = x.events.nmi.masked;
        halted = x.mp_state == MpState::Halted;
    }
    refresh_mode();
    flush_tlb(true);
}

}  // namespace strata::soft
