// The segment family: segment-register loads and stores (MOV to and from Sreg, PUSH/POP Sreg,
// LDS/LES/LFS/LGS/LSS) and the far control transfers (JMP and CALL far, direct and indirect, to
// code segments and through call gates; RET far with and without imm16; IRET/IRETD/IRETQ).
//
// Every transfer follows its "Operation" in the SDM: all checks (selector, descriptor type,
// privilege, presence, the new RIP against the limit or canonical form, the stack) come before
// the first register changes, so a faulting transfer restarts cleanly; stack frames for a new
// privilege level are written through descriptors.hpp's StackFrame before anything is committed.
// CS and SS loads refresh the mode cache and end the block. MOV SS and POP SS block interrupts
// for one instruction (SDM vol. 3A §6.8.3).
// Missing: task switches (JMP/CALL to a TSS or task gate, IRET with NT outside IA-32e mode):
// reported once on stderr, the guest gets #GP. Linux does not use them.
// Spec: Intel SDM vol. 2 MOV, PUSH, POP, LDS/LES/LFS/LGS/LSS, JMP, CALL, RET, IRET/IRETD/IRETQ;
// vol. 3A §5.8 (privilege level checking for control transfers), §6.14.3 (IRET in IA-32e mode).
#include <Zydis/Zydis.h>
#include <fmt/format.h>

#include <atomic>
#include <cstdio>

#include "cpu/soft/descriptors.hpp"
#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

