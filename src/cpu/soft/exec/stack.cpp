// The stack family: PUSH and POP of general registers, memory and immediates, PUSHA/PUSHAD and
// POPA/POPAD (outside 64-bit mode, where the decoder makes them #UD).
//
// Widths: pushes and pops move the operand size (16, 32 or 64 bits; in 64-bit mode 64 by default
// and 16 with 66h) and step rSP by the stack-address size (SS.B, or 64 in 64-bit mode), as the
// shared push()/pop() do. An instruction that touches the stack more than once changes rSP only
// after every access has succeeded, so a fault leaves rSP as it was.
// Missing here: PUSH/POP of segment registers (the segment and system families).
// Spec: Intel SDM vol. 2B PUSH, POP, PUSHA/PUSHAD, POPA/POPAD.
#include <Zydis/Zydis.h>

#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

namespace {

// PUSH r/m/imm. The value is read first, so PUSH RSP pushes the old RSP and PUSH [RSP+n] reads
// relative to it; an immediate (imm8 or imm32) is sign-extended to the operand size.
void push_operand(Cpu& cpu, const Insn& insn) {
    uint64_t value = insn.op[0].kind == OpKind::Imm ? insn.imm : read_operand(cpu, insn, 0);
    push(cpu, insn.osize, value);
}

// POP r/m. POP rSP leaves the popped value in rSP; a memory destination's address is computed
// with rSP already incremented (SDM POP: "computes the effective address after it increments
// the ESP register").
void pop_operand(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.osize;
    if (insn.op[0].kind != OpKind::Mem) {
        uint64_t value = pop(cpu, size);
        write_operand(cpu, insn, 0, value);
        return;
    }
    uint64_t mask = stack_mask(cpu);
    uint64_t value = peek(cpu, size);
    uint64_t old_rsp = cpu.gpr[4];
    uint64_t new_rsp = (old_rsp & ~mask) | ((old_rsp + size) & mask);
    cpu.gpr[4] = new_rsp;
    uint64_t offset = effective_address(cpu, insn);
    cpu.gpr[4] = old_rsp;
    cpu.write_sized(insn.mem.seg, offset, size, value);  // may fault: rSP is still the old one
    cpu.gpr[4] = new_rsp;
}

// PUSHA/PUSHAD: AX, CX, DX, BX, the original SP, BP, SI, DI (or their 32-bit forms).
void pusha(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.osize;
    uint64_t mask = stack_mask(cpu);
    uint64_t rsp = cpu.gpr[4] & mask;
    for (unsigned r = 0; r < 8; ++r) {
        rsp = (rsp - size) & mask;
        cpu.write_sized(SS, rsp, size, cpu.reg(r, size));  // r = 4: the SP before the first push
    }
    cpu.gpr[4] = (cpu.gpr[4] & ~mask) | rsp;
}

// POPA/POPAD: DI, SI, BP, (the saved SP is skipped), BX, DX, CX, AX. All eight are read before any
// register changes.
void popa(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.osize;
    uint64_t mask = stack_mask(cpu);
    uint64_t rsp = cpu.gpr[4] & mask;
    uint64_t values[8];
    for (unsigned i = 0; i < 8; ++i) {
        values[7 - i] = cpu.read_sized(SS, rsp, size);
        rsp = (rsp + size) & mask;
    }
    for (unsigned r = 0; r < 8; ++r)
        if (r != 4) cpu.set_reg(r, size, values[r]);
    cpu.gpr[4] = (cpu.gpr[4] & ~mask) | rsp;
}

// The fast forms (exec.hpp threaded_fast) of the 64-bit PUSH and POP of a register or an
// immediate, the prologue and epilogue of nearly every function in a 64-bit kernel: in 64-bit
// mode the stack is RSP-relative with no segment base or limit, so a TLB hit for the 8 bytes is
// the whole instruction. POP RSP leaves the popped value in RSP (the increment comes first).
bool push64_cached(Cpu& cpu, const Insn& insn) {
    return push64_if_cached(cpu, insn.op[0].kind == OpKind::Imm ? insn.imm : cpu.gpr[insn.op[0].reg]);
}
bool pop64_cached(Cpu& cpu, const Insn& insn) {
    uint64_t value;
    if (!cpu.read_if_cached<uint64_t>(SS, cpu.gpr[4], value)) return false;
    cpu.gpr[4] += 8;
    cpu.gpr[insn.op[0].reg] = value;
    return true;
}
// A push/pop of 8 bytes has a 64-bit mode's stack (the decoder gives 8 only there).
HandlerPair specialize_push(const Insn& insn) {
    if (insn.osize != 8 || (insn.op[0].kind != OpKind::Gpr && insn.op[0].kind != OpKind::Imm)) return {};
    return compiled_fast<&push_operand, &push64_cached>();
}
HandlerPair specialize_pop(const Insn& insn) {
    if (insn.osize != 8 || insn.op[0].kind != OpKind::Gpr) return {};
    return compiled_fast<&pop_operand, &pop64_cached>();
}

}  // namespace

void bind_stack(HandlerTable& table) {
    table.bind(ZYDIS_MNEMONIC_PUSH, compiled<&push_operand>());
    table.bind(ZYDIS_MNEMONIC_PUSH, &push_operand, &specialize_push);
    table.bind(ZYDIS_MNEMONIC_POP, compiled<&pop_operand>());
    table.bind(ZYDIS_MNEMONIC_POP, &pop_operand, &specialize_pop);
    table.bind(ZYDIS_MNEMONIC_PUSHA, &pusha);
    table.bind(ZYDIS_MNEMONIC_PUSHAD, &pusha);
    table.bind(ZYDIS_MNEMONIC_POPA, &popa);
    table.bind(ZYDIS_MNEMONIC_POPAD, &popa);
}

}  // namespace strata::soft
