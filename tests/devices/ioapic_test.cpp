#include "devices/irqchip/ioapic.hpp"

#include <gtest/gtest.h>

#include "fakes.hpp"

namespace strata {
namespace {

using testing::FakeApicBus;
using testing::in;
using testing::inb;
using testing::out;
using testing::outb;

constexpr uint64_t kSelect = 0x00, kWindow = 0x10, kEoi = 0x40;
constexpr uint32_t kLevel = 1u << 15, kMasked = 1u << 16, kActiveLow = 1u << 13, kRemoteIrr = 1u << 14;
constexpr uint32_t kLogical = 1u << 11;

struct IoApicTest : ::testing::Test {
    FakeApicBus bus;
    IoApic ioapic{bus, 3};

    uint32_t read_register(uint8_t index) {
        out(ioapic, kSelect, index, 4);
        return static_cast<uint32_t>(in(ioapic, kWindow, 4));
    }
    void write_register(uint8_t index, uint32_t value) {
        out(ioapic, kSelect, index, 4);
        out(ioapic, kWindow, value, 4);
    }
    // Linux's order: the high half (destination) first, then the low half.
    void write_entry(unsigned pin, uint32_t low, uint8_t destination = 0) {
        write_register(static_cast<uint8_t>(0x11 + 2 * pin), uint32_t{destination} << 24);
        write_register(static_cast<uint8_t>(0x10 + 2 * pin), low);
    }
    uint32_t entry_low(unsigned pin) { return read_register(static_cast<uint8_t>(0x10 + 2 * pin)); }
};

TEST_F(IoApicTest, IdVersionAndArbitration) {
    EXPECT_EQ(read_register(0x00), 0x03000000u);
    EXPECT_EQ(read_register(0x01), 0x00170020u);  // 24 entries, version 0x20
    EXPECT_EQ(read_register(0x02), 0x03000000u);
    write_register(0x00, 0x1a000000);
    EXPECT_EQ(read_register(0x00), 0x0a000000u);  // a four-bit ID
    EXPECT_EQ(read_register(0x02), 0x0a000000u);  // the arbitration ID follows it
    write_register(0x01, 0);  // read-only
    EXPECT_EQ(read_register(0x01), 0x00170020u);
    EXPECT_EQ(read_register(0x03), 0u);
    EXPECT_EQ(read_register(0xff), 0u);
    EXPECT_EQ(in(ioapic, kSelect, 4), 0xffu);
}

// 82093AA §3.2.1, as kvm-unit-tests' ioapic checks it: writing every bit inverted changes only
// bits 27-24 of the ID register.
TEST_F(IoApicTest, OnlyIdBits24To27AreWritable) {
    uint32_t before = read_register(0x00);
    write_register(0x00, ~before);
    EXPECT_EQ(before ^ read_register(0x00), 0x0f000000u);
    write_register(0x00, 0xffffffff);
    EXPECT_EQ(read_register(0x00), 0x0f000000u);
    EXPECT_EQ(read_register(0x02), 0x0f000000u);
    EXPECT_EQ(ioapic.state().id, 0x0f);
}

TEST_F(IoApicTest, EntriesStartMaskedAndReadBack) {
    for (unsigned pin = 0; pin < IoApic::kPins; ++pin) {
        EXPECT_EQ(entry_low(pin), kMasked) << pin;
        EXPECT_EQ(read_register(static_cast<uint8_t>(0x11 + 2 * pin)), 0u) << pin;
    }
    write_entry(23, 0xfffe'ffff, 0xab);
    // Reserved bits 31-17 and the read-only delivery status and remote IRR bits stay clear.
    EXPECT_EQ(entry_low(23), 0x0000'afffu);
    write_register(0x11 + 2 * 23, 0xffff'ffff);
    EXPECT_EQ(read_register(0x11 + 2 * 23), 0xff00'0000u);
    EXPECT_EQ(entry_low(22), kMasked);  // neighbours untouched
    EXPECT_EQ(read_register(0x40), 0u);  // beyond the table
    EXPECT_EQ(bus.count(), 0u);
}

TEST_F(IoApicTest, MaskedPinSendsNothingAndLosesItsEdge) {
    write_entry(4, kMasked | 0x34);
    ioapic.input(4).raise();
    EXPECT_EQ(bus.count(), 0u);
    write_entry(4, 0x34);
    EXPECT_EQ(bus.count(), 0u);  // the edge happened while masked
    ioapic.input(4).lower();
    ioapic.input(4).raise();
    EXPECT_EQ(bus.count(), 1u);
}

TEST_F(IoApicTest, EdgeSendsOncePerRisingEdge) {
    write_entry(1, 0x31, 0x02);
    ioapic.input(1).raise();
    ioapic.input(1).raise();
    ioapic.input(1).lower();
    ASSERT_EQ(bus.count(), 1u);
    ApicMessage message = bus.messages()[0];
    EXPECT_EQ(message.vector, 0x31);
    EXPECT_EQ(message.mode, DeliveryMode::Fixed);
    EXPECT_FALSE(message.logical);
    EXPECT_EQ(message.destination, 0x02u);
    EXPECT_FALSE(message.level_triggered);
    EXPECT_TRUE(message.assert);
    ioapic.input(1).pulse();
    EXPECT_EQ(bus.count(), 2u);
    ioapic.end_of_interrupt(0x31);  // edge entries have nothing to end
    EXPECT_EQ(bus.count(), 2u);
    EXPECT_EQ(entry_low(1) & kRemoteIrr, 0u);
}

TEST_F(IoApicTest, LevelSetsRemoteIrrAndRedeliversAfterEoiWhileAsserted) {
    write_entry(10, kLevel | 0x3a);
    ioapic.input(10).raise();
    ASSERT_EQ(bus.count(), 1u);
    EXPECT_TRUE(bus.messages()[0].level_triggered);
    EXPECT_EQ(entry_low(10), kLevel | kRemoteIrr | 0x3a);
    ioapic.input(10).lower();
    ioapic.input(10).raise();
    EXPECT_EQ(bus.count(), 1u);  // waiting for the EOI
    ioapic.end_of_interrupt(0x3b);
    EXPECT_EQ(bus.count(), 1u);  // another vector
    ioapic.end_of_interrupt(0x3a);
    EXPECT_EQ(bus.count(), 2u);  // still asserted: sent again
    EXPECT_NE(entry_low(10) & kRemoteIrr, 0u);
    ioapic.input(10).lower();
    ioapic.end_of_interrupt(0x3a);
    EXPECT_EQ(bus.count(), 2u);
    EXPECT_EQ(entry_low(10) & kRemoteIrr, 0u);
}

TEST_F(IoApicTest, EoiRegisterEndsLevelInterrupts) {
    write_entry(9, kLevel | 0x29);
    write_entry(11, kLevel | 0x29);
    ioapic.input(9).raise();
    ioapic.input(11).raise();
    EXPECT_EQ(bus.count(), 2u);
    outb(ioapic, kEoi, 0x29);  // both pins with that vector
    EXPECT_EQ(bus.count(), 4u);
    ioapic.input(9).lower();
    ioapic.input(11).lower();
    out(ioapic, kEoi, 0x29, 4);
    EXPECT_EQ(entry_low(9) & kRemoteIrr, 0u);
    EXPECT_EQ(entry_low(11) & kRemoteIrr, 0u);
    EXPECT_EQ(bus.count(), 4u);
}

TEST_F(IoApicTest, UnmaskingAnAssertedLevelPinSends) {
    write_entry(5, kMasked | kLevel | 0x45);
    ioapic.input(5).raise();
    EXPECT_EQ(bus.count(), 0u);
    write_entry(5, kLevel | 0x45);
    EXPECT_EQ(bus.count(), 1u);
}

TEST_F(IoApicTest, SwitchingToEdgeClearsRemoteIrr) {
    write_entry(6, kLevel | 0x46);
    ioapic.input(6).raise();
    ioapic.input(6).lower();
    ASSERT_NE(entry_low(6) & kRemoteIrr, 0u);
    write_entry(6, kMasked | 0x46);  // Linux's EOI for IOAPICs without the EOI register
    write_entry(6, kLevel | 0x46);
    EXPECT_EQ(entry_low(6) & kRemoteIrr, 0u);
    ioapic.input(6).raise();
    EXPECT_EQ(bus.count(), 2u);
}

TEST_F(IoApicTest, ActiveLowInvertsTheLine) {
    write_entry(16, kMasked | kLevel | kActiveLow | 0x50);
    write_entry(16, kLevel | kActiveLow | 0x50);
    EXPECT_EQ(bus.count(), 1u);  // a low line is asserted
    ioapic.input(16).raise();
    ioapic.end_of_interrupt(0x50);
    EXPECT_EQ(bus.count(), 1u);  // high: deasserted, so the EOI does not resend

    write_entry(17, kActiveLow | 0x51);
    ioapic.input(17).raise();
    EXPECT_EQ(bus.count(), 1u);
    ioapic.input(17).lower();  // falling line = rising asserted signal
    EXPECT_EQ(bus.count(), 2u);
    EXPECT_EQ(bus.messages()[1].vector, 0x51);
}

TEST_F(IoApicTest, MessageCarriesDestinationAndMode) {
    write_entry(3, kLogical | (1u << 8) | 0x63, 0x0f);  // lowest priority, logical 0x0f
    ioapic.input(3).raise();
    write_entry(7, (4u << 8) | 0x00, 0xff);             // NMI to physical broadcast
    ioapic.input(7).raise();
    write_entry(8, kLevel | (7u << 8), 0x01);           // ExtINT: edge-only, whatever the trigger bit
    ioapic.input(8).raise();
    ioapic.input(8).lower();
    ioapic.input(8).raise();
    auto messages = bus.messages();
    ASSERT_EQ(messages.size(), 4u);
    EXPECT_EQ(messages[0].mode, DeliveryMode::LowestPriority);
    EXPECT_TRUE(messages[0].logical);
    EXPECT_EQ(messages[0].destination, 0x0fu);
    EXPECT_EQ(messages[0].vector, 0x63);
    EXPECT_EQ(messages[1].mode, DeliveryMode::Nmi);
    EXPECT_FALSE(messages[1].logical);
    EXPECT_EQ(messages[1].destination, 0xffu);
    EXPECT_EQ(messages[2].mode, DeliveryMode::ExtInt);
    EXPECT_FALSE(messages[2].level_triggered);
    EXPECT_EQ(entry_low(8) & kRemoteIrr, 0u);
}

TEST_F(IoApicTest, ReservedDeliveryModesSendNothing) {
    write_entry(2, (3u << 8) | 0x30);
    ioapic.input(2).raise();
    write_entry(12, kLevel | (6u << 8) | 0x3c);
    ioapic.input(12).raise();
    EXPECT_EQ(bus.count(), 0u);
    EXPECT_EQ(entry_low(12) & kRemoteIrr, 0u);
}

TEST_F(IoApicTest, NarrowAccessesReachTheBytesTheyCover) {
    outb(ioapic, kSelect, 0x10 + 2 * 4);  // IOREGSEL by byte
    EXPECT_EQ(inb(ioapic, kSelect), 0x18);
    outb(ioapic, kSelect + 1, 0x12);      // bytes 1-3 of IOREGSEL hold nothing
    EXPECT_EQ(in(ioapic, kSelect, 4), 0x18u);
    out(ioapic, kWindow, 0x0044, 2);      // the low 16 bits: vector 0x44, fixed, physical
    EXPECT_EQ(in(ioapic, kWindow, 4), kMasked | 0x44u);  // the mask bit above stays
    out(ioapic, kWindow + 2, 0x0000, 2);  // the upper 16 bits: unmask
    EXPECT_EQ(in(ioapic, kWindow, 4), 0x44u);
    EXPECT_EQ(inb(ioapic, kWindow), 0x44);
    EXPECT_EQ(in(ioapic, kWindow + 1, 1), 0u);
    EXPECT_EQ(in(ioapic, 0x20, 4), 0u);   // nothing there
    out(ioapic, 0x20, 0xffff'ffff, 4);
    EXPECT_EQ(in(ioapic, kWindow, 4), 0x44u);
    ioapic.input(4).raise();
    EXPECT_EQ(bus.count(), 1u);
}

TEST_F(IoApicTest, EoiFromInsideSendDoesNotDeadlock) {
    // A local APIC that handles the interrupt at once: one EOI back, from inside send().
    int eois = 0;
    bus.on_send = [&](const ApicMessage& message) {
        if (eois++ == 0) ioapic.end_of_interrupt(message.vector);
    };
    write_entry(20, kLevel | 0x60);
    ioapic.input(20).raise();
    EXPECT_EQ(bus.count(), 2u);  // the first, and the resend its EOI caused
    EXPECT_NE(entry_low(20) & kRemoteIrr, 0u);
}

TEST_F(IoApicTest, StateRoundTrips) {
    write_entry(10, kLevel | 0x3a, 0x01);
    ioapic.input(10).raise();
    IoApic::State state = ioapic.state();
    EXPECT_EQ(state.id, 3);
    EXPECT_EQ(state.input_levels, 1u << 10);
    EXPECT_EQ(state.redirection[10], (uint64_t{1} << 56) | kLevel | kRemoteIrr | 0x3a);

    FakeApicBus other_bus;
    IoApic other{other_bus};
    other.set_state(state);
    EXPECT_EQ(other_bus.count(), 0u);  // remote IRR set: waiting for the EOI
    other.end_of_interrupt(0x3a);
    ASSERT_EQ(other_bus.count(), 1u);
    EXPECT_EQ(other_bus.messages()[0].destination, 0x01u);

    state.redirection[10] &= ~uint64_t{kRemoteIrr};
    FakeApicBus third_bus;
    IoApic third{third_bus};
    third.set_state(state);
    EXPECT_EQ(third_bus.count(), 1u);  // asserted and nothing pending: sent on restore
}

}  // namespace
}  // namespace strata
