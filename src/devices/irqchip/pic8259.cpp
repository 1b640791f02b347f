#include "devices/irqchip/pic8259.hpp"

#include <mutex>
#include <optional>
#include <type_traits>

#include "base/error.hpp"
#include "devices/facet.hpp"

namespace strata {
namespace {

using ChipState = Pic8259Pair::ChipState;

// The two addresses of each chip (datasheet "Initialization Command Words": A0 = 0 / 1).
enum class ChipPort : uint64_t {
    Command = 0,  // write: ICW1, OCW2, OCW3; read: IRR, ISR or poll
    Data = 1,     // write: ICW2-ICW4 during initialization, else OCW1; read: IMR or poll
};

// Command-port writes are told apart by bits 4-3 (datasheet Figures 7 and 8).
constexpr uint8_t kIcw1 = 0x10;
constexpr uint8_t kOcw3 = 0x08;

// ICW1 bits.
constexpr uint8_t kIcw1Ic4 = 0x01;   // ICW4 follows
constexpr uint8_t kIcw1Sngl = 0x02;  // single chip, no ICW3
constexpr uint8_t kIcw1Ltim = 0x08;  // level-triggered inputs

// ICW4 bits.
constexpr uint8_t kIcw4Upm = 0x01;   // 8086/88 mode
constexpr uint8_t kIcw4Aeoi = 0x02;  // automatic EOI
constexpr uint8_t kIcw4Sfnm = 0x10;  // special fully nested mode

// OCW2 commands: bits 7-5 R, SL, EOI; bits 2-0 the IR level a specific command names.
enum class Ocw2 : uint8_t {
    RotateInAutoEoiClear = 0,
    NonSpecificEoi = 1,
    NoOperation = 2,
    SpecificEoi = 3,
    RotateInAutoEoiSet = 4,
    RotateOnNonSpecificEoi = 5,
    SetPriority = 6,
    RotateOnSpecificEoi = 7,
};

// OCW3 bits.
constexpr uint8_t kOcw3ReadIsr = 0x01;       // RIS, effective with RR
constexpr uint8_t kOcw3ReadRegister = 0x02;  // RR
constexpr uint8_t kOcw3Poll = 0x04;
constexpr uint8_t kOcw3SpecialMask = 0x20;   // SMM, effective with ESMM
constexpr uint8_t kOcw3EnableSpecialMask = 0x40;

// PIIX4 ELCR1/ELCR2: IRQ 0, 1, 2 (timer, keyboard, cascade), 8 (RTC) and 13 (FPU) are always edge.
constexpr uint8_t kMasterElcrWritable = 0xf8;
constexpr uint8_t kSlaveElcrWritable = 0xde;

constexpr uint8_t kSpuriousIr = 7;
constexpr unsigned kNoRequest = 8;  // priority_of's answer for an empty set
constexpr uint8_t kPollInterrupt = 0x80;

constexpr uint8_t bit(unsigned ir) { return static_cast<uint8_t>(1u << (ir & 7)); }

// IRs whose requests are level-sensitive.
uint8_t level_sensitive(const ChipState& chip) { return chip.level_triggered ? uint8_t{0xff} : chip.elcr; }

// A level-sensitive IR's request is its line; an edge-sensitive one keeps its latched request.
void sync_level_requests(ChipState& chip) {
    uint8_t level = level_sensitive(chip);
    chip.irr = static_cast<uint8_t>((chip.irr & ~level) | (chip.input_levels & level));
}

void set_line(ChipState& chip, unsigned ir, bool high) {
    uint8_t mask = bit(ir);
    bool was_high = (chip.input_levels & mask) != 0;
    chip.input_levels = static_cast<uint8_t>(high ? chip.input_levels | mask : chip.input_levels & ~mask);
    if (level_sensitive(chip) & mask)
        chip.irr = static_cast<uint8_t>(high ? chip.irr | mask : chip.irr & ~mask);
    else if (high && !was_high)
        chip.irr |= mask;  // the edge sense latch: a rising edge requests until INTA
}

// Priority 0 (highest) to 7 of the best IR in `irs` under the current rotation; kNoRequest if none.
unsigned priority_of(const ChipState& chip, uint8_t irs) {
    for (unsigned priority = 0; priority < 8; ++priority)
        if (irs & bit(priority + chip.highest_priority_ir)) return priority;
    return kNoRequest;
}

unsigned ir_at(const ChipState& chip, unsigned priority) { return (priority + chip.highest_priority_ir) & 7; }

// The IR this chip would signal on INT, if any: the best unmasked request that in-service levels
// do not block (datasheet "Fully Nested Mode"). In special mask mode masked in-service levels do
// not block; in special fully nested mode an IR with a slave is not blocked by its own in-service
// bit, so that a slave's higher-priority requests get through ("Special Fully Nest Mode").
std::optional<unsigned> highest_request(const ChipState& chip, uint8_t cascade_irs) {
    unsigned requested = priority_of(chip, static_cast<uint8_t>(chip.irr & ~chip.imr));
    if (requested == kNoRequest) return std::nullopt;
    uint8_t blocking = chip.isr;
    if (chip.special_mask) blocking = static_cast<uint8_t>(blocking & ~chip.imr);
    unsigned in_service = priority_of(chip, blocking);
    unsigned ir = ir_at(chip, requested);
    if (requested < in_service) return ir;
    if (requested == in_service && chip.special_fully_nested && (cascade_irs & bit(ir))) return ir;
    return std::nullopt;
}

// INTA (or a poll) moves the request into service; an edge request is consumed, a level one
// stays as long as its line is high.
void move_into_service(ChipState& chip, unsigned ir) {
    uint8_t mask = bit(ir);
    chip.isr |= mask;
    if (!(level_sensitive(chip) & mask)) chip.irr = static_cast<uint8_t>(chip.irr & ~mask);
    if (chip.auto_eoi) {
        if (chip.rotate_on_auto_eoi) chip.highest_priority_ir = static_cast<uint8_t>((ir + 1) & 7);
        chip.isr = static_cast<uint8_t>(chip.isr & ~mask);
    }
}

// ICW1 (datasheet "Initialization Command Words"): IMR cleared, IR7 lowest priority, special
// mask mode off, IRR selected for reading, the edge sense latches reset (an edge input must go
// low and high again), and the ICW4 functions cleared until an ICW4 sets them.
void initialize(ChipState& chip, uint8_t icw1) {
    chip.level_triggered = (icw1 & kIcw1Ltim) != 0;
    chip.single = (icw1 & kIcw1Sngl) != 0;
    chip.icw4_needed = (icw1 & kIcw1Ic4) != 0;
    chip.isr = 0;
    chip.imr = 0;
    chip.irr = static_cast<uint8_t>(chip.input_levels & level_sensitive(chip));
    chip.highest_priority_ir = 0;
    chip.special_mask = false;
    chip.read_isr = false;
    chip.poll = false;
    chip.mode_8086 = false;
    chip.auto_eoi = false;
    chip.buffered_mode = 0;
    chip.special_fully_nested = false;
    chip.rotate_on_auto_eoi = false;
    chip.init_step = 1;
}

void write_ocw2(ChipState& chip, uint8_t value) {
    unsigned level = value & 7;
    auto clear_highest_in_service = [&]() -> std::optional<unsigned> {
        unsigned priority = priority_of(chip, chip.isr);
        if (priority == kNoRequest) return std::nullopt;
        unsigned ir = ir_at(chip, priority);
        chip.isr = static_cast<uint8_t>(chip.isr & ~bit(ir));
        return ir;
    };
    switch (static_cast<Ocw2>(value >> 5)) {
        case Ocw2::RotateInAutoEoiClear: chip.rotate_on_auto_eoi = false; break;
        case Ocw2::RotateInAutoEoiSet: chip.rotate_on_auto_eoi = true; break;
        case Ocw2::NonSpecificEoi: clear_highest_in_service(); break;
        case Ocw2::RotateOnNonSpecificEoi:
            if (auto ir = clear_highest_in_service()) chip.highest_priority_ir = static_cast<uint8_t>((*ir + 1) & 7);
            break;
        case Ocw2::SpecificEoi: chip.isr = static_cast<uint8_t>(chip.isr & ~bit(level)); break;
        case Ocw2::RotateOnSpecificEoi:
            chip.isr = static_cast<uint8_t>(chip.isr & ~bit(level));
            chip.highest_priority_ir = static_cast<uint8_t>((level + 1) & 7);
            break;
        case Ocw2::SetPriority: chip.highest_priority_ir = static_cast<uint8_t>((level + 1) & 7); break;
        case Ocw2::NoOperation: break;
    }
}

void write_ocw3(ChipState& chip, uint8_t value) {
    if (value & kOcw3Poll) chip.poll = true;
    if (value & kOcw3ReadRegister) chip.read_isr = (value & kOcw3ReadIsr) != 0;
    if (value & kOcw3EnableSpecialMask) chip.special_mask = (value & kOcw3SpecialMask) != 0;
}

void write_data(ChipState& chip, uint8_t value) {
    switch (chip.init_step) {
        case 1:  // ICW2: T7-T3 of the vector (8086 mode)
            chip.vector_base = static_cast<uint8_t>(value & 0xf8);
            chip.init_step = chip.single ? (chip.icw4_needed ? 3 : 0) : 2;
            break;
        case 2:  // ICW3
            chip.cascade = value;
            chip.init_step = chip.icw4_needed ? 3 : 0;
            break;
        case 3:  // ICW4
            chip.mode_8086 = (value & kIcw4Upm) != 0;
            chip.auto_eoi = (value & kIcw4Aeoi) != 0;
            chip.buffered_mode = static_cast<uint8_t>((value >> 2) & 3);
            chip.special_fully_nested = (value & kIcw4Sfnm) != 0;
            chip.init_step = 0;
            break;
        default: chip.imr = value; break;  // OCW1
    }
}

// What SeaBIOS leaves behind (see the constructor's comment in the header).
ChipState firmware_chip(uint8_t vector_base, uint8_t cascade, uint8_t imr) {
    ChipState chip;
    chip.vector_base = vector_base;
    chip.cascade = cascade;
    chip.imr = imr;
    chip.icw4_needed = true;
    chip.mode_8086 = true;
    return chip;
}

ChipState sanitized(ChipState chip, uint8_t elcr_writable) {
    chip.vector_base &= 0xf8;
    chip.highest_priority_ir &= 7;
    chip.buffered_mode &= 3;
    chip.elcr &= elcr_writable;
    if (chip.init_step > 3) chip.init_step = 0;
    sync_level_requests(chip);
    return chip;
}

}  // namespace

struct Pic8259Pair::Core {
    class Input final : public IrqLine {
    public:
        void set_level(bool asserted) override { core->set_input(irq, asserted); }
        Core* core = nullptr;
        unsigned irq = 0;
    };

