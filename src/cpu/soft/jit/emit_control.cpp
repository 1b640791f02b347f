// Inline forms of control flow and conditions (exec/control.cpp, data_movement.cpp): JMP and
// Jcc rel, CALL rel and RET near in 64-bit code, SETcc and CMOVcc. A condition is the host's own
// flag test right after an inline ALU form on registers (the host's flags are the guest's then),
// else LazyFlags::condition through a call. A jump ends the block as jump_near does: next RIP
// the target, end_block set; a non-canonical target is left to the handler (#GP).
#include <Zydis/Zydis.h>

#include "cpu/soft/exec/forms.hpp"
#include "cpu/soft/jit/emitter.hpp"

namespace strata::soft {

namespace {

// The condition (0-15, SDM vol. 1 app. B) of a Jcc, SETcc or CMOVcc: the low four bits of its
// last opcode byte.
std::optional<unsigned> condition_of(const Insn& insn, bool& jump, bool& set, bool& move) {
    jump = set = move = false;
    switch (insn.mnemonic) {
        case ZYDIS_MNEMONIC_JO: case ZYDIS_MNEMONIC_JNO: case ZYDIS_MNEMONIC_JB: case ZYDIS_MNEMONIC_JNB:
        case ZYDIS_MNEMONIC_JZ: case ZYDIS_MNEMONIC_JNZ: case ZYDIS_MNEMONIC_JBE: case ZYDIS_MNEMONIC_JNBE:
        case ZYDIS_MNEMONIC_JS: case ZYDIS_MNEMONIC_JNS: case ZYDIS_MNEMONIC_JP: case ZYDIS_MNEMONIC_JNP:
        case ZYDIS_MNEMONIC_JL: case ZYDIS_MNEMONIC_JNL: case ZYDIS_MNEMONIC_JLE: case ZYDIS_MNEMONIC_JNLE:
            jump = true;
            break;
        case ZYDIS_MNEMONIC_SETO: case ZYDIS_MNEMONIC_SETNO: case ZYDIS_MNEMONIC_SETB: case ZYDIS_MNEMONIC_SETNB:
        case ZYDIS_MNEMONIC_SETZ: case ZYDIS_MNEMONIC_SETNZ: case ZYDIS_MNEMONIC_SETBE: case ZYDIS_MNEMONIC_SETNBE:
        case ZYDIS_MNEMONIC_SETS: case ZYDIS_MNEMONIC_SETNS: case ZYDIS_MNEMONIC_SETP: case ZYDIS_MNEMONIC_SETNP:
        case ZYDIS_MNEMONIC_SETL: case ZYDIS_MNEMONIC_SETNL: case ZYDIS_MNEMONIC_SETLE: case ZYDIS_MNEMONIC_SETNLE:
            set = true;
            break;
        case ZYDIS_MNEMONIC_CMOVO: case ZYDIS_MNEMONIC_CMOVNO: case ZYDIS_MNEMONIC_CMOVB: case ZYDIS_MNEMONIC_CMOVNB:
        case ZYDIS_MNEMONIC_CMOVZ: case ZYDIS_MNEMONIC_CMOVNZ: case ZYDIS_MNEMONIC_CMOVBE: case ZYDIS_MNEMONIC_CMOVNBE:
        case ZYDIS_MNEMONIC_CMOVS: case ZYDIS_MNEMONIC_CMOVNS: case ZYDIS_MNEMONIC_CMOVP: case ZYDIS_MNEMONIC_CMOVNP:
        case ZYDIS_MNEMONIC_CMOVL: case ZYDIS_MNEMONIC_CMOVNL: case ZYDIS_MNEMONIC_CMOVLE: case ZYDIS_MNEMONIC_CMOVNLE:
            move = true;
            break;
        default: return std::nullopt;
    }
    return insn.opcode & 0xfu;
}

bool guest_condition(const Cpu& cpu, unsigned cc) { return cpu.flags.condition(cc); }

}  // namespace

void Emitter::jump_unless(unsigned cc, Xbyak::Label& target) {
    switch (cc ^ 1u) {
        case 0: jo(target, T_NEAR); break;
        case 1: jno(target, T_NEAR); break;
        case 2: jb(target, T_NEAR); break;
        case 3: jnb(target, T_NEAR); break;
        case 4: jz(target, T_NEAR); break;
        case 5: jnz(target, T_NEAR); break;
        case 6: jbe(target, T_NEAR); break;
        case 7: jnbe(target, T_NEAR); break;
        case 8: js(target, T_NEAR); break;
        case 9: jns(target, T_NEAR); break;
        case 10: jp(target, T_NEAR); break;
        case 11: jnp(target, T_NEAR); break;
        case 12: jl(target, T_NEAR); break;
        case 13: jnl(target, T_NEAR); break;
        case 14: jle(target, T_NEAR); break;
        default: jnle(target, T_NEAR); break;
    }
}

void Emitter::condition(unsigned cc) {
    if (!host_flags_now_) {
        mov(rdi, rbx);
        mov(esi, cc);
        call_function(&guest_condition);
        return;
    }
    Xbyak::Label& no = label();
    Xbyak::Label& done = label();
    jump_unless(cc, no);
    mov(eax, 1);
    jmp(done, T_NEAR);
    L(no);
    xor_(eax, eax);
    L(done);
}

bool Emitter::jump_form(const Insn& insn) {
    bool jump, set, move;
    std::optional<unsigned> cc = condition_of(insn, jump, set, move);
    if (!jump && insn.mnemonic != ZYDIS_MNEMONIC_JMP) return false;
    if (insn.nops < 1 || insn.op[0].kind != OpKind::Imm || insn.osize != 8) return false;
    int64_t to_target = static_cast<int64_t>(insn.imm) + insn.end;
    if (to_target < INT32_MIN || to_target > INT32_MAX) return false;
    Xbyak::Label& not_taken = label();
    Xbyak::Label& slow = label();
    Xbyak::Label& never = label();
    if (jump) {
        if (host_flags_now_) {
            jump_unless(*cc, not_taken);
        } else {
            condition(*cc);
            test(al, al);
            jz(not_taken, T_NEAR);
        }
    }
    mov(rax, qword[rbx + at(cpu_.block_rip)]);
    add(rax, imm32(to_target));
    mov(rcx, rax);
    shl(rcx, 16);
    sar(rcx, 16);
    cmp(rcx, rax);
    jne(slow, T_NEAR);
    mov(qword[rbx + at(cpu_.next_rip)], rax);
    end_after(insn);
    slow_path(insn, slow, never);  // the handler raises the #GP: it does not come back
    L(never);
    ud2();
    L(not_taken);
    return true;
}

// SETcc of a byte register; CMOVcc between 4- or 8-byte registers (a 4-byte one is written,
// so zero-extended, either way).
bool Emitter::conditional_form(const Insn& insn) {
    bool jump, set, move;
    std::optional<unsigned> cc = condition_of(insn, jump, set, move);
    if (!set && !move) return false;
    const Operand& dst = insn.op[0];
    if (set) {
        if (insn.nops < 1 || !plain_gpr(dst) || dst.size != 1) return false;
        condition(*cc);
        mov(byte[rbx + gpr(dst.reg)], al);
        return true;
    }
    const Operand& src = insn.op[1];
    if (insn.nops < 2 || !plain_gpr(dst) || !plain_gpr(src) || (dst.size != 4 && dst.size != 8) || src.size != dst.size)
        return false;
    condition(*cc);
    movzx(edx, al);
    load(rax, at_width(rbx + gpr(dst.reg), dst.size), dst.size);
    load(rcx, at_width(rbx + gpr(src.reg), dst.size), dst.size);
    test(edx, edx);
    cmovnz(rax, rcx);
    mov(qword[rbx + gpr(dst.reg)], rax);
    return true;
}

// CALL rel32 and RET [imm16] with 64-bit operands when the stack's TLB entry hits (control.cpp
// call, ret): the target is checked before anything changes.
bool Emitter::call_return_form(const Insn& insn) {
    bool is_call = insn.mnemonic == ZYDIS_MNEMONIC_CALL;
    if ((!is_call && insn.mnemonic != ZYDIS_MNEMONIC_RET) || insn.osize != 8) return false;
    if (is_call && (insn.nops < 1 || insn.op[0].kind != OpKind::Imm)) return false;
    if (!is_call && insn.nops > 0 && insn.op[0].kind != OpKind::Imm) return false;
    Xbyak::Label& slow = label();
    size_t stack_pointer = gpr(4);
    mov(rax, qword[rbx + stack_pointer]);
    if (is_call) {
        sub(rax, 8);
        tlb_lookup(8, true, slow);
        mov(rcx, qword[rbx + at(cpu_.block_rip)]);
        lea(rcx, ptr[rcx + insn.end]);  // the return address
        lea(rsi, ptr[rcx + displacement(static_cast<int64_t>(insn.imm))]);
    } else {
        tlb_lookup(8, false, slow);
        mov(rsi, qword[rdx]);
        add(rax, static_cast<uint32_t>(8 + (insn.nops > 0 ? insn.imm & 0xffff : 0)));
    }
    mov(rdi, rsi);
    shl(rdi, 16);
    sar(rdi, 16);
    cmp(rdi, rsi);
    jne(slow, T_NEAR);
    if (is_call) mov(qword[rdx], rcx);
    mov(qword[rbx + stack_pointer], rax);
    mov(qword[rbx + at(cpu_.next_rip)], rsi);
    end_after(insn);
    // A TLB miss or a non-canonical target: the handler, which may fault or jump.
    out_of_line_.push_back([this, &insn, &slow] {
        L(slow);
        call_handler(insn);
        end_after(insn);
    });
    return true;
}

}  // namespace strata::soft
