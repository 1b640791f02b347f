// The boot vCPU's first state, as the loaders hand it over: the GDT and identity page tables that
// state refers to are written to guest memory here too, so the state and the tables always agree.
//
// State: none.
// Features: 64-bit entry (Linux 64-bit boot protocol) with a flat GDT at pc::kBootGdt and 4 GiB
//           identity-mapped with 2 MiB pages; 32-bit protected-mode entry with paging off (multiboot).
// Missing: 5-level paging, 1 GiB pages, mappings above 4 GiB (the kernel builds its own).
// Spec: Intel SDM vol. 3A §3.4.5 (segment descriptors), §4.5 (4-level paging), §9.8.5 (entering
//       IA-32e mode); Linux Documentation/arch/x86/boot.rst "64-bit Boot Protocol".
#pragma once

#include <cstdint>

#include "base/error.hpp"
#include "cpu/cpu_state.hpp"
#include "memory/guest_memory.hpp"

namespace strata {

// The selectors the Linux boot protocol requires (__BOOT_CS, __BOOT_DS); multiboot uses them too.
constexpr uint16_t kBootCodeSelector = 0x10;
constexpr uint16_t kBootDataSelector = 0x18;

// The 8-byte GDT descriptor for a code or data segment's hidden state (SDM vol. 3A §3.4.5).
[[nodiscard]] uint64_t gdt_descriptor(const SegmentState& segment);

// Writes the GDT, an empty IDT and the identity page tables, and returns the state of a CPU in
// 64-bit mode about to run `rip` with RSI = `rsi`, interrupts off, RSP = pc::kBootStack.
[[nodiscard]] Result<CpuState> long_mode_entry(const GuestMemory& memory, uint64_t rip, uint64_t rsi);

// Writes the GDT (32-bit flat code at 0x10, data at 0x18) and an empty IDT, and returns the state
// of a CPU in 32-bit protected mode, paging off, interrupts off, about to run `eip`.
[[nodiscard]] Result<CpuState> protected_mode_entry(const GuestMemory& memory, uint32_t eip);

}  // namespace strata
