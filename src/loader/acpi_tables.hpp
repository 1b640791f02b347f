// Minimal ACPI tables for Strata's PC: how guests find the CPUs and interrupt controllers (MADT),
// the power-management ports, reset register and S5 soft-off (FADT, DSDT), the PCI root bridge
// with its windows and INTx routing, and the legacy COM1, keyboard and mouse (DSDT devices for
// Linux's PNP layer).
//
// State: none; all tables go to [pc::kAcpiTables, pc::kAcpiTablesEnd), the RSDP first (16-byte
//        aligned in 0xE0000-0xFFFFF, where guests scan for it).
// Features: RSDP revision 2 (RSDT and XSDT), FADT revision 6 with PM1a event/control and PM timer
//           blocks at pc::kPortAcpiPm, SCI on pc::kIrqAcpiSci, no SMI_CMD (ACPI always enabled),
//           RESET_REG = I/O 0xCF9 value 6, legacy devices and 8042; FACS; DSDT with \_S5, the PCI
//           root bridge \_SB.PCI0 (PNP0A08/PNP0A03, segment 0, bus 0; _CRS: bus numbers 0-0xff,
//           the config ports 0xcf8-0xcff, I/O windows 0-0xcf7 and 0xd00-0xffff, the VGA hole, the
//           32-bit window pc::kPciMmioStart-End and, when there is one above RAM, the 64-bit window
//           pc::pci_mmio64_window(); a static _PRT routing every pin of slots 1-31 to GSI
//           pc::pci_intx_gsi()), and (optionally) COM1 PNP0501, PS/2 keyboard PNP0303 and mouse
//           PNP0F13 with _HID/_CRS; MADT with one local APIC per CPU, the IOAPIC, overrides
//           IRQ0 -> GSI2 and IRQ9 -> GSI9 (level, active high) and LINT1 NMI; optionally an HPET
//           table (timer block 0 at pc::kHpet in system memory, no page protection guarantee).
// Missing: GPE blocks, _OSC on the root bridge (Linux then keeps native PCIe hot-plug, PME, AER
//          off), PCI interrupt link devices (the _PRT is static), processor devices, the HPET's
//          DSDT device (PNP0103: Linux finds the HPET by its table), MCFG (no ECAM: extended
//          config space is unreachable), sleep states other than S5, x2APIC entries (so at most
//          255 CPUs).
// Spec: ACPI 6.5 §5.2.5 (RSDP), §5.2.7/5.2.8 (RSDT/XSDT), §5.2.9 (FADT), §5.2.10 (FACS),
//       §5.2.12 (MADT), §6.1/§6.2/§6.5 (device objects, _CRS, _PRT, _SEG, _BBN), §7.4.2 (\_Sx
//       objects); IA-PC HPET Specification 1.0a §3.2.4 (HPET table).
#pragma once

#include <cstdint>
#include <optional>

#include "base/error.hpp"
#include "memory/guest_memory.hpp"
#include "memory/pc_layout.hpp"

namespace strata {

// The HPET timer block at pc::kHpet, as its ACPI description table gives it (HPET spec §3.2.4).
struct AcpiHpet {
    uint32_t event_timer_block_id = 0;  // the low 32 bits of its general capabilities register
    uint16_t minimum_periodic_ticks = 0;  // the shortest period without lost interrupts, in ticks
};

struct AcpiConfig {
    unsigned cpus = 1;          // 1..255: one enabled local APIC each, APIC ids 0..cpus-1
    // One past the highest RAM address (GuestMemory::end()): the PCI root bridge's 64-bit window
    // starts above it (pc::pci_mmio64_window), so 0 means "RAM ends below 4 GiB".
    uint64_t ram_end = 0;
    bool pnp_devices = true;    // describe COM1, the PS/2 keyboard and mouse in the DSDT
    std::optional<AcpiHpet> hpet = std::nullopt;  // an HPET table, listed after the MADT
};

// Where write_acpi_tables() puts the RSDP: pass it to load_linux() (boot_params.acpi_rsdp_addr).
constexpr uint64_t kAcpiRsdpAddress = pc::kAcpiTables;
// The FACS, 64-byte aligned right after the RSDP; its firmware waking vector (offset 12, u32) is
// where the boot CPU resumes from S3.
constexpr uint64_t kAcpiFacsAddress = pc::kAcpiTables + 0x40;
constexpr uint64_t kAcpiFacsWakingVector = kAcpiFacsAddress + 12;
// The SLP_TYP value of \_S5: the ACPI PM device must power off when PM1a_CNT gets SLP_EN with it.
constexpr uint8_t kAcpiSlpTypS5 = 5;
// The IOAPIC's id in the MADT (and the MP table): the first id after the CPUs'.
[[nodiscard]] constexpr uint8_t acpi_ioapic_id(unsigned cpus) { return static_cast<uint8_t>(cpus); }

// Writes RSDP, RSDT, XSDT, FADT, FACS, DSDT, MADT (and the HPET table) with correct checksums.
[[nodiscard]] Result<void> write_acpi_tables(GuestMemory& memory, const AcpiConfig& config);

}  // namespace strata
