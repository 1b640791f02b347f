#include "devices/irqchip/pit8254.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>

#include "fakes.hpp"

namespace strata {
namespace {

using testing::inb;
using testing::outb;

constexpr int64_t kHz = Pit8254::kInputHz;

// The first machine-clock ns of input tick `tick`.
int64_t ns_of_tick(int64_t tick) {
    return tick / kHz * 1'000'000'000 + (tick % kHz * 1'000'000'000 + kHz - 1) / kHz;
}

// Ports as offsets: counters 0-2 and the control word in one window, port B in the other.
constexpr uint64_t kCounter0 = 0, kCounter2 = 2, kControl = 3;

// The machine clock runs on a source the test moves: at_tick(t) goes to the start of input
// tick t and lets the timer service run what became due, so every count is exact.
struct Pit : ::testing::Test {
    testing::FakeIrqLine irq0;
    std::atomic<int64_t> source_ns{0};
    MachineClock clock{[this] { return source_ns.load(); }};
    TimerService timers{clock};
    Pit8254 pit{irq0, timers};
    BusDevice& counters = *pit.counters();
    BusDevice& port_b = *pit.system_control();

    void at_ns(int64_t ns) {
        source_ns = ns;
        timers.run_due_timers();
    }
    void at_tick(int64_t tick) { at_ns(ns_of_tick(tick)); }

