// virtio-rng, the entropy device: fills every buffer the driver offers with random bytes from
// the host's getrandom(2).
//
// State:    the context between activate() and reset(); one reusable descriptor chain.
// Features: one request queue (§5.4.2); no feature bits, no configuration space (§5.4.3, 5.4.4);
//           each chain's device-writable buffers are filled whole (up to 64 KiB a chain) and
//           returned with that length; a chain with no writable buffer returns with 0 bytes.
// Missing:  nothing: the device has nothing more.
// Spec:     virtio 1.2 §5.4 (Entropy Device).
#pragma once

#include "devices/virtio/virtio_device.hpp"

namespace strata {

class VirtioRng final : public VirtioDevice {
public:
    static constexpr uint32_t kMaxChainBytes = 64 * 1024;

    [[nodiscard]] virtio::DeviceType type() const override { return virtio::DeviceType::Entropy; }
    [[nodiscard]] std::string_view name() const override { return "virtio-rng"; }
    [[nodiscard]] uint64_t features() const override { return 0; }
    [[nodiscard]] unsigned queue_count() const override { return 1; }
    [[nodiscard]] Result<void> activate(VirtioContext& context) override;
    void queue_notified(unsigned index) override;
    void reset() override { context_ = nullptr; }

private:
    [[nodiscard]] Result<void> serve();

    VirtioContext* context_ = nullptr;
    DescriptorChain chain_{256, kMaxChainBytes};
};

}  // namespace strata
