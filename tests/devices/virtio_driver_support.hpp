// A guest driver of a virtio-pci function, for device tests: what Linux's virtio_pci_modern and
// virtio_ring do, step by step, through the function's BAR 4 and configuration space, with split
// rings the test places in guest RAM.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "bus/msi.hpp"
#include "devices/virtio/virtio_pci.hpp"
#include "memory/guest_memory.hpp"

namespace strata::testing {

class RecordingMsi final : public MsiController {
public:
    void send(uint64_t address, uint32_t data) override;
    size_t count();
    std::mutex mutex;
    std::vector<std::pair<uint64_t, uint32_t>> sent;
};

// Polls `done` for up to `limit`: devices answer on their own thread.
template <class Predicate>
bool eventually(Predicate done, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    for (auto until = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < until;) {
        if (done()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return done();
}

class VirtioPciDriver {
public:
    explicit VirtioPciDriver(VirtioPci& pci);

    // BAR 4 and PCI configuration space accesses of `width` bytes.
    uint64_t read(uint64_t offset, size_t width);
    void write(uint64_t offset, uint64_t value, size_t width);
    uint64_t config(uint8_t offset, size_t width);
    void set_config(uint8_t offset, uint64_t value, size_t width);
    // The device-specific configuration (§4.1.4.6).
    uint64_t device_config(uint64_t offset, size_t width) { return read(VirtioPci::kDeviceOffset + offset, width); }

    void status(uint8_t value) { write(0x14, value, 1); }
    uint8_t status() { return static_cast<uint8_t>(read(0x14, 1)); }
    uint64_t device_features();
    // ACKNOWLEDGE, DRIVER, the features, FEATURES_OK (§3.1.1).
    void negotiate(uint64_t features = uint64_t{1} << 32);
    void setup_queue(uint16_t index, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used);
    void driver_ok() { status(1 | 2 | 8 | 4); }
    void notify(uint16_t queue = 0) { write(VirtioPci::kNotifyOffset + VirtioPci::kNotifyMultiplier * queue, queue, 2); }
    // Enables MSI-X with `vectors` table entries sending data 0x40 + n.
    void enable_msix(unsigned vectors);

private:
    VirtioPci& pci_;
    std::shared_ptr<BusDevice> bar_;
};

// The driver's side of one split virtqueue in guest RAM.
class DriverQueue {
public:
    struct Buffer {
        uint64_t gpa = 0;
        uint32_t length = 0;
        bool writable = false;
    };

    DriverQueue(GuestMemory& memory, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used);
    // Writes `chain` into the next free descriptors (taken round-robin) and makes it available
    // (without a notification); returns its head.
    uint16_t offer(std::span<const Buffer> chain);
    [[nodiscard]] uint16_t avail_idx() const { return avail_idx_; }
    [[nodiscard]] uint16_t used_idx();
    // Used ring entry `n` (modulo the size): the head and the length.
    [[nodiscard]] std::pair<uint32_t, uint32_t> used(uint16_t n);

private:
    GuestMemory& memory_;
    uint16_t size_;
    uint64_t desc_, avail_, used_;
    uint16_t next_desc_ = 0;
    uint16_t avail_idx_ = 0;
};

}  // namespace strata::testing
