#include "memory/e820.hpp"

namespace strata {

std::vector<E820Entry> build_e820(const GuestMemory& memory) {
    std::vector<E820Entry> map;
    map.push_back({0, kEbdaStart, E820Type::Ram});
    map.push_back({kEbdaStart, 0xA'0000 - kEbdaStart, E820Type::Reserved});
    map.push_back({kBiosAreaStart, kBiosAreaEnd - kBiosAreaStart, E820Type::Reserved});
    for (const auto& region : memory.regions()) {
        uint64_t start = region.gpa < kBiosAreaEnd ? kBiosAreaEnd : region.gpa;
        uint64_t end = region.gpa + region.size;
        if (end > start) map.push_back({start, end - start, E820Type::Ram});
    }
    return map;
}

}  // namespace strata
