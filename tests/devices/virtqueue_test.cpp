#include "devices/virtio/virtqueue.hpp"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <utility>
#include <vector>

#include "base/checked.hpp"
#include "devices/virtio/virtio_spec.hpp"
#include "memory/guest_memory.hpp"

namespace strata {
namespace {

using virtio::kDescriptorIndirect;
using virtio::kDescriptorNext;
using virtio::kDescriptorWrite;

constexpr uint64_t kRamSize = 4 * MiB;
constexpr uint64_t kDescriptors = 0x10000;
constexpr uint64_t kAvail = 0x20000;
constexpr uint64_t kUsed = 0x30000;
constexpr uint64_t kIndirectTable = 0x80000;
constexpr uint64_t kBuffers = 0x100000;

// The driver's side, as a test writes it: lays out descriptors and rings in guest memory directly.
class TestDriver {
public:
    TestDriver(const GuestMemory& memory, uint32_t size) : memory_(&memory), size_(size) {}

    [[nodiscard]] VirtqueueConfig config(bool event_idx = false, bool indirect = false) const {
        return {.size = size_, .descriptor_table = kDescriptors, .avail_ring = kAvail, .used_ring = kUsed,
                .event_idx = event_idx, .indirect_descriptors = indirect};
    }
    void descriptor(uint16_t index, uint64_t addr, uint32_t len, uint16_t flags = 0, uint16_t next = 0) const {
        table_descriptor(kDescriptors, index, addr, len, flags, next);
    }
    void table_descriptor(uint64_t table, uint16_t index, uint64_t addr, uint32_t len, uint16_t flags = 0,
                          uint16_t next = 0) const {
        put(table + 16 * uint64_t{index}, virtio::Descriptor{.addr = addr, .len = len, .flags = flags, .next = next});
    }
    // Puts `head` in the next available-ring entry and publishes it.
    void make_available(uint16_t head) {
        put(kAvail + 4 + 2 * uint64_t{static_cast<uint16_t>(avail_idx_ % size_)}, head);
        set_avail_idx(static_cast<uint16_t>(avail_idx_ + 1));
    }
    void set_avail_idx(uint16_t idx) {
        avail_idx_ = idx;
        put(kAvail + 2, idx);
    }
    void set_avail_flags(uint16_t flags) const { put(kAvail, flags); }
    void set_used_event(uint16_t event) const { put(kAvail + virtio::used_event_offset(size_), event); }

    [[nodiscard]] uint16_t used_flags() const { return get<uint16_t>(kUsed); }
    [[nodiscard]] uint16_t used_idx() const { return get<uint16_t>(kUsed + 2); }
    [[nodiscard]] virtio::UsedElement used(uint32_t slot) const {
        return get<virtio::UsedElement>(kUsed + 4 + 8 * uint64_t{slot});
    }
    [[nodiscard]] uint16_t avail_event() const { return get<uint16_t>(kUsed + virtio::avail_event_offset(size_)); }

private:
    template <class T>
    void put(uint64_t gpa, const T& value) const {
        ASSERT_TRUE(memory_->write_obj(gpa, value));
    }
    template <class T>
    T get(uint64_t gpa) const {
        auto value = memory_->read_obj<T>(gpa);
        EXPECT_TRUE(value);
        return value ? *value : T{};
    }

    const GuestMemory* memory_;
    uint32_t size_;
    uint16_t avail_idx_ = 0;
};

struct RecordingObserver final : MemoryWriteObserver {
    std::vector<std::pair<uint64_t, uint64_t>> writes;
    void written(uint64_t gpa, uint64_t length) override { writes.emplace_back(gpa, length); }
};

class VirtqueueTest : public ::testing::Test {
protected:
    explicit VirtqueueTest(uint64_t ram_size = kRamSize)
        : memory_(std::move(*GuestMemory::create(ram_size))), dma_(memory_), queue_(dma_) {
        dma_.add_observer(observer_);
    }

    // Enables a queue of `size` entries; the driver of the test drives it.
    void enable(uint32_t size, bool event_idx = false, bool indirect = false) {
        driver_ = TestDriver(memory_, size);
        auto enabled = queue_.enable(driver_.config(event_idx, indirect));
        ASSERT_TRUE(enabled) << enabled.error().message;
    }
    // pop() that must succeed with a chain.
    void pop_chain() {
        auto popped = queue_.pop(chain_);
        ASSERT_TRUE(popped) << popped.error().message;
        ASSERT_TRUE(*popped);
    }
    // A one-buffer writable chain at `head`, made available and popped.
    void offer_and_pop(uint16_t head, uint32_t length) {
        driver_.descriptor(head, kBuffers + 0x100 * head, length, kDescriptorWrite);
        driver_.make_available(head);
        pop_chain();
    }
    // pop() that must fail with a message containing `text`.
    void expect_pop_error(const std::string& text) {
        uint16_t before = queue_.next_avail();
        auto popped = queue_.pop(chain_);
        ASSERT_FALSE(popped) << "popped a chain, expected an error containing \"" << text << "\"";
        EXPECT_NE(popped.error().message.find(text), std::string::npos) << popped.error().message;
        EXPECT_EQ(queue_.next_avail(), before);  // nothing consumed
    }
    bool interrupt() {
        auto wanted = queue_.should_interrupt();
        EXPECT_TRUE(wanted) << wanted.error().message;
        return wanted && *wanted;
    }
    void push(uint16_t head, uint32_t written) {
        auto pushed = queue_.push_used(head, written);
        ASSERT_TRUE(pushed) << pushed.error().message;
    }

