#include "devices/test/pc_testdev.hpp"

#include <gtest/gtest.h>

#include "base/checked.hpp"
#include "fakes.hpp"

namespace strata {
namespace {

using testing::in;
using testing::out;

struct TestDev : ::testing::Test {
    void SetUp() override {
        auto created = GuestMemory::create(4 * MiB);
        ASSERT_TRUE(created) << created.error().message;
        memory.emplace(std::move(*created));
        std::array<IrqLine*, 24> wired{};
        for (size_t i = 0; i < wired.size(); ++i) wired[i] = &lines[i];
        device.emplace(*memory, wired);
    }
    std::array<testing::FakeIrqLine, 24> lines;
    std::optional<GuestMemory> memory;
    std::optional<PcTestDev> device;
};

TEST_F(TestDev, Scratch32AtAnyWidthAndOffset) {
    BusDevice& ports = *device->ports();
    out(ports, 0, 0x12345678, 4);
    EXPECT_EQ(in(ports, 0, 4), 0x12345678u);
    EXPECT_EQ(in(ports, 1, 2), 0x3456u);
    out(ports, 2, 0xabcd, 2);
    EXPECT_EQ(in(ports, 0, 4), 0xabcd5678u);
    out(ports, 3, 0x00, 1);
    EXPECT_EQ(in(ports, 0, 4), 0x00cd5678u);
    out(ports, 8, 0x5a, 1);
    EXPECT_EQ(in(ports, 8, 1), 0x5au);
}

TEST_F(TestDev, FlushPageKeepsContentsAndIgnoresNonRam) {
    ASSERT_TRUE(memory->write_obj<uint32_t>(0x201000, 0xdeadbeef));
    out(*device->ports(), 4, 0x201234, 4);
    auto value = memory->read_obj<uint32_t>(0x201000);
    ASSERT_TRUE(value);
    EXPECT_EQ(*value, 0xdeadbeefu);
    ASSERT_TRUE(memory->write_obj<uint32_t>(0x201000, 1)) << "page writable again";
    out(*device->ports(), 4, 0xfee00000, 4);  // MMIO hole: nothing happens
    out(*device->ports(), 4, 0xffffffffffffffffull, 8);
}

TEST_F(TestDev, IrqPortsDriveLines) {
    BusDevice& irq = *device->irq_ports();
    out(irq, 14, 1, 1);
    EXPECT_TRUE(lines[14].level());
    out(irq, 14, 0, 1);
    EXPECT_FALSE(lines[14].level());
    out(irq, 23, 0x80, 1);
    EXPECT_TRUE(lines[23].level());
    EXPECT_TRUE(lines[0].levels().empty());
}

TEST_F(TestDev, MmioScratchReadsBackAtAnyWidth) {
    BusDevice& mmio = *device->mmio();
    out(mmio, 0x10, 0x1122334455667788ull, 8);
    EXPECT_EQ(in(mmio, 0x10, 8), 0x1122334455667788ull);
    EXPECT_EQ(in(mmio, 0x12, 2), 0x5566u);
    out(mmio, 0xffff, 0xab, 1);
    EXPECT_EQ(in(mmio, 0xffff, 1), 0xabu);
}

}  // namespace
}  // namespace strata