    explicit Core(IrqLine& output_in) : output(output_in) {
        for (unsigned irq = 0; irq < kInputs; ++irq) {
            inputs[irq].core = this;
            inputs[irq].irq = irq;
        }
    }

    void read_master(uint64_t offset, std::span<uint8_t> data) { read_chip(false, offset, data); }
    void write_master(uint64_t offset, std::span<const uint8_t> data) { write_chip(false, offset, data); }
    void read_slave(uint64_t offset, std::span<uint8_t> data) { read_chip(true, offset, data); }
    void write_slave(uint64_t offset, std::span<const uint8_t> data) { write_chip(true, offset, data); }
    void read_elcr(uint64_t offset, std::span<uint8_t> data);
    void write_elcr(uint64_t offset, std::span<const uint8_t> data);

    void read_chip(bool slave_chip, uint64_t offset, std::span<uint8_t> data);
    void write_chip(bool slave_chip, uint64_t offset, std::span<const uint8_t> data);
    void set_input(unsigned irq, bool high);
    uint8_t acknowledge();
    uint8_t poll(bool slave_chip);

    [[nodiscard]] uint8_t master_cascade_irs() const { return master.single ? uint8_t{0} : master.cascade; }
    // After every change: the slave's INT drives master IR2, the master's INT the output.
    void update_outputs();
    // Runs `change` on the state under the mutex, then signals INT without it (see the header).
    template <class Change>
    auto with_state(Change&& change);
    void signal_output();

