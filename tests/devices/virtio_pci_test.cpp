#include "devices/virtio/virtio_pci.hpp"
#include "devices/virtio/virtio_rng.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "base/bytes.hpp"
#include "fakes.hpp"

namespace strata {
namespace {

using namespace std::chrono_literals;

class RecordingMsi final : public MsiController {
public:
    void send(uint64_t address, uint32_t data) override {
        std::lock_guard lock(mutex);
        sent.emplace_back(address, data);
    }
    size_t count() {
        std::lock_guard lock(mutex);
        return sent.size();
    }
    std::mutex mutex;
    std::vector<std::pair<uint64_t, uint32_t>> sent;
};

template <class Predicate>
bool eventually(Predicate done) {
    for (auto until = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < until;) {
        if (done()) return true;
        std::this_thread::sleep_for(1ms);
    }
    return done();
}

// A driver of virtio-rng over its transport: what Linux's virtio_pci_modern and virtio_ring do,
// step by step, with one queue of 8 entries in guest RAM.
struct VirtioPciRng : ::testing::Test {
    static constexpr uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000, kBuffer = 0x4000;
    GuestMemory memory = *GuestMemory::create(1 << 20);
    GuestDma dma{memory};
    RecordingMsi msi;
    testing::FakeIrqLine intx;
    std::shared_ptr<VirtioPci> pci = *VirtioPci::create(std::make_unique<VirtioRng>(), dma, msi);
    std::shared_ptr<BusDevice> bar = pci->bar_device(VirtioPci::kBar);

    void SetUp() override { pci->connect_intx(intx); }