    void program(uint64_t counter, uint8_t control, uint16_t count) {
        outb(counters, kControl, control);
        outb(counters, counter, static_cast<uint8_t>(count));
        outb(counters, counter, static_cast<uint8_t>(count >> 8));
    }
    // Counter latch command, then LSB and MSB, as Linux's i8253 clocksource reads counter 0.
    uint16_t latched(uint64_t counter) {
        outb(counters, kControl, static_cast<uint8_t>(counter << 6));
        uint16_t low = inb(counters, counter);
        return static_cast<uint16_t>(low | inb(counters, counter) << 8);
    }
    uint8_t status(uint64_t counter) {
        outb(counters, kControl, static_cast<uint8_t>(0xe0 | 2u << counter));  // read-back: status only
        return inb(counters, counter);
    }
    bool out(uint64_t counter) { return (status(counter) & 0x80) != 0; }
};

TEST_F(Pit, Mode0InterruptsOnceAtTerminalCount) {
    program(kCounter0, 0x30, 100);  // counter 0, LSB then MSB, mode 0, binary: at tick 0
    EXPECT_FALSE(out(0)) << "mode 0 OUT starts low";
    // Loaded on the next CLK (tick 1), which does not count: terminal count at tick 101.
    at_tick(1);
    EXPECT_EQ(latched(0), 100);
    at_tick(51);
    EXPECT_EQ(latched(0), 50);
    at_tick(100);
    EXPECT_EQ(irq0.raises(), 0u);
    EXPECT_FALSE(out(0));
    at_tick(101);
    EXPECT_EQ(irq0.levels(), (std::vector<bool>{true, false})) << "one pulse on the rising edge";
    EXPECT_TRUE(out(0));
    at_tick(106);
    EXPECT_EQ(latched(0), 0x10000 - 5) << "the count wraps after terminal count";
    at_tick(1'000'000);
    EXPECT_EQ(irq0.raises(), 1u) << "one-shot";
    EXPECT_TRUE(out(0));
}

TEST_F(Pit, Mode2InterruptsEveryPeriod) {
    program(kCounter0, 0x34, 1000);  // mode 2 (rate generator)
    for (int64_t period = 1; period <= 20; ++period) {
        at_tick(1 + period * 1000 - 1);
        EXPECT_EQ(irq0.raises(), static_cast<size_t>(period - 1));
        EXPECT_FALSE(out(0)) << "OUT is low for the one CLK while CE is 1";
        EXPECT_EQ(latched(0), 1);
        at_tick(1 + period * 1000);
        EXPECT_EQ(irq0.raises(), static_cast<size_t>(period)) << "period " << period;
        EXPECT_TRUE(out(0));
        EXPECT_EQ(latched(0), 1000) << "reloaded";
    }
}

TEST_F(Pit, Mode2RateOverASecond) {
    program(kCounter0, 0x34, 11932);  // 100 Hz
    for (int64_t ms = 1; ms <= 1000; ++ms) at_ns(ms * 1'000'000);
    // Edges at ticks 1 + k * 11932 up to 1193182.
    EXPECT_EQ(irq0.raises(), 99u);
    at_ns(1'010'000'000);
    EXPECT_EQ(irq0.raises(), 100u);
}

TEST_F(Pit, Mode2NewCountTakesEffectAfterThePeriod) {
    program(kCounter0, 0x34, 100);  // edges at 101, 201, ...
    at_tick(150);
    outb(counters, kCounter0, 50);
    outb(counters, kCounter0, 0);
    EXPECT_EQ(status(0) & 0x40, 0x40) << "NULL COUNT until the new count is loaded";
    at_tick(160);
    EXPECT_EQ(latched(0), 100 - 59) << "the old period goes on";
    at_tick(200);
    EXPECT_EQ(irq0.raises(), 1u);
    at_tick(201);
    EXPECT_EQ(irq0.raises(), 2u);
    EXPECT_EQ(status(0) & 0x40, 0);
    at_tick(250);
    EXPECT_EQ(irq0.raises(), 2u);
    at_tick(251);
    EXPECT_EQ(irq0.raises(), 3u) << "now every 50 ticks";
    at_tick(301);
    EXPECT_EQ(irq0.raises(), 4u);
}

TEST_F(Pit, Mode3SquareWave) {
    program(kCounter0, 0x36, 1000);  // mode 3, even count: 500 ticks high, 500 low
    at_tick(11);
    EXPECT_EQ(latched(0), 1000 - 20) << "counts down by two";
    EXPECT_TRUE(out(0));
    at_tick(500);
    EXPECT_TRUE(out(0));
    at_tick(501);
    EXPECT_FALSE(out(0));
    EXPECT_EQ(latched(0), 1000) << "reloaded for the low half";
    EXPECT_EQ(irq0.raises(), 0u);
    at_tick(1001);
    EXPECT_TRUE(out(0));
    EXPECT_EQ(irq0.raises(), 1u) << "IRQ0 on the rising edge";
    at_tick(2001);
    EXPECT_EQ(irq0.raises(), 2u);

    outb(port_b, 0, 0x01);        // GATE 2 high
    program(kCounter2, 0xb6, 5);  // counter 2, odd count 5: 3 ticks high, 2 low; CE from N-1
    int64_t start = 2001 + 1;
    std::vector<std::pair<uint16_t, bool>> seen;
    for (int64_t t = start; t < start + 10; ++t) {
        at_tick(t);
        seen.emplace_back(latched(2), out(2));
    }
    std::vector<std::pair<uint16_t, bool>> want{{4, true}, {2, true}, {0, true}, {4, false}, {2, false},
                                                {4, true}, {2, true}, {0, true}, {4, false}, {2, false}};
    EXPECT_EQ(seen, want);
}

TEST_F(Pit, Mode4StrobesOneClockAfterTerminalCount) {
    program(kCounter0, 0x38, 10);  // mode 4: OUT high, low for the CLK at terminal count (tick 11)
    at_tick(10);
    EXPECT_TRUE(out(0));
    at_tick(11);
    EXPECT_FALSE(out(0));
    EXPECT_EQ(irq0.raises(), 0u);
    at_tick(12);
    EXPECT_TRUE(out(0));
    EXPECT_EQ(irq0.raises(), 1u);
    at_tick(100'000);
    EXPECT_EQ(irq0.raises(), 1u);
}

TEST_F(Pit, CountZeroIs65536) {
    program(kCounter0, 0x34, 0);
    at_tick(1);
    EXPECT_EQ(latched(0), 0) << "65536 reads as 0";
    at_tick(2);
    EXPECT_EQ(latched(0), 0xffff);
    at_tick(65536);
    EXPECT_EQ(irq0.raises(), 0u);
    at_tick(65537);
    EXPECT_EQ(irq0.raises(), 1u);
}

TEST_F(Pit, BcdCounting) {
    program(kCounter0, 0x31, 0x0100);  // mode 0, BCD: 100 decimal
    at_tick(2);
    EXPECT_EQ(latched(0), 0x0099);
    at_tick(101);
    EXPECT_EQ(irq0.raises(), 1u);
    at_tick(102);
    EXPECT_EQ(latched(0), 0x9999) << "wraps within four decades";
    program(kCounter0, 0x31, 0);  // 0 is 10000 in BCD
    at_tick(104);
    EXPECT_EQ(latched(0), 0x9999);
    EXPECT_EQ(status(0) & 0x3f, 0x31);
}

TEST_F(Pit, LatchHoldsTheCountUntilItIsRead) {
    program(kCounter0, 0x34, 1000);
    at_tick(101);
    outb(counters, kControl, 0x00);  // latch counter 0: 900
    at_tick(300);
    outb(counters, kControl, 0x00);  // ignored: the first latch is not read yet
    at_tick(500);
    EXPECT_EQ(inb(counters, kCounter0), 900 & 0xff);
    at_tick(600);
    EXPECT_EQ(inb(counters, kCounter0), 900 >> 8);
    EXPECT_EQ(inb(counters, kCounter0), (1000 - 599) & 0xff) << "then the live count again";
    EXPECT_EQ(inb(counters, kCounter0), (1000 - 599) >> 8);
}

TEST_F(Pit, ReadBackStatusAndCount) {
    outb(port_b, 0, 0x01);           // GATE 2 high
    outb(counters, kControl, 0x36);  // counter 0, mode 3, LSB then MSB
    EXPECT_EQ(status(0), 0x80 | 0x40 | 0x36) << "OUT high, NULL COUNT, the control word";
    outb(counters, kControl, 0xb0);  // counter 2, mode 0
    EXPECT_EQ(status(2), 0x40 | 0x30) << "mode 0: OUT low";
    at_tick(10);
    outb(counters, kCounter0, 0xe8);
    outb(counters, kCounter0, 0x03);  // 1000
    EXPECT_EQ(status(0) & 0x40, 0x40) << "NULL COUNT until the next CLK loads CE";
    at_tick(11);
    EXPECT_EQ(status(0), 0x80 | 0x36);
    program(kCounter2, 0xb0, 500);  // at tick 11: loaded at 12
    at_tick(112);
    // Read-back of count and status for counters 0 and 2 at once: status first, then count.
    outb(counters, kControl, 0xc0 | 0x02 | 0x08);
    at_tick(300);
    EXPECT_EQ(inb(counters, kCounter0), 0x80 | 0x36);
    EXPECT_EQ(inb(counters, kCounter0), (1000 - 2 * 101) & 0xff);
    EXPECT_EQ(inb(counters, kCounter0), (1000 - 2 * 101) >> 8);
    EXPECT_EQ(inb(counters, kCounter2), 0x30);
    EXPECT_EQ(inb(counters, kCounter2), 400 & 0xff);
    EXPECT_EQ(inb(counters, kCounter2), 400 >> 8);
    // Count only (STATUS# set).
    outb(counters, kControl, 0xd0 | 0x08);
    EXPECT_EQ(inb(counters, kCounter2), (500 - 288) & 0xff);
    EXPECT_EQ(inb(counters, kCounter2), (500 - 288) >> 8);
    EXPECT_EQ(inb(counters, kControl), 0xff) << "the control word cannot be read";
}

TEST_F(Pit, ByteAccessModesAndOrder) {
    outb(port_b, 0, 0x01);        // GATE 2 high
    program(kCounter2, 0x90, 0);  // counter 2, LSB only, mode 0 (program() writes two LSBs)
    outb(counters, kCounter2, 0x34);
    at_tick(1);
    EXPECT_EQ(inb(counters, kCounter2), 0x34);
    EXPECT_EQ(inb(counters, kCounter2), 0x34) << "LSB only: every read is the LSB";

    outb(counters, kControl, 0xa0);  // MSB only
    outb(counters, kCounter2, 0x12);
    at_tick(2);
    EXPECT_EQ(inb(counters, kCounter2), 0x12);
    EXPECT_EQ(status(2) & 0x30, 0x20);

    // LSB then MSB, with the read and write flip-flops apart (datasheet: read LSB, write LSB,
    // read MSB, write MSB is a valid sequence).
    program(kCounter2, 0xb4, 0x1234);  // mode 2, at tick 2: loaded at 3
    at_tick(3);
    EXPECT_EQ(inb(counters, kCounter2), 0x34);
    outb(counters, kCounter2, 0x78);
    EXPECT_EQ(inb(counters, kCounter2), 0x12);
    outb(counters, kCounter2, 0x56);
    at_tick(3 + 0x1234);
    EXPECT_EQ(latched(2), 0x5678) << "the new count after the period";
}

TEST_F(Pit, Mode0FirstByteStopsTheCount) {
    program(kCounter0, 0x30, 10);
    at_tick(20);
    EXPECT_TRUE(out(0));
    outb(counters, kCounter0, 0x20);  // first byte: counting stops, OUT low at once
    EXPECT_FALSE(out(0));
    uint16_t held = latched(0);
    at_tick(1000);
    EXPECT_EQ(latched(0), held);
    EXPECT_EQ(irq0.raises(), 1u);
    outb(counters, kCounter0, 0x00);  // 0x0020 = 32, loaded at tick 1001
    at_tick(1001 + 31);
    EXPECT_EQ(irq0.raises(), 1u);
    at_tick(1001 + 32);
    EXPECT_EQ(irq0.raises(), 2u);
}

TEST_F(Pit, ControlWordStopsTheCounter) {
    program(kCounter0, 0x34, 100);
    at_tick(50);
    outb(counters, kControl, 0x34);  // a new control word and no count yet
    at_tick(10'000);
    EXPECT_EQ(irq0.raises(), 0u);
    EXPECT_TRUE(out(0));
}

// Linux's pit_calibrate_tsc: GATE 2 high with the speaker off, counter 2 in mode 0 with a 50 ms
// count, then poll port B bit 5 (OUT 2) until terminal count. quick_pit_calibrate reads the
// live count as LSB and MSB without a latch. Counter 2 never touches IRQ0.
TEST_F(Pit, Counter2CountdownAsLinuxCalibratesTheTsc) {
    outb(port_b, 0, static_cast<uint8_t>((inb(port_b, 0) & ~0x02) | 0x01));
    EXPECT_EQ(inb(port_b, 0) & 0x03, 0x01);
    constexpr uint16_t kLatch = kHz / 20;  // CALIBRATE_LATCH
    program(kCounter2, 0xb0, kLatch);
    at_tick(1 + 1000);
    uint16_t low = inb(counters, kCounter2);
    uint16_t live = static_cast<uint16_t>(low | inb(counters, kCounter2) << 8);
    EXPECT_EQ(live, kLatch - 1000);
    int64_t t = 1 + 1000;
    while ((inb(port_b, 0) & 0x20) == 0 && t < 1'000'000) source_ns = ns_of_tick(++t);  // no timer involved
    EXPECT_EQ(t, 1 + kLatch) << "OUT 2 rises at terminal count";
    EXPECT_EQ(irq0.raises(), 0u);

    // GATE low holds the count; high resumes it on the next CLK.
    program(kCounter2, 0xb0, 1000);  // at tick t, loaded at t + 1
    at_tick(t + 101);
    outb(port_b, 0, 0x00);
    EXPECT_EQ(latched(2), 900);
    at_tick(t + 5000);
    EXPECT_EQ(latched(2), 900);
    EXPECT_EQ(inb(port_b, 0) & 0x20, 0);
    outb(port_b, 0, 0x01);
    at_tick(t + 5000 + 1 + 900);
    EXPECT_EQ(inb(port_b, 0) & 0x20, 0x20);
}

TEST_F(Pit, Mode1OneShotStartsOnTheGateEdge) {
    program(kCounter2, 0xb2, 100);  // counter 2, mode 1; GATE 2 is low (port B bit 0 clear)
    at_tick(50);
    EXPECT_TRUE(out(2)) << "waits for a trigger with OUT high";
    outb(port_b, 0, 0x01);  // trigger at tick 50: OUT low from tick 51 to 151
    at_tick(51);
    EXPECT_FALSE(out(2));
    at_tick(150);
    EXPECT_FALSE(out(2));
    at_tick(151);
    EXPECT_TRUE(out(2));
}

TEST_F(Pit, SystemControlPortB) {
    uint8_t first = inb(port_b, 0), second = inb(port_b, 0);
    EXPECT_EQ((first ^ second) & 0x10, 0x10) << "the refresh bit toggles on every read";
    outb(port_b, 0, 0xff);
    EXPECT_EQ(inb(port_b, 0) & 0xcf, 0x0f) << "bits 0-3 are writable, 6-7 read 0";
}

// A guest that programs a tiny period gets at most one interrupt per 20 µs of machine time;
// the edges between are coalesced.
TEST_F(Pit, TinyPeriodIsRateBounded) {
    program(kCounter0, 0x34, 2);  // 596 kHz
    for (int64_t us = 1; us <= 10'000; ++us) at_ns(us * 1000);
    EXPECT_GE(irq0.raises(), 499u);
    EXPECT_LE(irq0.raises(), 501u);
    program(kCounter0, 0x34, 1);  // illegal in mode 2: OUT stays high
    irq0.clear();
    for (int64_t us = 10'001; us <= 10'500; ++us) at_ns(us * 1000);
    EXPECT_EQ(irq0.raises(), 0u);
}

TEST_F(Pit, NothingFiresWhileTheClockIsPaused) {
    program(kCounter0, 0x34, 1000);
    at_tick(101);
    clock.pause();
    at_ns(ns_of_tick(101) + 1'000'000'000);
    EXPECT_EQ(irq0.raises(), 0u);
    EXPECT_EQ(latched(0), 900) << "the count stands still too";
    clock.resume();  // a second of host time went by paused
    at_ns(1'000'000'000 + ns_of_tick(1000));
    EXPECT_EQ(irq0.raises(), 0u);
    at_ns(1'000'000'000 + ns_of_tick(1001));
    EXPECT_EQ(irq0.raises(), 1u);
}

TEST_F(Pit, StateMovesToAnotherPit) {
    program(kCounter0, 0x34, 1000);
    program(kCounter2, 0xb0, 700);
    outb(port_b, 0, 0x01);
    at_tick(250);
    outb(counters, kControl, 0x80);  // latch counter 2, left unread
    Pit8254::State saved = pit.state();

    testing::FakeIrqLine other_irq;
    Pit8254 other(other_irq, timers);
    ASSERT_TRUE(other.set_state(saved).has_value());
    EXPECT_EQ(inb(*other.counters(), kCounter2), inb(counters, kCounter2)) << "the latched LSB";
    at_tick(1001);
    EXPECT_EQ(other_irq.raises(), 1u) << "its timer is armed for the next edge";
    EXPECT_EQ(irq0.raises(), 1u);
    at_tick(1500);
    outb(counters, kControl, 0x00);
    outb(*other.counters(), kControl, 0x00);
    EXPECT_EQ(inb(*other.counters(), kCounter0), inb(counters, kCounter0));
    EXPECT_EQ(inb(*other.counters(), kCounter0), inb(counters, kCounter0));

    auto rejected = [&](auto change) {
        Pit8254::State bad = saved;
        change(bad);
        return !other.set_state(bad).has_value();
    };
    EXPECT_TRUE(rejected([](auto& s) { s.counters[0].mode = 6; }));
    EXPECT_TRUE(rejected([](auto& s) { s.counters[1].count = 0; }));
    EXPECT_TRUE(rejected([](auto& s) { s.counters[1].run_count = 0x10001; }));
    EXPECT_TRUE(rejected([](auto& s) { s.counters[2].access = Pit8254::Access::Latch; }));
    EXPECT_TRUE(rejected([](auto& s) { s.counters[0].gate = false; }));
    EXPECT_TRUE(rejected([](auto& s) { s.port_b = 0x00; }));  // GATE 2 is high in the state
    EXPECT_TRUE(rejected([](auto& s) { s.counters[0].run_start = INT64_MIN; }));
}

TEST(PitLifetime, DestroyedPitSignalsNothing) {
    testing::FakeIrqLine irq0;
    std::atomic<int64_t> source_ns{0};
    MachineClock clock([&] { return source_ns.load(); });
    TimerService timers(clock);
    auto pit = std::make_unique<Pit8254>(irq0, timers);
    outb(*pit->counters(), kControl, 0x34);
    outb(*pit->counters(), kCounter0, 100);
    outb(*pit->counters(), kCounter0, 0);
    pit.reset();
    source_ns = 1'000'000;
    timers.run_due_timers();
    EXPECT_EQ(irq0.raises(), 0u);
}

// The real machine clock: mode 2 at 1 kHz interrupts as time goes by.
TEST(PitRealClock, PeriodicInterrupts) {
    testing::FakeIrqLine irq0;
    MachineClock clock;
    TimerService timers(clock);
    Pit8254 pit(irq0, timers);
    outb(*pit.counters(), kControl, 0x34);
    outb(*pit.counters(), kCounter0, 1193 & 0xff);
    outb(*pit.counters(), kCounter0, 1193 >> 8);
    EXPECT_TRUE(irq0.wait_for_raises(5, std::chrono::milliseconds(5000)));
}

}  // namespace
}  // namespace strata
