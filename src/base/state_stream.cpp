#include "base/state_stream.hpp"

#include <algorithm>
#include <cstring>

namespace strata {

void StateWriter::put(uint64_t value, unsigned width) {
    for (unsigned i = 0; i < width; ++i) bytes_.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

// resize and memcpy rather than vector::insert: g++ 12 at -O3 inlines insert's reallocation into
// its callers and then warns (-Wstringop-overflow) about a copy into the old, smaller buffer.
void StateWriter::bytes(std::span<const uint8_t> data) {
    if (data.empty()) return;
    size_t offset = bytes_.size();
    bytes_.resize(offset + data.size());
    std::memcpy(bytes_.data() + offset, data.data(), data.size());
}

void StateWriter::blob(std::span<const uint8_t> data) {
    u32(static_cast<uint32_t>(data.size()));
    bytes(data);
}

void StateWriter::string(std::string_view text) {
    blob({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

bool StateReader::take(size_t length, std::string_view field) {
    if (!ok()) return false;
    if (length > remaining()) {
        fail(fmt::format("{} is cut off ({} bytes needed, {} left)", field, length, remaining()));
        return false;
    }
    return true;
}

uint64_t StateReader::get(unsigned width, std::string_view field) {
    if (!take(width, field)) return 0;
    uint64_t value = 0;
    for (unsigned i = 0; i < width; ++i) value |= uint64_t{bytes_[offset_ + i]} << (8 * i);
    offset_ += width;
    return value;
}

bool StateReader::boolean(std::string_view field) {
    uint8_t value = u8(field);
    if (value > 1) fail(fmt::format("{} is {}, not a boolean (0 or 1)", field, value));
    return value == 1;
}

uint8_t StateReader::u8_at_most(uint8_t max, std::string_view field) {
    uint8_t value = u8(field);
    if (value > max) {
        fail(fmt::format("{} is {}, past its last value {}", field, value, max));
        return 0;
    }
    return value;
}

void StateReader::bytes(std::span<uint8_t> out, std::string_view field) {
    if (out.empty()) return;  // an empty blob's span may have no data() to memset or copy to
    if (!take(out.size(), field)) {
        std::memset(out.data(), 0, out.size());
        return;
    }
    std::memcpy(out.data(), bytes_.data() + offset_, out.size());
    offset_ += out.size();
}

uint32_t StateReader::count(uint32_t max, std::string_view field) {
    uint32_t value = u32(field);
    if (value > max) {
        fail(fmt::format("{} is {}, more than the {} allowed", field, value, max));
        return 0;
    }
    return value;
}

std::vector<uint8_t> StateReader::blob(size_t max, std::string_view field) {
    uint32_t length = count(static_cast<uint32_t>(std::min<size_t>(max, UINT32_MAX)), field);
    std::vector<uint8_t> out;
    if (!take(length, field)) return out;
    out.assign(bytes_.begin() + static_cast<ptrdiff_t>(offset_), bytes_.begin() + static_cast<ptrdiff_t>(offset_ + length));
    offset_ += length;
    return out;
}

std::string StateReader::string(size_t max, std::string_view field) {
    std::vector<uint8_t> raw = blob(max, field);
    return {raw.begin(), raw.end()};
}

void StateReader::fail(std::string message) {
    if (ok()) error_ = std::move(message);
}

Result<void> StateReader::finish() const {
    if (!ok()) return strata::fail("{}: {}", what_, error_);
    if (remaining() != 0) return strata::fail("{}: {} bytes left over after its state", what_, remaining());
    return {};
}

}  // namespace strata
