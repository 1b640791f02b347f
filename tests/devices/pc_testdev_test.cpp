#include "devices/test/pc_testdev.hpp"

#include <fcntl.h>
#include <unistd.h>

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

// Whether the host maps the page holding `host` right now (/proc/self/pagemap bit 63, "page
// present"): what a flush takes away, so that KVM's MMU forgets the page as well.
bool host_page_present(const void* host) {
    int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return true;
    uint64_t entry = 0;
    off_t offset = static_cast<off_t>(reinterpret_cast<uintptr_t>(host) / 4096 * sizeof(entry));
    bool read = ::pread(fd, &entry, sizeof(entry), offset) == sizeof(entry);
    ::close(fd);
    return !read || (entry >> 63) != 0;
}

TEST_F(TestDev, FlushPageUnmapsThePageKeepingItsContents) {
    ASSERT_TRUE(memory->write_obj<uint32_t>(0x201000, 0xdeadbeef));
    ASSERT_TRUE(memory->write_obj<uint32_t>(0x202000, 0xfeedf00d));
    const uint8_t* page = memory->translate(0x201000, 4096)->data();
    const uint8_t* neighbour = memory->translate(0x202000, 4096)->data();
    ASSERT_TRUE(host_page_present(page));

    out(*device->ports(), 4, 0x201234, 4);  // any address in the page
    EXPECT_FALSE(host_page_present(page)) << "the flushed page is unmapped";
    EXPECT_TRUE(host_page_present(neighbour)) << "and only that page";
    EXPECT_EQ(memory->read_obj<uint32_t>(0x201000).value(), 0xdeadbeefu) << "its contents come back";
    EXPECT_TRUE(host_page_present(page));
    ASSERT_TRUE(memory->write_obj<uint32_t>(0x201000, 1)) << "page writable again";
    EXPECT_EQ(memory->read_obj<uint32_t>(0x201000).value(), 1u);
}

TEST_F(TestDev, FlushPageIgnoresAddressesOutsideRam) {
    out(*device->ports(), 4, 0xfee00000, 4);  // MMIO hole
    out(*device->ports(), 4, 0xffffffffffffffffull, 8);
    out(*device->ports(), 4, 0xffffffffffffffffull, 4);
    EXPECT_EQ(in(*device->ports(), 0, 4), 0u) << "the device still answers";
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

TEST_F(TestDev, ARestoredDeviceKeepsItsScratchAndRaisedLines) {
    out(*device->ports(), 0, 0xcafe'f00d, 4);
    out(*device->mmio(), 0x100, 0x1234, 2);
    testing::outb(*device->irq_ports(), 10, 1);
    std::array<testing::FakeIrqLine, 24> restored_lines;
    std::array<IrqLine*, 24> wired{};
    for (size_t i = 0; i < wired.size(); ++i) wired[i] = &restored_lines[i];
    PcTestDev restored(*memory, wired);
    ASSERT_TRUE(restored.set_state(testing::through_snapshot(device->state())));
    EXPECT_EQ(in(*restored.ports(), 0, 4), 0xcafe'f00du);
    EXPECT_EQ(in(*restored.mmio(), 0x100, 2), 0x1234u);
    EXPECT_TRUE(restored_lines[10].level()) << "GSI 10 is up again";
    EXPECT_TRUE(restored_lines[9].levels().empty());
}

}  // namespace
}  // namespace strata
