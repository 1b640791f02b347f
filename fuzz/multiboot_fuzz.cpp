// Fuzzes the multiboot v1 loader: is_multiboot()'s header search and load_multiboot() with ELF
// kernels and with the a.out kludge (header flags bit 16), modules and the information structure.
//
// Input: a kernel image followed by eight option bytes:
//   [0..2) command line length, [2..4) size of each module, [4..6) length of each module's string
//   (all little-endian), [6] number of modules (low three bits), [7] bit 0: the command line is
//   64 KiB longer (past pc::kCmdlineMax), bit 1: the command line has a NUL in the middle.
// Invariants beyond "no crash, no UB, no leak", on success:
//   - is_multiboot(image); EAX = 0x2BADB002, EBX = the information structure, EIP in RAM below 4 GiB;
//   - the information structure gives the command line, the boot loader name, and every module:
//     page-aligned, of its size, its bytes and string intact, clear of the kernel and of each other;
//   - neither the kernel nor a module covers Strata's structures below 1 MiB (those the board
//     writes later, the MP and ACPI tables from the EBDA up, included);
//   - the kernel is intact in guest RAM after everything else was written: the ELF segments, or
//     for the a.out kludge the file from header_addr - load_addr before the header, loaded at
//     load_addr up to load_end_addr (or the file's end) and zeroed up to bss_end_addr.
#include <algorithm>
#include <optional>

#include "fuzz_support.hpp"
#include "loader/multiboot_loader.hpp"
#include "memory/pc_layout.hpp"

using namespace strata;
using namespace strata::fuzz;

