// The other arguments of load_linux() as the last bytes of a fuzz input choose them, and the
// invariants of a successful load that hold for bzImages and vmlinux alike (bzimage_fuzz.cpp,
// vmlinux_fuzz.cpp).
//
// Option bytes (the input's last five):
//   [0..2) initrd size in 16-byte units, little-endian (0: no initrd; at most 1 MiB)
//   [2..4) command line length, little-endian
//   [4]    bit 0: the command line is 64 KiB longer (past pc::kCmdlineMax)
//          bit 1: the command line has a NUL in the middle
//          bit 2: pass an ACPI RSDP address (pc::kAcpiTables)
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "cpu/cpu_state.hpp"
#include "fuzz_support.hpp"
#include "loader/boot_params.hpp"
#include "loader/linux_loader.hpp"
#include "memory/pc_layout.hpp"

namespace strata::fuzz {

constexpr size_t kLinuxOptionBytes = 5;

struct LinuxArguments {
    std::span<const uint8_t> initrd;
    std::string_view cmdline;
    uint64_t acpi_rsdp_addr = 0;
};

inline LinuxArguments linux_arguments(const SplitInput<kLinuxOptionBytes>& input) {
    uint8_t flags = input.options[4];
    size_t cmdline_length = input.le(2, 2) + (flags & 1 ? 64 * KiB : 0);
    return {pattern_bytes(input.le(0, 2) * 16), filler_text(cmdline_length, flags & 2),
            flags & 4 ? pc::kAcpiTables : 0};
}

// Loads the input's image with its arguments into fresh guest memory. A refusal must say why;
// the entry state comes back only on success.
inline std::optional<CpuState> load_linux_input(GuestMemory& memory, const SplitInput<kLinuxOptionBytes>& input,
                                                const LinuxArguments& arguments) {
    auto state = load_linux(memory, input.image, arguments.initrd, arguments.cmdline, arguments.acpi_rsdp_addr);
    if (!state) {
        FUZZ_CHECK(!state.error().message.empty(), "an error without a message");
        return std::nullopt;
    }
    return *state;
}

// `kernel_ranges`: what the kernel occupies or needs (the initrd must stay clear of it).
inline void check_linux_boot(const GuestMemory& memory, const CpuState& state, const LinuxArguments& arguments,
                             const std::vector<GuestRange>& kernel_ranges) {
    FUZZ_CHECK(memory.contains(state.rip, 1), "entry RIP {:#x} is outside guest RAM", state.rip);
    FUZZ_CHECK(state[Gpr::Rsi] == pc::kZeroPage, "RSI {:#x} is not the zero page", state[Gpr::Rsi]);

    auto params = load_struct<linux_boot::BootParams>(guest_view(memory, pc::kZeroPage, sizeof(linux_boot::BootParams)));
    const auto& hdr = params.hdr;
    FUZZ_CHECK(hdr.header == linux_boot::kHeaderMagic, "zero page header magic {:#x}", hdr.header);
    FUZZ_CHECK(hdr.type_of_loader == linux_boot::kTypeOfLoaderUndefined, "type_of_loader {:#x}", hdr.type_of_loader);
    FUZZ_CHECK(params.acpi_rsdp_addr == arguments.acpi_rsdp_addr, "acpi_rsdp_addr {:#x}, passed {:#x}",
               params.acpi_rsdp_addr, arguments.acpi_rsdp_addr);
    FUZZ_CHECK(params.e820_entries >= 1 && params.e820_entries <= linux_boot::kE820MaxEntries, "{} e820 entries",
               params.e820_entries);

    // The command line: where the zero page says, whole, NUL-terminated, within the kernel's limit.
    uint64_t cmdline_addr = uint64_t{params.ext_cmd_line_ptr} << 32 | hdr.cmd_line_ptr;
    FUZZ_CHECK(cmdline_addr == pc::kCmdline, "cmd_line_ptr {:#x}", cmdline_addr);
    FUZZ_CHECK(arguments.cmdline.size() <= hdr.cmdline_size, "a {}-byte command line passed, cmdline_size {}",
               arguments.cmdline.size(), hdr.cmdline_size);
    FUZZ_CHECK(guest_has_string(memory, cmdline_addr, arguments.cmdline), "command line of {} bytes not at {:#x}",
               arguments.cmdline.size(), cmdline_addr);

    // The initrd fields are the loader's to write (boot.rst: ramdisk_image "leave at zero if there is
    // no initial ramdisk"); whatever the image's header held there must not reach the kernel.
    uint64_t initrd_addr = uint64_t{params.ext_ramdisk_image} << 32 | hdr.ramdisk_image;
    uint64_t initrd_size = uint64_t{params.ext_ramdisk_size} << 32 | hdr.ramdisk_size;
    FUZZ_CHECK(initrd_size == arguments.initrd.size(), "ramdisk_size {:#x} (image {:#x}) for a {:#x}-byte initrd",
               initrd_size, initrd_addr, arguments.initrd.size());
    if (arguments.initrd.empty()) {
        FUZZ_CHECK(initrd_addr == 0, "ramdisk_image {:#x} without an initrd", initrd_addr);
    } else {
        FUZZ_CHECK(initrd_addr % (4 * KiB) == 0, "initrd at {:#x} is not page-aligned", initrd_addr);
        FUZZ_CHECK(initrd_addr + initrd_size - 1 <= hdr.initrd_addr_max, "initrd [{:#x}, {:#x}) above initrd_addr_max {:#x}",
                   initrd_addr, initrd_addr + initrd_size, hdr.initrd_addr_max);
        GuestRange initrd{initrd_addr, initrd_addr + initrd_size};
        for (const auto& range : kernel_ranges)
            FUZZ_CHECK(!initrd.overlaps(range), "initrd [{:#x}, {:#x}) overlaps the kernel's [{:#x}, {:#x})",
                       initrd.start, initrd.end, range.start, range.end);
        check_loaded(memory, "initrd", initrd_addr, arguments.initrd, initrd_size);
    }
    // No setup_data support: a pointer the image's header carried would send the kernel into a list
    // Strata never wrote.
    FUZZ_CHECK(hdr.setup_data == 0, "setup_data {:#x} in the zero page", hdr.setup_data);
}

}  // namespace strata::fuzz
