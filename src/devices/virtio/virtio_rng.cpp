#include "devices/virtio/virtio_rng.hpp"

#include <sys/random.h>

#include <array>
#include <cerrno>

namespace strata {

Result<void> VirtioRng::activate(VirtioContext& context) {
    context_ = &context;
    return {};
}

void VirtioRng::queue_notified(unsigned index) {
    if (!context_ || index != 0) return;
    if (auto r = serve(context_->queue(0)); !r) context_->fail(r.error().message);
}

Result<void> VirtioRng::serve(Virtqueue& queue) {
    std::array<uint8_t, 4096> random{};
    for (;;) {
        if (auto r = queue.disable_notifications(); !r) return r;
        for (;;) {
            auto popped = queue.pop(chain_);
            if (!popped) return std::unexpected(popped.error());
            if (!*popped) break;
            uint32_t filled = 0;
            while (filled < chain_.writable_bytes()) {
                size_t want = std::min<size_t>(random.size(), chain_.writable_bytes() - filled);
                ssize_t got = ::getrandom(random.data(), want, 0);
                if (got < 0 && errno == EINTR) continue;
                if (got <= 0) return fail_errno("getrandom");
                auto written = chain_.write(context_->dma(), filled, std::span(random).first(static_cast<size_t>(got)));
                if (!written) return std::unexpected(written.error());
                filled += static_cast<uint32_t>(*written);
            }
            if (auto r = queue.push_used(chain_.head(), filled); !r) return r;
        }
        auto interrupt = queue.should_interrupt();
        if (!interrupt) return std::unexpected(interrupt.error());
        if (*interrupt) context_->interrupt(0);
        auto more = queue.enable_notifications();
        if (!more) return std::unexpected(more.error());
        if (!*more) return {};
    }
}

}  // namespace strata
