#include "loader/acpi_tables.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <numeric>
#include <string>

#include "base/checked.hpp"
#include "e2e/process_runner.hpp"
#include "loader/aml.hpp"
#include "loader/test_images.hpp"

namespace strata {
namespace {

using test::get_le;

using test::byte_sum;
using test::read_guest;

// Where `needle` first occurs in `haystack`, or haystack.size().
size_t position(const std::vector<uint8_t>& haystack, const std::vector<uint8_t>& needle) {
    return static_cast<size_t>(std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) -
                               haystack.begin());
}

bool contains(const std::vector<uint8_t>& haystack, const std::vector<uint8_t>& needle) {
    return position(haystack, needle) != haystack.size();
}

// Reads a table by address and checks its header checksum.
std::vector<uint8_t> read_table(const GuestMemory& memory, uint64_t addr) {
    auto header = read_guest(memory, addr, 36);
    auto table = read_guest(memory, addr, get_le(header, 4, 4));
    EXPECT_EQ(byte_sum(table), 0) << std::string(table.begin(), table.begin() + 4) << " checksum";
    return table;
}

// Finds the RSDP the way Linux does (16-byte steps over 0xE0000-0xFFFFF) and walks the XSDT.
std::map<std::string, std::vector<uint8_t>> discover(const GuestMemory& memory, uint64_t* rsdp_at = nullptr) {
    std::map<std::string, std::vector<uint8_t>> tables;
    auto area = read_guest(memory, 0xe0000, 0x20000);
    for (size_t off = 0; off + 36 <= area.size(); off += 16) {
        if (std::string(area.begin() + static_cast<ptrdiff_t>(off), area.begin() + static_cast<ptrdiff_t>(off + 8)) !=
            "RSD PTR ")
            continue;
        if (rsdp_at) *rsdp_at = 0xe0000 + off;
        std::vector<uint8_t> rsdp(area.begin() + static_cast<ptrdiff_t>(off), area.begin() + static_cast<ptrdiff_t>(off + 36));
        EXPECT_EQ(byte_sum(std::vector<uint8_t>(rsdp.begin(), rsdp.begin() + 20)), 0) << "RSDP 1.0 checksum";
        EXPECT_EQ(byte_sum(rsdp), 0) << "RSDP extended checksum";
        EXPECT_EQ(rsdp[15], 2);
        EXPECT_EQ(get_le(rsdp, 20, 4), 36u);
        auto rsdt = read_table(memory, get_le(rsdp, 16, 4));
        auto xsdt = read_table(memory, get_le(rsdp, 24, 8));
        tables["RSDT"] = rsdt;
        tables["XSDT"] = xsdt;
        EXPECT_EQ((rsdt.size() - 36) / 4, (xsdt.size() - 36) / 8);
        for (size_t i = 36; i + 8 <= xsdt.size(); i += 8) {
            EXPECT_EQ(get_le(xsdt, i, 8), get_le(rsdt, 36 + (i - 36) / 2, 4)) << "RSDT and XSDT agree";
            auto table = read_table(memory, get_le(xsdt, i, 8));
            tables[std::string(table.begin(), table.begin() + 4)] = table;
        }
        const auto& fadt = tables["FACP"];
        tables["DSDT"] = read_table(memory, get_le(fadt, 140, 8));
        tables["FACS"] = read_guest(memory, get_le(fadt, 36, 4), 64);
        return tables;
    }
    ADD_FAILURE() << "no RSDP in 0xE0000-0xFFFFF";
    return tables;
}

class Acpi : public ::testing::Test {
protected:
    void SetUp() override {
        auto created = GuestMemory::create(16 * MiB);
        ASSERT_TRUE(created);
        memory = std::make_unique<GuestMemory>(std::move(*created));
    }
    std::unique_ptr<GuestMemory> memory;
};

TEST_F(Acpi, RsdpIsWhereLinuxScansAndWhereTheZeroPageSays) {
    ASSERT_TRUE(write_acpi_tables(*memory, {.cpus = 2}));
    uint64_t at = 0;
    auto tables = discover(*memory, &at);
    EXPECT_EQ(at, kAcpiRsdpAddress);
    EXPECT_TRUE(tables.contains("FACP"));
    EXPECT_TRUE(tables.contains("APIC"));
}

TEST_F(Acpi, FadtDescribesThePmBlockResetAndSci) {
    ASSERT_TRUE(write_acpi_tables(*memory, {.cpus = 1}));
    auto tables = discover(*memory);
    const auto& fadt = tables["FACP"];
    ASSERT_EQ(fadt.size(), 276u);
    EXPECT_EQ(fadt[8], 6) << "revision";
    EXPECT_EQ(get_le(fadt, 46, 2), pc::kIrqAcpiSci);
    EXPECT_EQ(get_le(fadt, 48, 4), 0u) << "no SMI_CMD: always in ACPI mode";
    EXPECT_EQ(get_le(fadt, 56, 4), pc::kPortAcpiPm);
    EXPECT_EQ(get_le(fadt, 64, 4), pc::kPortAcpiPm + 4u);
    EXPECT_EQ(get_le(fadt, 76, 4), pc::kPortAcpiPm + 8u);
    EXPECT_EQ(fadt[88], 4);
    EXPECT_EQ(fadt[89], 2);
    EXPECT_EQ(fadt[91], 4);
    EXPECT_EQ(get_le(fadt, 109, 2), 3u) << "LEGACY_DEVICES | 8042";
    uint32_t flags = static_cast<uint32_t>(get_le(fadt, 112, 4));
    // WBINVD, PROC_C1, SLP_BUTTON (no sleep button), RESET_REG_SUP; PWR_BUTTON (bit 4) clear: the
    // power button is the fixed feature.
    EXPECT_EQ(flags, (1u << 0) | (1u << 2) | (1u << 5) | (1u << 10));
    EXPECT_EQ(fadt[116], 1) << "RESET_REG in system I/O";
    EXPECT_EQ(get_le(fadt, 120, 8), 0xcf9u);
    EXPECT_EQ(fadt[128], 6);
    EXPECT_EQ(get_le(fadt, 148 + 4, 8), pc::kPortAcpiPm) << "X_PM1a_EVT_BLK";
    EXPECT_EQ(get_le(fadt, 172 + 4, 8), pc::kPortAcpiPm + 4u) << "X_PM1a_CNT_BLK";
    EXPECT_EQ(get_le(fadt, 208 + 4, 8), pc::kPortAcpiPm + 8u) << "X_PM_TMR_BLK";
    EXPECT_EQ(get_le(fadt, 40, 4), get_le(fadt, 140, 8)) << "DSDT and X_DSDT agree";
    const auto& facs = tables["FACS"];
    EXPECT_EQ(std::string(facs.begin(), facs.begin() + 4), "FACS");
    EXPECT_EQ(get_le(fadt, 36, 4) % 64, 0u) << "FACS is 64-byte aligned";
}

TEST_F(Acpi, DsdtHasS5AndTheLegacyDevices) {
    ASSERT_TRUE(write_acpi_tables(*memory, {.cpus = 1}));
    auto dsdt = discover(*memory)["DSDT"];
    // Name (_S5_, Package (4) {5, 5, 0, 0})
    EXPECT_TRUE(contains(dsdt, {0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0a, kAcpiSlpTypS5, 0x0a, kAcpiSlpTypS5, 0x00, 0x00}));
    EXPECT_TRUE(contains(dsdt, {0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01})) << "PNP0501";
    EXPECT_TRUE(contains(dsdt, {0x0c, 0x41, 0xd0, 0x03, 0x03})) << "PNP0303";
    EXPECT_TRUE(contains(dsdt, {0x0c, 0x41, 0xd0, 0x0f, 0x13})) << "PNP0F13";
    EXPECT_TRUE(contains(dsdt, {0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, 0x22, 0x10, 0x00}))
        << "COM1: IO 0x3f8 len 8, IRQ 4";

    ASSERT_TRUE(write_acpi_tables(*memory, {.cpus = 1, .pnp_devices = false}));
    auto bare = discover(*memory)["DSDT"];
    EXPECT_FALSE(contains(bare, {'C', 'O', 'M', '1'}));
    EXPECT_FALSE(contains(bare, {0x0c, 0x41, 0xd0, 0x03, 0x03})) << "no PS/2 keyboard";
    EXPECT_TRUE(contains(bare, {'P', 'C', 'I', '0'})) << "the PCI root bridge is always there";
}

// A DSDT object's bytes: what follows `Name (seg, ...)`, the NameOp and the NameSeg.
size_t find_name(const std::vector<uint8_t>& aml, const char (&seg)[5]) {
    std::vector<uint8_t> needle{0x08, uint8_t(seg[0]), uint8_t(seg[1]), uint8_t(seg[2]), uint8_t(seg[3])};
    auto at = std::search(aml.begin(), aml.end(), needle.begin(), needle.end());
    EXPECT_NE(at, aml.end()) << "no Name (" << seg << ")";
    return at == aml.end() ? aml.size() : static_cast<size_t>(at - aml.begin()) + needle.size();
}

// Decodes a PkgLength at `at` (ACPI 6.5 §20.2.4) and moves past it.
size_t read_package_length(const std::vector<uint8_t>& aml, size_t& at) {
    uint8_t lead = aml.at(at++);
    unsigned extra = lead >> 6;
    if (extra == 0) return lead & 0x3f;
    size_t length = lead & 0x0f;
    for (unsigned i = 0; i < extra; ++i) length |= size_t{aml.at(at++)} << (4 + 8 * i);
    return length;
}

// Decodes a ComputationalData integer (Zero, One, Byte/Word/DWord/QWord constants) at `at`.
uint64_t read_integer(const std::vector<uint8_t>& aml, size_t& at) {
    uint8_t op = aml.at(at++);
    size_t size = op == 0x0a ? 1 : op == 0x0b ? 2 : op == 0x0c ? 4 : op == 0x0e ? 8 : 0;
    if (size == 0) {
        EXPECT_TRUE(op == 0x00 || op == 0x01) << "not an integer: opcode " << int(op);
        return op;
    }
    uint64_t value = get_le(aml, at, size);
    at += size;
    return value;
}

TEST_F(Acpi, DsdtHasThePciRootBridgeWithItsIds) {
    ASSERT_TRUE(write_acpi_tables(*memory, {.cpus = 1}));
    auto dsdt = discover(*memory)["DSDT"];
    // Device (PCI0) { Name (_HID, EisaId ("PNP0A08")) Name (_CID, EisaId ("PNP0A03")) Name (_ADR, Zero)
    // Name (_UID, Zero) Name (_SEG, Zero) Name (_BBN, Zero) ...
    size_t device = position(dsdt, {'P', 'C', 'I', '0'});
    ASSERT_LT(device, dsdt.size());
    ASSERT_GE(device, 4u);
    EXPECT_EQ(dsdt[device - 4], 0x5b) << "ExtOpPrefix";
    EXPECT_EQ(dsdt[device - 3], 0x82) << "DeviceOp, then a two-byte PkgLength";
    EXPECT_TRUE(contains(dsdt, {'P', 'C', 'I', '0', 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x08,  //
                                0x08, '_', 'C', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03,                     //
                                0x08, '_', 'A', 'D', 'R', 0x00, 0x08, '_', 'U', 'I', 'D', 0x00,             //
                                0x08, '_', 'S', 'E', 'G', 0x00, 0x08, '_', 'B', 'B', 'N', 0x00}));
    // Inside \_SB: the Scope's NameString is \_SB_ and PCI0 comes after it.
    EXPECT_LT(position(dsdt, {'\\', '_', 'S', 'B', '_'}), device);
}

TEST_F(Acpi, PciRootBridgeResourcesAreItsWindows) {
    ASSERT_TRUE(write_acpi_tables(*memory, {.cpus = 1, .ram_end = 512 * MiB}));
    auto dsdt = discover(*memory)["DSDT"];
    size_t at = find_name(dsdt, "_CRS");
    ASSERT_EQ(dsdt.at(at++), 0x11) << "BufferOp";
    size_t end = at;
    end += read_package_length(dsdt, at);
    size_t size = read_integer(dsdt, at);
    EXPECT_EQ(at + size, end);
    std::vector<uint8_t> crs(dsdt.begin() + static_cast<ptrdiff_t>(at), dsdt.begin() + static_cast<ptrdiff_t>(end));
    std::vector<uint8_t> expected = aml::word_bus_number(0, 0xff);
    for (const auto& more : {aml::io_port(0xcf8, 8), aml::word_io(0, 0xcf7), aml::word_io(0xd00, 0xffff),
                             aml::dword_memory(0xa'0000, 0xb'ffff, aml::MemoryCaching::NonCacheable),
                             aml::dword_memory(0xc000'0000, 0xfdff'ffff, aml::MemoryCaching::NonCacheable),
                             aml::qword_memory(4 * GiB, 36 * GiB - 1, aml::MemoryCaching::Prefetchable),
                             aml::Bytes{0x79, 0x00}})
        expected.insert(expected.end(), more.begin(), more.end());
    EXPECT_EQ(crs, expected);
    EXPECT_EQ(pc::pci_mmio64_window(512 * MiB).base, 4 * GiB);

    // With RAM above 4 GiB the 64-bit window moves up to the next GiB boundary after it.
    ASSERT_TRUE(write_acpi_tables(*memory, {.cpus = 1, .ram_end = 5 * GiB + 4096}));
    dsdt = discover(*memory)["DSDT"];
    EXPECT_TRUE(contains(dsdt, aml::qword_memory(6 * GiB, 38 * GiB - 1, aml::MemoryCaching::Prefetchable)));
    // A RAM end at the top of the physical address space leaves no room: no QWordMemory at all.
    ASSERT_TRUE(write_acpi_tables(*memory, {.cpus = 1, .ram_end = uint64_t{1} << pc::kPhysicalAddressBits}));
    dsdt = discover(*memory)["DSDT"];
    EXPECT_FALSE(contains(dsdt, {0x8a, 0x2b, 0x00})) << "QWord address space descriptor";
    EXPECT_TRUE(contains(dsdt, aml::dword_memory(0xc000'0000, 0xfdff'ffff, aml::MemoryCaching::NonCacheable)));
}

// ACPI 6.5 §6.2.13: Package {Package {Address, Pin, Source, SourceIndex}, ...}.
TEST_F(Acpi, PciRoutingTableSendsEveryPinToItsGsi) {
    ASSERT_TRUE(write_acpi_tables(*memory, {.cpus = 1}));
    auto dsdt = discover(*memory)["DSDT"];
    size_t at = find_name(dsdt, "_PRT");
    ASSERT_EQ(dsdt.at(at++), 0x12) << "PackageOp";
    size_t end = at;
    end += read_package_length(dsdt, at);
    ASSERT_EQ(dsdt.at(at++), 31 * 4) << "NumElements: slots 1-31, four pins each";
    std::map<std::pair<unsigned, unsigned>, uint64_t> routes;
    while (at < end) {
        ASSERT_EQ(dsdt.at(at++), 0x12);
        size_t entry_end = at;
        entry_end += read_package_length(dsdt, at);
        ASSERT_EQ(dsdt.at(at++), 4);
        uint64_t address = read_integer(dsdt, at);
        uint64_t pin = read_integer(dsdt, at);
        EXPECT_EQ(read_integer(dsdt, at), 0u) << "Source: a hard-wired GSI";
        uint64_t gsi = read_integer(dsdt, at);
        ASSERT_EQ(at, entry_end);
        EXPECT_EQ(address & 0xffff, 0xffffu) << "any function";
        routes[{static_cast<unsigned>(address >> 16), static_cast<unsigned>(pin)}] = gsi;
    }
    EXPECT_EQ(at, end);
    ASSERT_EQ(routes.size(), 31u * 4);
    for (unsigned slot = 1; slot < 32; ++slot)
        for (unsigned pin = 0; pin < 4; ++pin)
            EXPECT_EQ((routes[{slot, pin}]), pc::pci_intx_gsi(slot, pin)) << "slot " << slot << " pin " << pin;
    EXPECT_EQ((routes[{1, 0}]), 17u) << "the swizzle: slot 1 INTA# on GSI 17";
    // Package (4) {0x0001FFFF, Zero, Zero, 0x11}, as an ASL compiler writes it.
    EXPECT_TRUE(contains(dsdt, {0x12, 0x0b, 0x04, 0x0c, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00, 0x0a, 0x11}));
}

// The DSDT as an independent AML implementation reads it: ACPICA's disassembler (iasl -d, from
// acpica-tools, which scripts/setup-deps installs) must parse it without an error, find the root
// bridge, its routing table and windows, and its output must compile back without an error. The
// compiler's one warning is 3073, a device with both _HID and _ADR: ACPI 6.5 §6.1 says "should
// not", and PCI0 has _ADR 0 as well, as PC firmware has long written it.
TEST_F(Acpi, DsdtDisassemblesCleanlyWithIasl) {
    if (e2e::run_process({"/bin/sh", "-c", "command -v iasl"}).exit_status != 0)
        GTEST_SKIP() << "iasl is not installed: apt-get install acpica-tools (scripts/setup-deps does)";
    ASSERT_TRUE(write_acpi_tables(*memory, {.cpus = 2, .ram_end = 512 * MiB}));
    auto dsdt = discover(*memory)["DSDT"];
    std::string dir = ::testing::TempDir() + "strata-dsdt-" + std::to_string(getpid());
    ASSERT_EQ(e2e::run_process({"/bin/mkdir", "-p", dir}).exit_status, 0);
    {
        std::ofstream file(dir + "/dsdt.dat", std::ios::binary);
        file.write(reinterpret_cast<const char*>(dsdt.data()), static_cast<std::streamsize>(dsdt.size()));
        ASSERT_TRUE(file.good());
    }
    auto in_dir = [&](const std::string& command) {
        return e2e::run_process({"/bin/sh", "-c", "cd '" + dir + "' && " + command + " 2>&1"});
    };
    auto disassembled = in_dir("iasl -d dsdt.dat");
    EXPECT_EQ(disassembled.exit_status, 0) << disassembled.out;
    EXPECT_EQ(disassembled.out.find("rror"), std::string::npos) << disassembled.out;
    EXPECT_NE(disassembled.out.find("Disassembly completed"), std::string::npos) << disassembled.out;
    std::ifstream dsl_file(dir + "/dsdt.dsl");
    std::string dsl((std::istreambuf_iterator<char>(dsl_file)), std::istreambuf_iterator<char>());
    for (const char* text : {"Device (PCI0)", "Name (_HID, EisaId (\"PNP0A08\")", "Name (_CID, EisaId (\"PNP0A03\")",
                             "Name (_PRT, Package (0x7C)", "WordBusNumber (ResourceProducer", "0x0CF8,",
                             "WordIO (ResourceProducer", "0x0CF7,", "0x0D00,", "DWordMemory (ResourceProducer",
                             "0x000A0000,", "0xC0000000,", "0xFDFFFFFF,", "QWordMemory (ResourceProducer",
                             "0x0000000100000000,", "0x00000008FFFFFFFF,", "Device (COM1)", "Name (_S5, Package"})
        EXPECT_NE(dsl.find(text), std::string::npos) << text << " in\n" << dsl;
    auto compiled = in_dir("iasl -p recompiled dsdt.dsl");
    EXPECT_EQ(compiled.exit_status, 0) << compiled.out;
    EXPECT_NE(compiled.out.find("Compilation successful. 0 Errors"), std::string::npos) << compiled.out;
    for (size_t at = compiled.out.find("Warning  "); at != std::string::npos; at = compiled.out.find("Warning  ", at + 1))
        EXPECT_EQ(compiled.out.compare(at, 13, "Warning  3073"), 0) << compiled.out;
    in_dir("rm -f dsdt.dat dsdt.dsl recompiled.aml && cd .. && rmdir '" + dir + "'");
}

TEST_F(Acpi, MadtListsCpusIoApicOverridesAndNmi) {
    ASSERT_TRUE(write_acpi_tables(*memory, {.cpus = 3}));
    auto madt = discover(*memory)["APIC"];
    EXPECT_EQ(get_le(madt, 36, 4), pc::kLocalApic);
    EXPECT_EQ(get_le(madt, 40, 4), 1u) << "PCAT_COMPAT";
    std::vector<std::vector<uint8_t>> entries;
    for (size_t off = 44; off < madt.size(); off += madt[off + 1]) {
        ASSERT_GT(madt[off + 1], 0);
        entries.emplace_back(madt.begin() + static_cast<ptrdiff_t>(off),
                             madt.begin() + static_cast<ptrdiff_t>(off + madt[off + 1]));
    }
    ASSERT_EQ(entries.size(), 3u + 1 + 2 + 1);
    for (unsigned i = 0; i < 3; ++i) {
        EXPECT_EQ(entries[i][0], 0);
        EXPECT_EQ(entries[i][3], i) << "APIC id";
        EXPECT_EQ(get_le(entries[i], 4, 4), 1u) << "enabled";
    }
    EXPECT_EQ(entries[3][0], 1);
    EXPECT_EQ(entries[3][2], 3) << "IOAPIC id N";
    EXPECT_EQ(get_le(entries[3], 4, 4), pc::kIoApic);
    EXPECT_EQ(get_le(entries[3], 8, 4), 0u);
    EXPECT_EQ(entries[4][0], 2);
    EXPECT_EQ(entries[4][3], 0);
    EXPECT_EQ(get_le(entries[4], 4, 4), 2u) << "IRQ0 -> GSI2";
    EXPECT_EQ(entries[5][3], 9);
    EXPECT_EQ(get_le(entries[5], 4, 4), 9u);
    EXPECT_EQ(get_le(entries[5], 8, 2), 0xdu) << "SCI level, active high";
    EXPECT_EQ(entries[6][0], 4);
    EXPECT_EQ(entries[6][2], 0xff);
    EXPECT_EQ(entries[6][5], 1) << "LINT1";
}

// IA-PC HPET 1.0a §3.2.4: the timer block's ID and base address, as Linux's acpi_parse_hpet reads them.
TEST_F(Acpi, HpetTableGivesTheTimerBlock) {
    ASSERT_TRUE(write_acpi_tables(*memory, {.cpus = 1}));
    EXPECT_FALSE(discover(*memory).contains("HPET")) << "only when asked for";

    ASSERT_TRUE(write_acpi_tables(*memory, {.cpus = 2, .hpet = AcpiHpet{0x8086a201, 2000}}));
    auto tables = discover(*memory);
    ASSERT_TRUE(tables.contains("HPET"));
    EXPECT_TRUE(tables.contains("APIC"));
    const auto& hpet = tables["HPET"];
    ASSERT_EQ(hpet.size(), 56u);
    EXPECT_EQ(hpet[8], 1) << "revision";
    EXPECT_EQ(get_le(hpet, 36, 4), 0x8086a201u) << "Event Timer Block ID";
    EXPECT_EQ(hpet[40], 0) << "base address in system memory";
    EXPECT_EQ(hpet[41], 64) << "register width";
    EXPECT_EQ(get_le(hpet, 44, 8), pc::kHpet);
    EXPECT_EQ(get_le(hpet, 44, 8), 0xfed00000u) << "where PC chipsets and kvm-unit-tests have it";
    EXPECT_EQ(hpet[52], 0) << "HPET number";
    EXPECT_EQ(get_le(hpet, 53, 2), 2000u) << "minimum periodic clock ticks";
    EXPECT_EQ(hpet[55], 0) << "no page protection guarantee";
}

TEST_F(Acpi, RejectsImpossibleCpuCounts) {
    auto r = write_acpi_tables(*memory, {.cpus = 256});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("256 CPUs"), std::string::npos);
    EXPECT_FALSE(write_acpi_tables(*memory, {.cpus = 0}));
    EXPECT_TRUE(write_acpi_tables(*memory, {.cpus = 255}));
    EXPECT_EQ(discover(*memory)["APIC"].size(), 44u + 255 * 8 + 12 + 2 * 10 + 6);
}

