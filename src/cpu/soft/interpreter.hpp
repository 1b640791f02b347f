// The soft CPU's executor: finds (or decodes) the block at CS:RIP and runs its instructions'
// handlers one after the other; a guest fault unwinds to here and is delivered through the IDT.
// Events (interrupts, stop requests) are the caller's, between blocks. A binary translator would
// replace run_block() and keep the rest.
#pragma once

#include <cstdint>

#include "cpu/soft/block_cache.hpp"
#include "cpu/soft/cpu.hpp"
#include "cpu/soft/decode/decoder.hpp"

namespace strata::soft {

class Interpreter {
public:
    explicit Interpreter(Cpu& cpu) : cpu_(cpu) {}

    // Runs one block, or delivers the exception it raised; a TripleFault escapes.
    void step() { step(Block::kMaxInstructions); }
    // Runs exactly one instruction (tests, instruction traces).
    void step_instruction() { step(1); }

    [[nodiscard]] uint64_t instructions() const { return instructions_; }
    [[nodiscard]] const BlockCache& cache() const { return cache_; }
    // Forgets every block (e.g. after the guest's memory was replaced wholesale).
    void clear_cache() { cache_.clear(); }

    [[nodiscard]] static CodeMode code_mode(const Cpu& cpu);

    // An instruction trace for finding where a guest goes wrong: with STRATA_SOFT_TRACE=FILE in
    // the environment, every instruction runs alone and the registers before it are written to
    // FILE in the layout of QEMU's `-d cpu` log (RAX=... RIP=... RFL=...), so that
    // scripts/trace-diff finds the first divergence from `qemu-system-x86_64 -accel tcg
    // -singlestep -d cpu,nochain`. Very slow; for debugging only.
    static bool tracing();

private:
    void step(unsigned max_instructions);
    void trace() const;
    Block* find_or_build(uint64_t linear, const Cpu::Fetch& fetch);
    void build(Block& block, uint64_t linear, const Cpu::Fetch& fetch);
    void run_block(const Block& block, unsigned max_instructions);
    void run_uncached(uint64_t linear, uint64_t phys);

    Cpu& cpu_;
    Decoder decoder_;
    BlockCache cache_;
    uint64_t epoch_ = ~0ull;
    uint64_t instructions_ = 0;
};

}  // namespace strata::soft
