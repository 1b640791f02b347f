// The interrupt controllers and the PIT of a PC as a snapshot holds them ("irqchip" in
// docs/snapshot-format.md), in the form of Strata's own devices: the soft engine's board has
// these devices themselves, and the kvm engine converts KVM's in-kernel ones to and from it
// (cpu/kvm/kvm_irqchip.cpp), so that one snapshot format serves both engines.
#pragma once

#include "base/state_stream.hpp"
#include "devices/irqchip/ioapic.hpp"
#include "devices/irqchip/pic8259.hpp"
#include "devices/irqchip/pit8254.hpp"

namespace strata {

struct IrqchipState {
    Pic8259Pair::State pic;
    IoApic::State ioapic;
    Pit8254::State pit;

    void encode(StateWriter& out) const;
    static IrqchipState decode(StateReader& in);
};

}  // namespace strata
