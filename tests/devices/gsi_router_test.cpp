#include "devices/irqchip/gsi_router.hpp"

#include <gtest/gtest.h>

#include "fakes.hpp"

namespace strata {
namespace {

using testing::FakeApicBus;
using testing::FakeIrqLine;
using testing::out;
using testing::outb;

struct Router : ::testing::Test {
    FakeIrqLine intr;
    FakeApicBus bus;
    Pic8259Pair pic{intr};
    IoApic ioapic{bus};
    GsiRouter router{pic, ioapic};

    void SetUp() override {
        // Every 8259 input open, every IOAPIC pin an unmasked edge entry with vector 0x40 + pin.
        outb(*pic.master_port(), 1, 0x00);
        outb(*pic.slave_port(), 1, 0x00);
        for (unsigned pin = 0; pin < IoApic::kPins; ++pin) {
            out(ioapic, 0x00, 0x10 + 2 * pin, 4);
            out(ioapic, 0x10, 0x40 + pin, 4);
        }
    }
    // The IOAPIC pin a pulse on `gsi` reached, or -1; and the 8259 vector it raised, or -1.
    std::pair<int, int> pulse(unsigned gsi) {
        bus.clear();
        router.line(gsi)->pulse();
        int pin = bus.count() == 1 ? bus.messages()[0].vector - 0x40 : -1;
        int vector = intr.level() ? pic.acknowledge() : -1;
        if (vector >= 0) {
            outb(*pic.slave_port(), 0, 0x20);
            outb(*pic.master_port(), 0, 0x20);
        }
        return {pin, vector};
    }
};

TEST_F(Router, PitIrq0ReachesIoApicPin2And8259Input0) {
    EXPECT_EQ(pulse(0), std::make_pair(2, 0x08));
}

TEST_F(Router, IsaIrqsReachTheirPinAndTheirInput) {
    for (unsigned gsi = 1; gsi < 16; ++gsi) {
        if (gsi == 2) continue;
        int vector = gsi < 8 ? 0x08 + static_cast<int>(gsi) : 0x70 + static_cast<int>(gsi - 8);
        EXPECT_EQ(pulse(gsi), std::make_pair(static_cast<int>(gsi), vector)) << gsi;
    }
}

TEST_F(Router, Gsi2ReachesNothing) { EXPECT_EQ(pulse(2), std::make_pair(-1, -1)); }

TEST_F(Router, PciGsisReachOnlyTheIoApic) {
    for (unsigned gsi = 16; gsi < 24; ++gsi) EXPECT_EQ(pulse(gsi), std::make_pair(static_cast<int>(gsi), -1)) << gsi;
    EXPECT_EQ(router.line(24), nullptr);
    EXPECT_EQ(router.line(~0u), nullptr);
}

}  // namespace
}  // namespace strata
