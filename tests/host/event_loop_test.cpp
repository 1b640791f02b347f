#include "host/event_loop.hpp"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace strata {
namespace {

using namespace std::chrono_literals;

TEST(EventLoop, RunsTheHandlerOfAReadableDescriptorOnItsThread) {
    auto loop = EventLoop::create("test-loop");
    ASSERT_TRUE(loop) << loop.error().message;
    Fd event(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    std::atomic<int> calls{0};
    std::atomic<bool> on_loop{false};
    EventLoop& l = **loop;
    ASSERT_TRUE(l.watch(event.get(), [&] {
        uint64_t count = 0;
        if (::read(event.get(), &count, sizeof(count)) == sizeof(count)) calls += static_cast<int>(count);
        on_loop = l.on_loop_thread();
    }));
    uint64_t three = 3;
    ASSERT_EQ(::write(event.get(), &three, sizeof(three)), 8);
    for (int i = 0; i < 5000 && calls < 3; ++i) std::this_thread::sleep_for(1ms);
    EXPECT_EQ(calls, 3);
    EXPECT_TRUE(on_loop);
    l.unwatch(event.get());
    ASSERT_EQ(::write(event.get(), &three, sizeof(three)), 8);
    l.run_sync([] {});  // a full turn of the loop
    EXPECT_EQ(calls, 3) << "no handler after unwatch";
}

TEST(EventLoop, WaitsForRoomOnlyWhileAskedAndReportsAHangUpBothWays) {
    auto loop = EventLoop::create("test-loop");
    ASSERT_TRUE(loop) << loop.error().message;
    EventLoop& l = **loop;
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair), 0);
    Fd ours(pair[0]), theirs(pair[1]);
    std::atomic<EventLoop::Ready> seen{0};
    std::atomic<int> calls{0};
    auto record = [&](EventLoop::Ready ready) {
        seen |= ready;
        ++calls;
    };
    // An empty socket has room: a writer is told so at once, a reader is not.
    ASSERT_TRUE(l.watch(ours.get(), EventLoop::kWritable, record));
    for (int i = 0; i < 5000 && calls == 0; ++i) std::this_thread::sleep_for(1ms);
    EXPECT_EQ(seen.load(), EventLoop::kWritable);
    ASSERT_TRUE(l.watch(ours.get(), EventLoop::kReadable, record));
    l.run_sync([] {});
    seen = 0;
    l.run_sync([] {});
    EXPECT_EQ(seen.load(), 0u) << "no room reported once only reading is wanted";
    theirs.reset();  // the peer hangs up
    for (int i = 0; i < 5000 && seen == 0; ++i) std::this_thread::sleep_for(1ms);
    EXPECT_EQ(seen.load(), EventLoop::kReadable | EventLoop::kWritable);
    l.unwatch(ours.get());
}

TEST(EventLoop, RunSyncWaitsAndPostRunsInOrder) {
    auto loop = EventLoop::create("test-loop");
    ASSERT_TRUE(loop);
    std::vector<int> order;
    (*loop)->post([&] { order.push_back(1); });
    (*loop)->post([&] { order.push_back(2); });
    (*loop)->run_sync([&] { order.push_back(3); });
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
    bool nested = false;
    (*loop)->run_sync([&] { (*loop)->run_sync([&] { nested = true; }); });
    EXPECT_TRUE(nested) << "run_sync on the loop thread runs at once";
}

TEST(EventLoop, DestructionRunsWhatWasPosted) {
    std::atomic<bool> ran{false};
    {
        auto loop = EventLoop::create("test-loop");
        ASSERT_TRUE(loop);
        (*loop)->post([&] { ran = true; });
    }
    EXPECT_TRUE(ran);
}

}  // namespace
}  // namespace strata
