#include "cpu/soft/jit/translator.hpp"

#include <Zydis/Zydis.h>
#include <xbyak/xbyak.h>

#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <optional>
#include <vector>

#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

namespace {

constexpr size_t kBufferBytes = 64ull << 20;

unsigned initial_threshold() {
    const char* value = std::getenv("STRATA_SOFT_TRANSLATE");
    if (!value || !*value) return Translator::kDefault;
    if (std::strcmp(value, "off") == 0) return Translator::kOff;
    char* end = nullptr;
    unsigned long runs = std::strtoul(value, &end, 10);
    return *end == '\0' && runs < Translator::kOff ? static_cast<unsigned>(runs) : Translator::kDefault;
}

bool fits_int32(int64_t value) { return value >= INT32_MIN && value <= INT32_MAX; }

// The two-operand ALU operations emitted inline, and what each does with its result and flags.
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
bool logic(AluOp op) { return op == AluOp::And || op == AluOp::Or || op == AluOp::Xor || op == AluOp::Test; }

bool plain_register(const Operand& op) { return op.kind == OpKind::Gpr && !op.high8; }

// The condition (0-15, SDM vol. 1 app. B) of a Jcc mnemonic, or none.
std::optional<unsigned> jump_condition(const Insn& insn) {
    switch (insn.mnemonic) {
        case ZYDIS_MNEMONIC_JO: case ZYDIS_MNEMONIC_JNO: case ZYDIS_MNEMONIC_JB: case ZYDIS_MNEMONIC_JNB:
        case ZYDIS_MNEMONIC_JZ: case ZYDIS_MNEMONIC_JNZ: case ZYDIS_MNEMONIC_JBE: case ZYDIS_MNEMONIC_JNBE:
        case ZYDIS_MNEMONIC_JS: case ZYDIS_MNEMONIC_JNS: case ZYDIS_MNEMONIC_JP: case ZYDIS_MNEMONIC_JNP:
        case ZYDIS_MNEMONIC_JL: case ZYDIS_MNEMONIC_JNL: case ZYDIS_MNEMONIC_JLE: case ZYDIS_MNEMONIC_JNLE:
            return insn.opcode & 0xfu;
        default: return std::nullopt;
    }
}

// What translated code calls to evaluate a condition the host's flags do not hold.
bool guest_condition(const Cpu& cpu, unsigned cc) { return cpu.flags.condition(cc); }

// One block's host code. Scratch registers: RAX, RCX, RDX, RSI, RDI (the handlers' calls
// clobber them anyway); RBX is the Cpu.
class Emitter : public Xbyak::CodeGenerator {
public:
    // Writes at `buffer`, which executes at `runs_at`.
    Emitter(Cpu& cpu, uint8_t* buffer, const uint8_t* runs_at, size_t room)
        : Xbyak::CodeGenerator(room, buffer), cpu_(cpu), runs_at_(reinterpret_cast<uintptr_t>(runs_at)) {}

    void block(const Block& block) {
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
        for (auto& emit : out_of_line_) emit();
        // An instruction ended the block (RSI: it): as continue_block ends it.
        L(ended_);
        mov(rax, qword[rbx + at(cpu_.next_rip)]);
        mov(qword[rbx + at(cpu_.rip)], rax);
        mov(qword[rbx + at(cpu_.block_exit)], rsi);
        mov(rdi, rbx);
        pop(rbx);
        call_function(&chain_block, true);
    }

private:
    // The offset of a member of the Cpu from RBX.
    template <class T>
    size_t at(const T& member) const {
        return static_cast<size_t>(reinterpret_cast<const char*>(&member) - reinterpret_cast<const char*>(&cpu_));
    }
    size_t gpr(unsigned r) const { return at(cpu_.gpr[r]); }
    // A signed displacement or immediate as Xbyak takes it (two's complement).
    static size_t displacement(int64_t value) { return static_cast<size_t>(value); }
    static uint32_t imm32(int64_t value) { return static_cast<uint32_t>(value); }

    // CALL (or JMP) rel32 where the target is in reach of where this code runs, else through RAX.
    template <class F>
    void call_function(F* function, bool tail = false) {
        auto target = reinterpret_cast<uintptr_t>(function);
        auto displacement = static_cast<int64_t>(target - (runs_at_ + getSize() + 5));
        if (fits_int32(displacement)) {
            db(tail ? 0xe9 : 0xe8);
            dd(static_cast<uint32_t>(displacement));
        } else {
            mov(rax, target);
            if (tail) jmp(rax);
            else call(rax);
        }
    }

