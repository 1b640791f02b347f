#include "cpu/soft/block_cache.hpp"

#include <algorithm>

#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

BlockCache::BlockCache() : buckets_(kBuckets, nullptr), arena_(std::make_unique<Block[]>(kArenaBlocks)),
      insn_arena_(std::make_unique<Insn[]>(kArenaInsns)) {}

Block* BlockCache::allocate(uint64_t phys, CodeMode mode, unsigned stack_bits) {
    if (used_ == kArenaBlocks || insns_used_ + Block::kMaxInstructions + 1 > kArenaInsns) clear();
    // Unlink a stale block with the same key so that the chain does not grow with rewrites.
    Block** link = &buckets_[bucket(phys)];
    while (*link) {
        Block* b = *link;
        if (b->phys == phys && b->mode == mode && b->stack_bits == stack_bits) *link = b->next;
        else link = &b->next;
    }
    Block* block = &arena_[used_++];
    block->phys = phys;
    block->mode = mode;
    block->stack_bits = static_cast<uint8_t>(stack_bits);
    block->second_page = ~0ull;
    block->page_word[0] = block->page_word[1] = nullptr;
    block->count = 0;
    block->wraps = false;
    block->runs = 0;
    block->entry = nullptr;
    block->links[0] = block->links[1] = BlockLink{};
    block->insns = &insn_arena_[insns_used_];
    block->next = buckets_[bucket(phys)];
    buckets_[bucket(phys)] = block;
    ++built_;
    return block;
}

void BlockCache::finish(Block& block) {
    Insn& sentinel = block.insns[block.count];
    sentinel = Insn{};
    sentinel.exec = sentinel.thread = &end_of_block;
    sentinel.index = static_cast<uint8_t>(block.count);
    sentinel.offset = sentinel.end = block.count ? block.insns[block.count - 1].end : 0;
    insns_used_ += block.count + 1u;
}

void BlockCache::clear() {
    ++clears_;
    std::fill(buckets_.begin(), buckets_.end(), nullptr);
    used_ = 0;
    insns_used_ = 0;
}

}  // namespace strata::soft
