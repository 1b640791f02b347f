#include "devices/virtio/virtio_vsock.hpp"

#include <algorithm>

#include "base/bytes.hpp"

namespace strata {

using vsock::Header;

// The muxer's FdWatcher on the device's loop; after each readiness handler the device serves rx
// (the muxer may have a packet for the guest) and publishes its connection count.
class VirtioVsock::LoopWatcher final : public FdWatcher {
public:
    LoopWatcher(VirtioVsock& device, EventLoop& loop) : device_(device), loop_(loop) {}
    Result<void> watch(int fd, EventLoop::Ready wanted, std::function<void(EventLoop::Ready)> handler) override {
        return loop_.watch(fd, wanted, [this, handler = std::move(handler)](EventLoop::Ready ready) {
            handler(ready);
            device_.after_work();
        });
    }
    void unwatch(int fd) override { loop_.unwatch(fd); }

private:
    VirtioVsock& device_;
    EventLoop& loop_;
};

Result<std::unique_ptr<VirtioVsock>> VirtioVsock::create(VsockOptions options) {
    auto muxer = VsockMuxer::create(std::move(options));
    if (!muxer) return std::unexpected(muxer.error());
    return std::unique_ptr<VirtioVsock>(new VirtioVsock(std::move(*muxer)));
}

VirtioVsock::VirtioVsock(std::unique_ptr<VsockMuxer> muxer) : muxer_(std::move(muxer)) {}

VirtioVsock::~VirtioVsock() = default;

void VirtioVsock::read_config(uint32_t offset, std::span<uint8_t> data) {
    // §5.10.4: le64 guest_cid (the upper 32 bits are 0 for every CID we accept). The transport
    // checked the range.
    std::array<uint8_t, kConfigSize> image{};
    store_le(image, muxer_->guest_cid());
    std::copy_n(image.begin() + offset, data.size(), data.begin());
}

Result<void> VirtioVsock::activate(VirtioContext& context) {
    context_ = &context;
    loop_.store(&context.loop());
    if (!watcher_) watcher_ = std::make_unique<LoopWatcher>(*this, context.loop());
    muxer_->start(*watcher_, [this] { rx_wanted(); });
    return {};
}

void VirtioVsock::queue_notified(unsigned index) {
    if (!context_) return;
    Result<void> r;
    busy_ = true;
    if (index == vsock::kTxQueue) r = serve_tx();
    else if (index == vsock::kRxQueue) r = serve_rx();
    else if (index == vsock::kEventQueue) r = serve_events();
    busy_ = false;
    if (!r) {
        const char* name = index == vsock::kRxQueue ? "rx" : index == vsock::kTxQueue ? "tx" : "event";
        return stop(fmt::format("{} queue: {}", name, r.error().message));
    }
    after_work();
}

void VirtioVsock::reset() {
    muxer_->stop();
    context_ = nullptr;
    rx_held_ = false;
    event_owed_ = false;
    connection_count_.store(0);
}

void VirtioVsock::quiesce() {
    if (!context_ || !rx_held_) return;
    if (auto r = context_->queue(vsock::kRxQueue).unpop(); !r) return stop(fmt::format("rx queue: {}", r.error().message));
    rx_held_ = false;
}

void VirtioVsock::restored() {
    if (!context_) return;
    event_owed_ = true;
    queue_notified(vsock::kEventQueue);
}

void VirtioVsock::stop(std::string_view why) {
    context_->fail(why);
    reset();  // the connections close now; the driver resets the device to start again
}

void VirtioVsock::rx_wanted() {
    // Inside a queue's service the muxer's packets wait for its end (after_work()).
    if (busy_ || !context_) return;
    busy_ = true;
    auto r = serve_rx();
    busy_ = false;
    if (!r) stop(fmt::format("rx queue: {}", r.error().message));
}

void VirtioVsock::after_work() {
    if (context_ && muxer_->wants_rx()) rx_wanted();
    connection_count_.store(muxer_->connection_count());
}

Result<void> VirtioVsock::serve_tx() {
    if (!context_->queue(vsock::kTxQueue).enabled()) return {};
    auto transmit = [this](DescriptorChain& chain) -> Result<uint32_t> {
        if (auto r = chain.expect_only(false, "virtio 1.2 §5.10.6.4"); !r) return std::unexpected(r.error());
        // Shorter than a header: not a packet, and nothing to answer it with. Dropped.
        if (chain.readable_bytes() < vsock::kHeaderSize) return 0;
        // Read once into host memory, then checked (the driver may change it meanwhile).
        Header header{};
        auto got = chain.read(context_->dma(), 0, std::span(reinterpret_cast<uint8_t*>(&header), sizeof(header)));
        if (!got) return std::unexpected(got.error());
        uint64_t chain_payload = chain.readable_bytes() - vsock::kHeaderSize;
        size_t wanted = std::min<uint64_t>({header.len, chain_payload, vsock::kMaxPayload});
        auto payload = chain.read(context_->dma(), vsock::kHeaderSize, std::span(tx_payload_).first(wanted));
        if (!payload) return std::unexpected(payload.error());
        muxer_->from_guest(header, std::span<const uint8_t>(tx_payload_).first(*payload), chain_payload);
        return 0;  // transmit buffers come back with nothing written into them
    };
    if (auto r = context_->serve_available(vsock::kTxQueue, tx_chain_, transmit); !r) return r;
    // Answers (RESPONSE, RST, credit) the packets asked for.
    return serve_rx();
}

Result<void> VirtioVsock::serve_rx() {
    Virtqueue& queue = context_->queue(vsock::kRxQueue);
    if (!queue.enabled()) return {};
    bool returned = false;
    while (muxer_->wants_rx()) {
        if (!rx_held_) {
            auto popped = queue.pop_or_arm(rx_chain_);  // packets wait for buffers
            if (!popped) return std::unexpected(popped.error());
            if (!*popped) break;
            if (auto r = rx_chain_.expect_only(true, "virtio 1.2 §5.10.6.4"); !r) return r;
            if (rx_chain_.writable_bytes() < vsock::kHeaderSize)
                return fail("chain {} holds {} bytes, less than a {}-byte packet header", rx_chain_.head(),
                            rx_chain_.writable_bytes(), vsock::kHeaderSize);
            rx_held_ = true;
        }
        uint32_t room = std::min(rx_chain_.writable_bytes() - vsock::kHeaderSize, vsock::kMaxPayload);
        Header header{};
        // The muxer had nothing after all (a socket with nothing to read): the chain waits.
        if (!muxer_->to_guest(header, std::span(rx_payload_).first(room))) break;
        auto wrote = rx_chain_.write(context_->dma(), 0,
                                     std::span(reinterpret_cast<const uint8_t*>(&header), sizeof(header)));
        if (!wrote) return std::unexpected(wrote.error());
        auto data = rx_chain_.write(context_->dma(), vsock::kHeaderSize, std::span(rx_payload_).first(header.len));
        if (!data) return std::unexpected(data.error());
        if (auto r = queue.push_used(rx_chain_.head(), vsock::kHeaderSize + header.len); !r) return r;
        rx_held_ = false;
        returned = true;
    }
    return returned ? context_->interrupt_if_wanted(vsock::kRxQueue) : Result<void>{};
}

Result<void> VirtioVsock::serve_events() {
    Virtqueue& queue = context_->queue(vsock::kEventQueue);
    if (!queue.enabled() || !event_owed_) return {};
    auto popped = queue.pop(event_chain_);
    if (!popped) return std::unexpected(popped.error());
    if (!*popped) return {};  // the event waits for the driver's next buffer (its notification)
    if (auto r = event_chain_.expect_only(true, "virtio 1.2 §5.10.6.7"); !r) return r;
    if (event_chain_.writable_bytes() < vsock::kEventSize)
        return fail("event chain {} holds {} bytes, less than an event's {}", event_chain_.head(),
                    event_chain_.writable_bytes(), vsock::kEventSize);
    std::array<uint8_t, vsock::kEventSize> event{};
    store_le(event, vsock::kEventTransportReset);
    auto wrote = event_chain_.write(context_->dma(), 0, event);
    if (!wrote) return std::unexpected(wrote.error());
    if (auto r = queue.push_used(event_chain_.head(), vsock::kEventSize); !r) return r;
    event_owed_ = false;
    if (auto r = context_->interrupt_if_wanted(vsock::kEventQueue); !r) return r;
    return {};
}

void VirtioVsock::transport_reset() {
    EventLoop* loop = loop_.load();
    if (!loop) return;  // never activated: no driver has a connection to lose
    loop->post([this] { restart_transport(); });
}

void VirtioVsock::restart_transport() {
    if (!context_) return;
    muxer_->stop();  // a held rx chain stays held: the next packet goes into it
    event_owed_ = true;
    muxer_->start(*watcher_, [this] { rx_wanted(); });
    queue_notified(vsock::kEventQueue);
}

}  // namespace strata
