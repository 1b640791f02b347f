#include "devices/pci/pci_host.hpp"

#include <algorithm>

#include "base/bytes.hpp"

namespace strata {
namespace {

constexpr uint32_t kAddressEnable = 0x8000'0000;
// Reserved bits 30:24 read as zero; bits 1:0 are kept as QEMU keeps them (see register_offset).
constexpr uint32_t kAddressWritable = 0x80ff'ffff;
constexpr uint8_t kResetSystem = 0x02;              // SYS_RST: full rather than soft reset
constexpr uint8_t kResetCpu = 0x04;                 // RST_CPU: do it
constexpr uint8_t kResetFull = 0x08;                // FULL_RST

// The i440FX PMC, the host bridge Linux's PCI probe looks for on bus 0 (class 0x0600).
class HostBridge final : public PciDevice {
public:
    HostBridge() : PciDevice(0x8086, 0x1237, 0x06'00'00, 0x02) {}
};

}  // namespace

PciHost::PciHost(MachineControl& control) : control_(control) { slots_[0] = std::make_shared<HostBridge>(); }

Result<void> PciHost::add_device(uint8_t slot, std::shared_ptr<PciDevice> device) {
    std::lock_guard lock(mutex_);
    if (slot >= kSlots) return fail("PCI slot {}: out of range (bus 0 has {} slots)", slot, kSlots);
    if (!device) return fail("PCI slot {}: no device given", slot);
    if (slots_[slot])
        return fail("PCI slot {}: already holds {:04x}:{:04x}", slot, slots_[slot]->vendor_id(),
                    slots_[slot]->device_id());
    slots_[slot] = std::move(device);
    return {};
}

std::shared_ptr<PciDevice> PciHost::device(uint8_t slot) const {
    std::lock_guard lock(mutex_);
    return slot < kSlots ? slots_[slot] : nullptr;
}

PciDevice* PciHost::selected() const {
    if (!(config_address_ & kAddressEnable)) return nullptr;
    uint32_t bus = (config_address_ >> 16) & 0xff;
    uint32_t slot = (config_address_ >> 11) & 0x1f;
    uint32_t function = (config_address_ >> 8) & 0x7;
    if (bus != 0 || function != 0) return nullptr;
    return slots_[slot].get();
}

// The configuration register a CONFIG_DATA access at `offset` reaches. The PCI spec has
// CONFIG_ADDRESS bits 1:0 read as zero, but QEMU (and so kvm-unit-tests, which writes the
// register's low bits there and then reads 0xCFC) ORs them with the data port's byte lane:
// follow QEMU, since for aligned accesses both agree.
uint64_t PciHost::register_offset(uint64_t data_offset) const {
    return ((config_address_ & 0xff) | (data_offset - static_cast<uint64_t>(Reg::ConfigData))) & 0xff;
}

void PciHost::read(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex_);
    std::ranges::fill(data, uint8_t{0xff});
    if (offset == static_cast<uint64_t>(Reg::ConfigAddress) && data.size() == 4) {
        store_le(data, config_address_);
    } else if (offset == static_cast<uint64_t>(Reg::ResetControl) && data.size() == 1) {
        data[0] = reset_control_;
    } else if (offset >= static_cast<uint64_t>(Reg::ConfigData) && offset + data.size() <= kWindowSize) {
        if (PciDevice* device = selected())
            device->config_read(register_offset(offset), data);
    }
}

void PciHost::write(uint64_t offset, std::span<const uint8_t> data) {
    std::unique_lock lock(mutex_);
    if (offset == static_cast<uint64_t>(Reg::ConfigAddress) && data.size() == 4) {
        config_address_ = static_cast<uint32_t>(load_le(data)) & kAddressWritable;
    } else if (offset == static_cast<uint64_t>(Reg::ResetControl) && data.size() == 1) {
        reset_control_ = static_cast<uint8_t>(data[0] & (kResetSystem | kResetFull));  // RST_CPU self-clears
        if (data[0] & kResetCpu) {
            lock.unlock();
            control_.request_stop({StopKind::Reset, 0, "reset through the reset control register (0xcf9)"});
        }
    } else if (offset >= static_cast<uint64_t>(Reg::ConfigData) && offset + data.size() <= kWindowSize) {
        if (PciDevice* device = selected())
            device->config_write(register_offset(offset), data);
    }
}

}  // namespace strata
