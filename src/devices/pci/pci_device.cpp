#include "devices/pci/pci_device.hpp"

#include <algorithm>
#include <bit>

#include "base/bytes.hpp"
#include "base/checked.hpp"

namespace strata {
namespace {

constexpr uint32_t kBarIoSpace = 0x1;       // bit 0: I/O space indicator
constexpr uint32_t kBarType64 = 0x4;        // memory BAR bits 2:1 = 10b: anywhere in 64-bit space
constexpr uint32_t kBarPrefetchable = 0x8;  // memory BAR bit 3
constexpr uint32_t kBarIoAddressMask = ~0x3u;
// Writable command bits: I/O, memory, bus master, parity error response, SERR#, INTx disable.
constexpr uint16_t kCommandWritable = 0x0547;

constexpr uint8_t reg(PciDevice::Reg r) { return static_cast<uint8_t>(r); }
constexpr uint8_t bar_register(unsigned index) { return static_cast<uint8_t>(reg(PciDevice::Reg::Bar0) + 4 * index); }

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

uint64_t PciDevice::load(uint8_t offset, size_t size) const {
    return load_le(std::span(config_).subspan(offset, size));
}

const PciDevice::Capability* PciDevice::capability_body_at(uint64_t offset) const {
    for (const Capability& c : capabilities_)
        if (offset >= c.offset + 2u && offset < c.offset + c.handler->size()) return &c;
    return nullptr;
}

// An access may cover header bytes and capability bodies alike (lspci reads dwords): each run of
// bytes inside one capability's body goes to it whole, the rest comes from the header bytes.
void PciDevice::config_read(uint64_t offset, std::span<uint8_t> data) const {
    for (size_t i = 0; i < data.size();) {
        uint64_t at = offset + i;
        if (const Capability* c = at < kConfigSize ? capability_body_at(at) : nullptr) {
            size_t run = std::min<size_t>(data.size() - i, c->offset + c->handler->size() - at);
            c->handler->read(static_cast<uint8_t>(at - c->offset), data.subspan(i, run));
            i += run;
            continue;
        }
        std::lock_guard lock(mutex_);
        data[i] = at < kConfigSize ? config_[at] : uint8_t{0xff};
        ++i;
    }
}

void PciDevice::config_write(uint64_t offset, std::span<const uint8_t> data) {
    bool command_written = false;
    for (size_t i = 0; i < data.size();) {
        uint64_t at = offset + i;
        if (at >= kConfigSize) break;
        if (const Capability* c = capability_body_at(at)) {
            size_t run = std::min<size_t>(data.size() - i, c->offset + c->handler->size() - at);
            c->handler->write(static_cast<uint8_t>(at - c->offset), data.subspan(i, run));
            i += run;
            continue;
        }
        std::lock_guard lock(mutex_);
        config_[at] = static_cast<uint8_t>((config_[at] & ~writable_[at]) | (data[i] & writable_[at]));
        command_written |= at == reg(Reg::Command) + 1u;
        ++i;
    }
    if (command_written) {
        std::lock_guard lock(intx_mutex_);
        update_intx_line();
    }
}

uint16_t PciDevice::vendor_id() const {
    std::lock_guard lock(mutex_);
    return static_cast<uint16_t>(load(reg(Reg::VendorId), 2));
}

uint16_t PciDevice::device_id() const {
    std::lock_guard lock(mutex_);
    return static_cast<uint16_t>(load(reg(Reg::DeviceId), 2));
}

uint16_t PciDevice::command() const {
    std::lock_guard lock(mutex_);
    return static_cast<uint16_t>(load(reg(Reg::Command), 2));
}

std::optional<PciBarRequest> PciDevice::bar_request(unsigned index) const {
    std::lock_guard lock(mutex_);
    if (index >= kBarCount || bars_[index].kind == PciBarKind::None) return std::nullopt;
    const Bar& bar = bars_[index];
    return PciBarRequest{bar.size, bar.kind, bar.prefetchable};
}

uint64_t PciDevice::bar_value(unsigned index) const {
    const Bar& bar = bars_[index];
    uint64_t value = load(bar_register(index), 4);
    if (bar.kind == PciBarKind::Memory64) value |= load(bar_register(index + 1), 4) << 32;
    return value & (bar.kind == PciBarKind::Io ? uint64_t{kBarIoAddressMask} : ~uint64_t{0xf});
}

std::optional<uint64_t> PciDevice::bar_address(unsigned index) const {
    std::lock_guard lock(mutex_);
    if (index >= kBarCount || bars_[index].kind == PciBarKind::None) return std::nullopt;
    return bar_value(index);
}

// Decoding follows the command register; an address of 0, or one where the BAR would reach the
// end of its space (the all-ones sizing pattern does), decodes nothing, as QEMU has it.
std::optional<PciBarMapping> PciDevice::mapping(unsigned index) const {
    std::lock_guard lock(mutex_);
    if (index >= kBarCount || bars_[index].kind == PciBarKind::None) return std::nullopt;
    const Bar& bar = bars_[index];
    bool io = bar.kind == PciBarKind::Io;
    auto command = static_cast<uint16_t>(load(reg(Reg::Command), 2));
    if (!(command & (io ? kCommandIo : kCommandMemory))) return std::nullopt;
    uint64_t address = bar_value(index);
    uint64_t limit = io ? 0x1'0000 : bar.kind == PciBarKind::Memory32 ? 0x1'0000'0000 : 0;
    auto end = checked_add(address, bar.size);
    if (address == 0 || !end || *end == 0 || (limit != 0 && *end >= limit)) return std::nullopt;
    return PciBarMapping{io, address, bar.size};
}

Result<void> PciDevice::set_bar_address(unsigned index, uint64_t address) {
    std::lock_guard lock(mutex_);
    if (index >= kBarCount || bars_[index].kind == PciBarKind::None)
        return fail("PCI {:04x}:{:04x}: BAR {} does not exist", load(reg(Reg::VendorId), 2),
                    load(reg(Reg::DeviceId), 2), index);
    const Bar& bar = bars_[index];
    bool io = bar.kind == PciBarKind::Io;
    bool wide = bar.kind == PciBarKind::Memory64;
    uint64_t limit = io ? 0x1'0000 : 0x1'0000'0000;
    if (address % bar.size != 0 || (!wide && (address >= limit || bar.size > limit - address)) ||
        !checked_add(address, bar.size))
        return fail("PCI BAR {}: address {:#x} is not {:#x}-aligned inside the {} space", index, address, bar.size,
                    io ? "64 KiB I/O" : wide ? "64-bit memory" : "32-bit memory");
    uint8_t type_bits = io ? 0x3 : 0xf;
    config_[bar_register(index)] =
        static_cast<uint8_t>((config_[bar_register(index)] & type_bits) | (address & ~uint64_t{type_bits} & 0xff));
    for (unsigned i = 1; i < 4; ++i) config_[bar_register(index) + i] = static_cast<uint8_t>(address >> (8 * i));
    if (wide)
        for (unsigned i = 0; i < 4; ++i) config_[bar_register(index + 1) + i] = static_cast<uint8_t>(address >> (32 + 8 * i));
    // Firmware enables decoding once it has placed a BAR; the board plays firmware here.
    config_[reg(Reg::Command)] |= static_cast<uint8_t>(io ? kCommandIo : kCommandMemory);
    return {};
}

std::shared_ptr<BusDevice> PciDevice::bar_device(unsigned /*index*/) const { return nullptr; }

void PciDevice::declare_bar(unsigned index, PciBarKind kind, uint64_t size, bool prefetchable) {
    bool io = kind == PciBarKind::Io;
    bool wide = kind == PciBarKind::Memory64;
    uint64_t max = io ? 0x100 : wide ? (uint64_t{1} << 40) : 0x8000'0000;
    if (index + (wide ? 1u : 0u) >= kBarCount || kind == PciBarKind::None || !std::has_single_bit(size) ||
        size < (io ? 4u : 16u) || size > max)
        panic("PciDevice::declare_bar: bad BAR declaration");
    std::lock_guard lock(mutex_);
    if (bars_[index].kind != PciBarKind::None || (wide && bars_[index + 1].kind != PciBarKind::None))
        panic("PciDevice::declare_bar: BAR declared twice");
    bars_[index] = Bar{kind, size, prefetchable && !io};
    uint32_t low_bits = io ? kBarIoSpace : ((prefetchable ? kBarPrefetchable : 0) | (wide ? kBarType64 : 0));
    uint64_t writable = ~(size - 1) & (io ? uint64_t{kBarIoAddressMask} : ~uint64_t{0xf});
    store(bar_register(index), low_bits, 4, writable);
    if (wide) store(bar_register(index + 1), 0, 4, writable >> 32);
}

void PciDevice::set_interrupt_pin(uint8_t pin) {
    std::lock_guard lock(mutex_);
    store(reg(Reg::InterruptPin), std::min<uint8_t>(pin, 4), 1, 0);
}

void PciDevice::set_subsystem(uint16_t vendor_id, uint16_t id) {
    std::lock_guard lock(mutex_);
    store(reg(Reg::SubsystemVendorId), vendor_id, 2, 0);
    store(reg(Reg::SubsystemId), id, 2, 0);
}

uint8_t PciDevice::add_capability(std::shared_ptr<PciCapability> capability) {
    uint8_t size = capability ? capability->size() : 0;
    uint8_t offset = next_capability_;
    if (size < 2 || offset + size > kConfigSize) panic("PciDevice::add_capability: no room for the capability");
    std::lock_guard lock(mutex_);
    store(offset, static_cast<uint8_t>(capability->id()), 1, 0);
    store(static_cast<uint8_t>(offset + 1), 0, 1, 0);
    if (capabilities_.empty())
        store(reg(Reg::CapabilitiesPointer), offset, 1, 0);
    else
        store(static_cast<uint8_t>(capabilities_.back().offset + 1), offset, 1, 0);
    config_[reg(Reg::Status)] |= static_cast<uint8_t>(kStatusCapabilities);
    capabilities_.push_back(Capability{offset, std::move(capability)});
    next_capability_ = static_cast<uint8_t>(align_up(offset + size, 4));
    return offset;
}

void PciDevice::save_state(StateWriter& out) const {
    {
        std::lock_guard lock(mutex_);
        out.bytes(config_);
    }
    {
        std::lock_guard lock(intx_mutex_);
        out.boolean(intx_condition_);
    }
    for (const Capability& c : capabilities_) c.handler->save_state(out);
}

std::function<Result<void>()> PciDevice::load_state(StateReader& in) {
    auto config = in.array<kConfigSize>("configuration space");
    bool intx = in.boolean("INTx condition");
    in.check(((config[reg(Reg::Status)] & kStatusInterrupt) != 0) == intx,
             "the status register's Interrupt Status and the INTx condition disagree");
    {
        // Interrupt Status (in the status register) follows the INTx condition; every other byte
        // the guest cannot write must be this function's own.
        std::lock_guard lock(mutex_);
        for (size_t at = 0; at < kConfigSize && in.ok(); ++at) {
            uint8_t fixed = static_cast<uint8_t>(~writable_[at]);
            if (at == reg(Reg::Status)) fixed &= static_cast<uint8_t>(~kStatusInterrupt);
            if ((config[at] & fixed) != (config_[at] & fixed))
                in.fail(fmt::format("configuration byte {:#04x} is {:#04x}, {:#04x} in this machine's {:04x}:{:04x} "
                                    "(a different device)",
                                    at, config[at], config_[at], load(reg(Reg::VendorId), 2),
                                    load(reg(Reg::DeviceId), 2)));
        }
    }
    std::vector<std::function<void()>> capabilities;
    for (const Capability& c : capabilities_) capabilities.push_back(c.handler->load_state(in));
    return [this, config, intx, capabilities = std::move(capabilities)]() -> Result<void> {
        {
            std::lock_guard lock(mutex_);
            for (size_t at = 0; at < kConfigSize; ++at)
                config_[at] = static_cast<uint8_t>((config_[at] & ~writable_[at]) | (config[at] & writable_[at]));
        }
        for (const auto& set : capabilities) set();
        set_intx(intx);
        return {};
    };
}

void PciDevice::connect_intx(IrqLine& line) {
    std::lock_guard lock(intx_mutex_);
    intx_ = &line;
}

void PciDevice::set_intx(bool asserted) {
    std::lock_guard lock(intx_mutex_);
    intx_condition_ = asserted;
    {
        std::lock_guard config_lock(mutex_);
        uint8_t& status = config_[reg(Reg::Status)];
        status = static_cast<uint8_t>(asserted ? status | kStatusInterrupt : status & ~kStatusInterrupt);
    }
    update_intx_line();
}

void PciDevice::update_intx_line() {
    bool disabled = command() & kCommandIntxDisable;
    bool level = intx_condition_ && !disabled;
    if (level == intx_level_ || !intx_) return;
    intx_level_ = level;
    intx_->set_level(level);
}

}  // namespace strata
