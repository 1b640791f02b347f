// Inline forms of data movement (exec/data_movement.cpp, stack.cpp): MOV, LEA, MOVZX/MOVSX/
// MOVSXD, and PUSH/POP of a 64-bit register. None changes the flags.
#include <Zydis/Zydis.h>

#include "cpu/soft/exec/forms.hpp"
#include "cpu/soft/jit/emitter.hpp"

namespace strata::soft {

// MOV between general registers, immediates and memory in the shapes of exec/forms.hpp.
bool Emitter::mov_form(const Insn& insn) {
    if (insn.mnemonic != ZYDIS_MNEMONIC_MOV) return false;
    std::optional<Shape> shape = inline_shape(insn);
    if (!shape) return false;
    unsigned size = insn.op[0].size;
    Form form = start_form(insn, has_memory(*shape));
    Xbyak::Label& miss = form.miss;
    if (memory_destination(*shape)) {
        tlb_lookup(size, true, miss);
        load_operand(insn, 1, size, miss);
        mov(at_width(rdx, size), sized(rcx, size));
    } else {
        load_operand(insn, 1, size, miss);
        mov(rax, rcx);
        store_register(insn.op[0].reg, size);
    }
    finish_form(insn, form);
    return true;
}

// LEA of a 4- or 8-byte register: the offset, truncated to the address size, then to the
// operand size.
bool Emitter::lea_form(const Insn& insn) {
    if (insn.mnemonic != ZYDIS_MNEMONIC_LEA || insn.nops < 2) return false;
    const Operand& dst = insn.op[0];
    if (!plain_gpr(dst) || (dst.size != 4 && dst.size != 8) || insn.op[1].kind != OpKind::Mem || !addressable(insn))
        return false;
    address(insn, false);
    if (dst.size == 4) mov(eax, eax);
    mov(qword[rbx + gpr(dst.reg)], rax);
    return true;
}

// MOVZX, MOVSX, MOVSXD into a 4- or 8-byte register from a narrower register or memory.
bool Emitter::extend_form(const Insn& insn) {
    unsigned mnemonic = insn.mnemonic;
    bool sign = mnemonic == ZYDIS_MNEMONIC_MOVSX || mnemonic == ZYDIS_MNEMONIC_MOVSXD;
    if ((!sign && mnemonic != ZYDIS_MNEMONIC_MOVZX) || insn.nops < 2) return false;
    const Operand& dst = insn.op[0];
    const Operand& src = insn.op[1];
    if (!plain_gpr(dst) || (dst.size != 4 && dst.size != 8) || src.size >= dst.size || src.size == 0) return false;
    bool memory = src.kind == OpKind::Mem;
    if ((!memory && !plain_gpr(src)) || (memory && !addressable(insn))) return false;
    Form form = start_form(insn, memory);
    Xbyak::RegExp from = rbx + gpr(src.reg);
    if (memory) {
        tlb_lookup(src.size, false, form.miss);
        from = Xbyak::RegExp(rdx);
    }
    Xbyak::Address value = at_width(from, src.size);
    if (!sign) load(rax, value, src.size);
    else if (src.size == 4) movsxd(rax, value);
    else movsx(dst.size == 8 ? Xbyak::Reg(rax) : Xbyak::Reg(eax), value);
    mov(qword[rbx + gpr(dst.reg)], rax);
    finish_form(insn, form);
    return true;
}

// PUSH r64 and POP r64 in 64-bit mode when the stack's TLB entry hits (stack.cpp push/pop):
// PUSH RSP pushes the old value; POP RSP loads the popped value last.
bool Emitter::stack_form(const Insn& insn) {
    bool is_push = insn.mnemonic == ZYDIS_MNEMONIC_PUSH;
    if ((!is_push && insn.mnemonic != ZYDIS_MNEMONIC_POP) || insn.nops < 1 || insn.osize != 8) return false;
    const Operand& reg = insn.op[0];
    if (!plain_gpr(reg) || reg.size != 8) return false;
    Xbyak::Label& miss = label();
    Xbyak::Label& resume = label();
    size_t stack_pointer = gpr(4);
    mov(rax, qword[rbx + stack_pointer]);
    if (is_push) {
        sub(rax, 8);
        tlb_lookup(8, true, miss);
        mov(rcx, qword[rbx + gpr(reg.reg)]);
        mov(qword[rdx], rcx);
        mov(qword[rbx + stack_pointer], rax);
    } else {
        tlb_lookup(8, false, miss);
        mov(rcx, qword[rdx]);
        add(rax, 8);
        mov(qword[rbx + stack_pointer], rax);
        mov(qword[rbx + gpr(reg.reg)], rcx);
    }
    L(resume);
    slow_path(insn, miss, resume);
    return true;
}

}  // namespace strata::soft
