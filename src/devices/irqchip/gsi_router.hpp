// The PC's interrupt wiring for engines without in-kernel interrupt controllers: which 8259 input
// and which IOAPIC pin each global system interrupt (GSI) reaches, as Strata's MP table
// (loader/mptable.cpp) and ACPI MADT (loader/acpi_tables.cpp) describe it to the guest, and as
// the kvm engine routes KVM's in-kernel chips (KvmEngine::set_gsi_routing).
//
// State:    none; each line forwards every level it is given.
// Features: line(gsi) for GSI 0-23. GSI n < 16 is ISA IRQ n: it drives 8259 input n and IOAPIC
//           pin n, except that IRQ 0 (the PIT) drives IOAPIC pin 2 (the interrupt source
//           override both tables carry) and GSI 2 drives nothing (8259 IR2 is the cascade, and
//           pin 2 belongs to IRQ 0). GSI 16-23 drive IOAPIC pins 16-23 only.
// Missing:  several devices sharing one GSI (each line has one source; a wired OR is the board's);
//           IOAPIC pin 0 carries nothing (the 8259s reach the CPUs through LINT0 instead).
// Spec:     Intel MultiProcessor Specification 1.4 §5.1 (default configuration: IRQ0 on pin 2);
//           ACPI 6.5 §5.2.12.5 (interrupt source override).
#pragma once

#include <array>

#include "bus/irq_line.hpp"
#include "devices/irqchip/ioapic.hpp"
#include "devices/irqchip/pic8259.hpp"

namespace strata {

class GsiRouter {
public:
    static constexpr unsigned kGsis = IoApic::kPins;

    // `pic` and `ioapic` must outlive the router.
    GsiRouter(Pic8259Pair& pic, IoApic& ioapic);
    GsiRouter(const GsiRouter&) = delete;
    GsiRouter& operator=(const GsiRouter&) = delete;

    // The line of `gsi`, or nullptr beyond GSI 23. Thread-safe, as the chips are.
    [[nodiscard]] IrqLine* line(unsigned gsi);

private:
    class Line final : public IrqLine {
    public:
        void set_level(bool asserted) override {
            if (pic_input) pic_input->set_level(asserted);
            if (ioapic_input) ioapic_input->set_level(asserted);
        }
        IrqLine* pic_input = nullptr;
        IrqLine* ioapic_input = nullptr;
    };

    std::array<Line, kGsis> lines_{};
};

}  // namespace strata
