// The Linux x86 boot protocol, 64-bit entry: loads a bzImage or an ELF vmlinux, its initrd and
// command line, fills the zero page (struct boot_params) and returns the boot vCPU's state.
//
// State: none; everything lands in guest memory at the addresses of memory/pc_layout.hpp.
// Features: bzImage (protocol >= 2.12, XLF_KERNEL_64) loaded at 1 MiB when relocatable, else at
//           pref_address, or its LZ4 payload unpacked on the host and loaded as a vmlinux; ELF64 vmlinux loaded at p_paddr with a synthesized setup header; initrd
//           page-aligned as high as allowed below min(initrd_addr_max, end of low RAM) and above the
//           kernel's init_size; e820 map from build_e820; optional ACPI RSDP address (2.14).
// Missing: the 16-bit and 32-bit entry points, setup_data (DTB, random seed), EFI handover,
//          initrds above 4 GiB (XLF_CAN_BE_LOADED_ABOVE_4G), KASLR hints.
// Spec: Linux Documentation/arch/x86/boot.rst ("The real-mode kernel header", "64-bit Boot
//       Protocol"), Documentation/arch/x86/zero-page.rst.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "base/error.hpp"
#include "cpu/cpu_state.hpp"
#include "memory/guest_memory.hpp"

namespace strata {

// Where a bzImage's compressed kernel is unpacked: by its own decompressor in the guest (the
// unmodified boot path), or on the host (kernel_payload.hpp) when Strata knows its format (LZ4),
// the result then entered as an ELF vmlinux at its link address with the bzImage's setup header
// (no KASLR: the guest's decompressor is what randomizes). Other formats take the guest path.
enum class KernelUnpack { Guest, Host };

// True when `kernel` looks like a bzImage: "HdrS" at 0x202 or the 0xAA55 boot flag at 0x1fe.
[[nodiscard]] bool is_bzimage(std::span<const uint8_t> kernel);

// Loads `kernel` (a bzImage or an ELF64 vmlinux, told apart by their magic), `initrd` (may be
// empty) and `cmdline` into `memory` and returns the 64-bit entry state: RIP at the kernel's 64-bit
// entry, RSI = pc::kZeroPage, identity paging for the first 4 GiB, boot GDT with CS 0x10 / DS 0x18.
// `acpi_rsdp_addr`, when not 0, is passed in boot_params.acpi_rsdp_addr (see acpi_tables.hpp).
// Every failure names the image part and the cause.
[[nodiscard]] Result<CpuState> load_linux(GuestMemory& memory, std::span<const uint8_t> kernel,
                                          std::span<const uint8_t> initrd, std::string_view cmdline,
                                          uint64_t acpi_rsdp_addr = 0, KernelUnpack unpack = KernelUnpack::Guest);

}  // namespace strata
