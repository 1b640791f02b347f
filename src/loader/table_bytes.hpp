// Byte-level helpers for firmware tables (MP, ACPI, multiboot): appending packed structures and
// the 8-bit checksums both MP 1.4 and ACPI use ("all bytes of the structure sum to zero").
#pragma once

#include <cstdint>
#include <cstring>
#include <numeric>
#include <span>
#include <type_traits>
#include <vector>

namespace strata {

// Appends the bytes of a packed, trivially copyable structure.
template <class T>
    requires std::is_trivially_copyable_v<T>
void append_bytes(std::vector<uint8_t>& out, const T& value) {
    size_t at = out.size();
    out.resize(at + sizeof(T));
    std::memcpy(out.data() + at, &value, sizeof(T));
}

// The sum of `bytes` modulo 256.
[[nodiscard]] inline uint8_t byte_sum(std::span<const uint8_t> bytes) {
    return static_cast<uint8_t>(std::accumulate(bytes.begin(), bytes.end(), 0u));
}

// Stores at `checksum_at` the byte that makes `bytes` sum to zero (the checksum byte counts as 0).
inline void fix_checksum(std::span<uint8_t> bytes, size_t checksum_at) {
    bytes[checksum_at] = 0;
    bytes[checksum_at] = static_cast<uint8_t>(0x100u - byte_sum(bytes));
}

// Copies a short ASCII identifier into a fixed, space- or zero-padded field.
template <size_t N>
void set_id(uint8_t (&field)[N], const char* text, char pad = ' ') {
    size_t length = std::strlen(text);
    for (size_t i = 0; i < N; ++i) field[i] = static_cast<uint8_t>(i < length ? text[i] : pad);
}

}  // namespace strata
