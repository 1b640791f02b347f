#include "devices/pci/pci_host.hpp"
#include "devices/pci/pci_testdev.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "bus/wired_or_line.hpp"

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
    EXPECT_FALSE(memory_bar->io());
    EXPECT_EQ(io_bar->size, 256u);
    EXPECT_TRUE(io_bar->io());
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

// A function with a 64-bit prefetchable memory BAR (0-1), an I/O BAR (2), INTA# and one
// capability, its BAR regions recording what reaches them.
class RecordingRegion final : public BusDevice {
public:
    void read(uint64_t offset, std::span<uint8_t> data) override {
        for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(offset + i);
    }
    void write(uint64_t offset, std::span<const uint8_t> data) override { writes.push_back({offset, data[0]}); }
    std::vector<std::pair<uint64_t, uint8_t>> writes;
};

class ScratchCapability final : public PciCapability {
public:
    PciCapabilityId id() const override { return PciCapabilityId::VendorSpecific; }
    uint8_t size() const override { return 8; }
    void read(uint8_t offset, std::span<uint8_t> data) override {
        for (size_t i = 0; i < data.size(); ++i) data[i] = bytes[offset + i];
    }
    void write(uint8_t offset, std::span<const uint8_t> data) override {
        for (size_t i = 0; i < data.size(); ++i) bytes[offset + i] = data[i];
    }
    std::array<uint8_t, 8> bytes{0, 0, 8, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};
};

class TestFunction final : public PciDevice {
public:
    TestFunction() : PciDevice(0x1af4, 0x1234, 0xff'00'00) {
        declare_bar(0, PciBarKind::Memory64, 0x4000, true);
        declare_bar(2, PciBarKind::Io, 0x20);
        set_interrupt_pin(1);
        capability_offset = add_capability(scratch);
        add_capability(second);
    }
    std::shared_ptr<BusDevice> bar_device(unsigned index) const override {
        return index == 0 ? memory : index == 2 ? io : nullptr;
    }
    void bar_moved(unsigned index, std::optional<PciBarMapping> mapping) override { moves.push_back({index, mapping}); }
    using PciDevice::set_intx;

    std::shared_ptr<RecordingRegion> memory = std::make_shared<RecordingRegion>();
    std::shared_ptr<RecordingRegion> io = std::make_shared<RecordingRegion>();
    std::shared_ptr<ScratchCapability> scratch = std::make_shared<ScratchCapability>();
    std::shared_ptr<ScratchCapability> second = std::make_shared<ScratchCapability>();
    uint8_t capability_offset = 0;
    std::vector<std::pair<unsigned, std::optional<PciBarMapping>>> moves;
};

