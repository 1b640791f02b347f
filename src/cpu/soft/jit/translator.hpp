// The soft engine's binary translator, stage 1: a block of 64-bit code that has run often
// (threshold()) is translated into host code (jit/emitter.hpp emits it with Xbyak into a
// CodeBuffer) that runs the block's instructions in order as the threaded code would, and the
// block's entry becomes that code, so that the run loop, chaining (Interpreter::chain) and
// everything else enter it unchanged.
//
// What the host code does per instruction: the common forms of the integer instructions most
// code runs — MOV, LEA, MOVZX/MOVSX, the two-operand ALU instructions, IMUL, shifts by an
// immediate, PUSH/POP, JMP/Jcc, CALL/RET, SETcc/CMOVcc (the emit_*.cpp files list them) — are
// emitted inline: registers in Cpu::gpr, the lazy flags as their handlers leave them, memory
// through an inline TLB lookup whose miss calls the instruction's handler. Every other
// instruction is a direct call of its handler, with RIP and next RIP stored first unless it is
// RIP-free, and a check of Cpu::end_block after it unless it cannot end the block. The block's
// ends are those of threaded code: Cpu::block_done counts the instructions run when it ended,
// and chain_block() goes on.
//
// Invariants the host code keeps: RBX holds the Cpu throughout; PUSH RBX is its only stack
// change (the frame rule registered by CodeBuffer, so guest faults unwind through it); Cpu::rip
// is the running instruction's address at every call that may fault, as for threaded code.
//
// Missing (later stages): jumps from one translation straight into the next (chaining goes
// through Interpreter::chain), loops within a translation, guest registers in host registers
// across instructions, flags computed only where they are read, more inline forms (ADC/SBB,
// INC/DEC, shifts by CL, string instructions), 16/32-bit code.
#pragma once

#include <atomic>
#include <memory>

#include "cpu/soft/block_cache.hpp"
#include "cpu/soft/cpu.hpp"
#include "cpu/soft/jit/code_buffer.hpp"

namespace strata::soft {

class Translator {
public:
    // nullptr when the host gives no executable memory: blocks then run as threaded code.
    static std::unique_ptr<Translator> create(Cpu& cpu);

    // How many runs make a block hot enough to translate: STRATA_SOFT_TRANSLATE in the
    // environment (a number; "off" never translates), else kDefault; tests change it with
    // set_threshold (0: translate every block before its first run). Most blocks a boot runs
    // run a few times only: decoding them is cheaper than translating them.
    static constexpr unsigned kOff = ~0u;
    static constexpr unsigned kDefault = 32;
    [[nodiscard]] static unsigned threshold() { return threshold_.load(std::memory_order_relaxed); }
    static void set_threshold(unsigned runs) { threshold_.store(runs, std::memory_order_relaxed); }

    // Translates `block` and makes the translation its entry (Block::entry).
    // False when the block cannot be translated (not 64-bit code, a page-crossing or wrapping
    // block) or the buffer is full; the block then stays threaded code.
    bool translate(Block& block);
    // Forgets every translation: the block cache dropped the blocks they belong to.
    void reset() { code_->reset(); }

    [[nodiscard]] uint64_t blocks_translated() const { return translated_; }
    [[nodiscard]] size_t code_bytes() const { return code_->used(); }

private:
    Translator(Cpu& cpu, std::unique_ptr<CodeBuffer> code) : cpu_(cpu), code_(std::move(code)) {}

    static std::atomic<unsigned> threshold_;
    Cpu& cpu_;
    std::unique_ptr<CodeBuffer> code_;
    uint64_t translated_ = 0;
};

}  // namespace strata::soft
