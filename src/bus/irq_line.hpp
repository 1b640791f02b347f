// An interrupt line as a device sees it. The kvm engine implements it with KVM_IRQ_LINE (or an
// irqfd); the soft engine with its own PIC/IOAPIC models; tests with a recording fake.
// Devices raise a level-triggered line while their condition holds; ISA edge-triggered devices
// call pulse(). Following kvmtool, a device calls set_level only when its level changes.
#pragma once

namespace strata {

class IrqLine {
public:
    virtual ~IrqLine() = default;
    virtual void set_level(bool asserted) = 0;
    void raise() { set_level(true); }
    void lower() { set_level(false); }
    void pulse() {
        set_level(true);
        set_level(false);
    }
};

}  // namespace strata
