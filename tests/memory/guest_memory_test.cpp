#include "memory/guest_memory.hpp"

#include <gtest/gtest.h>

#include "base/checked.hpp"
#include "memory/e820.hpp"

namespace strata {
namespace {

TEST(GuestMemory, SmallGuestIsOneRegionFromZero) {
    auto memory = GuestMemory::create(64 * MiB);
    ASSERT_TRUE(memory) << memory.error().message;
    ASSERT_EQ(memory->regions().size(), 1u);
    EXPECT_EQ(memory->regions()[0].gpa, 0u);
    EXPECT_EQ(memory->end(), 64 * MiB);
    EXPECT_GE(memory->fd(), 0);
}

TEST(GuestMemory, LargeGuestSkipsTheMmioHole) {
    auto memory = GuestMemory::create(4 * GiB);
    ASSERT_TRUE(memory) << memory.error().message;
    ASSERT_EQ(memory->regions().size(), 2u);
    EXPECT_EQ(memory->regions()[0].size, GuestMemory::kLowRamLimit);
    EXPECT_EQ(memory->regions()[1].gpa, GuestMemory::kHighRamStart);
    EXPECT_EQ(memory->regions()[1].size, 4 * GiB - GuestMemory::kLowRamLimit);
    EXPECT_FALSE(memory->contains(0xfee0'0000, 4));
    EXPECT_TRUE(memory->contains(GuestMemory::kHighRamStart, 4096));
}

TEST(GuestMemory, TranslateChecksBoundsWithoutOverflow) {
    auto memory = GuestMemory::create(2 * MiB);
    ASSERT_TRUE(memory);
    EXPECT_TRUE(memory->translate(0, 2 * MiB));
    EXPECT_TRUE(memory->translate(2 * MiB - 1, 1));
    EXPECT_FALSE(memory->translate(2 * MiB - 1, 2));
    EXPECT_FALSE(memory->translate(2 * MiB, 0 + 1));
    auto wrap = memory->translate(~0ull - 10, 100);
    ASSERT_FALSE(wrap);
    EXPECT_NE(wrap.error().message.find("wraps"), std::string::npos);
    EXPECT_FALSE(memory->translate(16, ~0ull));
}

TEST(GuestMemory, ReadBackWhatWasWritten) {
    auto memory = GuestMemory::create(MiB);
    ASSERT_TRUE(memory);
    ASSERT_TRUE(memory->write_obj<uint64_t>(0x1000, 0x1122334455667788ull));
    auto value = memory->read_obj<uint64_t>(0x1000);
    ASSERT_TRUE(value);
    EXPECT_EQ(*value, 0x1122334455667788ull);
    EXPECT_FALSE(memory->write_obj<uint64_t>(MiB - 4, 0));
}

TEST(GuestMemory, RejectsBadSizes) {
    EXPECT_FALSE(GuestMemory::create(0));
    EXPECT_FALSE(GuestMemory::create(MiB + 1));
    EXPECT_FALSE(GuestMemory::create(2048 * GiB));
}

TEST(E820, HasThePcHoles) {
    auto memory = GuestMemory::create(4 * GiB);
    ASSERT_TRUE(memory);
    auto map = build_e820(*memory);
    uint64_t ram = 0;
    for (const auto& entry : map) {
        if (entry.type != E820Type::Ram) continue;
        ram += entry.size;
        // No RAM in the legacy hole or the MMIO hole.
        EXPECT_FALSE(entry.addr < 0x100000 && entry.addr + entry.size > 0xa0000);
        EXPECT_FALSE(entry.addr < 0x1'0000'0000 && entry.addr + entry.size > GuestMemory::kLowRamLimit);
    }
    EXPECT_EQ(ram, 4 * GiB - (0x100000 - kEbdaStart));
}

}  // namespace
}  // namespace strata