    IrqLine& output;
    std::array<Input, kInputs> inputs{};

    std::mutex mutex;
    ChipState master = firmware_chip(0x08, bit(kCascadeIr), 0xfb);
    ChipState slave = firmware_chip(0x70, kCascadeIr, 0xf3);
    bool int_level = false;     // the master's INT as the state gives it
    bool output_dirty = false;  // int_level may differ from what was signalled
    bool output_busy = false;   // a thread is signalling; it re-reads int_level before it stops
    bool signalled = false;     // the output's level; only the thread with output_busy touches it
};

template <class Change>
auto Pic8259Pair::Core::with_state(Change&& change) {
    bool must_signal = false;
    auto finish = [&] {
        update_outputs();
        output_dirty = true;
        must_signal = !output_busy;
        output_busy = true;
    };
    if constexpr (std::is_void_v<decltype(change())>) {
        {
            std::lock_guard lock(mutex);
            change();
            finish();
        }
        if (must_signal) signal_output();
    } else {
        decltype(change()) result;
        {
            std::lock_guard lock(mutex);
            result = change();
            finish();
        }
        if (must_signal) signal_output();
        return result;
    }
}

// Signals the newest INT level until no thread has changed it meanwhile. A change made while this
// runs (by another thread, or by a call back from the output's set_level) only marks it dirty.
void Pic8259Pair::Core::signal_output() {
    for (;;) {
        bool level = false;
        {
            std::lock_guard lock(mutex);
            if (!output_dirty) {
                output_busy = false;
                return;
            }
            output_dirty = false;
            level = int_level;
        }
        if (level != signalled) {
            signalled = level;
            output.set_level(level);
        }
    }
}

void Pic8259Pair::Core::update_outputs() {
    bool slave_int = highest_request(slave, 0).has_value();
    set_line(master, kCascadeIr, slave_int);
    // While the slave's INT is high it keeps master IR2 requested, without a new edge: after an
    // INTA in auto-EOI mode a slave with a second request never drops INT, and that request would
    // otherwise wait forever (KVM's 8259 pulses IR2 on every update for the same reason). A
    // request that vanishes still leaves IR2 latched: the spurious IRQ15 of real PCs.
    if (slave_int) master.irr |= bit(kCascadeIr);
    int_level = highest_request(master, master_cascade_irs()).has_value();
}

void Pic8259Pair::Core::set_input(unsigned irq, bool high) {
    if (irq == kCascadeIr) return;  // master IR2 is the slave's INT (see the header)
    with_state([&] { set_line(irq < 8 ? master : slave, irq & 7, high); });
}

uint8_t Pic8259Pair::Core::acknowledge() {
    return with_state([&]() -> uint8_t {
        auto ir = highest_request(master, master_cascade_irs());
        if (!ir) return static_cast<uint8_t>(master.vector_base + kSpuriousIr);  // nothing goes into service
        uint8_t vector = static_cast<uint8_t>(master.vector_base + *ir);
        if (master_cascade_irs() & bit(*ir)) {
            // The slave puts its vector on the bus in the second INTA pulse; if its request went
            // away, it answers with IR7's vector and sets no ISR bit, but master IR2 is in service
            // anyway (the guest's spurious-IRQ15 handler EOIs the master only).
            if (auto slave_ir = highest_request(slave, 0)) {
                vector = static_cast<uint8_t>(slave.vector_base + *slave_ir);
                move_into_service(slave, *slave_ir);
            } else {
                vector = static_cast<uint8_t>(slave.vector_base + kSpuriousIr);
            }
        }
        move_into_service(master, *ir);
        return vector;
    });
}

// Poll mode (datasheet "The Poll Command"): the read is this chip's INTA; bit 7 says whether
// there was a request, bits 2-0 its IR.
uint8_t Pic8259Pair::Core::poll(bool slave_chip) {
    ChipState& chip = slave_chip ? slave : master;
    chip.poll = false;
    auto ir = highest_request(chip, slave_chip ? uint8_t{0} : master_cascade_irs());
    if (!ir) return 0;
    move_into_service(chip, *ir);
    return static_cast<uint8_t>(kPollInterrupt | *ir);
}

// Accesses wider than a byte reach the chip's two ports one byte after the other, as the ISA
// bus splits them; bytes beyond the window read all ones and are dropped.
void Pic8259Pair::Core::read_chip(bool slave_chip, uint64_t offset, std::span<uint8_t> data) {
    with_state([&] {
        ChipState& chip = slave_chip ? slave : master;
        for (size_t i = 0; i < data.size(); ++i) {
            uint64_t port = offset + i;
            if (port < offset || port > static_cast<uint64_t>(ChipPort::Data)) {
                data[i] = 0xff;
            } else if (chip.poll) {
                data[i] = poll(slave_chip);
            } else if (port == static_cast<uint64_t>(ChipPort::Command)) {
                data[i] = chip.read_isr ? chip.isr : chip.irr;
            } else {
                data[i] = chip.imr;
            }
        }
    });
}

void Pic8259Pair::Core::write_chip(bool slave_chip, uint64_t offset, std::span<const uint8_t> data) {
    with_state([&] {
        ChipState& chip = slave_chip ? slave : master;
        for (size_t i = 0; i < data.size(); ++i) {
            uint64_t port = offset + i;
            uint8_t value = data[i];
            if (port < offset || port > static_cast<uint64_t>(ChipPort::Data)) continue;
            if (port == static_cast<uint64_t>(ChipPort::Data))
                write_data(chip, value);
            else if (value & kIcw1)
                initialize(chip, value);
            else if (value & kOcw3)
                write_ocw3(chip, value);
            else
                write_ocw2(chip, value);
        }
    });
}

void Pic8259Pair::Core::read_elcr(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex);
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t port = offset + i;
        data[i] = port == 0 ? master.elcr : port == 1 ? slave.elcr : uint8_t{0xff};
    }
}

