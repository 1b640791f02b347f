// libFuzzer target: virtio-blk's request parser and its back end (src/devices/virtio/virtio_blk.hpp)
// on requests a hostile driver lays out: headers of any type and sector, chains with the status
// byte anywhere or nowhere, data of any length and direction, discard and write-zeroes segments.
//
// Input: byte 0 selects the device: bit 0 a read-only image, bit 1 FLUSH negotiated, bit 2
// EVENT_IDX, bit 3 INDIRECT_DESC; the next 8 KiB (zero-padded) are guest-physical pages 0-1, where
// a queue of 16 entries has its descriptor table at 0, its available ring at 0x100 and its used ring
// at 0x200; what is there (the available idx included) is what the driver put. The image is 64 KiB
// of a known pattern in a memfd, served by the synchronous back end so that every run is the same.
// What is checked: no crash or sanitizer report; a read-only image is never written; the image never
// changes size. (The used ring is not checked: a hostile driver may point a read's buffer at it,
// and the device then rightly writes the image's bytes there.)
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/bytes.hpp"
#include "devices/virtio/virtio_blk.hpp"
#include "fuzz_support.hpp"

namespace {

using namespace strata;

constexpr size_t kRam = 1 * MiB;
constexpr size_t kGuestBytes = 8192;
constexpr uint32_t kQueueSize = 16;
constexpr uint64_t kDescriptors = 0, kAvail = 0x100, kUsed = 0x200;
constexpr size_t kImageSize = 64 * 1024;

GuestMemory& memory() {
    static GuestMemory ram = [] {
        auto created = GuestMemory::create(kRam);
        if (!created) fuzz::invariant_failed(created.error().message, __FILE__, __LINE__);
        return std::move(*created);
    }();
    return ram;
}

// The image's bytes before each run: any byte a request moves shows where it went.
const std::vector<uint8_t>& image_pattern() {
    static const std::vector<uint8_t> pattern = [] {
        std::vector<uint8_t> bytes(kImageSize);
        for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 131 + 7);
        return bytes;
    }();
    return pattern;
}

int image_fd() {
    static int fd = [] {
        int made = ::memfd_create("virtio-blk-fuzz", MFD_CLOEXEC);
        if (made < 0) fuzz::invariant_failed("memfd_create", __FILE__, __LINE__);
        return made;
    }();
    return fd;
}

std::vector<uint8_t> image_contents() {
    std::vector<uint8_t> bytes(kImageSize + 1);
    ssize_t n = ::pread(image_fd(), bytes.data(), bytes.size(), 0);
    bytes.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return bytes;
}

// The transport's side as the device sees it, with a queue the input configured.
class FuzzContext final : public VirtioContext {
public:
    FuzzContext(const GuestDma& dma, EventLoop& loop, uint64_t features) : dma_(dma), loop_(loop), queue_(dma), features_(features) {}
    Virtqueue& the_queue() { return queue_; }
    const GuestDma& dma() override { return dma_; }
    uint64_t features() override { return features_; }
    Virtqueue& queue(unsigned) override { return queue_; }
    EventLoop& loop() override { return loop_; }
    void interrupt(unsigned) override {}
    void config_changed() override {}
    void fail(std::string_view) override { failed = true; }
    bool failed = false;

private:
    const GuestDma& dma_;
    EventLoop& loop_;
    Virtqueue queue_;
    uint64_t features_;
};

EventLoop& loop() {
    static auto made = EventLoop::create("blk-fuzz");
    if (!made) fuzz::invariant_failed(made.error().message, __FILE__, __LINE__);
    return **made;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    uint8_t options = data[0];
    bool read_only = options & 1;
    std::span<const uint8_t> input(data + 1, size - 1);
    GuestMemory& ram = memory();
    std::span<uint8_t> pages = *ram.translate(0, kGuestBytes);
    std::ranges::fill(pages, uint8_t{0});
    std::copy_n(input.begin(), std::min(kGuestBytes, input.size()), pages.begin());

    const std::vector<uint8_t>& pattern = image_pattern();
    FUZZ_CHECK(::ftruncate(image_fd(), kImageSize) == 0, "ftruncate");
    FUZZ_CHECK(::pwrite(image_fd(), pattern.data(), pattern.size(), 0) == static_cast<ssize_t>(pattern.size()), "pwrite");
    std::string path = "/proc/self/fd/" + std::to_string(image_fd());
    auto blk = VirtioBlk::open(path, {.read_only = read_only, .serial = "fuzz", .backend = BlockBackendKind::Sync});
    FUZZ_CHECK(blk.has_value(), "VirtioBlk::open: {}", blk ? "" : blk.error().message);

    uint64_t features = virtio::feature_mask(virtio::Feature::Version1) | (*blk)->features();
    if (!(options & 2)) features &= ~(uint64_t{1} << VirtioBlk::kFeatureFlush);
    GuestDma dma(ram);
    FuzzContext context(dma, loop(), features);
    VirtqueueConfig config{.size = kQueueSize,
                           .descriptor_table = kDescriptors,
                           .avail_ring = kAvail,
                           .used_ring = kUsed,
                           .event_idx = (options & 4) != 0,
                           .indirect_descriptors = (options & 8) != 0};
    FUZZ_CHECK(context.the_queue().enable(config).has_value(), "the queue's fixed layout is valid");
    FUZZ_CHECK((*blk)->activate(context).has_value(), "activate");
    (*blk)->queue_notified(0);
    (*blk)->queue_notified(0);  // a second notification finds nothing new (or the device failed)

    (*blk)->reset();
    std::vector<uint8_t> after = image_contents();
    FUZZ_CHECK(after.size() == kImageSize, "the image is {} bytes, not {}", after.size(), kImageSize);
    if (read_only) FUZZ_CHECK(after == pattern, "a read-only image was written");
    return 0;
}
