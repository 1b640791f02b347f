#include "bus/bus.hpp"

#include <algorithm>

#include "base/checked.hpp"

namespace strata {

Result<void> Bus::add(uint64_t base, uint64_t size, std::shared_ptr<BusDevice> device, std::string device_name) {
    if (size == 0) return fail("{} bus: {} has an empty range at {:#x}", name_, device_name, base);
    auto end = checked_add(base, size);
    if (!end) return fail("{} bus: {} range {:#x}+{:#x} wraps around", name_, device_name, base, size);
    if (!device) return fail("{} bus: {} has no device", name_, device_name);

    auto next = ranges_.lower_bound(base);
    if (next != ranges_.end() && next->second.base < *end)
        return fail("{} bus: {} at [{:#x}, {:#x}) overlaps {} at [{:#x}, {:#x})", name_, device_name, base, *end,
                    next->second.name, next->second.base, next->second.base + next->second.size);
    if (next != ranges_.begin()) {
        const auto& previous = std::prev(next)->second;
        if (previous.base + previous.size > base)
            return fail("{} bus: {} at [{:#x}, {:#x}) overlaps {} at [{:#x}, {:#x})", name_, device_name, base, *end,
                        previous.name, previous.base, previous.base + previous.size);
    }
    ranges_.emplace(base, Range{base, size, std::move(device), std::move(device_name)});
    return {};
}

const Bus::Range* Bus::find(uint64_t address, uint64_t length) const {
    auto it = ranges_.upper_bound(address);
    if (it == ranges_.begin()) return nullptr;
    const Range& range = std::prev(it)->second;
    if (!range_within(address - range.base, length, range.size)) return nullptr;
    return &range;
}

bool Bus::read(uint64_t address, std::span<uint8_t> data) const {
    const Range* range = find(address, data.size());
    if (!range) {
        unclaimed_.reads.fetch_add(1, std::memory_order_relaxed);
        if (fallback_)
            fallback_->read(address, data);
        else
            std::ranges::fill(data, uint8_t{0xff});
        return false;
    }
    range->count->reads.fetch_add(1, std::memory_order_relaxed);
    range->device->read(address - range->base, data);
    return true;
}

bool Bus::write(uint64_t address, std::span<const uint8_t> data) const {
    const Range* range = find(address, data.size());
    if (!range) {
        unclaimed_.writes.fetch_add(1, std::memory_order_relaxed);
        if (fallback_) fallback_->write(address, data);
        return false;
    }
    range->count->writes.fetch_add(1, std::memory_order_relaxed);
    range->device->write(address - range->base, data);
    return true;
}

}  // namespace strata
