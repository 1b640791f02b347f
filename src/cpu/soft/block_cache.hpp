// Predecoded blocks keyed by the guest-physical address of their first byte and the mode they
// were decoded in: decode once, run many times (SOFT-CPU-NOTES: Bochs's trace cache, QEMU's TB
// cache). A block ends at a branch, at an instruction that may change how the next one decodes,
// after kMaxInstructions, or before the end of its first page (an instruction that itself
// crosses into the next page is the block's last, and the block then depends on both pages).
//
// Validity: each page a block was decoded from carries a word in CodePages; the block keeps the
// words it saw and is stale once either changed (a write to the page). The second page of a
// page-crossing block is also checked for the same physical page at each lookup.
// The executor (run_block in interpreter.cpp) is separate, so a translator can replace it.
// One cache per vCPU: no locks on the lookup path. Storage is an arena that is dropped whole when
// full.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "cpu/soft/decode/decoder.hpp"

namespace strata::soft {

// Where execution went after a block, remembered in the block (QEMU's chained TBs, checked
// instead of patched): the successor's jump tag and TLB generation, as in the interpreter's
// jump cache, so that following a link needs no lookup beyond this block's own cache lines.
struct BlockLink {
    uint64_t tag = 0;
    uint64_t generation = 0;
    struct Block* block = nullptr;
    uint64_t code_writes = 0;  // CodePages::writes() read before the block was last found valid
};

// The first cache line holds what entering a block and following its first link read (block
// chaining reads nothing else of it, nor its instructions).
struct alignas(64) Block {
    static constexpr unsigned kMaxInstructions = 64;
    static_assert(kMaxInstructions < 256, "Insn::index is a byte");
    Handler entry = nullptr;     // the first instruction's threaded form (or the block's translation)
    Insn* insns = nullptr;       // `count` instructions in the cache's instruction arena, then a sentinel
    uint32_t runs = 0;           // how often it ran as threaded code (the translator's threshold)
    uint16_t count = 0;
    uint8_t first_length = 0;    // the first instruction's
    bool wraps = false;          // its last instruction ends past IP's wrap-around (16/32-bit code)
    BlockLink links[2];          // the last two successors, most recent first
    uint64_t phys = 0;           // first byte
    uint64_t second_page = ~0ull; // guest-physical page of the last instruction's tail, if it crosses
    std::atomic<uint32_t>* page_word[2] = {nullptr, nullptr};
    uint32_t seen_word[2] = {0, 0};
    CodeMode mode = CodeMode::Long64;
    uint8_t stack_bits = 64;
    Block* next = nullptr;       // hash chain

    [[nodiscard]] bool valid() const {
        return page_word[0]->load(std::memory_order_acquire) == seen_word[0] &&
               (!page_word[1] || page_word[1]->load(std::memory_order_acquire) == seen_word[1]);
    }
};

class BlockCache {
public:
    static constexpr size_t kBuckets = 1 << 16;
    static constexpr size_t kArenaBlocks = 1 << 15;
    static constexpr size_t kArenaInsns = 1 << 18;

    BlockCache();

    [[nodiscard]] Block* find(uint64_t phys, CodeMode mode, unsigned stack_bits) const {
        for (Block* b = buckets_[bucket(phys)]; b; b = b->next)
            if (b->phys == phys && b->mode == mode && b->stack_bits == stack_bits) return b;
        return nullptr;
    }
    // A fresh block for `phys` to decode into, with room for Block::kMaxInstructions and the
    // sentinel after them; it replaces any stale one with the same key. finish() ends the
    // instructions with the sentinel (exec/exec.hpp: threaded code) and gives back the room
    // they did not use.
    Block* allocate(uint64_t phys, CodeMode mode, unsigned stack_bits);
    void finish(Block& block);
    void clear();

    [[nodiscard]] uint64_t blocks_built() const { return built_; }
    // How often the arena was dropped: pointers to blocks from before a clear are dangling.
    [[nodiscard]] uint64_t clears() const { return clears_; }

private:
    static size_t bucket(uint64_t phys) { return static_cast<size_t>((phys ^ (phys >> 16)) & (kBuckets - 1)); }

    std::vector<Block*> buckets_;
    std::unique_ptr<Block[]> arena_;
    std::unique_ptr<Insn[]> insn_arena_;
    size_t used_ = 0;
    size_t insns_used_ = 0;
    uint64_t built_ = 0;
    uint64_t clears_ = 0;
};

}  // namespace strata::soft
