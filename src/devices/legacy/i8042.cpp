#include "devices/legacy/i8042.hpp"

#include <algorithm>
#include <array>
#include <deque>
#include <mutex>

#include "devices/facet.hpp"

namespace strata {
namespace {

// Status register bits (PS/2 Technical Reference, "Status Register").
constexpr uint8_t kStatusOutputFull = 0x01;
constexpr uint8_t kStatusSystemFlag = 0x04;
constexpr uint8_t kStatusLastWasCommand = 0x08;
constexpr uint8_t kStatusNotInhibited = 0x10;  // keyboard lock switch open
constexpr uint8_t kStatusAuxData = 0x20;
constexpr uint8_t kStatusTimeout = 0x40;

// Command byte bits.
constexpr uint8_t kCmdKeyboardInt = 0x01;
constexpr uint8_t kCmdAuxInt = 0x02;
constexpr uint8_t kCmdSystemFlag = 0x04;
constexpr uint8_t kCmdKeyboardDisabled = 0x10;
constexpr uint8_t kCmdAuxDisabled = 0x20;
constexpr uint8_t kCmdTranslate = 0x40;

// Output port bits.
constexpr uint8_t kOutResetLine = 0x01;  // active low: clearing it resets the CPU
constexpr uint8_t kOutA20 = 0x02;
constexpr uint8_t kOutKeyboardFull = 0x10;
constexpr uint8_t kOutAuxFull = 0x20;

// Controller commands written to port 0x64.
enum class Command : uint8_t {
    ReadRamFirst = 0x20,
    ReadRamLast = 0x3f,
    WriteRamFirst = 0x60,
    WriteRamLast = 0x7f,
    DisableAux = 0xa7,
    EnableAux = 0xa8,
    TestAux = 0xa9,
    SelfTest = 0xaa,
    TestKeyboard = 0xab,
    DisableKeyboard = 0xad,
    EnableKeyboard = 0xae,
    ReadInputPort = 0xc0,
    ReadOutputPort = 0xd0,
    WriteOutputPort = 0xd1,
    WriteKeyboardBuffer = 0xd2,
    WriteAuxBuffer = 0xd3,
    WriteAux = 0xd4,
    PulseFirst = 0xf0,
};

// Keyboard commands written to port 0x60.
enum class KeyboardCommand : uint8_t {
    SetLeds = 0xed,
    Echo = 0xee,
    ScancodeSet = 0xf0,
    Identify = 0xf2,
    Typematic = 0xf3,
    Enable = 0xf4,
    DisableDefaults = 0xf5,
    SetDefaults = 0xf6,
    Reset = 0xff,
};

constexpr uint8_t kAck = 0xfa;
constexpr uint8_t kResend = 0xfe;
constexpr uint8_t kSelfTestPassed = 0xaa;
constexpr size_t kOutputQueueLimit = 256;  // guards against a guest that never reads

}  // namespace

struct I8042::Controller {
    Controller(IrqLine& keyboard_irq_in, IrqLine& aux_irq_in, MachineControl& control_in)
        : keyboard_irq(keyboard_irq_in), aux_irq(aux_irq_in), control(control_in) {
        // What firmware leaves behind: interrupts for the keyboard, system flag, translation,
        // aux disabled.
        ram[0] = kCmdKeyboardInt | kCmdSystemFlag | kCmdTranslate | kCmdAuxDisabled;
    }

    void read_data(uint64_t offset, std::span<uint8_t> data);
    void write_data(uint64_t offset, std::span<const uint8_t> data);
    void read_status(uint64_t offset, std::span<uint8_t> data);
    void write_command(uint64_t offset, std::span<const uint8_t> data);

    void command(uint8_t value);
    void controller_data(uint8_t pending_command, uint8_t value);
    void keyboard_byte(uint8_t value);
    void queue(uint8_t byte, bool aux);
    [[nodiscard]] uint8_t status() const;
    [[nodiscard]] uint8_t command_byte() const { return ram[0]; }
    void update_irqs();

