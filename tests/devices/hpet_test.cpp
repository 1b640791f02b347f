#include "devices/legacy/hpet.hpp"

#include <gtest/gtest.h>

#include <atomic>

#include "fakes.hpp"

namespace strata {
namespace {

using testing::FakeIrqLine;
using testing::in;
using testing::out;

// Register offsets as a guest uses them (IA-PC HPET 1.0a §2.3.1).
constexpr uint64_t kCapabilities = 0x000, kConfig = 0x010, kStatus = 0x020, kCounter = 0x0f0;
constexpr uint64_t timer_config(unsigned n) { return 0x100 + 0x20 * n; }
constexpr uint64_t comparator(unsigned n) { return 0x108 + 0x20 * n; }
constexpr uint64_t fsb_route(unsigned n) { return 0x110 + 0x20 * n; }

constexpr uint64_t kEnable = 1, kLegacy = 2;
constexpr uint64_t kLevel = 1u << 1, kIntEnable = 1u << 2, kPeriodic = 1u << 3, kValueSet = 1u << 6;
constexpr uint64_t k32Bit = 1u << 8;
constexpr uint64_t route(unsigned gsi) { return uint64_t{gsi} << 9; }
constexpr int64_t kTick = 10;  // ns

// The machine clock runs on a source the test moves; at(ns) also runs the timers that became due,
// so interrupts come from the HPET's timer and not only from register accesses.
struct HpetTest : ::testing::Test {
    FakeIrqLine irq0, irq8, gsi16, gsi17;
    std::atomic<int64_t> source_ns{0};
    MachineClock clock{[this] { return source_ns.load(); }};
    TimerService timers{clock};
    Hpet hpet{timers, wiring()};

