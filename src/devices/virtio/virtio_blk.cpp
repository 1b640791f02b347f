#include "devices/virtio/virtio_blk.hpp"

#include <poll.h>

#include <algorithm>
#include <filesystem>

#include "base/bytes.hpp"
#include "base/checked.hpp"

namespace strata {
namespace {

constexpr uint32_t kHeaderSize = 16;   // §5.2.6: le32 type, le32 reserved, le64 sector
constexpr uint32_t kSegmentSize = 16;  // struct virtio_blk_discard_write_zeroes
constexpr uint32_t kUnmapFlag = 1;

uint64_t bit(unsigned n) { return uint64_t{1} << n; }

}  // namespace

Result<std::unique_ptr<VirtioBlk>> VirtioBlk::open(const std::string& path, VirtioBlkOptions options) {
    std::string serial = std::move(options.serial);
    if (serial.empty()) serial = ("strata-" + std::filesystem::path(path).stem().string()).substr(0, kSerialSize);
    if (serial.size() > kSerialSize)
        return fail("disk image '{}': serial '{}' is longer than {} bytes", path, serial, kSerialSize);
    auto image = open_disk_image(path, options.read_only);
    if (!image) return std::unexpected(image.error());
    auto backend = make_block_backend(options.backend, image->fd.get(), kQueueSize, fmt::format("disk image '{}'", path));
    if (!backend) return std::unexpected(backend.error());
    return std::unique_ptr<VirtioBlk>(new VirtioBlk(std::move(*image), std::move(*backend), std::move(serial)));
}

VirtioBlk::VirtioBlk(DiskImage image, std::unique_ptr<BlockBackend> backend, std::string serial)
    : image_(std::move(image)), backend_(std::move(backend)), serial_(std::move(serial)) {
    requests_.resize(kQueueSize);
    for (Request& request : requests_) {
        request.iov.reserve(kQueueSize);
        request.filled.reserve(kQueueSize);
        request.ranges.reserve(kMaxDiscardSegments);
    }
    free_.reserve(kQueueSize);
    completions_.resize(kQueueSize);
    forget_requests();
    build_config();
}

// The back end (destroyed before the image) waits for what it still has in flight.
VirtioBlk::~VirtioBlk() = default;

uint64_t VirtioBlk::features() const {
    uint64_t offered = bit(kFeatureSegMax) | bit(kFeatureBlkSize) | bit(kFeatureFlush);
    // A read-only disk offers no discard or write-zeroes: the driver would only be refused.
    if (image_.read_only) return offered | bit(kFeatureRo);
    return offered | bit(kFeatureDiscard) | bit(kFeatureWriteZeroes);
}

// §5.2.4 struct virtio_blk_config, little-endian; what is not offered reads 0.
void VirtioBlk::build_config() {
    auto put = [&](size_t offset, size_t width, uint64_t value) {
        store_le(std::span(config_).subspan(offset, width), value);
    };
    put(0, 8, capacity_sectors());  // capacity
    put(12, 4, kSegMax);            // seg_max
    put(20, 4, kSectorSize);        // blk_size
    put(34, 2, 1);                  // num_queues
    if (image_.read_only) return;
    put(36, 4, kMaxDiscardSectors);       // max_discard_sectors
    put(40, 4, kMaxDiscardSegments);      // max_discard_seg
    put(44, 4, kDiscardSectorAlignment);  // discard_sector_alignment
    put(48, 4, kMaxDiscardSectors);       // max_write_zeroes_sectors
    put(52, 4, kMaxDiscardSegments);      // max_write_zeroes_seg
    put(56, 1, 1);                        // write_zeroes_may_unmap
}

// Constant after open: no lock against the vCPUs that read it.
void VirtioBlk::read_config(uint32_t offset, std::span<uint8_t> data) {
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t at = uint64_t{offset} + i;
        data[i] = at < config_.size() ? config_[at] : 0;
    }
}

Result<void> VirtioBlk::activate(VirtioContext& context) {
    context_ = &context;
    failed_ = false;
    negotiated_ = context.features();
    if (int fd = backend_->completion_fd(); fd >= 0)
        if (auto r = context.loop().watch(fd, [this] { completions_ready(); }); !r) return r;
    return {};
}

void VirtioBlk::queue_notified(unsigned index) {
    if (!context_ || failed_ || index != 0) return;
    if (auto r = serve(context_->queue(0)); !r) on_fail(r.error());
}

// §2.4: nothing may write guest memory once the reset is done, and the back end's reads do: wait
// for every operation in flight, then forget them all.
void VirtioBlk::reset() {
    if (context_)
        if (int fd = backend_->completion_fd(); fd >= 0) context_->loop().unwatch(fd);
    backend_->drain();
    forget_requests();
    context_ = nullptr;
    failed_ = false;
    starved_ = false;
}