    IrqLine& keyboard_irq;
    IrqLine& aux_irq;
    MachineControl& control;
    mutable std::mutex mutex;

    std::deque<OutputByte> output;
    std::array<uint8_t, 32> ram{};
    uint8_t output_port = kOutResetLine | kOutA20;
    bool last_was_command = false;
    bool timeout = false;
    uint8_t pending_command = 0;      // controller command waiting for its data byte, or 0
    uint8_t keyboard_pending = 0;     // keyboard command waiting for its argument, or 0
    bool keyboard_scanning = true;
    uint8_t scancode_set = 2;
    uint8_t leds = 0;
    bool keyboard_level = false;
    bool aux_level = false;
};

I8042::I8042(IrqLine& keyboard_irq, IrqLine& aux_irq, MachineControl& control)
    : controller_(std::make_shared<Controller>(keyboard_irq, aux_irq, control)),
      data_port_(std::make_shared<Facet<Controller>>(controller_, &Controller::read_data, &Controller::write_data)),
      command_port_(
          std::make_shared<Facet<Controller>>(controller_, &Controller::read_status, &Controller::write_command)) {}

void I8042::keyboard_input(std::span<const uint8_t> scancodes) {
    std::lock_guard lock(controller_->mutex);
    if ((controller_->command_byte() & kCmdKeyboardDisabled) || !controller_->keyboard_scanning) return;
    for (uint8_t code : scancodes) controller_->queue(code, false);
    controller_->update_irqs();
}

void I8042::Controller::read_data(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex);
    std::ranges::fill(data, uint8_t{0xff});
    if (offset != 0 || data.empty()) return;
    if (output.empty()) {
        data[0] = 0;
        return;
    }
    data[0] = output.front().value;
    output.pop_front();
    timeout = false;
    update_irqs();
}

void I8042::Controller::write_data(uint64_t offset, std::span<const uint8_t> data) {
    std::lock_guard lock(mutex);
    if (offset != 0 || data.empty()) return;
    last_was_command = false;
    uint8_t value = data[0];
    if (pending_command != 0) {
        uint8_t waiting = pending_command;
        pending_command = 0;
        controller_data(waiting, value);
    } else {
        keyboard_byte(value);
    }
    update_irqs();
}

void I8042::Controller::read_status(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex);
    std::ranges::fill(data, uint8_t{0xff});
    if (offset == 0 && !data.empty()) data[0] = status();
}

void I8042::Controller::write_command(uint64_t offset, std::span<const uint8_t> data) {
    std::lock_guard lock(mutex);
    if (offset != 0 || data.empty()) return;
    last_was_command = true;
    command(data[0]);
    update_irqs();
}

void I8042::Controller::command(uint8_t value) {
    pending_command = 0;
    if (value >= static_cast<uint8_t>(Command::ReadRamFirst) && value <= static_cast<uint8_t>(Command::ReadRamLast)) {
        queue(ram[value & 0x1f], false);
        return;
    }
    if (value >= static_cast<uint8_t>(Command::WriteRamFirst) && value <= static_cast<uint8_t>(Command::WriteRamLast)) {
        pending_command = value;
        return;
    }
    if (value >= static_cast<uint8_t>(Command::PulseFirst)) {
        // Bits 3:0 select the output lines to pulse low; line 0 is the CPU reset.
        if ((value & kOutResetLine) == 0)
            control.request_stop({StopKind::Reset, 0, "i8042 reset line pulsed (command 0xfe)"});
        return;
    }
    switch (static_cast<Command>(value)) {
        case Command::DisableAux: ram[0] |= kCmdAuxDisabled; break;
        case Command::EnableAux: ram[0] &= static_cast<uint8_t>(~kCmdAuxDisabled); break;
        case Command::TestAux:
        case Command::TestKeyboard: queue(0x00, false); break;  // 0 = no clock/data line fault
        case Command::SelfTest:
            ram[0] |= kCmdSystemFlag;
            queue(0x55, false);
            break;
        case Command::DisableKeyboard: ram[0] |= kCmdKeyboardDisabled; break;
        case Command::EnableKeyboard: ram[0] &= static_cast<uint8_t>(~kCmdKeyboardDisabled); break;
        case Command::ReadInputPort: queue(0x80, false); break;  // keyboard not inhibited
        case Command::ReadOutputPort: {
            uint8_t port = static_cast<uint8_t>(output_port & (kOutResetLine | kOutA20));
            if (!output.empty()) port |= output.front().aux ? kOutAuxFull : kOutKeyboardFull;
            queue(port, false);
            break;
        }
        case Command::WriteOutputPort:
        case Command::WriteKeyboardBuffer:
        case Command::WriteAuxBuffer:
        case Command::WriteAux: pending_command = value; break;
        default: break;  // unknown commands are ignored, as by real controllers
    }
}

