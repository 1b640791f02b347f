#include "devices/virtio/virtio_pci.hpp"
#include "devices/virtio/virtio_rng.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "base/bytes.hpp"
#include "fakes.hpp"
#include "virtio_driver_support.hpp"

namespace strata {
namespace {

using namespace std::chrono_literals;
using testing::eventually;

// virtio-rng over its transport, with one queue of 8 entries in guest RAM.
struct VirtioPciRng : ::testing::Test {
    static constexpr uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000, kBuffer = 0x4000;
    GuestMemory memory = *GuestMemory::create(1 << 20);
    GuestDma dma{memory};
    testing::RecordingMsi msi;
    testing::FakeIrqLine intx;
    std::shared_ptr<VirtioPci> pci = *VirtioPci::create(std::make_unique<VirtioRng>(), dma, msi);
    testing::VirtioPciDriver driver{*pci};
    testing::DriverQueue ring{memory, 8, kDesc, kAvail, kUsed};

    void SetUp() override { pci->connect_intx(intx); }

    void setup_queue(uint64_t desc = kDesc) { driver.setup_queue(0, 8, desc, kAvail, kUsed); }
    // Makes a 64-byte device-writable buffer available: the n-th offered.
    void offer_buffer(uint16_t n) {
        testing::DriverQueue::Buffer buffer{.gpa = kBuffer + 64 * uint64_t{n}, .length = 64, .writable = true};
        ring.offer(std::span(&buffer, 1));
    }
    uint16_t used_idx() { return ring.used_idx(); }
};

TEST_F(VirtioPciRng, PresentsAModernVirtioFunction) {
    EXPECT_EQ(driver.config(0x00, 4), 0x1044'1af4u) << "0x1040 + device type 4";
    EXPECT_EQ(driver.config(0x08, 1), 1u) << "revision 1: modern";
    EXPECT_EQ(driver.config(0x2e, 2), 0x44u);
    EXPECT_EQ(driver.config(0x10 + 4 * VirtioPci::kBar, 4) & 0xf, 0xcu) << "64-bit prefetchable";
    // The vendor capabilities name each structure's BAR and offset.
    std::vector<std::pair<uint8_t, uint32_t>> structures;
    for (uint8_t at = static_cast<uint8_t>(driver.config(0x34, 1)); at != 0; at = static_cast<uint8_t>(driver.config(at + 1, 1)))
        if (driver.config(at, 1) == 0x09) structures.emplace_back(driver.config(at + 3, 1), driver.config(at + 8, 4));
    EXPECT_EQ(structures, (std::vector<std::pair<uint8_t, uint32_t>>{{1, 0x0000}, {2, 0x3000}, {3, 0x1000}, {5, 0}}));
    EXPECT_EQ(driver.read(0x12, 2), 1u) << "num_queues";
    EXPECT_EQ(driver.read(0x18, 2), 256u) << "queue 0's maximum size";
    driver.write(0x04 - 4, 1, 4);
    EXPECT_EQ(driver.read(0x04, 4), 0x1u) << "features 32-63: VERSION_1";
    driver.write(0x00, 0, 4);
    EXPECT_EQ(driver.read(0x04, 4), (1u << 28) | (1u << 29)) << "INDIRECT_DESC and EVENT_IDX";
}

TEST_F(VirtioPciRng, FeaturesOkOnlyForASubsetWithVersion1) {
    driver.negotiate(0);
    EXPECT_FALSE(driver.status() & 8) << "no VERSION_1";
    driver.status(0);
    driver.negotiate((uint64_t{1} << 32) | (1u << 5));
    EXPECT_FALSE(driver.status() & 8) << "bit 5 was not offered";
    driver.status(0);
    driver.negotiate((uint64_t{1} << 32) | (1u << 29));
    EXPECT_TRUE(driver.status() & 8);
}

TEST_F(VirtioPciRng, ServesRandomBytesAndSignalsTheQueueVector) {
    driver.enable_msix(2);
    driver.negotiate();
    driver.write(0x16, 0, 2);
    driver.write(0x1a, 1, 2);
    EXPECT_EQ(driver.read(0x1a, 2), 1u);
    setup_queue();
    driver.driver_ok();
    offer_buffer(0);
    driver.notify();
    ASSERT_TRUE(eventually([&] { return used_idx() == 1; }));
    EXPECT_EQ(*memory.read_obj<uint32_t>(kUsed + 4 + 4), 64u) << "used length: the whole buffer";
    std::array<uint8_t, 64> bytes{};
    ASSERT_TRUE(memory.read(kBuffer, bytes));
    EXPECT_NE(std::ranges::count(bytes, 0), 64);
    ASSERT_TRUE(eventually([&] { return msi.count() == 1; }));
    EXPECT_EQ(msi.sent[0].second, 0x41u) << "queue 0's vector 1";
    EXPECT_TRUE(intx.levels().empty()) << "no INTx while MSI-X is on";
}

TEST_F(VirtioPciRng, WithoutMsixTheIsrAndIntxSignal) {
    driver.negotiate();
    setup_queue();
    driver.driver_ok();
    offer_buffer(0);
    driver.notify();
    ASSERT_TRUE(eventually([&] { return intx.level(); }));
    EXPECT_EQ(driver.read(VirtioPci::kIsrOffset, 1), 1u) << "queue interrupt";
    EXPECT_FALSE(intx.level()) << "reading the ISR clears it";
    EXPECT_EQ(driver.read(VirtioPci::kIsrOffset, 1), 0u);
}

TEST_F(VirtioPciRng, BuffersOfferedBeforeDriverOkWaitForIt) {
    driver.negotiate();
    setup_queue();
    offer_buffer(0);
    driver.notify();
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(used_idx(), 0) << "the device consumes nothing before DRIVER_OK";
    driver.driver_ok();
    EXPECT_TRUE(eventually([&] { return used_idx() == 1; }));
}

TEST_F(VirtioPciRng, ABadRingNeedsAResetAndTheResetClearsIt) {
    driver.enable_msix(2);
    driver.negotiate();
    setup_queue(0x7fff'fff0);  // the descriptor table is not in RAM
    driver.driver_ok();
    ASSERT_TRUE(eventually([&] { return (driver.status() & 64) != 0; })) << "DEVICE_NEEDS_RESET";
    driver.write(0x16, 0, 2);
    driver.status(0);
    EXPECT_EQ(driver.status(), 0u) << "reset done when it reads back 0";
    EXPECT_EQ(driver.read(0x20, 8), 0u) << "queue addresses forgotten";
    driver.negotiate();
    setup_queue();
    driver.driver_ok();
    offer_buffer(0);
    driver.notify();
    EXPECT_TRUE(eventually([&] { return used_idx() == 1; }));
}

TEST_F(VirtioPciRng, DescriptorLoopNeedsAReset) {
    driver.negotiate();
    setup_queue();
    driver.driver_ok();
    std::array<uint8_t, 16> desc{};
    store_le(std::span(desc).subspan(0, 8), kBuffer);
    store_le(std::span(desc).subspan(8, 4), 64);
    store_le(std::span(desc).subspan(12, 2), 1 | 2);  // NEXT | WRITE, next = 0: itself
    ASSERT_TRUE(memory.write(kDesc, desc));
    ASSERT_TRUE(memory.write_obj<uint16_t>(kAvail + 2, 1));
    driver.notify();
    EXPECT_TRUE(eventually([&] { return (driver.status() & 64) != 0; }));
    driver.notify();  // ignored from now on
    EXPECT_EQ(used_idx(), 0);
}

TEST_F(VirtioPciRng, VectorsPastTheTableReadBackNoVector) {
    driver.write(0x10, 2, 2);
    EXPECT_EQ(driver.read(0x10, 2), 0xffffu) << "two vectors: 0 and 1";
    driver.write(0x10, 1, 2);
    EXPECT_EQ(driver.read(0x10, 2), 1u);
    driver.write(0x1a, 7, 2);
    EXPECT_EQ(driver.read(0x1a, 2), 0xffffu);
}

TEST_F(VirtioPciRng, PciConfigurationAccessWindowReachesBarFour) {
    uint8_t window = 0;
    for (uint8_t at = static_cast<uint8_t>(driver.config(0x34, 1)); at != 0; at = static_cast<uint8_t>(driver.config(at + 1, 1)))
        if (driver.config(at, 1) == 0x09 && driver.config(at + 3, 1) == 5) window = at;
    ASSERT_NE(window, 0);
    driver.set_config(window + 4, VirtioPci::kBar, 1);
    driver.set_config(window + 8, 0x12, 4);  // num_queues
    driver.set_config(window + 12, 2, 4);
    EXPECT_EQ(driver.config(window + 16, 2), 1u);
    driver.set_config(window + 12, 4, 4);
    EXPECT_EQ(driver.config(window + 16, 2), 0u) << "the length must match the access";
}

}  // namespace
}  // namespace strata
