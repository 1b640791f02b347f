#include "devices/irqchip/pic8259.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "fakes.hpp"

namespace strata {
namespace {

using testing::FakeIrqLine;
using testing::in;
using testing::inb;
using testing::outb;

constexpr uint64_t kCommand = 0, kData = 1;
constexpr uint8_t kReadIrr = 0x0a, kReadIsr = 0x0b, kPoll = 0x0c;  // OCW3
constexpr uint8_t kNonSpecificEoi = 0x20, kSpecificEoi = 0x60;     // OCW2

struct Pic : ::testing::Test {
    FakeIrqLine intr;
    Pic8259Pair pic{intr};
    BusDevice& master = *pic.master_port();
    BusDevice& slave = *pic.slave_port();
    BusDevice& elcr = *pic.elcr_port();

    // Linux's init_8259A (arch/x86/kernel/i8259.c): vectors 0x30-0x3f, slave on IR2.
    void linux_init(bool auto_eoi) {
        outb(master, kData, 0xff);
        outb(slave, kData, 0xff);
        outb(master, kCommand, 0x11);  // ICW1: edge, cascade, ICW4 follows
        outb(master, kData, 0x30);     // ICW2
        outb(master, kData, 0x04);     // ICW3: slave on IR2
        outb(master, kData, auto_eoi ? 0x03 : 0x01);  // ICW4: 8086 (+ auto-EOI)
        outb(slave, kCommand, 0x11);
        outb(slave, kData, 0x38);
        outb(slave, kData, 0x02);      // ICW3: slave ID 2
        outb(slave, kData, 0x01);
        outb(master, kData, 0x00);     // unmask everything
        outb(slave, kData, 0x00);
    }
    uint8_t read_isr(BusDevice& chip) {
        outb(chip, kCommand, kReadIsr);
        return inb(chip, kCommand);
    }
    uint8_t read_irr(BusDevice& chip) {
        outb(chip, kCommand, kReadIrr);
        return inb(chip, kCommand);
    }
    // Linux's mask_and_ack_8259A without the masking: specific EOIs, slave first.
    void eoi(unsigned irq) {
        if (irq >= 8) {
            outb(slave, kCommand, static_cast<uint8_t>(kSpecificEoi + (irq & 7)));
            outb(master, kCommand, kSpecificEoi + 2);
        } else {
            outb(master, kCommand, static_cast<uint8_t>(kSpecificEoi + irq));
        }
    }
};

TEST_F(Pic, StartsAsFirmwareLeavesIt) {
    EXPECT_EQ(inb(master, kData), 0xfb);
    EXPECT_EQ(inb(slave, kData), 0xf3);
    pic.input(0).pulse();  // masked
    EXPECT_FALSE(intr.level());
    // kvm-unit-tests' realmode: IRQ 11 arrives as vector 0x73 through the cascade.
    pic.input(11).pulse();
    EXPECT_TRUE(intr.level());
    EXPECT_EQ(pic.acknowledge(), 0x73);
    EXPECT_FALSE(intr.level());
    EXPECT_EQ(read_isr(slave), 0x08);
    EXPECT_EQ(read_isr(master), 0x04);
    outb(slave, kCommand, kNonSpecificEoi);
    outb(master, kCommand, kNonSpecificEoi);
    EXPECT_EQ(read_isr(slave), 0);
    EXPECT_EQ(read_isr(master), 0);
    // IRQ 0 opened by a real-mode guest: the master's own vector base.
    outb(master, kData, 0xfa);
    pic.input(0).pulse();
    EXPECT_EQ(pic.acknowledge(), 0x08);
}

TEST_F(Pic, LinuxProbeAndInitSequence) {
    // probe_8259A: the mask register reads back what was written.
    outb(slave, kData, 0xff);
    outb(master, kData, 0xa5);
    EXPECT_EQ(inb(master, kData), 0xa5);
    linux_init(false);
    EXPECT_EQ(inb(master, kData), 0x00);
    pic.input(1).pulse();
    EXPECT_TRUE(intr.level());
    EXPECT_EQ(pic.acknowledge(), 0x31);
    EXPECT_EQ(read_isr(master), 0x02);
    EXPECT_EQ(read_irr(master), 0x00);  // the edge request was consumed by INTA
    eoi(1);
    EXPECT_EQ(read_isr(master), 0x00);
    pic.input(14).pulse();
    EXPECT_EQ(pic.acknowledge(), 0x3e);
    eoi(14);
    EXPECT_EQ(read_isr(master), 0x00);
    EXPECT_EQ(read_isr(slave), 0x00);
}

TEST_F(Pic, AutoEoiLeavesNothingInService) {
    linux_init(true);
    pic.input(4).pulse();
    EXPECT_EQ(pic.acknowledge(), 0x34);
    EXPECT_EQ(read_isr(master), 0x00);
    pic.input(4).pulse();  // nothing in service blocks it: delivered again without any EOI
    EXPECT_TRUE(intr.level());
    EXPECT_EQ(pic.acknowledge(), 0x34);
}

TEST_F(Pic, MaskedRequestWaitsInIrr) {
    linux_init(false);
    outb(master, kData, 0x08);
    pic.input(3).pulse();
    EXPECT_FALSE(intr.level());
    EXPECT_EQ(read_irr(master), 0x08);
    outb(master, kData, 0x00);
    EXPECT_TRUE(intr.level());
    EXPECT_EQ(pic.acknowledge(), 0x33);
}

TEST_F(Pic, EdgeInputRequestsOnlyOnRisingEdge) {
    linux_init(false);
    pic.input(4).raise();
    EXPECT_EQ(pic.acknowledge(), 0x34);
    eoi(4);
    EXPECT_FALSE(intr.level());  // still high, but no new edge
    pic.input(4).lower();
    EXPECT_FALSE(intr.level());
    pic.input(4).raise();
    EXPECT_TRUE(intr.level());
}

TEST_F(Pic, ElcrLevelInputRequestsWhileHigh) {
    linux_init(false);
    outb(elcr, 0, 0xff);
    outb(elcr, 1, 0xff);
    EXPECT_EQ(inb(elcr, 0), 0xf8);  // IRQ 0-2 are always edge
    EXPECT_EQ(inb(elcr, 1), 0xde);  // so are IRQ 8 and 13
    EXPECT_EQ(in(elcr, 0, 2), 0xdef8u);
    pic.input(10).raise();
    EXPECT_EQ(pic.acknowledge(), 0x3a);
    EXPECT_FALSE(intr.level());
    eoi(10);
    EXPECT_TRUE(intr.level());  // still asserted: requested again
    EXPECT_EQ(pic.acknowledge(), 0x3a);
    pic.input(10).lower();
    eoi(10);
    EXPECT_FALSE(intr.level());
    EXPECT_EQ(read_irr(slave), 0x00);
}

TEST_F(Pic, LtimMakesEveryInputLevelSensitive) {
    outb(master, kCommand, 0x19);  // ICW1 with LTIM
    outb(master, kData, 0x20);
    outb(master, kData, 0x04);
    outb(master, kData, 0x01);
    outb(master, kData, 0x00);
    pic.input(1).raise();
    EXPECT_TRUE(intr.level());
    pic.input(1).lower();
    EXPECT_FALSE(intr.level());
    EXPECT_EQ(read_irr(master), 0x00);
}

TEST_F(Pic, SpuriousIrq7WhenRequestVanishesBeforeInta) {
    linux_init(false);
    // A level request lowered before INTA.
    outb(elcr, 0, 0x20);
    pic.input(5).raise();
    EXPECT_TRUE(intr.level());
    pic.input(5).lower();
    EXPECT_FALSE(intr.level());
    EXPECT_EQ(pic.acknowledge(), 0x37);
    EXPECT_EQ(read_isr(master), 0x00);  // what Linux checks to call it spurious
    // An edge request masked before INTA.
    pic.input(6).pulse();
    outb(master, kData, 0x40);
    EXPECT_EQ(pic.acknowledge(), 0x37);
    EXPECT_EQ(read_isr(master), 0x00);
    outb(master, kData, 0x00);
    EXPECT_EQ(pic.acknowledge(), 0x36);  // still latched once unmasked
}

TEST_F(Pic, SpuriousIrq15PutsOnlyTheCascadeInService) {
    linux_init(false);
    outb(elcr, 1, 0x08);  // IRQ 11 level
    pic.input(11).raise();
    EXPECT_TRUE(intr.level());
    pic.input(11).lower();
    EXPECT_EQ(pic.acknowledge(), 0x3f);
    EXPECT_EQ(read_isr(slave), 0x00);
    EXPECT_EQ(read_isr(master), 0x04);  // Linux EOIs the master only
}

TEST_F(Pic, FullyNestedPriority) {
    linux_init(false);
    pic.input(5).pulse();
    pic.input(3).pulse();
    EXPECT_EQ(pic.acknowledge(), 0x33);
    EXPECT_FALSE(intr.level());  // IRQ 5 waits for IRQ 3's EOI
    pic.input(1).pulse();
    EXPECT_TRUE(intr.level());   // a higher priority nests
    EXPECT_EQ(pic.acknowledge(), 0x31);
    EXPECT_EQ(read_isr(master), 0x0a);
    outb(master, kCommand, kNonSpecificEoi);  // ends the highest: IRQ 1
    EXPECT_EQ(read_isr(master), 0x08);
    EXPECT_FALSE(intr.level());
    outb(master, kCommand, kNonSpecificEoi);
    EXPECT_TRUE(intr.level());
    EXPECT_EQ(pic.acknowledge(), 0x35);
}

TEST_F(Pic, SlaveIrqBeatsLowerMasterIrqs) {
    linux_init(false);
    pic.input(3).pulse();
    pic.input(12).pulse();
    EXPECT_EQ(pic.acknowledge(), 0x3c);  // through IR2, ahead of IR3
    EXPECT_EQ(read_isr(master), 0x04);
    EXPECT_EQ(read_isr(slave), 0x10);
    EXPECT_FALSE(intr.level());
    pic.input(0).pulse();
    EXPECT_EQ(pic.acknowledge(), 0x30);  // IR0 still beats the cascade
    eoi(0);
    eoi(12);
    EXPECT_TRUE(intr.level());
    EXPECT_EQ(pic.acknowledge(), 0x33);
}

TEST_F(Pic, SlaveInAutoEoiModeKeepsItsSecondRequest) {
    linux_init(false);
    outb(slave, kCommand, 0x11);
    outb(slave, kData, 0x38);
    outb(slave, kData, 0x02);
    outb(slave, kData, 0x03);  // ICW4: 8086, auto-EOI
    outb(slave, kData, 0x00);
    pic.input(9).pulse();
    pic.input(12).pulse();
    EXPECT_EQ(pic.acknowledge(), 0x39);  // the slave's INT stays high for IRQ 12
    eoi(2);
    EXPECT_TRUE(intr.level());
    EXPECT_EQ(pic.acknowledge(), 0x3c);
}

TEST_F(Pic, SlaveNestsOnlyInSpecialFullyNestedMode) {
    linux_init(false);
    pic.input(12).pulse();
    EXPECT_EQ(pic.acknowledge(), 0x3c);
    pic.input(9).pulse();
    EXPECT_FALSE(intr.level());  // master IR2 in service blocks the slave's higher IRQ 9
    eoi(12);
    EXPECT_EQ(pic.acknowledge(), 0x39);
    eoi(9);

    outb(master, kCommand, 0x11);
    outb(master, kData, 0x30);
    outb(master, kData, 0x04);
    outb(master, kData, 0x11);  // ICW4: 8086, SFNM
    outb(master, kData, 0x00);
    pic.input(12).pulse();
    EXPECT_EQ(pic.acknowledge(), 0x3c);
    pic.input(9).pulse();
    EXPECT_TRUE(intr.level());
    EXPECT_EQ(pic.acknowledge(), 0x39);
    pic.input(3).pulse();
    EXPECT_FALSE(intr.level());  // below the cascade in service: still blocked
}

TEST_F(Pic, Ocw3SelectsIrrOrIsrAndPolls) {
    linux_init(false);
    outb(master, kData, 0x80);
    pic.input(7).pulse();
    pic.input(6).pulse();
    EXPECT_EQ(read_irr(master), 0xc0);
    EXPECT_EQ(inb(master, kCommand), 0xc0);  // the selection stays
    EXPECT_EQ(pic.acknowledge(), 0x36);
    EXPECT_EQ(read_isr(master), 0x40);
    EXPECT_EQ(inb(master, kCommand), 0x40);
    eoi(6);
    outb(master, kData, 0x00);
    outb(master, kCommand, kPoll);
    EXPECT_EQ(inb(master, kCommand), 0x87);  // a request at IR7, now in service
    EXPECT_EQ(read_isr(master), 0x80);
    eoi(7);
    outb(master, kCommand, kPoll);
    EXPECT_EQ(inb(master, kData), 0x00);  // nothing requested; the poll applies to either port
    EXPECT_EQ(inb(master, kData), 0x00);  // and then the IMR reads again
    outb(master, kData, 0x12);
    EXPECT_EQ(inb(master, kData), 0x12);
}

TEST_F(Pic, SpecialMaskModeLetsLowerLevelsIn) {
    linux_init(false);
    pic.input(3).pulse();
    EXPECT_EQ(pic.acknowledge(), 0x33);
    pic.input(5).pulse();
    EXPECT_FALSE(intr.level());
    outb(master, kData, 0x08);     // mask the level in service
    outb(master, kCommand, 0x68);  // OCW3: set special mask mode
    EXPECT_TRUE(intr.level());
    EXPECT_EQ(pic.acknowledge(), 0x35);
    outb(master, kCommand, 0x48);  // reset special mask mode
    pic.input(6).pulse();
    EXPECT_FALSE(intr.level());
}

TEST_F(Pic, RotationMovesThePriority) {
    linux_init(false);
    outb(master, kCommand, 0xc4);  // set priority: IR4 lowest, IR5 highest
    pic.input(3).pulse();
    pic.input(6).pulse();
    EXPECT_EQ(pic.acknowledge(), 0x36);
    outb(master, kCommand, 0xe6);  // rotate on specific EOI of IR6: IR7 highest now
    pic.input(7).pulse();
    EXPECT_EQ(pic.acknowledge(), 0x37);
    outb(master, kCommand, 0xa0);  // rotate on non-specific EOI: ends IR7, IR0 highest
    EXPECT_EQ(read_isr(master), 0x00);
    pic.input(0).pulse();
    EXPECT_EQ(pic.acknowledge(), 0x30);
    eoi(0);
    EXPECT_EQ(pic.acknowledge(), 0x33);
}

TEST_F(Pic, SingleModeSkipsIcw3AndIcw4WhenNotAsked) {
    outb(master, kCommand, 0x12);  // single, no ICW4
    outb(master, kData, 0x48);     // ICW2
    outb(master, kData, 0x5a);     // OCW1 already
    EXPECT_EQ(inb(master, kData), 0x5a);
    outb(master, kData, 0xfb);
    pic.input(2).pulse();          // input(2) goes nowhere
    EXPECT_FALSE(intr.level());
    pic.input(11).pulse();         // the slave's INT still reaches IR2, but no slave answers there
    EXPECT_TRUE(intr.level());
    EXPECT_EQ(pic.acknowledge(), 0x4a);
    EXPECT_EQ(read_isr(slave), 0x00);
}

TEST_F(Pic, WideAccessesReachBothPortsInTurn) {
    linux_init(false);
    outb(master, kData, 0x3c);
    pic.input(0).pulse();
    EXPECT_EQ(in(master, 0, 2), 0x3c01u);  // IRR, then IMR
}

TEST_F(Pic, OutputSetOnlyWhenItChanges) {
    linux_init(false);
    pic.input(3).pulse();
    pic.input(4).pulse();
    pic.input(5).raise();
    EXPECT_EQ(intr.levels(), (std::vector<bool>{true}));
    EXPECT_EQ(pic.acknowledge(), 0x33);
    EXPECT_EQ(intr.levels(), (std::vector<bool>{true, false}));
}

// An INT receiver that acknowledges from inside set_level, as a local APIC might.
class AcknowledgingLine : public IrqLine {
public:
    void set_level(bool asserted) override {
        levels.push_back(asserted);
        if (asserted && pic) vectors.push_back(pic->acknowledge());
    }
    Pic8259Pair* pic = nullptr;
    std::vector<bool> levels;
    std::vector<uint8_t> vectors;
};

TEST(PicReentry, AcknowledgeFromTheOutputsSetLevel) {
    AcknowledgingLine line;
    Pic8259Pair pic{line};
    line.pic = &pic;
    outb(*pic.master_port(), kData, 0xf3);  // open IRQ 2's cascade and IRQ 3
    pic.input(3).pulse();
    EXPECT_EQ(line.vectors, (std::vector<uint8_t>{0x0b}));
    EXPECT_EQ(line.levels, (std::vector<bool>{true, false}));
}

TEST_F(Pic, OutputFollowsStateUnderConcurrentInputs) {
    linux_init(true);
    constexpr int kPulses = 2000;
    std::atomic<bool> done{false};
    std::vector<std::thread> devices;
    for (unsigned irq : {1u, 3u, 9u, 12u})
        devices.emplace_back([&, irq] {
            for (int i = 0; i < kPulses; ++i) pic.input(irq).pulse();
        });
    // The master ends its interrupts itself (auto-EOI); the slave's need an EOI, as in Linux.
    auto take_interrupt = [&] {
        if (pic.acknowledge() >= 0x38) outb(slave, kCommand, kNonSpecificEoi);
    };
    std::thread cpu([&] {
        while (!done.load()) {
            if (intr.level()) take_interrupt();
        }
    });
    for (auto& device : devices) device.join();
    done = true;
    cpu.join();
    while (intr.level()) take_interrupt();
    EXPECT_EQ(read_irr(master), 0x00);
    EXPECT_EQ(read_irr(slave), 0x00);
    EXPECT_FALSE(intr.level());
}

TEST_F(Pic, StateRoundTrips) {
    linux_init(false);
    outb(elcr, 1, 0x0c);
    outb(master, kData, 0x10);
    pic.input(3).pulse();
    pic.input(4).pulse();
    EXPECT_EQ(pic.acknowledge(), 0x33);
    Pic8259Pair::State state = pic.state();
    EXPECT_EQ(state.master.isr, 0x08);
    EXPECT_EQ(state.master.irr, 0x10);
    EXPECT_EQ(state.slave.vector_base, 0x38);

    FakeIrqLine other_intr;
    Pic8259Pair other{other_intr};
    other.set_state(state);
    EXPECT_EQ(inb(*other.elcr_port(), 1), 0x0c);
    EXPECT_EQ(inb(*other.master_port(), kData), 0x10);
    EXPECT_FALSE(other_intr.level());
    outb(*other.master_port(), kCommand, kNonSpecificEoi);
    outb(*other.master_port(), kData, 0x00);
    EXPECT_TRUE(other_intr.level());
    EXPECT_EQ(other.acknowledge(), 0x34);
}

}  // namespace
}  // namespace strata