void I8042::Controller::controller_data(uint8_t waiting, uint8_t value) {
    if (waiting >= static_cast<uint8_t>(Command::WriteRamFirst) && waiting <= static_cast<uint8_t>(Command::WriteRamLast)) {
        ram[waiting & 0x1f] = value;
        return;
    }
    switch (static_cast<Command>(waiting)) {
        case Command::WriteOutputPort:
            output_port = value;
            if ((value & kOutResetLine) == 0)
                control.request_stop({StopKind::Reset, 0, "i8042 output port reset bit cleared"});
            break;
        case Command::WriteKeyboardBuffer: queue(value, false); break;
        case Command::WriteAuxBuffer: queue(value, true); break;
        case Command::WriteAux:
            // Nothing is plugged into the aux port: the controller times out waiting for the
            // device's clock and reports it with the timeout bit and a 0xfe byte.
            timeout = true;
            queue(kResend, true);
            break;
        default: break;
    }
}

void I8042::Controller::keyboard_byte(uint8_t value) {
    if (keyboard_pending != 0) {
        uint8_t command_waiting = keyboard_pending;
        keyboard_pending = 0;
        switch (static_cast<KeyboardCommand>(command_waiting)) {
            case KeyboardCommand::SetLeds: leds = static_cast<uint8_t>(value & 0x07); break;
            case KeyboardCommand::ScancodeSet:
                if (value == 0) {
                    queue(kAck, false);
                    queue(scancode_set, false);  // 0 asks for the current set
                    return;
                }
                if (value <= 3) scancode_set = value;
                break;
            default: break;  // typematic rate/delay: accepted and ignored
        }
        queue(kAck, false);
        return;
    }
    switch (static_cast<KeyboardCommand>(value)) {
        case KeyboardCommand::Reset:
            output.clear();
            keyboard_scanning = true;
            scancode_set = 2;
            leds = 0;
            queue(kAck, false);
            queue(kSelfTestPassed, false);
            break;
        case KeyboardCommand::Identify:
            queue(kAck, false);
            queue(0xab, false);
            queue(0x83, false);  // MF2 keyboard
            break;
        case KeyboardCommand::Echo: queue(0xee, false); break;
        case KeyboardCommand::SetLeds:
        case KeyboardCommand::ScancodeSet:
        case KeyboardCommand::Typematic:
            keyboard_pending = value;
            queue(kAck, false);
            break;
        case KeyboardCommand::Enable:
            keyboard_scanning = true;
            queue(kAck, false);
            break;
        case KeyboardCommand::DisableDefaults:
            keyboard_scanning = false;
            scancode_set = 2;
            queue(kAck, false);
            break;
        case KeyboardCommand::SetDefaults:
            scancode_set = 2;
            queue(kAck, false);
            break;
        default: queue(kAck, false); break;
    }
}

void I8042::Controller::queue(uint8_t byte, bool aux) {
    if (output.size() >= kOutputQueueLimit) return;
    output.push_back({byte, aux});
}

