#include "devices/virtio/virtio_console.hpp"

#include <algorithm>

#include "base/bytes.hpp"

namespace strata {

VirtioConsole::VirtioConsole(Output output, Size size, size_t input_limit)
    : output_(std::move(output)), size_(size), input_limit_(input_limit) {}

void VirtioConsole::read_config(uint32_t offset, std::span<uint8_t> data) {
    // cols and rows (meaningful with F_SIZE, which is offered); max_nr_ports only with MULTIPORT
    // and emerg_wr only with EMERG_WRITE, neither offered: 0. The transport checked the range.
    std::array<uint8_t, kConfigSize> image{};
    store_le(std::span(image).subspan(0, 2), size_.cols);
    store_le(std::span(image).subspan(2, 2), size_.rows);
    std::copy_n(image.begin() + offset, data.size(), data.begin());
}

Result<void> VirtioConsole::activate(VirtioContext& context) {
    context_ = &context;
    loop_.store(&context.loop());
    return {};
}

void VirtioConsole::queue_notified(unsigned index) {
    if (!context_) return;
    if (index == kReceiveQueue) {
        if (auto r = serve_receive(context_->queue(kReceiveQueue)); !r) stop("receiveq: " + r.error().message);
    } else if (index == kTransmitQueue) {
        if (auto r = serve_transmit(); !r) stop("transmitq: " + r.error().message);
    }
}

void VirtioConsole::stop(std::string_view why) {
    context_->fail(why);
    context_ = nullptr;  // nothing more until the driver resets the device
}

void VirtioConsole::save_state(StateWriter& out) const {
    out.boolean(guest_wrote_);
    std::lock_guard lock(mutex_);
    std::vector<uint8_t> input(input_.begin(), input_.end());
    out.blob(input);
}

std::function<void()> VirtioConsole::load_state(StateReader& in) {
    bool guest_wrote = in.boolean("port connected");
    std::vector<uint8_t> input = in.blob(input_limit_, "input not yet delivered");
    return [this, guest_wrote, input = std::move(input)] {
        guest_wrote_ = guest_wrote;
        std::lock_guard lock(mutex_);
        input_.assign(input.begin(), input.end());
    };
}

size_t VirtioConsole::receive(std::span<const uint8_t> bytes) {
    size_t taken;
    EventLoop* loop = nullptr;
    {
        std::lock_guard lock(mutex_);
        taken = std::min(bytes.size(), input_limit_ - input_.size());
        input_.insert(input_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(taken));
        if (taken < bytes.size()) host_waiting_ = true;
        // One delivery task at a time; before the first DRIVER_OK there is no loop yet, and
        // activation looks at receiveq anyway.
        if (taken > 0 && !delivery_posted_ && (loop = loop_.load())) delivery_posted_ = true;
    }
    if (loop) loop->post([this] { deliver_input(); });
    return taken;
}

void VirtioConsole::set_room_notifier(std::function<void()> notifier) {
    std::lock_guard lock(mutex_);
    room_notifier_ = std::move(notifier);
}

void VirtioConsole::deliver_input() {
    {
        std::lock_guard lock(mutex_);
        delivery_posted_ = false;
    }
    if (context_ && guest_wrote_ && context_->queue(kReceiveQueue).enabled()) queue_notified(kReceiveQueue);
}

Result<uint32_t> VirtioConsole::fill(uint32_t offset, uint32_t max) {
    size_t count;
    {
        // Only the loop takes bytes out, so the front stays put while the lock is released.
        std::lock_guard lock(mutex_);
        count = std::min({size_t{max}, input_.size(), scratch_.size()});
        std::copy_n(input_.begin(), count, scratch_.begin());
    }
    auto written = receive_chain_.write(context_->dma(), offset, std::span(scratch_).first(count));
    if (!written) return std::unexpected(written.error());
    std::lock_guard lock(mutex_);
    input_.erase(input_.begin(), input_.begin() + static_cast<std::ptrdiff_t>(*written));
    return static_cast<uint32_t>(*written);
}

Result<void> VirtioConsole::serve_receive(Virtqueue& queue) {
    auto has_input = [this] {
        std::lock_guard lock(mutex_);
        return !input_.empty();
    };
    if (!guest_wrote_) return {};
    bool returned = false;
    // Buffers are taken only while there is input for them; with none left, the driver need not
    // notify (new input comes with its own delivery task).
    if (has_input()) {
        if (auto r = queue.disable_notifications(); !r) return r;
    }
    while (has_input()) {
        auto popped = queue.pop_or_arm(receive_chain_);  // input waits for buffers
        if (!popped) return std::unexpected(popped.error());
        if (!*popped) break;
        if (auto r = receive_chain_.expect_only(true, "virtio 1.2 §5.3.6.2"); !r) return r;
        uint32_t written = 0;
        while (written < receive_chain_.writable_bytes()) {
            auto filled = fill(written, receive_chain_.writable_bytes() - written);
            if (!filled) return std::unexpected(filled.error());
            if (*filled == 0) break;
            written += *filled;
        }
        if (auto r = queue.push_used(receive_chain_.head(), written); !r) return r;
        returned = true;
    }
    if (returned) {
        if (auto r = context_->interrupt_if_wanted(kReceiveQueue); !r) return r;
    }
    std::function<void()> notify;
    {
        std::lock_guard lock(mutex_);
        if (host_waiting_ && input_.size() <= input_limit_ / 2) {
            host_waiting_ = false;
            notify = room_notifier_;
        }
    }
    if (notify) notify();
    return {};
}

Result<void> VirtioConsole::serve_transmit() {
    auto transmit = [this](DescriptorChain& chain) -> Result<uint32_t> {
        guest_wrote_ = true;
        if (auto r = chain.expect_only(false, "virtio 1.2 §5.3.6.2"); !r) return std::unexpected(r.error());
        for (uint32_t offset = 0; offset < chain.readable_bytes();) {
            auto got = chain.read(context_->dma(), offset, scratch_);
            if (!got) return std::unexpected(got.error());
            if (*got == 0) break;
            if (output_) output_(std::span<const uint8_t>(scratch_).first(*got));
            offset += static_cast<uint32_t>(*got);
        }
        return 0;  // §5.3.6.1: the device returns transmit buffers with nothing written into them
    };
    if (auto r = context_->serve_available(kTransmitQueue, transmit_chain_, transmit); !r) return r;
    // The first output shows the port connected: input held until now may go.
    Virtqueue& receive = context_->queue(kReceiveQueue);
    return receive.enabled() ? serve_receive(receive) : Result<void>{};
}

}  // namespace strata
