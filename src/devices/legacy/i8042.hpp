// The i8042 PS/2 controller with an AT keyboard behind it and no mouse.
//
// State:    status register, command byte (controller RAM byte 0) and the rest of its 32-byte RAM,
//           output port, a queue of output bytes each tagged keyboard or aux, the command waiting
//           for a data byte, and the keyboard's own pending command and settings; state()/set_state()
//           for snapshots.
// Features: two windows the board places separately, data_port() at 0x60 and command_port() at
//           0x64 (port 0x61 between them is the PIT's speaker port). Controller commands 0x20-0x3f
//           / 0x60-0x7f (read/write RAM, byte 0 = command byte), 0xa7/0xa8 aux disable/enable,
//           0xa9/0xab interface tests → 0x00, 0xaa self-test → 0x55, 0xad/0xae keyboard
//           disable/enable, 0xc0 read input port, 0xd0/0xd1 read/write output port (bit 0 clear
//           resets the machine), 0xd2/0xd3 write keyboard/aux output buffer, 0xd4 write to aux,
//           0xf0-0xff pulse output lines (bit 0 clear = reset, so 0xfe resets). Keyboard commands
//           0xff reset → fa aa, 0xf2 identify → fa ab 83, 0xee echo, 0xed LEDs, 0xf0 scancode set,
//           0xf3 typematic, 0xf4/0xf5/0xf6, anything else → fa. IRQ1/IRQ12 are level lines that
//           follow "output buffer full with a keyboard/aux byte and the command byte enables it".
//           keyboard_input() queues scancodes from the host while the keyboard is enabled.
// Choice:   no mouse is attached. A byte sent to the aux device (0xd4) is answered, as real
//           controllers do when nothing is plugged in, with 0xfe on the aux channel and the status
//           timeout bit set; Linux's psmouse then gives up quickly.
// Missing:  A20 gating (bit 1 of the output port is recorded; KVM cannot mask A20); scancode
//           translation (the keyboard answers in whatever set the host feeds); typematic repeat.
// Spec:     IBM PS/2 Hardware Interface Technical Reference, "Keyboard/Auxiliary Device
//           Controller"; Linux drivers/input/serio/i8042.c for what detection expects.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "base/state_stream.hpp"
#include "bus/bus_device.hpp"
#include "bus/irq_line.hpp"
#include "bus/machine_control.hpp"

namespace strata {

class I8042 {
public:
    static constexpr uint64_t kDataWindowSize = 1;     // 0x60
    static constexpr uint64_t kCommandWindowSize = 1;  // 0x64

    I8042(IrqLine& keyboard_irq, IrqLine& aux_irq, MachineControl& control);

    // Data port (0x60): output buffer on read, keyboard/controller data on write.
    [[nodiscard]] std::shared_ptr<BusDevice> data_port() const { return data_port_; }
    // Command/status port (0x64): status register on read, controller command on write.
    [[nodiscard]] std::shared_ptr<BusDevice> command_port() const { return command_port_; }

    // Scancodes from the host keyboard; dropped while the keyboard is disabled.
    void keyboard_input(std::span<const uint8_t> scancodes);

    // For snapshots; IRQ1 and IRQ12 follow from the output queue and the command byte.
    struct OutputByte {
        uint8_t value = 0;
        bool aux = false;
        friend bool operator==(const OutputByte&, const OutputByte&) = default;
    };
    struct State {
        std::vector<OutputByte> output;
        std::array<uint8_t, 32> ram{};
        uint8_t output_port = 0;
        bool last_was_command = false;
        bool timeout = false;
        uint8_t pending_command = 0;
        uint8_t keyboard_pending = 0;
        bool keyboard_scanning = true;
        uint8_t scancode_set = 2;
        uint8_t leds = 0;
        void encode(StateWriter& out) const;
        static State decode(StateReader& in);
    };
    [[nodiscard]] State state() const;
    // Fails, changing nothing, on an output queue over its limit or a scancode set past 3.
    Result<void> set_state(const State& state);

private:
    struct Controller;  // defined in i8042.cpp; shared by both ports

    std::shared_ptr<Controller> controller_;
    std::shared_ptr<BusDevice> data_port_;
    std::shared_ptr<BusDevice> command_port_;
};

}  // namespace strata
