// Little-endian access to byte buffers: how devices assemble register values from a bus access of
// any width, and how loaders read image headers without alignment or aliasing trouble.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

namespace strata {

// Reads up to 8 bytes of `data` as a little-endian integer.
[[nodiscard]] inline uint64_t load_le(std::span<const uint8_t> data) {
    uint64_t value = 0;
    for (size_t i = 0; i < data.size() && i < 8; ++i) value |= uint64_t{data[i]} << (8 * i);
    return value;
}

// Writes the low data.size() bytes of `value` to `data`, little-endian.
inline void store_le(std::span<uint8_t> data, uint64_t value) {
    for (size_t i = 0; i < data.size(); ++i) data[i] = i < 8 ? static_cast<uint8_t>(value >> (8 * i)) : 0;
}

// Reads a trivially copyable T at `offset`; the caller has bounds-checked.
template <class T>
    requires std::is_trivially_copyable_v<T>
[[nodiscard]] T load_struct(std::span<const uint8_t> data, size_t offset = 0) {
    T value;
    std::memcpy(&value, data.data() + offset, sizeof(T));
    return value;
}

}  // namespace strata
