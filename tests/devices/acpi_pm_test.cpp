#include "devices/legacy/acpi_pm.hpp"

#include <gtest/gtest.h>

#include <atomic>

#include "fakes.hpp"

namespace strata {
namespace {

using testing::in;
using testing::out;

struct Pm : ::testing::Test {
    testing::FakeIrqLine sci;
    testing::FakeMachineControl control;
    std::atomic<int64_t> now{1'000'000'000};
    AcpiPm pm{sci, control, [this] { return now.load(); }};
};

TEST_F(Pm, SlpEnWithS5PowersOff) {
    out(pm, 4, (AcpiPm::kSlpTypS5 << 10), 2);  // SLP_TYP alone does nothing
    EXPECT_TRUE(control.stops().empty());
    out(pm, 4, (3u << 10) | (1u << 13), 2);    // another sleep type: ignored
    EXPECT_TRUE(control.stops().empty());
    out(pm, 4, (AcpiPm::kSlpTypS5 << 10) | (1u << 13) | 1, 2);
    ASSERT_EQ(control.stops().size(), 1u);
    EXPECT_EQ(control.stops()[0].kind, StopKind::PowerOff);
    EXPECT_EQ(in(pm, 4, 2) & (1u << 13), 0u) << "SLP_EN is write-only";
}

TEST_F(Pm, S3SleepsUntilAnRtcAlarmWithRtcEnWakesIt) {
    out(pm, 4, (AcpiPm::kSlpTypS3 << 10) | (1u << 13), 2);
    EXPECT_EQ(control.sleeps, 1);
    EXPECT_TRUE(control.stops().empty()) << "S3 is not a power-off";
    pm.rtc_alarm();  // RTC_EN clear: no wake, but RTC_STS is set
    EXPECT_EQ(control.wakes, 0);
    EXPECT_TRUE(in(pm, 0, 2) & AcpiPm::kRtcStatus);
    out(pm, 2, AcpiPm::kRtcStatus, 2);  // RTC_EN
    pm.rtc_alarm();
    EXPECT_EQ(control.wakes, 1);
    EXPECT_TRUE(in(pm, 0, 2) & AcpiPm::kWakeStatus) << "WAK_STS after resume";
    pm.rtc_alarm();  // awake now: an alarm is no second wake
    EXPECT_EQ(control.wakes, 1);
}

TEST_F(Pm, SciEnReadsSetAndTimerAdvancesAt3579545Hz) {
    EXPECT_EQ(in(pm, 4, 2) & 1, 1u);
    EXPECT_EQ(in(pm, 8, 4), 0u);
    now += 1'000'000;  // 1 ms
    EXPECT_EQ(in(pm, 8, 4), 3579u);
    now += 999'000'000;
    EXPECT_EQ(in(pm, 8, 4), 3'579'545u);
    now += 4'000'000'000;  // 5 s: wraps at 24 bits
    EXPECT_EQ(in(pm, 8, 4), (5 * 3'579'545u) & 0xffffff);
    EXPECT_EQ(in(pm, 11, 1), 0u) << "bits 31:24 read as zero";
}

TEST_F(Pm, TimerOverflowSetsTmrStsWhichClearsByWritingOne) {
    EXPECT_EQ(in(pm, 0, 2) & 1, 0u);
    now += 2'400'000'000;  // past 2^23 ticks (2.34 s)
    EXPECT_EQ(in(pm, 0, 2) & 1, 1u);
    out(pm, 0, 0x0000, 2);
    EXPECT_EQ(in(pm, 0, 2) & 1, 1u) << "writing 0 keeps it";
    out(pm, 0, 0x0001, 2);
    EXPECT_EQ(in(pm, 0, 2) & 1, 0u);
}

TEST_F(Pm, PowerButtonRaisesSciWhenEnabled) {
    pm.press_power_button();
    EXPECT_FALSE(sci.level());
    EXPECT_EQ(in(pm, 0, 2) & 0x100, 0x100u);
    out(pm, 2, 0x100, 2);
    EXPECT_TRUE(sci.level());
    out(pm, 1, 0x01, 1);  // write-1-to-clear through the high byte lane
    EXPECT_FALSE(sci.level());
    EXPECT_EQ(in(pm, 2, 2), 0x100u);
}

// ACPI 6.5 §4.8.3 (PM1_EN, Table 4.15): GBL_EN is bit 5; ACPICA writes it and reads it back before
// it uses the global lock. No firmware shares the lock here, so GBL_STS stays clear.
TEST_F(Pm, GblEnKeepsWhatIsWrittenAndGblStsStaysClear) {
    out(pm, 2, 0x20, 2);
    EXPECT_EQ(in(pm, 2, 2), 0x20u);
    EXPECT_EQ(in(pm, 0, 2) & 0x20, 0u);
    EXPECT_FALSE(sci.level());
    out(pm, 2, 0xffff, 2);
    EXPECT_EQ(in(pm, 2, 2), 0x521u) << "TMR_EN, GBL_EN, PWRBTN_EN, RTC_EN";
}

// The PM timer counts on the device's clock from a start a snapshot keeps: restored on a clock at
// the same time, it reads what it read, and the enable and status bits are the guest's.
TEST_F(Pm, ARestoredBlockReadsTheSameTimerAndRaisesItsSci) {
    now += 1'000'000;  // 1 ms: 3579 ticks
    out(pm, 2, AcpiPm::kPwrBtnStatus, 2);  // PWRBTN_EN
    pm.press_power_button();
    ASSERT_TRUE(sci.level());
    uint64_t timer = in(pm, 8, 4);

    testing::FakeIrqLine restored_sci;
    testing::FakeMachineControl restored_control;
    AcpiPm restored{restored_sci, restored_control, [this] { return now.load(); }};
    ASSERT_TRUE(restored.set_state(testing::through_snapshot(pm.state())));
    EXPECT_EQ(in(restored, 8, 4), timer);
    EXPECT_TRUE(restored_sci.level()) << "the power button's SCI is still up";
    EXPECT_EQ(in(restored, 0, 2) & AcpiPm::kPwrBtnStatus, AcpiPm::kPwrBtnStatus);
    out(restored, 0, AcpiPm::kPwrBtnStatus, 2);
    EXPECT_FALSE(restored_sci.level());
}

TEST_F(Pm, AStateFromTheFutureOrAsleepIsRefused) {
    AcpiPm::State bad = pm.state();
    bad.start_ns = now + 1;
    EXPECT_FALSE(pm.set_state(bad));
    bad = pm.state();
    bad.sleeping = true;
    auto refused = pm.set_state(bad);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("S3"), std::string::npos);
    bad = pm.state();
    bad.enable = 0x8000;
    EXPECT_FALSE(pm.set_state(bad));
}

}  // namespace
}  // namespace strata