namespace {

constexpr size_t kOptionBytes = 8;

// What Strata puts below 1 MiB for a multiboot guest: the loader's boot GDT/IDT, information
// structure and command line, and the board's MP and ACPI tables (EBDA to the end of the BIOS area).
constexpr GuestRange kStrataLowRanges[] = {
    {pc::kBootGdt, pc::kBootTablesEnd},
    {pc::kMultibootInfo, pc::kMultibootInfoEnd},
    {pc::kCmdline, pc::kCmdline + pc::kCmdlineMax},
    {pc::kMpTable, pc::kKernelLoad},
};

void check_clear_of_strata(const GuestRange& range, std::string_view what) {
    for (const auto& strata : kStrataLowRanges)
        FUZZ_CHECK(!range.overlaps(strata), "{} [{:#x}, {:#x}) covers Strata's [{:#x}, {:#x})", what, range.start,
                   range.end, strata.start, strata.end);
}

// What the kernel occupies, and where its loaded file bytes are (the entry point must be in them).
struct KernelPlacement {
    std::vector<GuestRange> occupied, file_bytes;
};

// The a.out kludge's load, worked out from the header as the specification (§3.1.3) words it, and
// checked to be intact in guest RAM. Nothing when the header is an ELF kernel's.
std::optional<KernelPlacement> check_aout_kernel(const GuestMemory& memory, std::span<const uint8_t> image) {
    for (size_t offset = 0; offset + 12 <= std::min<size_t>(image.size(), 8192); offset += 4) {
        auto field = [&](size_t index) { return static_cast<uint32_t>(load_le(image.subspan(offset + 4 * index, 4))); };
        if (field(0) != kMultibootHeaderMagic || static_cast<uint32_t>(field(0) + field(1) + field(2)) != 0) continue;
        if (!(field(1) & (1u << 16))) return std::nullopt;  // an ELF kernel
        FUZZ_CHECK(offset + 32 <= image.size(), "loaded an a.out kludge whose address fields are cut off");
        uint64_t header_addr = field(3), load_addr = field(4), load_end_addr = field(5), bss_end_addr = field(6);
        FUZZ_CHECK(load_addr <= header_addr && header_addr - load_addr <= offset,
                   "loaded with load_addr {:#x} header_addr {:#x}: the image would start before the file", load_addr,
                   header_addr);
        uint64_t file_start = offset - (header_addr - load_addr);
        uint64_t load_size = load_end_addr == 0 ? image.size() - file_start : load_end_addr - load_addr;
        FUZZ_CHECK(load_end_addr == 0 || (load_end_addr >= load_addr && file_start + load_size <= image.size()),
                   "loaded with load_end_addr {:#x} beyond the file", load_end_addr);
        uint64_t end = bss_end_addr == 0 ? load_addr + load_size : bss_end_addr;
        FUZZ_CHECK(end >= load_addr + load_size, "loaded with bss_end_addr {:#x} below the data's end", bss_end_addr);
        check_loaded(memory, "a.out kernel", load_addr, image.subspan(file_start, load_size), end - load_addr);
        return KernelPlacement{{{load_addr, end}}, {{load_addr, load_addr + load_size}}};
    }
    FUZZ_CHECK(false, "loaded an image without a multiboot header");
    return std::nullopt;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    SplitInput<kOptionBytes> input(data, size);
    uint8_t flags = input.options[7];
    std::string_view cmdline = filler_text(input.le(0, 2) + (flags & 1 ? 64 * KiB : 0), flags & 2);
    static std::vector<MultibootModule> modules;
    modules.resize(input.options[6] & 7);
    for (size_t i = 0; i < modules.size(); ++i) {
        auto bytes = pattern_bytes(input.le(2, 2) + i);
        modules[i].data.assign(bytes.begin(), bytes.end());
        modules[i].cmdline.assign(input.le(4, 2), static_cast<char>('a' + i));
    }

    GuestMemory& memory = fresh_guest_memory();
    auto state = load_multiboot(memory, input.image, cmdline, modules);
    if (!state) {
        FUZZ_CHECK(!state.error().message.empty(), "an error without a message");
        return 0;
    }
    FUZZ_CHECK(is_multiboot(input.image), "loaded an image that is_multiboot() rejects");
    FUZZ_CHECK((*state)[Gpr::Rax] == kMultibootBootloaderMagic, "EAX {:#x}", (*state)[Gpr::Rax]);
    FUZZ_CHECK((*state)[Gpr::Rbx] == pc::kMultibootInfo, "EBX {:#x}", (*state)[Gpr::Rbx]);
    FUZZ_CHECK(state->rip < 4 * GiB && memory.contains(state->rip, 1), "EIP {:#x} outside RAM below 4 GiB", state->rip);

    // The kernel, intact, and the entry point in its loaded bytes.
    auto kernel = check_aout_kernel(memory, input.image);
    if (!kernel) {
        auto elf = parse_elf(input.image);
        FUZZ_CHECK(elf, "loaded an ELF kernel parse_elf() rejects: {}", elf.error().message);
        check_segments_loaded(memory, input.image, elf->segments);
        kernel.emplace();
        for (const auto& s : elf->segments) {
            kernel->occupied.push_back({s.paddr, s.paddr + s.mem_size});
            kernel->file_bytes.push_back({s.paddr, s.paddr + s.file_size});
        }
    }
    for (const auto& range : kernel->occupied) check_clear_of_strata(range, "the kernel");
    FUZZ_CHECK(std::ranges::any_of(kernel->file_bytes, [&](const GuestRange& r) { return r.overlaps({state->rip, state->rip + 1}); }),
               "EIP {:#x} is outside the kernel's loaded bytes", state->rip);

    // §3.3 boot information: flags at 0, cmdline at 16, mods_count/mods_addr at 20/24, the loader name at 64.
    auto info = [&](size_t offset) { return guest_le(memory, pc::kMultibootInfo + offset, 4); };
    FUZZ_CHECK(guest_has_string(memory, info(16), cmdline), "command line not at info.cmdline {:#x}", info(16));
    FUZZ_CHECK(guest_has_string(memory, info(64), "strata"), "boot loader name not at {:#x}", info(64));
    FUZZ_CHECK(info(20) == modules.size(), "mods_count {} for {} modules", info(20), modules.size());
    std::vector<GuestRange> placed;
    for (size_t i = 0; i < modules.size(); ++i) {
        auto entry = [&](size_t offset) { return guest_le(memory, info(24) + 16 * i + offset, 4); };
        GuestRange range{entry(0), entry(4)};
        FUZZ_CHECK(range.start % (4 * KiB) == 0, "module {} at {:#x} is not page-aligned", i, range.start);
        FUZZ_CHECK(range.end - range.start == modules[i].data.size(), "module {} [{:#x}, {:#x}) for {} bytes", i,
                   range.start, range.end, modules[i].data.size());
        for (const auto& other : kernel->occupied)
            FUZZ_CHECK(!range.overlaps(other), "module {} [{:#x}, {:#x}) overlaps the kernel's [{:#x}, {:#x})", i,
                       range.start, range.end, other.start, other.end);
        for (const auto& other : placed)
            FUZZ_CHECK(!range.overlaps(other), "module {} overlaps an earlier one", i);
        check_clear_of_strata(range, fmt::format("module {}", i));
        check_loaded(memory, fmt::format("module {}", i), range.start, modules[i].data, modules[i].data.size());
        FUZZ_CHECK(guest_has_string(memory, entry(8), modules[i].cmdline), "module {}'s string not at {:#x}", i, entry(8));
        placed.push_back(range);
    }
    return 0;
}
