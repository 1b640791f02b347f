#include "memory/guest_dma.hpp"

#include <atomic>
#include <cstring>

namespace strata {

Result<void> GuestDma::read(uint64_t gpa, std::span<uint8_t> out) const { return memory_.read(gpa, out); }

Result<void> GuestDma::write(uint64_t gpa, std::span<const uint8_t> in) const {
    auto host = memory_.translate(gpa, in.size());
    if (!host) return std::unexpected(host.error());
    if (!in.empty()) std::memcpy(host->data(), in.data(), in.size());
    written(gpa, in.size());
    return {};
}

Result<std::span<const uint8_t>> GuestDma::view(uint64_t gpa, uint64_t length) const {
    auto host = memory_.translate(gpa, length);
    if (!host) return std::unexpected(host.error());
    return std::span<const uint8_t>(*host);
}

Result<std::span<uint8_t>> GuestDma::view_for_write(uint64_t gpa, uint64_t length) const {
    return memory_.translate(gpa, length);
}

void GuestDma::written(uint64_t gpa, uint64_t length) const {
    if (length == 0) return;
    for (MemoryWriteObserver* observer : observers_) observer->written(gpa, length);
}

Result<uint16_t> GuestDma::load_acquire_u16(uint64_t gpa) const {
    if (gpa % 2 != 0) return fail("guest address {:#x} of a 16-bit ring index is not 2-byte aligned", gpa);
    auto host = memory_.translate(gpa, 2);
    if (!host) return std::unexpected(host.error());
    // Guest RAM is a shared mapping the vCPUs write concurrently: access it as an atomic object.
    return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(host->data())).load(std::memory_order_acquire);
}

Result<void> GuestDma::store_release_u16(uint64_t gpa, uint16_t value) const {
    if (gpa % 2 != 0) return fail("guest address {:#x} of a 16-bit ring index is not 2-byte aligned", gpa);
    auto host = memory_.translate(gpa, 2);
    if (!host) return std::unexpected(host.error());
    std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(host->data())).store(value, std::memory_order_release);
    written(gpa, 2);
    return {};
}

}  // namespace strata