    uint64_t read(uint64_t offset, size_t width) {
        std::array<uint8_t, 8> bytes{};
        bar->read(offset, std::span(bytes).first(width));
        return load_le(std::span(bytes).first(width));
    }
    void write(uint64_t offset, uint64_t value, size_t width) {
        std::array<uint8_t, 8> bytes{};
        store_le(std::span(bytes).first(width), value);
        bar->write(offset, std::span<const uint8_t>(bytes).first(width));
    }
    uint64_t config(uint8_t offset, size_t width) {
        std::array<uint8_t, 4> bytes{};
        pci->config_read(offset, std::span(bytes).first(width));
        return load_le(std::span(bytes).first(width));
    }
    void set_config(uint8_t offset, uint64_t value, size_t width) {
        std::array<uint8_t, 4> bytes{};
        store_le(std::span(bytes).first(width), value);
        pci->config_write(offset, std::span<const uint8_t>(bytes).first(width));
    }
    void status(uint8_t value) { write(0x14, value, 1); }
    uint8_t status() { return static_cast<uint8_t>(read(0x14, 1)); }
    void negotiate(uint64_t features = uint64_t{1} << 32) {
        status(1);
        status(1 | 2);
        write(0x08, 0, 4);
        write(0x0c, features & 0xffff'ffff, 4);
        write(0x08, 1, 4);
        write(0x0c, features >> 32, 4);
        status(1 | 2 | 8);
    }
    void setup_queue(uint64_t desc = kDesc) {
        write(0x16, 0, 2);
        write(0x18, 8, 2);
        write(0x20, desc, 8);
        write(0x28, kAvail, 8);
        write(0x30, kUsed, 8);
        write(0x1c, 1, 2);
    }
    // Makes a 64-byte device-writable buffer available in slot `n` of the ring.
    void offer_buffer(uint16_t n) {
        std::array<uint8_t, 16> desc{};
        store_le(std::span(desc).subspan(0, 8), kBuffer + 64 * n);
        store_le(std::span(desc).subspan(8, 4), 64);
        store_le(std::span(desc).subspan(12, 2), 2);  // WRITE
        ASSERT_TRUE(memory.write(kDesc + 16 * n, desc));
        ASSERT_TRUE(memory.write_obj<uint16_t>(kAvail + 4 + 2 * (n % 8), n));
        ASSERT_TRUE(memory.write_obj<uint16_t>(kAvail + 2, static_cast<uint16_t>(n + 1)));
    }
    uint16_t used_idx() { return *memory.read_obj<uint16_t>(kUsed + 2); }
    void notify() { write(VirtioPci::kNotifyOffset, 0, 2); }
    void enable_msix() {
        // Message Control is in the MSI-X capability, the first in the list.
        uint8_t cap = static_cast<uint8_t>(config(0x34, 1));
        ASSERT_EQ(config(cap, 1), 0x11u);
        set_config(cap + 3, 0x80, 1);
        for (unsigned v = 0; v < 2; ++v) {
            write(VirtioPci::kMsixTableOffset + 16 * v, 0xfee0'0000, 4);
            write(VirtioPci::kMsixTableOffset + 16 * v + 8, 0x40 + v, 4);
            write(VirtioPci::kMsixTableOffset + 16 * v + 12, 0, 4);
        }
    }
};

TEST_F(VirtioPciRng, PresentsAModernVirtioFunction) {
    EXPECT_EQ(config(0x00, 4), 0x1044'1af4u) << "0x1040 + device type 4";
    EXPECT_EQ(config(0x08, 1), 1u) << "revision 1: modern";
    EXPECT_EQ(config(0x2e, 2), 0x44u);
    EXPECT_EQ(config(0x10 + 4 * VirtioPci::kBar, 4) & 0xf, 0xcu) << "64-bit prefetchable";
    // The vendor capabilities name each structure's BAR and offset.
    std::vector<std::pair<uint8_t, uint32_t>> structures;
    for (uint8_t at = static_cast<uint8_t>(config(0x34, 1)); at != 0; at = static_cast<uint8_t>(config(at + 1, 1)))
        if (config(at, 1) == 0x09) structures.emplace_back(config(at + 3, 1), config(at + 8, 4));
    EXPECT_EQ(structures, (std::vector<std::pair<uint8_t, uint32_t>>{{1, 0x0000}, {2, 0x3000}, {3, 0x1000}, {5, 0}}));
    EXPECT_EQ(read(0x12, 2), 1u) << "num_queues";
    EXPECT_EQ(read(0x18, 2), 256u) << "queue 0's maximum size";
    write(0x04 - 4, 1, 4);
    EXPECT_EQ(read(0x04, 4), 0x1u) << "features 32-63: VERSION_1";
    write(0x00, 0, 4);
    EXPECT_EQ(read(0x04, 4), (1u << 28) | (1u << 29)) << "INDIRECT_DESC and EVENT_IDX";
}

TEST_F(VirtioPciRng, FeaturesOkOnlyForASubsetWithVersion1) {
    negotiate(0);
    EXPECT_FALSE(status() & 8) << "no VERSION_1";
    status(0);
    negotiate((uint64_t{1} << 32) | (1u << 5));
    EXPECT_FALSE(status() & 8) << "bit 5 was not offered";
    status(0);
    negotiate((uint64_t{1} << 32) | (1u << 29));
    EXPECT_TRUE(status() & 8);
}

TEST_F(VirtioPciRng, ServesRandomBytesAndSignalsTheQueueVector) {
    enable_msix();
    negotiate();
    write(0x16, 0, 2);
    write(0x1a, 1, 2);
    EXPECT_EQ(read(0x1a, 2), 1u);
    setup_queue();
    status(1 | 2 | 8 | 4);
    offer_buffer(0);
    notify();
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
    negotiate();
    setup_queue();
    status(1 | 2 | 8 | 4);
    offer_buffer(0);
    notify();
    ASSERT_TRUE(eventually([&] { return intx.level(); }));
    EXPECT_EQ(read(VirtioPci::kIsrOffset, 1), 1u) << "queue interrupt";
    EXPECT_FALSE(intx.level()) << "reading the ISR clears it";
    EXPECT_EQ(read(VirtioPci::kIsrOffset, 1), 0u);
}

TEST_F(VirtioPciRng, BuffersOfferedBeforeDriverOkWaitForIt) {
    negotiate();
    setup_queue();
    offer_buffer(0);
    notify();
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(used_idx(), 0) << "the device consumes nothing before DRIVER_OK";
    status(1 | 2 | 8 | 4);
    EXPECT_TRUE(eventually([&] { return used_idx() == 1; }));
}

TEST_F(VirtioPciRng, ABadRingNeedsAResetAndTheResetClearsIt) {
    enable_msix();
    negotiate();
    setup_queue(0x7fff'fff0);  // the descriptor table is not in RAM
    status(1 | 2 | 8 | 4);
    ASSERT_TRUE(eventually([&] { return (status() & 64) != 0; })) << "DEVICE_NEEDS_RESET";
    write(0x16, 0, 2);
    status(0);
    EXPECT_EQ(status(), 0u) << "reset done when it reads back 0";
    EXPECT_EQ(read(0x20, 8), 0u) << "queue addresses forgotten";
    negotiate();
    setup_queue();
    status(1 | 2 | 8 | 4);
    offer_buffer(0);
    notify();
    EXPECT_TRUE(eventually([&] { return used_idx() == 1; }));
}

TEST_F(VirtioPciRng, DescriptorLoopNeedsAReset) {
    negotiate();
    setup_queue();
    status(1 | 2 | 8 | 4);
    std::array<uint8_t, 16> desc{};
    store_le(std::span(desc).subspan(0, 8), kBuffer);
    store_le(std::span(desc).subspan(8, 4), 64);
    store_le(std::span(desc).subspan(12, 2), 1 | 2);  // NEXT | WRITE, next = 0: itself
    ASSERT_TRUE(memory.write(kDesc, desc));
    ASSERT_TRUE(memory.write_obj<uint16_t>(kAvail + 2, 1));
    notify();
    EXPECT_TRUE(eventually([&] { return (status() & 64) != 0; }));
    notify();  // ignored from now on
    EXPECT_EQ(used_idx(), 0);
}

TEST_F(VirtioPciRng, VectorsPastTheTableReadBackNoVector) {
    write(0x10, 2, 2);
    EXPECT_EQ(read(0x10, 2), 0xffffu) << "two vectors: 0 and 1";
    write(0x10, 1, 2);
    EXPECT_EQ(read(0x10, 2), 1u);
    write(0x1a, 7, 2);
    EXPECT_EQ(read(0x1a, 2), 0xffffu);
}

TEST_F(VirtioPciRng, PciConfigurationAccessWindowReachesBarFour) {
    uint8_t window = 0;
    for (uint8_t at = static_cast<uint8_t>(config(0x34, 1)); at != 0; at = static_cast<uint8_t>(config(at + 1, 1)))
        if (config(at, 1) == 0x09 && config(at + 3, 1) == 5) window = at;
    ASSERT_NE(window, 0);
    set_config(window + 4, VirtioPci::kBar, 1);
    set_config(window + 8, 0x12, 4);  // num_queues
    set_config(window + 12, 2, 4);
    EXPECT_EQ(config(window + 16, 2), 1u);
    set_config(window + 12, 4, 4);
    EXPECT_EQ(config(window + 16, 2), 0u) << "the length must match the access";
}

}  // namespace
}  // namespace strata
