#include "devices/virtio/virtio_net.hpp"

#include <algorithm>

#include "base/bytes.hpp"

namespace strata {
namespace {

uint64_t bit(unsigned n) { return uint64_t{1} << n; }

void count(std::atomic<uint64_t>& counter, uint64_t n = 1) { counter.fetch_add(n, std::memory_order_relaxed); }

// Completes a partial checksum the way §5.1.6.2 describes it: the field at `start + offset`
// holds the sum of the pseudo-header, and the ones' complement of the ones' complement sum of
// frame[start, end) (16-bit big-endian words, an odd last byte padded with zero) replaces it.
// The caller has checked that start + offset + 2 <= frame.size().
void complete_checksum(std::span<uint8_t> frame, size_t start, size_t offset) {
    uint64_t sum = 0;
    size_t at = start;
    for (; at + 1 < frame.size(); at += 2) sum += uint64_t{frame[at]} << 8 | frame[at + 1];
    if (at < frame.size()) sum += uint64_t{frame[at]} << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    auto checksum = static_cast<uint16_t>(~sum);
    // A computed 0 is sent as 0xffff, its other ones' complement form: UDP reserves 0 for "no
    // checksum" (RFC 768), and for TCP the two are the same value (as Linux's skb_checksum_help).
    if (checksum == 0) checksum = 0xffff;
    frame[start + offset] = static_cast<uint8_t>(checksum >> 8);
    frame[start + offset + 1] = static_cast<uint8_t>(checksum);
}

}  // namespace

VirtioNet::VirtioNet(std::unique_ptr<NetBackend> backend, MacAddress mac)
    : backend_(std::move(backend)), mac_(mac), tx_frame_(kMaxFrameSize) {
    rx_held_.reserve(kQueueSize);
    rx_segments_.reserve(2 * kQueueSize);  // grows only for chains of several buffers each
    rx_used_.reserve(kQueueSize);
    std::copy(mac_.begin(), mac_.end(), config_.begin());
    store_le(std::span(config_).subspan(6, 2), kStatusLinkUp);
    store_le(std::span(config_).subspan(10, 2), backend_->mtu());
}

VirtioNet::~VirtioNet() = default;

uint64_t VirtioNet::features() const {
    uint64_t offered = bit(kFeatureCsum) | bit(kFeatureMac) | bit(kFeatureStatus) | bit(kFeatureMrgRxbuf);
    if (backend_->mtu() != 0) offered |= bit(kFeatureMtu);
    if (backend_->checksums_verified()) offered |= bit(kFeatureGuestCsum);
    return offered;
}

// Constant after construction: no lock against the vCPUs. The transport checked the range.
void VirtioNet::read_config(uint32_t offset, std::span<uint8_t> data) {
    std::copy_n(config_.begin() + offset, data.size(), data.begin());
}

Result<void> VirtioNet::activate(VirtioContext& context) {
    context_ = &context;
    failed_ = false;
    csum_ = (context.features() & bit(kFeatureCsum)) != 0;
    guest_csum_ = (context.features() & bit(kFeatureGuestCsum)) != 0;
    mrg_rxbuf_ = (context.features() & bit(kFeatureMrgRxbuf)) != 0;
    forget_held_chains();
    backlog_.clear();
    if (!backend_started_) {
        if (auto r = backend_->start(context.loop(), *this); !r) return r;
        backend_started_ = true;
    }
    return {};
}

// A reset stops the back end too: nothing reaches the guest until the driver starts the device
// again, and a back end that can leave frames on the host (TAP) leaves them there meanwhile.
void VirtioNet::reset() {
    if (backend_started_) backend_->stop();
    backend_started_ = false;
    backlog_.clear();
    forget_held_chains();
    context_ = nullptr;
    failed_ = false;
}

void VirtioNet::quiesce() {
    if (!running() || rx_held_.empty()) return;
    if (auto r = context_->queue(kReceiveQueue).unpop(static_cast<uint16_t>(rx_held_.size())); !r)
        return stop(r.error(), "receiveq");
    forget_held_chains();
}

void VirtioNet::queue_notified(unsigned index) {
    if (!running()) return;
    if (index == kTransmitQueue) {
        if (auto r = serve_transmit(context_->queue(kTransmitQueue)); !r) stop(r.error(), "transmitq");
    } else if (index == kReceiveQueue) {
        if (auto r = deliver_backlog(); !r) stop(r.error(), "receiveq");
    }
}

void VirtioNet::stop(const Error& error, std::string_view queue) {
    if (failed_) return;
    failed_ = true;
    context_->fail(fmt::format("{}: {}", queue, error.message));
}

Result<void> VirtioNet::interrupt_if_needed(unsigned index) {
    if (!context_->queue(index).enabled()) return {};  // the driver may leave a queue unused
    return context_->interrupt_if_wanted(index);
}

Result<void> VirtioNet::serve_transmit(Virtqueue& queue) {
    for (;;) {
        if (auto r = queue.disable_notifications(); !r) return r;
        for (;;) {
            auto popped = queue.pop(tx_chain_);
            if (!popped) return std::unexpected(popped.error());
            if (!*popped) break;
            auto length = take_frame();
            if (!length) {
                count(counters_.tx_malformed);
                if (!reported_malformed_) {
                    reported_malformed_ = true;
                    fmt::print(stderr,
                               "strata: virtio-net: transmitq: dropping chain {}: {} (further malformed chains are "
                               "dropped without a message)\n",
                               tx_chain_.head(), length.error().message);
                }
            } else if (backend_->send(std::span<const uint8_t>(tx_frame_).first(*length))) {
                count(counters_.tx_frames);
                count(counters_.tx_bytes, *length);
            } else {
                count(counters_.tx_dropped);
            }
            // The back end may have answered at once (slirp does), and a bad receive chain met
            // then stopped the device.
            if (!running()) return {};
            // §5.1.6.2: the device writes nothing into transmit buffers.
            if (auto r = queue.push_used(tx_chain_.head(), 0); !r) return r;
        }
        if (auto r = interrupt_if_needed(kTransmitQueue); !r) return r;
        auto more = queue.enable_notifications();
        if (!more) return std::unexpected(more.error());
        if (!*more) return {};
    }
}

Result<size_t> VirtioNet::take_frame() {
    const DescriptorChain& chain = tx_chain_;
    if (chain.writable_bytes() > 0) return fail("it has a device-writable buffer, which no transmit chain has");
    uint32_t total = chain.readable_bytes();
    if (total < kHeaderSize + kEthernetHeaderSize)
        return fail("its {} bytes are fewer than the {}-byte header and an Ethernet header", total, kHeaderSize);
    if (total > kMaxChainBytes)
        return fail("its {} bytes are more than the {} of the largest frame and its header", total, kMaxChainBytes);
    std::array<uint8_t, kHeaderSize> header{};
    if (auto r = chain.read(context_->dma(), 0, header); !r) return std::unexpected(r.error());
    uint8_t flags = header[0];
    uint8_t gso_type = header[1];
    auto csum_start = static_cast<size_t>(load_le(std::span<const uint8_t>(header).subspan(6, 2)));
    auto csum_offset = static_cast<size_t>(load_le(std::span<const uint8_t>(header).subspan(8, 2)));
    // §5.1.6.2.1: gso_type stays NONE unless a segmentation offload was negotiated; none is offered.
    if (gso_type != kGsoNone) return fail("gso_type {} asks for segmentation, which is not offered", gso_type);

    size_t length = total - kHeaderSize;
    std::span<uint8_t> frame = std::span(tx_frame_).first(length);
    auto copied = chain.read(context_->dma(), kHeaderSize, frame);
    if (!copied) return std::unexpected(copied.error());
    // Unknown flags are ignored (§5.1.6.2.2); NEEDS_CSUM is known, and needs CSUM negotiated.
    if (flags & kHeaderNeedsCsum) {
        if (!csum_) return fail("it asks for a checksum (NEEDS_CSUM) without CSUM negotiated");
        if (csum_start >= length || csum_offset > length - csum_start || length - csum_start - csum_offset < 2)
            return fail("its checksum at {} + {} is not inside its {}-byte frame", csum_start, csum_offset, length);
        complete_checksum(frame, csum_start, csum_offset);
    }
    return length;
}

bool VirtioNet::can_receive() const { return running() && backlog_.empty(); }

void VirtioNet::receive(std::span<const uint8_t> frame) {
    if (!running()) {
        count(counters_.rx_dropped);
        return;
    }
    // Frames keep their order: one that waits makes the next wait behind it.
    if (backlog_.empty()) {
        auto placed = place(frame);
        if (!placed) return stop(placed.error(), "receiveq");
        if (*placed) {
            if (auto r = interrupt_if_needed(kReceiveQueue); !r) stop(r.error(), "receiveq");
            return;
        }
    }
    if (!backlog_.push(frame)) count(counters_.rx_dropped);
}

void VirtioNet::forget_held_chains() {
    rx_held_.clear();
    rx_segments_.clear();
    rx_held_bytes_ = 0;
}

Result<bool> VirtioNet::hold_receive_chain() {
    Virtqueue& queue = context_->queue(kReceiveQueue);
    if (!queue.enabled()) return false;
    for (;;) {
        auto popped = queue.pop(rx_chain_);
        if (!popped) return std::unexpected(popped.error());
        if (*popped) break;
        // Out of buffers: ask to be notified of the next, and look again for one added meanwhile.
        auto more = queue.enable_notifications();
        if (!more) return std::unexpected(more.error());
        if (!*more) return false;
    }
    if (rx_chain_.readable_bytes() > 0)
        return fail("chain {} has a device-readable buffer, which the driver cannot mean for receiving",
                    rx_chain_.head());
    auto writable = rx_chain_.writable();
    rx_held_.push_back({.head = rx_chain_.head(),
                        .first_segment = static_cast<uint32_t>(rx_segments_.size()),
                        .segments = static_cast<uint32_t>(writable.size()),
                        .bytes = rx_chain_.writable_bytes()});
    rx_segments_.insert(rx_segments_.end(), writable.begin(), writable.end());
    rx_held_bytes_ += rx_chain_.writable_bytes();
    return true;
}

Result<bool> VirtioNet::place(std::span<const uint8_t> frame) {
    uint64_t needed = kHeaderSize + frame.size();
    if (rx_held_.empty()) {
        auto taken = hold_receive_chain();
        if (!taken || !*taken) return taken;
    }
    if (!mrg_rxbuf_) {
        // Without MRG_RXBUF a frame takes one chain (§5.1.6.3.2): the driver sizes each for the MTU.
        if (rx_held_bytes_ < needed) {
            count(counters_.rx_too_large);
            return true;  // the chain is kept for the next frame
        }
    } else {
        // §5.1.6.4.2: as many chains as the frame needs, the chains being whatever the driver made.
        while (rx_held_bytes_ < needed) {
            if (rx_held_.size() >= context_->queue(kReceiveQueue).config().size) {
                count(counters_.rx_too_large);  // the whole queue cannot take it
                return true;
            }
            auto taken = hold_receive_chain();
            if (!taken || !*taken) return taken;
        }
    }
    size_t buffers = 0;
    for (uint64_t covered = 0; covered < needed; ++buffers) covered += rx_held_[buffers].bytes;
    // §5.1.6.4.1: GSO_NONE; DATA_VALID only with GUEST_CSUM; num_buffers the chains used (1
    // without MRG_RXBUF).
    std::array<uint8_t, kHeaderSize> header{};
    if (guest_csum_) header[0] = kHeaderDataValid;
    store_le(std::span(header).subspan(10, 2), buffers);
    if (auto r = fill(header, frame, buffers); !r) return std::unexpected(r.error());
    count(counters_.rx_frames);
    count(counters_.rx_bytes, frame.size());
    return true;
}

Result<void> VirtioNet::fill(std::span<const uint8_t> header, std::span<const uint8_t> frame, size_t buffers) {
    // The header and the frame as one stream of bytes, poured into the chains' buffers in order.
    size_t position = 0;
    auto pour = [&](uint64_t gpa, size_t length) -> Result<void> {
        while (length > 0) {
            std::span<const uint8_t> source =
                position < header.size() ? header.subspan(position) : frame.subspan(position - header.size());
            size_t bytes = std::min(length, source.size());
            if (auto r = context_->dma().write(gpa, source.first(bytes)); !r) return r;
            gpa += bytes;
            length -= bytes;
            position += bytes;
        }
        return {};
    };
    size_t total = header.size() + frame.size();
    rx_used_.clear();
    for (size_t i = 0; i < buffers; ++i) {
        const HeldChain& chain = rx_held_[i];
        size_t before = position;
        for (uint32_t s = 0; s < chain.segments && position < total; ++s) {
            const ChainSegment& segment = rx_segments_[chain.first_segment + s];
            if (auto r = pour(segment.gpa, std::min<size_t>(segment.length, total - position)); !r) return r;
        }
        rx_used_.push_back({.id = chain.head, .len = static_cast<uint32_t>(position - before)});
    }
    // All of the frame's chains published at once: the driver must not see a part of it.
    if (auto r = context_->queue(kReceiveQueue).push_used(rx_used_); !r) return r;
    // The chains left (taken for a frame that turned out smaller) stay held for the next frame.
    uint32_t segments_used = buffers == rx_held_.size() ? static_cast<uint32_t>(rx_segments_.size())
                                                        : rx_held_[buffers].first_segment;
    for (size_t i = 0; i < buffers; ++i) rx_held_bytes_ -= rx_held_[i].bytes;
    rx_held_.erase(rx_held_.begin(), rx_held_.begin() + static_cast<ptrdiff_t>(buffers));
    rx_segments_.erase(rx_segments_.begin(), rx_segments_.begin() + segments_used);
    for (HeldChain& chain : rx_held_) chain.first_segment -= segments_used;
    return {};
}

Result<void> VirtioNet::deliver_backlog() {
    while (!backlog_.empty()) {
        auto placed = place(backlog_.front());
        if (!placed) return std::unexpected(placed.error());
        if (!*placed) break;
        backlog_.pop();
    }
    if (auto r = interrupt_if_needed(kReceiveQueue); !r) return r;
    if (backlog_.empty()) backend_->receive_ready();
    return {};
}

}  // namespace strata
