// The engine-neutral exits and their dispatch to the buses, through a recording device.
#include "cpu/exit.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "base/bytes.hpp"
#include "base/checked.hpp"
#include "devices/fakes.hpp"

namespace strata {
namespace {

struct Access {
    uint64_t offset;
    uint64_t value;
    size_t size;
    bool write;
    bool operator==(const Access&) const = default;
};

// Reads return 0xa0 + the number of reads so far, so that the order of string input shows.
class Recorder final : public BusDevice {
public:
    void read(uint64_t offset, std::span<uint8_t> data) override {
        store_le(data, 0xa0 + reads_++);
        log.push_back({offset, load_le(data), data.size(), false});
    }
    void write(uint64_t offset, std::span<const uint8_t> data) override {
        log.push_back({offset, load_le(data), data.size(), true});
    }
    std::vector<Access> log;

private:
    uint64_t reads_ = 0;
};

struct Exits : ::testing::Test {
    void SetUp() override {
        auto created = GuestMemory::create(1 * MiB);
        ASSERT_TRUE(created);
        memory = std::make_unique<GuestMemory>(std::move(*created));
        ASSERT_TRUE(pio.add(0x80, 4, device, "recorder"));
        ASSERT_TRUE(mmio.add(0xd000'0000, 0x100, device, "recorder"));
    }
    std::unique_ptr<GuestMemory> memory;
    Bus pio{"pio"}, mmio{"mmio"};
    std::shared_ptr<Recorder> device = std::make_shared<Recorder>();
    testing::FakeMachineControl control;
    Platform platform() { return {*memory, pio, mmio, control}; }
};

TEST_F(Exits, StringOutputReachesThePortOneElementAtATimeInOrder) {
    std::vector<uint8_t> data{0x11, 0x22, 0x33, 0x44, 0x55, 0x66};
    dispatch(platform(), PortIoExit{.port = 0x82, .size = 2, .count = 3, .write = true, .data = data});
    EXPECT_EQ(device->log, (std::vector<Access>{{2, 0x2211, 2, true}, {2, 0x4433, 2, true}, {2, 0x6655, 2, true}}));
}

TEST_F(Exits, StringInputFillsEachElementFromItsOwnRead) {
    std::vector<uint8_t> data(3 * 4, 0);
    dispatch(platform(), PortIoExit{.port = 0x80, .size = 4, .count = 3, .write = false, .data = data});
    ASSERT_EQ(device->log.size(), 3u);
    EXPECT_EQ(data, (std::vector<uint8_t>{0xa0, 0, 0, 0, 0xa1, 0, 0, 0, 0xa2, 0, 0, 0}));
}

TEST_F(Exits, MmioReachesTheDeviceAtItsOffset) {
    std::vector<uint8_t> value{0x78, 0x56, 0x34, 0x12};
    dispatch(platform(), MmioExit{.address = 0xd000'0010, .write = true, .data = value});
    std::vector<uint8_t> read(8, 0);
    dispatch(platform(), MmioExit{.address = 0xd000'0020, .write = false, .data = read});
    EXPECT_EQ(device->log, (std::vector<Access>{{0x10, 0x12345678, 4, true}, {0x20, 0xa0, 8, false}}));
}

TEST_F(Exits, UnclaimedPortsReadAllOnes) {
    std::vector<uint8_t> data(2, 0);
    dispatch(platform(), PortIoExit{.port = 0x300, .size = 2, .count = 1, .write = false, .data = data});
    EXPECT_EQ(data, (std::vector<uint8_t>{0xff, 0xff}));
    EXPECT_TRUE(device->log.empty());
}

}  // namespace
}  // namespace strata
