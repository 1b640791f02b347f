// Minimal ACPI tables for Strata's PC: how guests find the CPUs and interrupt controllers (MADT),
// the power-management ports, reset register and S5 soft-off (FADT, DSDT), and the legacy COM1,
// keyboard and mouse (DSDT devices for Linux's PNP layer).
//
// State: none; all tables go to [pc::kAcpiTables, pc::kAcpiTablesEnd), the RSDP first (16-byte
//        aligned in 0xE0000-0xFFFFF, where guests scan for it).
// Features: RSDP revision 2 (RSDT and XSDT), FADT revision 6 with PM1a event/control and PM timer
//           blocks at pc::kPortAcpiPm, SCI on pc::kIrqAcpiSci, no SMI_CMD (ACPI always enabled),
//           RESET_REG = I/O 0xCF9 value 6, legacy devices and 8042; FACS; DSDT with \_S5 and
//           (optionally) COM1 PNP0501, PS/2 keyboard PNP0303 and mouse PNP0F13 with _HID/_CRS;
//           MADT with one local APIC per CPU, the IOAPIC, overrides IRQ0 -> GSI2 and IRQ9 -> GSI9
//           (level, active high) and LINT1 NMI.
// Missing: GPE blocks, PCI host bridge (_PRT routing), processor devices, HPET, MCFG, sleep states
//          other than S5, x2APIC entries (so at most 255 CPUs).
// Spec: ACPI 6.5 §5.2.5 (RSDP), §5.2.7/5.2.8 (RSDT/XSDT), §5.2.9 (FADT), §5.2.10 (FACS),
//       §5.2.12 (MADT), §7.4.2 (\_Sx objects).
#pragma once

#include <cstdint>

#include "base/error.hpp"
#include "memory/guest_memory.hpp"
#include "memory/pc_layout.hpp"

namespace strata {

struct AcpiConfig {
    unsigned cpus = 1;          // 1..255: one enabled local APIC each, APIC ids 0..cpus-1
    bool pnp_devices = true;    // describe COM1, the PS/2 keyboard and mouse in the DSDT
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

// Writes RSDP, RSDT, XSDT, FADT, FACS, DSDT and MADT with correct checksums.
[[nodiscard]] Result<void> write_acpi_tables(GuestMemory& memory, const AcpiConfig& config);

}  // namespace strata
