// The Intel MultiProcessor table: how guests without ACPI (or booted with acpi=off) find the CPUs,
// the IOAPIC and the ISA and PCI interrupt routing.
//
// State: none; the floating pointer goes to pc::kMpTable (the first KiB of the EBDA, which guests
//        scan), the configuration table to pc::kMpConfigTable in the reserved BIOS area (with the
//        PCI entries it never fits in the rest of that KiB).
// Features: processor entries (APIC ids 0..N-1, BSP = 0), buses PCI (id 0) and ISA (id 1), one
//           IOAPIC (id N, version 0x11, at pc::kIoApic), ISA IRQs 0-15 except the cascade IRQ 2 on
//           the IOAPIC with IRQ0 on pin 2 and the SCI (IRQ 9) level-triggered, every INTx pin of
//           PCI slots 1-31 on its GSI pc::pci_intx_gsi() (level-triggered, active low), ExtINT on
//           LINT0 and NMI on LINT1 of every local APIC; virtual wire mode (no IMCR).
// Missing: the extended table (bus hierarchy, address space mapping).
// Spec: Intel MultiProcessor Specification 1.4, §4 (MP configuration table), appendix D (PCI
//       interrupt entries, §D.3).
#pragma once

#include <cstdint>

#include "base/error.hpp"
#include "memory/guest_memory.hpp"

namespace strata {

constexpr unsigned kMpMaxCpus = 255;  // APIC ids are 8 bits; the IOAPIC takes id N

// Writes the MP floating pointer and configuration table for `cpus` CPUs (1..255).
[[nodiscard]] Result<void> write_mptable(GuestMemory& memory, unsigned cpus);

}  // namespace strata