uint8_t I8042::Controller::status() const {
    uint8_t value = kStatusNotInhibited;
    if (ram[0] & kCmdSystemFlag) value |= kStatusSystemFlag;
    if (last_was_command) value |= kStatusLastWasCommand;
    if (timeout) value |= kStatusTimeout;
    if (!output.empty()) {
        value |= kStatusOutputFull;
        if (output.front().aux) value |= kStatusAuxData;
    }
    return value;
}

void I8042::State::encode(StateWriter& out) const {
    out.u32(static_cast<uint32_t>(output.size()));
    for (const OutputByte& byte : output) {
        out.u8(byte.value);
        out.boolean(byte.aux);
    }
    out.bytes(ram);
    out.u8(output_port);
    out.boolean(last_was_command);
    out.boolean(timeout);
    out.u8(pending_command);
    out.u8(keyboard_pending);
    out.boolean(keyboard_scanning);
    out.u8(scancode_set);
    out.u8(leds);
}

I8042::State I8042::State::decode(StateReader& in) {
    State s;
    s.output.resize(in.count(kOutputQueueLimit, "output queue length"));
    for (OutputByte& byte : s.output) {
        byte.value = in.u8("output byte");
        byte.aux = in.boolean("output byte channel");
    }
    s.ram = in.array<32>("controller RAM");
    s.output_port = in.u8("output port");
    s.last_was_command = in.boolean("last write was a command");
    s.timeout = in.boolean("timeout");
    s.pending_command = in.u8("pending controller command");
    s.keyboard_pending = in.u8("pending keyboard command");
    s.keyboard_scanning = in.boolean("keyboard scanning");
    s.scancode_set = in.u8_at_most(3, "scancode set");
    s.leds = in.u8("LEDs");
    return s;
}

I8042::State I8042::state() const {
    const Controller& c = *controller_;
    std::lock_guard lock(c.mutex);
    return {.output = {c.output.begin(), c.output.end()},
            .ram = c.ram,
            .output_port = c.output_port,
            .last_was_command = c.last_was_command,
            .timeout = c.timeout,
            .pending_command = c.pending_command,
            .keyboard_pending = c.keyboard_pending,
            .keyboard_scanning = c.keyboard_scanning,
            .scancode_set = c.scancode_set,
            .leds = c.leds};
}

Result<void> I8042::set_state(const State& s) {
    if (s.output.size() > kOutputQueueLimit)
        return fail("{} bytes in the output queue are over its limit of {}", s.output.size(), kOutputQueueLimit);
    if (s.scancode_set > 3) return fail("scancode set {} does not exist", s.scancode_set);
    Controller& c = *controller_;
    std::lock_guard lock(c.mutex);
    c.output.assign(s.output.begin(), s.output.end());
    c.ram = s.ram;
    c.output_port = s.output_port;
    c.last_was_command = s.last_was_command;
    c.timeout = s.timeout;
    c.pending_command = s.pending_command;
    c.keyboard_pending = s.keyboard_pending;
    c.keyboard_scanning = s.keyboard_scanning;
    c.scancode_set = s.scancode_set;
    c.leds = s.leds;
    // The interrupt controllers were restored with IRQ1's and IRQ12's levels; lines that are up
    // are driven up again (no change there).
    c.keyboard_level = c.aux_level = false;
    c.update_irqs();
    return {};
}

void I8042::Controller::update_irqs() {
    bool has_output = !output.empty();
    bool keyboard = has_output && !output.front().aux && (ram[0] & kCmdKeyboardInt);
    bool aux = has_output && output.front().aux && (ram[0] & kCmdAuxInt);
    if (keyboard != keyboard_level) {
        keyboard_level = keyboard;
        keyboard_irq.set_level(keyboard);
    }
    if (aux != aux_level) {
        aux_level = aux;
        aux_irq.set_level(aux);
    }
}

}  // namespace strata
