// Event delivery: exceptions, external interrupts, NMIs and INT n through the IVT (real mode),
// the IDT with 8-byte gates (protected and virtual-8086 mode) or 16-byte gates (IA-32e mode).
//
// State:    none; reads the IDT, GDT/LDT and TSS, pushes the frame, loads CS (and SS:RSP).
// Features: 16- and 32-bit interrupt and trap gates, 64-bit gates with IST, privilege changes
//           through the TSS's inner stacks (SS = null with RPL = new CPL in IA-32e mode), the
//           16-byte stack alignment of IA-32e mode, virtual-8086 interrupts to ring 0 with
//           GS/FS/DS/ES pushed and nulled, gate DPL checks for INT n/INT3/INTO, error codes with
//           EXT, RF in the image of a fault, NMI blocking, and the double-fault rules.
// Missing:  task gates (#GP with the gate's IDT error code, reported once on stderr).
// Spec:     Intel SDM vol. 3A §6.4-6.15 (table 6-5 for double faults, figure 6-4 and 6-9 for
//           the frames), §20.3 (interrupts in virtual-8086 mode), vol. 2 "INT n/INTO/INT3/INT1",
//           whose "Operation" these functions follow.
#include "cpu/soft/interrupts.hpp"

#include <fmt/format.h>

#include <atomic>
#include <cstdio>

#include "cpu/soft/descriptors.hpp"
#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

