// The vCPU thread both engines share, with a runner that only counts: stops before, during and
// after start() all end it, rearm() lets it run again, and a runner that finishes ends it too.
#include "cpu/vcpu_thread.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>

#include "base/checked.hpp"
#include "devices/fakes.hpp"

namespace strata {
namespace {

class CountingRunner final : public VcpuRunner {
public:
    bool run_once(const Platform&) override {
        ++runs;
        std::this_thread::yield();
        return runs < finish_after;
    }
    void on_stop(std::thread* running) override {
        ++stops;
        if (running) ++stops_while_running;
    }
    void on_rearm() override { ++rearms; }

    std::atomic<int> runs{0}, stops{0}, stops_while_running{0}, rearms{0};
    int finish_after = 1 << 30;
};

struct VcpuThreads : ::testing::Test {
    void SetUp() override {
        auto created = GuestMemory::create(1 * MiB);
        ASSERT_TRUE(created);
        memory = std::make_unique<GuestMemory>(std::move(*created));
    }
    std::unique_ptr<GuestMemory> memory;
    Bus pio{"pio"}, mmio{"mmio"};
    testing::FakeMachineControl control;
    Platform platform() { return {*memory, pio, mmio, control}; }
    CountingRunner runner;
    VcpuThread thread{runner, 0};
};

TEST_F(VcpuThreads, AStopBeforeStartMeansNothingRuns) {
    thread.stop();
    Platform p = platform();
    ASSERT_TRUE(thread.start(p));
    thread.join();
    EXPECT_EQ(runner.runs, 0);
    EXPECT_EQ(runner.stops_while_running, 0);
}

TEST_F(VcpuThreads, AStopWhileRunningEndsTheThreadAndRearmRunsItAgain) {
    Platform p = platform();
    ASSERT_TRUE(thread.start(p));
    while (runner.runs < 10) std::this_thread::yield();
    EXPECT_FALSE(thread.start(p)) << "a second start while it runs is refused";
    thread.stop();
    thread.join();
    EXPECT_EQ(runner.stops_while_running, 1);
    int before = runner.runs;

    ASSERT_TRUE(thread.start(p));  // still stopped: nothing runs
    thread.join();
    EXPECT_EQ(runner.runs, before);

    thread.rearm();
    EXPECT_EQ(runner.rearms, 1);
    ASSERT_TRUE(thread.start(p));
    while (runner.runs < before + 10) std::this_thread::yield();
    thread.stop();
    thread.join();
}

TEST_F(VcpuThreads, ARunnerThatFinishesEndsTheThread) {
    runner.finish_after = 5;
    Platform p = platform();
    ASSERT_TRUE(thread.start(p));
    thread.join();
    EXPECT_EQ(runner.runs, 5);
    EXPECT_EQ(runner.stops, 0);
}

}  // namespace
}  // namespace strata
