// The soft CPU's executor: finds (or decodes) the block at CS:RIP and runs its instructions'
// handlers one after the other; a guest fault unwinds to here and is delivered through the IDT.
// Events (interrupts, stop requests) are the caller's, between blocks. A binary translator would
// replace run_block() and keep the rest.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "cpu/soft/block_cache.hpp"
#include "cpu/soft/cpu.hpp"
#include "cpu/soft/decode/decoder.hpp"
#include "cpu/soft/jit/translator.hpp"

namespace strata::soft {

class Interpreter {
public:
    explicit Interpreter(Cpu& cpu);

    // Runs one block, or delivers the exception it raised; a TripleFault escapes.
    void step();
    // Runs exactly one instruction (tests, instruction traces).
    void step_instruction();
    // Runs up to `blocks` blocks, chained or as step() each, and stops early once the vCPU halts or one of
    // the two words is non-zero (the run loop's events and kicks): one call for the run loop's
    // slice, so that the step between blocks is no call of its own.
    void run_slice(unsigned blocks, const std::atomic<uint32_t>& events, const std::atomic<bool>& kicked);

    [[nodiscard]] uint64_t instructions() const { return instructions_; }
    [[nodiscard]] uint64_t blocks_run() const { return blocks_run_; }
    // Blocks found through the TLB and the block cache instead of the jump cache.
    [[nodiscard]] uint64_t jump_misses() const { return jump_misses_; }
    [[nodiscard]] const BlockCache& cache() const { return cache_; }
    // Blocks translated to host code (jit/translator.hpp), 0 without a translator.
    [[nodiscard]] uint64_t blocks_translated() const { return translator_ ? translator_->blocks_translated() : 0; }
    // Forgets every block (e.g. after the guest's memory was replaced wholesale).
    void clear_cache() {
        cache_.clear();
        forget_jumps();
        if (translator_) translator_->reset();
    }

    [[nodiscard]] static CodeMode code_mode(const Cpu& cpu);

    // An instruction trace for finding where a guest goes wrong: with STRATA_SOFT_TRACE=FILE in
    // the environment, every instruction runs alone and the registers before it are written to
    // FILE in the layout of QEMU's `-d cpu` log (RAX=... RIP=... RFL=...), so that
    // scripts/trace-diff finds the first divergence from `qemu-system-x86_64 -accel tcg
    // -singlestep -d cpu,nochain`. Very slow; for debugging only.
    static bool tracing();

private:
    // The jump cache (QEMU's tb_jmp_cache): the block last run at a linear address, so that the
    // next time neither the TLB nor the block cache's hash chains are consulted. An entry holds
    // while the TLB generation, the mode key and the block cache it was filled under are the
    // same, and its block is still valid (its pages unwritten). Blocks whose last instruction
    // crosses into another page are not entered: their second page is checked at each lookup.
    // tag: jump_tag(), the linear address and the mode key; generation: jump_generation()
    // when filled.
    using JumpEntry = BlockLink;
    static constexpr size_t kJumpEntries = 1 << 13;
    static size_t jump_slot(uint64_t linear) {
        return static_cast<size_t>((linear ^ (linear >> 12) ^ (linear >> 24)) & (kJumpEntries - 1));
    }
    // Linear addresses are canonical (or 32-bit): their low 48 bits and the 10-bit mode key
    // (never 0, so an empty entry never matches) identify them.
    static uint64_t jump_tag(uint64_t linear, uint32_t exec_key) {
        return (linear & 0xffff'ffff'ffffull) | (uint64_t{exec_key} << 48);
    }
    // The TLB generation an entry depends on, with the kind in bit 0 (1: a global page).
    static uint64_t jump_generation(const Cpu& cpu, bool global) {
        return global ? (cpu.global_tlb_generation() << 1) | 1 : cpu.tlb_generation() << 1;
    }
    void forget_jumps();  // also forgets the last block
    // The block for `linear`: through the last block's links, the jump cache, or the TLB and
    // the block cache; nullptr when the code is not in RAM (run_uncached has run it).
    Block* find_block(uint64_t linear);
    Block* find_block_slow(uint64_t linear, uint64_t tag);
    // The last block's second link, made its first, if it holds for `tag`.
    Block* take_second_link(Block& last, uint64_t tag);
    // Block chaining: called as a block ends (chain_block in exec.hpp), it goes on to the block
    // at CPU.rip when one of the last block's links holds for it and the run loop has nothing
    // to look at (events, kicks, HLT, an interrupt shadow, a single step, a page newly made
    // code, a mode other than 64-bit); otherwise it returns, and so does the threaded code.
    void chain();
    friend void chain_block(Cpu& cpu);
    [[nodiscard]] bool holds(BlockLink& link, uint64_t tag);
    [[nodiscard]] bool still_valid(BlockLink& link);  // holds' check of the block's pages

    void step(unsigned max_instructions);
    void trace() const;
    Block* find_or_build(uint64_t linear, const Cpu::Fetch& fetch);
    void build(Block& block, uint64_t linear, const Cpu::Fetch& fetch);
    void run_block(Block& block, unsigned max_instructions);
    // Counts a run of `block` as threaded code and translates it once it is hot.
    void count_run(Block& block) {
        if (translator_ && block.runs++ == translate_at_) [[unlikely]] translator_->translate(block);
    }
    void run_uncached(uint64_t linear, uint64_t phys);

    Cpu& cpu_;
    Decoder decoder_;
    BlockCache cache_;
    std::unique_ptr<Translator> translator_;  // none when translation is off or impossible
    unsigned translate_at_ = Translator::kOff;
    std::unique_ptr<JumpEntry[]> jumps_ = std::make_unique<JumpEntry[]>(kJumpEntries);
    Block* last_ = nullptr;            // the block run last (its links are filled in next)
    // While run_slice runs: the blocks one step may chain, and the words it stops for.
    unsigned chain_budget_ = 0;
    const std::atomic<uint32_t>* events_ = nullptr;
    const std::atomic<bool>* kicked_ = nullptr;
    bool tracing_;
    uint64_t instructions_ = 0;
    uint64_t blocks_run_ = 0;
    uint64_t jump_misses_ = 0;
};

}  // namespace strata::soft
