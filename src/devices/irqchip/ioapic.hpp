// The I/O APIC of a PC chipset (82093AA register layout, version 0x20 as in the ICH family: with
// the EOI register), for engines without in-kernel interrupt controllers.
//
// State:    the ID, IOREGSEL, 24 redirection table entries (with their remote IRR bits), and the
//           levels of the 24 input lines.
// Features: one MMIO window of 0x100 bytes (the board places it at 0xfec00000): IOREGSEL at 0x00,
//           IOWIN at 0x10, EOI at 0x40. Registers through IOWIN: 0x00 ID (bits 27-24), 0x01
//           version (0x20, maximum redirection entry 23 in bits 23-16), 0x02 arbitration ID (the
//           ID's low four bits, read-only), 0x10 + 2n / 0x11 + 2n the low and high halves of
//           redirection entry n: vector, delivery mode, destination mode, polarity, remote IRR
//           (read-only), trigger mode, mask, destination (bits 63-56); reset value: masked, the
//           rest 0. An input's level is the pin's electrical level; an active-low entry inverts
//           it. Edge entries send one message per rising edge of the asserted signal while
//           unmasked (an edge on a masked pin is lost, 82093AA §3.2.4). Level entries send while
//           asserted, unmasked and remote IRR clear, and set remote IRR; an EOI of their vector
//           (end_of_interrupt() from a local APIC, or the EOI register) clears it and sends again
//           if the pin is still asserted; unmasking an asserted level pin sends. Making an entry
//           edge-triggered clears its remote IRR (what Linux's EOI for IOAPICs without an EOI
//           register relies on). Messages go over the ApicBus the board gives.
//           Access widths: IOREGSEL, IOWIN and EOI are 32-bit registers; an access of another
//           width or alignment reaches only the bytes of those registers it covers: a partial
//           IOWIN write changes only the bytes it covers (read-modify-write of the selected
//           register), IOREGSEL takes its low byte, EOI takes the vector from byte 0x40. All
//           other bytes of the window read 0 and ignore writes, as do unimplemented registers.
// Choice:   the ID is bits 27-24, as the 82093AA (§3.2.1), QEMU and KVM have it (kvm-unit-tests'
//           ioapic checks that only those take a write); the MP table's and MADT's ID N for N CPUs
//           above 15 does not read back, which Linux on x86-64 never checks. Delivery modes
//           other than fixed and lowest priority (SMI, NMI, INIT, ExtINT) are edge-only (82093AA
//           §3.2.4): they are sent on a rising edge whatever the trigger mode bit says, and never
//           set remote IRR. The reserved delivery modes 3 and 6 send nothing.
// Missing:  the delivery status bit (messages are delivered at once, so it reads 0); the ICH's
//           extended destination ID (bits 55-48) and pin assertion register; sharing one pin
//           between several lines (the board gives each pin one source).
// Spec:     Intel 82093AA I/O APIC datasheet (order 290566) §3.1 (IOREGSEL/IOWIN), §3.2.1-3.2.4
//           (ID, version, arbitration, redirection table); Intel ICH9 datasheet, "APIC
//           Registers" (the EOI register, version 0x20); Intel SDM vol. 3A §11.6 (the messages'
//           fields).
//
// Concurrency: inputs change on device threads, the window is accessed by vCPU threads and EOIs
// arrive from the vCPU that ends an interrupt; one mutex guards the state. Messages are sent
// after the mutex is released, on the thread that caused them, so ApicBus::send may call back
// into the IOAPIC (end_of_interrupt, inputs, the window) synchronously. Lock order: the IOAPIC's
// mutex is innermost; whoever calls into it (end_of_interrupt included, which may re-send) must
// not hold a lock that ApicBus::send takes.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <span>

#include "bus/bus_device.hpp"
#include "bus/irq_line.hpp"
#include "devices/irqchip/apic_bus.hpp"

namespace strata {

class IoApic final : public BusDevice, public EoiListener {
public:
    static constexpr uint64_t kWindowSize = 0x100;
    static constexpr unsigned kPins = 24;
    static constexpr uint8_t kVersion = 0x20;

    // MMIO offsets in the window.
    enum class Mmio : uint64_t {
        RegisterSelect = 0x00,  // IOREGSEL: the register IOWIN reaches
        Window = 0x10,          // IOWIN
        Eoi = 0x40,             // write: the vector whose level entries end
    };
    // Registers behind IOWIN.
    enum class Reg : uint8_t {
        Id = 0x00,
        Version = 0x01,
        Arbitration = 0x02,
        RedirectionTable = 0x10,  // entry n: 0x10 + 2n low half, 0x11 + 2n high half
    };
    // Redirection entry fields (82093AA §3.2.4).
    static constexpr uint64_t kVectorMask = 0xff;
    static constexpr unsigned kDeliveryModeShift = 8;
    static constexpr uint64_t kLogicalDestination = 1u << 11;
    static constexpr uint64_t kDeliveryPending = 1u << 12;  // read-only, always 0 here
    static constexpr uint64_t kActiveLow = 1u << 13;
    static constexpr uint64_t kRemoteIrr = 1u << 14;        // read-only
    static constexpr uint64_t kLevelTriggered = 1u << 15;
    static constexpr uint64_t kMasked = 1u << 16;
    static constexpr unsigned kDestinationShift = 56;

    struct State {
        uint8_t id = 0;
        uint8_t register_select = 0;
        std::array<uint64_t, kPins> redirection{};  // reset: kMasked
        uint32_t input_levels = 0;                  // bit n: pin n's line is high
    };

    // Messages go to `bus`, which must outlive the IOAPIC. `id` is the ID register's reset value
    // (its low four bits).
    explicit IoApic(ApicBus& bus, uint8_t id = 0);
    IoApic(const IoApic&) = delete;
    IoApic& operator=(const IoApic&) = delete;

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // A local APIC's EOI of a level-triggered `vector` (EoiListener).
    void end_of_interrupt(uint8_t vector) override;

    // The line of pin `pin` (0-23).
    [[nodiscard]] IrqLine& input(unsigned pin);

    [[nodiscard]] State state() const;
    // Restores a snapshot (reserved and read-only bits of no meaning dropped) and sends what its
    // asserted, unmasked level pins without remote IRR call for.
    void set_state(const State& state);

private:
    class Input final : public IrqLine {
    public:
        void set_level(bool high) override { ioapic->set_input(pin, high); }
        IoApic* ioapic = nullptr;
        unsigned pin = 0;
    };

    // Messages decided under the mutex and sent after it is released. One access sends at most
    // one message for a redirection entry it writes and one per pin for an EOI.
    struct Outbox {
        std::array<ApicMessage, kPins + 1> messages{};
        unsigned count = 0;
        void add(const ApicMessage& message);
    };

    void set_input(unsigned pin, bool high);
    [[nodiscard]] uint32_t read_register(uint8_t index) const;
    void write_register(uint8_t index, uint32_t value, Outbox& outbox);
    void end_of_interrupt_locked(uint8_t vector, Outbox& outbox);
    [[nodiscard]] bool asserted(unsigned pin) const;
    // Sends for a level entry that is asserted, unmasked and not waiting for its EOI.
    void evaluate_level(unsigned pin, Outbox& outbox);
    void send(const Outbox& outbox);

    ApicBus& bus_;
    std::array<Input, kPins> inputs_{};

    mutable std::mutex mutex_;
    State state_;
};

}  // namespace strata
