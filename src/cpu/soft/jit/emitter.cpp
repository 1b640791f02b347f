#include "cpu/soft/jit/emitter.hpp"

#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

void Emitter::block(const Block& block) {
    push(rbx);
    mov(rbx, rdi);
    for (unsigned i = 0; i < block.count; ++i) instruction(block.insns[i]);
    // The sentinel, as continue_block reaches it: its RIP stored, then end_of_block.
    const Insn& sentinel = block.insns[block.count];
    store_rip(sentinel);
    mov(rdi, rbx);
    mov(rsi, reinterpret_cast<uintptr_t>(&sentinel));
    pop(rbx);
    call_function(&end_of_block, true);
    for (size_t i = 0; i < out_of_line_.size(); ++i) out_of_line_[i]();
    // An instruction ended the block (ESI: its index + 1): as continue_block ends it.
    L(ended_);
    mov(rax, qword[rbx + at(cpu_.next_rip)]);
    mov(qword[rbx + at(cpu_.rip)], rax);
    mov(dword[rbx + at(cpu_.block_done)], esi);
    mov(rdi, rbx);
    pop(rbx);
    call_function(&chain_block, true);
}

void Emitter::instruction(const Insn& insn) {
    host_flags_now_ = host_flags_;
    host_flags_ = false;
    if (insn.mnemonic == ZYDIS_MNEMONIC_NOP) {  // no operand is accessed, not even a memory one
        host_flags_ = host_flags_now_;
        return;
    }
    if (jump_form(insn) || conditional_form(insn) || call_return_form(insn) || alu_form(insn) || imul_form(insn) ||
        shift_form(insn) || mov_form(insn) || lea_form(insn) || extend_form(insn) || stack_form(insn))
        return;
    call_handler(insn);
}

void Emitter::store_rip(const Insn& insn) {
    mov(rax, qword[rbx + at(cpu_.block_rip)]);
    lea(rcx, ptr[rax + insn.offset]);
    mov(qword[rbx + at(cpu_.rip)], rcx);
    lea(rcx, ptr[rax + insn.end]);
    mov(qword[rbx + at(cpu_.next_rip)], rcx);
}

void Emitter::call_handler(const Insn& insn) {
    if (!insn.rip_free) store_rip(insn);
    mov(rdi, rbx);
    mov(rsi, reinterpret_cast<uintptr_t>(&insn));
    call_function(insn.exec);
    if (!insn.rip_free) {
        cmp(byte[rbx + at(cpu_.end_block)], 0);
        mov(esi, insn.index + 1u);
        jne(ended_, T_NEAR);
    }
}

void Emitter::slow_path(const Insn& insn, Xbyak::Label& entry, Xbyak::Label& resume) {
    out_of_line_.push_back([this, &insn, &entry, &resume] {
        L(entry);
        call_handler(insn);
        jmp(resume, T_NEAR);
    });
}

void Emitter::end_after(const Insn& insn) {
    mov(byte[rbx + at(cpu_.end_block)], 1);
    mov(esi, insn.index + 1u);
    jmp(ended_, T_NEAR);
}

Xbyak::Reg Emitter::sized(const Xbyak::Reg64& r, unsigned size) {
    switch (size) {
        case 1: return r.cvt8();
        case 2: return r.cvt16();
        case 4: return r.cvt32();
        default: return r;
    }
}

Xbyak::Address Emitter::at_width(const Xbyak::RegExp& address, unsigned size) {
    switch (size) {
        case 1: return byte[address];
        case 2: return word[address];
        case 4: return dword[address];
        default: return qword[address];
    }
}

void Emitter::load(const Xbyak::Reg64& r, const Xbyak::Address& address, unsigned size) {
    if (size == 8) mov(r, address);
    else if (size == 4) mov(r.cvt32(), address);
    else movzx(r.cvt32(), address);
}

