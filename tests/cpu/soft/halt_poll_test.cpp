// The halt-polling window follows what the last halts did (halt_poll.hpp): it grows while the
// guest's wake-ups come soon after it gave up polling, stays while polling catches them, and
// shrinks to nothing for a guest that sleeps long.
#include <gtest/gtest.h>

#include <vector>

#include "cpu/soft/halt_poll.hpp"

namespace strata::soft {
namespace {

using std::chrono::microseconds;

TEST(HaltPollWindow, StartsClosedAndOpensWhenAWakeUpCameSoonAfterSleeping) {
    HaltPollWindow poll(microseconds(200));
    EXPECT_EQ(poll.window(), HaltPollWindow::Duration::zero());
    poll.record(microseconds(30), true);
    EXPECT_EQ(poll.window(), HaltPollWindow::kGrowStart);
}

TEST(HaltPollWindow, DoublesUpToTheLimitWhileShortHaltsStillSleep) {
    HaltPollWindow poll(microseconds(200));
    std::vector<HaltPollWindow::Duration> windows;
    for (int halt = 0; halt < 8; ++halt) {
        poll.record(microseconds(190), true);
        windows.push_back(poll.window());
    }
    std::vector<HaltPollWindow::Duration> expected{microseconds(10),  microseconds(20),  microseconds(40),
                                                   microseconds(80),  microseconds(160), microseconds(200),
                                                   microseconds(200), microseconds(200)};
    EXPECT_EQ(windows, expected);
}

TEST(HaltPollWindow, StaysWhilePollingCatchesTheWakeUps) {
    HaltPollWindow poll(microseconds(200));
    poll.record(microseconds(50), true);
    poll.record(microseconds(50), true);
    ASSERT_EQ(poll.window(), microseconds(20));
    for (int halt = 0; halt < 5; ++halt) poll.record(microseconds(5), false);
    EXPECT_EQ(poll.window(), microseconds(20));
    // Woken just after the poll gave up but within the window's own length: no change either.
    poll.record(microseconds(20), true);
    EXPECT_EQ(poll.window(), microseconds(20));
}

TEST(HaltPollWindow, HalvesToNothingForHaltsLongerThanTheLimit) {
    HaltPollWindow poll(microseconds(200));
    for (int halt = 0; halt < 6; ++halt) poll.record(microseconds(190), true);
    ASSERT_EQ(poll.window(), microseconds(200));
    poll.record(std::chrono::milliseconds(4), true);  // an idle guest's timer tick
    EXPECT_EQ(poll.window(), microseconds(100));
    for (int halt = 0; halt < 4; ++halt) poll.record(std::chrono::milliseconds(4), true);
    EXPECT_EQ(poll.window(), HaltPollWindow::Duration::zero());
}

TEST(HaltPollWindow, ALimitOfZeroNeverPolls) {
    HaltPollWindow poll(HaltPollWindow::Duration::zero());
    for (int halt = 0; halt < 4; ++halt) poll.record(microseconds(5), true);
    EXPECT_EQ(poll.window(), HaltPollWindow::Duration::zero());
}

}  // namespace
}  // namespace strata::soft
