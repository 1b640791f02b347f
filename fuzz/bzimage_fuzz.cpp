// Fuzzes load_linux() with bzImages: the boot-protocol setup header, the setup and syssize
// arithmetic, the load and run-time placement, and the command line and initrd placement.
//
// Input: a bzImage followed by the five option bytes of linux_boot_checks.hpp (initrd size,
// command line length and flags). ELF inputs are left to vmlinux_fuzz.
// Invariants beyond "no crash, no UB, no leak", on success:
//   - is_bzimage(image); the zero page holds what linux_boot_checks.hpp lists (command line, initrd
//     placement and bytes, loader-owned fields) and the initrd stays clear of the kernel;
//   - the protected-mode kernel (the syssize paragraphs after the setup sectors) is in guest RAM at
//     code32_start, intact after everything else was written;
//   - RIP is code32_start + 0x200, inside RAM and inside that kernel.
#include <algorithm>

#include "linux_boot_checks.hpp"
#include "loader/elf.hpp"
#include "loader/linux_loader.hpp"

using namespace strata;
using namespace strata::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    SplitInput<kLinuxOptionBytes> input(data, size);
    if (is_elf(input.image)) return -1;  // not a bzImage: keep it out of this target's corpus
    auto arguments = linux_arguments(input);
    GuestMemory& memory = fresh_guest_memory();
    auto state = load_linux_input(memory, input, arguments);
    if (!state) return 0;
    FUZZ_CHECK(is_bzimage(input.image), "loaded an image that is_bzimage() rejects");

    // Sizes from the image itself (boot.rst offsets), not from the zero page the loader wrote.
    auto image_field = [&](size_t offset, size_t bytes) { return load_le(input.image.subspan(offset, bytes)); };
    uint64_t setup_sects = image_field(0x1f1, 1);
    uint64_t setup_size = ((setup_sects == 0 ? 4 : setup_sects) + 1) * 512;
    uint64_t kernel_size = image_field(0x1f4, 4) * 16;
    uint64_t init_size = image_field(0x260, 4);
    FUZZ_CHECK(setup_size + kernel_size <= input.image.size(), "setup {:#x} + syssize*16 {:#x} exceed the {:#x}-byte image",
               setup_size, kernel_size, input.image.size());
    uint64_t load = guest_le(memory, pc::kZeroPage + 0x214, 4);  // code32_start
    check_linux_boot(memory, *state, arguments, {{load, load + std::max(kernel_size, init_size)}});
    check_loaded(memory, "protected-mode kernel", load, input.image.subspan(setup_size, kernel_size), kernel_size);
    FUZZ_CHECK(state->rip == load + 0x200, "RIP {:#x} is not code32_start {:#x} + 0x200", state->rip, load);
    FUZZ_CHECK(state->rip - load < kernel_size, "64-bit entry {:#x} lies beyond the {:#x}-byte kernel loaded at {:#x}",
               state->rip, kernel_size, load);
    return 0;
}