namespace {

void report_task_switch(const char* how) {
    static std::atomic<bool> reported{false};
    if (!reported.exchange(true))
        fmt::print(stderr, "strata: soft engine: the guest asked for a task switch ({}); task switches are not "
                           "implemented, the guest gets #GP\n", how);
}

// The CPU continues at `rip` in the code segment `cs`.
void enter_code_segment(Cpu& cpu, const SegmentState& cs, uint64_t rip) {
    cpu.seg[CS] = cs;
    cpu.next_rip = rip;
    cpu.refresh_mode();
    cpu.end_block = true;
}

// A transfer's new RIP in `cs`: canonical for 64-bit code, else within the limit (#GP(0)).
uint64_t checked_target(const Cpu& cpu, const SegmentState& cs, uint64_t offset) {
    if (cpu.long_mode && cs.l) {
        if (!Cpu::canonical(offset)) raise_gp(0);
        return offset;
    }
    offset &= 0xffff'ffffu;
    if (offset > cs.limit) raise_gp(0);
    return offset;
}

void advance_rsp(Cpu& cpu, uint64_t bytes) {
    uint64_t mask = stack_mask(cpu);
    cpu.gpr[4] = (cpu.gpr[4] & ~mask) | ((cpu.gpr[4] + bytes) & mask);
}

// --- Segment registers ---

// MOV Sreg, r/m16 and MOV r/m, Sreg. A register destination takes the selector zero-extended to
// the operand size (16-bit: merged into the low word); a memory one always 16 bits.
void mov_segment(Cpu& cpu, const Insn& insn) {
    if (insn.op[0].kind == OpKind::Seg) {
        unsigned s = insn.op[0].reg;
        if (s == CS || s > GS) raise_ud();
        auto selector = static_cast<uint16_t>(read_operand(cpu, insn, 1));
        load_segment_register(cpu, s, selector);
        if (s == SS) cpu.interrupt_shadow = 2;
        return;
    }
    unsigned s = insn.op[1].reg;
    if (s > GS) raise_ud();
    uint16_t selector = cpu.seg[s].selector;
    if (insn.op[0].kind == OpKind::Mem) cpu.write<uint16_t>(insn.mem.seg, effective_address(cpu, insn), selector);
    else cpu.set_reg(insn.op[0].reg, insn.op[0].size, selector);
}

// PUSH Sreg: rSP moves by the operand size, and only the selector's 16 bits are written, as
// recent Intel processors do (SDM vol. 2 PUSH).
void push_segment(Cpu& cpu, const Insn& insn) {
    StackFrame frame(cpu, cpu.seg[SS], cpu.gpr[4] & stack_mask(cpu), cpu.stack_bits, false, 0);
    frame.push_selector(insn.osize, cpu.seg[insn.op[0].reg].selector);
    cpu.gpr[4] = frame.merged_rsp(cpu.gpr[4]);
}

// POP Sreg: the load's checks come before rSP moves (by the old stack's address size).
void pop_segment(Cpu& cpu, const Insn& insn) {
    unsigned s = insn.op[0].reg;
    if (s == CS || s > GS) raise_ud();
    uint64_t mask = stack_mask(cpu);
    auto selector = static_cast<uint16_t>(peek(cpu, insn.osize));
    load_segment_register(cpu, s, selector);
    cpu.gpr[4] = (cpu.gpr[4] & ~mask) | ((cpu.gpr[4] + insn.osize) & mask);
    if (s == SS) cpu.interrupt_shadow = 2;
}

// A far pointer: ptr16:16/ptr16:32 immediates or m16:16/m16:32/m16:64 (offset first).
struct FarPointer {
    uint16_t selector = 0;
    uint64_t offset = 0;
    unsigned offset_bytes = 0;
};

FarPointer far_pointer(Cpu& cpu, const Insn& insn, unsigned n) {
    const Operand& op = insn.op[n];
    unsigned offset_bytes = op.size > 2 ? op.size - 2u : 2u;
    if (op.kind == OpKind::Ptr)
        return {static_cast<uint16_t>(insn.imm2), insn.imm & LazyFlags::mask(offset_bytes), offset_bytes};
    if (op.kind != OpKind::Mem) panic_operand(insn, n);
    uint64_t address = effective_address(cpu, insn);
    uint64_t offset = cpu.read_sized(insn.mem.seg, address, offset_bytes);
    auto selector = cpu.read<uint16_t>(insn.mem.seg, (address + offset_bytes) & LazyFlags::mask(insn.asize));
    return {selector, offset, offset_bytes};
}

// LDS/LES/LFS/LGS/LSS r, m16:16/32/64: the segment load's checks precede the register write.
template <unsigned kSreg>
void load_far_pointer(Cpu& cpu, const Insn& insn) {
    FarPointer p = far_pointer(cpu, insn, 1);
    load_segment_register(cpu, kSreg, p.selector);
    write_operand(cpu, insn, 0, p.offset);
}

// --- Far JMP and CALL ---

// A call gate (SDM vol. 3A §5.8.3): 8 bytes outside IA-32e mode (16- or 32-bit), 16 bytes in it
// (64-bit only). Checks the gate's own DPL and presence and returns it with its target code
// segment, which is checked for type, L/D and presence (the privilege rule is the caller's).
struct GateTarget {
    Descriptor gate;
    unsigned gate_bytes = 4;  // the width of pushes through it: 2, 4 or 8
    uint16_t code_selector = 0;
    Descriptor code;
    uint64_t offset = 0;
};

GateTarget call_gate_target(Cpu& cpu, uint16_t selector, const Descriptor& first) {
    uint32_t error = selector_error(selector);
    GateTarget t;
    t.gate = first;
    if (cpu.long_mode) {
        auto full = read_descriptor(cpu, selector, 16);
        if (!full || full->upper_type() != 0) raise_gp(error);
        t.gate = *full;
    }
    if (t.gate.dpl() < cpu.cpl || rpl(selector) > t.gate.dpl()) raise_gp(error);
    if (!t.gate.present()) raise_fault(vec::NP, error);
    t.gate_bytes = cpu.long_mode ? 8 : t.gate.type() == seg_type::CallGate ? 4 : 2;
    t.code_selector = t.gate.gate_selector();
    if (null_selector(t.code_selector)) raise_gp(0);
    uint32_t code_error = selector_error(t.code_selector);
    auto code = read_descriptor(cpu, t.code_selector);
    if (!code || !code->code() || code->dpl() > cpu.cpl) raise_gp(code_error);
    if (cpu.long_mode && (!code->l() || code->db())) raise_gp(code_error);  // 64-bit code only
    check_code_segment(cpu, *code, code_error);
    t.code = *code;
    t.offset = cpu.long_mode ? t.gate.gate_offset64()
               : t.gate_bytes == 4 ? t.gate.gate_offset32()
                                   : t.gate.gate_offset32() & 0xffff;
    return t;
}

// What a selector names for a far JMP/CALL: the descriptor, or a #GP for anything that is not a
// code segment or a call gate (task switches are missing).
Descriptor far_target_descriptor(Cpu& cpu, uint16_t selector) {
    if (null_selector(selector)) raise_gp(0);
    auto d = read_descriptor(cpu, selector);
    if (!d) raise_gp(selector_error(selector));
    if (d->code_or_data()) return *d;
    uint8_t type = d->type();
    bool call_gate = type == seg_type::CallGate || (!cpu.long_mode && type == seg_type::CallGate16);
    if (call_gate) return *d;
    bool task = !cpu.long_mode && (type == seg_type::TaskGate || type == seg_type::TssAvailable ||
                                   type == seg_type::Tss16Available);
    if (task) report_task_switch("far JMP or CALL to a TSS or task gate");
    raise_gp(selector_error(selector));
}

void far_jump(Cpu& cpu, FarPointer p) {
    if (!cpu.protected_mode || cpu.v86) {
        // Real and virtual-8086 mode: the new IP is checked against CS's (unchanged) limit.
        if (p.offset > cpu.seg[CS].limit) raise_gp(0);
        load_real_mode_segment(cpu, CS, p.selector);
        cpu.next_rip = p.offset;
        cpu.refresh_mode();
        cpu.end_block = true;
        return;
    }
    Descriptor d = far_target_descriptor(cpu, p.selector);
    if (d.code_or_data()) {
        check_direct_code_target(cpu, p.selector, d);
        SegmentState cs = segment_from(static_cast<uint16_t>((p.selector & ~3u) | cpu.cpl), d);
        uint64_t rip = checked_target(cpu, cs, p.offset);
        mark_accessed(cpu, p.selector, d);
        enter_code_segment(cpu, cs, rip);
        return;
    }
    // Through a call gate: JMP never changes privilege, so the code segment must be conforming
    // with DPL ≤ CPL or non-conforming with DPL = CPL (SDM vol. 2 JMP).
    GateTarget t = call_gate_target(cpu, p.selector, d);
    if (!t.code.conforming_code() && t.code.dpl() != cpu.cpl) raise_gp(selector_error(t.code_selector));
    SegmentState cs = segment_from(static_cast<uint16_t>((t.code_selector & ~3u) | cpu.cpl), t.code);
    uint64_t rip = checked_target(cpu, cs, t.offset);
    mark_accessed(cpu, t.code_selector, t.code);
    enter_code_segment(cpu, cs, rip);
}

void jmp_far(Cpu& cpu, const Insn& insn) { far_jump(cpu, far_pointer(cpu, insn, 0)); }

void far_call(Cpu& cpu, FarPointer p, unsigned osize) {
    uint16_t return_cs = cpu.seg[CS].selector;
    uint64_t return_rip = cpu.next_rip;
    if (!cpu.protected_mode || cpu.v86) {
        if (p.offset > cpu.seg[CS].limit) raise_gp(0);
        StackFrame frame(cpu, cpu.seg[SS], cpu.gpr[4] & stack_mask(cpu), cpu.stack_bits, false, 0);
        frame.push(osize, return_cs);
        frame.push(osize, return_rip);
        cpu.gpr[4] = frame.merged_rsp(cpu.gpr[4]);
        load_real_mode_segment(cpu, CS, p.selector);
        cpu.next_rip = p.offset;
        cpu.refresh_mode();
        cpu.end_block = true;
        return;
    }
    Descriptor d = far_target_descriptor(cpu, p.selector);
    if (d.code_or_data()) {
        check_direct_code_target(cpu, p.selector, d);
        SegmentState cs = segment_from(static_cast<uint16_t>((p.selector & ~3u) | cpu.cpl), d);
        uint64_t rip = checked_target(cpu, cs, p.offset);
        StackFrame frame(cpu, cpu.seg[SS], cpu.gpr[4] & stack_mask(cpu), cpu.stack_bits, false, 0);
        frame.push(osize, return_cs);
        frame.push(osize, return_rip);
        mark_accessed(cpu, p.selector, d);
        cpu.gpr[4] = frame.merged_rsp(cpu.gpr[4]);
        enter_code_segment(cpu, cs, rip);
        return;
    }

    GateTarget t = call_gate_target(cpu, p.selector, d);
    unsigned size = t.gate_bytes;
    if (!t.code.conforming_code() && t.code.dpl() < cpu.cpl) {
        // To a more privileged level (SDM vol. 2 CALL, MORE-PRIVILEGE): the new stack from the
        // TSS, the caller's SS:rSP and (32/16-bit gates) its parameters on it, then CS:rIP.
        unsigned new_cpl = t.code.dpl();
        SegmentState cs = segment_from(static_cast<uint16_t>((t.code_selector & ~3u) | new_cpl), t.code);
        uint64_t rip = checked_target(cpu, cs, t.offset);
        SegmentState new_ss;
        uint64_t new_rsp;
        if (cpu.long_mode) {
            new_ss = null_segment(static_cast<uint16_t>(new_cpl));
            StackFrame frame(cpu, new_ss, long_tss_stack(cpu, new_cpl, 0, false), 64, true, 0);
            frame.push(8, cpu.seg[SS].selector);
            frame.push(8, cpu.gpr[4]);
            frame.push(8, return_cs);
            frame.push(8, return_rip);
            new_rsp = frame.rsp();
        } else {
            InnerStack stack = legacy_tss_stack(cpu, new_cpl, false);
            new_ss = check_inner_stack(cpu, stack.ss, new_cpl, false);
            unsigned width = new_ss.db ? 32 : 16;
            StackFrame frame(cpu, new_ss, stack.sp & LazyFlags::mask(width / 8), width, true,
                             selector_error(stack.ss));
            frame.push(size, cpu.seg[SS].selector);
            frame.push(size, cpu.gpr[4]);
            for (unsigned i = t.gate.gate_parameter_count(); i-- > 0;) frame.push(size, peek(cpu, size, uint64_t{i} * size));
            frame.push(size, return_cs);
            frame.push(size, return_rip);
            new_rsp = frame.merged_rsp(0);
        }
        mark_accessed(cpu, t.code_selector, t.code);
        cpu.seg[SS] = new_ss;
        cpu.gpr[4] = new_rsp;
        enter_code_segment(cpu, cs, rip);
        return;
    }
    // Same privilege through the gate: CS:rIP pushed at the gate's width on the current stack.
    SegmentState cs = segment_from(static_cast<uint16_t>((t.code_selector & ~3u) | cpu.cpl), t.code);
    uint64_t rip = checked_target(cpu, cs, t.offset);
    StackFrame frame(cpu, cpu.seg[SS], cpu.gpr[4] & stack_mask(cpu), cpu.stack_bits, false, 0);
    frame.push(size, return_cs);
    frame.push(size, return_rip);
    mark_accessed(cpu, t.code_selector, t.code);
    cpu.gpr[4] = frame.merged_rsp(cpu.gpr[4]);
    enter_code_segment(cpu, cs, rip);
}

void call_far(Cpu& cpu, const Insn& insn) {
    FarPointer p = far_pointer(cpu, insn, 0);
    far_call(cpu, p, p.offset_bytes);
}

// --- RET far and IRET: returns to the same or an outer privilege level ---

// The code segment a return pops (SDM vol. 2 RET, "PROTECTED-MODE"): returns may only go to the
// same or a less privileged level, at the selector's RPL.
SegmentState return_code_segment(Cpu& cpu, uint16_t selector, Descriptor& d) {
    if (null_selector(selector)) raise_gp(0);
    uint32_t error = selector_error(selector);
    auto found = read_descriptor(cpu, selector);
    if (!found || !found->code() || rpl(selector) < cpu.cpl) raise_gp(error);
    d = *found;
    if (d.conforming_code() ? d.dpl() > rpl(selector) : d.dpl() != rpl(selector)) raise_gp(error);
    check_code_segment(cpu, d, error);
    return segment_from(selector, d);
}

// The outer stack segment a return to privilege `new_cpl` pops. A null selector is allowed only
// for a return to 64-bit code below CPL 3 (SDM vol. 2 IRET, IA-32e mode).
SegmentState return_stack_segment(Cpu& cpu, uint16_t selector, unsigned new_cpl, const SegmentState& new_cs) {
    if (null_selector(selector)) {
        if (!(cpu.long_mode && new_cs.l && new_cpl != 3 && rpl(selector) == new_cpl)) raise_gp(0);
        return null_segment(selector);
    }
    uint32_t error = selector_error(selector);
    auto d = read_descriptor(cpu, selector);
    if (!d || rpl(selector) != new_cpl || !d->writable_data() || d->dpl() != new_cpl) raise_gp(error);
    if (!d->present()) raise_ss(error);
    mark_accessed(cpu, selector, *d);
    return segment_from(selector, *d);
}

void far_return(Cpu& cpu, unsigned osize, uint64_t release) {
    uint64_t offset = peek(cpu, osize, 0);
    auto selector = static_cast<uint16_t>(peek(cpu, osize, osize));
    if (!cpu.protected_mode || cpu.v86) {
        offset &= LazyFlags::mask(osize);
        if (offset > cpu.seg[CS].limit) raise_gp(0);
        load_real_mode_segment(cpu, CS, selector);
        advance_rsp(cpu, 2u * osize + release);
        cpu.next_rip = offset;
        cpu.refresh_mode();
        cpu.end_block = true;
        return;
    }
    Descriptor d;
    SegmentState cs = return_code_segment(cpu, selector, d);
    unsigned new_cpl = rpl(selector);
    uint64_t rip = checked_target(cpu, cs, offset);
    if (new_cpl == cpu.cpl) {
        mark_accessed(cpu, selector, d);
        advance_rsp(cpu, 2u * osize + release);
        enter_code_segment(cpu, cs, rip);
        return;
    }
    // To an outer level: the caller's SS:rSP lie above the parameters the imm16 releases.
    uint64_t new_rsp = peek(cpu, osize, 2u * osize + release);
    auto ss_selector = static_cast<uint16_t>(peek(cpu, osize, 3u * osize + release));
    SegmentState ss = return_stack_segment(cpu, ss_selector, new_cpl, cs);
    mark_accessed(cpu, selector, d);
    cpu.seg[SS] = ss;
    enter_code_segment(cpu, cs, rip);  // refreshes the mode: stack_bits of the new SS
    uint64_t mask = stack_mask(cpu);
    cpu.gpr[4] = (new_rsp + release) & mask;
    invalidate_inaccessible_segments(cpu, new_cpl);
}

void ret_far(Cpu& cpu, const Insn& insn) {
    uint64_t release = insn.nops > 0 && insn.op[0].kind == OpKind::Imm ? insn.imm & 0xffff : 0;
    far_return(cpu, insn.osize, release);
}

// The RFLAGS an IRET leaves: which bits the popped image may change depends on the operand size
// and on the CPL and IOPL it executes at (SDM vol. 2 IRET, "Operation").
uint64_t iret_flags(const Cpu& cpu, uint64_t popped, unsigned osize) {
    uint64_t old = cpu.rflags();
    uint64_t changeable = rflags::kArith | rflags::TF | rflags::DF | rflags::NT;
    if (osize >= 4) changeable |= rflags::RF | rflags::AC | rflags::ID;
    unsigned iopl = static_cast<unsigned>((old >> 12) & 3);
    if (cpu.cpl <= iopl) changeable |= rflags::IF;
    if (cpu.cpl == 0) {
        changeable |= rflags::IOPL;
        if (osize >= 4) changeable |= rflags::VIF | rflags::VIP;
    }
    if (osize == 2) changeable &= 0xffff;
    return (old & ~changeable) | (popped & changeable);
}

// IRETD from ring 0 to virtual-8086 mode (SDM vol. 2 IRET, RETURN-TO-VIRTUAL-8086-MODE): the
// frame holds EIP, CS, EFLAGS, ESP, SS, ES, DS, FS, GS.
void return_to_v86(Cpu& cpu, uint64_t eip, uint64_t popped_flags) {
    uint32_t frame[9];
    for (unsigned i = 0; i < 9; ++i) frame[i] = static_cast<uint32_t>(peek(cpu, 4, 4u * i));
    if ((eip & 0xffff'ffffu) > 0xffff) raise_gp(0);
    cpu.set_rflags(popped_flags);
    cpu.refresh_mode();  // v86 from here on: the segment loads below are virtual-8086 ones
    load_real_mode_segment(cpu, CS, static_cast<uint16_t>(frame[1]));
    load_real_mode_segment(cpu, SS, static_cast<uint16_t>(frame[4]));
    load_real_mode_segment(cpu, ES, static_cast<uint16_t>(frame[5]));
    load_real_mode_segment(cpu, DS, static_cast<uint16_t>(frame[6]));
    load_real_mode_segment(cpu, FS, static_cast<uint16_t>(frame[7]));
    load_real_mode_segment(cpu, GS, static_cast<uint16_t>(frame[8]));
    cpu.gpr[4] = frame[3];
    cpu.next_rip = eip & 0xffff;
    cpu.refresh_mode();
    cpu.end_block = true;
}

void iret(Cpu& cpu, const Insn& insn) {
    unsigned osize = insn.osize;
    uint64_t old_flags = cpu.rflags();
    if (!cpu.protected_mode || cpu.v86) {
        // Real mode; virtual-8086 mode only with IOPL 3 (no VME), which keeps IOPL.
        unsigned iopl = static_cast<unsigned>((old_flags >> 12) & 3);
        if (cpu.v86 && iopl != 3) raise_gp(0);
        uint64_t ip = peek(cpu, osize, 0) & LazyFlags::mask(osize);
        auto selector = static_cast<uint16_t>(peek(cpu, osize, osize));
        uint64_t popped = peek(cpu, osize, 2u * osize);
        if (ip > cpu.seg[CS].limit) raise_gp(0);
        uint64_t flags = osize == 2 ? (old_flags & ~0xffffull) | (popped & 0xffff)
                                    : (popped & 0x257fd5) | (old_flags & 0x1a'0000);  // VM, VIF, VIP kept
        if (cpu.v86) flags = (flags & ~rflags::IOPL) | (old_flags & rflags::IOPL);
        advance_rsp(cpu, 3u * osize);
        load_real_mode_segment(cpu, CS, selector);
        cpu.set_rflags(flags);
        cpu.next_rip = ip;
        cpu.nmi_masked = false;
        cpu.refresh_mode();
        cpu.end_block = true;
        return;
    }
    if (old_flags & rflags::NT) {
        // A nested task's return: IA-32e mode has no task switches (#GP(0), SDM §7.7).
        if (!cpu.long_mode) report_task_switch("IRET with NT set");
        raise_gp(0);
    }
    uint64_t rip = peek(cpu, osize, 0);
    auto selector = static_cast<uint16_t>(peek(cpu, osize, osize));
    uint64_t popped = peek(cpu, osize, 2u * osize);
    if (osize == 4 && (popped & rflags::VM) && cpu.cpl == 0 && !cpu.long_mode) {
        return_to_v86(cpu, rip, popped);
        cpu.nmi_masked = false;
        return;
    }
    Descriptor d;
    SegmentState cs = return_code_segment(cpu, selector, d);
    unsigned new_cpl = rpl(selector);
    if (!(cpu.long_mode && cs.l)) rip &= LazyFlags::mask(osize);
    rip = checked_target(cpu, cs, rip);
    uint64_t flags = iret_flags(cpu, popped, osize);
    // 64-bit mode pops SS:RSP at every IRET; elsewhere only a return to an outer level does.
    bool pops_stack = cpu.code64 || new_cpl > cpu.cpl;
    if (!pops_stack) {
        mark_accessed(cpu, selector, d);
        advance_rsp(cpu, 3u * osize);
        cpu.set_rflags(flags);
        cpu.nmi_masked = false;
        enter_code_segment(cpu, cs, rip);
        return;
    }
    uint64_t new_rsp = peek(cpu, osize, 3u * osize);
    auto ss_selector = static_cast<uint16_t>(peek(cpu, osize, 4u * osize));
    SegmentState ss = return_stack_segment(cpu, ss_selector, new_cpl, cs);
    mark_accessed(cpu, selector, d);
    unsigned old_cpl = cpu.cpl;
    cpu.set_rflags(flags);
    cpu.seg[SS] = ss;
    cpu.nmi_masked = false;
    enter_code_segment(cpu, cs, rip);
    // The popped rSP is as wide as the operand size; a 16-bit one replaces SP only.
    cpu.gpr[4] = osize == 2 ? (cpu.gpr[4] & ~0xffffull) | new_rsp : new_rsp;
    if (new_cpl > old_cpl) invalidate_inaccessible_segments(cpu, new_cpl);
}

}  // namespace

void bind_segment(HandlerTable& table) {
    table.bind(ZYDIS_MNEMONIC_MOV, HandlerForm::SegmentRegister, &mov_segment);
    table.bind(ZYDIS_MNEMONIC_PUSH, HandlerForm::SegmentRegister, &push_segment);
    table.bind(ZYDIS_MNEMONIC_POP, HandlerForm::SegmentRegister, &pop_segment);
    table.bind(ZYDIS_MNEMONIC_LDS, &load_far_pointer<DS>);
    table.bind(ZYDIS_MNEMONIC_LES, &load_far_pointer<ES>);
    table.bind(ZYDIS_MNEMONIC_LFS, &load_far_pointer<FS>);
    table.bind(ZYDIS_MNEMONIC_LGS, &load_far_pointer<GS>);
    table.bind(ZYDIS_MNEMONIC_LSS, &load_far_pointer<SS>);
    table.bind(ZYDIS_MNEMONIC_JMP, HandlerForm::Far, &jmp_far);
    table.bind(ZYDIS_MNEMONIC_CALL, HandlerForm::Far, &call_far);
    table.bind(ZYDIS_MNEMONIC_RET, HandlerForm::Far, &ret_far);
    table.bind(ZYDIS_MNEMONIC_IRET, &iret);
    table.bind(ZYDIS_MNEMONIC_IRETD, &iret);
    table.bind(ZYDIS_MNEMONIC_IRETQ, &iret);
}

}  // namespace strata::soft
