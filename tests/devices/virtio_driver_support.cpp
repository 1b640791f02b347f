#include "virtio_driver_support.hpp"

#include <gtest/gtest.h>

#include <array>

#include "base/bytes.hpp"

namespace strata::testing {

void RecordingMsi::send(uint64_t address, uint32_t data) {
    std::lock_guard lock(mutex);
    sent.emplace_back(address, data);
}

size_t RecordingMsi::count() {
    std::lock_guard lock(mutex);
    return sent.size();
}

VirtioPciDriver::VirtioPciDriver(VirtioPci& pci) : pci_(pci), bar_(pci.bar_device(VirtioPci::kBar)) {}

uint64_t VirtioPciDriver::read(uint64_t offset, size_t width) {
    std::array<uint8_t, 8> bytes{};
    bar_->read(offset, std::span(bytes).first(width));
    return load_le(std::span(bytes).first(width));
}

void VirtioPciDriver::write(uint64_t offset, uint64_t value, size_t width) {
    std::array<uint8_t, 8> bytes{};
    store_le(std::span(bytes).first(width), value);
    bar_->write(offset, std::span<const uint8_t>(bytes).first(width));
}

uint64_t VirtioPciDriver::config(uint8_t offset, size_t width) {
    std::array<uint8_t, 4> bytes{};
    pci_.config_read(offset, std::span(bytes).first(width));
    return load_le(std::span(bytes).first(width));
}

void VirtioPciDriver::set_config(uint8_t offset, uint64_t value, size_t width) {
    std::array<uint8_t, 4> bytes{};
    store_le(std::span(bytes).first(width), value);
    pci_.config_write(offset, std::span<const uint8_t>(bytes).first(width));
}

uint64_t VirtioPciDriver::device_features() {
    write(0x00, 0, 4);
    uint64_t low = read(0x04, 4);
    write(0x00, 1, 4);
    return low | (read(0x04, 4) << 32);
}

void VirtioPciDriver::negotiate(uint64_t features) {
    status(1);
    status(1 | 2);
    write(0x08, 0, 4);
    write(0x0c, features & 0xffff'ffff, 4);
    write(0x08, 1, 4);
    write(0x0c, features >> 32, 4);
    status(1 | 2 | 8);
}

void VirtioPciDriver::setup_queue(uint16_t index, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used) {
    write(0x16, index, 2);
    write(0x18, size, 2);
    write(0x20, desc, 8);
    write(0x28, avail, 8);
    write(0x30, used, 8);
    write(0x1c, 1, 2);
}

void VirtioPciDriver::enable_msix(unsigned vectors) {
    // Message Control is in the MSI-X capability, the first in the list.
    uint8_t cap = static_cast<uint8_t>(config(0x34, 1));
    ASSERT_EQ(config(cap, 1), 0x11u);
    set_config(static_cast<uint8_t>(cap + 3), 0x80, 1);
    for (unsigned v = 0; v < vectors; ++v) {
        write(VirtioPci::kMsixTableOffset + 16 * v, 0xfee0'0000, 4);
        write(VirtioPci::kMsixTableOffset + 16 * v + 8, 0x40 + v, 4);
        write(VirtioPci::kMsixTableOffset + 16 * v + 12, 0, 4);
    }
}

DriverQueue::DriverQueue(GuestMemory& memory, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used)
    : memory_(memory), size_(size), desc_(desc), avail_(avail), used_(used) {}

uint16_t DriverQueue::offer(std::span<const Buffer> chain) {
    uint16_t head = next_desc_;
    for (size_t i = 0; i < chain.size(); ++i) {
        uint16_t index = next_desc_;
        next_desc_ = static_cast<uint16_t>((next_desc_ + 1) % size_);
        bool more = i + 1 < chain.size();
        std::array<uint8_t, 16> desc{};
        store_le(std::span(desc).subspan(0, 8), chain[i].gpa);
        store_le(std::span(desc).subspan(8, 4), chain[i].length);
        store_le(std::span(desc).subspan(12, 2), (more ? 1u : 0u) | (chain[i].writable ? 2u : 0u));
        store_le(std::span(desc).subspan(14, 2), next_desc_);
        EXPECT_TRUE(memory_.write(desc_ + 16 * uint64_t{index}, desc));
    }
    EXPECT_TRUE(memory_.write_obj<uint16_t>(avail_ + 4 + 2 * uint64_t{static_cast<uint16_t>(avail_idx_ % size_)}, head));
    ++avail_idx_;
    // The ring entry before the index (§2.7.13); the test's stores are ordered by the notification.
    EXPECT_TRUE(memory_.write_obj<uint16_t>(avail_ + 2, avail_idx_));
    return head;
}

uint16_t DriverQueue::used_idx() { return *memory_.read_obj<uint16_t>(used_ + 2); }

std::pair<uint32_t, uint32_t> DriverQueue::used(uint16_t n) {
    uint64_t at = used_ + 4 + 8 * uint64_t{static_cast<uint16_t>(n % size_)};
    return {*memory_.read_obj<uint32_t>(at), *memory_.read_obj<uint32_t>(at + 4)};
}

}  // namespace strata::testing
