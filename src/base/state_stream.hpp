// The byte encoding of device and vCPU state in a snapshot (docs/snapshot-format.md): fixed-width
// little-endian integers, booleans as one byte 0 or 1, byte strings with a length before them.
// Each device encodes its own State next to its definition; the snapshot files around these bytes
// (sections, checksums, versions) are src/snapshot's.
//
// A snapshot is untrusted input: StateReader never reads past its bytes, and the first thing that
// is wrong (too short, a boolean that is neither 0 nor 1, a length over its bound, a value the
// decoder refuses) makes it fail for good, naming the field; later reads give zeros, so a decoder
// reads on without checking each field and asks finish() once at its end.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"

namespace strata {

class StateWriter {
public:
    void u8(uint8_t value) { bytes_.push_back(value); }
    void u16(uint16_t value) { put(value, 2); }
    void u32(uint32_t value) { put(value, 4); }
    void u64(uint64_t value) { put(value, 8); }
    void i64(int64_t value) { put(static_cast<uint64_t>(value), 8); }
    void boolean(bool value) { u8(value ? 1 : 0); }
    // A boolean "present", then the value only when there is one.
    void optional_u64(std::optional<uint64_t> value) {
        boolean(value.has_value());
        if (value) u64(*value);
    }
    void optional_i64(std::optional<int64_t> value) {
        boolean(value.has_value());
        if (value) i64(*value);
    }
    // Raw bytes of a size both sides know.
    void bytes(std::span<const uint8_t> data);
    // A u32 length, then the bytes.
    void blob(std::span<const uint8_t> data);
    void string(std::string_view text);

    [[nodiscard]] std::span<const uint8_t> view() const { return bytes_; }
    [[nodiscard]] std::vector<uint8_t> take() { return std::move(bytes_); }

private:
    void put(uint64_t value, unsigned width);
    std::vector<uint8_t> bytes_;
};

class StateReader {
public:
    // `what` names the bytes in errors ("COM1", "vCPU 1").
    StateReader(std::span<const uint8_t> bytes, std::string what) : bytes_(bytes), what_(std::move(what)) {}

    uint8_t u8(std::string_view field) { return static_cast<uint8_t>(get(1, field)); }
    uint16_t u16(std::string_view field) { return static_cast<uint16_t>(get(2, field)); }
    uint32_t u32(std::string_view field) { return static_cast<uint32_t>(get(4, field)); }
    uint64_t u64(std::string_view field) { return get(8, field); }
    int64_t i64(std::string_view field) { return static_cast<int64_t>(get(8, field)); }
    bool boolean(std::string_view field);
    std::optional<uint64_t> optional_u64(std::string_view field) {
        if (!boolean(field)) return std::nullopt;
        return u64(field);
    }
    std::optional<int64_t> optional_i64(std::string_view field) {
        if (!boolean(field)) return std::nullopt;
        return i64(field);
    }
    // A u8 that must be at most `max` (an enum's last value).
    uint8_t u8_at_most(uint8_t max, std::string_view field);
    void bytes(std::span<uint8_t> out, std::string_view field);
    template <size_t N>
    std::array<uint8_t, N> array(std::string_view field) {
        std::array<uint8_t, N> out{};
        bytes(out, field);
        return out;
    }
    // What StateWriter::blob / string wrote, at most `max` bytes.
    std::vector<uint8_t> blob(size_t max, std::string_view field);
    std::string string(size_t max, std::string_view field);
    // A count written as a u32 that must be at most `max`.
    uint32_t count(uint32_t max, std::string_view field);

    // Refuses the state: the first failure is the one reported.
    void fail(std::string message);
    void check(bool condition, std::string_view message) {
        if (!condition) fail(std::string(message));
    }
    [[nodiscard]] bool ok() const { return error_.empty(); }
    [[nodiscard]] size_t remaining() const { return bytes_.size() - offset_; }
    // Every byte read and nothing refused; else the error, prefixed with `what`.
    [[nodiscard]] Result<void> finish() const;

private:
    uint64_t get(unsigned width, std::string_view field);
    bool take(size_t length, std::string_view field);

    std::span<const uint8_t> bytes_;
    size_t offset_ = 0;
    std::string what_;
    std::string error_;
};

}  // namespace strata
