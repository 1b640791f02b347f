#include "devices/pci/msi.hpp"
#include "devices/pci/msix.hpp"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "base/bytes.hpp"

namespace strata {
namespace {

// Records every message; routes go through send(), as the default create_route() does.
class RecordingMsiController final : public MsiController {
public:
    void send(uint64_t address, uint32_t data) override { sent.emplace_back(address, data); }
    std::vector<std::pair<uint64_t, uint32_t>> sent;
};

void write32(auto write, uint64_t offset, uint32_t value) {
    std::array<uint8_t, 4> bytes{};
    store_le(bytes, value);
    write(offset, std::span<const uint8_t>(bytes));
}
uint32_t read32(auto read, uint64_t offset) {
    std::array<uint8_t, 4> bytes{};
    read(offset, std::span<uint8_t>(bytes));
    return static_cast<uint32_t>(load_le(bytes));
}

struct Msix : ::testing::Test {
    RecordingMsiController controller;
    MsixCapability msix{3, 1, 0x0, 1, 0x800, controller};

    void table_write(uint64_t offset, uint32_t value) {
        write32([&](uint64_t o, std::span<const uint8_t> d) { msix.table_write(o, d); }, offset, value);
    }
    uint32_t table_read(uint64_t offset) {
        return read32([&](uint64_t o, std::span<uint8_t> d) { msix.table_read(o, d); }, offset);
    }
    uint32_t pba() { return read32([&](uint64_t o, std::span<uint8_t> d) { msix.pba_read(o, d); }, 0); }
    void control(uint16_t value) {
        std::array<uint8_t, 2> bytes{};
        store_le(bytes, value);
        msix.write(2, bytes);
    }
    uint32_t capability(uint8_t offset) {
        return read32([&](uint64_t o, std::span<uint8_t> d) { msix.read(static_cast<uint8_t>(o), d); }, offset);
    }
    void program(unsigned vector, uint64_t address, uint32_t data, bool masked) {
        table_write(vector * 16 + 0, static_cast<uint32_t>(address));
        table_write(vector * 16 + 4, static_cast<uint32_t>(address >> 32));
        table_write(vector * 16 + 8, data);
        table_write(vector * 16 + 12, masked ? 1 : 0);
    }
};

TEST_F(Msix, CapabilityDescribesTheTable) {
    EXPECT_EQ(capability(2) & 0xffff, 2u) << "table size N - 1";
    EXPECT_EQ(capability(4), 0x1u) << "table at offset 0 of BAR 1";
    EXPECT_EQ(capability(8), 0x801u) << "PBA at 0x800 of BAR 1";
    EXPECT_EQ(msix.table_size(), 48u);
    EXPECT_EQ(msix.pba_size(), 8u);
    EXPECT_EQ(table_read(12), 1u) << "vectors start masked";
}

TEST_F(Msix, NothingIsSentWhileDisabled) {
    program(0, 0xfee0'0000, 0x41, false);
    msix.notify(0);
    EXPECT_TRUE(controller.sent.empty());
    EXPECT_EQ(pba(), 0u) << "a disabled function does not even set pending bits";
}

TEST_F(Msix, UnmaskedVectorSendsItsMessage) {
    control(0x8000);
    program(1, 0xfee0'1000, 0x4051, false);
    msix.notify(1);
    ASSERT_EQ(controller.sent.size(), 1u);
    EXPECT_EQ(controller.sent[0], (std::pair<uint64_t, uint32_t>{0xfee0'1000, 0x4051}));
    msix.notify(7);
    EXPECT_EQ(controller.sent.size(), 1u) << "a vector past the table is ignored";
}

TEST_F(Msix, MaskedVectorPendsUntilUnmasked) {
    control(0x8000);
    program(2, 0xfee0'0000, 0x30, true);
    msix.notify(2);
    EXPECT_TRUE(controller.sent.empty());
    EXPECT_EQ(pba(), 0x4u);
    table_write(2 * 16 + 12, 0);
    ASSERT_EQ(controller.sent.size(), 1u);
    EXPECT_EQ(controller.sent[0].second, 0x30u);
    EXPECT_EQ(pba(), 0u);
}

TEST_F(Msix, FunctionMaskHoldsEveryVector) {
    control(0xc000);
    program(0, 0xfee0'0000, 0x20, false);
    program(1, 0xfee0'0000, 0x21, false);
    msix.notify(0);
    msix.notify(1);
    EXPECT_TRUE(controller.sent.empty());
    EXPECT_EQ(pba(), 0x3u);
    control(0x8000);
    EXPECT_EQ(controller.sent.size(), 2u);
}

TEST_F(Msix, ReprogrammedEntrySendsTheNewMessage) {
    control(0x8000);
    program(0, 0xfee0'0000, 0x20, false);
    table_write(8, 0x99);
    msix.notify(0);
    ASSERT_EQ(controller.sent.size(), 1u);
    EXPECT_EQ(controller.sent[0].second, 0x99u);
    table_write(0, 0xfee0'3003);
    EXPECT_EQ(table_read(0), 0xfee0'3000u) << "address bits 1:0 read zero";
}

TEST_F(Msix, AccessesOutsideTheTableAreHarmless) {
    EXPECT_EQ(table_read(48), 0u);
    table_write(0xffff'fff0, 1);
    table_write(~uint64_t{0} - 1, 1);
    EXPECT_EQ(table_read(0), 0u);
}

TEST_F(Msix, ResetDisablesAndMasks) {
    control(0x8000);
    program(0, 0xfee0'0000, 0x20, false);
    msix.reset();
    EXPECT_FALSE(msix.enabled());
    EXPECT_EQ(table_read(12), 1u);
    EXPECT_EQ(table_read(8), 0u);
}

struct Msi : ::testing::Test {
    RecordingMsiController controller;
    MsiCapability msi{controller};
    void write(uint8_t offset, uint32_t value, size_t width = 4) {
        std::array<uint8_t, 4> bytes{};
        store_le(bytes, value);
        msi.write(offset, std::span<const uint8_t>(bytes).first(width));
    }
    uint32_t read(uint8_t offset) {
        std::array<uint8_t, 4> bytes{};
        msi.read(offset, bytes);
        return static_cast<uint32_t>(load_le(bytes));
    }
};

TEST_F(Msi, SixtyFourBitWithPerVectorMasking) {
    EXPECT_EQ(read(2) & 0xffff, 0x180u);
    write(4, 0xfee0'2000);
    write(8, 0x1);
    write(12, 0x4062, 2);
    msi.notify();
    EXPECT_TRUE(controller.sent.empty()) << "not enabled";
    write(2, 0x1, 2);
    msi.notify();
    ASSERT_EQ(controller.sent.size(), 1u);
    EXPECT_EQ(controller.sent[0], (std::pair<uint64_t, uint32_t>{0x1'fee0'2000, 0x4062}));
}

TEST_F(Msi, MaskedVectorPends) {
    write(4, 0xfee0'0000);
    write(12, 0x33, 2);
    write(2, 0x1, 2);
    write(16, 1);
    msi.notify();
    EXPECT_TRUE(controller.sent.empty());
    EXPECT_EQ(read(20), 1u) << "pending";
    write(16, 0);
    ASSERT_EQ(controller.sent.size(), 1u);
    EXPECT_EQ(read(20), 0u);
}

}  // namespace
}  // namespace strata
