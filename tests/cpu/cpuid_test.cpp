// The engine-neutral CPUID table: Strata's policy over it, and the answers CPUID gives from it.
#include "cpu/cpuid.hpp"

#include <gtest/gtest.h>

namespace strata {
namespace {

TEST(CpuidPolicy, TopologyAndHypervisorBit) {
    CpuidTable table{
        {.function = 1, .ecx = 1u << 3},  // MONITOR
        {.function = 0xb, .index = 1, .indexed = true},
        {.function = 0xb, .index = 0, .indexed = true},
    };
    apply_cpuid_policy(table, 3, 4);
    EXPECT_EQ(table[0].ebx >> 24, 3u);            // APIC id
    EXPECT_EQ((table[0].ebx >> 16) & 0xff, 4u);   // logical processors
    EXPECT_TRUE(table[0].ecx & (1u << 31));       // hypervisor
    EXPECT_FALSE(table[0].ecx & (1u << 3));       // no MONITOR/MWAIT
    EXPECT_TRUE(table[0].edx & (1u << 28));       // HTT with more than one CPU
    EXPECT_EQ(table[1].ebx, 4u);                  // cores at the core level
    EXPECT_EQ(table[1].eax, 2u);                  // two bits of core id
    EXPECT_EQ(table[1].edx, 3u);                  // x2APIC id
    EXPECT_EQ(table[2].ebx, 1u);                  // one thread per core
}

TEST(CpuidPolicy, HidesWhatTheHostCannotRunAndOnlyThat) {
    constexpr uint32_t cx16 = 1u << 13, xsave = 1u << 26;
    CpuidTable table{{.function = 1, .ecx = cx16 | xsave}};
    apply_cpuid_policy(table, 0, 1);
    EXPECT_EQ(table[0].ecx & (cx16 | xsave), cx16 | xsave);
    apply_cpuid_policy(table, 0, 1, {.no_cmpxchg16b = true});
    EXPECT_EQ(table[0].ecx & (cx16 | xsave), xsave);
}

// A processor with basic leaves up to 0xb and extended ones up to 0x80000001.
const CpuidTable kTable{
    {.function = 0, .eax = 0xb, .ebx = 0x756e6547},
    {.function = 1, .eax = 0x806c1},
    {.function = 4, .index = 0, .indexed = true, .eax = 0x121},
    {.function = 4, .index = 1, .indexed = true, .eax = 0x122},
    {.function = 0xb, .index = 0, .indexed = true, .eax = 0xb0},
    {.function = 0x4000'0000, .eax = 0x4000'0001},
    {.function = 0x8000'0000, .eax = 0x8000'0001},
    {.function = 0x8000'0001, .edx = 1u << 29},
};

TEST(CpuidLookup, AnswersLeavesAndSubleaves) {
    EXPECT_EQ(cpuid_lookup(kTable, 1, 0).eax, 0x806c1u);
    EXPECT_EQ(cpuid_lookup(kTable, 1, 7).eax, 0x806c1u) << "ECX does not matter for a leaf without subleaves";
    EXPECT_EQ(cpuid_lookup(kTable, 4, 1).eax, 0x122u);
    EXPECT_EQ(cpuid_lookup(kTable, 4, 2).eax, 0u) << "a missing subleaf reads as zeros";
    EXPECT_EQ(cpuid_lookup(kTable, 0x8000'0001, 0).edx, 1u << 29);
    auto answer = cpuid_lookup(kTable, 4, 1);
    EXPECT_EQ(answer.function, 4u);
    EXPECT_EQ(answer.index, 1u);
}

TEST(CpuidLookup, LeavesWithinRangeButAbsentAreZero) {
    auto leaf = cpuid_lookup(kTable, 7, 0);
    EXPECT_EQ(leaf.eax | leaf.ebx | leaf.ecx | leaf.edx, 0u);
    leaf = cpuid_lookup(kTable, 0x4000'0005, 0);
    EXPECT_EQ(leaf.eax | leaf.ebx | leaf.ecx | leaf.edx, 0u) << "the hypervisor range never falls back";
}

// Intel: a function above the highest basic or extended one returns the highest basic leaf.
TEST(CpuidLookup, FunctionsBeyondTheRangeReturnTheHighestBasicLeaf) {
    EXPECT_EQ(cpuid_lookup(kTable, 0xc, 0).eax, 0xb0u);
    EXPECT_EQ(cpuid_lookup(kTable, 0x8000'0008, 0).eax, 0xb0u);
    EXPECT_EQ(cpuid_lookup(kTable, 0xffff'ffff, 0).eax, 0xb0u);
    EXPECT_EQ(cpuid_lookup(kTable, 0x5000'0000, 0).eax, 0xb0u);
}

}  // namespace
}  // namespace strata