void Emitter::store_register(unsigned r, unsigned size) {
    if (size >= 4) mov(qword[rbx + gpr(r)], rax);  // RAX holds the 4-byte value zero-extended
    else mov(at_width(rbx + gpr(r), size), sized(rax, size));
}

bool Emitter::addressable(const Insn& insn) {
    const MemOperand& m = insn.mem;
    int64_t disp = m.disp + (m.base == MemOperand::kRip ? int64_t{insn.end} : 0);
    return disp >= INT32_MIN && disp <= INT32_MAX && (insn.asize == 4 || insn.asize == 8);
}

Emitter::Form Emitter::start_form(const Insn& insn, bool memory) {
    Form form{memory, label(), label()};
    if (memory) address(insn, true);
    return form;
}

void Emitter::finish_form(const Insn& insn, const Form& form) {
    if (!form.memory) return;
    L(form.resume);
    slow_path(insn, form.miss, form.resume);
}

std::optional<Shape> Emitter::inline_shape(const Insn& insn) {
    std::optional<Shape> shape = binary_shape(insn);
    if (shape && has_memory(*shape) && !addressable(insn)) return std::nullopt;
    return shape;
}

// As effective_address (exec/exec.hpp) and Cpu::read's segment base in 64-bit mode.
void Emitter::address(const Insn& insn, bool with_segment) {
    const MemOperand& m = insn.mem;
    int64_t disp = m.disp;
    if (m.base == MemOperand::kRip) {
        disp += insn.end;
        mov(rax, qword[rbx + at(cpu_.block_rip)]);
    } else if (m.base != MemOperand::kNone) {
        mov(rax, qword[rbx + gpr(m.base)]);
    } else {
        xor_(eax, eax);
    }
    if (m.index != MemOperand::kNone) {
        mov(rcx, qword[rbx + gpr(m.index)]);
        lea(rax, ptr[rax + rcx * m.scale + displacement(disp)]);
    } else if (disp != 0) {
        lea(rax, ptr[rax + displacement(disp)]);
    }
    if (insn.asize == 4) mov(eax, eax);
    if (with_segment && m.seg >= FS) add(rax, qword[rbx + at(cpu_.seg[m.seg].base)]);
}

void Emitter::tlb_lookup(unsigned size, bool write, Xbyak::Label& miss) {
    static_assert(sizeof(TlbEntry) == 48);
    mov(rcx, rax);
    shr(rcx, 12);
    and_(ecx, Cpu::kTlbEntries - 1);
    lea(rcx, ptr[rcx + rcx * 2]);
    shl(rcx, 4);  // the slot times 48
    mov(edx, dword[rbx + at(*cpu_.user_tlb_index())]);
    imul(edx, edx, static_cast<int>(sizeof(TlbEntry) * Cpu::kTlbEntries));
    add(rcx, rdx);
    // The tag is compared with the page of the last byte: the hit test is the crossing test.
    lea(rdx, ptr[rax + (size - 1)]);
    and_(rdx, imm32(~int64_t{0xfff}));
    const TlbEntry& e = *cpu_.tlb_base();
    cmp(rdx, qword[rbx + rcx + at(write ? e.write_tag : e.read_tag)]);
    jne(miss, T_NEAR);
    mov(rdx, qword[rbx + rcx + at(e.addend)]);
    add(rdx, rax);
}

void Emitter::load_operand(const Insn& insn, unsigned n, unsigned size, Xbyak::Label& miss) {
    const Operand& op = insn.op[n];
    if (op.kind == OpKind::Gpr) {
        load(rcx, at_width(rbx + gpr(op.reg), size), size);
    } else if (op.kind == OpKind::Imm) {
        uint64_t value = insn.imm & LazyFlags::mask(size);
        if (size == 8) mov(rcx, value);
        else mov(ecx, static_cast<uint32_t>(value));
    } else {
        tlb_lookup(size, false, miss);
        load(rcx, at_width(rdx, size), size);
    }
}

}  // namespace strata::soft
