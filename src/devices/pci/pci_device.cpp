#include "devices/pci/pci_device.hpp"

#include <algorithm>
#include <bit>

#include "base/bytes.hpp"

namespace strata {
namespace {

constexpr uint32_t kBarIoSpace = 0x1;          // bit 0: I/O space indicator
constexpr uint32_t kBarPrefetchable = 0x8;     // memory BAR bit 3
constexpr uint32_t kBarIoAddressMask = ~0x3u;
constexpr uint32_t kBarMemoryAddressMask = ~0xfu;
// Writable command bits: I/O, memory, bus master, parity error response, SERR#, INTx disable.
constexpr uint16_t kCommandWritable = 0x0547;

constexpr uint8_t reg(PciDevice::Reg r) { return static_cast<uint8_t>(r); }

}  // namespace

PciDevice::PciDevice(uint16_t vendor_id, uint16_t device_id, uint32_t class_code, uint8_t revision) {
    store(reg(Reg::VendorId), vendor_id, 2, 0);
    store(reg(Reg::DeviceId), device_id, 2, 0);
    store(reg(Reg::Command), 0, 2, kCommandWritable);
    store(reg(Reg::Revision), revision, 1, 0);
    store(reg(Reg::ClassCode), class_code & 0xff'ffff, 3, 0);
    store(reg(Reg::CacheLineSize), 0, 1, 0xff);
    store(reg(Reg::LatencyTimer), 0, 1, 0xff);
    store(reg(Reg::HeaderType), 0, 1, 0);  // type 0, single function
    store(reg(Reg::InterruptLine), 0, 1, 0xff);
}

void PciDevice::store(uint8_t offset, uint64_t value, size_t size, uint64_t writable) {
    for (size_t i = 0; i < size && offset + i < kConfigSize; ++i) {
        config_[offset + i] = static_cast<uint8_t>(value >> (8 * i));
        writable_[offset + i] = static_cast<uint8_t>(writable >> (8 * i));
    }
}

void PciDevice::config_read(uint64_t offset, std::span<uint8_t> data) const {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t at = offset + i;
        data[i] = at < kConfigSize ? config_[at] : uint8_t{0xff};
    }
}

void PciDevice::config_write(uint64_t offset, std::span<const uint8_t> data) {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t at = offset + i;
        if (at >= kConfigSize) break;
        config_[at] = static_cast<uint8_t>((config_[at] & ~writable_[at]) | (data[i] & writable_[at]));
    }
}

uint16_t PciDevice::vendor_id() const {
    std::lock_guard lock(mutex_);
    return static_cast<uint16_t>(load_le(std::span(config_).subspan(reg(Reg::VendorId), 2)));
}

uint16_t PciDevice::device_id() const {
    std::lock_guard lock(mutex_);
    return static_cast<uint16_t>(load_le(std::span(config_).subspan(reg(Reg::DeviceId), 2)));
}

std::optional<PciBarRequest> PciDevice::bar_request(unsigned index) const {
    std::lock_guard lock(mutex_);
    if (index >= kBarCount || bars_[index].kind == PciBarKind::None) return std::nullopt;
    const Bar& bar = bars_[index];
    return PciBarRequest{bar.size, bar.kind == PciBarKind::Io, bar.prefetchable};
}

std::optional<uint64_t> PciDevice::bar_address(unsigned index) const {
    std::lock_guard lock(mutex_);
    return index < kBarCount ? bars_[index].address : std::nullopt;
}

Result<void> PciDevice::set_bar_address(unsigned index, uint64_t address) {
    std::lock_guard lock(mutex_);
    if (index >= kBarCount || bars_[index].kind == PciBarKind::None)
        return fail("PCI {:04x}:{:04x}: BAR {} does not exist", load_le(std::span(config_).first(2)),
                    load_le(std::span(config_).subspan(2, 2)), index);
    Bar& bar = bars_[index];
    bool io = bar.kind == PciBarKind::Io;
    uint64_t limit = io ? 0x1'0000 : 0x1'0000'0000;
    if (address % bar.size != 0 || address >= limit || bar.size > limit - address)
        return fail("PCI BAR {}: address {:#x} is not {:#x}-aligned inside the {} space", index, address, bar.size,
                    io ? "64 KiB I/O" : "32-bit memory");
    bar.address = address;
    uint8_t offset = static_cast<uint8_t>(reg(Reg::Bar0) + 4 * index);
    uint32_t low_bits = io ? kBarIoSpace : (bar.prefetchable ? kBarPrefetchable : 0);
    uint32_t writable = static_cast<uint32_t>(~(bar.size - 1)) & (io ? kBarIoAddressMask : kBarMemoryAddressMask);
    store(offset, static_cast<uint32_t>(address) | low_bits, 4, writable);
    // Firmware enables decoding once it has placed a BAR; the board plays firmware here.
    config_[reg(Reg::Command)] |= static_cast<uint8_t>(io ? kCommandIo : kCommandMemory);
    return {};
}

std::shared_ptr<BusDevice> PciDevice::bar_device(unsigned /*index*/) const { return nullptr; }

void PciDevice::declare_bar(unsigned index, PciBarKind kind, uint64_t size, bool prefetchable) {
    bool io = kind == PciBarKind::Io;
    if (index >= kBarCount || kind == PciBarKind::None || !std::has_single_bit(size) || size < (io ? 4u : 16u) ||
        size > (io ? 0x1'0000u : 0x8000'0000u))
        panic("PciDevice::declare_bar: bad BAR declaration");
    std::lock_guard lock(mutex_);
    bars_[index] = Bar{kind, size, prefetchable && !io, std::nullopt};
    uint32_t low_bits = io ? kBarIoSpace : (prefetchable ? kBarPrefetchable : 0);
    uint32_t writable = static_cast<uint32_t>(~(size - 1)) & (io ? kBarIoAddressMask : kBarMemoryAddressMask);
    store(static_cast<uint8_t>(reg(Reg::Bar0) + 4 * index), low_bits, 4, writable);
}

void PciDevice::set_interrupt_pin(uint8_t pin) {
    std::lock_guard lock(mutex_);
    store(reg(Reg::InterruptPin), std::min<uint8_t>(pin, 4), 1, 0);
}

}  // namespace strata
