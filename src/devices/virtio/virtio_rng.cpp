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
    if (auto r = serve(); !r) context_->fail(r.error().message);
}

Result<void> VirtioRng::serve() {
    return context_->serve_available(0, chain_, [this](DescriptorChain& chain) -> Result<uint32_t> {
        std::array<uint8_t, 4096> random{};
        uint32_t filled = 0;
        while (filled < chain.writable_bytes()) {
            size_t want = std::min<size_t>(random.size(), chain.writable_bytes() - filled);
            ssize_t got = ::getrandom(random.data(), want, 0);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) return fail_errno("getrandom");
            auto written = chain.write(context_->dma(), filled, std::span(random).first(static_cast<size_t>(got)));
            if (!written) return std::unexpected(written.error());
            filled += static_cast<uint32_t>(*written);
        }
        return filled;
    });
}

}  // namespace strata
