// How a device reaches guest memory (DMA): through guest-physical addresses, bounds-checked with
// overflow-safe arithmetic, and with every write reported to the observers the board registered
// — the soft engine's predecoded-code invalidation and dirty tracking — exactly as a vCPU's store
// would be. Devices get a GuestDma from the board and never see GuestMemory itself.
//
// State:    the guest memory and the write observers (fixed before any device runs).
// Features: copies in and out; zero-copy views for back ends that fill guest buffers directly
//           (io_uring, readv), whose writer reports the bytes with written() once they landed;
//           acquire loads and release stores of the 16-bit ring indexes a driver and a device
//           share (virtio 1.2 §2.7.13: the index is published after the ring entry).
// Missing:  IOMMU translation (a device address is a guest-physical one).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "memory/object_access.hpp"
#include "memory/guest_memory.hpp"

namespace strata {

// Told about every range a device wrote, after the bytes are in guest memory.
class MemoryWriteObserver {
public:
    virtual ~MemoryWriteObserver() = default;
    virtual void written(uint64_t gpa, uint64_t length) = 0;
};

class GuestDma : public ObjectAccess<GuestDma> {
public:
    explicit GuestDma(const GuestMemory& memory) : memory_(memory) {}

    // Registers an observer; only while no device runs (the board does it while it builds).
    void add_observer(MemoryWriteObserver& observer) { observers_.push_back(&observer); }

    // [gpa, gpa + out.size()) must be RAM; fails naming the range otherwise.
    [[nodiscard]] Result<void> read(uint64_t gpa, std::span<uint8_t> out) const;
    [[nodiscard]] Result<void> write(uint64_t gpa, std::span<const uint8_t> in) const;


    // The host view of [gpa, gpa + length) to read from, or to write into. Whoever writes through
    // a view calls written() for what it wrote once the bytes are there.
    [[nodiscard]] Result<std::span<const uint8_t>> view(uint64_t gpa, uint64_t length) const;
    [[nodiscard]] Result<std::span<uint8_t>> view_for_write(uint64_t gpa, uint64_t length) const;
    void written(uint64_t gpa, uint64_t length) const;

    // A 16-bit load with acquire order and a store with release order, at a 2-byte-aligned RAM
    // address (an unaligned or non-RAM one fails).
    [[nodiscard]] Result<uint16_t> load_acquire_u16(uint64_t gpa) const;
    [[nodiscard]] Result<void> store_release_u16(uint64_t gpa, uint16_t value) const;

    [[nodiscard]] const GuestMemory& memory() const { return memory_; }

private:
    const GuestMemory& memory_;
    std::vector<MemoryWriteObserver*> observers_;
};

}  // namespace strata
