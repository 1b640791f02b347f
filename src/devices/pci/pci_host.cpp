#include "devices/pci/pci_host.hpp"

#include <algorithm>

#include "base/bytes.hpp"
#include "base/checked.hpp"

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

// The PCI side of one bus; offsets are absolute addresses.
class PciHost::Space final : public BusDevice {
public:
    Space(PciHost& host, bool io) : host_(host), io_(io) {}
    void read(uint64_t offset, std::span<uint8_t> data) override { host_.space_access(io_, offset, data, {}); }
    void write(uint64_t offset, std::span<const uint8_t> data) override { host_.space_access(io_, offset, {}, data); }

private:
    PciHost& host_;
    bool io_;
};

PciHost::PciHost(MachineControl& control)
    : control_(control), io_space_(std::make_shared<Space>(*this, true)),
      memory_space_(std::make_shared<Space>(*this, false)) {
    slots_[0] = std::make_shared<HostBridge>();
}

std::shared_ptr<BusDevice> PciHost::io_space() { return io_space_; }
std::shared_ptr<BusDevice> PciHost::memory_space() { return memory_space_; }

// An access no BAR holds wholly reads all ones and writes nothing (a master abort).
void PciHost::space_access(bool io, uint64_t address, std::span<uint8_t> read, std::span<const uint8_t> write) {
    uint64_t length = read.empty() ? write.size() : read.size();
    std::shared_ptr<BusDevice> region;
    uint64_t offset = 0;
    {
        std::shared_lock lock(decoded_mutex_);
        for (const Decoded& d : decoded_) {
            if (d.mapping.io != io || address < d.mapping.address) continue;
            if (!range_within(address - d.mapping.address, length, d.mapping.size)) continue;
            region = d.region;
            offset = address - d.mapping.address;
            break;
        }
    }
    if (!region) {
        std::ranges::fill(read, uint8_t{0xff});
        return;
    }
    if (!read.empty())
        region->read(offset, read);
    else
        region->write(offset, write);
}

void PciHost::refresh(unsigned slot) {
    std::shared_ptr<PciDevice> device = this->device(static_cast<uint8_t>(slot));
    if (!device) return;
    struct Change {
        unsigned bar;
        std::optional<PciBarMapping> mapping;
    };
    std::vector<Change> changes;
    {
        std::unique_lock lock(decoded_mutex_);
        for (unsigned bar = 0; bar < PciDevice::kBarCount; ++bar) {
            auto now = device->mapping(bar);
            auto it = std::ranges::find_if(decoded_, [&](const Decoded& d) { return d.slot == slot && d.bar == bar; });
            std::optional<PciBarMapping> before;
            if (it != decoded_.end()) before = it->mapping;
            if (before == now) continue;
            changes.push_back({bar, now});
            if (it != decoded_.end()) decoded_.erase(it);
            if (now) {
                auto region = device->bar_device(bar);
                if (region) decoded_.push_back(Decoded{slot, bar, *now, std::move(region)});
            }
        }
    }
    for (const Change& change : changes) device->bar_moved(change.bar, change.mapping);
}

Result<void> PciHost::assign_resources(const Windows& windows,
                                       const std::function<IrqLine&(unsigned slot, unsigned pin)>& intx_line) {
    uint64_t next_io = windows.io_start;
    uint64_t next_mmio = windows.mmio_start;
    uint64_t next_mmio64 = windows.mmio64_start;
    bool have_mmio64 = windows.mmio64_end > windows.mmio64_start;
    for (unsigned slot = 1; slot < kSlots; ++slot) {
        std::shared_ptr<PciDevice> device = this->device(static_cast<uint8_t>(slot));
        if (!device) continue;
        for (unsigned bar = 0; bar < PciDevice::kBarCount; ++bar) {
            auto need = device->bar_request(bar);
            if (!need) continue;
            // The 64-bit window is prefetchable (the DSDT says so): only prefetchable BARs go there.
            bool wide = need->kind == PciBarKind::Memory64 && need->prefetchable && have_mmio64;
            uint64_t& next = need->io() ? next_io : wide ? next_mmio64 : next_mmio;
            uint64_t end = need->io() ? windows.io_end : wide ? windows.mmio64_end : windows.mmio_end;
            uint64_t address = align_up(next, need->size);
            if (address < next || !range_within(address, need->size, end))
                return fail("PCI slot {} BAR {}: {:#x} bytes do not fit in the {} window", slot, bar, need->size,
                            need->io() ? "I/O" : wide ? "64-bit memory" : "32-bit memory");
            if (auto r = device->set_bar_address(bar, address); !r) return r;
            next = address + need->size;
        }
        uint8_t pin = 0;
        device->config_read(static_cast<uint8_t>(PciDevice::Reg::InterruptPin), std::span(&pin, 1));
        if (pin >= 1 && pin <= 4) device->connect_intx(intx_line(slot, pin - 1u));
        refresh(slot);
    }
    return {};
}

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

PciHost::State PciHost::state() const {
    std::lock_guard lock(mutex_);
    return {.config_address = config_address_, .reset_control = reset_control_};
}

Result<void> PciHost::set_state(const State& state) {
    if (state.config_address & ~kAddressWritable)
        return fail("CONFIG_ADDRESS {:#010x} has reserved bits set", state.config_address);
    if (state.reset_control & ~(kResetSystem | kResetFull))
        return fail("the reset control register {:#04x} has bits that read as zero set", state.reset_control);
    {
        std::lock_guard lock(mutex_);
        config_address_ = state.config_address;
        reset_control_ = state.reset_control;
    }
    for (unsigned slot = 0; slot < kSlots; ++slot) refresh(slot);
    return {};
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
        PciDevice* device = selected();
        if (!device) return;
        unsigned slot = (config_address_ >> 11) & 0x1f;
        device->config_write(register_offset(offset), data);
        // BARs and the command register decide what decodes where.
        lock.unlock();
        refresh(slot);
    }
}

}  // namespace strata