void Pic8259Pair::Core::write_elcr(uint64_t offset, std::span<const uint8_t> data) {
    with_state([&] {
        for (size_t i = 0; i < data.size(); ++i) {
            uint64_t port = offset + i;
            if (port == 0) master.elcr = static_cast<uint8_t>(data[i] & kMasterElcrWritable);
            if (port == 1) slave.elcr = static_cast<uint8_t>(data[i] & kSlaveElcrWritable);
        }
        // An IR made level-sensitive requests from now on exactly while its line is high.
        sync_level_requests(master);
        sync_level_requests(slave);
    });
}

Pic8259Pair::Pic8259Pair(IrqLine& interrupt_output)
    : core_(std::make_shared<Core>(interrupt_output)),
      master_port_(std::make_shared<Facet<Core>>(core_, &Core::read_master, &Core::write_master)),
      slave_port_(std::make_shared<Facet<Core>>(core_, &Core::read_slave, &Core::write_slave)),
      elcr_port_(std::make_shared<Facet<Core>>(core_, &Core::read_elcr, &Core::write_elcr)) {}

Pic8259Pair::~Pic8259Pair() = default;

IrqLine& Pic8259Pair::input(unsigned irq) {
    if (irq >= kInputs) panic("Pic8259Pair::input: ISA IRQs are 0-15");
    return core_->inputs[irq];
}

uint8_t Pic8259Pair::acknowledge() { return core_->acknowledge(); }

Pic8259Pair::State Pic8259Pair::state() const {
    std::lock_guard lock(core_->mutex);
    return State{core_->master, core_->slave};
}

void Pic8259Pair::set_state(const State& state) {
    core_->with_state([&] {
        core_->master = sanitized(state.master, kMasterElcrWritable);
        core_->slave = sanitized(state.slave, kSlaveElcrWritable);
    });
}

}  // namespace strata
