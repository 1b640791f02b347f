#include "base/machine_clock.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <future>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace strata {
namespace {

using namespace std::chrono_literals;
using Timer = TimerService::Timer;

// A machine clock on a time source the test moves by hand; advance() then lets the service
// run whatever became due, so nothing depends on how fast the host is.
struct ManualTime : ::testing::Test {
    std::atomic<int64_t> source_ns{5'000'000};  // any origin: the clock starts at 0
    MachineClock clock{[this] { return source_ns.load(); }};
    TimerService timers{clock};

    void advance(int64_t ns) {
        source_ns += ns;
        timers.run_due_timers();
    }
};

// Callbacks record what they saw here; they run on the service thread.
struct Log {
    std::mutex mutex;
    std::vector<int> entries;
    void add(int value) {
        std::lock_guard lock(mutex);
        entries.push_back(value);
    }
    std::vector<int> get() {
        std::lock_guard lock(mutex);
        return entries;
    }
};

TEST_F(ManualTime, ClockStartsAtZeroAndStandsStillWhilePaused) {
    EXPECT_EQ(clock.now_ns(), 0);
    source_ns += 100;
    EXPECT_EQ(clock.now_ns(), 100);
    clock.pause();
    EXPECT_TRUE(clock.paused());
    source_ns += 50;
    EXPECT_EQ(clock.now_ns(), 100);
    clock.pause();  // a second pause changes nothing
    source_ns += 50;
    clock.resume();
    EXPECT_FALSE(clock.paused());
    EXPECT_EQ(clock.now_ns(), 100) << "resume continues without a jump";
    source_ns += 25;
    EXPECT_EQ(clock.now_ns(), 125);
    clock.resume();  // resuming a running clock changes nothing
    EXPECT_EQ(clock.now_ns(), 125);
}

TEST_F(ManualTime, RestoredTimeIsWhereAPausedClockContinues) {
    Log log;
    auto timer = timers.create_timer([&log] { log.add(1); });
    clock.pause();
    clock.set_paused_time(7'000'000'000);  // a snapshot taken 7 s into its VM's life
    EXPECT_EQ(clock.now_ns(), 7'000'000'000);
    timer->arm_at(7'000'000'500);
    source_ns += 1'000'000;
    timers.run_due_timers();
    EXPECT_TRUE(log.get().empty()) << "no timer fires while paused";
    clock.resume();
    EXPECT_EQ(clock.now_ns(), 7'000'000'000);
    advance(499);
    EXPECT_TRUE(log.get().empty());
    advance(1);
    EXPECT_EQ(log.get(), std::vector<int>{1});
    EXPECT_EQ(clock.now_ns(), 7'000'000'500);
}

TEST(MachineClockReal, FollowsTheHostMonotonicClock) {
    MachineClock clock;
    int64_t before = clock.now_ns();
    std::this_thread::sleep_for(2ms);
    EXPECT_GE(clock.now_ns() - before, 2'000'000);
}

TEST_F(ManualTime, TimersFireInDeadlineOrderTiesInArmOrder) {
    Log log;
    std::vector<std::unique_ptr<Timer>> t;
    for (int i = 0; i < 5; ++i) t.push_back(timers.create_timer([&log, i] { log.add(i); }));
    t[0]->arm_at(300);
    t[1]->arm_at(100);
    t[2]->arm_at(200);
    t[3]->arm_at(200);  // same deadline as 2, armed later
    t[4]->arm_at(100);
    t[4]->arm_at(400);  // replaces its deadline of 100
    advance(99);
    EXPECT_TRUE(log.get().empty()) << "nothing is due before its deadline";
    advance(1);
    EXPECT_EQ(log.get(), (std::vector<int>{1}));
    EXPECT_FALSE(t[1]->armed());
    EXPECT_TRUE(t[0]->armed());
    advance(1000);
    EXPECT_EQ(log.get(), (std::vector<int>{1, 2, 3, 0, 4}));
    for (auto& timer : t) EXPECT_FALSE(timer->armed()) << "a timer fires once";
    advance(1000);
    EXPECT_EQ(log.get().size(), 5u);
}

TEST_F(ManualTime, DeadlineInThePastFiresAtOnce) {
    std::atomic<int> fired{0};
    advance(1000);
    auto timer = timers.create_timer([&] { ++fired; });
    timer->arm_at(10);
    timers.run_due_timers();
    EXPECT_EQ(fired, 1);
}

TEST_F(ManualTime, PeriodicTimerReArmsFromItsCallback) {
    std::atomic<int> fired{0};
    int64_t deadline = 100;
    std::unique_ptr<Timer> timer;
    timer = timers.create_timer([&] {
        ++fired;
        deadline += 100;
        timer->arm_at(deadline);
    });
    timer->arm_at(deadline);
    for (int step = 0; step < 100; ++step) advance(10);  // up to 1000
    EXPECT_EQ(fired, 10);
    // After a jump, the periods missed are caught up within one pass.
    advance(1000);
    EXPECT_EQ(fired, 20);
    EXPECT_TRUE(timer->armed());
    EXPECT_EQ(deadline, 2100);
}

TEST_F(ManualTime, CancelFromOutsideAndFromItsOwnCallback) {
    std::atomic<int> a_fired{0}, b_fired{0};
    std::unique_ptr<Timer> b;
    auto a = timers.create_timer([&] { ++a_fired; });
    b = timers.create_timer([&] {
        ++b_fired;
        b->arm_at(clock.now_ns() + 10);
        b->cancel();  // the re-arm is taken back before it can fire
    });
    a->arm_at(50);
    b->arm_at(50);
    a->cancel();
    EXPECT_FALSE(a->armed());
    advance(100);
    EXPECT_EQ(a_fired, 0);
    EXPECT_EQ(b_fired, 1);
    EXPECT_FALSE(b->armed());
    advance(100);
    EXPECT_EQ(b_fired, 1);
}

TEST_F(ManualTime, NothingFiresWhilePausedAndDeadlinesAreGuestTime) {
    std::atomic<int> fired{0};
    auto timer = timers.create_timer([&] { ++fired; });
    timer->arm_at(100);
    clock.pause();
    advance(1000);
    EXPECT_EQ(fired, 0);
    EXPECT_EQ(clock.now_ns(), 0);
    clock.resume();
    timers.run_due_timers();
    EXPECT_EQ(fired, 0) << "the paused host time does not count towards the deadline";
    advance(99);
    EXPECT_EQ(fired, 0);
    advance(1);
    EXPECT_EQ(fired, 1);
}

TEST(TimerServiceLifetime, TimerMayOutliveTheService) {
    MachineClock clock;
    std::atomic<int> fired{0};
    std::unique_ptr<Timer> timer;
    {
        TimerService timers(clock);
        timer = timers.create_timer([&] { ++fired; });
        timer->arm_at(clock.now_ns() + int64_t{3600} * 1'000'000'000);
        EXPECT_TRUE(timer->armed());
    }
    EXPECT_FALSE(timer->armed()) << "the service cancelled it";
    timer->arm_at(0);
    EXPECT_FALSE(timer->armed());
    timer.reset();
    EXPECT_EQ(fired, 0);
}

// The real clock: a timer fires once its deadline has passed, and the service thread sleeps
// instead of waiting actively (a deadline in 30 ms costs no CPU time to speak of).
TEST(TimerServiceReal, FiresAfterItsDeadline) {
    MachineClock clock;
    TimerService timers(clock);
    std::promise<int64_t> fired_at;
    int64_t deadline = clock.now_ns() + 30'000'000;
    auto timer = timers.create_timer([&] { fired_at.set_value(clock.now_ns()); });
    clock_t cpu_before = std::clock();
    timer->arm_at(deadline);
    auto result = fired_at.get_future();
    ASSERT_EQ(result.wait_for(5s), std::future_status::ready);
    EXPECT_GE(result.get(), deadline);
    EXPECT_LT(std::clock() - cpu_before, CLOCKS_PER_SEC / 50) << "the wait burnt CPU time";
}

TEST(TimerServiceReal, PauseHoldsTimersBackUntilResume) {
    MachineClock clock;
    TimerService timers(clock);
    std::promise<void> fired;
    std::atomic<bool> done{false};
    auto timer = timers.create_timer([&] {
        done = true;
        fired.set_value();
    });
    clock.pause();
    timer->arm_at(clock.now_ns() + 5'000'000);
    std::this_thread::sleep_for(60ms);
    EXPECT_FALSE(done) << "a timer fired while the clock was paused";
    clock.resume();
    EXPECT_EQ(fired.get_future().wait_for(5s), std::future_status::ready);
}

TEST(TimerServiceReal, DestructionWaitsForARunningCallback) {
    MachineClock clock;
    auto timers = std::make_unique<TimerService>(clock);
    std::atomic<bool> started{false}, finished{false};
    auto timer = timers->create_timer([&] {
        started = true;
        std::this_thread::sleep_for(20ms);
        finished = true;
    });
    timer->arm_at(clock.now_ns());
    while (!started) std::this_thread::sleep_for(100us);
    timer.reset();
    EXPECT_TRUE(finished) << "~Timer returned while its callback ran";
    timers.reset();
}

// Destroying a timer races its callback: after ~Timer returns, the callback has finished and
// never starts again. Each round takes one of three interleavings in turn: destroy at once (the
// callback not yet dequeued, or just), after a random delay, and while the callback surely runs.
TEST(TimerServiceStress, DestroyingRacesTheCallback) {
    MachineClock clock;
    TimerService timers(clock);
    std::atomic<bool> destroyed{false}, started{false};
    std::atomic<int> ran_after_destruction{0}, fired{0};
    std::mt19937 rng(7);
    for (int round = 0; round < 1500; ++round) {
        destroyed = false;
        started = false;
        auto timer = timers.create_timer([&] {
            started = true;
            ++fired;
            std::this_thread::sleep_for(20us);
            if (destroyed) ++ran_after_destruction;
        });
        timer->arm_at(clock.now_ns());
        switch (round % 3) {
            case 0: break;
            case 1: std::this_thread::sleep_for(std::chrono::microseconds(rng() % 150)); break;
            default:
                for (auto give_up = std::chrono::steady_clock::now() + 5s;
                     !started && std::chrono::steady_clock::now() < give_up;)
                    std::this_thread::yield();
                ASSERT_TRUE(started) << "round " << round << ": a due timer did not fire within 5 s";
                break;
        }
        timer.reset();
        destroyed = true;
    }
    timers.run_due_timers();
    EXPECT_EQ(ran_after_destruction, 0);
    EXPECT_GE(fired, 500);
}

// The device pattern: a periodic timer re-arms itself from its callback under the device's
// lock, and the device stops it by cancelling under that same lock. Once the callback that was
// already running has finished (run_due_timers), the timer never fires again.
TEST(TimerServiceStress, CancelUnderTheDeviceLockStopsAPeriodicTimer) {
    MachineClock clock;
    TimerService timers(clock);
    std::mutex device;
    bool enabled = false;
    std::atomic<int> fired{0};
    std::unique_ptr<Timer> timer;
    timer = timers.create_timer([&] {
        std::lock_guard lock(device);
        ++fired;
        if (enabled) timer->arm_at(clock.now_ns() + 2'000);
    });
    std::mt19937 rng(11);
    for (int round = 0; round < 300; ++round) {
        {
            std::lock_guard lock(device);
            enabled = true;
            timer->arm_at(clock.now_ns());
        }
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 100));
        {
            std::lock_guard lock(device);
            enabled = false;
            timer->cancel();
        }
        timers.run_due_timers();  // the callback that was running, if any, has finished
        int settled = fired;
        EXPECT_FALSE(timer->armed());
        std::this_thread::sleep_for(50us);
        timers.run_due_timers();
        ASSERT_EQ(fired, settled) << "round " << round << ": the timer fired after it was cancelled";
    }
    EXPECT_GT(fired, 300);
}

// Several threads arm, cancel and destroy timers while they fire: no deadlock, no crash, and
// the service still works afterwards.
TEST(TimerServiceStress, ConcurrentArmCancelAndDestroy) {
    MachineClock clock;
    TimerService timers(clock);
    std::atomic<int> fired{0};
    auto shared = timers.create_timer([&] { ++fired; });
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            std::mt19937 rng(t);
            auto own = timers.create_timer([&] { ++fired; });
            for (int i = 0; i < 5000; ++i) {
                int64_t deadline = clock.now_ns() + static_cast<int64_t>(rng() % 20'000);
                switch (rng() % 5) {
                    case 0: own->arm_at(deadline); break;
                    case 1: own->cancel(); break;
                    case 2: shared->arm_at(deadline); break;
                    case 3: shared->cancel(); break;
                    default:
                        own = timers.create_timer([&] { ++fired; });
                        own->arm_at(deadline);
                        break;
                }
            }
        });
    }
    for (auto& thread : threads) thread.join();
    std::promise<void> last;
    auto check = timers.create_timer([&] { last.set_value(); });
    check->arm_at(clock.now_ns());
    EXPECT_EQ(last.get_future().wait_for(5s), std::future_status::ready) << "the service stopped working";
}

}  // namespace
}  // namespace strata
