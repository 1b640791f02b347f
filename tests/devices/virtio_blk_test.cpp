#include "devices/virtio/virtio_blk.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <set>
#include <string>
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

constexpr uint64_t kImageSize = 1 << 20;  // 2048 sectors
constexpr uint64_t kCapacity = kImageSize / 512;

// A temporary file of `size` bytes whose byte i is (i * 7 + i / 512) mod 251: every sector differs.
class TempImage {
public:
    explicit TempImage(uint64_t size, const char* name = "disk-0") {
        std::string dir = ::testing::TempDir();
        path_ = dir + "strata-blk-" + name + "-XXXXXX";
        int fd = ::mkstemp(path_.data());
        EXPECT_GE(fd, 0);
        std::vector<uint8_t> bytes(size);
        for (uint64_t i = 0; i < size; ++i) bytes[i] = pattern(i);
        EXPECT_EQ(::pwrite(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(size));
        ::close(fd);
    }
    ~TempImage() { ::unlink(path_.c_str()); }
    [[nodiscard]] const std::string& path() const { return path_; }
    static uint8_t pattern(uint64_t i) { return static_cast<uint8_t>((i * 7 + i / 512) % 251); }
    [[nodiscard]] std::vector<uint8_t> contents(uint64_t offset, size_t length) const {
        std::vector<uint8_t> bytes(length);
        int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
        EXPECT_EQ(::pread(fd, bytes.data(), length, static_cast<off_t>(offset)), static_cast<ssize_t>(length));
        ::close(fd);
        return bytes;
    }

private:
    std::string path_;
};

VirtioBlkOptions options(bool read_only, std::string serial) {
    VirtioBlkOptions result;
    result.read_only = read_only;
    result.serial = std::move(serial);
    return result;
}

// A driver of virtio-blk over virtio-pci: one queue of 256 entries, request n with its header at
// kHeaders + 16n, its status byte at kStatus + n and its data where the test says.
struct VirtioBlkTest : ::testing::TestWithParam<BlockBackendKind> {
    static constexpr uint64_t kDesc = 0x10000, kAvail = 0x11000, kUsed = 0x12000;
    static constexpr uint64_t kHeaders = 0x20000, kStatus = 0x30000, kData = 0x100000;
    static constexpr uint16_t kQueueSize = 256;

    TempImage image{kImageSize};
    GuestMemory memory = *GuestMemory::create(16 << 20);
    GuestDma dma{memory};
    testing::RecordingMsi msi;
    testing::FakeIrqLine intx;
    std::shared_ptr<VirtioPci> pci;
    std::unique_ptr<testing::VirtioPciDriver> driver;
    std::unique_ptr<DriverQueue> ring;
    uint16_t next_request = 0;

    void SetUp() override { start_device({}); }

    void start_device(VirtioBlkOptions options) {
        options.backend = GetParam();
        auto blk = VirtioBlk::open(image.path(), options);
        ASSERT_TRUE(blk) << blk.error().message;
        pci = *VirtioPci::create(std::move(*blk), dma, msi);
        pci->connect_intx(intx);
        driver = std::make_unique<testing::VirtioPciDriver>(*pci);
        start_driver();
    }
    // As after a reset: fresh, zeroed rings (what Linux's driver allocates), then DRIVER_OK.
    void start_driver() {
        ASSERT_TRUE(memory.write(kDesc, std::vector<uint8_t>(kHeaders - kDesc, 0)));
        driver->negotiate(driver->device_features());
        ASSERT_TRUE(driver->status() & 8);
        driver->setup_queue(0, kQueueSize, kDesc, kAvail, kUsed);
        ring = std::make_unique<DriverQueue>(memory, kQueueSize, kDesc, kAvail, kUsed);
        next_request = 0;
        driver->driver_ok();
    }
    VirtioBlk& blk() { return static_cast<VirtioBlk&>(pci->device()); }

