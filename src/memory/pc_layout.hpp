// Where Strata's PC board puts things in the guest-physical and port-I/O address spaces.
// One file, so that loaders, devices and the board agree; nothing else hard-codes an address.
#pragma once

#include <cstdint>

namespace strata::pc {

// --- Guest-physical memory: boot structures written by the loaders (all below 1 MiB) ---
constexpr uint64_t kBootGdt = 0x500;             // GDT used by the 64-bit Linux entry state
constexpr uint64_t kBootIdt = 0x520;             // empty IDT
constexpr uint64_t kBootTablesEnd = 0x530;       // end of the boot GDT and IDT
constexpr uint64_t kZeroPage = 0x7000;           // Linux boot_params
constexpr uint64_t kBootStack = 0x8ff0;          // initial stack for the boot CPU
constexpr uint64_t kPml4 = 0x9000;               // identity page tables for the 64-bit entry
constexpr uint64_t kPdpt = 0xa000;
constexpr uint64_t kPageDirectories = 0xb000;    // four, mapping 4 GiB with 2 MiB pages
constexpr uint64_t kMultibootInfo = 0x10000;     // multiboot info, its mmap, module list, strings
constexpr uint64_t kMultibootInfoEnd = 0x20000;
constexpr uint64_t kCmdline = 0x20000;           // kernel command line
constexpr uint64_t kCmdlineMax = 0x10000;        // bytes, including the terminating NUL
constexpr uint64_t kMpTable = 0x9fc00;           // MP floating pointer, in the EBDA (guests scan it)
constexpr uint64_t kAcpiTables = 0xe0000;        // RSDP and the tables after it (BIOS area)
constexpr uint64_t kAcpiTablesEnd = 0xf0000;
constexpr uint64_t kMpConfigTable = 0xf0000;     // MP configuration table, up to the BIOS area's end
constexpr uint64_t kKernelLoad = 0x100000;       // 1 MiB: protected-mode kernel

// --- Guest-physical MMIO (inside the hole between 3 GiB and 4 GiB) ---
constexpr uint64_t kPciMmioStart = 0xc000'0000;  // 32-bit PCI BAR window
constexpr uint64_t kPciMmioEnd = 0xfe00'0000;
// The 64-bit PCI window (64-bit prefetchable BARs) starts at the first 1 GiB boundary at or
// above the end of RAM and 4 GiB, and spans up to kPciMmio64MaxSize, below 2^kPhysicalAddressBits
// (what CPUID 0x80000008 reports); pci_mmio64_window() gives it for a RAM end.
constexpr unsigned kPhysicalAddressBits = 40;
constexpr uint64_t kPciMmio64MaxSize = 32ull << 30;
struct AddressWindow {
    uint64_t base = 0;
    uint64_t size = 0;  // 0: there is no such window
};
constexpr AddressWindow pci_mmio64_window(uint64_t ram_end) {
    constexpr uint64_t kGranule = 1ull << 30;
    constexpr uint64_t kLimit = 1ull << kPhysicalAddressBits;
    uint64_t base = ram_end < (4ull << 30) ? (4ull << 30) : ram_end;
    base = (base + kGranule - 1) & ~(kGranule - 1);
    if (base >= kLimit) return {};
    uint64_t size = kLimit - base < kPciMmio64MaxSize ? kLimit - base : kPciMmio64MaxSize;
    return {base, size};
}
constexpr uint64_t kIoApic = 0xfec0'0000;
constexpr uint64_t kHpet = 0xfed0'0000;          // HPET timer block (1 KiB), where PC chipsets put it
constexpr uint64_t kLocalApic = 0xfee0'0000;
constexpr uint64_t kTestDevMmio = 0xff00'0000;   // pc-testdev scratch memory (64 KiB)

// --- Port I/O ---
constexpr uint16_t kPortPic1 = 0x20;             // in-kernel (KVM) or soft engine
constexpr uint16_t kPortPit = 0x40;              // in-kernel (KVM) or soft engine
constexpr uint16_t kPortI8042 = 0x60;            // data 0x60, command/status 0x64
constexpr uint16_t kPortSystemControlB = 0x61;  // PIT counter 2 gate/output, speaker
constexpr uint16_t kPortRtc = 0x70;              // index 0x70, data 0x71
constexpr uint16_t kPortPostCode = 0x80;
constexpr uint16_t kPortPic2 = 0xa0;
constexpr uint16_t kPortTestDev = 0xe0;          // pc-testdev 0xe0..0xef
constexpr uint16_t kPortDebugExit = 0xf4;        // isa-debug-exit, 4 bytes
constexpr uint16_t kPortElcr = 0x4d0;            // 8259 edge/level control (PIIX)
constexpr uint16_t kPortCom1 = 0x3f8;
constexpr uint16_t kPortFwCfg = 0x510;           // selector 0x510, data 0x511
constexpr uint16_t kPortAcpiPm = 0x600;          // PM1a_EVT 0x600, PM1a_CNT 0x604, PM_TMR 0x608
constexpr uint16_t kPortPciConfig = 0xcf8;       // 0xcf8..0xcff, with the reset register at 0xcf9
constexpr uint16_t kPortTestDevIrq = 0x2000;     // pc-testdev IRQ lines 0x2000..0x2017
constexpr uint16_t kPortPciTestDevIo = 0xc000;   // pci-testdev's I/O BAR
constexpr uint16_t kPciIoStart = 0xc000;         // the PCI I/O window for BARs: 0xc000..0xffff
constexpr uint32_t kPciIoEnd = 0x1'0000;

// --- Interrupt lines (ISA IRQ = GSI under the default routing) ---
constexpr unsigned kIrqPit = 0;
constexpr unsigned kIrqKeyboard = 1;
constexpr unsigned kIrqCom1 = 4;
constexpr unsigned kIrqRtc = 8;
constexpr unsigned kIrqAcpiSci = 9;
constexpr unsigned kIrqMouse = 12;
constexpr unsigned kIoApicPins = 24;
constexpr unsigned kFirstPciGsi = 16;            // GSIs 16-23: IOAPIC only, no ISA device
// PCI INTx: the four GSIs 16-19, level-triggered and active low (each line is shared, wired-OR),
// with the usual swizzle: slot S's pin P (0 = INTA# ... 3 = INTD#) on GSI 16 + (S + P) mod 4. The
// DSDT's _PRT and the MP table's interrupt entries say the same. The HPET routes to GSIs 20-23.
constexpr unsigned kPciIntxGsis = 4;
constexpr unsigned pci_intx_gsi(unsigned slot, unsigned pin) { return kFirstPciGsi + (slot + pin) % kPciIntxGsis; }
constexpr unsigned kFirstHpetGsi = kFirstPciGsi + kPciIntxGsis;

}  // namespace strata::pc
