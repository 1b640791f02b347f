#include "devices/virtio/virtio_net.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <mutex>
#include <numeric>
#include <vector>

#include "base/bytes.hpp"
#include "devices/virtio/virtio_pci.hpp"
#include "fakes.hpp"
#include "virtio_driver_support.hpp"

namespace strata {
namespace {

using testing::DriverQueue;
using testing::eventually;
using Buffer = DriverQueue::Buffer;
using Bytes = std::vector<uint8_t>;

// A back end that records what the guest sends and hands the device frames the test gives it.
class FakeBackend final : public NetBackend {
public:
    FakeBackend(uint16_t mtu, bool checksums_verified) : mtu_(mtu), checksums_verified_(checksums_verified) {}
    std::string_view name() const override { return "fake"; }
    uint16_t mtu() const override { return mtu_; }
    bool checksums_verified() const override { return checksums_verified_; }
    Result<void> start(EventLoop& loop, Receiver& receiver) override {
        std::lock_guard lock(mutex_);
        loop_ = &loop;
        receiver_ = &receiver;
        ++starts_;
        return {};
    }
    void stop() override {
        std::lock_guard lock(mutex_);
        receiver_ = nullptr;
        ++stops_;
    }
    bool send(std::span<const uint8_t> frame) override {
        std::lock_guard lock(mutex_);
        sent_.emplace_back(frame.begin(), frame.end());
        return !refuse_;
    }
    void receive_ready() override {
        std::lock_guard lock(mutex_);
        ++ready_calls_;
    }

    // Gives the device `frame` on its loop and returns once it has taken it; false when stopped.
    bool inject(const Bytes& frame) {
        return with_receiver([&](Receiver& receiver) { receiver.receive(frame); });
    }
    bool can_receive() {
        bool can = false;
        with_receiver([&](Receiver& receiver) { can = receiver.can_receive(); });
        return can;
    }
    std::vector<Bytes> sent() {
        std::lock_guard lock(mutex_);
        return sent_;
    }
    int starts() {
        std::lock_guard lock(mutex_);
        return starts_;
    }
    int stops() {
        std::lock_guard lock(mutex_);
        return stops_;
    }
    int ready_calls() {
        std::lock_guard lock(mutex_);
        return ready_calls_;
    }
    void refuse(bool refuse) {
        std::lock_guard lock(mutex_);
        refuse_ = refuse;
    }

private:
    // Runs `task` with the receiver on the device's loop, while started.
    bool with_receiver(const std::function<void(Receiver&)>& task) {
        EventLoop* loop;
        {
            std::lock_guard lock(mutex_);
            if (!receiver_) return false;
            loop = loop_;
        }
        bool ran = false;
        loop->run_sync([&] {
            std::lock_guard lock(mutex_);
            if (!receiver_) return;
            task(*receiver_);
            ran = true;
        });
        return ran;
    }

    // Held around the receiver's calls on the loop, which may call send() back (as slirp does).
    std::recursive_mutex mutex_;
    uint16_t mtu_;
    bool checksums_verified_;
    EventLoop* loop_ = nullptr;
    Receiver* receiver_ = nullptr;
    std::vector<Bytes> sent_;
    int starts_ = 0, stops_ = 0, ready_calls_ = 0;
    bool refuse_ = false;
};

// A frame of `length` bytes: broadcast destination, the default MAC as the source, then `seed`.
Bytes frame_of(size_t length, uint8_t seed) {
    Bytes frame(length);
    std::iota(frame.begin(), frame.end(), seed);
    std::fill_n(frame.begin(), 6, 0xff);
    std::copy(VirtioNet::kDefaultMac.begin(), VirtioNet::kDefaultMac.end(), frame.begin() + 6);
    return frame;
}

Bytes header(uint8_t flags = 0, uint8_t gso_type = 0, uint16_t csum_start = 0, uint16_t csum_offset = 0) {
    Bytes bytes(VirtioNet::kHeaderSize);
    bytes[0] = flags;
    bytes[1] = gso_type;
    store_le(std::span(bytes).subspan(6, 2), csum_start);
    store_le(std::span(bytes).subspan(8, 2), csum_offset);
    return bytes;
}

constexpr uint64_t feature(unsigned bit) { return uint64_t{1} << bit; }

// A driver of virtio-net over virtio-pci: receiveq and transmitq of 256 entries each, receive
// buffers 2 KiB apart from kReceiveBuffers, transmit data laid out from kTransmitData on.
struct VirtioNetTest : ::testing::Test {
    static constexpr uint64_t kRxRing = 0x10000, kTxRing = 0x20000;
    static constexpr uint64_t kReceiveBuffers = 0x100000, kTransmitData = 0x400000;
    static constexpr uint16_t kQueueSize = 256;
    static constexpr uint64_t kFeatures = feature(32) | feature(VirtioNet::kFeatureMac) |
                                          feature(VirtioNet::kFeatureStatus) | feature(VirtioNet::kFeatureCsum);

