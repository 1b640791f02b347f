#include "loader/mptable.hpp"

#include <cstddef>
#include <vector>

#include "base/checked.hpp"
#include "loader/table_bytes.hpp"
#include "memory/e820.hpp"
#include "memory/pc_layout.hpp"

namespace strata {

namespace {

// §4.1 MP floating pointer structure.
struct [[gnu::packed]] FloatingPointer {
    uint8_t signature[4];   // "_MP_"
    uint32_t config_table;  // physical address of the configuration table
    uint8_t length;         // in 16-byte units: 1
    uint8_t spec_rev;       // 4 = version 1.4
    uint8_t checksum;
    uint8_t features[5];    // [0] = 0: a configuration table is present; [1] bit 7 = 0: virtual wire mode
};
static_assert(sizeof(FloatingPointer) == 16 && offsetof(FloatingPointer, checksum) == 10);

// §4.2 configuration table header.
struct [[gnu::packed]] ConfigHeader {
    uint8_t signature[4];   // "PCMP"
    uint16_t base_length;   // header and entries
    uint8_t spec_rev;
    uint8_t checksum;
    uint8_t oem_id[8];
    uint8_t product_id[12];
    uint32_t oem_table;
    uint16_t oem_table_size;
    uint16_t entry_count;
    uint32_t local_apic;
    uint16_t extended_length;
    uint8_t extended_checksum;
    uint8_t reserved;
};
static_assert(sizeof(ConfigHeader) == 44 && offsetof(ConfigHeader, checksum) == 7 &&
              offsetof(ConfigHeader, local_apic) == 36);

enum class EntryType : uint8_t { Processor = 0, Bus = 1, IoApic = 2, IoInterrupt = 3, LocalInterrupt = 4 };

struct [[gnu::packed]] ProcessorEntry {  // §4.3.1
    EntryType type;
    uint8_t apic_id, apic_version, cpu_flags;  // cpu_flags: bit 0 enabled, bit 1 bootstrap processor
    uint32_t signature, feature_flags;
    uint8_t reserved[8];
};
static_assert(sizeof(ProcessorEntry) == 20);

struct [[gnu::packed]] BusEntry {  // §4.3.2
    EntryType type;
    uint8_t bus_id;
    uint8_t bus_type[6];
};
static_assert(sizeof(BusEntry) == 8);

struct [[gnu::packed]] IoApicEntry {  // §4.3.3
    EntryType type;
    uint8_t id, version, flags;  // flags bit 0: usable
    uint32_t address;
};
static_assert(sizeof(IoApicEntry) == 8);

struct [[gnu::packed]] InterruptEntry {  // §4.3.4 and §4.3.5 share this layout
    EntryType type;
    uint8_t interrupt_type;  // 0 INT (vectored), 1 NMI, 2 SMI, 3 ExtINT
    uint16_t flags;          // bits 0-1 polarity, 2-3 trigger mode; 0 = as the bus defines
    uint8_t source_bus, source_irq, dest_id, dest_pin;
};
static_assert(sizeof(InterruptEntry) == 8);

constexpr uint8_t kIntVectored = 0, kIntNmi = 1, kIntExtInt = 3;
constexpr uint16_t kLevelActiveHigh = 0b1101;  // polarity 01 (high), trigger 11 (level)
constexpr uint16_t kLevelActiveLow = 0b1111;   // polarity 11 (low), trigger 11 (level)
constexpr uint8_t kPciBus = 0, kIsaBus = 1;
constexpr uint8_t kLocalApicVersion = 0x14;  // integrated APIC
constexpr uint8_t kIoApicVersion = 0x11;
constexpr uint32_t kCpuSignature = 0x600;    // family 6; guests take the real one from CPUID
constexpr uint32_t kCpuFeatures = (1u << 0) | (1u << 9);  // FPU, APIC
constexpr uint8_t kAllLocalApics = 0xff;
constexpr unsigned kIsaIrqs = 16;
constexpr unsigned kPciSlots = 32, kPciIntxPins = 4;

// §D.3: a PCI interrupt's source bus IRQ is the device number in bits 6:2 and the pin (0 = INTA#)
// in bits 1:0.
constexpr uint8_t pci_source_irq(unsigned slot, unsigned pin) { return static_cast<uint8_t>(slot << 2 | pin); }

std::vector<uint8_t> build_config_table(unsigned cpus) {
    std::vector<uint8_t> table(sizeof(ConfigHeader));
    uint16_t entries = 0;
    auto add = [&](const auto& entry) {
        append_bytes(table, entry);
        ++entries;
    };
    // §4.3: entries in ascending order of type.
    for (unsigned id = 0; id < cpus; ++id)
        add(ProcessorEntry{EntryType::Processor, static_cast<uint8_t>(id), kLocalApicVersion,
                           static_cast<uint8_t>(id == 0 ? 0b11 : 0b01), kCpuSignature, kCpuFeatures, {}});
    add(BusEntry{EntryType::Bus, kPciBus, {'P', 'C', 'I', ' ', ' ', ' '}});
    add(BusEntry{EntryType::Bus, kIsaBus, {'I', 'S', 'A', ' ', ' ', ' '}});
    uint8_t ioapic_id = static_cast<uint8_t>(cpus);
    add(IoApicEntry{EntryType::IoApic, ioapic_id, kIoApicVersion, 1, static_cast<uint32_t>(pc::kIoApic)});
    for (unsigned irq = 0; irq < kIsaIrqs; ++irq) {
        // The PIT (IRQ 0) is wired to pin 2 on PCs, so pin 2 has no IRQ 2 (the 8259 cascade).
        if (irq == 2) continue;
        uint8_t pin = static_cast<uint8_t>(irq == pc::kIrqPit ? 2 : irq);
        uint16_t flags = irq == pc::kIrqAcpiSci ? kLevelActiveHigh : 0;  // as in the MADT
        add(InterruptEntry{EntryType::IoInterrupt, kIntVectored, flags, kIsaBus, static_cast<uint8_t>(irq), ioapic_id,
                           pin});
    }
    // Every pin of slots 1-31 (slot 0 is the host bridge, which raises no INTx) on its GSI, the
    // IOAPIC pin of the same number, level-triggered and active low, as the DSDT's _PRT says.
    for (unsigned slot = 1; slot < kPciSlots; ++slot) {
        for (unsigned pin = 0; pin < kPciIntxPins; ++pin)
            add(InterruptEntry{EntryType::IoInterrupt, kIntVectored, kLevelActiveLow, kPciBus, pci_source_irq(slot, pin),
                               ioapic_id, static_cast<uint8_t>(pc::pci_intx_gsi(slot, pin))});
    }
    add(InterruptEntry{EntryType::LocalInterrupt, kIntExtInt, 0, kIsaBus, 0, kAllLocalApics, 0});
    add(InterruptEntry{EntryType::LocalInterrupt, kIntNmi, 0, kIsaBus, 0, kAllLocalApics, 1});

    ConfigHeader header{};
    set_id(header.signature, "PCMP");
    header.base_length = static_cast<uint16_t>(table.size());
    header.spec_rev = 4;
    set_id(header.oem_id, "STRATA");
    set_id(header.product_id, "STRATA PC");
    header.entry_count = entries;
    header.local_apic = static_cast<uint32_t>(pc::kLocalApic);
    std::memcpy(table.data(), &header, sizeof(header));
    fix_checksum(table, offsetof(ConfigHeader, checksum));
    return table;
}

}  // namespace

Result<void> write_mptable(GuestMemory& memory, unsigned cpus) {
    if (cpus == 0 || cpus > kMpMaxCpus)
        return fail("MP table: {} CPUs is outside 1..{} (8-bit APIC ids, the IOAPIC takes id N)", cpus, kMpMaxCpus);
    std::vector<uint8_t> table = build_config_table(cpus);

    // The configuration table may live anywhere (§4.1). The 1008 bytes left in the EBDA after the
    // pointer hold the header and the ISA entries (204 + 20 per CPU) but not the 124 PCI interrupt
    // entries (992 bytes) as well, so it goes to the reserved BIOS area, where even 255 CPUs fit.
    uint64_t table_addr = pc::kMpConfigTable;
    if (!range_within(table_addr, table.size(), kBiosAreaEnd))
        return fail("MP table: configuration table of {} bytes for {} CPUs does not fit at {:#x}", table.size(), cpus,
                    table_addr);

    FloatingPointer pointer{};
    set_id(pointer.signature, "_MP_");
    pointer.config_table = static_cast<uint32_t>(table_addr);
    pointer.length = 1;
    pointer.spec_rev = 4;
    std::vector<uint8_t> pointer_bytes;
    append_bytes(pointer_bytes, pointer);
    fix_checksum(pointer_bytes, offsetof(FloatingPointer, checksum));

    if (auto r = memory.write(pc::kMpTable, pointer_bytes); !r) return context(r.error(), "MP floating pointer");
    if (auto r = memory.write(table_addr, table); !r) return context(r.error(), "MP configuration table");
    return {};
}

}  // namespace strata
