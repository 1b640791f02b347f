// Fuzzes the ELF parser on its own: parse_elf() on ELF32 and ELF64 images, then
// load_elf_segments() into guest RAM.
//
// Input: the whole input is the image.
// Invariants beyond "no crash, no UB, no leak", when parse_elf() succeeds:
//   - every segment is a PT_LOAD entry with p_memsz > 0 whose fields match the program header read
//     afresh from the bytes (gABI offsets), p_filesz <= p_memsz, its file range inside the image,
//     paddr + p_memsz not wrapping; there is at least one, and no such entry was skipped;
//   - load_start / load_end are the lowest paddr and the highest paddr + p_memsz;
//   - load_elf_segments() succeeds exactly when every segment lies in guest RAM, and then every
//     segment that overlaps no other is in guest RAM byte for byte, bss zeroed.
#include <algorithm>

#include "fuzz_support.hpp"
#include "loader/elf.hpp"

using namespace strata;
using namespace strata::fuzz;

namespace {

// A program header as the gABI lays it out, read without the parser's structs.
struct RawSegment {
    uint32_t type, flags;
    uint64_t offset, vaddr, paddr, filesz, memsz;
};

RawSegment raw_segment(std::span<const uint8_t> image, bool elf64, uint64_t at) {
    auto field = [&](size_t offset, size_t bytes) { return load_le(image.subspan(at + offset, bytes)); };
    if (elf64)
        return {static_cast<uint32_t>(field(0, 4)), static_cast<uint32_t>(field(4, 4)), field(8, 8), field(16, 8),
                field(24, 8), field(32, 8), field(40, 8)};
    return {static_cast<uint32_t>(field(0, 4)), static_cast<uint32_t>(field(24, 4)), field(4, 4), field(8, 4),
            field(12, 4), field(16, 4), field(20, 4)};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::span<const uint8_t> image(data, size);
    auto elf = parse_elf(image);
    if (!elf) {
        FUZZ_CHECK(!elf.error().message.empty(), "an error without a message");
        return 0;
    }
    FUZZ_CHECK(is_elf(image), "parsed an image without the ELF magic");
    bool elf64 = elf->elf_class == ElfClass::Elf64;
    FUZZ_CHECK(image[4] == (elf64 ? 2 : 1), "class {} parsed as {}", image[4], elf64 ? "ELF64" : "ELF32");
    auto header = [&](size_t offset, size_t bytes) { return load_le(image.subspan(offset, bytes)); };
    uint64_t phoff = elf64 ? header(32, 8) : header(28, 4);
    uint64_t phentsize = elf64 ? header(54, 2) : header(42, 2);
    uint64_t phnum = elf64 ? header(56, 2) : header(44, 2);
    FUZZ_CHECK(elf->entry == (elf64 ? header(24, 8) : header(24, 4)), "e_entry {:#x}", elf->entry);

    size_t loadable = 0;
    for (uint64_t i = 0; i < phnum; ++i) {
        RawSegment raw = raw_segment(image, elf64, phoff + i * phentsize);
        if (raw.type == 1 && raw.memsz > 0) ++loadable;
    }
    FUZZ_CHECK(!elf->segments.empty() && elf->segments.size() == loadable, "{} segments for {} loadable headers",
               elf->segments.size(), loadable);

    uint64_t lowest = UINT64_MAX, highest = 0;
    unsigned previous = 0;
    for (const auto& s : elf->segments) {
        FUZZ_CHECK(s.index < phnum && (s.index >= previous), "segment index {} out of order or range", s.index);
        previous = s.index + 1;
        RawSegment raw = raw_segment(image, elf64, phoff + uint64_t{s.index} * phentsize);
        FUZZ_CHECK(raw.type == 1 && raw.offset == s.file_offset && raw.filesz == s.file_size &&
                       raw.memsz == s.mem_size && raw.paddr == s.paddr && raw.vaddr == s.vaddr && raw.flags == s.flags,
                   "segment {} does not match its program header", s.index);
        FUZZ_CHECK(s.mem_size > 0 && s.file_size <= s.mem_size, "segment {}: filesz {:#x} memsz {:#x}", s.index,
                   s.file_size, s.mem_size);
        FUZZ_CHECK(range_within(s.file_offset, s.file_size, image.size()), "segment {}: file range outside the image",
                   s.index);
        FUZZ_CHECK(checked_add(s.paddr, s.mem_size), "segment {}: paddr + memsz wraps", s.index);
        lowest = std::min(lowest, s.paddr);
        highest = std::max(highest, s.paddr + s.mem_size);
    }
    FUZZ_CHECK(elf->load_start == lowest && elf->load_end == highest, "load range [{:#x}, {:#x}), segments [{:#x}, {:#x})",
               elf->load_start, elf->load_end, lowest, highest);

    GuestMemory& memory = fresh_guest_memory();
    bool all_in_ram = std::ranges::all_of(elf->segments, [&](const ElfSegment& s) { return memory.contains(s.paddr, s.mem_size); });
    auto loaded = load_elf_segments(memory, image, *elf);
    FUZZ_CHECK(loaded.has_value() == all_in_ram, "load_elf_segments {} although the segments are {}in RAM",
               loaded ? "succeeded" : "failed", all_in_ram ? "" : "not all ");
    if (loaded) check_segments_loaded(memory, image, elf->segments);
    return 0;
}
