#include "cpu/kvm/kvm_irqchip.hpp"

#include <algorithm>

namespace strata::kvm {

namespace {

constexpr int64_t kNsPerSecond = 1'000'000'000;
constexpr unsigned kMasterCascade = 1u << Pic8259Pair::kCascadeIr;  // ICW3 of the master: a slave on IR2
constexpr unsigned kSlaveId = Pic8259Pair::kCascadeIr;               // ICW3 of the slave: its ID

// KVM's byte flip-flop states (arch/x86/kvm/i8254.h RW_STATE_*).
constexpr uint8_t kMsb = 2, kWord0 = 3, kWord1 = 4;  // and 1: LSB only
constexpr uint8_t kModeMask = 0x7;
constexpr uint8_t kNeverProgrammed = 0xff;  // KVM's mode of a channel no control word has reached

int64_t tick_at(int64_t ns) {
    if (ns <= 0) return 0;
    return ns / kNsPerSecond * Pit8254::kInputHz + ns % kNsPerSecond * Pit8254::kInputHz / kNsPerSecond;
}

int64_t ns_at(int64_t tick) {
    if (tick <= 0) return 0;
    return tick / Pit8254::kInputHz * kNsPerSecond + tick % Pit8254::kInputHz * kNsPerSecond / Pit8254::kInputHz;
}

}  // namespace

Pic8259Pair::ChipState from_kvm(const kvm_pic_state& pic, bool master) {
    Pic8259Pair::ChipState chip;
    chip.irr = pic.irr;
    chip.isr = pic.isr;
    chip.imr = pic.imr;
    chip.input_levels = pic.last_irr;
    chip.elcr = pic.elcr;
    chip.vector_base = static_cast<uint8_t>(pic.irq_base & 0xf8);
    chip.cascade = static_cast<uint8_t>(master ? kMasterCascade : kSlaveId);
    chip.highest_priority_ir = static_cast<uint8_t>(pic.priority_add & 7);
    chip.init_step = static_cast<uint8_t>(std::min<unsigned>(pic.init_state, 3));
    chip.icw4_needed = pic.init4 != 0;
    chip.mode_8086 = true;
    chip.auto_eoi = pic.auto_eoi != 0;
    chip.special_fully_nested = pic.special_fully_nested_mode != 0;
    chip.rotate_on_auto_eoi = pic.rotate_on_auto_eoi != 0;
    chip.read_isr = pic.read_reg_select != 0;
    chip.poll = pic.poll != 0;
    chip.special_mask = pic.special_mask != 0;
    return chip;
}

kvm_pic_state to_kvm(const Pic8259Pair::ChipState& chip) {
    kvm_pic_state pic{};
    pic.last_irr = chip.input_levels;
    pic.irr = chip.irr;
    pic.imr = chip.imr;
    pic.isr = chip.isr;
    pic.priority_add = chip.highest_priority_ir;
    pic.irq_base = chip.vector_base;
    pic.read_reg_select = chip.read_isr;
    pic.poll = chip.poll;
    pic.special_mask = chip.special_mask;
    pic.init_state = chip.init_step;
    pic.auto_eoi = chip.auto_eoi;
    pic.rotate_on_auto_eoi = chip.rotate_on_auto_eoi;
    pic.special_fully_nested_mode = chip.special_fully_nested;
    pic.init4 = chip.icw4_needed;
    pic.elcr = chip.elcr;
    return pic;
}

IoApic::State from_kvm(const kvm_ioapic_state& ioapic) {
    IoApic::State s;
    s.id = static_cast<uint8_t>(ioapic.id & 0xf);
    s.register_select = static_cast<uint8_t>(ioapic.ioregsel);
    for (unsigned pin = 0; pin < IoApic::kPins; ++pin) s.redirection[pin] = ioapic.redirtbl[pin].bits;
    s.input_levels = ioapic.irr & ((1u << IoApic::kPins) - 1);
    return s;
}

kvm_ioapic_state to_kvm(const IoApic::State& s, uint64_t base_address) {
    kvm_ioapic_state ioapic{};
    ioapic.base_address = base_address;
    ioapic.ioregsel = s.register_select;
    ioapic.id = s.id;
    ioapic.irr = s.input_levels;
    for (unsigned pin = 0; pin < IoApic::kPins; ++pin) ioapic.redirtbl[pin].bits = s.redirection[pin];
    return ioapic;
}

Pit8254::State from_kvm(const kvm_pit_state2& pit, ClockPair now) {
    Pit8254::State s;
    for (unsigned i = 0; i < 3; ++i) {
        const kvm_pit_channel_state& k = pit.channels[i];
        Pit8254::CounterState& c = s.counters[i];
        c.gate = i < 2 || k.gate != 0;
        if (k.mode == kNeverProgrammed) continue;  // as the PIT comes out of reset
        c.mode_bits = k.mode & kModeMask;
        c.mode = static_cast<uint8_t>(c.mode_bits >= 6 ? c.mode_bits - 4 : c.mode_bits);
        c.access = static_cast<Pit8254::Access>(std::clamp<unsigned>(k.rw_mode, 1, 3));
        c.bcd = k.bcd != 0;
        c.count = std::clamp<uint32_t>(k.count == 0 ? 0x10000 : k.count, 1, 0x10000);
        c.count_written = true;
        c.null_count_until = 0;
        c.write_high_next = c.access == Pit8254::Access::LowThenHigh && k.write_state == kWord1;
        c.written_low = k.write_latch;
        c.count_latched = k.count_latched != 0;
        c.latched_count = k.latched_count;
        c.read_high_next = c.access == Pit8254::Access::LowThenHigh &&
                           (c.count_latched ? k.count_latched == kMsb : k.read_state == kWord1);
        c.status_latched = k.status_latched != 0;
        c.latched_status = k.status;
        // The count in progress since its load, as far back on the machine clock as KVM's load
        // time lies behind the host's now.
        c.counting = true;
        int64_t since_load = std::max<int64_t>(0, now.host_ns - k.count_load_time);
        c.run_start = tick_at(std::max<int64_t>(0, now.machine_ns - since_load));
        c.run_count = c.count;
    }
    s.port_b = static_cast<uint8_t>((pit.channels[2].gate ? 1 : 0) | (pit.flags & KVM_PIT_FLAGS_SPEAKER_DATA_ON ? 2 : 0));
    return s;
}

kvm_pit_state2 to_kvm(const Pit8254::State& s, ClockPair now) {
    kvm_pit_state2 pit{};
    for (unsigned i = 0; i < 3; ++i) {
        const Pit8254::CounterState& c = s.counters[i];
        kvm_pit_channel_state& k = pit.channels[i];
        k.gate = c.gate;
        if (!c.counting && !c.count_written && c.mode_bits == 0 && c.count == 0x10000) {
            k.mode = kNeverProgrammed;
            continue;
        }
        bool switched = c.switch_pending;  // KVM has no pending count: the new one takes effect
        uint32_t count = switched ? c.count : (c.counting ? c.run_count : c.count);
        k.count = count == 0x10000 ? 0 : count;
        k.latched_count = c.latched_count;
        bool word = c.access == Pit8254::Access::LowThenHigh;
        uint8_t rw = static_cast<uint8_t>(c.access == Pit8254::Access::Latch ? Pit8254::Access::LowThenHigh : c.access);
        k.count_latched = c.count_latched ? static_cast<uint8_t>(word ? (c.read_high_next ? kMsb : kWord0) : rw) : 0;
        k.status_latched = c.status_latched;
        k.status = c.latched_status;
        k.read_state = word ? (c.read_high_next ? kWord1 : kWord0) : rw;
        k.write_state = word ? (c.write_high_next ? kWord1 : kWord0) : rw;
        k.write_latch = c.written_low;
        k.rw_mode = rw;
        k.mode = c.mode_bits;
        k.bcd = c.bcd;
        k.gate = c.gate;
        int64_t start_tick = switched ? c.switch_start : c.run_start;
        int64_t since_load = std::max<int64_t>(0, now.machine_ns - ns_at(start_tick));
        k.count_load_time = now.host_ns - since_load;
    }
    if (s.port_b & 2) pit.flags |= KVM_PIT_FLAGS_SPEAKER_DATA_ON;
    return pit;
}

}  // namespace strata::kvm
