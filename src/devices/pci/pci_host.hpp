// The PCI host: configuration mechanism #1 at 0xcf8-0xcff with the reset control register at
// 0xcf9, and bus 0 with a host bridge in slot 0.
//
// State:    CONFIG_ADDRESS, the reset control register, and the functions on bus 0 by slot.
// Features: CONFIG_ADDRESS is a dword at offset 0 (only a dword access there reads or changes it;
//           bit 31 enable, bus 23:16, device 15:11, function 10:8, register 7:2); CONFIG_DATA at
//           offsets 4-7, any width, the byte lane chosen by the low address bits; with the enable
//           bit clear, or for a bus, slot or function with nothing there, reads return all ones and
//           writes are dropped. A byte access at offset 1 is the reset control register (port
//           0xcf9): writing RST_CPU (bit 2) resets the machine, whether SYS_RST (bit 1) is set or
//           not. Slot 0 holds an i440FX host bridge (8086:1237, class 0x0600).
//           BAR decoding: io_space() and memory_space() are the PCI side of the port-I/O and MMIO
//           buses (the board makes them the buses' fallback, so fixed devices win); an access
//           goes to the BAR whose current mapping holds it. Mappings are recomputed after every
//           configuration write, so a BAR moves, appears or vanishes as the guest reprograms
//           it or its command register, and the device hears of each change (bar_moved).
//           assign_resources() plays firmware: every BAR gets an address from the windows of
//           memory/pc_layout.hpp, and each device its INTx line.
// Missing:  buses other than 0, multi-function devices, configuration mechanism #2, ECAM.
// Spec:     PCI Local Bus Specification 3.0 §3.2.2.3.2 (mechanism #1); Intel ICH9 datasheet
//           §13.7.5 (Reset Control Register, 0xcf9).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "base/state_stream.hpp"
#include "bus/bus_device.hpp"
#include "bus/machine_control.hpp"
#include "devices/pci/pci_device.hpp"

namespace strata {

class PciHost final : public BusDevice {
public:
    static constexpr uint64_t kWindowSize = 8;
    static constexpr unsigned kSlots = 32;

    explicit PciHost(MachineControl& control);

    // Puts `device` in `slot` of bus 0 (function 0). Fails for slot 0 (the host bridge), a slot
    // out of range or taken, or a null device.
    [[nodiscard]] Result<void> add_device(uint8_t slot, std::shared_ptr<PciDevice> device);
    [[nodiscard]] std::shared_ptr<PciDevice> device(uint8_t slot) const;

    // Firmware's part, once the devices are in: assigns every BAR from the I/O window
    // [io_start, io_end), the 32-bit window [mmio_start, mmio_end) and, for 64-bit BARs, the
    // 64-bit window [mmio64_start, mmio64_end) when it is not empty (else the 32-bit one), each
    // in slot order and naturally aligned; connects the INTx pin of each device in slot S to
    // intx_line(S, pin - 1). Fails naming the BAR that does not fit.
    struct Windows {
        uint64_t io_start = 0, io_end = 0;
        uint64_t mmio_start = 0, mmio_end = 0;
        uint64_t mmio64_start = 0, mmio64_end = 0;
    };
    [[nodiscard]] Result<void> assign_resources(const Windows& windows,
                                                const std::function<IrqLine&(unsigned slot, unsigned pin)>& intx_line);

    // The PCI side of the port-I/O and MMIO buses: offsets are absolute addresses.
    [[nodiscard]] std::shared_ptr<BusDevice> io_space();
    [[nodiscard]] std::shared_ptr<BusDevice> memory_space();

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // Snapshots: the host's own registers (each function has its own section). set_state() goes
    // after the functions' states: it recomputes where every BAR decodes, as after a
    // configuration write.
    struct State {
        uint32_t config_address = 0;
        uint8_t reset_control = 0;
        void encode(StateWriter& out) const {
            out.u32(config_address);
            out.u8(reset_control);
        }
        static State decode(StateReader& in) {
            return {.config_address = in.u32("CONFIG_ADDRESS"), .reset_control = in.u8("reset control")};
        }
    };
    [[nodiscard]] State state() const;
    [[nodiscard]] Result<void> set_state(const State& state);

private:
    enum class Reg : uint8_t { ConfigAddress = 0, ResetControl = 1, ConfigData = 4 };

    // The function CONFIG_ADDRESS selects, or null.
    [[nodiscard]] PciDevice* selected() const;
    [[nodiscard]] uint64_t register_offset(uint64_t data_offset) const;

    // Recomputes where the BARs of the device in `slot` decode; tells it what moved.
    void refresh(unsigned slot);
    class Space;
    void space_access(bool io, uint64_t address, std::span<uint8_t> read, std::span<const uint8_t> write);

    struct Decoded {
        unsigned slot = 0;
        unsigned bar = 0;
        PciBarMapping mapping;
        std::shared_ptr<BusDevice> region;
    };

    MachineControl& control_;
    mutable std::mutex mutex_;
    uint32_t config_address_ = 0;
    uint8_t reset_control_ = 0;
    std::array<std::shared_ptr<PciDevice>, kSlots> slots_;

    // What decodes where; read on every BAR access, written after configuration writes.
    mutable std::shared_mutex decoded_mutex_;
    std::vector<Decoded> decoded_;
    std::shared_ptr<Space> io_space_;
    std::shared_ptr<Space> memory_space_;
};

}  // namespace strata
