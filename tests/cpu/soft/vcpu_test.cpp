// A soft vCPU as the board wires it: the boot CPU's local APIC in virtual wire mode, so that the
// 8259 pair's interrupts reach a guest that never programmed the APIC (a real-mode guest), while
// the application processors' LINT0 stays masked.
#include <gtest/gtest.h>

#include "cpu/soft/mmu/code_pages.hpp"
#include "cpu/soft/soft_vcpu.hpp"
#include "devices/apic_fakes.hpp"
#include "devices/irqchip/apic_router.hpp"
#include "devices/irqchip/pic8259.hpp"

namespace strata::soft {
namespace {

struct TwoVcpus {
    GuestMemory memory = GuestMemory::create(1 << 20).value();
    CodePages pages{memory};
    testing::ManualClock clock;
    ApicRouter router;
    SoftVcpu boot{0, 2, memory, pages, clock.timers, router, LocalApicConfig{.apic_id = 0, .bootstrap = true}};
    SoftVcpu ap{1, 2, memory, pages, clock.timers, router, LocalApicConfig{.apic_id = 1}};
    Pic8259Pair pic{router.lint0()};
    testing::FakeEoiListener ioapic;

    TwoVcpus() {
        router.add(boot.lapic());
        router.add(ap.lapic());
        router.connect(pic, ioapic);
    }
};

// kvm-unit-tests' realmode pulses IRQ 11 and halts with IF set, expecting vector 0x73 (the 8259s
// as SeaBIOS leaves them; the APIC untouched since reset).
TEST(SoftVcpu, TheBootCpuTakesThe8259sInterruptsThroughLint0) {
    TwoVcpus vcpus;
    IrqLine& irq11 = vcpus.pic.input(11);
    irq11.set_level(true);
    irq11.set_level(false);  // an edge: latched by the 8259 until the acknowledge
    ASSERT_TRUE(vcpus.boot.lapic().pending_events() & LocalApic::kEventInterrupt);
    auto pending = vcpus.boot.lapic().pending_interrupt();
    ASSERT_TRUE(pending);
    EXPECT_TRUE(pending->external) << "ExtINT: the vector comes from the 8259 pair";
    EXPECT_EQ(vcpus.boot.lapic().acknowledge(), 0x73);

    EXPECT_FALSE(vcpus.ap.lapic().pending_events() & LocalApic::kEventInterrupt) << "an AP's LINT0 is masked";
}

}  // namespace
}  // namespace strata::soft
