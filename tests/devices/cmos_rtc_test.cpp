#include "devices/legacy/cmos_rtc.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <thread>

#include "base/checked.hpp"
#include "fakes.hpp"

namespace strata {
namespace {

using testing::inb;
using testing::outb;

constexpr int64_t kSecond = 1'000'000'000;

int64_t utc_ns(int year, int month, int day, int hour, int minute, int second) {
    tm fields{};
    fields.tm_year = year - 1900;
    fields.tm_mon = month - 1;
    fields.tm_mday = day;
    fields.tm_hour = hour;
    fields.tm_min = minute;
    fields.tm_sec = second;
    return static_cast<int64_t>(timegm(&fields)) * kSecond;
}

// Time is driven by hand: the RTC starts at the wall-clock time kStart, and `now` moves the
// machine clock's source forward to the wall time it is given, then lets the timer service run
// what became due (so interrupts come from the RTC's timer, not only from register accesses).
const int64_t kStart = utc_ns(2024, 3, 5, 13, 45, 30) + 100'000'000;  // a Tuesday

class DrivenWallTime {
public:
    DrivenWallTime(std::atomic<int64_t>& source, TimerService& timers) : source_(source), timers_(timers) {}
    DrivenWallTime& operator=(int64_t wall_ns) {
        if (wall_ns < wall_ns_) ADD_FAILURE() << "the machine clock only runs forward";
        source_ += wall_ns - wall_ns_;
        wall_ns_ = wall_ns;
        timers_.run_due_timers();
        return *this;
    }
    DrivenWallTime& operator+=(int64_t ns) { return *this = wall_ns_ + ns; }

private:
    std::atomic<int64_t>& source_;
    TimerService& timers_;
    int64_t wall_ns_ = kStart;
};

struct Rtc : ::testing::Test {
    testing::FakeIrqLine irq;
    std::atomic<int64_t> source_ns{0};
    MachineClock clock{[this] { return source_ns.load(); }};
    TimerService timers{clock};
    DrivenWallTime now{source_ns, timers};
    CmosRtc rtc{irq, timers, [] { return kStart; }};

