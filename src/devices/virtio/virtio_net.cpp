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
    std::copy(mac_.begin(), mac_.end(), config_.begin());
    store_le(std::span(config_).subspan(6, 2), kStatusLinkUp);
    store_le(std::span(config_).subspan(10, 2), backend_->mtu());
}

VirtioNet::~VirtioNet() = default;

uint64_t VirtioNet::features() const {
    uint64_t offered = bit(kFeatureCsum) | bit(kFeatureMac) | bit(kFeatureStatus);
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
    rx_chain_held_ = false;
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
    rx_chain_held_ = false;
    context_ = nullptr;
    failed_ = false;
}

void VirtioNet::quiesce() {
    if (!running() || !rx_chain_held_) return;
    if (auto r = context_->queue(kReceiveQueue).unpop(); !r) return stop(r.error(), "receiveq");
    rx_chain_held_ = false;
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

Result<bool> VirtioNet::take_receive_chain() {
    if (rx_chain_held_) return true;
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
    rx_chain_held_ = true;
    return true;
}

Result<bool> VirtioNet::place(std::span<const uint8_t> frame) {
    auto taken = take_receive_chain();
    if (!taken || !*taken) return taken;
    // Without MRG_RXBUF a frame takes one chain (§5.1.6.3.2); the driver should give 1526 bytes.
    if (rx_chain_.writable_bytes() < kHeaderSize + frame.size()) {
        count(counters_.rx_too_large);
        return true;
    }
    // §5.1.6.4.1 without MRG_RXBUF: GSO_NONE, num_buffers 1; DATA_VALID only with GUEST_CSUM.
    std::array<uint8_t, kHeaderSize> header{};
    if (guest_csum_) header[0] = kHeaderDataValid;
    store_le(std::span(header).subspan(10, 2), 1);
    if (auto r = rx_chain_.write(context_->dma(), 0, header); !r) return std::unexpected(r.error());
    if (auto r = rx_chain_.write(context_->dma(), kHeaderSize, frame); !r) return std::unexpected(r.error());
    rx_chain_held_ = false;
    auto used = static_cast<uint32_t>(kHeaderSize + frame.size());
    if (auto r = context_->queue(kReceiveQueue).push_used(rx_chain_.head(), used); !r) return std::unexpected(r.error());
    count(counters_.rx_frames);
    count(counters_.rx_bytes, frame.size());
    return true;
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
