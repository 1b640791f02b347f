// Inline forms of the integer ALU (exec/arith.cpp, logic.cpp, muldiv.cpp, shift.cpp): the host
// instruction computes the result, and the lazy flags are left as the handler leaves them.
#include <Zydis/Zydis.h>

#include "cpu/soft/exec/forms.hpp"
#include "cpu/soft/jit/emitter.hpp"

namespace strata::soft {

namespace {

enum class AluOp { Add, Sub, Cmp, And, Or, Xor, Test };

std::optional<AluOp> alu_op(unsigned mnemonic) {
    switch (mnemonic) {
        case ZYDIS_MNEMONIC_ADD: return AluOp::Add;
        case ZYDIS_MNEMONIC_SUB: return AluOp::Sub;
        case ZYDIS_MNEMONIC_CMP: return AluOp::Cmp;
        case ZYDIS_MNEMONIC_AND: return AluOp::And;
        case ZYDIS_MNEMONIC_OR: return AluOp::Or;
        case ZYDIS_MNEMONIC_XOR: return AluOp::Xor;
        case ZYDIS_MNEMONIC_TEST: return AluOp::Test;
        default: return std::nullopt;
    }
}
bool writes_result(AluOp op) { return op != AluOp::Cmp && op != AluOp::Test; }
bool logic(AluOp op) { return op != AluOp::Add && op != AluOp::Sub && op != AluOp::Cmp; }

constexpr uint64_t kCfOf = rflags::CF | rflags::OF;

}  // namespace

void Emitter::override_flags(uint64_t which) {
    LazyFlags& f = cpu_.flags;
    or_(qword[rbx + at(f.overridden)], imm32(static_cast<int64_t>(which)));
    mov(rcx, qword[rbx + at(f.overrides)]);
    and_(rcx, imm32(~static_cast<int64_t>(which)));
    or_(rcx, rdx);
    mov(qword[rbx + at(f.overrides)], rcx);
}

// ADD, SUB, CMP, AND, OR, XOR, TEST in the shapes of exec/forms.hpp (binary_shape), unlocked:
// RSI = the destination's value, RCX = the source's, RAX = the result, then LazyFlags::set
// (ADD, SUB, CMP) or set_logic as Binary<Op>::Form leaves them.
bool Emitter::alu_form(const Insn& insn) {
    std::optional<AluOp> op = alu_op(insn.mnemonic);
    if (!op) return false;
    std::optional<Shape> shape = inline_shape(insn);
    if (!shape) return false;
    unsigned size = insn.op[0].size;
    Form form = start_form(insn, has_memory(*shape));
    Xbyak::Label& miss = form.miss;
    if (!memory_destination(*shape)) {
        load_operand(insn, 1, size, miss);
        load(rsi, at_width(rbx + gpr(insn.op[0].reg), size), size);
    } else {
        tlb_lookup(size, writes_result(*op), miss);
        load_operand(insn, 1, size, miss);
        load(rsi, at_width(rdx, size), size);
    }
    if (size == 8) mov(rax, rsi);
    else mov(eax, esi);
    Xbyak::Reg a = sized(rax, size), c = sized(rcx, size);
    switch (*op) {
        case AluOp::Add: add(a, c); break;
        case AluOp::Sub: case AluOp::Cmp: sub(a, c); break;
        case AluOp::And: case AluOp::Test: and_(a, c); break;
        case AluOp::Or: or_(a, c); break;
        case AluOp::Xor: xor_(a, c); break;
    }
    // From here to the next instruction only MOVs: the host's flags stay the guest's.
    if (writes_result(*op)) {
        if (memory_destination(*shape)) mov(at_width(rdx, size), a);
        else store_register(insn.op[0].reg, size);
    }
    LazyFlags& f = cpu_.flags;
    mov(qword[rbx + at(f.dst)], rax);
    CcOp kind = logic(*op) ? CcOp::Logic : (*op == AluOp::Add ? CcOp::Add : CcOp::Sub);
    static_assert(offsetof(LazyFlags, size) == offsetof(LazyFlags, op) + 1);
    mov(word[rbx + at(f.op)], static_cast<uint16_t>(static_cast<unsigned>(kind) | (size << 8)));
    mov(qword[rbx + at(f.overridden)], 0);
    if (!logic(*op)) {
        mov(qword[rbx + at(f.src1)], rsi);
        mov(qword[rbx + at(f.src2)], rcx);
        mov(byte[rbx + at(f.carry_in)], 0);
    }
    finish_form(insn, form);
    host_flags_ = !form.memory;
    return true;
}

// IMUL r, r/m and IMUL r, r/m, imm at 4 and 8 bytes (muldiv.cpp imul_form): CF and OF say
// whether the signed product overflowed, over the lazy state of the other flags.
bool Emitter::imul_form(const Insn& insn) {
    if (insn.mnemonic != ZYDIS_MNEMONIC_IMUL || insn.nops < 2 || insn.nops > 3) return false;
    const Operand& dst = insn.op[0];
    const Operand& src = insn.op[1];
    unsigned size = dst.size;
    if (!plain_gpr(dst) || (size != 4 && size != 8)) return false;
    if (insn.nops == 3 && insn.op[2].kind != OpKind::Imm) return false;
    bool memory = src.kind == OpKind::Mem;
    if (!memory && !(plain_gpr(src) && src.size == size)) return false;
    if (memory && !addressable(insn)) return false;
    Form form = start_form(insn, memory);
    Xbyak::Label& miss = form.miss;
    load_operand(insn, 1, size, miss);
    Xbyak::Reg a = sized(rax, size), c = sized(rcx, size);
    if (insn.nops == 3) {
        imul(a, c, static_cast<int>(static_cast<int32_t>(insn.imm)));
    } else {
        load(rax, at_width(rbx + gpr(dst.reg), size), size);
        imul(a, c);
    }
    seto(dl);
    movzx(edx, dl);
    imul(edx, edx, static_cast<int>(kCfOf));
    mov(qword[rbx + gpr(dst.reg)], rax);
    override_flags(kCfOf);
    finish_form(insn, form);
    return true;
}

// SHL, SHR, SAR of a 4- or 8-byte register by an immediate (shift.cpp shift_form): a count of 0
// changes nothing but a 32-bit register's upper half; otherwise SF, ZF and PF by the result
// (the Logic kind), CF the last bit shifted out, OF as the handler computes it (defined by the
// SDM for a count of 1 only), AF set.
bool Emitter::shift_form(const Insn& insn) {
    unsigned mnemonic = insn.mnemonic;
    if (mnemonic != ZYDIS_MNEMONIC_SHL && mnemonic != ZYDIS_MNEMONIC_SHR && mnemonic != ZYDIS_MNEMONIC_SAR) return false;
    const Operand& dst = insn.op[0];
    unsigned size = dst.size, bits = size * 8;
    if (insn.nops < 2 || !plain_gpr(dst) || (size != 4 && size != 8) || insn.op[1].kind != OpKind::Imm) return false;
    auto count = static_cast<uint8_t>(insn.imm & (bits - 1));
    size_t slot = gpr(dst.reg);
    if (count == 0) {
        if (size == 4) {
            mov(eax, dword[rbx + slot]);
            mov(qword[rbx + slot], rax);
        }
        return true;
    }
    load(rax, at_width(rbx + slot, size), size);
    Xbyak::Reg a = sized(rax, size);
    if (mnemonic == ZYDIS_MNEMONIC_SHR && count == 1) mov(rsi, rax);
    if (mnemonic == ZYDIS_MNEMONIC_SHL) shl(a, count);
    else if (mnemonic == ZYDIS_MNEMONIC_SHR) shr(a, count);
    else sar(a, count);
    setc(dl);
    movzx(edx, dl);
    if (mnemonic == ZYDIS_MNEMONIC_SHL) {  // OF = the result's sign XOR CF
        mov(rcx, rax);
        shr(rcx, static_cast<uint8_t>(bits - 1));
        and_(ecx, 1);
        xor_(ecx, edx);
        shl(ecx, 11);
        or_(edx, ecx);
    } else if (mnemonic == ZYDIS_MNEMONIC_SHR && count == 1) {  // OF = the operand's sign
        shr(rsi, static_cast<uint8_t>(bits - 1));
        and_(esi, 1);
        shl(esi, 11);
        or_(edx, esi);
    }
    or_(edx, static_cast<uint32_t>(rflags::AF));
    mov(qword[rbx + slot], rax);
    LazyFlags& f = cpu_.flags;
    mov(qword[rbx + at(f.dst)], rax);
    mov(word[rbx + at(f.op)], static_cast<uint16_t>(static_cast<unsigned>(CcOp::Logic) | (size << 8)));
    mov(qword[rbx + at(f.overridden)], 0);
    override_flags(kCfOf | rflags::AF);
    return true;
}

}  // namespace strata::soft