    Hpet::Wiring wiring() {
        Hpet::Wiring w;
        w.irq0 = &irq0;
        w.irq8 = &irq8;
        w.ioapic[16] = &gsi16;
        w.ioapic[17] = &gsi17;
        return w;
    }
    void at(int64_t ns) {
        source_ns = ns;
        timers.run_due_timers();
    }
    uint64_t read64(uint64_t offset) { return in(hpet, offset, 8); }
    uint64_t read32(uint64_t offset) { return in(hpet, offset, 4); }
    void write64(uint64_t offset, uint64_t value) { out(hpet, offset, value, 8); }
    void write32(uint64_t offset, uint64_t value) { out(hpet, offset, value, 4); }
};

TEST_F(HpetTest, CapabilitiesDescribeAStandardPcHpet) {
    uint64_t caps = read64(kCapabilities);
    EXPECT_EQ(caps & 0xff, 1u) << "REV_ID";
    EXPECT_EQ((caps >> 8) & 0x1f, 2u) << "NUM_TIM_CAP: three timers";
    EXPECT_NE(caps & (1u << 13), 0u) << "COUNT_SIZE_CAP: 64-bit counter";
    EXPECT_NE(caps & (1u << 15), 0u) << "LEG_RT_CAP";
    EXPECT_EQ((caps >> 16) & 0xffff, 0x8086u) << "VENDOR_ID";
    EXPECT_EQ(caps >> 32, 10'000'000u) << "COUNTER_CLK_PERIOD: 10 ns in fs";
    EXPECT_EQ(read32(kCapabilities + 4), 10'000'000u) << "the period as Linux reads it, 32 bits at 0x004";
    EXPECT_EQ(static_cast<uint32_t>(caps), Hpet::kEventTimerBlockId);

    // Timer 0 is periodic-capable; every timer is 64-bit, offers the wired routes and no FSB.
    for (unsigned n = 0; n < 3; ++n) {
        uint64_t config = read64(timer_config(n));
        EXPECT_EQ((config & (1u << 4)) != 0, n == 0) << "Tn_PER_INT_CAP, timer " << n;
        EXPECT_NE(config & (1u << 5), 0u) << "Tn_SIZE_CAP";
        EXPECT_EQ(config & (1u << 15), 0u) << "Tn_FSB_INT_DEL_CAP";
        EXPECT_EQ(config >> 32, (1u << 16) | (1u << 17)) << "Tn_INT_ROUTE_CAP";
        EXPECT_EQ(config & 0xffff'ffff & ~uint64_t{0x30}, 0u) << "reset: everything off, route 0";
    }
    EXPECT_EQ(read64(kConfig), 0u);
    EXPECT_EQ(read64(kStatus), 0u);
}

TEST_F(HpetTest, CounterRunsOnlyWhileEnabled) {
    at(1'000);
    EXPECT_EQ(read64(kCounter), 0u) << "halted after reset";
    write64(kConfig, kEnable);
    at(1'000 + 1'234 * kTick);
    EXPECT_EQ(read64(kCounter), 1'234u);
    at(1'000 + 1'234 * kTick + 5);
    EXPECT_EQ(read64(kCounter), 1'234u) << "one tick every 10 ns";
    write64(kConfig, 0);
    at(1'000'000);
    EXPECT_EQ(read64(kCounter), 1'234u) << "halting holds the value";
    write64(kConfig, kEnable);
    at(1'000'000 + 100 * kTick);
    EXPECT_EQ(read64(kCounter), 1'334u) << "and enabling continues from it";
}

TEST_F(HpetTest, CounterWritesTakeOnlyWhileHalted) {
    write64(kCounter, 0x1'0000'0000);
    EXPECT_EQ(read64(kCounter), 0x1'0000'0000u);
    write32(kCounter, 0xffff'fff0);  // the low half alone
    EXPECT_EQ(read64(kCounter), 0x1'ffff'fff0u);
    write64(kConfig, kEnable);
    at(16 * kTick);
    EXPECT_EQ(read64(kCounter), 0x2'0000'0000u) << "carries into the high half";
    EXPECT_EQ(read32(kCounter + 4), 2u);
    write64(kCounter, 5);  // while running: lost
    EXPECT_EQ(read64(kCounter), 0x2'0000'0000u);
}

TEST_F(HpetTest, ReadsAreMonotonicAndFollowTheClock) {
    write64(kConfig, kEnable);
    uint64_t last = 0;
    for (int64_t ns = 0; ns < 10'000; ns += 7) {
        at(ns);
        uint64_t now = read64(kCounter);
        EXPECT_GE(now, last);
        EXPECT_EQ(now, static_cast<uint64_t>(ns / kTick));
        last = now;
    }
    // Pausing the machine clock stops the counter.
    clock.pause();
    at(1'000'000);
    EXPECT_EQ(read64(kCounter), last);
    clock.resume();
}

TEST_F(HpetTest, OneShotEdgeInterruptAtTheComparator) {
    write64(timer_config(2), kIntEnable | route(16));
    write64(comparator(2), 1'000);
    write64(kConfig, kEnable);
    at(999 * kTick);
    EXPECT_EQ(gsi16.raises(), 0u);
    at(1'000 * kTick);
    EXPECT_EQ(gsi16.levels(), (std::vector<bool>{true, false})) << "an edge: one pulse";
    at(1'000'000 * kTick);
    EXPECT_EQ(gsi16.raises(), 1u) << "one-shot: the 64-bit counter does not come round again";
    EXPECT_EQ(read64(comparator(2)), 1'000u) << "the comparator does not move";
    EXPECT_EQ(read64(kStatus), 0u) << "edge interrupts set no status bit";
    EXPECT_EQ(irq0.raises() + irq8.raises() + gsi17.raises(), 0u);
}

TEST_F(HpetTest, ComparatorInThePastFiresAtOnceWhenWritten) {
    write64(timer_config(2), kIntEnable | route(17));
    write64(kConfig, kEnable);
    at(500 * kTick);
    write64(comparator(2), 500);  // equal to the counter now: a match
    EXPECT_EQ(gsi17.raises(), 1u);
    write64(comparator(2), 100);  // behind: the 64-bit counter never comes round
    at(1'000'000 * kTick);
    EXPECT_EQ(gsi17.raises(), 1u);
}

// A periodic timer whose interrupt is disabled still accumulates (reads show it) but raises
// nothing, and enabling its interrupt later does not deliver the matches it missed.
TEST_F(HpetTest, PeriodicTimerWithoutInterruptAccumulatesSilently) {
    write64(kConfig, kEnable);
    write64(timer_config(0), kPeriodic | kValueSet | route(16));
    write64(comparator(0), 10'000);
    write64(comparator(0), 10'000);  // the period: 100 us
    at(105'000 * kTick);
    EXPECT_EQ(read64(comparator(0)), 110'000u) << "the accumulator moved past now";
    EXPECT_EQ(gsi16.raises(), 0u);
    write64(timer_config(0), kIntEnable | kPeriodic | route(16));
    EXPECT_EQ(gsi16.raises(), 0u) << "no interrupt for matches while INT_ENB was clear";
    at(110'000 * kTick);
    EXPECT_EQ(gsi16.raises(), 1u);
    at(120'000 * kTick);
    EXPECT_EQ(gsi16.raises(), 2u);
}

TEST_F(HpetTest, PeriodicTimerAccumulates) {
    // Linux's periodic set-up: VAL_SET, the first match, then the period alone.
    write64(kConfig, kEnable);
    write64(timer_config(0), kIntEnable | kPeriodic | kValueSet | route(16));
    write64(comparator(0), 10'000);
    EXPECT_EQ(read64(timer_config(0)) & kValueSet, 0u) << "VAL_SET clears after one write";
    write64(comparator(0), 2'500);  // the period; the first match stays at 10,000
    EXPECT_EQ(read64(comparator(0)), 10'000u);
    at(9'999 * kTick);
    EXPECT_EQ(gsi16.raises(), 0u);
    at(10'000 * kTick);
    EXPECT_EQ(gsi16.raises(), 1u);
    EXPECT_EQ(read64(comparator(0)), 12'500u) << "the accumulator adds the period";
    at(12'500 * kTick);
    EXPECT_EQ(gsi16.raises(), 2u);
    at(15'000 * kTick);
    EXPECT_EQ(gsi16.raises(), 3u);
    // Three periods missed at once are one interrupt; the accumulator skips past now.
    at(23'000 * kTick);
    EXPECT_EQ(gsi16.raises(), 4u);
    EXPECT_EQ(read64(comparator(0)), 25'000u);
    // A new period takes effect after the next match.
    write64(comparator(0), 1'000'000);
    EXPECT_EQ(read64(comparator(0)), 25'000u);
    at(25'000 * kTick);
    EXPECT_EQ(read64(comparator(0)), 1'025'000u);
}

TEST_F(HpetTest, PeriodicRateIsBounded) {
    write64(timer_config(0), kIntEnable | kPeriodic | kValueSet | route(16));
    write64(comparator(0), 1);
    write64(comparator(0), 1);  // a period of one tick: 100 MHz
    write64(kConfig, kEnable);
    for (int64_t ns = 0; ns <= 1'000'000; ns += 1'000) at(ns);
    // 1 ms at one interrupt per kMinPeriodicIntervalNs at most.
    EXPECT_LE(gsi16.raises(), 1'000'000 / Hpet::kMinPeriodicIntervalNs + 1);
    EXPECT_GE(gsi16.raises(), 1'000'000 / Hpet::kMinPeriodicIntervalNs - 1);
}

TEST_F(HpetTest, OnlyTimer0IsPeriodic) {
    write64(timer_config(1), kPeriodic | kValueSet | kIntEnable);
    EXPECT_EQ(read64(timer_config(1)) & (kPeriodic | kValueSet), 0u);
}

TEST_F(HpetTest, LevelInterruptHoldsTheLineUntilStatusIsCleared) {
    write64(timer_config(2), kLevel | kIntEnable | route(16));
    write64(comparator(2), 100);
    write64(kConfig, kEnable);
    at(100 * kTick);
    EXPECT_TRUE(gsi16.level());
    EXPECT_EQ(read64(kStatus), 1u << 2);
    write64(kStatus, 1u << 0 | 1u << 1);  // other bits: nothing
    EXPECT_TRUE(gsi16.level());
    write64(kStatus, 1u << 2);  // write 1 to clear
    EXPECT_FALSE(gsi16.level());
    EXPECT_EQ(read64(kStatus), 0u);
    EXPECT_EQ(gsi16.raises(), 1u);
}

TEST_F(HpetTest, LevelStatusIsSetWithInterruptsDisabled) {
    write64(timer_config(2), kLevel | route(16));
    write64(comparator(2), 100);
    write64(kConfig, kEnable);
    at(100 * kTick);
    EXPECT_EQ(read64(kStatus), 1u << 2) << "the status bit shows the match";
    EXPECT_EQ(gsi16.raises(), 0u) << "INT_ENB clear: no interrupt";
    write64(timer_config(2), kLevel | kIntEnable | route(16));
    EXPECT_TRUE(gsi16.level()) << "enabling shows the pending status";
    write64(kConfig, 0);
    EXPECT_FALSE(gsi16.level()) << "halting the HPET disables its interrupts";
}

TEST_F(HpetTest, LegacyReplacementRoutesTimers0And1ToIrq0AndIrq8) {
    write64(timer_config(0), kIntEnable | route(16));
    write64(timer_config(1), kIntEnable | route(17));
    write64(comparator(0), 100);
    write64(comparator(1), 200);
    write64(kConfig, kEnable | kLegacy);
    at(100 * kTick);
    EXPECT_EQ(irq0.raises(), 1u);
    at(200 * kTick);
    EXPECT_EQ(irq8.raises(), 1u);
    EXPECT_EQ(gsi16.raises() + gsi17.raises(), 0u) << "their own routes have no effect";

    // Without LegacyReplacement the routes apply.
    write64(kConfig, 0);
    write64(kCounter, 0);
    write64(kConfig, kEnable);  // at 200 ticks' time
    at((200 + 200) * kTick);
    EXPECT_EQ(gsi16.raises(), 1u);
    EXPECT_EQ(gsi17.raises(), 1u);
    EXPECT_EQ(irq0.raises(), 1u);
}

TEST_F(HpetTest, LegacyReplacementCutsOffThePitAndRtc) {
    hpet.pit_input().pulse();
    hpet.rtc_input().raise();
    EXPECT_EQ(irq0.levels(), (std::vector<bool>{true, false})) << "passes through while off";
    EXPECT_TRUE(irq8.level());
    write64(kConfig, kEnable | kLegacy);
    EXPECT_FALSE(irq8.level()) << "the RTC's level no longer reaches IRQ8";
    hpet.pit_input().pulse();
    EXPECT_EQ(irq0.raises(), 1u);
    write64(kConfig, kEnable);
    EXPECT_TRUE(irq8.level()) << "and reaches it again";
    hpet.rtc_input().lower();
    EXPECT_FALSE(irq8.level());
}

TEST_F(HpetTest, ThirtyTwoBitModeMatchesTheLowHalfAndWraps) {
    write64(kCounter, 0xffff'ff00);
    write64(timer_config(2), kIntEnable | k32Bit | route(16));
    write64(comparator(2), 0x1'0000'0010);  // the upper half does not take in 32-bit mode
    EXPECT_EQ(read64(comparator(2)), 0x10u);
    write64(kConfig, kEnable);
    at(0x110 * kTick);  // the counter passes 0x1'0000'0000: its low half wraps to the comparator
    EXPECT_EQ(gsi16.raises(), 1u);
    EXPECT_EQ(read64(kCounter), 0x1'0000'0010u);
    // A one-shot 32-bit timer matches again when the low half comes round.
    at((0x110 + 0x1'0000'0000 - 1) * kTick);
    EXPECT_EQ(gsi16.raises(), 1u);
    at((0x110 + 0x1'0000'0000) * kTick);
    EXPECT_EQ(gsi16.raises(), 2u);
}

TEST_F(HpetTest, EnteringThirtyTwoBitModeClearsTheUpperComparator) {
    write64(comparator(0), 0x1234'5678'9abc'def0);
    EXPECT_EQ(read64(comparator(0)), 0x1234'5678'9abc'def0u);
    write32(timer_config(0), k32Bit);
    EXPECT_EQ(read64(comparator(0)), 0x9abc'def0u);
    write32(timer_config(0), 0);
    EXPECT_EQ(read64(comparator(0)), 0x9abc'def0u) << "and it stays 0 in 64-bit mode";
    write32(timer_config(0), k32Bit);
    write64(comparator(0), 0x1111'2222'3333'4444);
    write32(timer_config(0), 0);
    EXPECT_EQ(read64(comparator(0)), 0x3333'4444u) << "32-bit mode writes only the low half";
}

TEST_F(HpetTest, PeriodicThirtyTwoBitAccumulatorWraps) {
    write64(kCounter, 0xffff'0000);
    write64(timer_config(0), kIntEnable | kPeriodic | kValueSet | k32Bit | route(16));
    write64(comparator(0), 0xffff'8000);
    write64(comparator(0), 0x10000);
    write64(kConfig, kEnable);
    at(0x8000 * kTick);
    EXPECT_EQ(gsi16.raises(), 1u);
    EXPECT_EQ(read64(comparator(0)), 0x8000u) << "0xffff8000 + 0x10000 wraps through 0";
    at(0x18000 * kTick);
    EXPECT_EQ(gsi16.raises(), 2u);
}

TEST_F(HpetTest, WritesAreMaskedToWritableBits) {
    write64(kCapabilities, 0);
    EXPECT_EQ(read64(kCapabilities), Hpet::kCapabilities) << "read-only";
    write64(kConfig, ~uint64_t{0} & ~kEnable);
    EXPECT_EQ(read64(kConfig), kLegacy) << "ENABLE_CNF and LEG_RT_CNF only";
    write64(kStatus, ~uint64_t{0});
    EXPECT_EQ(read64(kStatus), 0u);
    write64(timer_config(0), ~uint64_t{0} & ~route(31));  // every bit, and route 0 (not offered)
    uint64_t config = read64(timer_config(0));
    EXPECT_EQ(config & 0xffff'ffff, kLevel | kIntEnable | kPeriodic | (1u << 4) | (1u << 5) | kValueSet | k32Bit)
        << "no FSB enable, no reserved bits";
    write64(comparator(0), 0);
    EXPECT_EQ(read64(timer_config(0)) & kValueSet, 0u) << "VAL_SET lasts until the next comparator write";
    EXPECT_EQ(config >> 32, (1u << 16) | (1u << 17)) << "the route capabilities are read-only";
    // Routes the board did not wire do not take; wired ones do.
    write64(timer_config(2), route(5));
    EXPECT_EQ(read64(timer_config(2)) & route(31), 0u);
    write64(timer_config(2), route(17));
    EXPECT_EQ(read64(timer_config(2)) & route(31), route(17));
    write64(timer_config(2), route(18));
    EXPECT_EQ(read64(timer_config(2)) & route(31), route(17)) << "an unwired route leaves the old one";
    write64(fsb_route(0), ~uint64_t{0});
    EXPECT_EQ(read64(fsb_route(0)), 0u) << "no FSB delivery";
}

TEST_F(HpetTest, NarrowAccessesReachTheBytesTheyCover) {
    EXPECT_EQ(in(hpet, kCapabilities + 2, 2), 0x8086u);
    EXPECT_EQ(in(hpet, kCapabilities + 1, 1), 0xa2u);
    out(hpet, kConfig, kEnable, 1);
    EXPECT_EQ(read64(kConfig), kEnable);
    write64(kConfig, 0);
    out(hpet, comparator(1) + 4, 0xab, 1);  // byte 4 of timer 1's comparator
    EXPECT_EQ(read64(comparator(1)), 0xffff'ffab'ffff'ffffu);
    // An 8-byte access across two registers reaches both halves.
    out(hpet, comparator(1) + 4, 0x1111'2222'3333'4444, 8);
    EXPECT_EQ(read64(comparator(1)), 0x3333'4444'ffff'ffffu);
    EXPECT_EQ(read64(fsb_route(1)), 0u);
}

TEST_F(HpetTest, UnknownOffsetsReadZero) {
    for (uint64_t offset : {uint64_t{0x008}, uint64_t{0x018}, uint64_t{0x028}, uint64_t{0x0e8}, uint64_t{0x0f8},
                            uint64_t{0x118}, uint64_t{0x160}, uint64_t{0x168}, uint64_t{0x3f8}}) {
        write64(offset, ~uint64_t{0});
        EXPECT_EQ(read64(offset), 0u) << std::hex << offset;
    }
    EXPECT_EQ(in(hpet, Hpet::kWindowSize - 2, 8), 0u) << "an access past the window";
    EXPECT_EQ(read64(kConfig), 0u);
}

// The counter's enable time is machine time: an HPET restored on a machine clock at the
// snapshot's time reads the counter on from where it was, and its armed timer fires on time.
TEST_F(HpetTest, ARestoredHpetCountsOnAndFiresItsTimer) {
    write64(timer_config(2), kIntEnable | route(16));
    write64(comparator(2), 1000);  // 10 µs after enable
    write64(kConfig, kEnable);
    at(4000);  // 400 ticks
    Hpet::State saved = hpet.state();

    FakeIrqLine r_irq0, r_irq8, r_gsi16, r_gsi17;
    TimerService restored_timers{clock};
    Hpet::Wiring w;
    w.irq0 = &r_irq0;
    w.irq8 = &r_irq8;
    w.ioapic[16] = &r_gsi16;
    w.ioapic[17] = &r_gsi17;
    Hpet restored{restored_timers, w};
    ASSERT_TRUE(restored.set_state(testing::through_snapshot(saved)));
    EXPECT_EQ(in(restored, kCounter, 8), 400u);
    EXPECT_EQ(r_gsi16.raises(), 0u);
    source_ns = 10'000;
    restored_timers.run_due_timers();
    EXPECT_EQ(r_gsi16.raises(), 1u) << "the comparator matched at tick 1000";
}

TEST_F(HpetTest, AStateWithBitsItDoesNotKeepIsRefused) {
    Hpet::State bad = hpet.state();
    bad.timers[1].config = kPeriodic;  // only timer 0 is periodic-capable
    EXPECT_FALSE(hpet.set_state(bad));
    bad = hpet.state();
    bad.timers[0].config = route(5);  // not wired
    auto refused = hpet.set_state(bad);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("input 5"), std::string::npos) << refused.error().message;
    bad = hpet.state();
    bad.enabled_at = 1'000'000;  // after the clock's present
    EXPECT_FALSE(hpet.set_state(bad));
    EXPECT_EQ(read64(timer_config(0)) & kPeriodic, 0u);
}

}  // namespace
}  // namespace strata
