// Overflow-safe arithmetic for everything a guest or an image controls.
#pragma once

#include <cstdint>
#include <optional>

namespace strata {

// base + size, or nothing when it wraps.
[[nodiscard]] constexpr std::optional<uint64_t> checked_add(uint64_t base, uint64_t size) {
    uint64_t sum = 0;
    if (__builtin_add_overflow(base, size, &sum)) return std::nullopt;
    return sum;
}

[[nodiscard]] constexpr std::optional<uint64_t> checked_mul(uint64_t a, uint64_t b) {
    uint64_t product = 0;
    if (__builtin_mul_overflow(a, b, &product)) return std::nullopt;
    return product;
}

// True when [offset, offset + length) lies inside [0, limit), without overflow.
[[nodiscard]] constexpr bool range_within(uint64_t offset, uint64_t length, uint64_t limit) {
    return offset <= limit && length <= limit - offset;
}

[[nodiscard]] constexpr uint64_t align_up(uint64_t value, uint64_t alignment) {
    return (value + alignment - 1) & ~(alignment - 1);
}

constexpr uint64_t KiB = 1024;
constexpr uint64_t MiB = 1024 * KiB;
constexpr uint64_t GiB = 1024 * MiB;
constexpr uint64_t TiB = 1024 * GiB;

}  // namespace strata
