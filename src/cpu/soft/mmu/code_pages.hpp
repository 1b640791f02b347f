// Which guest-physical pages hold code the soft engine has predecoded, shared by every vCPU of a
// VM, so that a write to such a page — by any vCPU, or by a device's DMA — invalidates the blocks
// decoded from it (self- and cross-modifying code, SDM vol. 3A §8.1.3).
//
// One 32-bit word per RAM page: bit 0 says "blocks were decoded from this page"; the rest is a
// generation. A block remembers the word it saw (bit 0 set) and is valid while the word is
// unchanged. A write to a marked page adds one (clearing bit 0 and moving the generation); the
// next decode marks it again. Marking a page also advances `epoch`, which tells every vCPU to drop
// the write permissions its TLB caches, so that the next write to the page takes the slow path.
// A count of the writes that invalidated anything lets a block's validity be known without its
// page words while nothing was written.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "memory/guest_memory.hpp"

namespace strata::soft {

class CodePages {
public:
    explicit CodePages(const GuestMemory& memory);

    // The word of the page holding `phys`, or nullptr outside RAM.
    [[nodiscard]] std::atomic<uint32_t>* word(uint64_t phys) const {
        for (const Window& w : windows_)
            if (phys - w.gpa < w.size) return &w.words[(phys - w.gpa) >> 12];
        return nullptr;
    }
    // Marks the page as holding decoded code; returns the word a block must remember.
    uint32_t mark(std::atomic<uint32_t>& page) {
        uint32_t before = page.fetch_or(1, std::memory_order_acq_rel);
        if (!(before & 1)) epoch_.fetch_add(1, std::memory_order_release);
        return before | 1;
    }
    // A write reached the page holding `phys`.
    void written(uint64_t phys) {
        if (auto* page = word(phys)) written(*page);
    }
    void written(std::atomic<uint32_t>& page) {
        if (page.load(std::memory_order_relaxed) & 1) {
            page.fetch_add(1, std::memory_order_acq_rel);
            writes_.fetch_add(1, std::memory_order_acq_rel);
        }
    }
    [[nodiscard]] bool is_code(uint64_t phys) const {
        auto* page = word(phys);
        return page && (page->load(std::memory_order_relaxed) & 1);
    }
    [[nodiscard]] uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }
    // Counts the writes that invalidated blocks, on any page: a block found valid when it read
    // some count is still valid while the count is the same (the interpreter's links check this
    // one shared, cache-hot word before the block's own page words).
    [[nodiscard]] uint64_t writes() const { return writes_.load(std::memory_order_acquire); }

private:
    struct Window {
        uint64_t gpa = 0, size = 0;
        std::atomic<uint32_t>* words = nullptr;
    };
    std::vector<Window> windows_;
    std::vector<std::unique_ptr<std::atomic<uint32_t>[]>> storage_;
    std::atomic<uint64_t> epoch_{0};
    std::atomic<uint64_t> writes_{0};
};

}  // namespace strata::soft
