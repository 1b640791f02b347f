// Multiboot v1: finds the multiboot header, loads the kernel (ELF program headers or the a.out
// kludge address fields), its modules, and builds the multiboot information structure.
//
// State: none; the information structure, its memory map, module list and strings go to
//        [pc::kMultibootInfo, pc::kMultibootInfoEnd), the command line to pc::kCmdline.
// Features: header search in the first 8 KiB (4-byte aligned, checksum), flags bit 0 (page-aligned
//           modules, always done) and bit 1 (memory information, always given), bit 16 (address
//           fields) taking precedence over ELF; ELF32 and ELF64 images; mem_lower/mem_upper,
//           cmdline, modules, e820 memory map, boot loader name "strata".
// Missing: flags bit 2 (video mode; such kernels are rejected as the spec requires), ELF section
//          headers and a.out symbols, boot_device, drive and APM tables, framebuffer information.
// Spec: Multiboot Specification version 0.6.96, §3.1 (OS image format), §3.2 (machine state),
//       §3.3 (boot information format).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "cpu/cpu_state.hpp"
#include "memory/guest_memory.hpp"

namespace strata {

constexpr uint32_t kMultibootHeaderMagic = 0x1badb002;     // in the image
constexpr uint32_t kMultibootBootloaderMagic = 0x2badb002;  // in EAX at entry

// A boot module: its bytes and its string (§3.3 "string": a command line or name the kernel sees).
struct MultibootModule {
    std::vector<uint8_t> data;
    std::string cmdline;
};

// True when a valid multiboot header (magic and checksum) lies 4-byte aligned in the first 8 KiB.
[[nodiscard]] bool is_multiboot(std::span<const uint8_t> kernel);

// Loads `kernel` and `modules` (page-aligned, after the kernel's end), writes the multiboot
// information with `cmdline`, and returns the 32-bit protected-mode entry state: EAX = 0x2BADB002,
// EBX = pc::kMultibootInfo, CS 0x10 / DS 0x18 flat, paging and interrupts off. `cmdline` is passed
// verbatim (kvm-unit-tests turns it into argv[1..]).
[[nodiscard]] Result<CpuState> load_multiboot(GuestMemory& memory, std::span<const uint8_t> kernel,
                                              std::string_view cmdline, const std::vector<MultibootModule>& modules);

}  // namespace strata
