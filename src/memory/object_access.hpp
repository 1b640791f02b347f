// Typed reads and writes of guest memory on top of a byte interface: whatever has
// `read(gpa, span<uint8_t>)` and `write(gpa, span<const uint8_t>)` returning Result<void>
// (GuestMemory, GuestDma) gets read_obj<T>/write_obj<T> for trivially copyable T, going through
// its own read and write (so GuestDma's writes still reach its observers).
#pragma once

#include <cstdint>
#include <span>
#include <type_traits>

#include "base/error.hpp"

namespace strata {

template <class Self>
class ObjectAccess {
public:
    template <class T>
        requires std::is_trivially_copyable_v<T>
    [[nodiscard]] Result<T> read_obj(uint64_t gpa) const {
        T value;
        auto r = self().read(gpa, std::span(reinterpret_cast<uint8_t*>(&value), sizeof(T)));
        if (!r) return std::unexpected(r.error());
        return value;
    }
    template <class T>
        requires std::is_trivially_copyable_v<T>
    [[nodiscard]] Result<void> write_obj(uint64_t gpa, const T& value) const {
        return self().write(gpa, std::span(reinterpret_cast<const uint8_t*>(&value), sizeof(T)));
    }

private:
    [[nodiscard]] const Self& self() const { return static_cast<const Self&>(*this); }
};

}  // namespace strata