    uint8_t get(uint8_t index) {
        outb(rtc, 0, index);
        return inb(rtc, 1);
    }
    void set(uint8_t index, uint8_t value) {
        outb(rtc, 0, index);
        outb(rtc, 1, value);
    }
};

TEST_F(Rtc, ReadsHostTimeInBcd24Hour) {
    EXPECT_EQ(get(0x00), 0x30);
    EXPECT_EQ(get(0x02), 0x45);
    EXPECT_EQ(get(0x04), 0x13);
    EXPECT_EQ(get(0x06), 0x03);  // Tuesday, 1 = Sunday
    EXPECT_EQ(get(0x07), 0x05);
    EXPECT_EQ(get(0x08), 0x03);
    EXPECT_EQ(get(0x09), 0x24);
    EXPECT_EQ(get(0x32), 0x20);
    EXPECT_EQ(get(0x0d), 0x80) << "VRT";
    now += 5 * kSecond;
    EXPECT_EQ(get(0x00), 0x35);
}

TEST_F(Rtc, BinaryAnd12HourModes) {
    set(0x0b, 0x02 | 0x04);  // 24 h, binary
    EXPECT_EQ(get(0x00), 30);
    EXPECT_EQ(get(0x04), 13);
    EXPECT_EQ(get(0x09), 24);
    set(0x0b, 0x00);  // 12 h, BCD
    EXPECT_EQ(get(0x04), 0x81) << "1 PM";
    now = utc_ns(2024, 3, 6, 0, 10, 0);
    EXPECT_EQ(get(0x04), 0x12) << "12 AM";
    now = utc_ns(2024, 3, 6, 12, 10, 0);
    EXPECT_EQ(get(0x04), 0x92) << "12 PM";
}

TEST_F(Rtc, GuestSetTimeIsKeptAsAnOffset) {
    set(0x0b, 0x82);  // SET, 24 h, BCD
    EXPECT_EQ(get(0x0b) & 0x10, 0);
    set(0x00, 0x59);
    set(0x02, 0x59);
    set(0x04, 0x23);
    set(0x07, 0x31);
    set(0x08, 0x12);
    set(0x09, 0x99);
    set(0x32, 0x19);
    now += 10 * kSecond;
    EXPECT_EQ(get(0x00), 0x59) << "frozen while SET";
    set(0x0b, 0x02);
    now += 2 * kSecond;
    EXPECT_EQ(get(0x00), 0x01);
    EXPECT_EQ(get(0x02), 0x00);
    EXPECT_EQ(get(0x04), 0x00);
    EXPECT_EQ(get(0x07), 0x01);
    EXPECT_EQ(get(0x08), 0x01);
    EXPECT_EQ(get(0x09), 0x00);
    EXPECT_EQ(get(0x32), 0x20) << "rolled into 2000";
    // A single write while running moves just that field.
    set(0x02, 0x30);
    EXPECT_EQ(get(0x02), 0x30);
    EXPECT_EQ(get(0x00), 0x01);
}

TEST_F(Rtc, HostileTimeWritesAreHarmless) {
    set(0x0b, 0x82);
    for (int index : {0x00, 0x02, 0x04, 0x07, 0x08, 0x09, 0x32}) set(static_cast<uint8_t>(index), 0xff);
    set(0x0b, 0x02);
    EXPECT_EQ(get(0x09), 0x24) << "out-of-range date ignored";
}

TEST_F(Rtc, UipDuringTheLast244MicrosecondsOfEachSecond) {
    int64_t second = utc_ns(2024, 3, 5, 13, 45, 31);
    now = second - 300'000;
    EXPECT_EQ(get(0x0a) & 0x80, 0);
    now = second - 244'000;
    EXPECT_EQ(get(0x0a) & 0x80, 0x80);
    now = second - 1;
    EXPECT_EQ(get(0x0a) & 0x80, 0x80);
    now = second;
    EXPECT_EQ(get(0x0a) & 0x80, 0);
    EXPECT_EQ(get(0x0a) & 0x7f, 0x26);
    now = second + kSecond - 1000;
    set(0x0b, 0x82);
    EXPECT_EQ(get(0x0a) & 0x80, 0) << "no updates while SET";
}

TEST_F(Rtc, UpdateFlagRaisesIrqAndRegisterCClearsIt) {
    EXPECT_EQ(get(0x0c), 0x00);
    set(0x0b, 0x02 | 0x10);  // UIE
    EXPECT_FALSE(irq.level());
    now += kSecond;
    EXPECT_EQ(get(0x0a) & 0x80, 0);  // any access notices the update
    EXPECT_TRUE(irq.level());
    EXPECT_EQ(get(0x0c) & 0xb0, 0x90) << "IRQF | UF (PF runs at the power-on 1024 Hz too)";
    EXPECT_FALSE(irq.level());
    EXPECT_EQ(get(0x0c), 0x00);
}

TEST_F(Rtc, PeriodicFlagFollowsRateSelect) {
    set(0x0a, 0x20);  // RS = 0: no periodic flag
    get(0x0c);
    now += kSecond;
    EXPECT_EQ(get(0x0c) & 0x40, 0);
    set(0x0a, 0x2f);  // RS = 15: 2 Hz
    now += kSecond / 4;
    get(0x0c);
    now += kSecond / 2;
    EXPECT_EQ(get(0x0c) & 0x40, 0x40);
}

TEST_F(Rtc, FlagsAreSetEvenWhenTheirInterruptIsDisabled) {
    now += kSecond;
    EXPECT_EQ(get(0x0c) & 0xb0, 0x10) << "UF without IRQF";
    EXPECT_TRUE(irq.levels().empty());
}

TEST_F(Rtc, AlarmWithDontCareFields) {
    set(0x01, 0x33);  // second 33 of every minute of every hour
    set(0x03, 0xc0);
    set(0x05, 0xff);
    set(0x0b, 0x02 | 0x20);  // AIE
    get(0x0c);
    now += 2 * kSecond;      // :32
    EXPECT_EQ(get(0x0c) & 0x20, 0);
    EXPECT_FALSE(irq.level());
    now += kSecond;          // :33
    EXPECT_EQ(get(0x0a) & 0x80, 0);
    EXPECT_TRUE(irq.level());
    EXPECT_EQ(get(0x0c) & 0xb0, 0x80 | 0x20 | 0x10);
    now += 60 * kSecond;     // next minute's :33
    EXPECT_EQ(get(0x0c) & 0x20, 0x20);
}

TEST_F(Rtc, AlarmAtAFixedTimeFiresOnceADay) {
    set(0x01, 0x00);
    set(0x03, 0x00);
    set(0x05, 0x14);  // 14:00:00
    get(0x0c);
    now = utc_ns(2024, 3, 5, 13, 59, 59);
    EXPECT_EQ(get(0x0c) & 0x20, 0);
    now = utc_ns(2024, 3, 5, 14, 0, 0);
    EXPECT_EQ(get(0x0c) & 0x20, 0x20);
    now = utc_ns(2024, 3, 6, 13, 0, 0);
    EXPECT_EQ(get(0x0c) & 0x20, 0);
}

TEST_F(Rtc, MemorySizeBytes) {
    rtc.set_memory_size(3 * GiB, 2 * GiB);
    EXPECT_EQ(get(0x15) | get(0x16) << 8, 640);
    EXPECT_EQ(get(0x17) | get(0x18) << 8, 0xffff);
    EXPECT_EQ(get(0x30) | get(0x31) << 8, 0xffff);
    EXPECT_EQ(get(0x34) | get(0x35) << 8, static_cast<int>((3 * GiB - 16 * MiB) / (64 * KiB)));
    EXPECT_EQ(get(0x5b) | get(0x5c) << 8 | get(0x5d) << 16, static_cast<int>(2 * GiB / (64 * KiB)));
    rtc.set_memory_size(8 * MiB, 0);
    EXPECT_EQ(get(0x17) | get(0x18) << 8, 7 * 1024);
    EXPECT_EQ(get(0x34) | get(0x35) << 8, 0);
}

TEST_F(Rtc, CmosRamAndIndexMasking) {
    set(0x40, 0xa5);
    EXPECT_EQ(get(0x40), 0xa5);
    outb(rtc, 0, 0x80 | 0x40);  // NMI mask bit is not part of the index
    EXPECT_EQ(inb(rtc, 1), 0xa5);
    set(0x0c, 0xff);
    set(0x0d, 0x00);
    EXPECT_EQ(get(0x0d), 0x80) << "read-only";
}

// The timer raises the line by itself, without any register access, at the update...
TEST_F(Rtc, UpdateInterruptComesFromTheTimer) {
    set(0x0b, 0x02 | 0x10);  // UIE
    get(0x0c);
    now += 899'999'999;  // 13:45:30.999999999
    EXPECT_FALSE(irq.level());
    now += 1;
    EXPECT_TRUE(irq.level()) << "raised at 13:45:31";
    EXPECT_EQ(get(0x0c) & 0x90, 0x90);
    EXPECT_FALSE(irq.level());
    now += kSecond;
    EXPECT_TRUE(irq.level()) << "and again a second later";
}

// ... at the periodic rate (64 Hz: every 15.625 ms, on the 32.768 kHz grid) ...
TEST_F(Rtc, PeriodicInterruptComesFromTheTimerAtTheRate) {
    set(0x0a, 0x2a);  // RS = 10: 64 Hz
    get(0x0c);
    set(0x0b, 0x02 | 0x40);  // PIE
    int raised = 0;
    for (int step = 0; step < 1000; ++step) {  // one second in 1 ms steps
        now += kSecond / 1000;
        if (irq.level()) {
            ++raised;
            EXPECT_EQ(get(0x0c) & 0xc0, 0xc0) << "IRQF | PF";
        }
    }
    EXPECT_EQ(raised, 64);
}

// ... and at the alarm, once the guest has enabled it.
TEST_F(Rtc, AlarmInterruptComesFromTheTimer) {
    set(0x0b, 0x02 | 0x20);  // AIE
    set(0x01, 0x40);         // 13:46:40, written after AIE: the timer follows the alarm bytes
    set(0x03, 0x46);
    set(0x05, 0x13);
    get(0x0c);
    now = utc_ns(2024, 3, 5, 13, 46, 39);
    EXPECT_FALSE(irq.level());
    now = utc_ns(2024, 3, 5, 13, 46, 40);
    EXPECT_TRUE(irq.level());
    EXPECT_EQ(get(0x0c) & 0xa0, 0xa0) << "IRQF | AF";
}

// While the machine clock is paused the RTC stands still and raises nothing; it goes on from
// where it stopped.
TEST_F(Rtc, PausedClockStopsTheRtc) {
    set(0x0b, 0x02 | 0x10);  // UIE
    get(0x0c);
    clock.pause();
    source_ns += 10 * kSecond;
    timers.run_due_timers();
    EXPECT_FALSE(irq.level());
    EXPECT_EQ(get(0x00), 0x30);
    clock.resume();
    now += kSecond;
    EXPECT_TRUE(irq.level());
    EXPECT_EQ(get(0x00), 0x31);
}

// The timer on the real clock: periodic interrupts at 64 Hz keep coming as long as the guest
// acknowledges them by reading register C.
TEST(RtcRealClock, PeriodicInterruptFires) {
    testing::FakeIrqLine irq;
    MachineClock clock;
    TimerService timers(clock);
    CmosRtc rtc(irq, timers);
    outb(rtc, 0, 0x0a);
    outb(rtc, 1, 0x2a);  // RS = 10: 64 Hz
    outb(rtc, 0, 0x0c);
    inb(rtc, 1);
    outb(rtc, 0, 0x0b);
    outb(rtc, 1, 0x02 | 0x40);  // PIE
    for (size_t n = 1; n <= 3; ++n) {
        ASSERT_TRUE(irq.wait_for_raises(n, std::chrono::milliseconds(2000))) << "interrupt " << n;
        outb(rtc, 0, 0x0c);
        EXPECT_EQ(inb(rtc, 1) & 0xc0, 0xc0) << "IRQF | PF";
        EXPECT_FALSE(irq.level());
    }
    outb(rtc, 0, 0x0b);
    outb(rtc, 1, 0x02);  // PIE off: the timer goes quiet
}

// Destroying the RTC while its timer waits for the next interrupt cancels the timer at once
// (instead of waiting out the deadline), and nothing touches the line afterwards.
TEST(RtcRealClock, DestroyingWhileTimerRunsStopsItAtOnce) {
    testing::FakeIrqLine irq;
    MachineClock clock;
    TimerService timers(clock);
    auto rtc = std::make_unique<CmosRtc>(irq, timers);
    outb(*rtc, 0, 0x0a);
    outb(*rtc, 1, 0x2f);  // RS = 15: 2 Hz, a deadline half a second away
    outb(*rtc, 0, 0x0c);
    inb(*rtc, 1);
    outb(*rtc, 0, 0x0b);
    outb(*rtc, 1, 0x02 | 0x40);  // PIE
    ASSERT_TRUE(irq.wait_for_raises(1, std::chrono::milliseconds(2000))) << "the timer runs";
    outb(*rtc, 0, 0x0c);
    inb(*rtc, 1);  // acknowledged: the timer now waits for the next period
    size_t changes = irq.levels().size();

    auto start = std::chrono::steady_clock::now();
    rtc.reset();
    auto took = std::chrono::steady_clock::now() - start;
    EXPECT_LT(took, std::chrono::milliseconds(250)) << "the destructor waited for the timer's deadline";

    std::this_thread::sleep_for(std::chrono::milliseconds(700));  // past the next 2 Hz period
    EXPECT_EQ(irq.levels().size(), changes) << "the line changed after the RTC was destroyed";
}

// A snapshot keeps the guest's time as an offset from the machine clock: an RTC restored on a
// machine clock at the snapshot's time reads the guest's time (not the host's), keeps CMOS bytes
// and interrupt settings, and its periodic interrupt goes on.
TEST_F(Rtc, ARestoredRtcReadsTheGuestsTimeAndKeepsItsInterrupts) {
    set(0x0b, 0x82);  // SET: the guest sets its own time
    set(0x00, 0x00);
    set(0x02, 0x00);
    set(0x04, 0x08);
    set(0x0b, 0x02 | 0x40);  // run, periodic interrupt on
    set(0x40, 0x77);         // a CMOS byte
    now += 3 * kSecond;
    CmosRtc::State saved = rtc.state();

    testing::FakeIrqLine restored_irq;
    TimerService restored_timers{clock};  // the same machine clock: a restore sets it to the snapshot's time
    CmosRtc restored{restored_irq, restored_timers, [] { return utc_ns(2030, 1, 1, 0, 0, 0); }};
    ASSERT_TRUE(restored.set_state(testing::through_snapshot(saved)));
    auto get_restored = [&](uint8_t index) {
        outb(restored, 0, index);
        return inb(restored, 1);
    };
    EXPECT_EQ(get_restored(0x04), 0x08) << "the guest's hour, not the new host clock's";
    EXPECT_EQ(get_restored(0x00), 0x03);
    EXPECT_EQ(get_restored(0x40), 0x77);
    EXPECT_EQ(get_restored(0x0b), 0x42);
    source_ns += 10'000'000;  // 10 ms: periodic flags at 1024 Hz
    restored_timers.run_due_timers();
    EXPECT_TRUE(restored_irq.level()) << "the periodic interrupt runs on";
}

TEST_F(Rtc, ATimeOutsideItsCenturiesIsRefused) {
    CmosRtc::State bad = rtc.state();
    bad.offset_ns = INT64_MAX;
    auto refused = rtc.set_state(bad);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("outside 1900-2199"), std::string::npos) << refused.error().message;
    bad = rtc.state();
    bad.flags = 0x01;
    EXPECT_FALSE(rtc.set_state(bad));
    EXPECT_EQ(get(0x04), 0x13) << "the time is what it was";
}

}  // namespace
}  // namespace strata
