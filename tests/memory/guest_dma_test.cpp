#include "memory/guest_dma.hpp"

#include <gtest/gtest.h>

#include <array>
#include <utility>
#include <vector>

#include "base/checked.hpp"

namespace strata {
namespace {

struct RecordingObserver final : MemoryWriteObserver {
    std::vector<std::pair<uint64_t, uint64_t>> writes;  // (gpa, length)
    void written(uint64_t gpa, uint64_t length) override { writes.emplace_back(gpa, length); }
};

class GuestDmaTest : public ::testing::Test {
protected:
    GuestDmaTest() : memory_(std::move(*GuestMemory::create(2 * MiB))), dma_(memory_) { dma_.add_observer(observer_); }

    GuestMemory memory_;
    GuestDma dma_;
    RecordingObserver observer_;
};

using Writes = std::vector<std::pair<uint64_t, uint64_t>>;

TEST_F(GuestDmaTest, CopiesInAndOutAndReportsEveryWrite) {
    const std::array<uint8_t, 5> bytes{1, 2, 3, 4, 5};
    ASSERT_TRUE(dma_.write(0x1000, bytes));
    ASSERT_TRUE(dma_.write_obj<uint32_t>(0x2002, 0xa1b2c3d4));
    std::array<uint8_t, 5> back{};
    ASSERT_TRUE(dma_.read(0x1000, back));
    EXPECT_EQ(back, bytes);
    auto value = dma_.read_obj<uint32_t>(0x2002);
    ASSERT_TRUE(value);
    EXPECT_EQ(*value, 0xa1b2c3d4u);
    // Reads are not reported; each write is, once, with its own range.
    EXPECT_EQ(observer_.writes, (Writes{{0x1000, 5}, {0x2002, 4}}));
}

TEST_F(GuestDmaTest, ViewWritesAreReportedByTheirWriter) {
    auto view = dma_.view_for_write(0x3000, 16);
    ASSERT_TRUE(view);
    (*view)[15] = 0x5a;
    EXPECT_TRUE(observer_.writes.empty());  // a view is not a write until the writer says so
    dma_.written(0x3000, 16);
    EXPECT_EQ(observer_.writes, (Writes{{0x3000, 16}}));
    auto read_view = dma_.view(0x3000, 16);
    ASSERT_TRUE(read_view);
    EXPECT_EQ((*read_view)[15], 0x5a);
    EXPECT_EQ(observer_.writes.size(), 1u);
}

TEST_F(GuestDmaTest, EmptyWritesAreNotReported) {
    ASSERT_TRUE(dma_.write(0x1000, std::span<const uint8_t>{}));
    dma_.written(0x1000, 0);
    EXPECT_TRUE(observer_.writes.empty());
}

TEST_F(GuestDmaTest, RangesOutsideRamFailAndWriteNothing) {
    std::array<uint8_t, 2> two{7, 7};
    EXPECT_TRUE(dma_.write(2 * MiB - 2, two));
    EXPECT_FALSE(dma_.write(2 * MiB - 1, two));  // one byte past the end
    EXPECT_FALSE(dma_.read(2 * MiB - 1, two));
    EXPECT_FALSE(dma_.view(2 * MiB, 1));
    EXPECT_FALSE(dma_.view_for_write(2 * MiB - 1, 2));
    EXPECT_FALSE(dma_.write_obj<uint64_t>(0xffff'ffff'ffff'fffcull, 0));
    auto wraps = dma_.view(~0ull - 3, 16);  // gpa + length wraps past 2^64
    ASSERT_FALSE(wraps);
    EXPECT_NE(wraps.error().message.find("wraps"), std::string::npos) << wraps.error().message;
    auto outside = dma_.read(4 * MiB, two);
    ASSERT_FALSE(outside);
    EXPECT_NE(outside.error().message.find("not inside guest RAM"), std::string::npos) << outside.error().message;
    EXPECT_EQ(observer_.writes, (Writes{{2 * MiB - 2, 2}}));  // only the write that succeeded
}

TEST_F(GuestDmaTest, RingIndexAccessesAreLittleEndianAndReported) {
    ASSERT_TRUE(dma_.store_release_u16(0x4002, 0xbeef));
    auto low = dma_.read_obj<uint8_t>(0x4002);
    ASSERT_TRUE(low);
    EXPECT_EQ(*low, 0xef);
    auto value = dma_.load_acquire_u16(0x4002);
    ASSERT_TRUE(value);
    EXPECT_EQ(*value, 0xbeef);
    EXPECT_EQ(observer_.writes, (Writes{{0x4002, 2}}));
}

TEST_F(GuestDmaTest, UnalignedOrOutsideRingIndexAccessesFail) {
    auto load = dma_.load_acquire_u16(0x4001);
    ASSERT_FALSE(load);
    EXPECT_NE(load.error().message.find("not 2-byte aligned"), std::string::npos) << load.error().message;
    auto store = dma_.store_release_u16(0x4003, 1);
    ASSERT_FALSE(store);
    EXPECT_NE(store.error().message.find("not 2-byte aligned"), std::string::npos) << store.error().message;
    EXPECT_FALSE(dma_.load_acquire_u16(2 * MiB));
    EXPECT_FALSE(dma_.store_release_u16(~0ull - 1, 1));
    EXPECT_TRUE(observer_.writes.empty());
}

}  // namespace
}  // namespace strata
