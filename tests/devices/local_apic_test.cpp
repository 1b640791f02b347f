#include "devices/irqchip/local_apic.hpp"

#include <gtest/gtest.h>

#include <random>

#include "apic_fakes.hpp"
#include "fakes.hpp"

namespace strata {
namespace {

// Register offsets of the xAPIC page.
constexpr uint32_t kId = 0x20, kVersion = 0x30, kTpr = 0x80, kApr = 0x90, kPpr = 0xa0, kEoi = 0xb0, kLdr = 0xd0,
                   kDfr = 0xe0, kSvr = 0xf0, kEsr = 0x280, kIcrLow = 0x300, kIcrHigh = 0x310, kLvtTimer = 0x320,
                   kLvtLint0 = 0x350, kLvtLint1 = 0x360, kLvtError = 0x370, kInitialCount = 0x380,
                   kCurrentCount = 0x390, kDivide = 0x3e0;
constexpr uint32_t kMasked = 1u << 16;
constexpr uint64_t kEnable = 1u << 11, kExtd = 1u << 10, kBsp = 1u << 8;

ApicMessage message(DeliveryMode mode, uint8_t vector = 0, bool level = false) {
    ApicMessage m;
    m.mode = mode;
    m.vector = vector;
    m.level_triggered = level;
    return m;
}

struct Lapic : ::testing::Test {
    testing::ManualClock time;
    testing::FakeApicHost host;
    testing::FakeApicBus bus;
    testing::FakeExtIntSource pic;
    testing::FakeEoiListener ioapic;
    LocalApic apic{LocalApicConfig{.apic_id = 3, .bootstrap = true}, time.timers, bus, host};

    Lapic() { apic.connect(pic, ioapic); }

