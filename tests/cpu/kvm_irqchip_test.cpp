// KVM's in-kernel 8259s, IOAPIC and PIT converted to the board's neutral state and back (what a
// snapshot carries between the engines): the registers survive the round trip, and a PIT channel
// keeps its count and where it is in it.
#include "cpu/kvm/kvm_irqchip.hpp"

#include <gtest/gtest.h>

namespace strata::kvm {
namespace {

TEST(KvmIrqchip, PicRegistersSurviveTheRoundTrip) {
    kvm_pic_state pic{};
    pic.last_irr = 0x05;
    pic.irr = 0x04;
    pic.imr = 0xf8;
    pic.isr = 0x01;
    pic.priority_add = 3;
    pic.irq_base = 0x20;
    pic.read_reg_select = 1;
    pic.special_mask = 1;
    pic.init_state = 0;
    pic.auto_eoi = 1;
    pic.init4 = 1;
    pic.elcr = 0x0c;
    Pic8259Pair::ChipState chip = from_kvm(pic, true);
    EXPECT_EQ(chip.vector_base, 0x20);
    EXPECT_EQ(chip.cascade, 0x04) << "the master has its slave on IR2";
    EXPECT_TRUE(chip.mode_8086);
    EXPECT_EQ(from_kvm(pic, false).cascade, 2) << "the slave's ID";
    kvm_pic_state back = to_kvm(chip);
    EXPECT_EQ(back.last_irr, pic.last_irr);
    EXPECT_EQ(back.irr, pic.irr);
    EXPECT_EQ(back.imr, pic.imr);
    EXPECT_EQ(back.isr, pic.isr);
    EXPECT_EQ(back.priority_add, pic.priority_add);
    EXPECT_EQ(back.irq_base, pic.irq_base);
    EXPECT_EQ(back.read_reg_select, pic.read_reg_select);
    EXPECT_EQ(back.special_mask, pic.special_mask);
    EXPECT_EQ(back.auto_eoi, pic.auto_eoi);
    EXPECT_EQ(back.init4, pic.init4);
    EXPECT_EQ(back.elcr, pic.elcr);
}

TEST(KvmIrqchip, IoapicRedirectionTableSurvivesTheRoundTrip) {
    kvm_ioapic_state ioapic{};
    ioapic.id = 3;
    ioapic.ioregsel = 0x12;
    ioapic.irr = 1u << 9;
    for (unsigned pin = 0; pin < IoApic::kPins; ++pin) ioapic.redirtbl[pin].bits = (uint64_t{pin} << 56) | 0x10000 | (0x30 + pin);
    ioapic.redirtbl[9].bits = 0x0100'0000'0000'c039ull;  // level, remote IRR set, unmasked
    IoApic::State state = from_kvm(ioapic);
    EXPECT_EQ(state.id, 3);
    EXPECT_EQ(state.input_levels, 1u << 9);
    kvm_ioapic_state back = to_kvm(state, 0xfec0'0000);
    EXPECT_EQ(back.base_address, 0xfec0'0000u);
    EXPECT_EQ(back.id, ioapic.id);
    EXPECT_EQ(back.ioregsel, ioapic.ioregsel);
    EXPECT_EQ(back.irr, ioapic.irr);
    for (unsigned pin = 0; pin < IoApic::kPins; ++pin) EXPECT_EQ(back.redirtbl[pin].bits, ioapic.redirtbl[pin].bits) << pin;
}

TEST(KvmIrqchip, APitChannelKeepsItsCountAndWhereItIsInIt) {
    kvm_pit_state2 pit{};
    for (auto& channel : pit.channels) {
        channel.count = 0x10000 & 0xffff;  // 0: 65536
        channel.rw_mode = 3;
        channel.read_state = channel.write_state = 3;
        channel.gate = 1;
    }
    pit.channels[0].mode = 2;
    pit.channels[0].count = 1193;  // 1 kHz
    ClockPair now{.machine_ns = 5'000'000'000, .host_ns = 900'000'000'000};
    pit.channels[0].count_load_time = now.host_ns - 3'000'000;  // loaded 3 ms ago
    pit.flags = KVM_PIT_FLAGS_SPEAKER_DATA_ON;

    Pit8254::State state = from_kvm(pit, now);
    EXPECT_EQ(state.counters[0].mode, 2);
    EXPECT_EQ(state.counters[0].run_count, 1193u);
    EXPECT_EQ(state.counters[1].count, 0x10000u) << "a written 0 is the maximum";
    int64_t load_ns = state.counters[0].run_start * 1'000'000'000 / Pit8254::kInputHz;
    EXPECT_NEAR(static_cast<double>(load_ns), 4'997'000'000.0, 1000.0) << "3 ms before the machine's now";
    EXPECT_EQ(state.port_b & 3, 3) << "GATE 2 and the speaker data";

    // Restored later on both clocks: still 3 ms into its count.
    ClockPair later{.machine_ns = now.machine_ns, .host_ns = now.host_ns + 60'000'000'000};
    kvm_pit_state2 back = to_kvm(state, later);
    EXPECT_EQ(back.channels[0].count, 1193u);
    EXPECT_EQ(back.channels[0].mode, 2);
    EXPECT_EQ(back.channels[0].rw_mode, 3);
    EXPECT_NEAR(static_cast<double>(later.host_ns - back.channels[0].count_load_time), 3'000'000.0, 1000.0);
    EXPECT_EQ(back.channels[1].count, 0u) << "65536 as KVM writes it";
    EXPECT_EQ(back.flags & KVM_PIT_FLAGS_SPEAKER_DATA_ON, static_cast<uint32_t>(KVM_PIT_FLAGS_SPEAKER_DATA_ON));
}

}  // namespace
}  // namespace strata::kvm
