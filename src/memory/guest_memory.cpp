#include "memory/guest_memory.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "base/checked.hpp"
#include "base/units.hpp"

namespace strata {

Result<GuestMemory> GuestMemory::create(uint64_t ram_size) {
    if (!valid_size(ram_size))
        return fail("guest memory of {} is not allowed (1 MiB to 1 TiB, a multiple of 4 KiB)", format_size(ram_size));
    int fd = memfd_create("strata-guest-ram", MFD_CLOEXEC);
    if (fd < 0) return fail_errno("memfd_create for guest RAM");
    if (ftruncate(fd, static_cast<off_t>(ram_size)) != 0) {
        close(fd);
        return fail_errno("sizing guest RAM memfd to {} bytes", ram_size);
    }
    return map(fd, ram_size, false);
}

Result<GuestMemory> GuestMemory::map_private(int fd, uint64_t ram_size) {
    if (!valid_size(ram_size)) {
        close(fd);
        return fail("guest memory of {} is not allowed (1 MiB to 1 TiB, a multiple of 4 KiB)", format_size(ram_size));
    }
    return map(fd, ram_size, true);
}

Result<GuestMemory> GuestMemory::map(int fd, uint64_t ram_size, bool copy_on_write) {
    GuestMemory memory;  // owns fd from here
    memory.fd_ = fd;
    memory.private_ = copy_on_write;
    memory.ram_size_ = ram_size;

    uint64_t low = std::min(ram_size, kLowRamLimit);
    memory.regions_.push_back({.gpa = 0, .size = low, .host = nullptr, .file_offset = 0});
    if (ram_size > low)
        memory.regions_.push_back({.gpa = kHighRamStart, .size = ram_size - low, .host = nullptr, .file_offset = low});

    for (auto& region : memory.regions_) {
        void* host = mmap(nullptr, region.size, PROT_READ | PROT_WRITE,
                          (copy_on_write ? MAP_PRIVATE : MAP_SHARED) | MAP_NORESERVE, memory.fd_,
                          static_cast<off_t>(region.file_offset));
        if (host == MAP_FAILED) return fail_errno("mapping {} bytes of guest RAM", region.size);
        region.host = static_cast<uint8_t*>(host);
        // Transparent huge pages cut TLB misses for the guest; failure is harmless. (A private
        // file mapping gets them only for the pages it copies.)
        madvise(host, region.size, MADV_HUGEPAGE);
    }
    return memory;
}

GuestMemory::GuestMemory(GuestMemory&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      private_(other.private_),
      ram_size_(other.ram_size_),
      regions_(std::move(other.regions_)) {
    other.regions_.clear();
}

GuestMemory& GuestMemory::operator=(GuestMemory&& other) noexcept {
    if (this != &other) {
        release();
        fd_ = std::exchange(other.fd_, -1);
        private_ = other.private_;
        ram_size_ = other.ram_size_;
        regions_ = std::move(other.regions_);
        other.regions_.clear();
    }
    return *this;
}

GuestMemory::~GuestMemory() { release(); }

void GuestMemory::release() {
    for (auto& region : regions_)
        if (region.host) munmap(region.host, region.size);
    regions_.clear();
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
}

uint64_t GuestMemory::end() const { return regions_.empty() ? 0 : regions_.back().gpa + regions_.back().size; }

bool GuestMemory::contains(uint64_t gpa, uint64_t length) const {
    return std::ranges::any_of(regions_, [&](const RamRegion& region) {
        return gpa >= region.gpa && range_within(gpa - region.gpa, length, region.size);
    });
}

Result<std::span<uint8_t>> GuestMemory::translate(uint64_t gpa, uint64_t length) const {
    for (const auto& region : regions_) {
        if (gpa >= region.gpa && range_within(gpa - region.gpa, length, region.size))
            return std::span(region.host + (gpa - region.gpa), length);
    }
    if (!checked_add(gpa, length)) return fail("guest range {:#x}+{:#x} wraps around", gpa, length);
    return fail("guest range [{:#x}, {:#x}) is not inside guest RAM", gpa, gpa + length);
}

Result<void> GuestMemory::read(uint64_t gpa, std::span<uint8_t> out) const {
    auto host = translate(gpa, out.size());
    if (!host) return std::unexpected(host.error());
    if (!out.empty()) std::memcpy(out.data(), host->data(), out.size());
    return {};
}

Result<void> GuestMemory::write(uint64_t gpa, std::span<const uint8_t> in) const {
    auto host = translate(gpa, in.size());
    if (!host) return std::unexpected(host.error());
    if (!in.empty()) std::memcpy(host->data(), in.data(), in.size());
    return {};
}

}  // namespace strata