// A snapshot holds no request in flight: each completes (waiting on the back end's eventfd) and
// goes back used; chains a starved queue left available are started too, until none is left.
void VirtioBlk::quiesce() {
    if (!context_ || failed_) return;
    Result<void> r;
    while (r && !failed_) {
        if (free_.size() == kQueueSize) {
            if (!starved_) break;
            starved_ = false;
            r = serve(context_->queue(0));
            continue;
        }
        if (int fd = backend_->completion_fd(); fd >= 0) {
            pollfd ready{.fd = fd, .events = POLLIN, .revents = 0};
            if (::poll(&ready, 1, -1) < 0 && errno != EINTR) {
                r = fail_errno("virtio-blk: waiting for the requests in flight");
                break;
            }
        }
        size_t before = free_.size();
        r = complete();
        // Without an eventfd everything completed in submit(): no progress means nothing will.
        if (r && backend_->completion_fd() < 0 && free_.size() == before) break;
    }
    if (r && !failed_) r = context_->interrupt_if_wanted(0);
    if (!r && !failed_) on_fail(r.error());
}

void VirtioBlk::forget_requests() {
    free_.clear();
    for (uint32_t slot = kQueueSize; slot-- > 0;) free_.push_back(slot);
}

void VirtioBlk::on_fail(const Error& error) {
    failed_ = true;
    context_->fail(error.message);
}

Result<void> VirtioBlk::serve(Virtqueue& queue) {
    for (;;) {
        if (auto r = queue.disable_notifications(); !r) return r;
        for (;;) {
            if (free_.empty()) {
                starved_ = true;  // a hostile driver reusing heads in flight; resumed on a completion
                break;
            }
            auto popped = queue.pop(chain_);
            if (!popped) return std::unexpected(popped.error());
            if (!*popped) break;
            uint32_t slot = free_.back();
            free_.pop_back();
            if (auto r = start(slot); !r) return r;
        }
        if (auto r = backend_->submit(); !r) return r;
        if (auto r = complete(); !r) return r;
        if (starved_) return {};
        auto more = queue.enable_notifications();
        if (!more) return std::unexpected(more.error());
        if (!*more) return context_->interrupt_if_wanted(0);
    }
}

Result<void> VirtioBlk::map(std::span<const ChainSegment> segments, uint64_t offset, uint64_t length, bool for_write,
                            Request& request) {
    for (const ChainSegment& segment : segments) {
        if (length == 0) break;
        if (offset >= segment.length) {
            offset -= segment.length;
            continue;
        }
        uint64_t piece = std::min<uint64_t>(segment.length - offset, length);
        uint64_t gpa = segment.gpa + offset;  // inside a segment pop() found in RAM
        void* host = nullptr;
        if (for_write) {
            auto view = context_->dma().view_for_write(gpa, piece);
            if (!view) return std::unexpected(view.error());
            host = view->data();
            request.filled.push_back({gpa, static_cast<uint32_t>(piece), true});
        } else {
            auto view = context_->dma().view(gpa, piece);
            if (!view) return std::unexpected(view.error());
            host = const_cast<uint8_t*>(view->data());  // iovec has no const; the back end only reads it
        }
        request.iov.push_back({host, piece});
        length -= piece;
        offset = 0;
    }
    return {};
}

