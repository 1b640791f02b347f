#include "loader/mptable.hpp"

#include <gtest/gtest.h>

#include <map>
#include <numeric>

#include "base/checked.hpp"
#include "loader/test_images.hpp"
#include "memory/e820.hpp"
#include "memory/pc_layout.hpp"

namespace strata {
namespace {

using test::byte_sum;
using test::read_guest;

struct ParsedMp {
    std::vector<uint8_t> table;
    std::vector<std::vector<uint8_t>> entries;
};

ParsedMp parse(const GuestMemory& memory) {
    auto pointer = read_guest(memory, pc::kMpTable, 16);
    EXPECT_EQ(std::string(pointer.begin(), pointer.begin() + 4), "_MP_");
    EXPECT_EQ(byte_sum(pointer), 0) << "floating pointer checksum";
    EXPECT_EQ(pointer[8], 1);
    EXPECT_EQ(pointer[9], 4);
    uint64_t table_addr = test::get_le(pointer, 4, 4);
    auto header = read_guest(memory, table_addr, 44);
    ParsedMp mp;
    mp.table = read_guest(memory, table_addr, test::get_le(header, 4, 2));
    EXPECT_EQ(std::string(mp.table.begin(), mp.table.begin() + 4), "PCMP");
    EXPECT_EQ(byte_sum(mp.table), 0) << "configuration table checksum";
    EXPECT_EQ(test::get_le(mp.table, 36, 4), pc::kLocalApic);
    size_t offset = 44;
    for (uint64_t i = 0; i < test::get_le(mp.table, 34, 2); ++i) {
        size_t size = mp.table[offset] == 0 ? 20 : 8;
        mp.entries.emplace_back(mp.table.begin() + static_cast<ptrdiff_t>(offset),
                                mp.table.begin() + static_cast<ptrdiff_t>(offset + size));
        offset += size;
    }
    EXPECT_EQ(offset, mp.table.size());
    return mp;
}

std::vector<std::vector<uint8_t>> of_type(const ParsedMp& mp, uint8_t type) {
    std::vector<std::vector<uint8_t>> out;
    for (const auto& e : mp.entries)
        if (e[0] == type) out.push_back(e);
    return out;
}

TEST(MpTable, DescribesCpusBusesIoApicAndIsaRouting) {
    auto memory = GuestMemory::create(16 * MiB);
    ASSERT_TRUE(memory);
    ASSERT_TRUE(write_mptable(*memory, 4));
    auto mp = parse(*memory);

    auto cpus = of_type(mp, 0);
    ASSERT_EQ(cpus.size(), 4u);
    for (unsigned i = 0; i < 4; ++i) {
        EXPECT_EQ(cpus[i][1], i);
        EXPECT_EQ(cpus[i][3], i == 0 ? 3 : 1) << "enabled, BSP only on CPU 0";
    }
    auto buses = of_type(mp, 1);
    ASSERT_EQ(buses.size(), 2u);
    EXPECT_EQ(std::string(buses[0].begin() + 2, buses[0].end()), "PCI   ");
    EXPECT_EQ(buses[0][1], 0);
    EXPECT_EQ(std::string(buses[1].begin() + 2, buses[1].end()), "ISA   ");
    uint8_t isa = buses[1][1];

    auto ioapics = of_type(mp, 2);
    ASSERT_EQ(ioapics.size(), 1u);
    EXPECT_EQ(ioapics[0][1], 4) << "IOAPIC id N";
    EXPECT_EQ(ioapics[0][2], 0x11);
    EXPECT_EQ(test::get_le(ioapics[0], 4, 4), pc::kIoApic);

    std::vector<std::vector<uint8_t>> irqs;
    for (const auto& e : of_type(mp, 3))
        if (e[4] == isa) irqs.push_back(e);
    ASSERT_EQ(irqs.size(), 15u);
    for (const auto& e : irqs) {
        EXPECT_EQ(e[6], 4);
        EXPECT_NE(e[5], 2) << "IRQ 2 is the cascade";
        EXPECT_EQ(e[7], e[5] == 0 ? 2 : e[5]) << "IRQ0 -> pin 2, the rest identity";
    }
    auto locals = of_type(mp, 4);
    ASSERT_EQ(locals.size(), 2u);
    EXPECT_EQ(locals[0][1], 3);  // ExtINT
    EXPECT_EQ(locals[0][7], 0);  // LINT0
    EXPECT_EQ(locals[1][1], 1);  // NMI
    EXPECT_EQ(locals[1][7], 1);  // LINT1
}

// MP 1.4 §4.3.4 and §D.3: a PCI interrupt's source bus IRQ is the device number << 2 | the pin.
TEST(MpTable, RoutesEveryPciSlotAndPinToItsGsi) {
    auto memory = GuestMemory::create(16 * MiB);
    ASSERT_TRUE(memory);
    ASSERT_TRUE(write_mptable(*memory, 2));
    auto mp = parse(*memory);
    auto buses = of_type(mp, 1);
    ASSERT_EQ(buses.size(), 2u);
    ASSERT_EQ(std::string(buses[0].begin() + 2, buses[0].end()), "PCI   ");
    uint8_t pci = buses[0][1];
    std::map<std::pair<unsigned, unsigned>, uint8_t> routes;
    for (const auto& e : of_type(mp, 3)) {
        if (e[4] != pci) continue;
        EXPECT_EQ(e[1], 0) << "INT";
        EXPECT_EQ(test::get_le(e, 2, 2), 0x0fu) << "polarity 11 active low, trigger 11 level";
        EXPECT_EQ(e[6], 2) << "the IOAPIC, id N";
        EXPECT_EQ(e[5] & 0x80, 0) << "bit 7 of the source bus IRQ is reserved";
        EXPECT_TRUE(routes.emplace(std::pair{e[5] >> 2u, e[5] & 3u}, e[7]).second) << "one entry per slot and pin";
    }
    ASSERT_EQ(routes.size(), 31u * 4) << "slots 1-31 (slot 0 is the host bridge), INTA#-INTD#";
    for (unsigned slot = 1; slot < 32; ++slot)
        for (unsigned pin = 0; pin < 4; ++pin)
            EXPECT_EQ((routes[{slot, pin}]), pc::pci_intx_gsi(slot, pin)) << "slot " << slot << " pin " << pin;
    EXPECT_EQ((routes[{1, 0}]), 17) << "slot 1 INTA#, where pci-testdev sits";
}

// With the PCI entries the configuration table (1196 bytes + 20 per CPU) never fits in the EBDA
// after the pointer (1008 bytes), so it is always in the BIOS area; 255 CPUs fit there too.
TEST(MpTable, ConfigurationTableIsInTheBiosArea) {
    auto memory = GuestMemory::create(16 * MiB);
    ASSERT_TRUE(memory);
    for (unsigned cpus : {1u, 255u}) {
        ASSERT_TRUE(write_mptable(*memory, cpus));
        auto mp = parse(*memory);
        EXPECT_EQ(of_type(mp, 0).size(), cpus);
        EXPECT_EQ(mp.table.size(), 44u + 20 * cpus + 2 * 8 + 8 + 15 * 8 + 124 * 8 + 2 * 8);
        EXPECT_EQ(test::get_le(read_guest(*memory, pc::kMpTable, 16), 4, 4), pc::kMpConfigTable);
        EXPECT_GE(pc::kMpConfigTable, kBiosAreaStart) << "reserved in the e820 map";
        EXPECT_LE(pc::kMpConfigTable + mp.table.size(), kBiosAreaEnd);
    }
}

TEST(MpTable, RejectsImpossibleCpuCounts) {
    auto memory = GuestMemory::create(16 * MiB);
    ASSERT_TRUE(memory);
    auto r = write_mptable(*memory, 256);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("256 CPUs"), std::string::npos) << r.error().message;
    EXPECT_FALSE(write_mptable(*memory, 0));
}

}  // namespace
}  // namespace strata
