#include "loader/mptable.hpp"

#include <gtest/gtest.h>

#include <numeric>

#include "base/checked.hpp"
#include "loader/test_images.hpp"
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

    auto irqs = of_type(mp, 3);
    ASSERT_EQ(irqs.size(), 15u);
    for (const auto& e : irqs) {
        EXPECT_EQ(e[4], isa);
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

TEST(MpTable, ManyCpusMoveTheTableIntoTheBiosArea) {
    auto memory = GuestMemory::create(16 * MiB);
    ASSERT_TRUE(memory);
    ASSERT_TRUE(write_mptable(*memory, 255));
    auto mp = parse(*memory);
    EXPECT_EQ(of_type(mp, 0).size(), 255u);
    EXPECT_EQ(test::get_le(read_guest(*memory, pc::kMpTable, 16), 4, 4), pc::kAcpiTablesEnd);
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
