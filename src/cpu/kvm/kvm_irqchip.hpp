// KVM's in-kernel 8259 pair, IOAPIC and PIT in the board's neutral form (IrqchipState), and back:
// what lets a snapshot taken under the kvm engine restore under the soft engine, whose board has
// Strata's own devices, and the other way round.
//
// The PIT: KVM keeps, per channel, the count register and the host time it was loaded
// (count_load_time, CLOCK_MONOTONIC); Strata keeps the count in progress as "CE held run_count at
// input tick run_start" on the machine clock. A channel converts as a count loaded at the tick
// its load time falls on; what KVM does not keep (a new count of modes 2/3 waiting for the end of
// the period, a count suspended by GATE, NULL COUNT) converts as the count having taken effect.
// Missing: KVM's PIC has no LTIM (level-triggered mode for all inputs), single mode or buffered
// mode, which stay at PC values; its IOAPIC's irr is taken as the input levels.
#pragma once

#include <linux/kvm.h>

#include "devices/irqchip/irqchip_state.hpp"

namespace strata::kvm {

// The times: now on the machine clock and on the host's CLOCK_MONOTONIC, taken together.
struct ClockPair {
    int64_t machine_ns = 0;
    int64_t host_ns = 0;
};

Pic8259Pair::ChipState from_kvm(const kvm_pic_state& pic, bool master);
kvm_pic_state to_kvm(const Pic8259Pair::ChipState& chip);
IoApic::State from_kvm(const kvm_ioapic_state& ioapic);
kvm_ioapic_state to_kvm(const IoApic::State& ioapic, uint64_t base_address);
Pit8254::State from_kvm(const kvm_pit_state2& pit, ClockPair now);
kvm_pit_state2 to_kvm(const Pit8254::State& pit, ClockPair now);

}  // namespace strata::kvm
