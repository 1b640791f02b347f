// Strata's PC board: the one place that decides where every device sits (port, address, PCI
// slot) and which interrupt line it drives. Devices themselves know only offsets.
//
// Port map (memory/pc_layout.hpp): i8042 0x60/0x64, RTC 0x70-0x71, COM1 0x3f8-0x3ff, fw_cfg
// 0x510-0x511, ACPI PM 0x600-0x60b, PCI config 0xcf8-0xcff (reset control at 0xcf9), HPET at
// 0xfed00000 (both engines; the PIT's and RTC's interrupts pass through it);
// with --test-devices also isa-debug-exit 0xf4, pc-testdev 0xe0-0xef, 0x2000-0x2017 and its MMIO
// at 0xff000000, and pci-testdev in PCI slot 1; virtio-pci devices from slot 2 (virtio-rng, then
// virtio-console in slot 3, then a virtio-blk for each --disk, a virtio-net for each --net and
// virtio-vsock with --vsock). The 8259s (0x20, 0xa0, ELCR 0x4d0), the PIT
// (0x40-0x43, port 0x61) and the IOAPIC (0xfec00000) are KVM's in-kernel ones under the kvm
// engine and Strata's own (devices/irqchip) under the soft engine, whose local APICs are per vCPU.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "base/machine_clock.hpp"
#include "bus/bus.hpp"
#include "bus/machine_control.hpp"
#include "base/state_stream.hpp"
#include "bus/wired_or_line.hpp"
#include "cpu/engine.hpp"
#include "machine/interrupt_counts.hpp"
#include "machine/machine_config.hpp"
#include "snapshot/snapshot_format.hpp"

namespace strata {

class ConsoleInput;
class Uart16550;
class Pic8259Pair;
class Pit8254;
class IoApic;
class GsiRouter;
class Hpet;
class AcpiPm;
class PciDevice;

class Board {
public:
    // `timers` (the machine's one timer service) must outlive the board: the RTC's timer is on it.
    static Result<std::unique_ptr<Board>> build(CpuEngine& engine, MachineControl& control, TimerService& timers,
                                                const GuestMemory& memory, const MachineConfig& config);

    ~Board();

    [[nodiscard]] const Bus& pio() const { return pio_; }
    [[nodiscard]] const Bus& mmio() const { return mmio_; }

    // Console input for the console device (MachineConfig::console: COM1 or the virtio-console):
    // returns how many of `bytes` it took (the rest must wait).
    [[nodiscard]] size_t console_input(std::span<const uint8_t> bytes);
    // Called (from a vCPU thread or the virtio-console's loop) when the console device refused
    // input and has room again.
    void on_console_room(std::function<void()> notify);
    // Interrupts the devices raised so far (interrupt_counts.hpp): rising edges by GSI (those
    // with any), and MSIs. Any thread.
    struct InterruptCounts {
        std::vector<std::pair<unsigned, uint64_t>> gsi;
        uint64_t msi = 0;
    };
    [[nodiscard]] InterruptCounts interrupt_counts() const;
    // The ACPI fixed-feature power button (PWRBTN_STS): a guest that enabled it gets an SCI and
    // may shut down gracefully.
    void press_power_button();

    // Snapshots (board_state.cpp), while the vCPUs are stopped and the machine clock paused.
    // quiesce() returns once no device has work in flight (virtio requests completed) and holds
    // new work back until unquiesce().
    void quiesce();
    void unquiesce();
    // Every device's state as a named section (docs/snapshot-format.md), Strata's own interrupt
    // controllers included when the board has them ("irqchip"); quiesced.
    [[nodiscard]] Result<void> save_state(std::vector<snapshot::Section>& sections) const;
    // Sets every device from its section. Each section is decoded and checked before any device
    // changes; a section missing, left over or refused fails with its name.
    [[nodiscard]] Result<void> restore_state(std::span<const snapshot::Section> sections);
    // Whether the interrupt controllers are the board's (the soft engine) or the engine's.
    [[nodiscard]] bool has_own_irqchip() const { return pic_ != nullptr; }
    [[nodiscard]] IrqchipState irqchip_state() const;
    [[nodiscard]] Result<void> set_irqchip_state(const IrqchipState& state);

private:
    Board() = default;

    // A device with state in snapshots: its section's name, a label for messages, how to write
    // its state, and how to read it back into the change that restores it (made only once every
    // section has been read); virtio functions also quiesce.
    struct Stateful {
        std::string name;
        std::string label;
        std::function<Result<void>(StateWriter&)> save;
        std::function<Result<std::function<Result<void>()>>(StateReader&)> load;
        std::function<void(bool)> quiesce;  // true: quiesce; false: unquiesce
    };
    // Registers a device whose State has encode/decode and whose set_state returns Result.
    template <class Device>
    void keep_state(std::string name, std::string label, std::shared_ptr<Device> device) {
        stateful_.push_back({std::move(name), std::move(label),
                             [device](StateWriter& out) -> Result<void> {
                                 device->state().encode(out);
                                 return {};
                             },
                             [device](StateReader& in) -> Result<std::function<Result<void>()>> {
                                 auto state = Device::State::decode(in);
                                 return [device, state] { return device->set_state(state); };
                             },
                             {}});
    }
    // Registers the PCI function in `slot` (section "pci/SS", SS the slot in hex).
    void keep_pci_state(unsigned slot, std::shared_ptr<PciDevice> device);
    std::vector<Stateful> stateful_;

    // What devices reach guest memory through; before the buses, which own the devices.
    std::unique_ptr<GuestDma> dma_;
    // Strata's own interrupt controllers, when the engine has none in the kernel. Declared
    // before the buses: devices there (the PIT's timer, the RTC's) drive the router's lines.
    std::unique_ptr<Pic8259Pair> pic_;
    std::shared_ptr<IoApic> ioapic_;
    std::shared_ptr<Pit8254> pit_;
    std::unique_ptr<GsiRouter> gsi_;
    // What devices raise interrupts through, counting them: before every device.
    std::vector<std::unique_ptr<CountingIrqLine>> gsi_lines_;  // by GSI; null where none was asked for
    std::unique_ptr<CountingMsi> msi_;
    // Declared before the RTC's line and the buses: the PIT and RTC interrupt through it.
    std::shared_ptr<Hpet> hpet_;
    // PCI INTx: GSIs 16-19, each shared by the pins the swizzle puts on it.
    std::vector<std::unique_ptr<WiredOrLine>> pci_intx_;
    class RtcWakeLine;
    // Declared first so it outlives the RTC (owned by the bus), whose timer drives it.
    std::unique_ptr<RtcWakeLine> rtc_irq_;
    Bus pio_{"port I/O"};
    Bus mmio_{"MMIO"};
    std::shared_ptr<Uart16550> com1_;
    std::shared_ptr<AcpiPm> acpi_pm_;  // also on the port bus
    // Devices are owned by the buses (facets keep multi-window devices alive); COM1 is also
    // kept here. Device timers (the RTC's) are cancelled with their devices.
    // The device the terminal's input goes to: COM1, or the virtio-console (owned by its
    // virtio-pci function on the PCI host).
    ConsoleInput* console_ = nullptr;
};

}  // namespace strata
