#include "devices/virtio/virtio_pci.hpp"
#include "devices/virtio/virtio_rng.hpp"
#include "devices/virtio/virtio_console.hpp"

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

// --- Snapshots ---

// A function's state, saved while it is held, as the board does it.
std::vector<uint8_t> snapshot_of(VirtioPci& pci) {
    pci.quiesce(true);
    StateWriter out;
    pci.save_state(out);
    pci.quiesce(false);
    return out.take();
}

// Loads `state` into `pci` and applies it, or returns the refusal.
Result<void> restore_into(VirtioPci& pci, std::span<const uint8_t> state) {
    StateReader in(state, "virtio-rng");
    auto change = pci.load_state(in);
    if (auto r = in.finish(); !r) return r;
    return change();
}

TEST_F(VirtioPciRng, AHeldDeviceServesNothingUntilLetGo) {
    driver.negotiate();
    setup_queue();
    driver.driver_ok();
    pci->quiesce(true);
    offer_buffer(0);
    driver.notify();
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(used_idx(), 0) << "served while held";
    pci->quiesce(false);
    EXPECT_TRUE(eventually([&] { return used_idx() == 1; }));
}

// The function's state goes into another function of the same kind (a new process's): it carries
// on with the queue where it was and its MSI-X vectors, and saving it again gives the same bytes.
TEST_F(VirtioPciRng, ARestoredFunctionCarriesOnWhereItWas) {
    driver.enable_msix(2);
    driver.negotiate();
    driver.write(0x16, 0, 2);
    driver.write(0x1a, 1, 2);
    setup_queue();
    driver.driver_ok();
    offer_buffer(0);
    driver.notify();
    ASSERT_TRUE(eventually([&] { return used_idx() == 1 && msi.count() == 1; }));
    std::vector<uint8_t> state = snapshot_of(*pci);

    testing::RecordingMsi msi2;
    auto restored = *VirtioPci::create(std::make_unique<VirtioRng>(), dma, msi2);
    auto r = restore_into(*restored, state);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(snapshot_of(*restored), state) << "snapshot, restore, snapshot: not the same state";
    testing::VirtioPciDriver driver2{*restored};
    EXPECT_EQ(driver2.status(), 1 | 2 | 4 | 8);
    EXPECT_EQ(driver2.read(0x1a, 2), 1u) << "queue 0's vector";
    offer_buffer(1);
    driver2.notify();
    ASSERT_TRUE(eventually([&] { return used_idx() == 2; }));
    EXPECT_EQ(ring.used(1).second, 64u);
    ASSERT_TRUE(eventually([&] { return msi2.count() == 1; }));
    EXPECT_EQ(msi2.sent[0].second, 0x41u) << "through the restored MSI-X table";
}

TEST_F(VirtioPciRng, ARestoreRefusesAnotherDeviceAndRingsOutsideRam) {
    // A function whose used ring lies in the second MiB of its 2 MiB of RAM.
    GuestMemory large = *GuestMemory::create(2 << 20);
    GuestDma large_dma{large};
    auto original = *VirtioPci::create(std::make_unique<VirtioRng>(), large_dma, msi);
    testing::VirtioPciDriver original_driver{*original};
    original_driver.negotiate();
    original_driver.setup_queue(0, 8, kDesc, kAvail, 0x18'0000);
    original_driver.driver_ok();
    ASSERT_TRUE(eventually([&] { return (original->status() & 4) != 0; }));
    std::vector<uint8_t> state = snapshot_of(*original);

    auto console = *VirtioPci::create(std::make_unique<VirtioConsole>(VirtioConsole::Output()), dma, msi);
    auto other = restore_into(*console, state);
    ASSERT_FALSE(other);
    EXPECT_NE(other.error().message.find("a different device"), std::string::npos) << other.error().message;

    auto outside = restore_into(*pci, state);  // the fixture's function has 1 MiB of RAM
    ASSERT_FALSE(outside);
    EXPECT_NE(outside.error().message.find("queue 0: used ring"), std::string::npos) << outside.error().message;
    EXPECT_EQ(driver.status(), 0u) << "a refused state changed the function";
}

}  // namespace
}  // namespace strata