    GuestMemory memory_;
    GuestDma dma_;
    RecordingObserver observer_;
    Virtqueue queue_;
    TestDriver driver_{memory_, 8};
    DescriptorChain chain_{64};
};

void expect_segment(const ChainSegment& segment, uint64_t gpa, uint32_t length, bool writable) {
    EXPECT_EQ(segment.gpa, gpa);
    EXPECT_EQ(segment.length, length);
    EXPECT_EQ(segment.device_writable, writable);
}

// --- Configuration ---

TEST_F(VirtqueueTest, QueueSizeMustBeAPowerOfTwoUpTo32768) {
    for (uint32_t size : {0u, 3u, 6u, 32769u, 65536u}) {
        auto enabled = queue_.enable(TestDriver(memory_, size).config());
        ASSERT_FALSE(enabled) << size;
        EXPECT_NE(enabled.error().message.find(fmt::format("queue size {} is not a power of two", size)),
                  std::string::npos)
            << enabled.error().message;
        EXPECT_FALSE(queue_.enabled());
    }
    for (uint32_t size : {1u, 2u, 256u}) EXPECT_TRUE(queue_.enable(TestDriver(memory_, size).config())) << size;
    // The largest: 512 KiB of descriptors, 256 KiB of used ring, apart from each other.
    VirtqueueConfig largest{.size = 32768, .descriptor_table = 0x100000, .avail_ring = 0x180000, .used_ring = 0x200000};
    auto enabled = queue_.enable(largest);
    EXPECT_TRUE(enabled) << enabled.error().message;
}

TEST_F(VirtqueueTest, RingsMustBeAligned) {
    struct Case {
        VirtqueueConfig config;
        const char* message;
    };
    for (const auto& [config, message] : {
             Case{{.size = 8, .descriptor_table = kDescriptors + 8, .avail_ring = kAvail, .used_ring = kUsed},
                  "descriptor table at 0x10008 is not 16-byte aligned"},
             Case{{.size = 8, .descriptor_table = kDescriptors, .avail_ring = kAvail + 1, .used_ring = kUsed},
                  "available ring at 0x20001 is not 2-byte aligned"},
             Case{{.size = 8, .descriptor_table = kDescriptors, .avail_ring = kAvail, .used_ring = kUsed + 2},
                  "used ring at 0x30002 is not 4-byte aligned"},
         }) {
        auto enabled = queue_.enable(config);
        ASSERT_FALSE(enabled) << message;
        EXPECT_NE(enabled.error().message.find(message), std::string::npos) << enabled.error().message;
    }
    // The spec's minimum alignments are enough.
    EXPECT_TRUE(queue_.enable({.size = 8, .descriptor_table = kDescriptors + 16, .avail_ring = kAvail + 2,
                               .used_ring = kUsed + 4}));
}

TEST_F(VirtqueueTest, RingsMustLieWhollyInRam) {
    struct Case {
        VirtqueueConfig config;
        const char* message;
    };
    // Size 8: a 128-byte descriptor table, a 22-byte available ring, a 70-byte used ring.
    for (const auto& [config, message] : {
             Case{{.size = 8, .descriptor_table = kRamSize - 112, .avail_ring = kAvail, .used_ring = kUsed},
                  "descriptor table of 128 bytes: guest range"},
             Case{{.size = 8, .descriptor_table = kDescriptors, .avail_ring = kRamSize - 20, .used_ring = kUsed},
                  "available ring of 22 bytes: guest range"},
             Case{{.size = 8, .descriptor_table = kDescriptors, .avail_ring = kAvail, .used_ring = 0xc000'0000},
                  "used ring of 70 bytes: guest range"},
             Case{{.size = 8, .descriptor_table = 0xffff'ffff'ffff'ffc0, .avail_ring = kAvail, .used_ring = kUsed},
                  "wraps around"},
             Case{{.size = 8, .descriptor_table = kDescriptors, .avail_ring = kAvail,
                   .used_ring = 0xffff'ffff'ffff'fff0},
                  "wraps around"},
         }) {
        auto enabled = queue_.enable(config);
        ASSERT_FALSE(enabled) << message;
        EXPECT_NE(enabled.error().message.find(message), std::string::npos) << enabled.error().message;
        EXPECT_FALSE(queue_.enabled());
    }
    // Ending exactly at the end of RAM is fine.
    EXPECT_TRUE(
        queue_.enable({.size = 8, .descriptor_table = kRamSize - 128, .avail_ring = kAvail, .used_ring = kUsed}));
}

TEST_F(VirtqueueTest, NothingWorksBeforeEnableOrAfterReset) {
    EXPECT_FALSE(queue_.pop(chain_));
    EXPECT_FALSE(queue_.push_used(0, 0));
    EXPECT_FALSE(queue_.should_interrupt());
    enable(8);
    driver_.descriptor(0, kBuffers, 8);
    driver_.make_available(0);
    pop_chain();
    queue_.reset();
    EXPECT_FALSE(queue_.enabled());
    EXPECT_FALSE(queue_.pop(chain_));
    EXPECT_FALSE(queue_.enable_notifications());
    // Enabled again, the device starts from index 0: it sees the driver's first entry again.
    enable(8);
    EXPECT_EQ(queue_.next_avail(), 0);
    pop_chain();
    EXPECT_EQ(chain_.head(), 0);
}

// --- Normal paths ---

TEST_F(VirtqueueTest, PopsASingleBuffer) {
    enable(8);
    auto empty = queue_.pop(chain_);
    ASSERT_TRUE(empty);
    EXPECT_FALSE(*empty);
    driver_.descriptor(5, kBuffers, 100);
    driver_.make_available(5);
    pop_chain();
    EXPECT_EQ(chain_.head(), 5);
    ASSERT_EQ(chain_.segments().size(), 1u);
    expect_segment(chain_.segments()[0], kBuffers, 100, false);
    EXPECT_EQ(chain_.readable_bytes(), 100u);
    EXPECT_EQ(chain_.writable_bytes(), 0u);
    EXPECT_EQ(queue_.next_avail(), 1);
    empty = queue_.pop(chain_);
    ASSERT_TRUE(empty);
    EXPECT_FALSE(*empty);
}

TEST_F(VirtqueueTest, PopsAChainReadableThenWritable) {
    enable(8);
    driver_.descriptor(3, kBuffers, 16, kDescriptorNext, 7);
    driver_.descriptor(7, kBuffers + 0x1000, 512, kDescriptorNext | kDescriptorWrite, 1);
    driver_.descriptor(1, kBuffers + 0x2000, 1, kDescriptorWrite);
    driver_.make_available(3);
    pop_chain();
    EXPECT_EQ(chain_.head(), 3);
    ASSERT_EQ(chain_.segments().size(), 3u);
    expect_segment(chain_.segments()[0], kBuffers, 16, false);
    expect_segment(chain_.segments()[1], kBuffers + 0x1000, 512, true);
    expect_segment(chain_.segments()[2], kBuffers + 0x2000, 1, true);
    EXPECT_EQ(chain_.readable().size(), 1u);
    EXPECT_EQ(chain_.writable().size(), 2u);
    EXPECT_EQ(chain_.readable_bytes(), 16u);
    EXPECT_EQ(chain_.writable_bytes(), 513u);
}

TEST_F(VirtqueueTest, ReusedChainHoldsOnlyTheLatest) {
    enable(8);
    driver_.descriptor(0, kBuffers, 16, kDescriptorNext, 1);
    driver_.descriptor(1, kBuffers + 0x1000, 32, kDescriptorWrite);
    driver_.descriptor(2, kBuffers + 0x2000, 8, kDescriptorWrite);
    driver_.make_available(0);
    driver_.make_available(2);
    const ChainSegment* storage = chain_.segments().data();
    pop_chain();
    pop_chain();
    EXPECT_EQ(chain_.segments().data(), storage);  // the storage made at construction, not a new one
    EXPECT_EQ(chain_.head(), 2);
    ASSERT_EQ(chain_.segments().size(), 1u);
    expect_segment(chain_.segments()[0], kBuffers + 0x2000, 8, true);
    EXPECT_EQ(chain_.readable_bytes(), 0u);
    EXPECT_EQ(chain_.writable_bytes(), 8u);
}

TEST_F(VirtqueueTest, FollowsAnIndirectTable) {
    enable(8, false, true);
    // The pointer's WRITE flag means nothing (§2.7.5.3.2).
    driver_.descriptor(2, kIndirectTable, 3 * 16, kDescriptorIndirect | kDescriptorWrite);
    driver_.table_descriptor(kIndirectTable, 0, kBuffers, 16, kDescriptorNext, 2);
    driver_.table_descriptor(kIndirectTable, 2, kBuffers + 0x1000, 4096, kDescriptorNext | kDescriptorWrite, 1);
    driver_.table_descriptor(kIndirectTable, 1, kBuffers + 0x3000, 1, kDescriptorWrite);
    driver_.make_available(2);
    pop_chain();
    EXPECT_EQ(chain_.head(), 2);
    ASSERT_EQ(chain_.segments().size(), 3u);
    expect_segment(chain_.segments()[0], kBuffers, 16, false);
    expect_segment(chain_.segments()[1], kBuffers + 0x1000, 4096, true);
    expect_segment(chain_.segments()[2], kBuffers + 0x3000, 1, true);
}

TEST_F(VirtqueueTest, FollowsDirectDescriptorsThenAnIndirectTable) {
    enable(8, false, true);  // §2.7.5.3.2: zero or more direct descriptors, then one indirect
    driver_.descriptor(0, kBuffers, 16, kDescriptorNext, 4);
    driver_.descriptor(4, kIndirectTable, 2 * 16, kDescriptorIndirect);
    driver_.table_descriptor(kIndirectTable, 0, kBuffers + 0x1000, 64, kDescriptorNext, 1);
    driver_.table_descriptor(kIndirectTable, 1, kBuffers + 0x2000, 8, kDescriptorWrite);
    driver_.make_available(0);
    pop_chain();
    ASSERT_EQ(chain_.segments().size(), 3u);
    expect_segment(chain_.segments()[0], kBuffers, 16, false);
    expect_segment(chain_.segments()[1], kBuffers + 0x1000, 64, false);
    expect_segment(chain_.segments()[2], kBuffers + 0x2000, 8, true);
}

TEST_F(VirtqueueTest, ZeroLengthBuffersAreAllowedAndGiveNoSegment) {
    enable(8);
    // Its address is never touched, so it is not checked either.
    driver_.descriptor(0, 0xdead'0000'0000, 0, kDescriptorNext, 1);
    driver_.descriptor(1, kBuffers, 8, kDescriptorNext | kDescriptorWrite, 2);
    driver_.descriptor(2, ~0ull, 0, kDescriptorWrite);
    driver_.make_available(0);
    pop_chain();
    ASSERT_EQ(chain_.segments().size(), 1u);
    expect_segment(chain_.segments()[0], kBuffers, 8, true);
}

TEST_F(VirtqueueTest, CopiesThroughTheSegments) {
    enable(8);
    driver_.descriptor(0, kBuffers, 3, kDescriptorNext, 1);
    driver_.descriptor(1, kBuffers + 0x100, 5, kDescriptorNext, 2);
    driver_.descriptor(2, kBuffers + 0x200, 4, kDescriptorNext | kDescriptorWrite, 3);
    driver_.descriptor(3, kBuffers + 0x300, 4, kDescriptorWrite);
    ASSERT_TRUE(memory_.write(kBuffers, std::array<uint8_t, 3>{1, 2, 3}));
    ASSERT_TRUE(memory_.write(kBuffers + 0x100, std::array<uint8_t, 5>{4, 5, 6, 7, 8}));
    driver_.make_available(0);
    pop_chain();

    std::array<uint8_t, 6> in{};
    auto read = chain_.read(dma_, 1, in);  // from the second readable byte, across both segments
    ASSERT_TRUE(read) << read.error().message;
    EXPECT_EQ(*read, 6u);
    EXPECT_EQ(in, (std::array<uint8_t, 6>{2, 3, 4, 5, 6, 7}));
    read = chain_.read(dma_, 6, in);  // only two readable bytes are left from there
    ASSERT_TRUE(read);
    EXPECT_EQ(*read, 2u);
    EXPECT_EQ(in[0], 7);
    EXPECT_EQ(in[1], 8);

    observer_.writes.clear();
    const std::array<uint8_t, 8> out{9, 10, 11, 12, 13, 14, 15, 16};
    auto written = chain_.write(dma_, 2, out);  // 2 bytes into the first writable segment, 4 into the next
    ASSERT_TRUE(written) << written.error().message;
    EXPECT_EQ(*written, 6u);
    EXPECT_EQ(memory_.read_obj<uint16_t>(kBuffers + 0x202).value_or(0), 0x0a09);
    EXPECT_EQ(memory_.read_obj<uint32_t>(kBuffers + 0x300).value_or(0), 0x0e0d0c0bu);
    EXPECT_EQ(observer_.writes,
              (std::vector<std::pair<uint64_t, uint64_t>>{{kBuffers + 0x202, 2}, {kBuffers + 0x300, 4}}));
    // The readable buffers were not written.
    EXPECT_EQ(memory_.read_obj<uint8_t>(kBuffers).value_or(0), 1);
    written = chain_.write(dma_, 100, out);
    ASSERT_TRUE(written);
    EXPECT_EQ(*written, 0u);
}

TEST_F(VirtqueueTest, PushUsedWritesTheElementThenPublishesIdx) {
    enable(4);
    for (uint16_t head : std::array<uint16_t, 3>{2, 0, 3}) {
        driver_.descriptor(head, kBuffers, 64, kDescriptorWrite);
        driver_.make_available(head);
    }
    pop_chain();
    pop_chain();
    observer_.writes.clear();
    push(0, 10);  // out of order is fine: the device may use chains in any order
    push(2, 64);
    EXPECT_EQ(driver_.used_idx(), 2);
    EXPECT_EQ(driver_.used(0).id, 0u);
    EXPECT_EQ(driver_.used(0).len, 10u);
    EXPECT_EQ(driver_.used(1).id, 2u);
    EXPECT_EQ(driver_.used(1).len, 64u);
    EXPECT_EQ(queue_.used_idx(), 2);
    // Observers hear of the element, then the index.
    ASSERT_EQ(observer_.writes.size(), 4u);
    EXPECT_EQ(observer_.writes[0], (std::pair<uint64_t, uint64_t>{kUsed + 4, 8}));
    EXPECT_EQ(observer_.writes[1], (std::pair<uint64_t, uint64_t>{kUsed + 2, 2}));

    // Nothing more in flight, or a head past the queue: the device's bug, refused.
    auto pushed = queue_.push_used(3, 0);
    ASSERT_FALSE(pushed);
    EXPECT_NE(pushed.error().message.find("no descriptor chain is in flight"), std::string::npos);
    pop_chain();
    pushed = queue_.push_used(4, 0);
    ASSERT_FALSE(pushed);
    EXPECT_NE(pushed.error().message.find("head 4: past the queue size 4"), std::string::npos);
    EXPECT_EQ(driver_.used_idx(), 2);
}

TEST_F(VirtqueueTest, IndexesWrapAt65536) {
    enable(4);
    for (uint16_t i = 0; i < 4; ++i) driver_.descriptor(i, kBuffers + 0x100 * i, 16, kDescriptorWrite);
    // 70000 chains in batches of up to 4, so both free-running indexes wrap past 65535.
    constexpr uint32_t kTotal = 70000;
    uint32_t popped = 0;
    while (popped < kTotal) {
        for (uint16_t i = 0; i < 4; ++i) driver_.make_available(static_cast<uint16_t>((popped + i) % 4));
        for (uint16_t i = 0; i < 4; ++i) {
            pop_chain();
            ASSERT_EQ(chain_.head(), (popped + i) % 4);
            push(chain_.head(), popped + i);
        }
        popped += 4;
    }
    EXPECT_EQ(queue_.next_avail(), static_cast<uint16_t>(kTotal));
    EXPECT_EQ(driver_.used_idx(), static_cast<uint16_t>(kTotal));
    EXPECT_EQ(driver_.used((kTotal - 1) % 4).len, kTotal - 1);
    auto empty = queue_.pop(chain_);
    ASSERT_TRUE(empty);
    EXPECT_FALSE(*empty);
}

// --- Notification suppression ---

TEST_F(VirtqueueTest, NoInterruptFlagSuppressesInterrupts) {
    enable(8);
    for (uint16_t i = 0; i < 3; ++i) {
        driver_.descriptor(i, kBuffers, 8, kDescriptorWrite);
        driver_.make_available(i);
    }
    EXPECT_FALSE(interrupt());  // nothing used yet
    pop_chain();
    push(0, 8);
    EXPECT_TRUE(interrupt());
    EXPECT_FALSE(interrupt());  // nothing new since
    driver_.set_avail_flags(virtio::kAvailNoInterrupt);
    pop_chain();
    push(1, 8);
    EXPECT_FALSE(interrupt());
    driver_.set_avail_flags(0);
    pop_chain();
    push(2, 8);
    EXPECT_TRUE(interrupt());
}

TEST_F(VirtqueueTest, UsedEventSuppressesInterruptsWithEventIdx) {
    enable(8, true);
    for (uint16_t i = 0; i < 8; ++i) {
        driver_.descriptor(i, kBuffers, 8, kDescriptorWrite);
        driver_.make_available(i);
    }
    for (uint16_t i = 0; i < 8; ++i) pop_chain();
    // "Interrupt me once the entry at used index 2 is written" (§2.7.7).
    driver_.set_used_event(2);
    push(0, 8);
    EXPECT_FALSE(interrupt());
    push(1, 8);
    EXPECT_FALSE(interrupt());
    push(2, 8);
    EXPECT_TRUE(interrupt());
    push(3, 8);
    EXPECT_FALSE(interrupt());  // used_event is behind now
    // A batch that passes used_event interrupts once.
    driver_.set_used_event(5);
    push(4, 8);
    push(5, 8);
    push(6, 8);
    EXPECT_TRUE(interrupt());
    // With EVENT_IDX the NO_INTERRUPT bit is ignored (§2.7.7.2).
    driver_.set_avail_flags(virtio::kAvailNoInterrupt);
    driver_.set_used_event(7);
    push(7, 8);
    EXPECT_TRUE(interrupt());
}

TEST_F(VirtqueueTest, NoNotifyFlagTellsTheDriverNotToNotify) {
    enable(8);
    ASSERT_TRUE(queue_.disable_notifications());
    EXPECT_EQ(driver_.used_flags(), virtio::kUsedNoNotify);
    auto waiting = queue_.enable_notifications();
    ASSERT_TRUE(waiting) << waiting.error().message;
    EXPECT_FALSE(*waiting);
    EXPECT_EQ(driver_.used_flags(), 0);
    // Buffers the driver added while notifications were off are found when they are re-enabled.
    ASSERT_TRUE(queue_.disable_notifications());
    driver_.descriptor(0, kBuffers, 8);
    driver_.make_available(0);
    waiting = queue_.enable_notifications();
    ASSERT_TRUE(waiting);
    EXPECT_TRUE(*waiting);
    pop_chain();
    waiting = queue_.enable_notifications();
    ASSERT_TRUE(waiting);
    EXPECT_FALSE(*waiting);
}

TEST_F(VirtqueueTest, AvailEventTellsTheDriverWhenToNotifyWithEventIdx) {
    enable(8, true);
    for (uint16_t i = 0; i < 3; ++i) {
        driver_.descriptor(i, kBuffers, 8);
        driver_.make_available(i);
    }
    ASSERT_TRUE(queue_.disable_notifications());
    EXPECT_EQ(driver_.used_flags(), 0);  // flags stay 0 with EVENT_IDX (§2.7.10.2)
    pop_chain();
    pop_chain();
    auto waiting = queue_.enable_notifications();
    ASSERT_TRUE(waiting);
    EXPECT_TRUE(*waiting);                // entry 2 is still there
    EXPECT_EQ(driver_.avail_event(), 2);  // "notify me when you make entry 2 available"
    pop_chain();
    waiting = queue_.enable_notifications();
    ASSERT_TRUE(waiting);
    EXPECT_FALSE(*waiting);
    EXPECT_EQ(driver_.avail_event(), 3);
    EXPECT_EQ(driver_.used_flags(), 0);
    // What the driver does with it (§2.7.10): adding entry 3 crosses avail_event, entry 4 does not.
    EXPECT_TRUE(virtio::need_event(driver_.avail_event(), 4, 3));
    EXPECT_FALSE(virtio::need_event(driver_.avail_event(), 5, 4));
}

// --- Malformed rings: every one an error, never a hang or a crash ---

TEST_F(VirtqueueTest, SelfLoopIsAnError) {
    enable(8);
    driver_.descriptor(0, kBuffers, 8, kDescriptorNext, 0);
    driver_.make_available(0);
    expect_pop_error("descriptor chain from head 0 is longer than the queue size 8 (a loop?)");
}

TEST_F(VirtqueueTest, TwoCycleIsAnError) {
    enable(8);
    driver_.descriptor(0, kBuffers, 8, kDescriptorNext, 1);
    driver_.descriptor(1, kBuffers, 8, kDescriptorNext, 0);
    driver_.make_available(1);
    expect_pop_error("descriptor chain from head 1 is longer than the queue size 8 (a loop?)");
}

TEST_F(VirtqueueTest, ZeroLengthLoopIsAnError) {
    enable(8);
    driver_.descriptor(3, 0, 0, kDescriptorNext, 3);  // adds no segment, still counts
    driver_.make_available(3);
    expect_pop_error("longer than the queue size 8 (a loop?)");
}

TEST_F(VirtqueueTest, LoopInAnIndirectTableIsAnError) {
    enable(8, false, true);
    driver_.descriptor(0, kIndirectTable, 4 * 16, kDescriptorIndirect);
    driver_.table_descriptor(kIndirectTable, 0, kBuffers, 8, kDescriptorNext, 1);
    driver_.table_descriptor(kIndirectTable, 1, kBuffers, 8, kDescriptorNext, 2);
    driver_.table_descriptor(kIndirectTable, 2, kBuffers, 8, kDescriptorNext, 1);
    driver_.make_available(0);
    expect_pop_error("indirect table of descriptor 0: the chain is longer than its 4 descriptors (a loop?)");
}

TEST_F(VirtqueueTest, ChainLongerThanTheQueueThroughAnIndirectTableIsAnError) {
    enable(4, false, true);
    // Eight buffers in one indirect table: no loop, but more than the queue size (§2.7.5.3.1).
    driver_.descriptor(0, kIndirectTable, 8 * 16, kDescriptorIndirect);
    for (uint16_t i = 0; i < 8; ++i)
        driver_.table_descriptor(kIndirectTable, i, kBuffers, 8, static_cast<uint16_t>(i < 7 ? kDescriptorNext : 0),
                                 static_cast<uint16_t>(i + 1));
    driver_.make_available(0);
    expect_pop_error("descriptor chain from head 0 has more than 4 buffers, the queue size");
    // Direct ones count too: three direct and two indirect make five.
    driver_.descriptor(1, kBuffers, 8, kDescriptorNext, 2);
    driver_.descriptor(2, kBuffers, 8, kDescriptorNext, 3);
    driver_.descriptor(3, kBuffers, 8, kDescriptorNext, 0);
    driver_.table_descriptor(kIndirectTable, 1, kBuffers, 8);
    queue_.reset();
    enable(4, false, true);
    driver_.make_available(1);
    expect_pop_error("descriptor chain from head 1 has more than 4 buffers, the queue size");
}

TEST_F(VirtqueueTest, HeadIndexPastTheQueueIsAnError) {
    enable(8);
    driver_.make_available(8);
    expect_pop_error("available ring entry 0: head index 8 is past the queue size 8");
}

TEST_F(VirtqueueTest, NextIndexPastTheQueueIsAnError) {
    enable(256);
    driver_.descriptor(5, kBuffers, 8, kDescriptorNext, 300);
    driver_.make_available(5);
    expect_pop_error("descriptor 5: next index 300 is past the queue size 256");
}

TEST_F(VirtqueueTest, NextIndexPastAnIndirectTableIsAnError) {
    enable(8, false, true);
    driver_.descriptor(6, kIndirectTable, 4 * 16, kDescriptorIndirect);
    driver_.table_descriptor(kIndirectTable, 0, kBuffers, 8, kDescriptorNext, 4);
    driver_.make_available(6);
    expect_pop_error("indirect descriptor 0 (table of descriptor 6): next index 4 is past the table's 4 descriptors");
}

TEST_F(VirtqueueTest, BuffersOutsideRamAreErrors) {
    enable(8, false, true);
    driver_.descriptor(0, kRamSize - 4, 8);  // straddles the end of RAM
    driver_.make_available(0);
    expect_pop_error("descriptor 0: buffer: guest range [0x3ffffc, 0x400004) is not inside guest RAM");

    // Re-enabled, the queue takes the driver's entry 0 (head 0) again.
    queue_.reset();
    enable(8, false, true);
    driver_.descriptor(0, 0xffff'ffff'ffff'fff0, 0x20);  // address + length wraps past 2^64
    expect_pop_error("descriptor 0: buffer: guest range 0xfffffffffffffff0+0x20 wraps around");

    queue_.reset();
    enable(8, false, true);
    driver_.descriptor(0, kIndirectTable, 16, kDescriptorIndirect);
    driver_.table_descriptor(kIndirectTable, 0, 0xc000'0000, 16);  // the MMIO hole, not RAM
    expect_pop_error("indirect descriptor 0 (table of descriptor 0): buffer: guest range [0xc0000000");

    queue_.reset();
    enable(8, false, true);
    driver_.descriptor(0, kRamSize - 16, 32, kDescriptorIndirect);
    expect_pop_error("descriptor 0: indirect table: guest range");

    queue_.reset();
    enable(8, false, true);
    driver_.descriptor(0, 0xffff'ffff'ffff'fff0, 32, kDescriptorIndirect);
    expect_pop_error("descriptor 0: indirect table: guest range 0xfffffffffffffff0+0x20 wraps around");
}

TEST_F(VirtqueueTest, ReadableAfterWritableIsAnError) {
    enable(8, false, true);
    driver_.descriptor(0, kBuffers, 8, kDescriptorNext | kDescriptorWrite, 1);
    driver_.descriptor(1, kBuffers, 8);
    driver_.make_available(0);
    expect_pop_error("descriptor 1: a device-readable buffer after a device-writable one (§2.7.4.2)");

    // Across the step into an indirect table too, and for zero-length buffers.
    queue_.reset();
    enable(8, false, true);
    driver_.descriptor(0, kBuffers, 0, kDescriptorNext | kDescriptorWrite, 2);
    driver_.descriptor(2, kIndirectTable, 16, kDescriptorIndirect);
    driver_.table_descriptor(kIndirectTable, 0, kBuffers, 8);
    expect_pop_error(
        "indirect descriptor 0 (table of descriptor 2): a device-readable buffer after a device-writable one");
}

TEST_F(VirtqueueTest, IndirectRulesAreEnforced) {
    struct Case {
        virtio::Descriptor pointer;
        bool negotiated;
        const char* message;
    };
    for (const auto& [pointer, negotiated, message] : {
             Case{{kIndirectTable, 32, kDescriptorIndirect, 0}, false,
                  "descriptor 0: INDIRECT, but VIRTIO_F_INDIRECT_DESC was not negotiated"},
             Case{{kIndirectTable, 32, kDescriptorIndirect | kDescriptorNext, 1}, true,
                  "descriptor 0: INDIRECT together with NEXT"},
             Case{{kIndirectTable, 0, kDescriptorIndirect, 0}, true,
                  "descriptor 0: indirect table length 0 is not a non-zero multiple of 16"},
             Case{{kIndirectTable, 20, kDescriptorIndirect, 0}, true,
                  "descriptor 0: indirect table length 20 is not a non-zero multiple of 16"},
             Case{{kIndirectTable, 8, kDescriptorIndirect, 0}, true,
                  "descriptor 0: indirect table length 8 is not a non-zero multiple of 16"},
         }) {
        queue_.reset();
        enable(8, false, negotiated);
        driver_.descriptor(1, kBuffers, 8);
        driver_.descriptor(0, pointer.addr, pointer.len, pointer.flags, pointer.next);
        driver_.table_descriptor(kIndirectTable, 0, kBuffers, 8);
        driver_.table_descriptor(kIndirectTable, 1, kBuffers, 8);
        driver_.make_available(0);
        expect_pop_error(message);
    }
}

TEST_F(VirtqueueTest, IndirectInsideIndirectIsAnError) {
    enable(8, false, true);
    driver_.descriptor(0, kIndirectTable, 2 * 16, kDescriptorIndirect);
    driver_.table_descriptor(kIndirectTable, 0, kBuffers, 8, kDescriptorNext, 1);
    driver_.table_descriptor(kIndirectTable, 1, kIndirectTable + 0x100, 16, kDescriptorIndirect);
    driver_.make_available(0);
    expect_pop_error("indirect descriptor 1 (table of descriptor 0): INDIRECT inside an indirect table");
}

TEST_F(VirtqueueTest, AvailIdxMoreThanTheQueueSizeAheadIsAnError) {
    enable(8);
    for (uint16_t i = 0; i < 8; ++i) driver_.descriptor(i, kBuffers, 8);
    driver_.set_avail_idx(9);
    expect_pop_error("available ring idx 9 is 9 entries ahead of the device's 0, more than the queue size 8");
    driver_.set_avail_idx(0xffff);  // "behind": as far ahead, modulo 2^16
    expect_pop_error("available ring idx 65535 is 65535 entries ahead");
    driver_.set_avail_idx(8);  // a full ring is fine
    for (int i = 0; i < 8; ++i) pop_chain();
}

TEST_F(VirtqueueTest, ChainLimitsOfTheDeviceAreEnforced) {
    enable(8);
    driver_.descriptor(0, kBuffers, 100, kDescriptorNext, 1);
    driver_.descriptor(1, kBuffers + 0x100, 100, kDescriptorNext | kDescriptorWrite, 2);
    driver_.descriptor(2, kBuffers + 0x200, 100, kDescriptorWrite);
    driver_.make_available(0);
    DescriptorChain two_buffers(2);
    auto popped = queue_.pop(two_buffers);
    ASSERT_FALSE(popped);
    EXPECT_NE(
        popped.error().message.find("descriptor 2: the chain has more than 2 buffers, the most this device takes"),
        std::string::npos)
        << popped.error().message;
    DescriptorChain small(8, 250);
    popped = queue_.pop(small);
    ASSERT_FALSE(popped);
    EXPECT_NE(popped.error().message.find("descriptor 2: the chain has more than 250 bytes"), std::string::npos)
        << popped.error().message;
    DescriptorChain enough(3, 300);
    popped = queue_.pop(enough);
    ASSERT_TRUE(popped) << popped.error().message;
    EXPECT_TRUE(*popped);
}

class LargeGuestVirtqueueTest : public VirtqueueTest {
protected:
    LargeGuestVirtqueueTest() : VirtqueueTest(5 * GiB) {}  // sparse: only the touched pages cost
};

TEST_F(LargeGuestVirtqueueTest, ChainOfMoreThan4GiBIsAnError) {
    enable(8);
    // 2 GiB and 2 GiB - 1 make 2^32 - 1 bytes, what a used element's len can say; one more byte is
    // past it (the spec's bound is 2^32, §2.7.5.2).
    driver_.descriptor(0, 0x4000'0000, 0x8000'0000, kDescriptorNext, 1);
    driver_.descriptor(1, GuestMemory::kHighRamStart, 0x7fff'ffff, kDescriptorNext, 2);
    driver_.descriptor(2, kBuffers, 1);
    driver_.make_available(0);
    expect_pop_error("descriptor 2: the chain has more than 4294967295 bytes");
}

// --- Snapshots ---

// Several chains returned together: every element written, then one idx update; more elements
// than chains in flight, or a head past the queue, publish nothing.
TEST_F(VirtqueueTest, ChainsReturnedTogetherArePublishedByOneIdxUpdate) {
    enable(8);
    for (uint16_t head = 0; head < 3; ++head) offer_and_pop(head, 64);
    const virtio::UsedElement too_many[] = {{0, 1}, {1, 2}, {2, 3}, {3, 4}};
    auto refused = queue_.push_used(too_many);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().message, "4 used elements with 3 descriptor chains in flight");
    const virtio::UsedElement past[] = {{0, 1}, {9, 2}};
    ASSERT_FALSE(queue_.push_used(past));
    EXPECT_EQ(driver_.used_idx(), 0) << "nothing published";
    EXPECT_EQ(queue_.used_idx(), 0);

    const virtio::UsedElement three[] = {{2, 30}, {0, 10}, {1, 20}};
    ASSERT_TRUE(queue_.push_used(three));
    EXPECT_EQ(driver_.used_idx(), 3);
    for (uint32_t slot = 0; slot < 3; ++slot) {
        EXPECT_EQ(driver_.used(slot).id, three[slot].id) << slot;
        EXPECT_EQ(driver_.used(slot).len, three[slot].len) << slot;
    }
    EXPECT_TRUE(interrupt());
}

TEST_F(VirtqueueTest, AGivenBackChainIsPoppedAgain) {
    enable(8);
    driver_.descriptor(2, kBuffers, 64, kDescriptorWrite);
    driver_.make_available(2);
    pop_chain();
    ASSERT_TRUE(queue_.unpop());
    EXPECT_EQ(queue_.next_avail(), 0);
    pop_chain();
    EXPECT_EQ(chain_.head(), 2);
    push(2, 10);
    // Nothing in flight: there is nothing to give back.
    auto again = queue_.unpop();
    ASSERT_FALSE(again);
    EXPECT_NE(again.error().message.find("0 in flight"), std::string::npos) << again.error().message;
}

TEST_F(VirtqueueTest, ARestoredQueueCarriesOnWhereItWas) {
    enable(8);
    for (uint16_t head = 0; head < 3; ++head) {
        offer_and_pop(head, 16);
        push(head, 4);
    }
    EXPECT_TRUE(interrupt());
    VirtqueuePosition saved = queue_.position();
    EXPECT_EQ(saved, (VirtqueuePosition{3, 3, 3}));

    Virtqueue restored(dma_);
    auto r = restored.restore(driver_.config(), saved);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(restored.position(), saved);
    driver_.descriptor(3, kBuffers + 0x300, 16, kDescriptorWrite);
    driver_.make_available(3);
    auto popped = restored.pop(chain_);
    ASSERT_TRUE(popped && *popped);
    EXPECT_EQ(chain_.head(), 3);
    ASSERT_TRUE(restored.push_used(3, 4));
    EXPECT_EQ(driver_.used_idx(), 4);
    EXPECT_EQ(driver_.used(3).id, 3u);
}

TEST_F(VirtqueueTest, ARestoreRefusesChainsInFlightAndBadRings) {
    Virtqueue restored(dma_);
    auto in_flight = restored.restore(driver_.config(), {.next_avail = 5, .used_idx = 3, .signalled_used = 3});
    ASSERT_FALSE(in_flight);
    EXPECT_NE(in_flight.error().message.find("2 chains are in flight"), std::string::npos) << in_flight.error().message;
    VirtqueueConfig outside = driver_.config();
    outside.used_ring = kRamSize - 8;
    auto bad = restored.restore(outside, {});
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("used ring"), std::string::npos) << bad.error().message;
    EXPECT_FALSE(restored.enabled());
}

}  // namespace
}  // namespace strata