    // Offers a request without notifying: a 16-byte header, `data`, and a status byte (each part
    // left out when its length is 0). Returns the request's number.
    uint16_t offer(uint32_t type, uint64_t sector, std::vector<Buffer> data, uint32_t header_length = 16,
                   bool with_status = true) {
        uint16_t n = next_request++;
        uint64_t header = kHeaders + 16 * uint64_t{n};
        std::array<uint8_t, 16> bytes{};
        store_le(std::span(bytes).subspan(0, 4), type);
        store_le(std::span(bytes).subspan(8, 8), sector);
        EXPECT_TRUE(memory.write(header, bytes));
        EXPECT_TRUE(memory.write_obj<uint8_t>(kStatus + n, 0xee));
        std::vector<Buffer> chain;
        if (header_length > 0) chain.push_back({header, header_length, false});
        chain.insert(chain.end(), data.begin(), data.end());
        if (with_status) chain.push_back({kStatus + n, 1, true});
        ring->offer(chain);
        return n;
    }
    // Waits until `count` requests in all have been used.
    bool wait_used(uint16_t count) {
        return eventually([&] { return ring->used_idx() == count; });
    }
    uint8_t status_of(uint16_t n) { return *memory.read_obj<uint8_t>(kStatus + n); }
    // One request, notified and waited for: its status byte.
    uint8_t run(uint32_t type, uint64_t sector, std::vector<Buffer> data, uint32_t header_length = 16) {
        uint16_t n = offer(type, sector, std::move(data), header_length);
        driver->notify();
        EXPECT_TRUE(wait_used(static_cast<uint16_t>(n + 1)));
        return status_of(n);
    }
    std::vector<uint8_t> guest(uint64_t gpa, size_t length) {
        std::vector<uint8_t> bytes(length);
        EXPECT_TRUE(memory.read(gpa, bytes));
        return bytes;
    }
    uint8_t discard_like(uint32_t type, uint64_t sector, uint32_t sectors, uint32_t flags) {
        std::array<uint8_t, 16> segment{};
        store_le(std::span(segment).subspan(0, 8), sector);
        store_le(std::span(segment).subspan(8, 4), sectors);
        store_le(std::span(segment).subspan(12, 4), flags);
        EXPECT_TRUE(memory.write(kData, segment));
        return run(type, 0, {{kData, 16, false}});
    }
    bool needs_reset() { return (driver->status() & 64) != 0; }
};

std::vector<uint8_t> expected_image(uint64_t offset, size_t length) {
    std::vector<uint8_t> bytes(length);
    for (size_t i = 0; i < length; ++i) bytes[i] = TempImage::pattern(offset + i);
    return bytes;
}

TEST_P(VirtioBlkTest, OffersItsFeaturesAndConfiguration) {
    EXPECT_EQ(driver->config(0x00, 4), 0x1042'1af4u) << "0x1040 + device type 2";
    uint64_t features = driver->device_features();
    for (unsigned feature : {2u, 6u, 9u, 13u, 14u}) EXPECT_TRUE(features & (uint64_t{1} << feature)) << feature;
    EXPECT_FALSE(features & (1u << 5)) << "not read-only";
    EXPECT_EQ(driver->read(0x18, 2), 256u) << "queue size";
    EXPECT_EQ(driver->device_config(0, 8), kCapacity);
    EXPECT_EQ(driver->device_config(12, 4), 254u) << "seg_max";
    EXPECT_EQ(driver->device_config(20, 4), 512u) << "blk_size";
    EXPECT_EQ(driver->device_config(36, 4), VirtioBlk::kMaxDiscardSectors);
    EXPECT_EQ(driver->device_config(40, 4), VirtioBlk::kMaxDiscardSegments);
    EXPECT_EQ(driver->device_config(44, 4), 8u) << "discard_sector_alignment";
    EXPECT_EQ(driver->device_config(48, 4), VirtioBlk::kMaxDiscardSectors);
    EXPECT_EQ(driver->device_config(52, 4), VirtioBlk::kMaxDiscardSegments);
    EXPECT_EQ(driver->device_config(56, 1), 1u) << "write_zeroes_may_unmap";
    EXPECT_EQ(blk().backend_name(), GetParam() == BlockBackendKind::Sync ? "sync" : "io_uring");
}

TEST_P(VirtioBlkTest, ReadsSectorsIntoGuestMemory) {
    // 4 sectors from sector 3 into two buffers that split a sector.
    EXPECT_EQ(run(VirtioBlk::kTypeIn, 3, {{kData, 700, true}, {kData + 0x10000, 1348, true}}), VirtioBlk::kStatusOk);
    auto first = guest(kData, 700), second = guest(kData + 0x10000, 1348);
    first.insert(first.end(), second.begin(), second.end());
    EXPECT_EQ(first, expected_image(3 * 512, 2048));
    EXPECT_EQ(ring->used(0).second, 2049u) << "the data and the status byte";
}

TEST_P(VirtioBlkTest, WritesReachTheFileAndFlushSucceeds) {
    std::vector<uint8_t> data(1024);
    std::iota(data.begin(), data.end(), uint8_t{1});
    ASSERT_TRUE(memory.write(kData, data));
    EXPECT_EQ(run(VirtioBlk::kTypeOut, 10, {{kData, 1024, false}}), VirtioBlk::kStatusOk);
    EXPECT_EQ(ring->used(0).second, 1u);
    EXPECT_EQ(run(VirtioBlk::kTypeFlush, 0, {}), VirtioBlk::kStatusOk);
    EXPECT_EQ(image.contents(10 * 512, 1024), data);
    EXPECT_EQ(image.contents(9 * 512, 512), expected_image(9 * 512, 512)) << "neighbours untouched";
    EXPECT_EQ(image.contents(12 * 512, 512), expected_image(12 * 512, 512));
}

TEST_P(VirtioBlkTest, GetIdReturnsTheSerial) {
    EXPECT_EQ(run(VirtioBlk::kTypeGetId, 0, {{kData, 20, true}}), VirtioBlk::kStatusOk);
    auto id = guest(kData, 20);
    std::string serial(id.begin(), std::find(id.begin(), id.end(), 0));
    EXPECT_EQ(serial, blk().serial());
    EXPECT_EQ(serial.substr(0, 20), std::string("strata-strata-blk-disk-0-").substr(0, 20)) << "from the file name";
    EXPECT_EQ(ring->used(0).second, 21u);
}

TEST_P(VirtioBlkTest, GivenSerialIsReturnedWhole) {
    pci.reset();
    start_device(options(false, "12345678901234567890"));
    EXPECT_EQ(run(VirtioBlk::kTypeGetId, 0, {{kData, 20, true}}), VirtioBlk::kStatusOk);
    auto id = guest(kData, 20);
    EXPECT_EQ(std::string(id.begin(), id.end()), "12345678901234567890") << "20 bytes, no NUL";
    EXPECT_FALSE(VirtioBlk::open(image.path(), options(false, "123456789012345678901")));
}

TEST_P(VirtioBlkTest, DiscardKeepsTheSizeAndWriteZeroesZeroes) {
    EXPECT_EQ(discard_like(VirtioBlk::kTypeDiscard, 16, 16, 0), VirtioBlk::kStatusOk);
    EXPECT_EQ(image.contents(15 * 512, 512), expected_image(15 * 512, 512));
    EXPECT_EQ(image.contents(32 * 512, 512), expected_image(32 * 512, 512));
    EXPECT_EQ(discard_like(VirtioBlk::kTypeDiscard, 16, 16, 1), VirtioBlk::kStatusUnsupp) << "unmap on a discard";
    EXPECT_EQ(discard_like(VirtioBlk::kTypeWriteZeroes, 40, 3, 0), VirtioBlk::kStatusOk);
    EXPECT_EQ(image.contents(40 * 512, 3 * 512), std::vector<uint8_t>(3 * 512, 0));
    EXPECT_EQ(image.contents(43 * 512, 512), expected_image(43 * 512, 512));
    EXPECT_EQ(discard_like(VirtioBlk::kTypeWriteZeroes, 64, 8, 1), VirtioBlk::kStatusOk) << "with UNMAP";
    EXPECT_EQ(image.contents(64 * 512, 8 * 512), std::vector<uint8_t>(8 * 512, 0));
    EXPECT_EQ(discard_like(VirtioBlk::kTypeWriteZeroes, 64, 8, 2), VirtioBlk::kStatusUnsupp) << "reserved flag";
    EXPECT_EQ(discard_like(VirtioBlk::kTypeWriteZeroes, kCapacity - 1, 2, 0), VirtioBlk::kStatusIoErr);
    struct stat st{};
    ASSERT_EQ(::stat(image.path().c_str(), &st), 0);
    EXPECT_EQ(static_cast<uint64_t>(st.st_size), kImageSize);
}

TEST_P(VirtioBlkTest, DiscardSegmentsAreBounded) {
    std::vector<uint8_t> segments(16 * (VirtioBlk::kMaxDiscardSegments + 1));
    for (size_t i = 0; i <= VirtioBlk::kMaxDiscardSegments; ++i) {
        store_le(std::span(segments).subspan(16 * i, 8), 100 + i);
        store_le(std::span(segments).subspan(16 * i + 8, 4), 1);
    }
    ASSERT_TRUE(memory.write(kData, segments));
    EXPECT_EQ(run(VirtioBlk::kTypeWriteZeroes, 0, {{kData, static_cast<uint32_t>(segments.size()), false}}),
              VirtioBlk::kStatusIoErr);
    EXPECT_EQ(image.contents(100 * 512, 512), expected_image(100 * 512, 512)) << "nothing done";
    EXPECT_EQ(run(VirtioBlk::kTypeWriteZeroes, 0, {{kData, 16 * VirtioBlk::kMaxDiscardSegments, false}}),
              VirtioBlk::kStatusOk);
    EXPECT_EQ(image.contents(100 * 512, 512), std::vector<uint8_t>(512, 0));
    EXPECT_EQ(run(VirtioBlk::kTypeWriteZeroes, 0, {{kData, 24, false}}), VirtioBlk::kStatusIoErr)
        << "not whole segments";
}

TEST_P(VirtioBlkTest, ReadOnlyDiskRefusesEveryWrite) {
    pci.reset();
    start_device(options(true, ""));
    EXPECT_TRUE(driver->device_features() & (1u << 5)) << "RO";
    EXPECT_FALSE(driver->device_features() & (1u << 13)) << "no DISCARD";
    ASSERT_TRUE(memory.write(kData, std::vector<uint8_t>(512, 0xab)));
    EXPECT_EQ(run(VirtioBlk::kTypeOut, 0, {{kData, 512, false}}), VirtioBlk::kStatusIoErr);
    EXPECT_EQ(discard_like(VirtioBlk::kTypeDiscard, 0, 1, 0), VirtioBlk::kStatusIoErr);
    EXPECT_EQ(discard_like(VirtioBlk::kTypeWriteZeroes, 0, 1, 0), VirtioBlk::kStatusIoErr);
    EXPECT_EQ(run(VirtioBlk::kTypeFlush, 0, {}), VirtioBlk::kStatusOk);
    EXPECT_EQ(image.contents(0, 512), expected_image(0, 512));
    EXPECT_EQ(run(VirtioBlk::kTypeIn, 1, {{kData, 512, true}}), VirtioBlk::kStatusOk);
    EXPECT_EQ(guest(kData, 512), expected_image(512, 512));
}

TEST_P(VirtioBlkTest, SectorsPastTheCapacityAreRefused) {
    ASSERT_TRUE(memory.write(kData, std::vector<uint8_t>(1024, 0xab)));
    EXPECT_EQ(run(VirtioBlk::kTypeIn, kCapacity, {{kData, 512, true}}), VirtioBlk::kStatusIoErr);
    EXPECT_EQ(run(VirtioBlk::kTypeIn, kCapacity - 1, {{kData, 1024, true}}), VirtioBlk::kStatusIoErr);
    EXPECT_EQ(run(VirtioBlk::kTypeOut, kCapacity - 1, {{kData, 1024, false}}), VirtioBlk::kStatusIoErr);
    EXPECT_EQ(run(VirtioBlk::kTypeIn, kCapacity - 1, {{kData, 512, true}}), VirtioBlk::kStatusOk) << "the last one";
    // Byte offsets that wrap around 2^64 must not pass the check.
    for (uint64_t sector : {~uint64_t{0}, uint64_t{1} << 55, (~uint64_t{0} / 512) + 1})
        EXPECT_EQ(run(VirtioBlk::kTypeOut, sector, {{kData, 512, false}}), VirtioBlk::kStatusIoErr) << sector;
    EXPECT_EQ(image.contents(0, 512), expected_image(0, 512));
    EXPECT_FALSE(needs_reset());
}

TEST_P(VirtioBlkTest, MalformedRequestsGetAnErrorStatusNotAReset) {
    EXPECT_EQ(run(VirtioBlk::kTypeIn, 0, {{kData, 512, true}}, 8), VirtioBlk::kStatusIoErr) << "short header";
    EXPECT_EQ(run(VirtioBlk::kTypeIn, 0, {{kData, 100, true}}), VirtioBlk::kStatusIoErr) << "not whole sectors";
    EXPECT_EQ(run(VirtioBlk::kTypeOut, 0, {{kData, 513, false}}), VirtioBlk::kStatusIoErr);
    EXPECT_EQ(run(99, 0, {{kData, 512, true}}), VirtioBlk::kStatusUnsupp) << "unknown type";
    EXPECT_EQ(run(VirtioBlk::kTypeIn, 0, {}, 0), VirtioBlk::kStatusIoErr) << "no header at all";
    // No status byte: the chain comes back untouched.
    uint16_t n = offer(VirtioBlk::kTypeOut, 0, {{kData, 512, false}}, 16, false);
    driver->notify();
    ASSERT_TRUE(wait_used(static_cast<uint16_t>(n + 1)));
    EXPECT_EQ(ring->used(n).second, 0u);
    EXPECT_EQ(image.contents(0, 512), expected_image(0, 512));
    EXPECT_FALSE(needs_reset());
    EXPECT_EQ(run(VirtioBlk::kTypeIn, 0, {{kData, 512, true}}), VirtioBlk::kStatusOk) << "the device goes on";
}

TEST_P(VirtioBlkTest, ManyConcurrentRequestsAllComplete) {
    // 80 requests at once, reads and writes of 4 to 64 KiB each, in one notification.
    constexpr uint16_t kRequests = 80;
    std::vector<uint8_t> written(8 * 512, 0x5a);
    ASSERT_TRUE(memory.write(kData + 0x800000, written));
    for (uint16_t i = 0; i < kRequests; ++i) {
        uint32_t length = 512 * (8u << (i % 5));
        if (i % 4 == 3)
            offer(VirtioBlk::kTypeOut, 1024 + 8 * uint64_t{i}, {{kData + 0x800000, 8 * 512, false}});
        else
            offer(VirtioBlk::kTypeIn, 2 * uint64_t{i}, {{kData + 0x10000 * uint64_t{i}, length, true}});
    }
    driver->notify();
    ASSERT_TRUE(wait_used(kRequests));
    std::set<uint32_t> heads;
    for (uint16_t u = 0; u < kRequests; ++u) heads.insert(ring->used(u).first);
    EXPECT_EQ(heads.size(), kRequests) << "each request returned once";
    for (uint16_t i = 0; i < kRequests; ++i) {
        EXPECT_EQ(status_of(i), VirtioBlk::kStatusOk) << i;
        if (i % 4 == 3) {
            EXPECT_EQ(image.contents((1024 + 8 * uint64_t{i}) * 512, 8 * 512), written) << i;
        } else {
            uint32_t length = 512 * (8u << (i % 5));
            EXPECT_EQ(guest(kData + 0x10000 * uint64_t{i}, length), expected_image(2 * 512 * uint64_t{i}, length)) << i;
        }
    }
}

TEST_P(VirtioBlkTest, ResetWaitsForRequestsInFlightThenWorksAgain) {
    for (uint16_t i = 0; i < 64; ++i)
        offer(VirtioBlk::kTypeIn, 16 * uint64_t{i}, {{kData + 0x10000 * uint64_t{i}, 0x10000, true}});
    driver->notify();
    driver->write(0x16, 0, 2);
    driver->status(0);
    EXPECT_EQ(driver->status(), 0u);
    start_driver();
    EXPECT_EQ(run(VirtioBlk::kTypeIn, 5, {{kData, 512, true}}), VirtioBlk::kStatusOk);
    EXPECT_EQ(guest(kData, 512), expected_image(5 * 512, 512));
    EXPECT_FALSE(needs_reset());
}

TEST_P(VirtioBlkTest, ABadRingNeedsAReset) {
    std::array<uint8_t, 16> desc{};
    store_le(std::span(desc).subspan(0, 8), kHeaders);
    store_le(std::span(desc).subspan(8, 4), 16);
    store_le(std::span(desc).subspan(12, 2), 1);  // NEXT, next = 0: itself
    ASSERT_TRUE(memory.write(kDesc, desc));
    ASSERT_TRUE(memory.write_obj<uint16_t>(kAvail + 2, 1));
    driver->notify();
    EXPECT_TRUE(eventually([&] { return needs_reset(); }));
}

INSTANTIATE_TEST_SUITE_P(Backends, VirtioBlkTest, ::testing::Values(BlockBackendKind::Sync, BlockBackendKind::IoUring),
                         [](const auto& param_info) { return param_info.param == BlockBackendKind::Sync ? "Sync" : "IoUring"; });

// Opening: each refusal names the file and the reason.
TEST(VirtioBlkOpen, RefusesWhatIsNotADisk) {
    auto missing = VirtioBlk::open("/nonexistent/disk.img");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().message, "disk image '/nonexistent/disk.img' does not exist");
    auto directory = VirtioBlk::open(::testing::TempDir());
    ASSERT_FALSE(directory);
    EXPECT_NE(directory.error().message.find("neither a regular file nor a block device"), std::string::npos)
        << directory.error().message;
    TempImage odd(1000);
    auto unaligned = VirtioBlk::open(odd.path());
    ASSERT_FALSE(unaligned);
    EXPECT_NE(unaligned.error().message.find("1000 bytes, not a whole number of 512-byte sectors"), std::string::npos);
    EXPECT_NE(unaligned.error().message.find(odd.path()), std::string::npos);
}

TEST(VirtioBlkOpen, ReadWriteOpenOfAReadOnlyFileSuggestsReadonly) {
    TempImage image(4096);
    ASSERT_EQ(::chmod(image.path().c_str(), 0444), 0);
    // Root opens a mode-0444 file for writing anyway: try as nobody, in a child process (no other
    // thread runs here, so the child may allocate).
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        if (::geteuid() == 0 && ::setresuid(65534, 65534, 65534) != 0) ::_exit(10);
        auto blk = VirtioBlk::open(image.path());
        if (blk) ::_exit(11);
        if (blk.error().message.find("use readonly=on") == std::string::npos) ::_exit(12);
        ::_exit(VirtioBlk::open(image.path(), options(true, "")) ? 0 : 13);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "10: setresuid, 11: opened, 12: message, 13: read-only open";
}

// An image has one writer or any number of readers: a second writable open (another VM, or
// the same path given twice) is refused while the first holds it, and works once it is gone.
TEST(VirtioBlkOpen, AnImageInUseForWritingIsRefused) {
    TempImage image(4096);
    {
        auto writer = VirtioBlk::open(image.path());
        ASSERT_TRUE(writer) << writer.error().message;
        auto second = VirtioBlk::open(image.path());
        ASSERT_FALSE(second);
        EXPECT_NE(second.error().message.find("is in use"), std::string::npos) << second.error().message;
        EXPECT_NE(second.error().message.find(image.path()), std::string::npos);
        EXPECT_FALSE(VirtioBlk::open(image.path(), options(true, ""))) << "a reader while it is written";
    }
    auto reader = VirtioBlk::open(image.path(), options(true, ""));
    ASSERT_TRUE(reader) << reader.error().message;
    auto another_reader = VirtioBlk::open(image.path(), options(true, ""));
    EXPECT_TRUE(another_reader) << "readers share the image";
    EXPECT_FALSE(VirtioBlk::open(image.path())) << "a writer while it is read";
}

}  // namespace
}  // namespace strata