struct PciDecoding : Pci {
    std::shared_ptr<TestFunction> function = std::make_shared<TestFunction>();
    std::array<testing::FakeIrqLine, 4> lines;
    void SetUp() override {
        ASSERT_TRUE(host.add_device(2, function));
        PciHost::Windows windows{.io_start = 0xc000, .io_end = 0x1'0000, .mmio_start = 0xc000'0000,
                                 .mmio_end = 0xfe00'0000, .mmio64_start = 0x8'0000'0000, .mmio64_end = 0x9'0000'0000};
        ASSERT_TRUE(host.assign_resources(windows, [this](unsigned slot, unsigned pin) -> IrqLine& {
            return lines[(slot + pin) % 4];
        }));
    }
    uint64_t memory_read(uint64_t at) { return in(*host.memory_space(), at, 1); }
};

TEST_F(PciDecoding, SixtyFourBitBarSizingAndPlacement) {
    EXPECT_EQ(config_read(2, 0x10, 4), 0x0000'000cu) << "64-bit prefetchable, low half of 0x8'0000'0000";
    EXPECT_EQ(config_read(2, 0x14, 4), 0x8u);
    EXPECT_EQ(function->bar_address(0), 0x8'0000'0000u);
    EXPECT_FALSE(function->bar_request(1)) << "the upper half is not a BAR of its own";
    config_write(2, 0x10, 0xffff'ffff, 4);
    config_write(2, 0x14, 0xffff'ffff, 4);
    EXPECT_EQ(config_read(2, 0x10, 4), 0xffff'c00cu);
    EXPECT_EQ(config_read(2, 0x14, 4), 0xffff'ffffu);
    EXPECT_FALSE(function->mapping(0)) << "the sizing pattern decodes nothing";
    EXPECT_EQ(config_read(2, 0x18, 4), 0xc001u) << "I/O BAR from the I/O window";
    EXPECT_EQ(config_read(2, 0x3d, 1), 1u);
}

TEST_F(PciDecoding, AccessesFollowTheBarWhenTheGuestMovesIt) {
    EXPECT_EQ(memory_read(0x8'0000'0005), 5u);
    config_write(2, 0x10, 0xd000'0000, 4);
    config_write(2, 0x14, 0, 4);
    EXPECT_EQ(memory_read(0x8'0000'0005), 0xffu) << "nothing at the old address";
    EXPECT_EQ(memory_read(0xd000'0007), 7u);
    out(*host.memory_space(), 0xd000'0010, 0x42, 1);
    ASSERT_EQ(function->memory->writes.size(), 1u);
    EXPECT_EQ(function->memory->writes[0], (std::pair<uint64_t, uint8_t>{0x10, 0x42}));
    EXPECT_EQ(in(*host.memory_space(), 0xd000'3ffe, 2), 0xfffeu) << "the BAR's last two bytes";
    EXPECT_EQ(in(*host.memory_space(), 0xd000'3fff, 2), 0xffffu) << "an access must lie wholly inside the BAR";
    EXPECT_EQ(memory_read(0xd000'4000), 0xffu);
    ASSERT_FALSE(function->moves.empty());
    auto [bar, mapping] = function->moves.back();
    EXPECT_EQ(bar, 0u);
    ASSERT_TRUE(mapping);
    EXPECT_EQ(mapping->address, 0xd000'0000u);
}

TEST_F(PciDecoding, CommandRegisterEnablesDecoding) {
    EXPECT_EQ(in(*host.io_space(), 0xc003, 1), 3u);
    config_write(2, 0x04, 0x0002, 2);  // memory only
    EXPECT_EQ(in(*host.io_space(), 0xc003, 1), 0xffu) << "I/O decoding off";
    EXPECT_EQ(memory_read(0x8'0000'0001), 1u);
    config_write(2, 0x04, 0x0000, 2);
    EXPECT_EQ(memory_read(0x8'0000'0001), 0xffu) << "memory decoding off";
    EXPECT_FALSE(function->moves.back().second);
    config_write(2, 0x04, 0x0003, 2);
    EXPECT_EQ(memory_read(0x8'0000'0001), 1u);
    EXPECT_EQ(in(*host.io_space(), 0xc003, 1), 3u);
}

TEST_F(PciDecoding, CapabilityListLinksEveryCapability) {
    EXPECT_TRUE(config_read(2, 0x06, 2) & 0x10) << "Capabilities List";
    uint64_t first = config_read(2, 0x34, 1);
    EXPECT_EQ(first, 0x40u);
    EXPECT_EQ(config_read(2, static_cast<unsigned>(first), 1), 0x09u);
    uint64_t second = config_read(2, static_cast<unsigned>(first + 1), 1);
    EXPECT_EQ(second, 0x48u);
    EXPECT_EQ(config_read(2, static_cast<unsigned>(second + 1), 1), 0u) << "end of list";
    // A dword across the header bytes and the body: the list bytes from the device, the rest
    // from the capability; writes do not move the list.
    EXPECT_EQ(config_read(2, 0x40, 4), 0xaa08'4809u);
    config_write(2, 0x40, 0x1122'3344, 4);
    EXPECT_EQ(config_read(2, 0x40, 4), 0x1122'4809u);
    EXPECT_EQ(function->scratch->bytes[3], 0x11u);
}

TEST_F(PciDecoding, IntxFollowsTheConditionAndIntxDisable) {
    testing::FakeIrqLine& line = lines[(2 + 0) % 4];
    function->set_intx(true);
    EXPECT_TRUE(line.level());
    EXPECT_TRUE(config_read(2, 0x06, 2) & 0x08) << "Interrupt Status";
    config_write(2, 0x04, 0x0403, 2);  // INTx Disable
    EXPECT_FALSE(line.level());
    EXPECT_TRUE(config_read(2, 0x06, 2) & 0x08) << "the condition still shows";
    config_write(2, 0x04, 0x0003, 2);
    EXPECT_TRUE(line.level());
    function->set_intx(false);
    EXPECT_FALSE(line.level());
    EXPECT_EQ(line.levels(), (std::vector<bool>{true, false, true, false}));
}

// A function's and the host's state go into a new host with a new function of the same kind: the
// BAR decodes where the guest had moved it, and the INTx line is raised again.
TEST_F(PciDecoding, ARestoredFunctionDecodesWhereTheGuestLeftIt) {
    config_write(2, 0x10, 0xd000'0000, 4);
    config_write(2, 0x14, 0, 4);
    function->set_intx(true);
    StateWriter saved;
    function->save_state(saved);

    testing::FakeMachineControl control2;
    PciHost host2{control2};
    auto function2 = std::make_shared<TestFunction>();
    ASSERT_TRUE(host2.add_device(2, function2));
    std::array<testing::FakeIrqLine, 4> lines2;
    ASSERT_TRUE(host2.assign_resources({.io_start = 0xc000, .io_end = 0x1'0000, .mmio_start = 0xc000'0000,
                                        .mmio_end = 0xfe00'0000, .mmio64_start = 0x8'0000'0000,
                                        .mmio64_end = 0x9'0000'0000},
                                       [&](unsigned slot, unsigned pin) -> IrqLine& { return lines2[(slot + pin) % 4]; }));
    StateReader in(saved.view(), "pci/02");
    auto change = function2->load_state(in);
    ASSERT_TRUE(in.finish());
    ASSERT_TRUE(change());
    ASSERT_TRUE(host2.set_state(host.state()));
    EXPECT_EQ(testing::in(*host2.memory_space(), 0xd000'0007, 1), 7u);
    EXPECT_EQ(testing::in(*host2.memory_space(), 0x8'0000'0007, 1), 0xffu) << "still at the address firmware gave";
    EXPECT_TRUE(lines2[2].level()) << "INTx raised again";
    EXPECT_EQ(function2->bar_address(0), 0xd000'0000u);
}

TEST_F(PciDecoding, ARestoreRefusesAnotherFunctionAndBadHostRegisters) {
    StateWriter saved;
    function->save_state(saved);
    PciTestDev testdev;
    StateReader in(saved.view(), "pci/02");
    auto change = testdev.load_state(in);
    auto refused = in.finish();
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("a different device"), std::string::npos) << refused.error().message;
    auto reserved = host.set_state({.config_address = 0x4000'0000, .reset_control = 0});
    ASSERT_FALSE(reserved);
    EXPECT_NE(reserved.error().message.find("reserved bits"), std::string::npos) << reserved.error().message;
}

TEST(WiredOrLine, OutputHighWhileAnyInputIs) {
    testing::FakeIrqLine output;
    WiredOrLine line(output);
    IrqLine& a = line.add_input();
    IrqLine& b = line.add_input();
    a.raise();
    b.raise();
    a.lower();
    EXPECT_TRUE(output.level()) << "b still asserts";
    a.lower();
    b.lower();
    EXPECT_EQ(output.levels(), (std::vector<bool>{true, false}));
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
