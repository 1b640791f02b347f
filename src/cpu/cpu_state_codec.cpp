#include "cpu/cpu_state_codec.hpp"

#include <algorithm>

namespace strata {

namespace {

void encode_segment(StateWriter& out, const SegmentState& s) {
    out.u64(s.base);
    out.u32(s.limit);
    out.u16(s.selector);
    out.u8(s.type);
    out.boolean(s.present);
    out.u8(s.dpl);
    out.boolean(s.db);
    out.boolean(s.s);
    out.boolean(s.l);
    out.boolean(s.g);
    out.boolean(s.avl);
    out.boolean(s.unusable);
}

SegmentState decode_segment(StateReader& in) {
    SegmentState s;
    s.base = in.u64("segment base");
    s.limit = in.u32("segment limit");
    s.selector = in.u16("segment selector");
    s.type = in.u8("segment type");
    s.present = in.boolean("segment present");
    s.dpl = in.u8("segment DPL");
    s.db = in.boolean("segment D/B");
    s.s = in.boolean("segment S");
    s.l = in.boolean("segment L");
    s.g = in.boolean("segment G");
    s.avl = in.boolean("segment AVL");
    s.unusable = in.boolean("segment unusable");
    in.check(s.type < 16 && s.dpl < 4, "a segment's type or DPL is out of range");
    return s;
}

void encode_table(StateWriter& out, const TableState& t) {
    out.u64(t.base);
    out.u16(t.limit);
}

TableState decode_table(StateReader& in) {
    TableState t;
    t.base = in.u64("table base");
    t.limit = in.u16("table limit");
    return t;
}

void encode_fpu(StateWriter& out, const FpuState& f) {
    for (const auto& st : f.st) out.bytes(st);
    out.u16(f.fcw);
    out.u16(f.fsw);
    out.u8(f.ftw_abridged);
    out.u16(f.fop);
    out.u64(f.fip);
    out.u64(f.fdp);
    for (const auto& xmm : f.xmm) out.bytes(xmm);
    out.u32(f.mxcsr);
}

FpuState decode_fpu(StateReader& in) {
    FpuState f;
    for (auto& st : f.st) in.bytes(st, "x87 register");
    f.fcw = in.u16("FCW");
    f.fsw = in.u16("FSW");
    f.ftw_abridged = in.u8("FTW");
    f.fop = in.u16("FOP");
    f.fip = in.u64("FIP");
    f.fdp = in.u64("FDP");
    for (auto& xmm : f.xmm) in.bytes(xmm, "XMM register");
    f.mxcsr = in.u32("MXCSR");
    return f;
}

void encode_events(StateWriter& out, const PendingEvents& e) {
    out.boolean(e.exception.injected);
    out.boolean(e.exception.pending);
    out.u8(e.exception.vector);
    out.boolean(e.exception.has_error_code);
    out.u32(e.exception.error_code);
    out.boolean(e.interrupt.injected);
    out.u8(e.interrupt.vector);
    out.boolean(e.interrupt.soft);
    out.boolean(e.nmi.injected);
    out.boolean(e.nmi.pending);
    out.boolean(e.nmi.masked);
    out.u8(e.interrupt_shadow);
    out.u32(e.sipi_vector);
}

PendingEvents decode_events(StateReader& in) {
    PendingEvents e;
    e.exception.injected = in.boolean("exception injected");
    e.exception.pending = in.boolean("exception pending");
    e.exception.vector = in.u8("exception vector");
    e.exception.has_error_code = in.boolean("exception has error code");
    e.exception.error_code = in.u32("exception error code");
    e.interrupt.injected = in.boolean("interrupt injected");
    e.interrupt.vector = in.u8("interrupt vector");
    e.interrupt.soft = in.boolean("interrupt soft");
    e.nmi.injected = in.boolean("NMI injected");
    e.nmi.pending = in.boolean("NMI pending");
    e.nmi.masked = in.boolean("NMI masked");
    e.interrupt_shadow = in.u8("interrupt shadow");
    e.sipi_vector = in.u32("SIPI vector");
    in.check(e.exception.vector < 32, "the pending exception's vector is not an exception (0-31)");
    in.check(e.interrupt_shadow <= 3, "the interrupt shadow has bits other than STI and MOV SS");
    in.check(e.sipi_vector <= 0xff, "the SIPI vector is over 0xff");
    return e;
}

}  // namespace

void encode_cpu_state(StateWriter& out, const CpuState& s) {
    if (!s.extended) panic("encode_cpu_state: the state has no extended part (an engine's report has one)");
    for (uint64_t r : s.gpr) out.u64(r);
    out.u64(s.rip);
    out.u64(s.rflags);
    for (const SegmentState* seg : {&s.cs, &s.ds, &s.es, &s.fs, &s.gs, &s.ss, &s.tr, &s.ldt}) encode_segment(out, *seg);
    encode_table(out, s.gdt);
    encode_table(out, s.idt);
    for (uint64_t cr : {s.cr0, s.cr2, s.cr3, s.cr4, s.cr8, s.efer, s.apic_base}) out.u64(cr);

    const ExtendedCpuState& x = *s.extended;
    encode_fpu(out, x.fpu);
    for (uint64_t dr : x.debug.dr) out.u64(dr);
    out.u64(x.debug.dr6);
    out.u64(x.debug.dr7);
    out.u64(x.xcr0);
    out.u32(static_cast<uint32_t>(x.msrs.size()));
    for (const MsrValue& m : x.msrs) {
        out.u32(m.index);
        out.u64(m.value);
    }
    encode_events(out, x.events);
    out.u8(static_cast<uint8_t>(x.mp_state));
    out.bytes(x.lapic);
}

CpuState decode_cpu_state(StateReader& in) {
    CpuState s;
    for (uint64_t& r : s.gpr) r = in.u64("general register");
    s.rip = in.u64("RIP");
    s.rflags = in.u64("RFLAGS");
    for (SegmentState* seg : {&s.cs, &s.ds, &s.es, &s.fs, &s.gs, &s.ss, &s.tr, &s.ldt}) *seg = decode_segment(in);
    s.gdt = decode_table(in);
    s.idt = decode_table(in);
    for (uint64_t* cr : {&s.cr0, &s.cr2, &s.cr3, &s.cr4, &s.cr8, &s.efer, &s.apic_base}) *cr = in.u64("control register");

    ExtendedCpuState& x = s.extended.emplace();
    x.fpu = decode_fpu(in);
    for (uint64_t& dr : x.debug.dr) dr = in.u64("debug register");
    x.debug.dr6 = in.u64("DR6");
    x.debug.dr7 = in.u64("DR7");
    x.xcr0 = in.u64("XCR0");
    uint32_t msrs = in.count(static_cast<uint32_t>(std::size(kSavedMsrs)), "MSR count");
    for (uint32_t i = 0; i < msrs && in.ok(); ++i) {
        MsrValue m{.index = in.u32("MSR index"), .value = in.u64("MSR value")};
        if (std::ranges::find(kSavedMsrs, m.index) == std::end(kSavedMsrs))
            in.fail(fmt::format("MSR {:#x} is not one a vCPU's state carries", m.index));
        else if (std::ranges::any_of(x.msrs, [&](const MsrValue& seen) { return seen.index == m.index; }))
            in.fail(fmt::format("MSR {:#x} is given twice", m.index));
        x.msrs.push_back(m);
    }
    x.events = decode_events(in);
    x.mp_state = static_cast<MpState>(in.u8_at_most(static_cast<uint8_t>(MpState::SipiReceived), "MP state"));
    in.bytes(x.lapic, "local APIC page");
    return s;
}

}  // namespace strata
