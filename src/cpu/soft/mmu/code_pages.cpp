#include "cpu/soft/mmu/code_pages.hpp"

namespace strata::soft {

CodePages::CodePages(const GuestMemory& memory) {
    for (const RamRegion& region : memory.regions()) {
        size_t pages = static_cast<size_t>(region.size >> 12);
        storage_.push_back(std::make_unique<std::atomic<uint32_t>[]>(pages));
        windows_.push_back(Window{region.gpa, region.size, storage_.back().get()});
    }
}

}  // namespace strata::soft
