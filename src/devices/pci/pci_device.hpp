// A PCI function as the configuration mechanism sees it: a 256-byte type-0 configuration header
// whose read-only fields are protected by a per-byte writable mask, up to six BARs, a capability
// list and an INTx pin.
//
// State:    the configuration bytes, their writable mask, each BAR's kind and size, the
//           capabilities, and the INTx condition.
// Features: vendor/device/class/revision, header type 0, command register (I/O, memory, bus
//           master, parity, SERR, INTx-disable writable), status (Capabilities List, Interrupt
//           Status), interrupt line (writable) and pin; I/O, 32-bit and 64-bit memory BARs
//           (prefetchable or not) with sizing: writing all ones reads back ~(size - 1) with the
//           type bits, because only the address bits above the size are writable. A BAR decodes
//           where its register says, only while the command register enables its space, and not
//           at address 0 or where it would run past the end of its space (as when it holds the
//           sizing pattern); mapping() says where, and the PCI host routes accesses by it, so
//           BARs move when the guest reprograms them. There is no firmware, so the board
//           assigns each BAR once with set_bar_address(), which turns on decoding as firmware
//           would. Capabilities (MSI, MSI-X, vendor-specific) are linked from 0x34 in the order
//           they were added. set_intx() drives the pin's line unless INTx Disable is set.
// Missing:  expansion ROM, PCI Express extended configuration space, multi-function devices;
//           status error bits are read-only zero.
// Spec:     PCI Local Bus Specification 3.0 §6.1 (header), §6.2.2 (command), §6.2.3 (status),
//           §6.2.5.1 (BARs), §6.7 (capability list).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "base/state_stream.hpp"
#include "bus/bus_device.hpp"
#include "bus/irq_line.hpp"
#include "devices/pci/pci_capability.hpp"

namespace strata {

enum class PciBarKind : uint8_t { None, Io, Memory32, Memory64 };

// What a BAR needs from the board.
struct PciBarRequest {
    uint64_t size = 0;  // bytes, a power of two
    PciBarKind kind = PciBarKind::None;
    bool prefetchable = false;
    [[nodiscard]] bool io() const { return kind == PciBarKind::Io; }
};

// Where a BAR decodes now.
struct PciBarMapping {
    bool io = false;
    uint64_t address = 0;
    uint64_t size = 0;
    friend bool operator==(const PciBarMapping&, const PciBarMapping&) = default;
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
        CapabilitiesPointer = 0x34,
        InterruptLine = 0x3c,
        InterruptPin = 0x3d,
    };
    static constexpr uint16_t kCommandIo = 1u << 0;
    static constexpr uint16_t kCommandMemory = 1u << 1;
    static constexpr uint16_t kCommandBusMaster = 1u << 2;
    static constexpr uint16_t kCommandIntxDisable = 1u << 10;
    static constexpr uint16_t kStatusInterrupt = 1u << 3;
    static constexpr uint16_t kStatusCapabilities = 1u << 4;

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
    [[nodiscard]] uint16_t command() const;

    // What BAR `index` needs, or nothing when the device has no such BAR (or it is the upper
    // half of a 64-bit one).
    [[nodiscard]] std::optional<PciBarRequest> bar_request(unsigned index) const;
    // The address BAR `index` holds, whether it decodes or not.
    [[nodiscard]] std::optional<uint64_t> bar_address(unsigned index) const;
    // Where BAR `index` decodes now, or nothing.
    [[nodiscard]] std::optional<PciBarMapping> mapping(unsigned index) const;
    // Firmware's part: puts BAR `index` at `address` (size-aligned, inside the BAR's space) and
    // enables decoding of that space.
    [[nodiscard]] Result<void> set_bar_address(unsigned index, uint64_t address);
    // The region behind BAR `index`, which the PCI host routes the BAR's accesses to.
    [[nodiscard]] virtual std::shared_ptr<BusDevice> bar_device(unsigned index) const;
    // Told (by the PCI host, from the thread that changed it) that BAR `index` now decodes at
    // `mapping` (nothing: not at all). Devices with an engine fast path on a BAR (ioeventfds)
    // move it here.
    virtual void bar_moved(unsigned /*index*/, std::optional<PciBarMapping> /*mapping*/) {}

    // Snapshots (docs/snapshot-format.md, the "pci/SS" sections). save_state(): the 256
    // configuration bytes, the INTx condition and each capability's registers, then what a
    // subclass adds. load_state() reads them back, refusing a function of another identity (a
    // byte the guest cannot write that differs: IDs, class, BAR types, the capability list), and
    // returns the change that sets them and re-drives INTx; the PCI host then recomputes where
    // the BARs decode (PciHost::set_state).
    virtual void save_state(StateWriter& out) const;
    [[nodiscard]] virtual std::function<Result<void>()> load_state(StateReader& in);
    // Holds the function's own work back (true) while a snapshot is taken, and lets it go on
    // (false); a function with no work of its own has nothing to do.
    virtual void quiesce(bool /*hold*/) {}

    // The line INTx drives; the board connects it before the guest runs.
    void connect_intx(IrqLine& line);
    // The device's interrupt condition: sets Interrupt Status, and drives the line unless INTx
    // Disable is set.
    void set_intx(bool asserted);

protected:
    // Declares BAR `index` (a 64-bit BAR takes `index` and `index` + 1); called from subclass
    // constructors. A bad declaration is Strata's own bug and panics.
    void declare_bar(unsigned index, PciBarKind kind, uint64_t size, bool prefetchable = false);
    void set_interrupt_pin(uint8_t pin);  // 1 = INTA# ... 4 = INTD#, 0 = none
    void set_subsystem(uint16_t vendor_id, uint16_t id);
    // Links `capability` into the list; called from subclass constructors. Returns its offset.
    uint8_t add_capability(std::shared_ptr<PciCapability> capability);

private:
    struct Bar {
        PciBarKind kind = PciBarKind::None;
        uint64_t size = 0;
        bool prefetchable = false;
    };
    struct Capability {
        uint8_t offset = 0;
        std::shared_ptr<PciCapability> handler;
    };

    void store(uint8_t offset, uint64_t value, size_t size, uint64_t writable);
    [[nodiscard]] uint64_t load(uint8_t offset, size_t size) const;
    [[nodiscard]] uint64_t bar_value(unsigned index) const;  // with the upper half of a 64-bit one
    [[nodiscard]] const Capability* capability_body_at(uint64_t offset) const;
    void update_intx_line();  // with intx_mutex_ held

    mutable std::mutex mutex_;
    std::array<uint8_t, kConfigSize> config_{};
    std::array<uint8_t, kConfigSize> writable_{};
    std::array<Bar, kBarCount> bars_{};
    // Fixed once the constructor is done: read without the lock.
    std::vector<Capability> capabilities_;
    uint8_t next_capability_ = 0x40;  // capabilities start after the 64-byte header

    mutable std::mutex intx_mutex_;  // orders level changes of this device's line
    IrqLine* intx_ = nullptr;
    bool intx_condition_ = false;
    bool intx_level_ = false;
};

}  // namespace strata