Result<void> VirtioBlk::start(uint32_t slot) {
    Request& request = requests_[slot];
    request.head = chain_.head();
    request.iov.clear();
    request.filled.clear();
    request.ranges.clear();
    request.expected = 0;
    request.used_length = 1;
    if (chain_.writable_bytes() == 0) {
        // No status byte to report in: returned untouched (§5.2.6.1: the driver must give one).
        free_.push_back(slot);
        return context_->queue(0).push_used(request.head, 0);
    }
    const ChainSegment& last = chain_.writable().back();
    request.status_gpa = last.gpa + last.length - 1;
    std::array<uint8_t, kHeaderSize> header{};
    if (chain_.readable_bytes() < kHeaderSize) return finish(slot, kStatusIoErr);
    if (auto r = chain_.read(context_->dma(), 0, header); !r) return std::unexpected(r.error());
    request.type = static_cast<uint32_t>(load_le(std::span<const uint8_t>(header).first(4)));
    uint64_t sector = load_le(std::span<const uint8_t>(header).subspan(8, 8));
    uint64_t readable_data = chain_.readable_bytes() - kHeaderSize;
    uint64_t writable_data = chain_.writable_bytes() - 1;
    bool writes = request.type == kTypeOut || request.type == kTypeDiscard || request.type == kTypeWriteZeroes;
    if (writes && image_.read_only) return finish(slot, kStatusIoErr);

    switch (request.type) {
    case kTypeIn:
    case kTypeOut: {
        bool in = request.type == kTypeIn;
        uint64_t length = in ? writable_data : readable_data;
        auto offset = checked_mul(sector, kSectorSize);
        if (length % kSectorSize != 0 || !offset || !range_within(*offset, length, image_.size))
            return finish(slot, kStatusIoErr);
        if (in) request.used_length = static_cast<uint32_t>(length + 1);
        if (length == 0) return finish(slot, kStatusOk);
        auto mapped = in ? map(chain_.writable(), 0, length, true, request)
                         : map(chain_.readable(), kHeaderSize, length, false, request);
        if (!mapped) return mapped;
        request.expected = length;
        if (in)
            backend_->read(slot, *offset, request.iov);
        else
            backend_->write(slot, *offset, request.iov, !(negotiated_ & bit(kFeatureFlush)));
        return {};
    }
    case kTypeFlush:
        if (image_.read_only) return finish(slot, kStatusOk);  // nothing was ever written
        backend_->flush(slot);
        return {};
    case kTypeGetId: {
        // §5.2.6: up to 20 bytes, zero-padded, not NUL-terminated when the serial has 20.
        std::array<uint8_t, kSerialSize> id{};
        std::copy(serial_.begin(), serial_.end(), id.begin());
        auto length = static_cast<size_t>(std::min<uint64_t>(writable_data, kSerialSize));
        auto written = chain_.write(context_->dma(), 0, std::span<const uint8_t>(id).first(length));
        if (!written) return std::unexpected(written.error());
        request.used_length = static_cast<uint32_t>(*written + 1);
        return finish(slot, kStatusOk);
    }
    case kTypeDiscard:
    case kTypeWriteZeroes: {
        bool discard = request.type == kTypeDiscard;
        if (!(negotiated_ & bit(discard ? kFeatureDiscard : kFeatureWriteZeroes))) return finish(slot, kStatusUnsupp);
        uint64_t count = readable_data / kSegmentSize;
        if (readable_data % kSegmentSize != 0 || count == 0 || count > kMaxDiscardSegments)
            return finish(slot, kStatusIoErr);
        bool may_unmap = true;
        for (uint64_t i = 0; i < count; ++i) {
            std::array<uint8_t, kSegmentSize> segment{};
            if (auto r = chain_.read(context_->dma(), kHeaderSize + i * kSegmentSize, segment); !r)
                return std::unexpected(r.error());
            uint64_t first = load_le(std::span<const uint8_t>(segment).first(8));
            auto sectors = static_cast<uint32_t>(load_le(std::span<const uint8_t>(segment).subspan(8, 4)));
            auto flags = static_cast<uint32_t>(load_le(std::span<const uint8_t>(segment).subspan(12, 4)));
            // §5.2.6.2: UNSUPP for unmap on a discard or any reserved flag; IOERR past the limits.
            if (flags & ~(discard ? 0 : kUnmapFlag)) return finish(slot, kStatusUnsupp);
            auto offset = checked_mul(first, kSectorSize);
            uint64_t length = uint64_t{sectors} * kSectorSize;
            if (sectors > kMaxDiscardSectors || !offset || !range_within(*offset, length, image_.size))
                return finish(slot, kStatusIoErr);
            may_unmap = may_unmap && (flags & kUnmapFlag);
            if (sectors > 0) request.ranges.push_back({*offset, length});
        }
        if (discard)
            backend_->discard(slot, request.ranges);
        else
            backend_->write_zeroes(slot, request.ranges, may_unmap);
        return {};
    }
    default:
        return finish(slot, kStatusUnsupp);
    }
}

Result<void> VirtioBlk::finish(uint32_t slot, uint8_t status) {
    Request& request = requests_[slot];
    free_.push_back(slot);
    if (auto r = context_->dma().write_obj(request.status_gpa, status); !r) return r;
    return context_->queue(0).push_used(request.head, request.used_length);
}

Result<void> VirtioBlk::complete() {
    for (;;) {
        size_t count = backend_->reap(completions_);
        if (count == 0) return {};
        for (const BlockCompletion& completion : std::span(completions_).first(count)) {
            if (completion.tag >= requests_.size())
                panic(fmt::format("virtio-blk: completion for slot {} of {}", completion.tag, requests_.size()));
            if (failed_ || !context_) {
                free_.push_back(completion.tag);
                continue;
            }
            Request& request = requests_[completion.tag];
            bool ok = completion.result >= 0 &&
                      (request.expected == 0 || static_cast<uint64_t>(completion.result) == request.expected);
            // The bytes that landed are the guest's, even from a read that failed half-way.
            for (const ChainSegment& range : request.filled) context_->dma().written(range.gpa, range.length);
            if (auto r = finish(completion.tag, ok ? kStatusOk : kStatusIoErr); !r) return r;
        }
    }
}

// On the loop: the back end's eventfd is readable.
void VirtioBlk::completions_ready() {
    if (!context_) return;
    auto r = complete();
    if (r && !failed_) r = context_->interrupt_if_wanted(0);
    if (r && !failed_ && starved_ && !free_.empty()) {
        starved_ = false;
        r = serve(context_->queue(0));
    }
    if (!r && !failed_) on_fail(r.error());
}

}  // namespace strata
