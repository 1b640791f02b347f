// One block's host code, as the translator (jit/translator.hpp) emits it: the block's frame and
// ends, the call of a handler, and the pieces the inline forms share (operands in Cpu::gpr,
// effective addresses, the inline TLB lookup, the lazy flags). The inline forms live by family:
// emit_alu.cpp (ADD ... TEST, IMUL, shifts), emit_moves.cpp (MOV, LEA, MOVZX/MOVSX, PUSH, POP,
// NOP), emit_control.cpp (JMP, Jcc, SETcc, CMOVcc, CALL, RET). Each reads like its handler in
// exec/, whose results (the lazy flags included) it reproduces exactly: the differential tests
// compare the two.
//
// Registers: RBX is the Cpu throughout; RAX, RCX, RDX, RSI and RDI are scratch (a handler call
// clobbers them). Nothing but the prologue's PUSH RBX moves RSP (the frame rule of CodeBuffer).
#pragma once

#include <xbyak/xbyak.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <vector>

#include "cpu/soft/block_cache.hpp"
#include "cpu/soft/cpu.hpp"
#include "cpu/soft/exec/forms.hpp"

namespace strata::soft {

class Emitter : public Xbyak::CodeGenerator {
public:
    // Writes at `buffer`, which executes at `runs_at`.
    Emitter(Cpu& cpu, uint8_t* buffer, const uint8_t* runs_at, size_t room)
        : Xbyak::CodeGenerator(room, buffer), cpu_(cpu), runs_at_(reinterpret_cast<uintptr_t>(runs_at)) {}

    void block(const Block& block);

private:
    // --- Frame, calls, ends (emitter.cpp) ---
    void instruction(const Insn& insn);
    void store_rip(const Insn& insn);
    // The instruction's handler, as threaded code runs it: RIP and next RIP stored first and
    // the end of the block checked after, unless it is RIP-free.
    void call_handler(const Insn& insn);
    // The handler out of line (a TLB miss, a target the inline form does not take), then on
    // at `resume`.
    void slow_path(const Insn& insn, Xbyak::Label& entry, Xbyak::Label& resume);
    // Ends the block after `insn`, which set next RIP (a jump): as continue_block ends it.
    void end_after(const Insn& insn);

    // CALL (or JMP) rel32 where the target is in reach of where this code runs, else through RAX.
    template <class F>
    void call_function(F* function, bool tail = false) {
        auto target = reinterpret_cast<uintptr_t>(function);
        auto distance = static_cast<int64_t>(target - (runs_at_ + getSize() + 5));
        if (distance >= INT32_MIN && distance <= INT32_MAX) {
            db(tail ? 0xe9 : 0xe8);
            dd(static_cast<uint32_t>(distance));
        } else {
            mov(rax, target);
            if (tail) jmp(rax);
            else call(rax);
        }
    }

    // --- Operands (emitter.cpp) ---
    // The offset of a member of the Cpu from RBX.
    template <class T>
    size_t at(const T& member) const {
        return static_cast<size_t>(reinterpret_cast<const char*>(&member) - reinterpret_cast<const char*>(&cpu_));
    }
    size_t gpr(unsigned r) const { return at(cpu_.gpr[r]); }
    // A signed displacement or immediate as Xbyak takes them (two's complement).
    static size_t displacement(int64_t value) { return static_cast<size_t>(value); }
    static uint32_t imm32(int64_t value) { return static_cast<uint32_t>(value); }
    // The view of a scratch register at an operand width.
    static Xbyak::Reg sized(const Xbyak::Reg64& r, unsigned size);
    // `r` = the `size` bytes at `address`, zero-extended.
    void load(const Xbyak::Reg64& r, const Xbyak::Address& address, unsigned size);
    Xbyak::Address at_width(const Xbyak::RegExp& address, unsigned size);
    // Whether the memory operand's address is computed inline (addressable) and RAX = its
    // linear address in 64-bit mode (address; LEA's offset without `with_segment`).
    static bool addressable(const Insn& insn);
    // The operand shape of a two-operand form (exec/forms.hpp binary_shape) when it is emitted
    // inline: its memory operand, if any, addressable.
    static std::optional<Shape> inline_shape(const Insn& insn);
    static bool has_memory(Shape s) { return s == Shape::RegMem || memory_destination(s); }
    void address(const Insn& insn, bool with_segment);
    // RDX = the host address of `size` bytes at linear RAX when the TLB holds them for the
    // access (Cpu::cached_read / cached_write), else a jump to `miss`.
    void tlb_lookup(unsigned size, bool write, Xbyak::Label& miss);
    // RCX = operand `n`: a plain register, an immediate or (through the TLB, RAX its address)
    // memory, zero-extended from `size` bytes.
    void load_operand(const Insn& insn, unsigned n, unsigned size, Xbyak::Label& miss);
    // General register `r` = RAX at `size` bytes, as set_gpr writes it (4 bytes zero-extend,
    // 1 and 2 merge).
    void store_register(unsigned r, unsigned size);
    Xbyak::Label& label() { return labels_.emplace_back(); }
    // An inline form with a memory operand: RAX its address, `miss` where a TLB miss goes, and
    // after the form (finish_form) the handler's call for that miss, back at `resume`.
    struct Form {
        bool memory;
        Xbyak::Label& miss;
        Xbyak::Label& resume;
    };
    Form start_form(const Insn& insn, bool memory);
    void finish_form(const Insn& insn, const Form& form);

    // --- Lazy flags (emit_alu.cpp) ---
    // LazyFlags::override(which, EDX) over the lazy state.
    void override_flags(uint64_t which);

    // --- Inline forms: true when emitted ---
    bool alu_form(const Insn& insn);        // emit_alu.cpp
    bool imul_form(const Insn& insn);
    bool shift_form(const Insn& insn);
    bool mov_form(const Insn& insn);        // emit_moves.cpp
    bool lea_form(const Insn& insn);
    bool extend_form(const Insn& insn);
    bool stack_form(const Insn& insn);
    bool jump_form(const Insn& insn);       // emit_control.cpp
    bool conditional_form(const Insn& insn);
    bool call_return_form(const Insn& insn);
    // AL = condition `cc` of the guest's flags (from the host's while they hold them).
    void condition(unsigned cc);
    void jump_unless(unsigned cc, Xbyak::Label& target);

    Cpu& cpu_;
    uintptr_t runs_at_;
    Xbyak::Label ended_;
    // The host's flags are the guest's: set by an inline ALU form on registers (its flags'
    // recording is all MOVs), read by the next instruction only.
    bool host_flags_ = false;
    bool host_flags_now_ = false;  // host_flags_ as the running instruction found it
    std::vector<std::function<void()>> out_of_line_;
    std::deque<Xbyak::Label> labels_;
};

}  // namespace strata::soft
