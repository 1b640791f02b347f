#include "devices/test/debug_exit.hpp"

#include <gtest/gtest.h>

#include "fakes.hpp"

namespace strata {
namespace {

TEST(DebugExit, WriteStopsWithValueAndQemuExitStatus) {
    testing::FakeMachineControl control;
    DebugExit device(control);
    EXPECT_EQ(testing::in(device, 0, 4), 0u);
    testing::out(device, 0, 1, 4);
    testing::out(device, 0, 38, 1);
    auto stops = control.stops();
    ASSERT_EQ(stops.size(), 2u);
    EXPECT_EQ(stops[0].kind, StopKind::DebugExit);
    EXPECT_EQ(stops[0].value, 1u);
    EXPECT_EQ(stops[0].exit_status(), 3);
    EXPECT_EQ(stops[1].exit_status(), 77);  // kvm-unit-tests' "all skipped"
}

}  // namespace
}  // namespace strata