    GuestMemory memory = *GuestMemory::create(16 << 20);
    GuestDma dma{memory};
    testing::RecordingMsi msi;
    testing::FakeIrqLine intx;
    FakeBackend* backend = nullptr;
    std::shared_ptr<VirtioPci> pci;
    std::unique_ptr<testing::VirtioPciDriver> driver;
    std::unique_ptr<DriverQueue> rx, tx;
    uint64_t next_data = kTransmitData;
    unsigned rx_buffers = 0;

    void SetUp() override { build(); }
    // The device over a back end with no MTU of its own and frames the guest must check (a TAP's),
    // or over one like slirp's: an MTU and frames whose checksums need no check.
    void build(uint16_t mtu = 0, bool checksums_verified = false, uint64_t features = kFeatures) {
        pci.reset();
        auto fake = std::make_unique<FakeBackend>(mtu, checksums_verified);
        backend = fake.get();
        pci = *VirtioPci::create(std::make_unique<VirtioNet>(std::move(fake)), dma, msi);
        pci->connect_intx(intx);
        driver = std::make_unique<testing::VirtioPciDriver>(*pci);
        start_driver(features);
    }
    void TearDown() override { pci.reset(); }

    // Fresh rings (zeroed, as a driver allocates them), the features, both queues, DRIVER_OK.
    void start_driver(uint64_t features = kFeatures) {
        ASSERT_TRUE(memory.write(kRxRing, Bytes(0x20000, 0)));
        driver->negotiate(features);
        ASSERT_TRUE(driver->status() & 8);
        driver->setup_queue(0, kQueueSize, kRxRing, kRxRing + 0x1000, kRxRing + 0x2000);
        driver->setup_queue(1, kQueueSize, kTxRing, kTxRing + 0x1000, kTxRing + 0x2000);
        rx = std::make_unique<DriverQueue>(memory, kQueueSize, kRxRing, kRxRing + 0x1000, kRxRing + 0x2000);
        tx = std::make_unique<DriverQueue>(memory, kQueueSize, kTxRing, kTxRing + 0x1000, kTxRing + 0x2000);
        rx_buffers = 0;
        int starts = backend->starts();
        driver->driver_ok();
        ASSERT_TRUE(eventually([&] { return backend->starts() > starts; })) << "DRIVER_OK starts the back end";
    }
    VirtioNet& net() { return static_cast<VirtioNet&>(pci->device()); }
    bool needs_reset() { return (driver->status() & 64) != 0; }

