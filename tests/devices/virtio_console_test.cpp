#include "devices/virtio/virtio_console.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "base/bytes.hpp"
#include "devices/virtio/virtio_pci.hpp"
#include "fakes.hpp"

namespace strata {
namespace {

using namespace std::chrono_literals;

class NullMsi final : public MsiController {
public:
    void send(uint64_t, uint32_t) override {}
};

template <class Predicate>
bool eventually(Predicate done) {
    for (auto until = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < until;) {
        if (done()) return true;
        std::this_thread::sleep_for(1ms);
    }
    return done();
}

std::span<const uint8_t> bytes_of(std::string_view text) {
    return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

// A guest driver of virtio-console over virtio-pci, as small as the tests need: both queues of
// 8 entries (receiveq at 0x10000, transmitq at 0x20000: descriptors, then avail and used rings
// 0x1000 apart), chains of buffers from 0x40000 on.
struct VirtioConsoleTest : ::testing::Test {
    static constexpr uint16_t kQueueSize = 8;
    struct Buffer {
        std::string_view bytes;  // transmit: the contents; receive: only the length counts
        bool writable;
    };

    GuestMemory memory = *GuestMemory::create(1 << 20);
    GuestDma dma{memory};
    NullMsi msi;
    testing::FakeIrqLine intx;
    // What the device's loop reaches: declared before the device, so they outlive it.
    std::mutex output_mutex;
    std::string output;
    std::atomic<int> room_calls{0};
    std::shared_ptr<VirtioPci> pci;
    VirtioConsole* console = nullptr;
    std::shared_ptr<BusDevice> bar;
    uint16_t next_desc[2]{}, avail_idx[2]{};
    uint64_t next_buffer = 0x40000;

    void SetUp() override { create(VirtioConsole::kInputLimit); }

    void create(size_t input_limit) {
        pci.reset();
        auto device = std::make_unique<VirtioConsole>(
            [this](std::span<const uint8_t> bytes) {
                std::lock_guard lock(output_mutex);
                output.append(bytes.begin(), bytes.end());
            },
            VirtioConsole::Size{.cols = 132, .rows = 43}, input_limit);
        console = device.get();
        console->set_room_notifier([this] { ++room_calls; });
        pci = *VirtioPci::create(std::move(device), dma, msi);
        pci->connect_intx(intx);
        bar = pci->bar_device(VirtioPci::kBar);
    }
    std::string written() {
        std::lock_guard lock(output_mutex);
        return output;
    }

    uint64_t read(uint64_t offset, size_t width) {
        std::array<uint8_t, 8> bytes{};
        bar->read(offset, std::span(bytes).first(width));
        return load_le(std::span(bytes).first(width));
    }
    void write(uint64_t offset, uint64_t value, size_t width) {
        std::array<uint8_t, 8> bytes{};
        store_le(std::span(bytes).first(width), value);
        bar->write(offset, std::span<const uint8_t>(bytes).first(width));
    }
    void status(uint8_t value) { write(0x14, value, 1); }
    uint8_t status() { return static_cast<uint8_t>(read(0x14, 1)); }
    static uint64_t ring(unsigned queue) { return 0x10000 * (queue + 1); }

    // Feature negotiation and both queues, up to DRIVER_OK when `ready`.
    void start(bool ready = true) {
        status(1 | 2);
        write(0x08, 1, 4);
        write(0x0c, 1, 4);  // VERSION_1; no device features needed
        status(1 | 2 | 8);
        for (unsigned q = 0; q < 2; ++q) {
            next_desc[q] = avail_idx[q] = 0;
            std::vector<uint8_t> zeros(0x3000);  // fresh rings, as a driver allocates them
            ASSERT_TRUE(memory.write(ring(q), zeros));
            write(0x16, q, 2);
            write(0x18, kQueueSize, 2);
            write(0x20, ring(q), 8);
            write(0x28, ring(q) + 0x1000, 8);
            write(0x30, ring(q) + 0x2000, 8);
            write(0x1c, 1, 2);
        }
        if (ready) {
            status(1 | 2 | 8 | 4);
            greet();
        }
    }
    // The driver's first output, after which the device delivers input; then nothing written.
    void greet() {
        uint16_t used = used_idx(1);
        offer(1, {{">", false}});
        ASSERT_TRUE(eventually([&] { return used_idx(1) == used + 1; }));
        std::lock_guard lock(output_mutex);
        output.clear();
    }
    // Makes a chain of `buffers` available on `queue` and notifies it; returns the buffers' addresses.
    std::vector<uint64_t> offer(unsigned queue, std::vector<Buffer> buffers, bool notify = true) {
        std::vector<uint64_t> addresses;
        uint16_t head = next_desc[queue] % kQueueSize;
        for (size_t i = 0; i < buffers.size(); ++i) {
            uint16_t index = next_desc[queue]++ % kQueueSize;
            uint64_t gpa = next_buffer;
            next_buffer += 0x100;
            EXPECT_TRUE(memory.write(gpa, bytes_of(buffers[i].bytes)));
            std::array<uint8_t, 16> desc{};
            store_le(std::span(desc).subspan(0, 8), gpa);
            store_le(std::span(desc).subspan(8, 4), buffers[i].bytes.size());
            bool more = i + 1 < buffers.size();
            store_le(std::span(desc).subspan(12, 2), (more ? 1 : 0) | (buffers[i].writable ? 2 : 0));
            store_le(std::span(desc).subspan(14, 2), next_desc[queue] % kQueueSize);
            EXPECT_TRUE(memory.write(ring(queue) + 16 * index, desc));
            addresses.push_back(gpa);
        }
        EXPECT_TRUE(memory.write_obj<uint16_t>(ring(queue) + 0x1000 + 4 + 2 * (avail_idx[queue] % kQueueSize), head));
        EXPECT_TRUE(memory.write_obj<uint16_t>(ring(queue) + 0x1000 + 2, ++avail_idx[queue]));
        if (notify) write(VirtioPci::kNotifyOffset + 4 * queue, queue, 2);
        return addresses;
    }
    uint64_t offer_receive(size_t length) { return offer(0, {{std::string(length, '\0'), true}})[0]; }
    uint16_t used_idx(unsigned queue) { return *memory.read_obj<uint16_t>(ring(queue) + 0x2000 + 2); }
    uint32_t used_length(unsigned queue, uint16_t n) {
        return *memory.read_obj<uint32_t>(ring(queue) + 0x2000 + 4 + 8 * (n % kQueueSize) + 4);
    }
    std::string guest_bytes(uint64_t gpa, size_t length) {
        std::string text(length, '\0');
        EXPECT_TRUE(memory.read(gpa, std::span(reinterpret_cast<uint8_t*>(text.data()), length)));
        return text;
    }
    bool needs_reset() { return (status() & 64) != 0; }
};

TEST_F(VirtioConsoleTest, PresentsAConsoleWithTheTerminalSize) {
    std::array<uint8_t, 4> id{};
    pci->config_read(0, id);
    EXPECT_EQ(load_le(std::span(id)), 0x1043'1af4u) << "0x1040 + device type 3";
    EXPECT_EQ(read(0x12, 2), 2u) << "receiveq and transmitq";
    write(0x00, 0, 4);
    EXPECT_EQ(read(0x04, 4) & 0xff'ffff, 1u) << "VIRTIO_CONSOLE_F_SIZE only";
    EXPECT_EQ(read(VirtioPci::kDeviceOffset, 2), 132u) << "cols";
    EXPECT_EQ(read(VirtioPci::kDeviceOffset + 2, 2), 43u) << "rows";
    EXPECT_EQ(read(VirtioPci::kDeviceOffset + 4, 4), 0u) << "max_nr_ports: no MULTIPORT";
}

TEST_F(VirtioConsoleTest, OutputReachesTheCallbackInOrderAcrossBuffersAndChains) {
    start();
    offer(1, {{"hello ", false}});
    offer(1, {{"wo", false}, {"r", false}, {"ld", false}});
    ASSERT_TRUE(eventually([&] { return used_idx(1) == 3; }));
    offer(1, {{"!", false}}, false);
    offer(1, {{"\n", false}});
    ASSERT_TRUE(eventually([&] { return used_idx(1) == 5; }));
    EXPECT_EQ(written(), "hello world!\n");
    for (uint16_t n = 0; n < 5; ++n) EXPECT_EQ(used_length(1, n), 0u) << "transmit buffers come back empty";
    EXPECT_FALSE(needs_reset());
}

TEST_F(VirtioConsoleTest, InputFillsThePostedBuffersInOrder) {
    start();
    uint64_t first = offer_receive(4), second = offer_receive(4);
    EXPECT_EQ(console->receive(bytes_of("abcdefghij")), 10u);
    ASSERT_TRUE(eventually([&] { return used_idx(0) == 2; }));
    EXPECT_EQ(guest_bytes(first, 4), "abcd");
    EXPECT_EQ(guest_bytes(second, 4), "efgh");
    EXPECT_EQ(used_length(0, 0), 4u);
    EXPECT_EQ(used_length(0, 1), 4u);
    // The rest waits for the next buffer, and fills only what it needs of it.
    uint64_t third = offer_receive(8);
    ASSERT_TRUE(eventually([&] { return used_idx(0) == 3; }));
    EXPECT_EQ(used_length(0, 2), 2u);
    EXPECT_EQ(guest_bytes(third, 2), "ij");
    EXPECT_EQ(room_calls, 0) << "nothing was refused";
}

TEST_F(VirtioConsoleTest, InputBeyondTheLimitIsRefusedUntilTheGuestHasTakenIt) {
    create(16);
    start();
    std::string input = "0123456789abcdefXYZW";
    EXPECT_EQ(console->receive(bytes_of(input)), 16u) << "no buffer posted: only what the device holds";
    EXPECT_EQ(console->receive(bytes_of(input).subspan(16)), 0u);
    std::this_thread::sleep_for(10ms);
    EXPECT_EQ(room_calls, 0);
    uint64_t first = offer_receive(10);
    ASSERT_TRUE(eventually([&] { return room_calls == 1; })) << "drained to half: room again";
    EXPECT_EQ(guest_bytes(first, 10), "0123456789");
    EXPECT_EQ(console->receive(bytes_of(input).subspan(16)), 4u);
    uint64_t second = offer_receive(16);
    ASSERT_TRUE(eventually([&] { return used_idx(0) == 2; }));
    EXPECT_EQ(used_length(0, 1), 10u);
    EXPECT_EQ(guest_bytes(second, 10), "abcdefXYZW") << "nothing lost, nothing reordered";
    EXPECT_EQ(room_calls, 1);
}

TEST_F(VirtioConsoleTest, InputBeforeDriverOkIsDeliveredAfterIt) {
    EXPECT_EQ(console->receive(bytes_of("early ")), 6u) << "before the driver is even there";
    start(false);
    EXPECT_EQ(console->receive(bytes_of("input")), 5u);
    uint64_t buffer = offer_receive(32);
    std::this_thread::sleep_for(10ms);
    EXPECT_EQ(used_idx(0), 0) << "nothing consumed before DRIVER_OK";
    status(1 | 2 | 8 | 4);
    std::this_thread::sleep_for(10ms);
    EXPECT_EQ(used_idx(0), 0) << "held until the driver's first output: its port is connected";
    greet();
    ASSERT_TRUE(eventually([&] { return used_idx(0) == 1; }));
    EXPECT_EQ(used_length(0, 0), 11u);
    EXPECT_EQ(guest_bytes(buffer, 11), "early input");
}

TEST_F(VirtioConsoleTest, AReadableBufferOnReceiveqNeedsAReset) {
    start();
    offer(0, {{"out", false}, {"in..", true}});
    EXPECT_EQ(console->receive(bytes_of("x")), 1u);
    ASSERT_TRUE(eventually([&] { return needs_reset(); }));
    EXPECT_EQ(used_idx(0), 0);
}

TEST_F(VirtioConsoleTest, AWritableBufferOnTransmitqNeedsAReset) {
    start();
    offer(1, {{"text", false}, {"....", true}});
    ASSERT_TRUE(eventually([&] { return needs_reset(); }));
    EXPECT_EQ(used_idx(1), 1) << "only the greeting";
    offer(1, {{"more", false}});
    std::this_thread::sleep_for(10ms);
    EXPECT_EQ(written(), "") << "a failed device does nothing more";
}

TEST_F(VirtioConsoleTest, AResetKeepsTheInputTheGuestHasNotHad) {
    start();
    EXPECT_EQ(console->receive(bytes_of("kept")), 4u);
    std::this_thread::sleep_for(10ms);
    status(0);
    EXPECT_EQ(status(), 0u);
    EXPECT_EQ(read(0x20, 8), 0u) << "queue state gone";
    start();
    uint64_t buffer = offer_receive(8);
    ASSERT_TRUE(eventually([&] { return used_idx(0) == 1; }));
    EXPECT_EQ(guest_bytes(buffer, 4), "kept");
    offer(1, {{"after reset", false}});
    ASSERT_TRUE(eventually([&] { return written() == "after reset"; }));
}

TEST_F(VirtioConsoleTest, AFailedDeviceWorksAgainAfterAReset) {
    start();
    offer(1, {{"....", true}});
    ASSERT_TRUE(eventually([&] { return needs_reset(); }));
    status(0);
    start();
    EXPECT_FALSE(needs_reset());
    offer(1, {{"back", false}});
    ASSERT_TRUE(eventually([&] { return written() == "back"; }));
}

// Input the guest has not been given yet is the device's, not the ring's: it is in a snapshot, and
// a restored console holds it for the guest; more than its limit is refused.
TEST(VirtioConsoleState, UndeliveredInputIsKeptInASnapshot) {
    VirtioConsole original(VirtioConsole::Output{});
    const std::string typed = "ls /mnt\n";
    ASSERT_EQ(original.receive(std::span(reinterpret_cast<const uint8_t*>(typed.data()), typed.size())), typed.size());
    StateWriter saved;
    original.save_state(saved);

    VirtioConsole restored(VirtioConsole::Output{});
    StateReader in(saved.view(), "virtio-console");
    auto change = restored.load_state(in);
    ASSERT_TRUE(in.finish());
    change();
    StateWriter again;
    restored.save_state(again);
    EXPECT_TRUE(std::ranges::equal(again.view(), saved.view()));

    VirtioConsole small(VirtioConsole::Output{}, {}, 4);
    StateReader too_much(saved.view(), "virtio-console");
    (void)small.load_state(too_much);
    auto refused = too_much.finish();
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("input not yet delivered"), std::string::npos) << refused.error().message;
}

}  // namespace
}  // namespace strata
