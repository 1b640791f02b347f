// Fuzzes load_linux() with ELF vmlinux images: the ELF64 checks of the Linux path, the segment
// placement above the boot structures, the entry point and the synthesized setup header.
//
// Input: an ELF image followed by the five option bytes of linux_boot_checks.hpp (initrd size,
// command line length and flags). Inputs without the ELF magic are left to bzimage_fuzz.
// Invariants beyond "no crash, no UB, no leak", on success:
//   - parse_elf() accepts the image as ELF64 x86-64; every PT_LOAD segment lies at or above 1 MiB
//     (below are the zero page, command line and page tables) and is intact in guest RAM;
//   - RIP is inside the file bytes of a loaded segment (so inside RAM);
//   - the zero page holds what linux_boot_checks.hpp lists, the initrd clear of every segment.
#include <algorithm>

#include "linux_boot_checks.hpp"
#include "loader/elf.hpp"
#include "loader/linux_loader.hpp"

using namespace strata;
using namespace strata::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    SplitInput<kLinuxOptionBytes> input(data, size);
    if (!is_elf(input.image)) return -1;  // not a vmlinux: keep it out of this target's corpus
    auto arguments = linux_arguments(input);
    GuestMemory& memory = fresh_guest_memory();
    auto state = load_linux_input(memory, input, arguments);
    if (!state) return 0;

    auto elf = parse_elf(input.image);
    FUZZ_CHECK(elf, "loaded an image parse_elf() rejects: {}", elf.error().message);
    FUZZ_CHECK(elf->elf_class == ElfClass::Elf64 && elf->machine == ElfMachine::X86_64, "loaded a non-ELF64 x86-64 image");
    std::vector<GuestRange> segments;
    for (const auto& segment : elf->segments) {
        FUZZ_CHECK(segment.paddr >= pc::kKernelLoad, "segment {} at {:#x} is below 1 MiB", segment.index, segment.paddr);
        segments.push_back({segment.paddr, segment.paddr + segment.mem_size});
    }
    check_linux_boot(memory, *state, arguments, segments);
    check_segments_loaded(memory, input.image, elf->segments);
    bool entry_in_segment = std::ranges::any_of(elf->segments, [&](const ElfSegment& s) {
        return state->rip >= s.paddr && state->rip - s.paddr < s.file_size;
    });
    FUZZ_CHECK(entry_in_segment, "RIP {:#x} (e_entry {:#x}) is outside every segment's file bytes", state->rip, elf->entry);
    return 0;
}
