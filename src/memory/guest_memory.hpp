// Guest-physical memory: RAM regions backed by one memfd and mapped into the VMM, and the
// GPA→HVA translation that every loader and device goes through.
//
// State: a list of RAM regions, sorted and disjoint, each a window of the memfd.
// Layout: RAM starts at GPA 0; above kLowRamLimit (3 GiB) the PC keeps an MMIO hole up to
// 4 GiB (IOAPIC, LAPIC, PCI windows), so larger guests get the rest of their RAM from 4 GiB up.
// The memfd lets snapshots, migration and inter-VM sharing map the same pages later.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "memory/object_access.hpp"

namespace strata {

struct RamRegion {
    uint64_t gpa = 0;          // first guest-physical address
    uint64_t size = 0;         // bytes
    uint8_t* host = nullptr;   // where the VMM sees it
    uint64_t file_offset = 0;  // offset of the region in the memfd
};

class GuestMemory : public ObjectAccess<GuestMemory> {
public:
    static constexpr uint64_t kLowRamLimit = 0xC000'0000;     // 3 GiB: start of the MMIO hole
    static constexpr uint64_t kHighRamStart = 0x1'0000'0000;  // 4 GiB
    static constexpr uint64_t kMinRamSize = 1024 * 1024;                 // 1 MiB
    static constexpr uint64_t kMaxRamSize = 1024ull * 1024 * 1024 * 1024;  // 1 TiB
    static constexpr uint64_t kRamGranule = 4096;                        // sizes are whole pages
    // Whether create() accepts `ram_size`: kMinRamSize to kMaxRamSize, in whole kRamGranules.
    [[nodiscard]] static constexpr bool valid_size(uint64_t ram_size) {
        return ram_size >= kMinRamSize && ram_size <= kMaxRamSize && ram_size % kRamGranule == 0;
    }

    // Creates `ram_size` bytes of zeroed guest RAM laid out as described above.
    static Result<GuestMemory> create(uint64_t ram_size);
    // Guest RAM of `ram_size` bytes mapped copy-on-write from the file `fd` (a snapshot's RAM,
    // laid out as the memfd is), which it takes: pages the guest only reads stay shared with the
    // host's page cache, and what it writes never reaches the file. fd() is then -1: the pages
    // are not all in one file any more.
    static Result<GuestMemory> map_private(int fd, uint64_t ram_size);

    GuestMemory(GuestMemory&& other) noexcept;
    GuestMemory& operator=(GuestMemory&& other) noexcept;
    GuestMemory(const GuestMemory&) = delete;
    GuestMemory& operator=(const GuestMemory&) = delete;
    ~GuestMemory();

    [[nodiscard]] std::span<const RamRegion> regions() const { return regions_; }
    [[nodiscard]] uint64_t ram_size() const { return ram_size_; }
    // The memfd behind all of RAM, or -1 (map_private).
    [[nodiscard]] int fd() const { return private_ ? -1 : fd_; }
    // One past the highest RAM address.
    [[nodiscard]] uint64_t end() const;

    // The host view of [gpa, gpa + length), which must lie within one RAM region. Fails with a
    // message naming the range when it does not (MMIO hole, past the end, or wrapping).
    [[nodiscard]] Result<std::span<uint8_t>> translate(uint64_t gpa, uint64_t length) const;

    // True when [gpa, gpa + length) is all RAM of one region.
    [[nodiscard]] bool contains(uint64_t gpa, uint64_t length) const;

    // Copies bytes in and out; the range may cross from one region into an adjacent one only if
    // both are RAM (they never are adjacent in the PC layout, so in practice: one region).
    [[nodiscard]] Result<void> read(uint64_t gpa, std::span<uint8_t> out) const;
    [[nodiscard]] Result<void> write(uint64_t gpa, std::span<const uint8_t> in) const;

private:
    GuestMemory() = default;
    void release();
    [[nodiscard]] static Result<GuestMemory> map(int fd, uint64_t ram_size, bool copy_on_write);

    int fd_ = -1;
    bool private_ = false;
    uint64_t ram_size_ = 0;
    std::vector<RamRegion> regions_;
};

}  // namespace strata
