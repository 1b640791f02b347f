#include "devices/legacy/fw_cfg.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "base/checked.hpp"
#include "fakes.hpp"

namespace strata {
namespace {

std::vector<uint8_t> read_item(FwCfg& device, uint16_t key, size_t length) {
    testing::out(device, 0, key, 2);
    std::vector<uint8_t> bytes;
    for (size_t i = 0; i < length; ++i) bytes.push_back(testing::inb(device, 1));
    return bytes;
}

TEST(FwCfg, SignatureRamSizeAndCpus) {
    FwCfg device(512 * MiB + 4096, 3);
    EXPECT_EQ(read_item(device, 0x00, 4), (std::vector<uint8_t>{'Q', 'E', 'M', 'U'}));
    EXPECT_EQ(load_le(read_item(device, 0x01, 4)), 1u);
    EXPECT_EQ(load_le(read_item(device, 0x03, 8)), 512 * MiB + 4096);
    EXPECT_EQ(load_le(read_item(device, 0x05, 2)), 3u);
    EXPECT_EQ(load_le(read_item(device, 0x0f, 2)), 3u);
}

TEST(FwCfg, ReadsPastTheEndAndUnknownKeysGiveZeros) {
    FwCfg device(GiB, 1);
    EXPECT_EQ(read_item(device, 0x00, 6), (std::vector<uint8_t>{'Q', 'E', 'M', 'U', 0, 0}));
    EXPECT_EQ(read_item(device, 0x1234, 4), (std::vector<uint8_t>{0, 0, 0, 0}));
}

TEST(FwCfg, AddedItemsAndReselectRestart) {
    FwCfg device(GiB, 1);
    device.add_item(0x8000, {1, 2, 3});
    EXPECT_EQ(read_item(device, 0x8000, 2), (std::vector<uint8_t>{1, 2}));
    EXPECT_EQ(read_item(device, 0x8000, 3), (std::vector<uint8_t>{1, 2, 3}));
}

TEST(FwCfg, ARestoredDeviceReadsOnFromTheSamePosition) {
    FwCfg device(GiB, 2);
    testing::out(device, 0, 0x00, 2);
    EXPECT_EQ(testing::inb(device, 1), 'Q');
    FwCfg restored(GiB, 2);
    ASSERT_TRUE(restored.set_state(testing::through_snapshot(device.state())));
    EXPECT_EQ(testing::inb(restored, 1), 'E');
    EXPECT_EQ(testing::inb(restored, 1), 'M');
}

}  // namespace
}  // namespace strata