TEST(Aml, PackageLengthEncodings) {
    EXPECT_EQ(aml::package_length(0), aml::Bytes{0x01});
    EXPECT_EQ(aml::package_length(62), aml::Bytes{0x3f - 0});
    EXPECT_EQ(aml::package_length(63), (aml::Bytes{0x41, 0x04})) << "65 bytes: two-byte form";
    EXPECT_EQ(aml::package_length(0xffd), (aml::Bytes{0x4f, 0xff}));
    EXPECT_EQ(aml::package_length(0xffe), (aml::Bytes{0x81, 0x00, 0x01})) << "0x1001: three-byte form";
}

// ACPI 6.5 §6.4.3.5.1-3, the bytes an ASL compiler writes for the same ResourceProducer, MinFixed,
// MaxFixed, PosDecode windows.
TEST(Aml, AddressSpaceDescriptors) {
    // WordBusNumber (..., 0x0000, 0x0000, 0x00FF, 0x0000, 0x0100)
    EXPECT_EQ(aml::word_bus_number(0, 0xff), (aml::Bytes{0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00,
                                                         0xff, 0x00, 0x00, 0x00, 0x00, 0x01}));
    // WordIO (..., EntireRange, 0x0000, 0x0000, 0x0CF7, 0x0000, 0x0CF8)
    EXPECT_EQ(aml::word_io(0, 0xcf7), (aml::Bytes{0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x00, 0xf7,
                                                  0x0c, 0x00, 0x00, 0xf8, 0x0c}));
    EXPECT_EQ(aml::word_io(0xd00, 0xffff), (aml::Bytes{0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x0d,
                                                       0xff, 0xff, 0x00, 0x00, 0x00, 0xf3}));
    // DWordMemory (..., NonCacheable, ReadWrite, 0x0, 0x000A0000, 0x000BFFFF, 0x0, 0x00020000)
    EXPECT_EQ(aml::dword_memory(0xa'0000, 0xb'ffff, aml::MemoryCaching::NonCacheable),
              (aml::Bytes{0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a,
                          0x00, 0xff, 0xff, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00}));
    // _MEM in bits 2:1 of the type-specific flags, _RW in bit 0.
    EXPECT_EQ(aml::dword_memory(0, 0xfff, aml::MemoryCaching::Cacheable)[5], 0x03);
    EXPECT_EQ(aml::dword_memory(0, 0xfff, aml::MemoryCaching::WriteCombining)[5], 0x05);
    // QWordMemory (..., Prefetchable, ReadWrite, 0x0, 0x100000000, 0x8FFFFFFFF, 0x0, 0x800000000)
    EXPECT_EQ(aml::qword_memory(0x1'0000'0000, 0x8'ffff'ffff, aml::MemoryCaching::Prefetchable),
              (aml::Bytes{0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x07,                          //
                          0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,              // _GRA
                          0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,              // _MIN
                          0xff, 0xff, 0xff, 0xff, 0x08, 0x00, 0x00, 0x00,              // _MAX
                          0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,              // _TRA
                          0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00}));           // _LEN
}

