#include "loader/acpi_tables.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>

#include "base/checked.hpp"
#include "loader/aml.hpp"
#include "loader/test_images.hpp"

namespace strata {
namespace {

using test::get_le;

using test::byte_sum;
using test::read_guest;

bool contains(const std::vector<uint8_t>& haystack, const std::vector<uint8_t>& needle) {
    return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) != haystack.end();
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
    EXPECT_EQ(flags, (1u << 0) | (1u << 2) | (1u << 4) | (1u << 5) | (1u << 10));
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
    EXPECT_EQ(bare.size(), 36u + 14u) << "just the header and _S5";
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
