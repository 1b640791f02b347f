#include "devices/irqchip/ioapic.hpp"

#include <algorithm>
#include <optional>

#include "base/error.hpp"

namespace strata {
namespace {

constexpr uint64_t kRegisterWidth = 4;  // IOREGSEL, IOWIN and EOI are 32-bit registers
constexpr unsigned kMaxRedirectionEntry = IoApic::kPins - 1;
constexpr uint8_t kFirstRedirectionRegister = static_cast<uint8_t>(IoApic::Reg::RedirectionTable);
constexpr uint8_t kLastRedirectionRegister = kFirstRedirectionRegister + 2 * IoApic::kPins - 1;
constexpr unsigned kIdShift = 24;
constexpr uint8_t kIdMask = 0x0f;              // 82093AA §3.2.1: bits 27-24, the rest reserved
constexpr uint32_t kArbitrationIdMask = 0x0f;  // 82093AA §3.2.3: bits 27-24

// What the guest may write in an entry's low half: vector, delivery mode, destination mode,
// polarity, trigger mode, mask. Delivery status (12) and remote IRR (14) are read-only.
constexpr uint64_t kLowWritable = IoApic::kVectorMask | (uint64_t{7} << IoApic::kDeliveryModeShift) |
                                  IoApic::kLogicalDestination | IoApic::kActiveLow | IoApic::kLevelTriggered |
                                  IoApic::kMasked;
constexpr uint64_t kDestinationMask = uint64_t{0xff} << IoApic::kDestinationShift;
constexpr uint64_t kLowHalf = 0xffff'ffff;

// Whether [offset, offset + size) of an access covers the byte at `address`, and at which index.
std::optional<size_t> byte_index(uint64_t offset, size_t size, uint64_t address) {
    if (address < offset || address - offset >= size) return std::nullopt;
    return static_cast<size_t>(address - offset);
}

DeliveryMode delivery_mode(uint64_t entry) {
    return static_cast<DeliveryMode>((entry >> IoApic::kDeliveryModeShift) & 7);
}

// 82093AA §3.2.4: only fixed and lowest-priority interrupts may be level-triggered.
bool level_semantics(uint64_t entry) {
    DeliveryMode mode = delivery_mode(entry);
    return (entry & IoApic::kLevelTriggered) && (mode == DeliveryMode::Fixed || mode == DeliveryMode::LowestPriority);
}

// The message an entry sends, or nothing for the reserved delivery modes 3 and 6.
std::optional<ApicMessage> message_for(uint64_t entry) {
    DeliveryMode mode = delivery_mode(entry);
    switch (mode) {
        case DeliveryMode::Fixed:
        case DeliveryMode::LowestPriority:
        case DeliveryMode::Smi:
        case DeliveryMode::Nmi:
        case DeliveryMode::Init:
        case DeliveryMode::ExtInt: break;
        default: return std::nullopt;
    }
    ApicMessage message;
    message.vector = static_cast<uint8_t>(entry & IoApic::kVectorMask);
    message.mode = mode;
    message.logical = (entry & IoApic::kLogicalDestination) != 0;
    message.destination = static_cast<uint32_t>(entry >> IoApic::kDestinationShift);
    message.level_triggered = level_semantics(entry);
    message.assert = true;
    return message;
}

}  // namespace

IoApic::IoApic(ApicBus& bus, uint8_t id) : bus_(bus) {
    state_.id = id & kIdMask;
    state_.redirection.fill(kMasked);
    for (unsigned pin = 0; pin < kPins; ++pin) {
        inputs_[pin].ioapic = this;
        inputs_[pin].pin = pin;
    }
}

IrqLine& IoApic::input(unsigned pin) {
    if (pin >= kPins) panic("IoApic::input: the IOAPIC has pins 0-23");
    return inputs_[pin];
}

void IoApic::read(uint64_t offset, std::span<uint8_t> data) {
    std::ranges::fill(data, uint8_t{0});
    std::lock_guard lock(mutex_);
    uint32_t window = read_register(state_.register_select);
    for (uint64_t byte = 0; byte < kRegisterWidth; ++byte) {
        if (auto i = byte_index(offset, data.size(), static_cast<uint64_t>(Mmio::RegisterSelect) + byte); i && byte == 0)
            data[*i] = state_.register_select;
        if (auto i = byte_index(offset, data.size(), static_cast<uint64_t>(Mmio::Window) + byte))
            data[*i] = static_cast<uint8_t>(window >> (8 * byte));
    }
}

void IoApic::write(uint64_t offset, std::span<const uint8_t> data) {
    Outbox outbox;
    {
        std::lock_guard lock(mutex_);
        // IOREGSEL first: a write that covers it and IOWIN selects and then writes.
        if (auto i = byte_index(offset, data.size(), static_cast<uint64_t>(Mmio::RegisterSelect)))
            state_.register_select = data[*i];
        uint32_t window = read_register(state_.register_select);
        bool window_written = false;
        for (uint64_t byte = 0; byte < kRegisterWidth; ++byte) {
            if (auto i = byte_index(offset, data.size(), static_cast<uint64_t>(Mmio::Window) + byte)) {
                uint32_t shift = static_cast<uint32_t>(8 * byte);
                window = (window & ~(uint32_t{0xff} << shift)) | (uint32_t{data[*i]} << shift);
                window_written = true;
            }
        }
        if (window_written) write_register(state_.register_select, window, outbox);
        if (auto i = byte_index(offset, data.size(), static_cast<uint64_t>(Mmio::Eoi)))
            end_of_interrupt_locked(data[*i], outbox);
    }
    send(outbox);
}

void IoApic::end_of_interrupt(uint8_t vector) {
    Outbox outbox;
    {
        std::lock_guard lock(mutex_);
        end_of_interrupt_locked(vector, outbox);
    }
    send(outbox);
}

IoApic::State IoApic::state() const {
    std::lock_guard lock(mutex_);
    return state_;
}

void IoApic::set_state(const State& state) {
    Outbox outbox;
    {
        std::lock_guard lock(mutex_);
        state_ = state;
        state_.id &= kIdMask;
        state_.input_levels &= (uint32_t{1} << kPins) - 1;
        for (uint64_t& entry : state_.redirection) {
            entry &= kLowWritable | kRemoteIrr | kDestinationMask;
            if (!level_semantics(entry)) entry &= ~kRemoteIrr;
        }
        for (unsigned pin = 0; pin < kPins; ++pin) evaluate_level(pin, outbox);
    }
    send(outbox);
}

void IoApic::set_input(unsigned pin, bool high) {
    Outbox outbox;
    {
        std::lock_guard lock(mutex_);
        bool was_asserted = asserted(pin);
        uint32_t mask = uint32_t{1} << pin;
        state_.input_levels = high ? state_.input_levels | mask : state_.input_levels & ~mask;
        uint64_t entry = state_.redirection[pin];
        if (level_semantics(entry)) {
            evaluate_level(pin, outbox);
        } else if (asserted(pin) && !was_asserted && !(entry & kMasked)) {
            if (auto message = message_for(entry)) outbox.add(*message);
        }
    }
    send(outbox);
}

bool IoApic::asserted(unsigned pin) const {
    bool high = (state_.input_levels >> pin) & 1;
    bool active_low = (state_.redirection[pin] & kActiveLow) != 0;
    return high != active_low;
}

void IoApic::evaluate_level(unsigned pin, Outbox& outbox) {
    uint64_t& entry = state_.redirection[pin];
    if (!level_semantics(entry) || (entry & (kMasked | kRemoteIrr)) || !asserted(pin)) return;
    auto message = message_for(entry);
    if (!message) return;
    entry |= kRemoteIrr;  // until the local APIC's EOI of this vector (82093AA §3.2.4, bit 14)
    outbox.add(*message);
}

void IoApic::end_of_interrupt_locked(uint8_t vector, Outbox& outbox) {
    for (unsigned pin = 0; pin < kPins; ++pin) {
        uint64_t& entry = state_.redirection[pin];
        if (!(entry & kRemoteIrr) || (entry & kVectorMask) != vector) continue;
        entry &= ~kRemoteIrr;
        evaluate_level(pin, outbox);  // still asserted: the interrupt is requested again
    }
}

uint32_t IoApic::read_register(uint8_t index) const {
    switch (static_cast<Reg>(index)) {
        case Reg::Id: return uint32_t{state_.id} << kIdShift;
        case Reg::Version: return uint32_t{kMaxRedirectionEntry} << 16 | kVersion;
        case Reg::Arbitration: return (state_.id & kArbitrationIdMask) << kIdShift;
        default: break;
    }
    if (index < kFirstRedirectionRegister || index > kLastRedirectionRegister) return 0;
    unsigned pin = (index - kFirstRedirectionRegister) / 2u;
    uint64_t entry = state_.redirection[pin];
    bool high_half = (index - kFirstRedirectionRegister) & 1;
    return static_cast<uint32_t>(high_half ? entry >> 32 : entry & kLowHalf);
}

void IoApic::write_register(uint8_t index, uint32_t value, Outbox& outbox) {
    if (static_cast<Reg>(index) == Reg::Id) {
        state_.id = static_cast<uint8_t>((value >> kIdShift) & kIdMask);
        return;
    }
    if (index < kFirstRedirectionRegister || index > kLastRedirectionRegister) return;  // read-only or none
    unsigned pin = (index - kFirstRedirectionRegister) / 2u;
    uint64_t& entry = state_.redirection[pin];
    if ((index - kFirstRedirectionRegister) & 1) {
        entry = (entry & ~kDestinationMask) | ((uint64_t{value} << 32) & kDestinationMask);
    } else {
        entry = (entry & ~kLowWritable) | (value & kLowWritable);
        // An edge entry has no EOI to wait for; Linux ends level interrupts on IOAPICs without an
        // EOI register by switching the entry to edge and back (io_apic.c, __eoi_ioapic_pin).
        if (!(entry & kLevelTriggered)) entry &= ~kRemoteIrr;
    }
    evaluate_level(pin, outbox);  // e.g. an asserted level pin just unmasked
}

void IoApic::Outbox::add(const ApicMessage& message) {
    if (count >= messages.size()) panic("IoApic: more messages from one access than its outbox holds");
    messages[count++] = message;
}

void IoApic::send(const Outbox& outbox) {
    for (unsigned i = 0; i < outbox.count; ++i) bus_.send(outbox.messages[i]);
}

}  // namespace strata