TEST(AmlDeathTest, AddressSpaceDescriptorsRefuseWindowsTheyCannotWrite) {
    EXPECT_DEATH(static_cast<void>(aml::word_io(0x100, 0xff)), "no 2-byte _LEN");
    EXPECT_DEATH(static_cast<void>(aml::word_io(0, 0xffff)), "no 2-byte _LEN") << "a length of 0x10000";
    EXPECT_DEATH(static_cast<void>(aml::qword_memory(0, ~uint64_t{0}, aml::MemoryCaching::Cacheable)), "no 8-byte _LEN");
}

TEST(Aml, IntegersEisaIdsAndNames) {
    EXPECT_EQ(aml::integer(0), aml::Bytes{0x00});
    EXPECT_EQ(aml::integer(1), aml::Bytes{0x01});
    EXPECT_EQ(aml::integer(5), (aml::Bytes{0x0a, 0x05}));
    EXPECT_EQ(aml::integer(0x3f8), (aml::Bytes{0x0b, 0xf8, 0x03}));
    EXPECT_EQ(aml::integer(0x12345678), (aml::Bytes{0x0c, 0x78, 0x56, 0x34, 0x12}));
    EXPECT_EQ(aml::eisa_id("PNP0501"), (aml::Bytes{0x0c, 0x41, 0xd0, 0x05, 0x01}));
    EXPECT_EQ(aml::name_seg("KB"), (aml::Bytes{'K', 'B', '_', '_'}));
    auto device = aml::device("COM1", aml::name("_UID", aml::integer(1)));
    EXPECT_EQ(device, (aml::Bytes{0x5b, 0x82, 0x0b, 'C', 'O', 'M', '1', 0x08, '_', 'U', 'I', 'D', 0x01}));
}

}  // namespace
}  // namespace strata
