// A PCI function as the configuration mechanism sees it: a 256-byte type-0 configuration header
// whose read-only fields are protected by a per-byte writable mask, and up to six BARs.
//
// State:    the configuration bytes, their writable mask, and each BAR's kind, size and the
//           address the board assigned.
// Features: vendor/device/class/revision, header type 0, command register (I/O, memory, bus
//           master, parity, SERR, INTx-disable writable), interrupt line (writable) and pin; BAR
//           sizing: writing all ones to a BAR reads back ~(size - 1) with the type bits, because
//           only the address bits above the size are writable. There is no firmware, so the board
//           assigns every BAR with set_bar_address(), which also turns on I/O or memory decoding
//           in the command register as firmware would; bar() tells it what each BAR needs and
//           bar_device() gives the region to place at that address.
// Missing:  64-bit BARs, expansion ROM, capabilities; moving BARs: a guest write of another
//           address is kept in config space (and read back) but the region stays decoded at the
//           assigned address; decoding ignores the command register's enable bits; status bits
//           are read-only zero.
// Spec:     PCI Local Bus Specification 3.0 §6.1 (header), §6.2.2 (command), §6.2.5.1 (BARs).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>

#include "base/error.hpp"
#include "bus/bus_device.hpp"

namespace strata {

enum class PciBarKind : uint8_t { None, Io, Memory32 };

// What a BAR needs from the board.
struct PciBarRequest {
    uint64_t size = 0;  // bytes, a power of two
    bool io = false;    // I/O space (else 32-bit memory)
    bool prefetchable = false;
};

class PciDevice {
public:
    static constexpr size_t kConfigSize = 256;
    static constexpr unsigned kBarCount = 6;

    // Configuration header offsets (PCI 3.0 Figure 6-1).
    enum class Reg : uint8_t {
        VendorId = 0x00,
        DeviceId = 0x02,
        Command = 0x04,
        Status = 0x06,
        Revision = 0x08,
        ClassCode = 0x09,  // prog-if 0x09, subclass 0x0a, base class 0x0b
        CacheLineSize = 0x0c,
        LatencyTimer = 0x0d,
        HeaderType = 0x0e,
        Bar0 = 0x10,
        SubsystemVendorId = 0x2c,
        SubsystemId = 0x2e,
        InterruptLine = 0x3c,
        InterruptPin = 0x3d,
    };
    static constexpr uint16_t kCommandIo = 1u << 0;
    static constexpr uint16_t kCommandMemory = 1u << 1;
    static constexpr uint16_t kCommandBusMaster = 1u << 2;

    // `class_code` is the 24-bit base class << 16 | subclass << 8 | programming interface.
    PciDevice(uint16_t vendor_id, uint16_t device_id, uint32_t class_code, uint8_t revision = 0);
    virtual ~PciDevice() = default;
    PciDevice(const PciDevice&) = delete;
    PciDevice& operator=(const PciDevice&) = delete;

    // Configuration accesses of any width; bytes past the 256-byte space read all ones and are
    // not written.
    void config_read(uint64_t offset, std::span<uint8_t> data) const;
    void config_write(uint64_t offset, std::span<const uint8_t> data);

    [[nodiscard]] uint16_t vendor_id() const;
    [[nodiscard]] uint16_t device_id() const;

    // What BAR `index` needs, or nothing when the device has no such BAR.
    [[nodiscard]] std::optional<PciBarRequest> bar_request(unsigned index) const;
    // Where the board assigned BAR `index`, or nothing before set_bar_address().
    [[nodiscard]] std::optional<uint64_t> bar_address(unsigned index) const;
    // Assigns BAR `index` at `address` (size-aligned; below 4 GiB for memory, 64 KiB for I/O).
    [[nodiscard]] Result<void> set_bar_address(unsigned index, uint64_t address);
    // The region behind BAR `index`, which the board places at the assigned address.
    [[nodiscard]] virtual std::shared_ptr<BusDevice> bar_device(unsigned index) const;

protected:
    // Declares BAR `index`; called from subclass constructors. A bad declaration is Strata's own
    // bug and panics.
    void declare_bar(unsigned index, PciBarKind kind, uint64_t size, bool prefetchable = false);
    void set_interrupt_pin(uint8_t pin);  // 1 = INTA# ... 4 = INTD#, 0 = none

private:
    void store(uint8_t offset, uint64_t value, size_t size, uint64_t writable);

    mutable std::mutex mutex_;
    std::array<uint8_t, kConfigSize> config_{};
    std::array<uint8_t, kConfigSize> writable_{};
    struct Bar {
        PciBarKind kind = PciBarKind::None;
        uint64_t size = 0;
        bool prefetchable = false;
        std::optional<uint64_t> address;  // assigned by the board
    };
    std::array<Bar, kBarCount> bars_{};
};

}  // namespace strata
