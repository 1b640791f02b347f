#include "devices/pci/msi.hpp"

#include <array>

#include "base/bytes.hpp"

namespace strata {
namespace {

constexpr uint16_t kEnable = 1u << 0;
constexpr uint16_t kMultipleMessageEnable = 7u << 4;
constexpr uint16_t kAddress64 = 1u << 7;
constexpr uint16_t kPerVectorMasking = 1u << 8;

}  // namespace

void MsiCapability::read(uint8_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex_);
    std::array<uint8_t, 24> bytes{};
    store_le(std::span(bytes).subspan(kControl, 2), control_ | kAddress64 | kPerVectorMasking);
    store_le(std::span(bytes).subspan(kAddressLow, 4), address_low_);
    store_le(std::span(bytes).subspan(kAddressHigh, 4), address_high_);
    store_le(std::span(bytes).subspan(kData, 2), data_);
    bytes[kMask] = masked_ ? 1 : 0;
    bytes[kPending] = pending_ ? 1 : 0;
    for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < bytes.size() ? bytes[offset + i] : 0;
}

void MsiCapability::write(uint8_t offset, std::span<const uint8_t> data) {
    std::lock_guard lock(mutex_);
    auto set_byte = [](auto& field, unsigned byte, uint8_t value) {
        using T = std::remove_reference_t<decltype(field)>;
        field = static_cast<T>((field & ~(T{0xff} << (8 * byte))) | (T{value} << (8 * byte)));
    };
    for (size_t i = 0; i < data.size(); ++i) {
        unsigned at = offset + static_cast<unsigned>(i);
        uint8_t value = data[i];
        if (at < kAddressLow) {
            set_byte(control_, at - kControl, value);
            control_ &= kEnable | kMultipleMessageEnable;
        } else if (at < kAddressHigh) {
            set_byte(address_low_, at - kAddressLow, value);
            address_low_ &= ~0x3u;
        } else if (at < kData) {
            set_byte(address_high_, at - kAddressHigh, value);
        } else if (at < kData + 2u) {
            set_byte(data_, at - kData, value);
        } else if (at == kMask) {
            masked_ = value & 1;
        }
    }
    deliver_if_unmasked();
}

bool MsiCapability::enabled() const {
    std::lock_guard lock(mutex_);
    return control_ & kEnable;
}

void MsiCapability::notify() {
    std::lock_guard lock(mutex_);
    if (!(control_ & kEnable)) return;
    pending_ = true;
    deliver_if_unmasked();
}

void MsiCapability::deliver_if_unmasked() {
    if (!(control_ & kEnable) || masked_ || !pending_) return;
    pending_ = false;
    controller_.send(uint64_t{address_high_} << 32 | address_low_, data_);
}

void MsiCapability::save_state(StateWriter& out) const {
    std::lock_guard lock(mutex_);
    out.u16(control_);
    out.u32(address_low_);
    out.u32(address_high_);
    out.u16(data_);
    out.boolean(masked_);
    out.boolean(pending_);
}

std::function<void()> MsiCapability::load_state(StateReader& in) {
    uint16_t control = in.u16("MSI message control");
    uint32_t address_low = in.u32("MSI message address");
    uint32_t address_high = in.u32("MSI message upper address");
    uint16_t data = in.u16("MSI message data");
    bool masked = in.boolean("MSI mask");
    bool pending = in.boolean("MSI pending");
    in.check((control & ~(kEnable | kMultipleMessageEnable)) == 0, "MSI message control has read-only bits set");
    in.check((address_low & 0x3) == 0, "MSI message address is not dword-aligned");
    return [=, this] {
        std::lock_guard lock(mutex_);
        control_ = control;
        address_low_ = address_low;
        address_high_ = address_high;
        data_ = data;
        masked_ = masked;
        pending_ = pending;
        deliver_if_unmasked();
    };
}

void MsiCapability::reset() {
    std::lock_guard lock(mutex_);
    control_ = 0;
    address_low_ = address_high_ = 0;
    data_ = 0;
    masked_ = pending_ = false;
}

}  // namespace strata