    // Guest memory holding `bytes`, for a transmit buffer.
    Buffer data(const Bytes& bytes) {
        Buffer buffer{next_data, static_cast<uint32_t>(bytes.size()), false};
        EXPECT_TRUE(memory.write(next_data, bytes));
        next_data += (bytes.size() + 0xfff) & ~uint64_t{0xfff};
        return buffer;
    }
    // Sends a chain and waits until the device has returned it.
    void transmit(std::vector<Buffer> chain) {
        uint16_t used = tx->used_idx();
        tx->offer(chain);
        driver->notify(1);
        ASSERT_TRUE(eventually([&] { return tx->used_idx() == static_cast<uint16_t>(used + 1); }));
    }
    // Makes `count` receive buffers of `length` bytes available (notifying when asked).
    void offer_receive_buffers(unsigned count, uint32_t length = 1526, bool notify = true) {
        for (unsigned i = 0; i < count; ++i) {
            Buffer buffer{kReceiveBuffers + 0x800 * uint64_t{rx_buffers++ % kQueueSize}, length, true};
            rx->offer(std::span(&buffer, 1));
        }
        if (notify) driver->notify(0);
    }
    // What receive buffer `n` (in the order offered) holds: the header and the frame after it.
    Bytes received(unsigned n, size_t length) {
        Bytes bytes(length);
        EXPECT_TRUE(memory.read(kReceiveBuffers + 0x800 * uint64_t{n % kQueueSize}, bytes));
        return bytes;
    }
};

TEST_F(VirtioNetTest, OffersItsFeaturesAndConfiguration) {
    EXPECT_EQ(driver->config(0x00, 4), 0x1041'1af4u) << "0x1040 + device type 1";
    EXPECT_EQ(driver->config(0x08, 4) >> 8, 0x02'00'00u) << "network controller, Ethernet";
    uint64_t features = driver->device_features();
    EXPECT_EQ(features & kFeatures, kFeatures);
    EXPECT_TRUE(features & feature(15)) << "MRG_RXBUF";
    EXPECT_FALSE(features & feature(1)) << "no GUEST_CSUM: the back end's frames are the guest's to check";
    EXPECT_FALSE(features & feature(3)) << "no MTU: the back end has none to give";
    EXPECT_FALSE(features & feature(11)) << "no HOST_TSO4";
    for (unsigned i = 0; i < 6; ++i) EXPECT_EQ(driver->device_config(i, 1), VirtioNet::kDefaultMac[i]) << i;
    EXPECT_EQ(driver->device_config(6, 2), 1u) << "LINK_UP";
    EXPECT_EQ(driver->device_config(10, 2), 0u) << "mtu reads 0 without the feature";
    EXPECT_EQ(driver->read(0x12, 2), 2u) << "receiveq and transmitq";
}

// With MRG_RXBUF a frame larger than one receive buffer is spread over as many as it needs, in
// the order the driver made them available; the first buffer's header says how many, and the
// driver sees them all at once (one used idx update). Buffers taken beyond the frame's need stay
// for the next frame; a snapshot's quiesce gives back every buffer held.
TEST_F(VirtioNetTest, MergeableBuffersTakeAFrameLargerThanOne) {
    build(65520, true, kFeatures | feature(VirtioNet::kFeatureMrgRxbuf));
    // Four 1000-byte buffers: a 2500-byte frame and its header take three.
    offer_receive_buffers(4, 1000);
    Bytes frame = frame_of(2500, 7);
    ASSERT_TRUE(backend->inject(frame));
    ASSERT_EQ(rx->used_idx(), 3u) << "three buffers, published together";
    EXPECT_EQ(rx->used(0), (std::pair<uint32_t, uint32_t>{0, 1000}));
    EXPECT_EQ(rx->used(1), (std::pair<uint32_t, uint32_t>{1, 1000}));
    EXPECT_EQ(rx->used(2), (std::pair<uint32_t, uint32_t>{2, 512}));
    Bytes got;
    for (unsigned i = 0; i < 3; ++i) {
        Bytes part = received(i, i < 2 ? 1000 : 512);
        got.insert(got.end(), part.begin(), part.end());
    }
    EXPECT_EQ(load_le(std::span<const uint8_t>(got).subspan(10, 2)), 3u) << "num_buffers";
    EXPECT_EQ(Bytes(got.begin() + 12, got.end()), frame);

    // The fourth buffer alone cannot take 1500 bytes: it is held, and the frame waits for more.
    Bytes second = frame_of(1500, 8);
    ASSERT_TRUE(backend->inject(second));
    EXPECT_EQ(rx->used_idx(), 3u) << "nothing published while the frame does not fit";
    offer_receive_buffers(1, 1000);
    ASSERT_TRUE(eventually([&] { return rx->used_idx() == 5u; }));
    EXPECT_EQ(rx->used(3), (std::pair<uint32_t, uint32_t>{3, 1000}));
    EXPECT_EQ(rx->used(4), (std::pair<uint32_t, uint32_t>{4, 512}));
    EXPECT_EQ(load_le(std::span<const uint8_t>(received(3, 12)).subspan(10, 2)), 2u);
    Bytes tail = received(4, 512);
    EXPECT_EQ(Bytes(tail.begin(), tail.end()), Bytes(second.begin() + 988, second.end()));
    EXPECT_EQ(net().counters().rx_frames.load(), 2u);

    // Two buffers held for a frame that waits are both given back at a snapshot (a device that
    // could not give them back would need a reset), and taken again afterwards.
    offer_receive_buffers(2, 100);
    Bytes third = frame_of(1500, 9);
    ASSERT_TRUE(backend->inject(third));
    pci->quiesce(true);
    pci->quiesce(false);
    EXPECT_FALSE(needs_reset());
    offer_receive_buffers(1, 1500);
    ASSERT_TRUE(eventually([&] { return rx->used_idx() == 8u; }));
    EXPECT_EQ(rx->used(5), (std::pair<uint32_t, uint32_t>{5, 100}));
    EXPECT_EQ(rx->used(6), (std::pair<uint32_t, uint32_t>{6, 100}));
    EXPECT_EQ(rx->used(7), (std::pair<uint32_t, uint32_t>{7, 12 + 1500 - 200}));
    EXPECT_FALSE(needs_reset());
}

// A back end like slirp's: its MTU goes to the guest, and with GUEST_CSUM negotiated every frame
// it gives is marked DATA_VALID so that the guest's stack skips checking its checksums.
TEST_F(VirtioNetTest, AnMtuAndVerifiedChecksumsFromTheBackEndReachTheGuest) {
    constexpr uint64_t kGuestCsum = feature(VirtioNet::kFeatureGuestCsum), kMtu = feature(VirtioNet::kFeatureMtu);
    build(65520, true, kFeatures | kGuestCsum | kMtu);
    EXPECT_EQ(driver->device_features() & (kGuestCsum | kMtu), kGuestCsum | kMtu);
    EXPECT_EQ(driver->device_config(10, 2), 65520u);
    EXPECT_EQ(driver->device_config(6, 4), 1u) << "status, then max_virtqueue_pairs 0 (no MQ)";

    // The largest frame of that MTU, in one buffer that takes it and its header exactly.
    Bytes frame = frame_of(14 + 65520, 3);
    Buffer buffer{kReceiveBuffers, 12 + 14 + 65520, true};
    rx->offer(std::span(&buffer, 1));
    driver->notify(0);
    ASSERT_TRUE(backend->inject(frame));
    ASSERT_EQ(rx->used_idx(), 1u);
    EXPECT_EQ(rx->used(0).second, 12u + 14 + 65520);
    Bytes got(12 + frame.size());
    ASSERT_TRUE(memory.read(kReceiveBuffers, got));
    EXPECT_EQ(got[0], VirtioNet::kHeaderDataValid) << "flags: DATA_VALID";
    EXPECT_EQ(load_le(std::span<const uint8_t>(got).subspan(10, 2)), 1u) << "num_buffers";
    EXPECT_EQ(Bytes(got.begin() + 12, got.end()), frame);

    // A driver that does not take GUEST_CSUM gets flags 0 (§5.1.6.4.1), from the same back end.
    build(65520, true, kFeatures | kMtu);
    offer_receive_buffers(1);
    Bytes small = frame_of(60, 9);
    ASSERT_TRUE(backend->inject(small));
    ASSERT_EQ(rx->used_idx(), 1u);
    EXPECT_EQ(received(0, 12)[0], 0u);
}

TEST_F(VirtioNetTest, TransmittedFramesReachTheBackEndWithoutTheHeader) {
    Bytes first = frame_of(60, 1), second = frame_of(1514, 2);
    transmit({data(header()), data(first)});
    // The header and the frame in one buffer, and a frame split over three.
    Bytes whole = header();
    whole.insert(whole.end(), second.begin(), second.end());
    transmit({data(Bytes(whole.begin(), whole.begin() + 20)), data(Bytes(whole.begin() + 20, whole.begin() + 700)),
              data(Bytes(whole.begin() + 700, whole.end()))});
    ASSERT_EQ(backend->sent().size(), 2u);
    EXPECT_EQ(backend->sent()[0], first);
    EXPECT_EQ(backend->sent()[1], second);
    EXPECT_EQ(tx->used(0).second, 0u) << "nothing written into transmit buffers";
    EXPECT_EQ(net().counters().tx_frames.load(), 2u);
    EXPECT_EQ(net().counters().tx_bytes.load(), 60u + 1514u);
    EXPECT_GE(intx.raises(), 1u);
}

// An IPv4/UDP frame whose checksum field holds the pseudo-header sum, as Linux leaves it with
// CSUM: the device must complete it.
TEST_F(VirtioNetTest, CompletesAPartialChecksum) {
    Bytes frame(14 + 20 + 8 + 5, 0);
    frame[12] = 0x08;  // IPv4
    const uint8_t ip[] = {0x45, 0, 0, 33, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 2, 15, 10, 0, 2, 2};
    std::copy(std::begin(ip), std::end(ip), frame.begin() + 14);
    const uint8_t udp[] = {0x30, 0x39, 0x00, 0x35, 0, 13, 0, 0, 'h', 'e', 'l', 'l', 'o'};
    std::copy(std::begin(udp), std::end(udp), frame.begin() + 34);
    // The pseudo-header: addresses, protocol 17, UDP length 13.
    auto sum_words = [](std::span<const uint8_t> bytes, uint64_t sum) {
        for (size_t i = 0; i < bytes.size(); i += 2)
            sum += uint64_t{bytes[i]} << 8 | (i + 1 < bytes.size() ? bytes[i + 1] : 0);
        return sum;
    };
    uint64_t pseudo = sum_words(std::span<const uint8_t>(frame).subspan(26, 8), 17 + 13);
    while (pseudo >> 16) pseudo = (pseudo & 0xffff) + (pseudo >> 16);
    frame[40] = static_cast<uint8_t>(pseudo >> 8);
    frame[41] = static_cast<uint8_t>(pseudo);
    transmit({data(header(VirtioNet::kHeaderNeedsCsum, 0, 34, 6)), data(frame)});
    ASSERT_EQ(backend->sent().size(), 1u);
    Bytes out = backend->sent()[0];
    // Verifying: the UDP segment with its checksum, plus the pseudo-header, sums to 0xffff.
    uint64_t check = sum_words(std::span<const uint8_t>(out).subspan(34), 17 + 13);
    check = sum_words(std::span<const uint8_t>(out).subspan(26, 8), check);
    while (check >> 16) check = (check & 0xffff) + (check >> 16);
    EXPECT_EQ(check, 0xffffu);
    EXPECT_NE(out[40] | out[41], 0) << "UDP's 0 means no checksum";
    EXPECT_TRUE(std::equal(out.begin(), out.begin() + 40, frame.begin())) << "only the checksum changes";
}

TEST_F(VirtioNetTest, MalformedTransmitChainsAreDroppedWithoutAReset) {
    Bytes frame = frame_of(64, 3);
    Bytes with_header = header();
    with_header.insert(with_header.end(), frame.begin(), frame.end());
    transmit({data(Bytes(10, 0))});                                                   // short header
    transmit({data(header()), data(Bytes(13, 0))});                                   // no Ethernet header
    transmit({data(header(0, 1)), data(frame)});                                      // TCPV4 segmentation
    transmit({data(header(VirtioNet::kHeaderNeedsCsum, 0, 60, 3)), data(frame)});     // checksum past the end
    transmit({data(header(VirtioNet::kHeaderNeedsCsum, 0, 70, 0)), data(frame)});     // start past the end
    transmit({data(with_header), {kReceiveBuffers, 64, true}});                       // a writable buffer
    Bytes huge(VirtioNet::kMaxChainBytes + 1 - VirtioNet::kHeaderSize, 0);
    transmit({data(header()), data(huge)});                                           // 65563 bytes
    EXPECT_TRUE(backend->sent().empty());
    EXPECT_EQ(net().counters().tx_malformed.load(), 7u);
    EXPECT_FALSE(needs_reset());
    // The largest chain allowed goes, and so does the next ordinary one.
    huge.pop_back();
    transmit({data(header()), data(huge)});
    transmit({data(with_header)});
    ASSERT_EQ(backend->sent().size(), 2u);
    EXPECT_EQ(backend->sent()[0].size(), kMaxFrameSize);
    EXPECT_EQ(backend->sent()[1], frame);
}

TEST_F(VirtioNetTest, ChecksumWithoutCsumNegotiatedIsRefused) {
    driver->status(0);
    start_driver(kFeatures & ~feature(VirtioNet::kFeatureCsum));
    transmit({data(header(VirtioNet::kHeaderNeedsCsum, 0, 14, 2)), data(frame_of(64, 4))});
    EXPECT_TRUE(backend->sent().empty());
    EXPECT_EQ(net().counters().tx_malformed.load(), 1u);
}

TEST_F(VirtioNetTest, FramesTheBackEndDropsAreCounted) {
    backend->refuse(true);
    transmit({data(header()), data(frame_of(64, 5))});
    EXPECT_EQ(net().counters().tx_dropped.load(), 1u);
    EXPECT_EQ(net().counters().tx_frames.load(), 0u);
}

TEST_F(VirtioNetTest, AReceivedFrameLandsInAGuestBufferAfterItsHeader) {
    offer_receive_buffers(1);
    Bytes frame = frame_of(342, 6);
    size_t raised = intx.raises();
    ASSERT_TRUE(backend->inject(frame));
    ASSERT_EQ(rx->used_idx(), 1u);
    EXPECT_EQ(rx->used(0), (std::pair<uint32_t, uint32_t>{0, 12 + 342}));
    Bytes got = received(0, 12 + 342);
    Bytes expected_header(12, 0);
    expected_header[10] = 1;  // num_buffers
    EXPECT_EQ(Bytes(got.begin(), got.begin() + 12), expected_header);
    EXPECT_EQ(Bytes(got.begin() + 12, got.end()), frame);
    EXPECT_GT(intx.raises(), raised);
    EXPECT_EQ(net().counters().rx_frames.load(), 1u);
    EXPECT_EQ(net().counters().rx_bytes.load(), 342u);
}

TEST_F(VirtioNetTest, FramesWaitForBuffersAndArriveInOrder) {
    for (uint8_t i = 0; i < 3; ++i) ASSERT_TRUE(backend->inject(frame_of(100 + i, i)));
    EXPECT_EQ(rx->used_idx(), 0u);
    EXPECT_FALSE(backend->can_receive()) << "frames are waiting";
    int ready = backend->ready_calls();
    offer_receive_buffers(2);
    ASSERT_TRUE(eventually([&] { return rx->used_idx() == 2; }));
    EXPECT_FALSE(backend->can_receive());
    // One more comes meanwhile: it goes behind the one still waiting.
    ASSERT_TRUE(backend->inject(frame_of(200, 9)));
    offer_receive_buffers(2);
    ASSERT_TRUE(eventually([&] { return rx->used_idx() == 4; }));
    for (unsigned n = 0; n < 3; ++n) {
        EXPECT_EQ(rx->used(static_cast<uint16_t>(n)).second, 12 + 100 + n);
        EXPECT_EQ(received(n, 12 + 100 + n), [&] {
            Bytes expected(12, 0);
            expected[10] = 1;
            Bytes frame = frame_of(100 + n, static_cast<uint8_t>(n));
            expected.insert(expected.end(), frame.begin(), frame.end());
            return expected;
        }()) << n;
    }
    EXPECT_EQ(rx->used(3).second, 12u + 200u);
    EXPECT_TRUE(backend->can_receive());
    EXPECT_GT(backend->ready_calls(), ready) << "the back end is told it may go on";
    EXPECT_EQ(net().counters().rx_dropped.load(), 0u);
}

TEST_F(VirtioNetTest, TheBacklogIsBoundedAndWhatItCannotHoldIsCounted) {
    for (unsigned i = 0; i < VirtioNet::kBacklogFrames + 10; ++i)
        ASSERT_TRUE(backend->inject(frame_of(60, static_cast<uint8_t>(i))));
    EXPECT_EQ(net().counters().rx_dropped.load(), 10u);
    offer_receive_buffers(kQueueSize, 128);
    ASSERT_TRUE(eventually([&] { return rx->used_idx() == VirtioNet::kBacklogFrames; }));
    EXPECT_EQ(received(VirtioNet::kBacklogFrames - 1, 12 + 60), [&] {
        Bytes expected(12, 0);
        expected[10] = 1;
        Bytes frame = frame_of(60, static_cast<uint8_t>(VirtioNet::kBacklogFrames - 1));
        expected.insert(expected.end(), frame.begin(), frame.end());
        return expected;
    }()) << "the last frame kept is the 256th";
}

TEST_F(VirtioNetTest, AFrameLargerThanTheBufferIsDroppedAndTheBufferKept) {
    offer_receive_buffers(1, 12 + 100);
    ASSERT_TRUE(backend->inject(frame_of(101, 1)));
    EXPECT_EQ(rx->used_idx(), 0u);
    EXPECT_EQ(net().counters().rx_too_large.load(), 1u);
    ASSERT_TRUE(backend->inject(frame_of(100, 2)));
    ASSERT_EQ(rx->used_idx(), 1u);
    EXPECT_EQ(rx->used(0).second, 112u);
}

TEST_F(VirtioNetTest, AReadableBufferOnTheReceiveQueueNeedsAReset) {
    Buffer readable{kReceiveBuffers, 1526, false};
    rx->offer(std::span(&readable, 1));
    driver->notify(0);
    ASSERT_TRUE(backend->inject(frame_of(60, 1)));
    EXPECT_TRUE(needs_reset());
    EXPECT_EQ(rx->used_idx(), 0u);
    EXPECT_FALSE(backend->can_receive());
    // A reset and a new start bring it back.
    driver->status(0);
    EXPECT_EQ(driver->status(), 0u);
    start_driver();
    offer_receive_buffers(1);
    ASSERT_TRUE(backend->inject(frame_of(60, 1)));
    EXPECT_EQ(rx->used_idx(), 1u);
}

TEST_F(VirtioNetTest, AMalformedRingNeedsAReset) {
    // A descriptor whose next index is past the table.
    std::array<uint8_t, 16> descriptor{};
    store_le(std::span(descriptor).subspan(0, 8), kTransmitData);
    store_le(std::span(descriptor).subspan(8, 4), 64);
    store_le(std::span(descriptor).subspan(12, 2), 1);  // NEXT
    store_le(std::span(descriptor).subspan(14, 2), 999);
    ASSERT_TRUE(memory.write(kTxRing, descriptor));
    ASSERT_TRUE(memory.write_obj<uint16_t>(kTxRing + 0x1000 + 4, 0));
    ASSERT_TRUE(memory.write_obj<uint16_t>(kTxRing + 0x1000 + 2, 1));
    driver->notify(1);
    EXPECT_TRUE(eventually([&] { return needs_reset(); }));
    EXPECT_TRUE(backend->sent().empty());
}

TEST_F(VirtioNetTest, AResetStopsTheBackEndAndForgetsWaitingFrames) {
    ASSERT_TRUE(backend->inject(frame_of(60, 1)));
    EXPECT_EQ(backend->starts(), 1);
    driver->status(0);
    EXPECT_EQ(backend->stops(), 1) << "stopped before the reset completes";
    EXPECT_FALSE(backend->inject(frame_of(60, 2))) << "no frames while reset";
    start_driver();
    EXPECT_EQ(backend->starts(), 2);
    offer_receive_buffers(1);
    ASSERT_TRUE(backend->inject(frame_of(70, 3)));
    ASSERT_EQ(rx->used_idx(), 1u);
    EXPECT_EQ(rx->used(0).second, 12u + 70u) << "the frame from before the reset is gone";
}

TEST_F(VirtioNetTest, TheBackEndStartsOnlyAtDriverOk) {
    pci.reset();
    auto fake = std::make_unique<FakeBackend>(0, false);
    backend = fake.get();
    pci = *VirtioPci::create(std::make_unique<VirtioNet>(std::move(fake), MacAddress{2, 0, 0, 0, 0, 7}), dma, msi);
    driver = std::make_unique<testing::VirtioPciDriver>(*pci);
    EXPECT_EQ(driver->device_config(5, 1), 7u);
    driver->negotiate(kFeatures);
    EXPECT_EQ(backend->starts(), 0);
    EXPECT_FALSE(backend->inject(frame_of(60, 1)));
    start_driver();
    EXPECT_EQ(backend->starts(), 1);
}

}  // namespace
}  // namespace strata
