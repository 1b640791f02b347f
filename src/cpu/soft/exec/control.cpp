// Near control transfers: JMP (relative and indirect), Jcc, JCXZ/JECXZ/JRCXZ, LOOP/LOOPE/LOOPNE,
// CALL (relative and indirect), RET with and without imm16, ENTER (with nesting levels), LEAVE.
//
// Operand sizes: 16 and 32 outside 64-bit mode, as CS.D and 66h make them; in 64-bit mode near
// branches are 64-bit and 66h is ignored, as on Intel processors (AMD's processors honour 66h and
// truncate RIP to 16 bits; the decoder decodes Intel's way, so the instruction lengths agree with
// the behaviour here; the differential tests avoid 66h branches since this host is an AMD one).
// Every target is checked (CS limit, canonical form) before the stack or RIP changes, so a faulting
// branch restarts cleanly (SDM vol. 2 CALL/RET "Operation": the #GP checks precede the push).
// Far forms of JMP, CALL and RET are the segment family's.
// Spec: Intel SDM vol. 2A-2B JMP, Jcc, JCXZ, LOOP, CALL, RET, ENTER, LEAVE.
#include <Zydis/Zydis.h>

#include "cpu/soft/exec/exec.hpp"
#include "cpu/soft/mmu/code_pages.hpp"

