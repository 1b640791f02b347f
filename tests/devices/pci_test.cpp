#include "devices/pci/pci_host.hpp"
#include "devices/pci/pci_testdev.hpp"

#include <gtest/gtest.h>

#include <string>

#include "fakes.hpp"

namespace strata {
namespace {

using testing::in;
using testing::out;

uint32_t address(unsigned slot, unsigned reg, unsigned function = 0, unsigned bus = 0) {
    return 0x8000'0000u | bus << 16 | slot << 11 | function << 8 | reg;
}

struct Pci : ::testing::Test {
    testing::FakeMachineControl control;
    PciHost host{control};

    uint64_t config_read(unsigned slot, unsigned reg, size_t width) {
        out(host, 0, address(slot, reg & 0xfc), 4);
        return in(host, 4 + (reg & 3), width);
    }
    void config_write(unsigned slot, unsigned reg, uint64_t value, size_t width) {
        out(host, 0, address(slot, reg & 0xfc), 4);
        out(host, 4 + (reg & 3), value, width);
    }
};

TEST_F(Pci, HostBridgeAtSlotZero) {
    EXPECT_EQ(config_read(0, 0x00, 4), 0x1237'8086u);
    EXPECT_EQ(config_read(0, 0x0a, 2), 0x0600u);
    EXPECT_EQ(config_read(0, 0x02, 2), 0x1237u) << "byte lane from the low address bits";
    EXPECT_EQ(config_read(0, 0x0e, 1), 0x00u) << "header type 0";
}

TEST_F(Pci, LowAddressBitsSelectTheRegisterAsInQemu) {
    // kvm-unit-tests' pci_config_readw(dev, 2) writes reg 2 into CONFIG_ADDRESS and reads 0xCFC.
    out(host, 0, address(0, 0x02), 4);
    EXPECT_EQ(in(host, 4, 2), 0x1237u);
    out(host, 0, address(0, 0x0b), 4);
    EXPECT_EQ(in(host, 4, 1), 0x06u) << "base class: bridge";
}

TEST_F(Pci, MissingDevicesAndDisabledAccessesReadAllOnes) {
    EXPECT_EQ(config_read(5, 0, 4), 0xffff'ffffu);
    out(host, 0, address(0, 0, 1), 4);
    EXPECT_EQ(in(host, 4, 4), 0xffff'ffffu) << "function 1";
    out(host, 0, address(0, 0, 0, 1), 4);
    EXPECT_EQ(in(host, 4, 2), 0xffffu) << "bus 1";
    out(host, 0, 0x0000'0000, 4);
    EXPECT_EQ(in(host, 4, 4), 0xffff'ffffu) << "enable bit clear";
}

TEST_F(Pci, ConfigAddressChangesOnlyOnDwordAccess) {
    out(host, 0, 0x8000'0000, 4);
    EXPECT_EQ(in(host, 0, 4), 0x8000'0000u);  // Linux's pci_check_type1
    out(host, 3, 0x01, 1);                     // outb 0xcfb
    out(host, 0, 0x12, 2);
    EXPECT_EQ(in(host, 0, 4), 0x8000'0000u);
}

TEST_F(Pci, ResetControlRegister) {
    out(host, 1, 0x02, 1);  // SYS_RST alone only selects the reset kind
    EXPECT_TRUE(control.stops().empty());
    EXPECT_EQ(in(host, 1, 1), 0x02u);
    out(host, 1, 0x06, 1);
    ASSERT_EQ(control.stops().size(), 1u);
    EXPECT_EQ(control.stops()[0].kind, StopKind::Reset);
    out(host, 1, 0x04, 1);
    EXPECT_EQ(control.stops().size(), 2u);
}

TEST_F(Pci, AddDeviceRejectsTakenAndBadSlots) {
    EXPECT_FALSE(host.add_device(0, std::make_shared<PciTestDev>()));
    EXPECT_FALSE(host.add_device(32, std::make_shared<PciTestDev>()));
    EXPECT_FALSE(host.add_device(3, nullptr));
    EXPECT_TRUE(host.add_device(3, std::make_shared<PciTestDev>()));
    auto again = host.add_device(3, std::make_shared<PciTestDev>());
    ASSERT_FALSE(again);
    EXPECT_NE(again.error().message.find("1b36:0005"), std::string::npos);
}

TEST_F(Pci, BarSizingAndBoardAssignment) {
    auto testdev = std::make_shared<PciTestDev>();
    ASSERT_TRUE(host.add_device(1, testdev));
    auto memory_bar = testdev->bar_request(0);
    auto io_bar = testdev->bar_request(1);
    ASSERT_TRUE(memory_bar && io_bar);
    EXPECT_FALSE(testdev->bar_request(2));
    EXPECT_EQ(memory_bar->size, 4096u);
    EXPECT_FALSE(memory_bar->io);
    EXPECT_EQ(io_bar->size, 256u);
    EXPECT_TRUE(io_bar->io);
    EXPECT_FALSE(testdev->set_bar_address(0, 0xc000'0800)) << "misaligned";
    EXPECT_FALSE(testdev->set_bar_address(1, 0x1'0000)) << "outside I/O space";
    EXPECT_FALSE(testdev->set_bar_address(2, 0x1000)) << "no such BAR";
    ASSERT_TRUE(testdev->set_bar_address(0, 0xc000'0000));
    ASSERT_TRUE(testdev->set_bar_address(1, 0xc000));
    EXPECT_EQ(config_read(1, 0x10, 4), 0xc000'0000u);
    EXPECT_EQ(config_read(1, 0x14, 4), 0xc001u);
    EXPECT_EQ(config_read(1, 0x04, 2) & 0x3, 0x3u) << "decoding enabled as firmware would";

    // The guest's sizing dance: all ones, read the mask, restore.
    config_write(1, 0x10, 0xffff'ffff, 4);
    EXPECT_EQ(config_read(1, 0x10, 4), 0xffff'f000u);
    config_write(1, 0x10, 0xc000'0000, 4);
    config_write(1, 0x14, 0xffff'ffff, 4);
    EXPECT_EQ(config_read(1, 0x14, 4), 0xffff'ff01u);
    config_write(1, 0x14, 0xc001, 4);
    EXPECT_EQ(config_read(1, 0x14, 4), 0xc001u);
    EXPECT_EQ(config_read(1, 0x18, 4), 0u) << "unused BAR";
    EXPECT_EQ(testdev->bar_address(0), 0xc000'0000u);

    // Read-only fields stay put.
    config_write(1, 0x00, 0, 4);
    EXPECT_EQ(config_read(1, 0x00, 4), 0x0005'1b36u);
    config_write(1, 0x3c, 0x0b, 1);
    EXPECT_EQ(config_read(1, 0x3c, 1), 0x0bu);
    EXPECT_EQ(config_read(1, 0x3d, 1), 0x00u) << "no interrupt pin";
}

// kvm-unit-tests' lib/pci-testdev.c pci_testdev_all() against one BAR region.
int run_kvm_unit_tests_protocol(BusDevice& region, bool io, std::vector<std::string>& names) {
    int passed = 0;
    for (uint8_t test = 0;; ++test) {
        out(region, 0, test, 1);
        if (in(region, 12, 4) != 0) break;
        uint64_t width = in(region, 1, 1);
        if (width != 1 && width != 2 && width != 4) break;
        uint64_t signature = in(region, 8, 4);
        uint64_t offset = in(region, 4, 4);
        if (offset >= (io ? 256u : 4096u)) break;
        for (int i = 0; i < 16; ++i) out(region, offset, signature, width);
        uint64_t count = in(region, 12, 4);
        if (count != 0 && count != 16) break;
        std::string name;
        for (uint64_t at = 16;; ++at) {
            auto c = static_cast<char>(in(region, at, 1));
            if (c == 0 || name.size() > 64) break;
            name.push_back(c);
        }
        names.push_back(name);
        ++passed;
    }
    return passed;
}

TEST(PciTestDev, KvmUnitTestsProtocolPassesSixTests) {
    PciTestDev device;
    std::vector<std::string> names;
    EXPECT_EQ(run_kvm_unit_tests_protocol(*device.bar_device(0), false, names), 3);
    EXPECT_EQ(run_kvm_unit_tests_protocol(*device.bar_device(1), true, names), 3);
    EXPECT_EQ(names, (std::vector<std::string>{"mmio-no-eventfd", "mmio-wildcard-eventfd", "mmio-datamatch-eventfd",
                                               "portio-no-eventfd", "portio-wildcard-eventfd",
                                               "portio-datamatch-eventfd"}));
}

TEST(PciTestDev, CountsOnlyMatchingWritesAtTheTestOffset) {
    PciTestDev device;
    BusDevice& io = *device.bar_device(1);
    out(io, 0, 2, 1);  // portio-datamatch-eventfd: offset 128 + 5, data 0xfa
    EXPECT_EQ(in(io, 4, 4), 133u);
    out(io, 133, 0xfa, 1);
    out(io, 133, 0x11, 1);
    out(io, 134, 0xfa, 1);
    EXPECT_EQ(in(io, 12, 4), 1u);
    out(io, 0, 7, 1);  // deselects
    EXPECT_EQ(in(io, 0, 4), 0u);
}

}  // namespace
}  // namespace strata
