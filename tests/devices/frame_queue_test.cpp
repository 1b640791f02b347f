#include "devices/virtio/frame_queue.hpp"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace strata {
namespace {

std::vector<uint8_t> frame(size_t length, uint8_t seed) {
    std::vector<uint8_t> bytes(length);
    std::iota(bytes.begin(), bytes.end(), seed);
    return bytes;
}

std::vector<uint8_t> front_of(const FrameQueue& queue) { return {queue.front().begin(), queue.front().end()}; }

TEST(FrameQueue, KeepsFramesInOrderUpToItsFrameLimit) {
    FrameQueue queue(3, 1000);
    EXPECT_TRUE(queue.empty());
    for (uint8_t i = 0; i < 3; ++i) EXPECT_TRUE(queue.push(frame(10 + i, i)));
    EXPECT_FALSE(queue.push(frame(1, 9))) << "a fourth frame";
    EXPECT_FALSE(queue.push({})) << "an empty frame";
    for (uint8_t i = 0; i < 3; ++i) {
        ASSERT_FALSE(queue.empty());
        EXPECT_EQ(front_of(queue), frame(10 + i, i));
        queue.pop();
    }
    EXPECT_TRUE(queue.empty());
}

TEST(FrameQueue, WrapsAroundItsBytesAndRefusesWhatHasNoContiguousRoom) {
    FrameQueue queue(8, 100);
    EXPECT_FALSE(queue.push(frame(101, 0))) << "larger than all of it";
    ASSERT_TRUE(queue.push(frame(40, 1)));  // [0, 40)
    ASSERT_TRUE(queue.push(frame(40, 2)));  // [40, 80)
    EXPECT_FALSE(queue.push(frame(30, 3))) << "20 bytes at the end, none before the oldest";
    queue.pop();                            // [0, 40) free
    ASSERT_TRUE(queue.push(frame(30, 3)));  // wraps: [0, 30)
    EXPECT_FALSE(queue.push(frame(11, 4))) << "10 bytes between the newest and the oldest";
    ASSERT_TRUE(queue.push(frame(10, 4)));  // [30, 40)
    EXPECT_EQ(queue.size(), 3u);
    EXPECT_EQ(front_of(queue), frame(40, 2));
    queue.pop();
    EXPECT_EQ(front_of(queue), frame(30, 3));
    ASSERT_TRUE(queue.push(frame(60, 5))) << "[40, 100) is free again";
    queue.pop();
    EXPECT_EQ(front_of(queue), frame(10, 4));
    queue.pop();
    EXPECT_EQ(front_of(queue), frame(60, 5));
    queue.clear();
    EXPECT_TRUE(queue.empty());
    EXPECT_TRUE(queue.push(frame(100, 6))) << "all of it once empty";
}

}  // namespace
}  // namespace strata