    uint32_t reg(uint32_t offset) { return static_cast<uint32_t>(testing::in(apic, offset, 4)); }
    void set(uint32_t offset, uint32_t value) { testing::out(apic, offset, value, 4); }
    void enable() { set(kSvr, 0x1ff); }  // software enable, spurious vector 0xff
    bool bit(uint32_t base, uint8_t vector) { return (reg(base + 0x10 * (vector / 32)) >> (vector % 32)) & 1; }
    bool in_irr(uint8_t vector) { return bit(0x200, vector); }
    bool in_isr(uint8_t vector) { return bit(0x100, vector); }
    bool in_tmr(uint8_t vector) { return bit(0x180, vector); }
    uint32_t esr() {
        set(kEsr, 0);  // write before read (§11.5.3)
        return reg(kEsr);
    }
    std::optional<uint8_t> pending_vector() {
        auto pending = apic.pending_interrupt();
        if (!pending || pending->external) return std::nullopt;
        return pending->vector;
    }
    // Acknowledge and EOI, as a guest's handler does.
    uint8_t service() {
        uint8_t vector = apic.acknowledge();
        set(kEoi, 0);
        return vector;
    }
};

TEST_F(Lapic, PowerUpRegisterValues) {
    EXPECT_EQ(apic.apic_base(), LocalApic::kDefaultBase | kEnable | kBsp);
    EXPECT_TRUE(apic.decodes_mmio());
    EXPECT_EQ(reg(kId), 3u << 24);
    EXPECT_EQ(reg(kVersion), 0x0005'0014u) << "six LVT entries";
    EXPECT_EQ(reg(kTpr), 0u);
    EXPECT_EQ(reg(kApr), 0u);
    EXPECT_EQ(reg(kPpr), 0u);
    EXPECT_EQ(reg(kLdr), 0u);
    EXPECT_EQ(reg(kDfr), 0xffff'ffffu);
    EXPECT_EQ(reg(kSvr), 0xffu) << "software-disabled";
    for (uint32_t offset = 0x100; offset < 0x280; offset += 0x10) EXPECT_EQ(reg(offset), 0u) << std::hex << offset;
    EXPECT_EQ(reg(kIcrLow), 0u);
    EXPECT_EQ(reg(kIcrHigh), 0u);
    for (uint32_t offset = kLvtTimer; offset <= kLvtError; offset += 0x10) EXPECT_EQ(reg(offset), kMasked);
    EXPECT_EQ(reg(kInitialCount), 0u);
    EXPECT_EQ(reg(kCurrentCount), 0u);
    EXPECT_EQ(reg(kDivide), 0u);
    EXPECT_EQ(esr(), 0u);
    EXPECT_FALSE(apic.has_event());
}

TEST_F(Lapic, OddAccessesReadTheSlotAndWritesOtherThan32BitsAreIgnored) {
    EXPECT_EQ(testing::in(apic, kId + 3, 1), 3u) << "byte 3 of the ID register";
    EXPECT_EQ(testing::in(apic, kVersion, 8), 0x0005'0014u) << "bytes 4-7 of a slot read 0";
    EXPECT_EQ(testing::in(apic, kVersion + 4, 4), 0u);
    testing::out(apic, kTpr, 0x20, 2);
    testing::out(apic, kTpr + 4, 0x20, 4);
    EXPECT_EQ(reg(kTpr), 0u);
    set(kTpr, 0x20);
    EXPECT_EQ(reg(kTpr), 0x20u);
}

TEST_F(Lapic, UnimplementedOffsetSetsIllegalRegisterAddress) {
    EXPECT_EQ(reg(0x2f0), 0u) << "no CMCI entry with six LVTs";
    EXPECT_EQ(esr(), 0x80u);
    EXPECT_EQ(esr(), 0u) << "cleared by the next write";
    set(0x3f0, 0x40);  // SELF IPI exists in x2APIC mode only
    EXPECT_EQ(esr(), 0x80u);
}

TEST_F(Lapic, IrrIsrEoiOrder) {
    enable();
    apic.accept(message(DeliveryMode::Fixed, 0x40));
    apic.accept(message(DeliveryMode::Fixed, 0x50));
    EXPECT_TRUE(apic.has_event());
    EXPECT_TRUE(host.kicks > 0);
    EXPECT_EQ(pending_vector(), 0x50);
    EXPECT_EQ(apic.acknowledge(), 0x50);
    EXPECT_TRUE(in_isr(0x50));
    EXPECT_FALSE(in_irr(0x50));
    EXPECT_TRUE(in_irr(0x40));
    EXPECT_EQ(reg(kPpr), 0x50u);
    EXPECT_EQ(pending_vector(), std::nullopt) << "0x40 is of a lower class than the one in service";
    apic.accept(message(DeliveryMode::Fixed, 0x61));
    EXPECT_EQ(pending_vector(), 0x61) << "a higher class preempts";
    EXPECT_EQ(service(), 0x61);
    EXPECT_TRUE(in_isr(0x50)) << "EOI ends the highest in service only";
    set(kEoi, 0);
    EXPECT_FALSE(in_isr(0x50));
    EXPECT_EQ(pending_vector(), 0x40);
    EXPECT_EQ(service(), 0x40);
    EXPECT_EQ(pending_vector(), std::nullopt);
    EXPECT_FALSE(apic.has_event());
    EXPECT_EQ(apic.acknowledge(), 0xff) << "nothing pending: the SVR's spurious vector";
    EXPECT_EQ(reg(0x100 + 0x70), 0u) << "which sets no ISR bit";
    EXPECT_TRUE(ioapic.eois().empty()) << "edge-triggered vectors are not broadcast";
}

TEST_F(Lapic, TaskPriorityMasksLowerClasses) {
    enable();
    set(kTpr, 0x50);
    apic.accept(message(DeliveryMode::Fixed, 0x5f));
    EXPECT_EQ(reg(kPpr), 0x50u);
    EXPECT_EQ(pending_vector(), std::nullopt);
    EXPECT_FALSE(apic.has_event());
    EXPECT_EQ(apic.cr8(), 5u);
    apic.set_cr8(4);
    EXPECT_EQ(reg(kTpr), 0x40u);
    EXPECT_EQ(pending_vector(), 0x5f);
    EXPECT_TRUE(apic.has_event());
    EXPECT_EQ(reg(kApr), 0x50u) << "APR: the pending request's class";
    apic.set_cr8(15);
    EXPECT_EQ(pending_vector(), std::nullopt);
    EXPECT_EQ(reg(kApr), 0xf0u);
}

TEST_F(Lapic, LevelTriggeredEoiReachesTheIoapic) {
    enable();
    apic.accept(message(DeliveryMode::Fixed, 0x70, true));
    EXPECT_TRUE(in_tmr(0x70));
    EXPECT_EQ(service(), 0x70);
    EXPECT_EQ(ioapic.eois(), std::vector<uint8_t>{0x70});
    apic.accept(message(DeliveryMode::Fixed, 0x70, false));
    EXPECT_FALSE(in_tmr(0x70)) << "an edge-triggered acceptance clears the TMR bit";
    EXPECT_EQ(service(), 0x70);
    EXPECT_EQ(ioapic.eois().size(), 1u);
}

TEST_F(Lapic, IllegalVectorsAreErrorsAndRaiseTheErrorLvt) {
    enable();
    apic.accept(message(DeliveryMode::Fixed, 5));
    EXPECT_EQ(reg(0x200), 0u) << "vectors 0-15 never reach the IRR";
    EXPECT_EQ(reg(kEsr), 0u) << "not visible before an ESR write";
    EXPECT_EQ(esr(), 0x40u) << "receive illegal vector";
    set(kLvtError, 0xfe);
    set(kIcrLow, 0x0000'4003);  // fixed IPI, vector 3
    EXPECT_TRUE(bus.messages().empty()) << "not sent";
    EXPECT_EQ(esr(), 0x20u) << "send illegal vector";
    EXPECT_EQ(pending_vector(), 0xfe) << "the error LVT's interrupt";
}

TEST_F(Lapic, SoftwareDisabledRefusesFixedTakesNmiAndKeepsLvtsMasked) {
    apic.accept(message(DeliveryMode::Fixed, 0x40));
    EXPECT_FALSE(in_irr(0x40));
    apic.accept(message(DeliveryMode::Nmi));
    EXPECT_TRUE(apic.pending_events() & LocalApic::kEventNmi);
    EXPECT_TRUE(apic.take_nmi());
    EXPECT_FALSE(apic.take_nmi());
    set(kLvtLint0, 0x700);
    EXPECT_EQ(reg(kLvtLint0), kMasked | 0x700) << "the mask cannot be cleared while disabled";
    enable();
    set(kLvtLint0, 0x700);
    set(kLvtTimer, 0x20);
    EXPECT_EQ(reg(kLvtLint0), 0x700u);
    set(kSvr, 0xff);
    EXPECT_EQ(reg(kLvtLint0), kMasked | 0x700) << "disabling masks every entry";
    EXPECT_EQ(reg(kLvtTimer), kMasked | 0x20);
}

TEST_F(Lapic, InitResetsAllButTheIdAndSipiCarriesItsVector) {
    enable();
    set(kId, 7u << 24);
    set(kTpr, 0x30);
    apic.accept(message(DeliveryMode::Fixed, 0x80));
    ApicMessage deassert = message(DeliveryMode::Init, 0, true);
    deassert.assert = false;
    apic.accept(deassert);
    EXPECT_FALSE(apic.pending_events() & LocalApic::kEventInit) << "INIT level de-assert does nothing";
    apic.accept(message(DeliveryMode::Init));
    apic.accept(message(DeliveryMode::StartUp, 0x9a));
    EXPECT_EQ(apic.pending_events() & (LocalApic::kEventInit | LocalApic::kEventStartUp),
              LocalApic::kEventInit | LocalApic::kEventStartUp);
    EXPECT_TRUE(apic.take_init());
    EXPECT_EQ(reg(kId), 7u << 24);
    EXPECT_EQ(reg(kTpr), 0u);
    EXPECT_EQ(reg(kSvr), 0xffu);
    EXPECT_FALSE(in_irr(0x80));
    EXPECT_EQ(reg(kLvtLint0), kMasked);
    EXPECT_EQ(apic.take_sipi(), 0x9a);
    EXPECT_EQ(apic.take_sipi(), std::nullopt);
    EXPECT_FALSE(apic.take_init());
    EXPECT_FALSE(apic.has_event());
}

TEST_F(Lapic, IcrSendsIpisAndSelfStaysLocal) {
    enable();
    set(kIcrHigh, 0x02ff'ffff);
    EXPECT_EQ(reg(kIcrHigh), 0x0200'0000u) << "destination bits 31:24 only";
    set(kIcrLow, 0x0000'50f1 | (1u << 12));  // fixed, level assert, delivery status written
    EXPECT_EQ(reg(kIcrLow), 0x0000'40f1u) << "delivery status reads idle";
    auto sent = bus.messages();
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(sent[0].vector, 0xf1);
    EXPECT_EQ(sent[0].mode, DeliveryMode::Fixed);
    EXPECT_EQ(sent[0].destination, 2u);
    EXPECT_FALSE(sent[0].logical);
    EXPECT_EQ(sent[0].shorthand, DestinationShorthand::None);
    EXPECT_EQ(sent[0].source, &apic);
    EXPECT_FALSE(sent[0].x2apic_destination);

    set(kIcrLow, 0x0004'0042);  // self
    EXPECT_EQ(bus.messages().size(), 1u);
    EXPECT_EQ(pending_vector(), 0x42);
    set(kIcrLow, 0x000c'0400);  // NMI to all but self
    ASSERT_EQ(bus.messages().size(), 2u);
    EXPECT_EQ(bus.messages()[1].mode, DeliveryMode::Nmi);
    EXPECT_EQ(bus.messages()[1].shorthand, DestinationShorthand::AllExcludingSelf);
    set(kIcrLow, 0x0000'0d00 | 0x8000);  // INIT level de-assert, logical
    ASSERT_EQ(bus.messages().size(), 3u);
    EXPECT_EQ(bus.messages()[2].mode, DeliveryMode::Init);
    EXPECT_TRUE(bus.messages()[2].logical);
    EXPECT_FALSE(bus.messages()[2].assert);
    set(kIcrLow, 0x0000'0700);  // delivery mode 111 is reserved in the ICR
    EXPECT_EQ(bus.messages().size(), 3u);
}

TEST_F(Lapic, X2apicMsrs) {
    EXPECT_EQ(apic.read_msr(0x802), std::nullopt) << "#GP outside x2APIC mode";
    EXPECT_FALSE(apic.write_msr(0x808, 0));
    ASSERT_TRUE(apic.set_apic_base(LocalApic::kDefaultBase | kEnable | kExtd | kBsp));
    EXPECT_TRUE(apic.x2apic_mode());
    EXPECT_FALSE(apic.decodes_mmio());
    EXPECT_EQ(reg(kVersion), 0xffff'ffffu) << "the page is not decoded";
    EXPECT_EQ(apic.read_msr(0x802), 3u);
    EXPECT_EQ(apic.read_msr(0x803), 0x0005'0014u);
    EXPECT_EQ(apic.read_msr(0x80d), 1u << 3) << "LDR: cluster 0, bit 3";
    EXPECT_FALSE(apic.write_msr(0x802, 5)) << "ID is read-only";
    EXPECT_FALSE(apic.write_msr(0x80d, 0)) << "LDR is read-only";
    EXPECT_EQ(apic.read_msr(0x80e), std::nullopt) << "no DFR";
    EXPECT_EQ(apic.read_msr(0x809), std::nullopt) << "no APR";
    EXPECT_EQ(apic.read_msr(0x831), std::nullopt) << "no ICR high";
    EXPECT_EQ(apic.read_msr(0x80b), std::nullopt) << "EOI is write-only";
    EXPECT_EQ(apic.read_msr(0x83f), std::nullopt) << "SELF IPI is write-only";
    EXPECT_EQ(apic.read_msr(0x840), std::nullopt);
    EXPECT_FALSE(apic.write_msr(0x80b, 1)) << "EOI takes only 0";
    EXPECT_TRUE(apic.write_msr(0x80b, 0));
    EXPECT_FALSE(apic.write_msr(0x828, 1)) << "ESR takes only 0";
    EXPECT_FALSE(apic.write_msr(0x808, 0x100)) << "TPR bits 31:8 are reserved";
    EXPECT_FALSE(apic.write_msr(0x808, uint64_t{1} << 32)) << "bits 63:32 are reserved";
    EXPECT_TRUE(apic.write_msr(0x808, 0x20));
    EXPECT_EQ(apic.read_msr(0x808), 0x20u);
    EXPECT_TRUE(apic.write_msr(0x80f, 0x1ff));

    EXPECT_TRUE(apic.write_msr(0x830, (uint64_t{0x1234'5678} << 32) | 0x4030));
    EXPECT_EQ(apic.read_msr(0x830), (uint64_t{0x1234'5678} << 32) | 0x4030);
    auto sent = bus.messages();
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(sent[0].destination, 0x1234'5678u);
    EXPECT_TRUE(sent[0].x2apic_destination);
    EXPECT_FALSE(apic.write_msr(0x830, 0x2000 | 0x30)) << "ICR bit 13 is reserved";
    EXPECT_FALSE(apic.write_msr(0x83f, 0x141)) << "SELF IPI bits 31:8 are reserved";
    EXPECT_TRUE(apic.write_msr(0x83f, 0x41));
    EXPECT_EQ(pending_vector(), 0x41);
    EXPECT_EQ(apic.read_msr(0x820 + 0x41 / 32), uint64_t{1} << (0x41 % 32)) << "IRR through its MSR";
}

TEST_F(Lapic, ApicBaseTransitions) {
    uint64_t xapic = LocalApic::kDefaultBase | kEnable, x2apic = xapic | kExtd, disabled = LocalApic::kDefaultBase;
    EXPECT_FALSE(apic.set_apic_base(LocalApic::kDefaultBase | kExtd)) << "EN=0 EXTD=1 is invalid";
    EXPECT_FALSE(apic.set_apic_base(xapic | 1)) << "reserved bit";
    EXPECT_FALSE(apic.set_apic_base(xapic | (uint64_t{1} << 46))) << "above the physical address width";
    set(kId, 9u << 24);
    ASSERT_TRUE(apic.set_apic_base(x2apic));
    EXPECT_EQ(apic.read_msr(0x802), 3u) << "the x2APIC ID is the initial one, not what xAPIC software wrote";
    EXPECT_FALSE(apic.set_apic_base(xapic)) << "x2APIC → xAPIC directly";
    EXPECT_EQ(apic.apic_base(), x2apic);
    ASSERT_TRUE(apic.set_apic_base(disabled));
    EXPECT_FALSE(apic.decodes_mmio());
    EXPECT_FALSE(apic.set_apic_base(x2apic)) << "disabled → x2APIC directly";
    ASSERT_TRUE(apic.set_apic_base(0xfed0'0000 | kEnable));
    EXPECT_EQ(apic.mmio_base(), 0xfed0'0000u);
    EXPECT_EQ(reg(kId), 3u << 24);
    EXPECT_EQ(reg(kSvr), 0xffu);
    EXPECT_EQ(apic.read_msr(LocalApic::kApicBaseMsr), 0xfed0'0000 | kEnable) << "BSP cleared as written";
}

TEST_F(Lapic, DisabledApicIgnoresMessagesAndItsPinsAreIntrAndNmi) {
    ASSERT_TRUE(apic.set_apic_base(LocalApic::kDefaultBase));
    apic.accept(message(DeliveryMode::Init));
    apic.accept(message(DeliveryMode::Nmi));
    EXPECT_FALSE(apic.has_event());
    apic.set_lint0(true);
    EXPECT_EQ(apic.pending_interrupt(), (LocalApic::PendingInterrupt{.external = true, .vector = 0}));
    EXPECT_EQ(apic.acknowledge(), 0x21) << "the 8259's vector";
    EXPECT_EQ(pic.acknowledges, 1);
    apic.set_lint0(false);
    EXPECT_EQ(apic.pending_interrupt(), std::nullopt);
    apic.set_lint1(true);
    EXPECT_TRUE(apic.take_nmi());
}

TEST_F(Lapic, ExtIntThroughLint0) {
    apic.set_lint0(true);
    EXPECT_EQ(apic.pending_interrupt(), std::nullopt) << "LINT0 masked after reset";
    enable();
    set(kLvtLint0, 0x700);
    EXPECT_TRUE(apic.pending_events() & LocalApic::kEventInterrupt);
    apic.accept(message(DeliveryMode::Fixed, 0xe0));
    EXPECT_EQ(apic.pending_interrupt(), (LocalApic::PendingInterrupt{.external = true, .vector = 0}))
        << "ExtINT before the IRR";
    EXPECT_EQ(apic.acknowledge(), 0x21);
    EXPECT_FALSE(in_isr(0xe0)) << "an ExtINT is not in service at the APIC";
    apic.set_lint0(false);
    EXPECT_EQ(pending_vector(), 0xe0);
    set(kSvr, 0xff);
    apic.set_lint0(true);
    EXPECT_EQ(apic.pending_interrupt(), (LocalApic::PendingInterrupt{.external = false, .vector = 0xe0}))
        << "masked with the APIC";
}

TEST_F(Lapic, Lint0LevelTriggeredFixedUsesRemoteIrr) {
    enable();
    set(kLvtLint0, 0x8035);  // fixed, level, vector 0x35
    apic.set_lint0(true);
    EXPECT_TRUE(in_tmr(0x35));
    EXPECT_EQ(reg(kLvtLint0), 0xc035u) << "remote IRR";
    EXPECT_EQ(apic.acknowledge(), 0x35);
    set(kEoi, 0);
    EXPECT_EQ(ioapic.eois(), std::vector<uint8_t>{0x35});
    EXPECT_TRUE(in_irr(0x35)) << "still asserted: delivered again after the EOI";
    apic.set_lint0(false);
    EXPECT_EQ(service(), 0x35);
    EXPECT_EQ(reg(kLvtLint0), 0x8035u) << "remote IRR cleared by the EOI";
    EXPECT_FALSE(in_irr(0x35)) << "not asserted any more";
    set(kLvtLint1, 0x400);  // NMI, edge
    apic.set_lint1(true);
    apic.set_lint1(true);
    EXPECT_TRUE(apic.take_nmi());
    EXPECT_FALSE(apic.take_nmi()) << "one NMI per rising edge";
}

TEST_F(Lapic, OneShotTimerFiresOnceAtItsCount) {
    enable();
    set(kDivide, 0xb);  // ÷1: one count per ns at 1 GHz
    set(kLvtTimer, 0x31);
    set(kInitialCount, 1000);
    EXPECT_EQ(reg(kCurrentCount), 1000u);
    time.advance(400);
    EXPECT_EQ(reg(kCurrentCount), 600u);
    time.advance(599);
    EXPECT_FALSE(apic.has_event());
    time.advance(1);
    EXPECT_TRUE(apic.has_event()) << "the host timer woke the vCPU";
    EXPECT_EQ(pending_vector(), 0x31);
    EXPECT_EQ(reg(kCurrentCount), 0u);
    EXPECT_EQ(service(), 0x31);
    time.advance(10'000);
    EXPECT_FALSE(apic.has_event()) << "once";
    EXPECT_EQ(reg(kCurrentCount), 0u);

    set(kDivide, 0);  // ÷2
    set(kInitialCount, 1000);
    time.advance(1999);
    EXPECT_EQ(reg(kCurrentCount), 1u);
    EXPECT_FALSE(apic.has_event());
    time.advance(1);
    EXPECT_EQ(pending_vector(), 0x31);
}

TEST_F(Lapic, PeriodicTimerReloads) {
    enable();
    set(kDivide, 0xb);
    set(kLvtTimer, 0x2'0032);
    set(kInitialCount, 100'000);  // 100 µs
    time.advance(30'000);
    EXPECT_EQ(reg(kCurrentCount), 70'000u);
    time.advance(70'000);
    EXPECT_EQ(pending_vector(), 0x32);
    EXPECT_EQ(reg(kCurrentCount), 100'000u) << "reloaded";
    EXPECT_EQ(service(), 0x32);
    time.advance(99'999);
    EXPECT_FALSE(apic.has_event());
    time.advance(1);
    EXPECT_EQ(pending_vector(), 0x32);
    EXPECT_EQ(service(), 0x32);
    set(kInitialCount, 0);
    time.advance(1'000'000);
    EXPECT_FALSE(apic.has_event()) << "a 0 initial count stops it";
}

TEST_F(Lapic, TinyPeriodsAreCoalescedForTheHost) {
    enable();
    set(kDivide, 0xb);
    set(kLvtTimer, 0x2'0033);
    set(kInitialCount, 10);  // 10 ns: a 100 MHz interrupt rate
    // A vCPU that takes the interrupt whenever it is kicked, for 1 ms of guest time in 1 µs steps.
    int taken = 0;
    for (int step = 0; step < 1000; ++step) {
        time.advance(1000);
        if (apic.has_event()) {
            ++taken;
            EXPECT_EQ(service(), 0x33);
        }
    }
    int64_t bound = 1'000'000 / LocalApic::kMinPeriodicIntervalNs + 1;
    EXPECT_GE(taken, bound - 3) << "the interrupt keeps coming";
    EXPECT_LE(taken, bound + 1) << "but at most once every kMinPeriodicIntervalNs";
    EXPECT_LE(host.kicks, bound + 1);
    EXPECT_LT(reg(kCurrentCount), 11u) << "the count still runs exactly";
}

TEST_F(Lapic, MaskedTimerCountsWithoutInterrupting) {
    enable();
    set(kDivide, 0xb);
    set(kLvtTimer, kMasked | 0x34);
    set(kInitialCount, 500);
    time.advance(200);
    EXPECT_EQ(reg(kCurrentCount), 300u);
    time.advance(1000);
    EXPECT_FALSE(apic.has_event());
    set(kLvtTimer, 0x34);
    EXPECT_EQ(pending_vector(), std::nullopt) << "the expiry while masked is lost";
}

TEST_F(Lapic, TscDeadlineTimer) {
    enable();
    EXPECT_EQ(apic.read_msr(LocalApic::kTscDeadlineMsr), 0u);
    EXPECT_TRUE(apic.write_msr(LocalApic::kTscDeadlineMsr, 12345));
    EXPECT_EQ(apic.read_msr(LocalApic::kTscDeadlineMsr), 0u) << "ignored outside TSC-deadline mode";
    set(kLvtTimer, 0x4'0035);
    int64_t now = time.clock.now_ns();  // the TSC at 1 GHz without offset
    ASSERT_TRUE(apic.write_msr(LocalApic::kTscDeadlineMsr, static_cast<uint64_t>(now) + 5000));
    set(kInitialCount, 10);
    EXPECT_EQ(reg(kInitialCount), 0u) << "ignored in TSC-deadline mode";
    EXPECT_EQ(reg(kCurrentCount), 0u);
    time.advance(4999);
    EXPECT_FALSE(apic.has_event());
    time.advance(1);
    EXPECT_EQ(pending_vector(), 0x35);
    EXPECT_EQ(apic.read_msr(LocalApic::kTscDeadlineMsr), 0u) << "disarmed once fired";
    EXPECT_EQ(service(), 0x35);

    ASSERT_TRUE(apic.write_msr(LocalApic::kTscDeadlineMsr, 1));
    EXPECT_EQ(pending_vector(), 0x35) << "a deadline in the past fires at once";
    EXPECT_EQ(service(), 0x35);

    apic.set_tsc_offset(1'000'000'000);
    now = time.clock.now_ns();
    ASSERT_TRUE(apic.write_msr(LocalApic::kTscDeadlineMsr, static_cast<uint64_t>(now) + 1'000'000'000 + 800));
    time.advance(799);
    EXPECT_FALSE(apic.has_event());
    time.advance(1);
    EXPECT_EQ(pending_vector(), 0x35);
    EXPECT_EQ(service(), 0x35);

    ASSERT_TRUE(apic.write_msr(LocalApic::kTscDeadlineMsr, static_cast<uint64_t>(now) + 1'000'000'000 + 5000));
    set(kLvtTimer, 0x35);  // back to one-shot: disarms
    set(kLvtTimer, 0x4'0035);
    EXPECT_EQ(apic.read_msr(LocalApic::kTscDeadlineMsr), 0u);
    time.advance(10'000);
    EXPECT_FALSE(apic.has_event());
}

TEST_F(Lapic, StateRoundTrip) {
    enable();
    set(kTpr, 0x20);
    set(kLdr, 0x0400'0000);
    set(kDfr, 0x0fff'ffff);
    set(kLvtLint0, 0x700);
    set(kLvtError, 0xfe);
    set(kDivide, 0xb);
    set(kLvtTimer, 0x2'0036);
    set(kInitialCount, 10'000);
    apic.accept(message(DeliveryMode::Fixed, 0x90, true));
    EXPECT_EQ(apic.acknowledge(), 0x90);
    apic.accept(message(DeliveryMode::Fixed, 0x41));
    apic.accept(message(DeliveryMode::Fixed, 3));  // an error not yet latched
    apic.accept(message(DeliveryMode::StartUp, 0x10));
    time.advance(2500);
    LocalApicState state = apic.export_state();
    EXPECT_EQ(load_le(std::span(state.page).subspan(kCurrentCount, 4)), 7500u);

    testing::FakeApicHost other_host;
    LocalApic copy{LocalApicConfig{.apic_id = 3, .bootstrap = true}, time.timers, bus, other_host};
    ASSERT_TRUE(copy.import_state(state));
    LocalApicState again = copy.export_state();
    EXPECT_EQ(again.apic_base, state.apic_base);
    EXPECT_EQ(again.page, state.page);
    EXPECT_EQ(again.extra, state.extra);
    EXPECT_EQ(copy.take_sipi(), 0x10);
    EXPECT_EQ(copy.acknowledge(), 0xfe) << "the error LVT's vector was pending";
    testing::out(copy, kEoi, 0, 4);
    testing::out(copy, kEoi, 0, 4);
    EXPECT_EQ(ioapic.eois(), std::vector<uint8_t>{}) << "the copy is not connected";
    EXPECT_EQ(copy.acknowledge(), 0x41);
    testing::out(copy, kEoi, 0, 4);

    time.advance(7499);
    EXPECT_EQ(copy.pending_interrupt(), std::nullopt);
    time.advance(1);
    EXPECT_EQ(copy.pending_interrupt(), (LocalApic::PendingInterrupt{.external = false, .vector = 0x36}))
        << "the count went on where it was";

    LocalApicState from_kvm = state;
    from_kvm.extra.reset();  // a page alone: the count restarts from it at import
    LocalApic third{LocalApicConfig{.apic_id = 3, .bootstrap = true}, time.timers, bus, other_host};
    ASSERT_TRUE(third.import_state(from_kvm));
    LocalApicState third_state = third.export_state();
    EXPECT_EQ(load_le(std::span(third_state.page).subspan(kCurrentCount, 4)), 7500u);
    EXPECT_EQ(load_le(std::span(third_state.page).subspan(kTpr, 4)), 0x20u);
    EXPECT_EQ(load_le(std::span(third_state.page).subspan(kLvtLint0, 4)), 0x700u);

    LocalApicState invalid = state;
    invalid.apic_base = LocalApic::kDefaultBase | kExtd;
    EXPECT_FALSE(third.import_state(invalid));
}

// Whatever a guest writes, in any mode: no crash, vectors 0-15 never pend or run, the timer's host
// wake-ups stay bounded, and the state exports and imports.
TEST_F(Lapic, RandomAccessesKeepTheInvariants) {
    std::mt19937_64 random(7);
    auto pick = [&](uint64_t n) { return random() % n; };
    for (int step = 0; step < 20'000; ++step) {
        switch (pick(8)) {
            case 0: set(static_cast<uint32_t>(pick(0x400)) & ~0xfu, static_cast<uint32_t>(random())); break;
            case 1: (void)testing::in(apic, pick(LocalApic::kWindowSize + 8), 1 + pick(8)); break;
            case 2: (void)apic.write_msr(static_cast<uint32_t>(0x800 + pick(0x100)), random() >> pick(64)); break;
            case 3: (void)apic.read_msr(static_cast<uint32_t>(0x800 + pick(0x100))); break;
            case 4: {
                ApicMessage m = message(static_cast<DeliveryMode>(pick(8)), static_cast<uint8_t>(random()), pick(2));
                apic.accept(m);
                break;
            }
            case 5:
                (void)apic.acknowledge();
                (void)apic.take_nmi();
                (void)apic.take_init();
                (void)apic.take_sipi();
                break;
            case 6: {
                uint64_t bases[] = {LocalApic::kDefaultBase | kEnable, LocalApic::kDefaultBase | kEnable | kExtd,
                                    LocalApic::kDefaultBase, random()};
                (void)apic.set_apic_base(bases[pick(4)]);
                break;
            }
            default:
                (void)apic.write_msr(LocalApic::kTscDeadlineMsr, random() >> pick(64));
                time.advance(static_cast<int64_t>(pick(100'000)));
                break;
        }
        LocalApicState state = apic.export_state();
        for (uint32_t base : {0x100u, 0x200u}) {
            ASSERT_EQ(load_le(std::span(state.page).subspan(base, 2)), 0u) << "vectors 0-15 at step " << step;
        }
    }
    LocalApicState state = apic.export_state();
    testing::FakeApicHost other_host;
    LocalApic copy{LocalApicConfig{.apic_id = 3, .bootstrap = true}, time.timers, bus, other_host};
    ASSERT_TRUE(copy.import_state(state));
    EXPECT_EQ(copy.export_state().page, state.page);
}

}  // namespace
}  // namespace strata
