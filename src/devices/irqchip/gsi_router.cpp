#include "devices/irqchip/gsi_router.hpp"

#include "memory/pc_layout.hpp"

namespace strata {
namespace {

constexpr unsigned kIsaIrqs = Pic8259Pair::kInputs;
constexpr unsigned kPitOverridePin = 2;  // where the MP table and MADT send ISA IRQ 0

}  // namespace

GsiRouter::GsiRouter(Pic8259Pair& pic, IoApic& ioapic) {
    static_assert(kGsis == pc::kIoApicPins);
    for (unsigned gsi = 0; gsi < kGsis; ++gsi) {
        if (gsi == Pic8259Pair::kCascadeIr) continue;  // GSI 2: nothing is wired to it
        Line& line = lines_[gsi];
        if (gsi < kIsaIrqs) line.pic_input = &pic.input(gsi);
        line.ioapic_input = &ioapic.input(gsi == pc::kIrqPit ? kPitOverridePin : gsi);
    }
}

IrqLine* GsiRouter::line(unsigned gsi) { return gsi < kGsis ? &lines_[gsi] : nullptr; }

}  // namespace strata
