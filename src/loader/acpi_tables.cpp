#include "loader/acpi_tables.hpp"

#include <cstddef>
#include <vector>

#include "base/checked.hpp"
#include "loader/aml.hpp"
#include "loader/table_bytes.hpp"

namespace strata {

namespace {

// §5.2.5.3 Root System Description Pointer, ACPI 2.0+ layout.
struct [[gnu::packed]] Rsdp {
    uint8_t signature[8];  // "RSD PTR "
    uint8_t checksum;      // over the first 20 bytes (the ACPI 1.0 part)
    uint8_t oem_id[6];
    uint8_t revision;      // 2
    uint32_t rsdt_address;
    uint32_t length;       // 36
    uint64_t xsdt_address;
    uint8_t extended_checksum;  // over all 36 bytes
    uint8_t reserved[3];
};
static_assert(sizeof(Rsdp) == 36 && offsetof(Rsdp, xsdt_address) == 24 && offsetof(Rsdp, extended_checksum) == 32);
constexpr size_t kRsdpV1Length = 20;

// §5.2.6 System Description Table header.
struct [[gnu::packed]] SdtHeader {
    uint8_t signature[4];
    uint32_t length;
    uint8_t revision;
    uint8_t checksum;
    uint8_t oem_id[6];
    uint8_t oem_table_id[8];
    uint32_t oem_revision;
    uint8_t creator_id[4];
    uint32_t creator_revision;
};
static_assert(sizeof(SdtHeader) == 36 && offsetof(SdtHeader, checksum) == 9);

// §5.2.3.2 Generic Address Structure.
struct [[gnu::packed]] GenericAddress {
    uint8_t space_id;     // 0 system memory, 1 system I/O
    uint8_t bit_width;
    uint8_t bit_offset;
    uint8_t access_size;  // 1 byte, 2 word, 3 dword, 4 qword
    uint64_t address;
};
static_assert(sizeof(GenericAddress) == 12);
constexpr uint8_t kSystemMemory = 0;
constexpr uint8_t kSystemIo = 1;

// §5.2.9 Fixed ACPI Description Table, revision 6.
struct [[gnu::packed]] Fadt {
    SdtHeader header;
    uint32_t firmware_ctrl, dsdt;
    uint8_t reserved0, preferred_pm_profile;
    uint16_t sci_int;
    uint32_t smi_cmd;
    uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
    uint32_t pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk, pm2_cnt_blk, pm_tmr_blk, gpe0_blk, gpe1_blk;
    uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len, gpe0_blk_len, gpe1_blk_len, gpe1_base, cst_cnt;
    uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
    uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
    uint16_t iapc_boot_arch;
    uint8_t reserved1;
    uint32_t flags;
    GenericAddress reset_reg;
    uint8_t reset_value;
    uint16_t arm_boot_arch;
    uint8_t minor_version;
    uint64_t x_firmware_ctrl, x_dsdt;
    GenericAddress x_pm1a_evt_blk, x_pm1b_evt_blk, x_pm1a_cnt_blk, x_pm1b_cnt_blk, x_pm2_cnt_blk, x_pm_tmr_blk,
        x_gpe0_blk, x_gpe1_blk, sleep_control_reg, sleep_status_reg;
    uint64_t hypervisor_vendor_id;
};
static_assert(sizeof(Fadt) == 276);
static_assert(offsetof(Fadt, sci_int) == 46 && offsetof(Fadt, pm1a_evt_blk) == 56 && offsetof(Fadt, pm_tmr_blk) == 76);
static_assert(offsetof(Fadt, pm1_evt_len) == 88 && offsetof(Fadt, iapc_boot_arch) == 109 && offsetof(Fadt, flags) == 112);
static_assert(offsetof(Fadt, reset_reg) == 116 && offsetof(Fadt, reset_value) == 128 && offsetof(Fadt, x_dsdt) == 140);
static_assert(offsetof(Fadt, x_pm1a_evt_blk) == 148 && offsetof(Fadt, x_pm_tmr_blk) == 208);

namespace fadt_flags {  // §5.2.9, table 5.10
// (Bit 4, PWR_BUTTON, stays clear: the power button is the fixed feature.)
constexpr uint32_t Wbinvd = 1u << 0, ProcC1 = 1u << 2, SlpButton = 1u << 5, ResetRegSup = 1u << 10;
}
namespace boot_arch {  // §5.2.9.3 IA-PC boot architecture flags
constexpr uint16_t LegacyDevices = 1u << 0, Has8042 = 1u << 1;
}
constexpr uint16_t kC2Unsupported = 101, kC3Unsupported = 1001;  // latencies above 100 / 1000 us
constexpr uint16_t kResetPort = 0xcf9;
constexpr uint8_t kResetValue = 0x06;  // reset CPU + full (hard) reset, as PIIX/ICH define 0xCF9
// The legacy VGA memory hole, 0xa0000-0xbffff, that the root bridge passes on to a VGA device.
constexpr uint32_t kVgaHoleStart = 0xa'0000, kVgaHoleEnd = 0xc'0000;
constexpr unsigned kPciSlots = 32;  // device numbers on a bus (PCI 3.0 §3.2.2.3.2)

// §5.2.10 Firmware ACPI Control Structure (no checksum; 64-byte aligned).
struct [[gnu::packed]] Facs {
    uint8_t signature[4];
    uint32_t length;
    uint32_t hardware_signature, firmware_waking_vector, global_lock, flags;
    uint64_t x_firmware_waking_vector;
    uint8_t version, reserved0[3];
    uint32_t ospm_flags;
    uint8_t reserved1[24];
};
static_assert(sizeof(Facs) == 64);

// §5.2.12 MADT and its interrupt controller structures.
struct [[gnu::packed]] MadtHeader {
    SdtHeader header;
    uint32_t local_apic_address;
    uint32_t flags;  // bit 0 PCAT_COMPAT: dual 8259s present
};
struct [[gnu::packed]] MadtLocalApic {
    uint8_t type = 0, length = 8, processor_uid, apic_id;
    uint32_t flags;  // bit 0 enabled
};
struct [[gnu::packed]] MadtIoApic {
    uint8_t type = 1, length = 12, id, reserved = 0;
    uint32_t address, gsi_base;
};
struct [[gnu::packed]] MadtOverride {
    uint8_t type = 2, length = 10, bus = 0, source;  // bus 0: ISA
    uint32_t gsi;
    uint16_t flags;  // bits 0-1 polarity (1 high, 3 low), bits 2-3 trigger (1 edge, 3 level); 0 = bus default
};
struct [[gnu::packed]] MadtLocalApicNmi {
    uint8_t type = 4, length = 6, processor_uid;  // 0xff: all processors
    uint16_t flags;
    uint8_t lint;
};
static_assert(sizeof(MadtHeader) == 44 && sizeof(MadtLocalApic) == 8 && sizeof(MadtIoApic) == 12 &&
              sizeof(MadtOverride) == 10 && sizeof(MadtLocalApicNmi) == 6);
constexpr uint16_t kLevelActiveHigh = 0b1101;

// IA-PC HPET Specification 1.0a §3.2.4, Table 3: the HPET description table.
struct [[gnu::packed]] HpetTable {
    SdtHeader header;
    uint32_t event_timer_block_id;
    GenericAddress base_address;
    uint8_t hpet_number;
    uint16_t minimum_periodic_ticks;
    uint8_t page_protection;  // 0: no guarantee that the rest of the 4 KiB page is unused
};
static_assert(sizeof(HpetTable) == 56 && offsetof(HpetTable, base_address) == 40 &&
              offsetof(HpetTable, minimum_periodic_ticks) == 53);

SdtHeader sdt_header(const char* signature, uint8_t revision) {
    SdtHeader header{};
    set_id(header.signature, signature);
    header.revision = revision;
    set_id(header.oem_id, "STRATA");
    set_id(header.oem_table_id, "STRATAPC");
    header.oem_revision = 1;
    set_id(header.creator_id, "STRA");
    header.creator_revision = 1;
    return header;
}

// Sets the header's length to the table's size and fixes its checksum.
std::vector<uint8_t> finish_table(std::vector<uint8_t> table) {
    uint32_t length = static_cast<uint32_t>(table.size());
    std::memcpy(table.data() + offsetof(SdtHeader, length), &length, sizeof(length));
    fix_checksum(table, offsetof(SdtHeader, checksum));
    return table;
}

GenericAddress io_register(uint16_t port, uint8_t bits, uint8_t access_size) {
    return {kSystemIo, bits, 0, access_size, port};
}

void append(aml::Bytes& out, const aml::Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }

// _CRS of the root bridge (ACPI 6.5 §6.2.2, §6.4.3.5): its windows, the bus numbers and address
// ranges it passes on to bus 0, are producer resources; the configuration ports are the bridge's
// own (consumed), so the I/O window leaves them out.
aml::Bytes pci_root_resources(uint64_t ram_end) {
    using namespace aml;
    constexpr uint16_t kPciConfigPorts = 8;
    Bytes crs = word_bus_number(0x00, 0xff);
    append(crs, io_port(pc::kPortPciConfig, kPciConfigPorts));
    append(crs, word_io(0x0000, pc::kPortPciConfig - 1));
    append(crs, word_io(pc::kPortPciConfig + kPciConfigPorts, 0xffff));
    // The VGA hole (a legacy VGA device decodes it) and the 32-bit BAR window: device registers,
    // so not cacheable.
    append(crs, dword_memory(kVgaHoleStart, kVgaHoleEnd - 1, MemoryCaching::NonCacheable));
    append(crs, dword_memory(static_cast<uint32_t>(pc::kPciMmioStart), static_cast<uint32_t>(pc::kPciMmioEnd - 1),
                             MemoryCaching::NonCacheable));
    // The 64-bit window is for 64-bit prefetchable BARs (pc_layout.hpp): Prefetchable makes Linux
    // put only such BARs there (it never places a non-prefetchable BAR in a prefetchable window).
    if (auto window = pc::pci_mmio64_window(ram_end); window.size != 0)
        append(crs, qword_memory(window.base, window.base + window.size - 1, MemoryCaching::Prefetchable));
    return resource_template(crs);
}

// _PRT (ACPI 6.5 §6.2.13): one entry per slot and pin, Package {Address, Pin, Source, SourceIndex}.
// Address is the slot in the high word with 0xFFFF for "any function"; Pin is 0-3 for INTA#-INTD#.
// Source 0 says the pin is hard-wired to the GSI in SourceIndex, which is then level-triggered and
// active low, as pc::pci_intx_gsi's lines are. Slot 0 is the host bridge, which raises no INTx.
aml::Bytes pci_routing_table() {
    using namespace aml;
    constexpr unsigned kIntxPins = 4;
    constexpr uint32_t kAnyFunction = 0xffff;
    std::vector<Bytes> entries;
    for (unsigned slot = 1; slot < kPciSlots; ++slot) {
        for (unsigned pin = 0; pin < kIntxPins; ++pin)
            entries.push_back(package({integer(uint64_t{slot} << 16 | kAnyFunction), integer(pin), integer(0),
                                       integer(pc::pci_intx_gsi(slot, pin))}));
    }
    return package(entries);
}

// \_SB.PCI0: the PCI root bridge of segment 0, bus 0, configuration mechanism #1 at 0xcf8
// (ACPI 6.5 §6.1.5 _HID, §6.1.2 _CID, §6.1.1 _ADR, §6.1.12 _UID, §6.5.6 _SEG, §6.5.5 _BBN).
// PNP0A08 (PCI Express root bridge) with PNP0A03 (PCI) as the compatible id: Linux's
// acpi_pci_root driver binds either.
aml::Bytes pci_root_bridge(uint64_t ram_end) {
    using namespace aml;
    Bytes body = name("_HID", eisa_id("PNP0A08"));
    append(body, name("_CID", eisa_id("PNP0A03")));
    append(body, name("_ADR", integer(0)));
    append(body, name("_UID", integer(0)));
    append(body, name("_SEG", integer(0)));
    append(body, name("_BBN", integer(0)));
    append(body, name("_CRS", pci_root_resources(ram_end)));
    append(body, name("_PRT", pci_routing_table()));
    return device("PCI0", body);
}

std::vector<uint8_t> build_dsdt(const AcpiConfig& config) {
    using namespace aml;
    // \_S5: Package {SLP_TYPa, SLP_TYPb, reserved, reserved} (§7.4.2); Linux's poweroff writes
    // SLP_TYPa | SLP_EN to PM1a_CNT.
    Bytes body = name("_S5_", package({integer(kAcpiSlpTypS5), integer(kAcpiSlpTypS5), integer(0), integer(0)}));
    Bytes devices = pci_root_bridge(config.ram_end);
    if (config.pnp_devices) {
        Bytes com1 = name("_HID", eisa_id("PNP0501"));
        append(com1, name("_UID", integer(1)));
        Bytes com1_resources = io_port(pc::kPortCom1, 8);
        append(com1_resources, irq(pc::kIrqCom1));
        append(com1, name("_CRS", resource_template(com1_resources)));
        append(devices, device("COM1", com1));

        Bytes keyboard = name("_HID", eisa_id("PNP0303"));
        Bytes keyboard_resources = io_port(pc::kPortI8042, 1);
        append(keyboard_resources, io_port(pc::kPortI8042 + 4, 1));
        append(keyboard_resources, irq(pc::kIrqKeyboard));
        append(keyboard, name("_CRS", resource_template(keyboard_resources)));
        append(devices, device("PS2K", keyboard));

        Bytes mouse = name("_HID", eisa_id("PNP0F13"));
        append(mouse, name("_CRS", resource_template(irq(pc::kIrqMouse))));
        append(devices, device("PS2M", mouse));
    }
    append(body, root_scope("_SB_", devices));
    std::vector<uint8_t> table;
    append_bytes(table, sdt_header("DSDT", 2));  // revision 2: 64-bit AML integers
    table.insert(table.end(), body.begin(), body.end());
    return finish_table(std::move(table));
}

std::vector<uint8_t> build_fadt(uint64_t facs, uint64_t dsdt) {
    Fadt fadt{};
    fadt.header = sdt_header("FACP", 6);
    fadt.firmware_ctrl = static_cast<uint32_t>(facs);  // X_FIRMWARE_CTRL stays 0: one of the two only
    fadt.dsdt = static_cast<uint32_t>(dsdt);
    fadt.x_dsdt = dsdt;
    fadt.sci_int = static_cast<uint16_t>(pc::kIrqAcpiSci);
    fadt.smi_cmd = 0;  // no SMM: the platform is always in ACPI mode (§5.2.9, SMI_CMD)
    fadt.pm1a_evt_blk = pc::kPortAcpiPm;
    fadt.pm1_evt_len = 4;
    fadt.pm1a_cnt_blk = pc::kPortAcpiPm + 4;
    fadt.pm1_cnt_len = 2;
    fadt.pm_tmr_blk = pc::kPortAcpiPm + 8;
    fadt.pm_tmr_len = 4;
    fadt.x_pm1a_evt_blk = io_register(pc::kPortAcpiPm, 32, 2);
    fadt.x_pm1a_cnt_blk = io_register(pc::kPortAcpiPm + 4, 16, 2);
    fadt.x_pm_tmr_blk = io_register(pc::kPortAcpiPm + 8, 32, 3);
    fadt.p_lvl2_lat = kC2Unsupported;
    fadt.p_lvl3_lat = kC3Unsupported;
    fadt.iapc_boot_arch = boot_arch::LegacyDevices | boot_arch::Has8042;
    // PWR_BUTTON clear: the power button is the fixed feature (PWRBTN_STS/PWRBTN_EN in PM1, which
    // the control API's stop presses); SLP_BUTTON set: no sleep button. The PM timer is 24 bits
    // (no TMR_VAL_EXT).
    fadt.flags = fadt_flags::Wbinvd | fadt_flags::ProcC1 | fadt_flags::SlpButton | fadt_flags::ResetRegSup;
    fadt.reset_reg = io_register(kResetPort, 8, 1);
    fadt.reset_value = kResetValue;
    std::vector<uint8_t> table;
    append_bytes(table, fadt);
    return finish_table(std::move(table));
}

std::vector<uint8_t> build_madt(const AcpiConfig& config) {
    std::vector<uint8_t> table;
    MadtHeader header{};
    header.header = sdt_header("APIC", 5);
    header.local_apic_address = static_cast<uint32_t>(pc::kLocalApic);
    header.flags = 1;  // PCAT_COMPAT
    append_bytes(table, header);
    for (unsigned cpu = 0; cpu < config.cpus; ++cpu) {
        MadtLocalApic entry{};
        entry.processor_uid = static_cast<uint8_t>(cpu);
        entry.apic_id = static_cast<uint8_t>(cpu);
        entry.flags = 1;
        append_bytes(table, entry);
    }
    MadtIoApic ioapic{};
    ioapic.id = acpi_ioapic_id(config.cpus);
    ioapic.address = static_cast<uint32_t>(pc::kIoApic);
    ioapic.gsi_base = 0;
    append_bytes(table, ioapic);
    // The PIT's IRQ 0 is wired to IOAPIC pin 2 on PCs; the SCI is level-triggered, active high.
    MadtOverride timer{};
    timer.source = static_cast<uint8_t>(pc::kIrqPit);
    timer.gsi = 2;
    timer.flags = 0;
    append_bytes(table, timer);
    MadtOverride sci{};
    sci.source = static_cast<uint8_t>(pc::kIrqAcpiSci);
    sci.gsi = pc::kIrqAcpiSci;
    sci.flags = kLevelActiveHigh;
    append_bytes(table, sci);
    MadtLocalApicNmi nmi{};
    nmi.processor_uid = 0xff;
    nmi.flags = 0;
    nmi.lint = 1;
    append_bytes(table, nmi);
    return finish_table(std::move(table));
}

std::vector<uint8_t> build_hpet(const AcpiHpet& hpet) {
    HpetTable table{};
    table.header = sdt_header("HPET", 1);
    table.event_timer_block_id = hpet.event_timer_block_id;
    table.base_address = {kSystemMemory, 64, 0, 0, pc::kHpet};
    table.hpet_number = 0;
    table.minimum_periodic_ticks = hpet.minimum_periodic_ticks;
    std::vector<uint8_t> bytes;
    append_bytes(bytes, table);
    return finish_table(std::move(bytes));
}

// Lays tables out one after another from pc::kAcpiTables.
class Layout {
public:
    uint64_t place(const std::vector<uint8_t>& table, uint64_t alignment) {
        uint64_t offset = align_up(blob_.size(), alignment);
        blob_.resize(offset);
        blob_.insert(blob_.end(), table.begin(), table.end());
        return pc::kAcpiTables + offset;
    }
    std::vector<uint8_t>& blob() { return blob_; }

private:
    std::vector<uint8_t> blob_ = std::vector<uint8_t>(sizeof(Rsdp));  // the RSDP goes first
};

}  // namespace

Result<void> write_acpi_tables(GuestMemory& memory, const AcpiConfig& config) {
    if (config.cpus == 0 || config.cpus > 255)
        return fail("ACPI tables: {} CPUs is outside 1..255 (xAPIC ids are 8 bits; the IOAPIC takes id N)",
                    config.cpus);
    Layout layout;
    uint64_t facs_addr = 0;
    {
        Facs facs{};
        set_id(facs.signature, "FACS");
        facs.length = sizeof(Facs);
        facs.version = 2;
        std::vector<uint8_t> bytes;
        append_bytes(bytes, facs);
        facs_addr = layout.place(bytes, 64);  // §5.2.10: 64-byte aligned
        if (facs_addr != kAcpiFacsAddress) panic(fmt::format("FACS placed at {:#x}, not {:#x}", facs_addr, kAcpiFacsAddress));
    }
    uint64_t dsdt_addr = layout.place(build_dsdt(config), 16);
    uint64_t fadt_addr = layout.place(build_fadt(facs_addr, dsdt_addr), 16);
    std::vector<uint64_t> listed{fadt_addr, layout.place(build_madt(config), 16)};
    if (config.hpet) listed.push_back(layout.place(build_hpet(*config.hpet), 16));

    std::vector<uint8_t> rsdt, xsdt;
    append_bytes(rsdt, sdt_header("RSDT", 1));
    append_bytes(xsdt, sdt_header("XSDT", 1));
    for (uint64_t table : listed) {
        append_bytes(rsdt, static_cast<uint32_t>(table));
        append_bytes(xsdt, table);
    }
    uint64_t rsdt_addr = layout.place(finish_table(std::move(rsdt)), 16);
    uint64_t xsdt_addr = layout.place(finish_table(std::move(xsdt)), 16);

    Rsdp rsdp{};
    set_id(rsdp.signature, "RSD PTR ");
    set_id(rsdp.oem_id, "STRATA");
    rsdp.revision = 2;
    rsdp.rsdt_address = static_cast<uint32_t>(rsdt_addr);
    rsdp.length = sizeof(Rsdp);
    rsdp.xsdt_address = xsdt_addr;
    auto& blob = layout.blob();
    std::memcpy(blob.data(), &rsdp, sizeof(rsdp));
    fix_checksum(std::span(blob).first(kRsdpV1Length), offsetof(Rsdp, checksum));
    fix_checksum(std::span(blob).first(sizeof(Rsdp)), offsetof(Rsdp, extended_checksum));

    if (!range_within(0, blob.size(), pc::kAcpiTablesEnd - pc::kAcpiTables))
        return fail("ACPI tables of {} bytes for {} CPUs exceed the {} KiB at {:#x}", blob.size(), config.cpus,
                    (pc::kAcpiTablesEnd - pc::kAcpiTables) / KiB, pc::kAcpiTables);
    if (auto r = memory.write(pc::kAcpiTables, blob); !r) return context(r.error(), "ACPI tables");
    return {};
}

}  // namespace strata