namespace {

// Exception classes for the double-fault rules (SDM vol. 3A §6.15, table 6-4).
enum class FaultClass { Benign, Contributory, PageFault, DoubleFault };

FaultClass classify(uint8_t vector, EventKind kind) {
    if (kind != EventKind::Fault && kind != EventKind::Trap) return FaultClass::Benign;
    switch (vector) {
        case vec::DE:
        case vec::TS:
        case vec::NP:
        case vec::SS:
        case vec::GP: return FaultClass::Contributory;
        case vec::PF: return FaultClass::PageFault;
        case vec::DF: return FaultClass::DoubleFault;
        default: return FaultClass::Benign;
    }
}

// EXT (SDM §6.13): set unless the event is the program's own INT n, INT3 or INTO.
bool external(EventKind kind) { return kind != EventKind::SoftwareInt && kind != EventKind::SoftwareException; }
// INT n, INT3 and INTO check the gate's DPL against CPL; INT1 and hardware events do not.
bool checks_gate_dpl(EventKind kind) { return kind == EventKind::SoftwareInt || kind == EventKind::SoftwareException; }

struct Event {
    uint8_t vector;
    EventKind kind;
    std::optional<uint32_t> error;
    uint64_t return_rip;
};

// The RFLAGS image pushed for the event: a fault's has RF set so that the handler's IRET does not
// re-trigger an instruction breakpoint (SDM vol. 3A §18.3.1.1), except #DB's own.
uint64_t pushed_rflags(const Cpu& cpu, const Event& e) {
    uint64_t f = cpu.rflags();
    if (e.kind == EventKind::Fault && e.vector != vec::DB) f |= rflags::RF;
    return f;
}

void report_task_gate(uint8_t vector) {
    static std::atomic<bool> reported{false};
    if (!reported.exchange(true))
        fmt::print(stderr, "strata: soft engine: vector {} goes through a task gate; task switches are not "
                           "implemented, the guest gets #GP\n", vector);
}

// The CPU at the handler: what every mode does after the frame is written.
void enter_handler(Cpu& cpu, uint64_t rip, uint64_t clear_flags) {
    cpu.set_rflags(cpu.rflags() & ~clear_flags);
    cpu.rip = rip;
    cpu.next_rip = rip;
    cpu.refresh_mode();
    cpu.end_block = true;
}

// Real mode (SDM vol. 3A §20.1.4): the IVT at IDTR.base, FLAGS, CS and IP pushed.
void deliver_real(Cpu& cpu, const Event& e) {
    uint64_t entry = uint64_t{e.vector} * 4;
    if (entry + 3 > cpu.idtr.limit) raise_gp(0);
    uint64_t at = (cpu.idtr.base + entry) & 0xffff'ffffu;
    auto new_ip = cpu.read_linear<uint16_t>(at, true);
    auto new_cs = cpu.read_linear<uint16_t>((at + 2) & 0xffff'ffffu, true);
    StackFrame frame(cpu, cpu.seg[SS], cpu.gpr[4] & stack_mask(cpu), cpu.stack_bits, true, 0);
    frame.push(2, cpu.rflags());
    frame.push(2, cpu.seg[CS].selector);
    frame.push(2, e.return_rip);
    cpu.gpr[4] = frame.merged_rsp(cpu.gpr[4]);
    load_real_mode_segment(cpu, CS, new_cs);
    enter_handler(cpu, new_ip, rflags::IF | rflags::TF | rflags::AC);
}

// The code segment a gate names, checked as interrupt delivery checks it.
Descriptor handler_code_segment(Cpu& cpu, uint16_t selector, bool ext) {
    if (null_selector(selector)) raise_gp(ext ? 1 : 0);
    uint32_t error = selector_error(selector, ext);
    auto d = read_descriptor(cpu, selector);
    if (!d || !d->code() || d->dpl() > cpu.cpl) raise_gp(error);
    if (!d->present()) raise_fault(vec::NP, error);
    return *d;
}

// Protected mode and virtual-8086 mode (SDM vol. 2 INT n, PROTECTED-MODE and
// INTERRUPT-FROM-VIRTUAL-8086-MODE): 8-byte gates, 16- or 32-bit frames.
void deliver_protected(Cpu& cpu, const Event& e) {
    bool ext = external(e.kind);
    uint32_t idt_error = uint32_t{e.vector} * 8 + 2 + (ext ? 1 : 0);
    if (uint64_t{e.vector} * 8 + 7 > cpu.idtr.limit) raise_gp(idt_error);
    Descriptor gate;
    uint64_t both = cpu.read_linear<uint64_t>((cpu.idtr.base + uint64_t{e.vector} * 8) & 0xffff'ffffu, true);
    gate.low = static_cast<uint32_t>(both);
    gate.high = static_cast<uint32_t>(both >> 32);
    uint8_t type = gate.type();
    bool valid = !gate.code_or_data() &&
                 (type == seg_type::TaskGate || type == seg_type::InterruptGate16 || type == seg_type::TrapGate16 ||
                  type == seg_type::InterruptGate || type == seg_type::TrapGate);
    if (!valid) raise_gp(idt_error);
    if (checks_gate_dpl(e.kind) && gate.dpl() < cpu.cpl) raise_gp(idt_error);
    if (!gate.present()) raise_fault(vec::NP, idt_error);
    if (type == seg_type::TaskGate) {
        report_task_gate(e.vector);
        raise_gp(idt_error);
    }
    unsigned bytes = (type & 8) ? 4 : 2;  // 32- or 16-bit gate
    uint16_t selector = gate.gate_selector();
    uint64_t offset = bytes == 4 ? gate.gate_offset32() : gate.gate_offset32() & 0xffff;
    Descriptor code = handler_code_segment(cpu, selector, ext);
    bool inner = !code.conforming_code() && code.dpl() < cpu.cpl;
    // From virtual-8086 mode only to a ring-0 handler (SDM §20.3.1.1).
    if (cpu.v86 && (!inner || code.dpl() != 0)) raise_gp(selector_error(selector, ext));
    unsigned new_cpl = inner ? code.dpl() : cpu.cpl;
    SegmentState new_cs = segment_from(static_cast<uint16_t>((selector & ~3u) | new_cpl), code);
    if (offset > new_cs.limit) raise_gp(ext ? 1 : 0);

    uint64_t old_rflags = pushed_rflags(cpu, e);
    SegmentState new_ss = cpu.seg[SS];
    uint64_t new_rsp;
    auto push_rest = [&](StackFrame& frame) {
        frame.push(bytes, old_rflags);
        frame.push(bytes, cpu.seg[CS].selector);
        frame.push(bytes, e.return_rip);
        if (e.error) frame.push(bytes, *e.error);
    };
    if (inner) {
        InnerStack stack = legacy_tss_stack(cpu, new_cpl, ext);
        new_ss = check_inner_stack(cpu, stack.ss, new_cpl, ext);
        unsigned width = new_ss.db ? 32 : 16;
        StackFrame frame(cpu, new_ss, stack.sp & LazyFlags::mask(width / 8), width, true,
                         selector_error(stack.ss, ext));
        if (cpu.v86)
            for (unsigned s : {GS, FS, DS, ES}) frame.push(bytes, cpu.seg[s].selector);
        frame.push(bytes, cpu.seg[SS].selector);
        frame.push(bytes, cpu.gpr[4]);
        push_rest(frame);
        new_rsp = frame.merged_rsp(0);
    } else {
        StackFrame frame(cpu, cpu.seg[SS], cpu.gpr[4] & stack_mask(cpu), cpu.stack_bits, new_cpl < 3, ext ? 1 : 0);
        push_rest(frame);
        new_rsp = frame.merged_rsp(cpu.gpr[4]);
    }

    // Committed: nothing below faults.
    mark_accessed(cpu, selector, code);
    if (cpu.v86)
        for (unsigned s : {GS, FS, DS, ES}) cpu.seg[s] = null_segment(0);
    cpu.seg[SS] = new_ss;
    cpu.gpr[4] = new_rsp;
    cpu.seg[CS] = new_cs;
    uint64_t clear = rflags::TF | rflags::NT | rflags::VM | rflags::RF;
    if (type == seg_type::InterruptGate || type == seg_type::InterruptGate16) clear |= rflags::IF;
    enter_handler(cpu, offset, clear);
}

// IA-32e mode (SDM vol. 3A §6.14): 16-byte gates to 64-bit code, IST, SS:RSP always pushed.
void deliver_long(Cpu& cpu, const Event& e) {
    bool ext = external(e.kind);
    uint32_t idt_error = uint32_t{e.vector} * 8 + 2 + (ext ? 1 : 0);
    if (uint64_t{e.vector} * 16 + 15 > cpu.idtr.limit) raise_gp(idt_error);
    Descriptor gate;
    uint64_t at = cpu.idtr.base + uint64_t{e.vector} * 16;
    uint64_t first = cpu.read_linear<uint64_t>(at, true);
    uint64_t second = cpu.read_linear<uint64_t>(at + 8, true);
    gate.low = static_cast<uint32_t>(first);
    gate.high = static_cast<uint32_t>(first >> 32);
    gate.high2 = static_cast<uint32_t>(second);
    gate.high3 = static_cast<uint32_t>(second >> 32);
    uint8_t type = gate.type();
    if (gate.code_or_data() || (type != seg_type::InterruptGate && type != seg_type::TrapGate) ||
        gate.upper_type() != 0)
        raise_gp(idt_error);
    if (checks_gate_dpl(e.kind) && gate.dpl() < cpu.cpl) raise_gp(idt_error);
    if (!gate.present()) raise_fault(vec::NP, idt_error);
    uint16_t selector = gate.gate_selector();
    uint64_t offset = gate.gate_offset64();
    Descriptor code = handler_code_segment(cpu, selector, ext);
    if (!code.l() || code.db()) raise_gp(selector_error(selector, ext));  // 64-bit code only
    bool inner = !code.conforming_code() && code.dpl() < cpu.cpl;
    unsigned new_cpl = inner ? code.dpl() : cpu.cpl;
    if (!Cpu::canonical(offset)) raise_gp(ext ? 1 : 0);

    uint64_t rsp = cpu.gpr[4];
    if (unsigned ist = gate.gate_ist()) rsp = long_tss_stack(cpu, 0, ist, ext);
    else if (inner) rsp = long_tss_stack(cpu, new_cpl, 0, ext);
    rsp &= ~0xfull;  // SDM §6.14.2: the frame is 16-byte aligned
    StackFrame frame(cpu, cpu.seg[SS], rsp, 64, new_cpl < 3, ext ? 1 : 0);
    frame.push(8, cpu.seg[SS].selector);
    frame.push(8, cpu.gpr[4]);
    frame.push(8, pushed_rflags(cpu, e));
    frame.push(8, cpu.seg[CS].selector);
    frame.push(8, e.return_rip);
    if (e.error) frame.push(8, *e.error);

    mark_accessed(cpu, selector, code);
    if (inner) cpu.seg[SS] = null_segment(static_cast<uint16_t>(new_cpl));
    cpu.gpr[4] = frame.rsp();
    cpu.seg[CS] = segment_from(static_cast<uint16_t>((selector & ~3u) | new_cpl), code);
    uint64_t clear = rflags::TF | rflags::NT | rflags::VM | rflags::RF;
    if (type == seg_type::InterruptGate) clear |= rflags::IF;
    enter_handler(cpu, offset, clear);
}

void deliver_once(Cpu& cpu, const Event& e) {
    if (!cpu.protected_mode) deliver_real(cpu, e);
    else if (cpu.long_mode) deliver_long(cpu, e);
    else deliver_protected(cpu, e);
}

uint64_t return_address(const Cpu& cpu, EventKind kind) {
    switch (kind) {
        case EventKind::SoftwareInt:
        case EventKind::SoftwareException:
        case EventKind::PrivilegedSoftware: return cpu.next_rip;
        default: return cpu.rip;
    }
}

}  // namespace

void deliver_event(Cpu& cpu, uint8_t vector, EventKind kind, std::optional<uint32_t> error_code) {
    Event e{vector, kind, error_code, return_address(cpu, kind)};
    // Each round either delivers or turns the fault of delivery into the next event; a benign
    // first event is followed by at most a contributory fault and then #DF, so this ends.
    for (;;) {
        try {
            deliver_once(cpu, e);
            break;
        } catch (const GuestFault& fault) {
            FaultClass first = classify(e.vector, e.kind);
            FaultClass second = classify(fault.vector, EventKind::Fault);
            if (first == FaultClass::DoubleFault) throw TripleFault{};
            bool double_fault = (first == FaultClass::Contributory && second == FaultClass::Contributory) ||
                                (first == FaultClass::PageFault &&
                                 (second == FaultClass::Contributory || second == FaultClass::PageFault));
            // The new fault belongs to the instruction (or interrupted point) at cpu.rip.
            if (double_fault) e = Event{vec::DF, EventKind::Fault, 0u, cpu.rip};
            else
                e = Event{fault.vector, EventKind::Fault,
                          fault.has_error_code ? std::optional<uint32_t>(fault.error_code) : std::nullopt, cpu.rip};
        }
    }
    if (vector == vec::NMI && kind == EventKind::Nmi) cpu.nmi_masked = true;
    cpu.halted = false;
    cpu.interrupt_shadow = 0;
}

}  // namespace strata::soft
