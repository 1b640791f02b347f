#include "bus/bus.hpp"

#include <gtest/gtest.h>

#include <array>
#include <vector>

namespace strata {
namespace {

// Records the offsets it is accessed at and answers reads with the low byte of the offset.
class RecordingDevice : public BusDevice {
public:
    void read(uint64_t offset, std::span<uint8_t> data) override {
        reads.push_back(offset);
        for (auto& b : data) b = static_cast<uint8_t>(offset);
    }
    void write(uint64_t offset, std::span<const uint8_t> data) override {
        writes.push_back(offset);
        last_write.assign(data.begin(), data.end());
    }
    std::vector<uint64_t> reads, writes;
    std::vector<uint8_t> last_write;
};

TEST(Bus, DispatchesOffsetsNotAddresses) {
    Bus bus("pio");
    auto device = std::make_shared<RecordingDevice>();
    ASSERT_TRUE(bus.add(0x3f8, 8, device, "uart"));
    uint8_t value = 0;
    EXPECT_TRUE(bus.read(0x3fd, std::span(&value, 1)));
    EXPECT_EQ(value, 5);
    uint8_t out[2] = {1, 2};
    EXPECT_TRUE(bus.write(0x3f8, out));
    ASSERT_EQ(device->writes.size(), 1u);
    EXPECT_EQ(device->writes[0], 0u);
    EXPECT_EQ(device->last_write, (std::vector<uint8_t>{1, 2}));
}

TEST(Bus, RejectsOverlapsNamingBothDevices) {
    Bus bus("pio");
    ASSERT_TRUE(bus.add(0x60, 1, std::make_shared<RecordingDevice>(), "i8042-data"));
    ASSERT_TRUE(bus.add(0x64, 1, std::make_shared<RecordingDevice>(), "i8042-cmd"));
    auto overlap = bus.add(0x5f, 2, std::make_shared<RecordingDevice>(), "intruder");
    ASSERT_FALSE(overlap);
    EXPECT_NE(overlap.error().message.find("intruder"), std::string::npos);
    EXPECT_NE(overlap.error().message.find("i8042-data"), std::string::npos);
    EXPECT_FALSE(bus.add(0x61, 4, std::make_shared<RecordingDevice>(), "over-cmd"));
    EXPECT_TRUE(bus.add(0x61, 3, std::make_shared<RecordingDevice>(), "between"));
}

TEST(Bus, RejectsEmptyAndWrappingRanges) {
    Bus bus("mmio");
    EXPECT_FALSE(bus.add(0x1000, 0, std::make_shared<RecordingDevice>(), "empty"));
    EXPECT_FALSE(bus.add(~0ull - 2, 8, std::make_shared<RecordingDevice>(), "wrap"));
    EXPECT_FALSE(bus.add(0x1000, 8, nullptr, "null"));
}

TEST(Bus, UnclaimedReadsFloatHighAndStraddlingAccessesAreUnclaimed) {
    Bus bus("pio");
    auto device = std::make_shared<RecordingDevice>();
    ASSERT_TRUE(bus.add(0x70, 2, device, "rtc"));
    uint32_t value = 0;
    auto bytes = std::span(reinterpret_cast<uint8_t*>(&value), 4);
    EXPECT_FALSE(bus.read(0x80, bytes));
    EXPECT_EQ(value, 0xffffffffu);
    // A 4-byte access at 0x70 runs past the device's 2-byte window.
    EXPECT_FALSE(bus.read(0x70, bytes));
    EXPECT_TRUE(device->reads.empty());
    EXPECT_FALSE(bus.read(~0ull, bytes));
}

TEST(Bus, FallbackTakesWhatNoRangeClaimsAtItsAbsoluteAddress) {
    Bus bus("mmio");
    auto fixed = std::make_shared<RecordingDevice>();
    auto fallback = std::make_shared<RecordingDevice>();
    ASSERT_TRUE(bus.add(0x1000, 0x100, fixed, "fixed"));
    bus.set_fallback(fallback);
    uint8_t value = 0;
    EXPECT_TRUE(bus.read(0x1010, std::span(&value, 1)));
    EXPECT_FALSE(bus.read(0x2345, std::span(&value, 1))) << "not claimed by a range";
    EXPECT_EQ(value, 0x45u);
    uint8_t data[2] = {1, 2};
    EXPECT_FALSE(bus.write(0x10ff, data)) << "straddles the fixed range's end";
    EXPECT_EQ(fixed->reads, (std::vector<uint64_t>{0x10}));
    EXPECT_TRUE(fixed->writes.empty());
    EXPECT_EQ(fallback->reads, (std::vector<uint64_t>{0x2345}));
    EXPECT_EQ(fallback->writes, (std::vector<uint64_t>{0x10ff}));
}

// The control API's metrics read these counts: per range, and for what no range claimed.
TEST(Bus, CountsEachRangesReadsAndWritesAndTheUnclaimedOnes) {
    Bus bus("pio");
    auto uart = std::make_shared<RecordingDevice>();
    auto rtc = std::make_shared<RecordingDevice>();
    ASSERT_TRUE(bus.add(0x3f8, 8, uart, "uart"));
    ASSERT_TRUE(bus.add(0x70, 2, rtc, "rtc"));
    uint8_t byte = 0;
    for (int i = 0; i < 3; ++i) bus.write(0x3f8, std::span<const uint8_t>(&byte, 1));
    bus.read(0x3fd, std::span(&byte, 1));
    bus.read(0x71, std::span(&byte, 1));
    bus.read(0x1234, std::span(&byte, 1));
    bus.write(0x3ff, std::span<const uint8_t>(std::array<uint8_t, 2>{}));  // straddles the end: unclaimed
    const auto& ranges = bus.ranges();
    EXPECT_EQ(ranges.at(0x3f8).count->writes, 3u);
    EXPECT_EQ(ranges.at(0x3f8).count->reads, 1u);
    EXPECT_EQ(ranges.at(0x70).count->reads, 1u);
    EXPECT_EQ(ranges.at(0x70).count->writes, 0u);
    EXPECT_EQ(bus.unclaimed().reads, 1u);
    EXPECT_EQ(bus.unclaimed().writes, 1u);
}

}  // namespace
}  // namespace strata
