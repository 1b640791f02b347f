#include "devices/legacy/fw_cfg.hpp"

#include <algorithm>

#include "base/bytes.hpp"

namespace strata {
namespace {

std::vector<uint8_t> le_bytes(uint64_t value, size_t size) {
    std::vector<uint8_t> bytes(size);
    store_le(bytes, value);
    return bytes;
}

}  // namespace

FwCfg::FwCfg(uint64_t ram_size, uint16_t cpus) {
    items_[static_cast<uint16_t>(Key::Signature)] = {'Q', 'E', 'M', 'U'};
    items_[static_cast<uint16_t>(Key::Id)] = le_bytes(1, 4);
    items_[static_cast<uint16_t>(Key::RamSize)] = le_bytes(ram_size, 8);
    items_[static_cast<uint16_t>(Key::NbCpus)] = le_bytes(cpus, 2);
    items_[static_cast<uint16_t>(Key::MaxCpus)] = le_bytes(cpus, 2);
}

void FwCfg::add_item(uint16_t key, std::vector<uint8_t> data) {
    std::lock_guard lock(mutex_);
    items_[key] = std::move(data);
}

FwCfg::State FwCfg::state() const {
    std::lock_guard lock(mutex_);
    return {.selector = selector_, .position = position_};
}

Result<void> FwCfg::set_state(const State& state) {
    std::lock_guard lock(mutex_);
    selector_ = state.selector;
    position_ = state.position;
    return {};
}

void FwCfg::read(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex_);
    std::ranges::fill(data, uint8_t{0});
    if (offset == static_cast<uint64_t>(Reg::Selector)) {
        store_le(data.first(std::min<size_t>(data.size(), 2)), selector_);
        return;
    }
    if (offset != static_cast<uint64_t>(Reg::Data) || data.empty()) return;
    // One byte per access: the data port is 8 bits wide on x86, and each read advances.
    auto item = items_.find(selector_);
    if (item != items_.end() && position_ < item->second.size()) data[0] = item->second[position_];
    if (position_ < SIZE_MAX) ++position_;
}

void FwCfg::write(uint64_t offset, std::span<const uint8_t> data) {
    if (offset != static_cast<uint64_t>(Reg::Selector) || data.empty()) return;
    std::lock_guard lock(mutex_);
    selector_ = static_cast<uint16_t>(load_le(data.first(std::min<size_t>(data.size(), 2))));
    position_ = 0;
}

}  // namespace strata