namespace strata::soft {

namespace {

// The target of a relative branch: the next instruction's address plus the sign-extended
// displacement the decoder left in insn.imm.
uint64_t relative_target(const Cpu& cpu, const Insn& insn) { return cpu.next_rip + insn.imm; }

void jmp(Cpu& cpu, const Insn& insn) {
    uint64_t target = insn.op[0].kind == OpKind::Imm ? relative_target(cpu, insn) : read_operand(cpu, insn, 0);
    jump_near(cpu, target, insn.osize);
}

// A block goes on past a Jcc that does not jump (interpreter.cpp): one that jumps ends it.
template <unsigned kCc>
struct Jcc {
    static void run(Cpu& cpu, const Insn& insn) {
        if (cpu.flags.condition<kCc>()) jump_near(cpu, relative_target(cpu, insn), insn.osize);
    }
};

// A relative JMP or Jcc back to its block's first instruction (Interpreter::build finds them):
// taken, it goes straight on to that instruction as threaded code, up to Cpu::loop_budget times
// per run of the block, while no other vCPU has made a page code (Cpu::code_epoch); then it ends
// the block as any jump does. Its target is the block's own entry, fetched from when the block
// was entered: no limit or canonical check can fail for it.
constexpr unsigned kAlways = 16;
template <unsigned kCc>  // a condition 0-15 (Jcc), or kAlways (JMP)
void loop_back(Cpu& cpu, const Insn& insn) {
    bool taken;
    if constexpr (kCc == kAlways) taken = true;
    else taken = cpu.flags.condition<kCc>();
    if (!taken) return continue_block<false>(cpu, insn);
    if (cpu.loop_budget != 0 && cpu.code_pages->epoch() == cpu.code_epoch) [[likely]] {
        --cpu.loop_budget;
        cpu.loop_instructions += insn.index + 1u;
        const Insn& first = (&insn)[-static_cast<ptrdiff_t>(insn.index)];
        cpu.rip = cpu.block_rip;
        cpu.next_rip = cpu.block_rip + first.end;
        return first.thread(cpu, first);
    }
    jump_near(cpu, relative_target(cpu, insn), insn.osize);
    continue_block(cpu, insn);  // ends the block
}

template <unsigned... kCc>
constexpr std::array<Handler, sizeof...(kCc)> loop_back_forms(std::integer_sequence<unsigned, kCc...>) {
    return {&loop_back<kCc>...};
}

// JCXZ/JECXZ/JRCXZ: the count register is CX, ECX or RCX by the address size.
void jrcxz(Cpu& cpu, const Insn& insn) {
    if (cpu.reg(1, insn.asize) == 0) jump_near(cpu, relative_target(cpu, insn), insn.osize);
}

// LOOP/LOOPE/LOOPNE: decrement the count register (by the address size; a 32-bit one is written
// as ECX, zero-extended), then branch while it is not zero (and ZF agrees). Flags are unchanged.
template <int kZfCondition>  // -1: LOOP, 1: LOOPE, 0: LOOPNE
void loop(Cpu& cpu, const Insn& insn) {
    uint64_t count = (cpu.gpr[1] - 1) & LazyFlags::mask(insn.asize);
    bool taken = count != 0 && (kZfCondition < 0 || cpu.flags.zf() == (kZfCondition == 1));
    if (taken) jump_near(cpu, relative_target(cpu, insn), insn.osize);  // may fault: before RCX changes
    cpu.set_reg(1, insn.asize, count);
}

// CALL near: the target is read (and checked) with the old stack pointer, then the return
// address is pushed at the operand size.
void call(Cpu& cpu, const Insn& insn) {
    uint64_t return_address = cpu.next_rip;
    uint64_t target = insn.op[0].kind == OpKind::Imm ? relative_target(cpu, insn) : read_operand(cpu, insn, 0);
    jump_near(cpu, target, insn.osize);
    push(cpu, insn.osize, return_address);
}

// RET near [imm16]: the return address is read and checked before RSP moves; then RSP rises past
// it and the imm16 bytes of arguments.
void ret(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.osize;
    jump_near(cpu, peek(cpu, size), size);
    uint64_t mask = stack_mask(cpu);
    uint64_t release = size + (insn.nops > 0 ? insn.imm & 0xffff : 0);
    cpu.gpr[4] = (cpu.gpr[4] & ~mask) | ((cpu.gpr[4] + release) & mask);
}

// ENTER imm16, imm8 (SDM ENTER "Operation"): push the frame pointer, copy nesting-level − 1 frame
// pointers from the old frame, push the new frame pointer, and allocate imm16 bytes. The frame
// pointer steps with the stack-address size; pushes are of the operand size. RSP and RBP change
// only once every access has succeeded, so a fault leaves them as they were.
void enter(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.osize;
    uint64_t mask = stack_mask(cpu);
    uint64_t alloc_size = insn.imm & 0xffff;
    unsigned nesting = static_cast<unsigned>(insn.imm2 & 31);
    uint64_t rsp = cpu.gpr[4] & mask;
    uint64_t rbp = cpu.gpr[5] & mask;
    auto push_local = [&](uint64_t value) {
        rsp = (rsp - size) & mask;
        cpu.write_sized(SS, rsp, size, value);
    };
    push_local(cpu.reg(5, size));
    // FrameTemp: rSP after that push, as wide as the operand size.
    uint64_t frame = ((cpu.gpr[4] & ~mask) | rsp) & LazyFlags::mask(size);
    if (nesting > 0) {
        for (unsigned i = 1; i < nesting; ++i) {
            rbp = (rbp - size) & mask;
            push_local(cpu.read_sized(SS, rbp, size));
        }
        push_local(frame);
    }
    // The new frame pointer, as wide as the operand size. The SDM's pseudo-code writes all of RBP
    // in 64-bit mode; with 66h this AMD host writes BP alone (the differential test), as here.
    cpu.set_reg(5, size, frame);
    cpu.gpr[4] = (cpu.gpr[4] & ~mask) | ((rsp - alloc_size) & mask);
}

// LEAVE: rSP ← rBP (by the stack-address size), then pop rBP (by the operand size).
void leave(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.osize;
    uint64_t mask = stack_mask(cpu);
    uint64_t rsp = cpu.gpr[5] & mask;
    uint64_t saved = cpu.read_sized(SS, rsp, size);
    cpu.gpr[4] = (cpu.gpr[4] & ~mask) | ((rsp + size) & mask);
    cpu.set_reg(5, size, saved);
}

// The fast forms of the 64-bit CALL rel32 and RET (exec.hpp threaded_fast_branch), which every
// function of a 64-bit kernel runs: a canonical target and a TLB hit for the 8 bytes of stack are
// the whole instruction (64-bit mode has no CS limit and no stack base). Anything else takes the
// handlers above, which raise the faults.
bool call64_cached(Cpu& cpu, const Insn& insn) {
    uint64_t target = relative_target(cpu, insn);
    if (!Cpu::canonical(target)) return false;
    if (!push64_if_cached(cpu, cpu.next_rip)) return false;  // the return address
    cpu.next_rip = target;
    cpu.end_block = true;
    return true;
}
bool ret64_cached(Cpu& cpu, const Insn& insn) {
    uint64_t target;
    if (!cpu.read_if_cached<uint64_t>(SS, cpu.gpr[4], target) || !Cpu::canonical(target)) return false;
    cpu.gpr[4] += 8 + (insn.nops > 0 ? insn.imm & 0xffff : 0);
    cpu.next_rip = target;
    cpu.end_block = true;
    return true;
}
// Operand size 8 is 64-bit mode's (the decoder gives it nowhere else).
HandlerPair specialize_call(const Insn& insn) {
    if (insn.osize != 8 || insn.op[0].kind != OpKind::Imm) return {};
    return compiled_fast_branch<&call, &call64_cached>();
}
HandlerPair specialize_ret(const Insn& insn) {
    if (insn.osize != 8) return {};
    return compiled_fast_branch<&ret, &ret64_cached>();
}

}  // namespace

Handler loop_back_form(const Insn& insn) {
    static constexpr auto kForms = loop_back_forms(std::make_integer_sequence<unsigned, kAlways + 1>{});
    if (insn.op[0].kind != OpKind::Imm) return nullptr;
    if (insn.mnemonic == ZYDIS_MNEMONIC_JMP) return kForms[kAlways];
    for (unsigned cc = 0; cc < kConditionalJumps.size(); ++cc)
        if (insn.mnemonic == kConditionalJumps[cc]) return kForms[cc];
    return nullptr;
}

void bind_control(HandlerTable& table) {
    table.bind(ZYDIS_MNEMONIC_JMP, compiled<&jmp>());
    bind_by_condition<Jcc>(table, kConditionalJumps);
    table.bind(ZYDIS_MNEMONIC_JCXZ, &jrcxz);
    table.bind(ZYDIS_MNEMONIC_JECXZ, &jrcxz);
    table.bind(ZYDIS_MNEMONIC_JRCXZ, &jrcxz);
    table.bind(ZYDIS_MNEMONIC_LOOP, &loop<-1>);
    table.bind(ZYDIS_MNEMONIC_LOOPE, &loop<1>);
    table.bind(ZYDIS_MNEMONIC_LOOPNE, &loop<0>);
    table.bind(ZYDIS_MNEMONIC_CALL, compiled<&call>());
    table.bind(ZYDIS_MNEMONIC_CALL, &call, &specialize_call);
    table.bind(ZYDIS_MNEMONIC_RET, compiled<&ret>());
    table.bind(ZYDIS_MNEMONIC_RET, &ret, &specialize_ret);
    table.bind(ZYDIS_MNEMONIC_ENTER, &enter);
    table.bind(ZYDIS_MNEMONIC_LEAVE, compiled<&leave>());
}

}  // namespace strata::soft