    void instruction(const Insn& insn) {
        // The host's flags are the guest's right after an inline ALU instruction on registers
        // (the flags' recording is all MOVs): a Jcc just after it tests them directly.
        bool host_flags = host_flags_;
        host_flags_ = false;
        if (jump_form(insn, host_flags) || inline_form(insn)) return;
        call_handler(insn);
    }

    // A host jump to `target` when condition `cc` of the host's flags is false.
    void jump_unless(unsigned cc, Xbyak::Label& target) {
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

    // JMP rel and Jcc rel in 64-bit code: the target is the block's RIP plus the instruction's
    // end plus the displacement; a non-canonical one is left to the handler (#GP).
    bool jump_form(const Insn& insn, bool host_flags) {
        std::optional<unsigned> cc = jump_condition(insn);
        bool always = insn.mnemonic == ZYDIS_MNEMONIC_JMP;
        if ((!cc && !always) || insn.nops < 1 || insn.op[0].kind != OpKind::Imm || insn.osize != 8) return false;
        int64_t displacement = static_cast<int64_t>(insn.imm) + insn.end;
        if (!fits_int32(displacement)) return false;
        Xbyak::Label& not_taken = label();
        Xbyak::Label& slow = label();
        if (cc) {
            if (host_flags) {
                jump_unless(*cc, not_taken);
            } else {
                mov(rdi, rbx);
                mov(esi, *cc);
                call_function(&guest_condition);
                test(al, al);
                jz(not_taken, T_NEAR);
            }
        }
        mov(rax, qword[rbx + at(cpu_.block_rip)]);
        add(rax, imm32(displacement));
        mov(rcx, rax);
        shl(rcx, 16);
        sar(rcx, 16);
        cmp(rcx, rax);
        jne(slow, T_NEAR);
        mov(qword[rbx + at(cpu_.next_rip)], rax);
        mov(byte[rbx + at(cpu_.end_block)], 1);
        mov(rsi, reinterpret_cast<uintptr_t>(&insn));
        jmp(ended_, T_NEAR);
        out_of_line_.push_back([this, &insn, &slow] {
            L(slow);
            call_handler(insn);  // raises the #GP
            ud2();
        });
        L(not_taken);
        return true;
    }

    void store_rip(const Insn& insn) {
        mov(rax, qword[rbx + at(cpu_.block_rip)]);
        lea(rcx, ptr[rax + insn.offset]);
        mov(qword[rbx + at(cpu_.rip)], rcx);
        lea(rcx, ptr[rax + insn.end]);
        mov(qword[rbx + at(cpu_.next_rip)], rcx);
    }

    // The instruction's handler, as threaded code runs it.
    void call_handler(const Insn& insn) {
        if (!insn.rip_free) store_rip(insn);
        mov(rdi, rbx);
        mov(rsi, reinterpret_cast<uintptr_t>(&insn));
        call_function(insn.exec);
        if (!insn.rip_free) {
            cmp(byte[rbx + at(cpu_.end_block)], 0);
            mov(rsi, reinterpret_cast<uintptr_t>(&insn));
            jne(ended_, T_NEAR);
        }
    }

    // --- Inline forms ---

    bool inline_form(const Insn& insn) {
        if (insn.nops < 2 || (insn.prefixes & prefix::Lock)) return false;
        const Operand& dst = insn.op[0];
        const Operand& src = insn.op[1];
        if (dst.size != 4 && dst.size != 8) return false;
        if (insn.mnemonic == ZYDIS_MNEMONIC_LEA) return lea_form(insn);
        bool src_ok = (plain_register(src) && src.size == dst.size) || src.kind == OpKind::Imm ||
                      (src.kind == OpKind::Mem && src.size == dst.size && plain_register(dst));
        if (!src_ok || (!plain_register(dst) && dst.kind != OpKind::Mem)) return false;
        if (insn.mnemonic == ZYDIS_MNEMONIC_MOV) return mov_form(insn);
        if (std::optional<AluOp> op = alu_op(insn.mnemonic)) return alu_form(insn, *op);
        return false;
    }

    // Whether the memory operand's address is computed inline: a displacement (RIP-relative: plus
    // the instruction's end) that fits 32 bits, a 4- or 8-byte address size.
    static bool addressable(const Insn& insn) {
        const MemOperand& m = insn.mem;
        int64_t disp = m.disp + (m.base == MemOperand::kRip ? int64_t{insn.end} : 0);
        return fits_int32(disp) && (insn.asize == 4 || insn.asize == 8);
    }

    // RAX = the memory operand's offset (Exec's effective_address), plus its segment's base
    // (FS, GS) when `with_segment`: the linear address in 64-bit mode.
    void address(const Insn& insn, bool with_segment) {
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

    // RDX = the host address of `size` bytes at linear RAX when the TLB holds them for the
    // access (Cpu::cached_read / cached_write), else a jump to `miss`.
    void tlb_lookup(unsigned size, bool write, Xbyak::Label& miss) {
        mov(rcx, rax);
        shr(rcx, 12);
        and_(ecx, Cpu::kTlbEntries - 1);
        lea(rcx, ptr[rcx + rcx * 2]);
        shl(rcx, 4);
        static_assert(sizeof(TlbEntry) == 48);
        mov(edx, dword[rbx + at(*cpu_.user_tlb_index())]);
        imul(edx, edx, static_cast<int>(sizeof(TlbEntry) * Cpu::kTlbEntries));
        add(rcx, rdx);
        lea(rdx, ptr[rax + (size - 1)]);
        and_(rdx, imm32(~int64_t{0xfff}));
        const TlbEntry& e = *cpu_.tlb_base();
        cmp(rdx, qword[rbx + rcx + at(write ? e.write_tag : e.read_tag)]);
        jne(miss, T_NEAR);
        mov(rdx, qword[rbx + rcx + at(e.addend)]);
        add(rdx, rax);
    }

    // The handler out of line, for a TLB miss, then back to `resume`.
    void slow_path(const Insn& insn, Xbyak::Label& miss, Xbyak::Label& resume) {
        out_of_line_.push_back([this, &insn, &miss, &resume] {
            L(miss);
            call_handler(insn);
            jmp(resume, T_NEAR);
        });
    }
    Xbyak::Label& label() { return labels_.emplace_back(); }

    // A 4- or 8-byte view of RAX, RCX or RDX.
    Xbyak::Reg sized(const Xbyak::Reg64& r, unsigned size) { return size == 8 ? Xbyak::Reg(r) : Xbyak::Reg(r.cvt32()); }

    // RCX = operand 1 (a register, an immediate, or memory through the TLB), zero-extended.
    void load_source(const Insn& insn, unsigned size, Xbyak::Label& miss) {
        const Operand& src = insn.op[1];
        if (src.kind == OpKind::Gpr) {
            mov(sized(rcx, size), size == 8 ? qword[rbx + gpr(src.reg)] : dword[rbx + gpr(src.reg)]);
        } else if (src.kind == OpKind::Imm) {
            if (size == 8) mov(rcx, insn.imm);
            else mov(ecx, static_cast<uint32_t>(insn.imm));
        } else {
            tlb_lookup(size, false, miss);
            mov(sized(rcx, size), size == 8 ? qword[rdx] : dword[rdx]);
        }
    }

    static bool has_memory_operand(const Insn& insn) {
        return insn.op[0].kind == OpKind::Mem || insn.op[1].kind == OpKind::Mem;
    }

    bool mov_form(const Insn& insn) {
        unsigned size = insn.op[0].size;
        const Operand& dst = insn.op[0];
        bool memory = has_memory_operand(insn);
        if (memory && !addressable(insn)) return false;
        Xbyak::Label& miss = label();
        Xbyak::Label& resume = label();
        if (memory) address(insn, true);
        if (dst.kind == OpKind::Gpr) {
            load_source(insn, size, miss);
            mov(qword[rbx + gpr(dst.reg)], rcx);
        } else {
            tlb_lookup(size, true, miss);
            load_source_register_or_imm(insn, size);
            mov(size == 8 ? qword[rdx] : dword[rdx], sized(rcx, size));
        }
        if (memory) {
            L(resume);
            slow_path(insn, miss, resume);
        }
        return true;
    }

    void load_source_register_or_imm(const Insn& insn, unsigned size) {
        const Operand& src = insn.op[1];
        if (src.kind == OpKind::Gpr) mov(sized(rcx, size), size == 8 ? qword[rbx + gpr(src.reg)] : dword[rbx + gpr(src.reg)]);
        else if (size == 8) mov(rcx, insn.imm);
        else mov(ecx, static_cast<uint32_t>(insn.imm));
    }

    bool lea_form(const Insn& insn) {
        const Operand& dst = insn.op[0];
        if (!plain_register(dst) || insn.op[1].kind != OpKind::Mem) return false;
        if (!addressable(insn)) return false;
        address(insn, false);
        if (dst.size == 4) mov(eax, eax);
        mov(qword[rbx + gpr(dst.reg)], rax);
        return true;
    }

    // The lazy flags as LazyFlags::set / set_logic leave them: RAX the result, RSI the
    // destination's old value, RCX the source.
    void record_flags(AluOp op, unsigned size) {
        LazyFlags& f = cpu_.flags;
        mov(qword[rbx + at(f.dst)], rax);
        CcOp kind = logic(op) ? CcOp::Logic : (op == AluOp::Add ? CcOp::Add : CcOp::Sub);
        static_assert(offsetof(LazyFlags, size) == offsetof(LazyFlags, op) + 1);
        mov(word[rbx + at(f.op)], static_cast<uint16_t>(static_cast<unsigned>(kind) | (size << 8)));
        mov(qword[rbx + at(f.overridden)], 0);
        if (!logic(op)) {
            mov(qword[rbx + at(f.src1)], rsi);
            mov(qword[rbx + at(f.src2)], rcx);
            mov(byte[rbx + at(f.carry_in)], 0);
        }
    }

    void compute(AluOp op, unsigned size) {
        Xbyak::Reg a = sized(rax, size), c = sized(rcx, size);
        switch (op) {
            case AluOp::Add: add(a, c); break;
            case AluOp::Sub: case AluOp::Cmp: sub(a, c); break;
            case AluOp::And: case AluOp::Test: and_(a, c); break;
            case AluOp::Or: or_(a, c); break;
            case AluOp::Xor: xor_(a, c); break;
        }
    }

    bool alu_form(const Insn& insn, AluOp op) {
        unsigned size = insn.op[0].size;
        const Operand& dst = insn.op[0];
        bool memory = has_memory_operand(insn);
        if (memory && !addressable(insn)) return false;
        Xbyak::Label& miss = label();
        Xbyak::Label& resume = label();
        if (memory) address(insn, true);
        if (dst.kind == OpKind::Gpr) {
            load_source(insn, size, miss);
            mov(sized(rsi, size), size == 8 ? qword[rbx + gpr(dst.reg)] : dword[rbx + gpr(dst.reg)]);
            mov(sized(rax, size), sized(rsi, size));
            compute(op, size);
            if (writes_result(op)) mov(qword[rbx + gpr(dst.reg)], rax);
        } else {
            tlb_lookup(size, writes_result(op), miss);
            load_source_register_or_imm(insn, size);
            mov(sized(rsi, size), size == 8 ? qword[rdx] : dword[rdx]);
            mov(sized(rax, size), sized(rsi, size));
            compute(op, size);
            if (writes_result(op)) mov(size == 8 ? qword[rdx] : dword[rdx], sized(rax, size));
        }
        record_flags(op, size);
        if (memory) {
            L(resume);
            slow_path(insn, miss, resume);
        }
        host_flags_ = !memory;
        return true;
    }

    Cpu& cpu_;
    uintptr_t runs_at_;
    Xbyak::Label ended_;
    bool host_flags_ = false;  // the host's flags are the guest's (after an inline ALU form)
    std::vector<std::function<void()>> out_of_line_;
    std::deque<Xbyak::Label> labels_;
};

}  // namespace

std::atomic<unsigned> Translator::threshold_{initial_threshold()};

std::unique_ptr<Translator> Translator::create(Cpu& cpu) {
    std::unique_ptr<CodeBuffer> code = CodeBuffer::create(kBufferBytes);
    if (!code) return nullptr;
    return std::unique_ptr<Translator>(new Translator(cpu, std::move(code)));
}

bool Translator::translate(Block& block) {
    if (block.mode != CodeMode::Long64 || block.wraps || block.second_page != ~0ull || block.count == 0) return false;
    try {
        Emitter emitter(cpu_, code_->write_cursor(), code_->execute_cursor(), code_->room());
        emitter.block(block);
        block.insns[0].thread = reinterpret_cast<Handler>(const_cast<uint8_t*>(code_->commit(emitter.getSize())));
    } catch (const Xbyak::Error&) {
        return false;  // the buffer is full until the block cache is dropped
    }
    ++translated_;
    return true;
}

}  // namespace strata::soft
