#include "devices/pci/msix.hpp"

#include <algorithm>

#include "base/bytes.hpp"
#include "base/checked.hpp"
#include "base/error.hpp"

namespace strata {
namespace {

// Message Control (§6.8.2.3).
constexpr uint16_t kControlEnable = 1u << 15;
constexpr uint16_t kControlFunctionMask = 1u << 14;
constexpr uint8_t kMessageControl = 2;
constexpr uint8_t kTableLocation = 4;
constexpr uint8_t kPbaLocation = 8;

}  // namespace

MsixCapability::MsixCapability(unsigned vectors, uint8_t table_bar, uint32_t table_offset, uint8_t pba_bar,
                               uint32_t pba_offset, MsiController& controller)
    : entries_(vectors), table_location_(table_offset | table_bar), pba_location_(pba_offset | pba_bar) {
    if (vectors == 0 || vectors > kMaxVectors || table_bar > 5 || pba_bar > 5 || table_offset % 8 || pba_offset % 8)
        panic("MsixCapability: bad table layout");
    for (Entry& e : entries_) e.route = controller.create_route();
}

void MsixCapability::read(uint8_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex_);
    std::array<uint8_t, 12> bytes{};
    uint16_t control = static_cast<uint16_t>((entries_.size() - 1) | (function_masked_ ? kControlFunctionMask : 0) |
                                             (enabled_ ? kControlEnable : 0));
    store_le(std::span(bytes).subspan(kMessageControl, 2), control);
    store_le(std::span(bytes).subspan(kTableLocation, 4), table_location_);
    store_le(std::span(bytes).subspan(kPbaLocation, 4), pba_location_);
    for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < bytes.size() ? bytes[offset + i] : 0;
}

void MsixCapability::write(uint8_t offset, std::span<const uint8_t> data) {
    // Only Message Control's upper byte (Enable, Function Mask) is writable.
    for (size_t i = 0; i < data.size(); ++i) {
        if (offset + i != kMessageControl + 1u) continue;
        std::lock_guard lock(mutex_);
        enabled_ = data[i] & (kControlEnable >> 8);
        function_masked_ = data[i] & (kControlFunctionMask >> 8);
        deliver_unmasked();
    }
}

void MsixCapability::save_state(StateWriter& out) const {
    std::lock_guard lock(mutex_);
    out.boolean(enabled_);
    out.boolean(function_masked_);
    out.u32(static_cast<uint32_t>(entries_.size()));
    for (const Entry& e : entries_) {
        out.u32(e.address_low);
        out.u32(e.address_high);
        out.u32(e.data);
        out.u32(e.control);
        out.boolean(e.pending);
    }
}

std::function<void()> MsixCapability::load_state(StateReader& in) {
    struct Saved {
        uint32_t address_low, address_high, data, control;
        bool pending;
    };
    bool enabled = in.boolean("MSI-X enable");
    bool function_masked = in.boolean("MSI-X function mask");
    uint32_t count = in.count(kMaxVectors, "MSI-X table size");
    if (in.ok() && count != entries_.size())
        in.fail(fmt::format("the MSI-X table has {} vectors, this function has {}", count, entries_.size()));
    std::vector<Saved> saved;
    for (uint32_t v = 0; v < count && in.ok(); ++v) {
        Saved e{in.u32("MSI-X message address"), in.u32("MSI-X upper address"), in.u32("MSI-X message data"),
                in.u32("MSI-X vector control"), in.boolean("MSI-X pending bit")};
        in.check((e.address_low & 0x3) == 0 && (e.control & ~1u) == 0,
                 fmt::format("MSI-X vector {} has reserved bits set", v));
        saved.push_back(e);
    }
    return [this, enabled, function_masked, saved = std::move(saved)] {
        std::lock_guard lock(mutex_);
        enabled_ = enabled;
        function_masked_ = function_masked;
        for (size_t v = 0; v < entries_.size() && v < saved.size(); ++v) {
            Entry& e = entries_[v];
            e.address_low = saved[v].address_low;
            e.address_high = saved[v].address_high;
            e.data = saved[v].data;
            e.control = saved[v].control;
            e.pending = saved[v].pending;
            e.route->set_message(uint64_t{e.address_high} << 32 | e.address_low, e.data);
        }
        deliver_unmasked();
    };
}

void MsixCapability::table_read(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t at = offset + i;
        data[i] = 0;
        if (!range_within(at, 1, table_size())) continue;
        const Entry& e = entries_[at / kEntrySize];
        uint32_t words[4] = {e.address_low, e.address_high, e.data, e.control};
        data[i] = static_cast<uint8_t>(words[(at % kEntrySize) / 4] >> (8 * (at % 4)));
    }
}

void MsixCapability::table_write(uint64_t offset, std::span<const uint8_t> data) {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t at = offset + i;
        if (!range_within(at, 1, table_size())) continue;
        Entry& e = entries_[at / kEntrySize];
        uint32_t* words[4] = {&e.address_low, &e.address_high, &e.data, &e.control};
        uint32_t& word = *words[(at % kEntrySize) / 4];
        unsigned shift = 8 * (at % 4);
        word = (word & ~(0xffu << shift)) | (uint32_t{data[i]} << shift);
        e.address_low &= ~0x3u;  // DWORD-aligned message address
        e.control &= 1;          // bits 31:1 reserved
    }
    // The entries written take their new messages; a vector unmasked with its bit pending fires.
    uint64_t first = offset / kEntrySize;
    uint64_t last = (offset + data.size() - 1) / kEntrySize;
    for (uint64_t v = first; v <= last && v < entries_.size(); ++v) {
        Entry& e = entries_[v];
        e.route->set_message(uint64_t{e.address_high} << 32 | e.address_low, e.data);
    }
    deliver_unmasked();
}

void MsixCapability::pba_read(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t bit = (offset + i) * 8;
        uint8_t byte = 0;
        for (unsigned b = 0; b < 8; ++b)
            if (bit + b < entries_.size() && entries_[bit + b].pending) byte |= static_cast<uint8_t>(1u << b);
        data[i] = byte;
    }
}

bool MsixCapability::enabled() const {
    std::lock_guard lock(mutex_);
    return enabled_;
}

void MsixCapability::notify(unsigned vector) {
    std::lock_guard lock(mutex_);
    if (!enabled_ || vector >= entries_.size()) return;
    Entry& e = entries_[vector];
    if (function_masked_ || e.masked()) {
        e.pending = true;
        return;
    }
    e.route->trigger();
}

void MsixCapability::deliver_unmasked() {
    if (!enabled_ || function_masked_) return;
    for (Entry& e : entries_) {
        if (!e.pending || e.masked()) continue;
        e.pending = false;
        e.route->trigger();
    }
}

void MsixCapability::reset() {
    std::lock_guard lock(mutex_);
    enabled_ = false;
    function_masked_ = false;
    for (Entry& e : entries_) {
        e.address_low = e.address_high = e.data = 0;
        e.control = 1;
        e.pending = false;
        e.route->set_message(0, 0);
    }
}

}  // namespace strata
