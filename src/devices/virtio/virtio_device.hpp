// The boundary between a virtio device type (blk, net, console, rng, vsock) and the transport
// that carries it (virtio-pci): the device type says what it offers and does the work on its
// queues; the transport does discovery, feature negotiation, status, queue configuration,
// notifications and interrupts (virtio 1.2 §2 and §4).
//
// Threads: every VirtioDevice call but the configuration-space ones is made on the device's
// event loop (VirtioContext::loop()); read_config/write_config come from vCPU threads, so what
// they touch the device synchronizes itself.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "base/state_stream.hpp"
#include "devices/virtio/virtio_spec.hpp"
#include "devices/virtio/virtqueue.hpp"
#include "host/event_loop.hpp"
#include "memory/guest_dma.hpp"

namespace strata {

// What the transport gives a device once the driver has set DRIVER_OK.
class VirtioContext {
public:
    virtual ~VirtioContext() = default;
    [[nodiscard]] virtual const GuestDma& dma() = 0;
    [[nodiscard]] virtual uint64_t features() = 0;  // negotiated
    [[nodiscard]] virtual Virtqueue& queue(unsigned index) = 0;  // index < queue_count()
    [[nodiscard]] virtual EventLoop& loop() = 0;
    // A used buffer notification for queue `index`: the device calls it when the queue's
    // should_interrupt() says so.
    virtual void interrupt(unsigned index) = 0;
    // After a batch of push_used() on queue `index`: the interrupt, if the driver wants one.
    [[nodiscard]] Result<void> interrupt_if_wanted(unsigned index) {
        auto wanted = queue(index).should_interrupt();
        if (!wanted) return std::unexpected(wanted.error());
        if (*wanted) interrupt(index);
        return {};
    }
    // Serves every chain the driver has made available on queue `index`, with notifications off
    // while it works (§2.7.10): `serve(chain)` returns the bytes it wrote into the chain, which
    // then goes back used; then the interrupt if the driver wants one, and notifications on again,
    // with another round for chains made available meanwhile.
    template <class Serve>
    [[nodiscard]] Result<void> serve_available(unsigned index, DescriptorChain& chain, Serve serve) {
        Virtqueue& ring = queue(index);
        for (;;) {
            if (auto r = ring.disable_notifications(); !r) return r;
            for (;;) {
                auto popped = ring.pop(chain);
                if (!popped) return std::unexpected(popped.error());
                if (!*popped) break;
                Result<uint32_t> written = serve(chain);
                if (!written) return std::unexpected(written.error());
                if (auto r = ring.push_used(chain.head(), *written); !r) return r;
            }
            if (auto r = interrupt_if_wanted(index); !r) return r;
            auto more = ring.enable_notifications();
            if (!more) return std::unexpected(more.error());
            if (!*more) return {};
        }
    }
    // The device configuration changed (§2.5.1: a configuration change notification).
    virtual void config_changed() = 0;
    // The device hit an error it cannot recover from (a malformed ring, a back end gone): it sets
    // DEVICE_NEEDS_RESET, says `why` on stderr once, and gets no more notifications until the
    // driver resets it (§2.1.1).
    virtual void fail(std::string_view why) = 0;
};

class VirtioDevice {
public:
    virtual ~VirtioDevice() = default;

    [[nodiscard]] virtual virtio::DeviceType type() const = 0;
    // A name for messages: "virtio-rng".
    [[nodiscard]] virtual std::string_view name() const = 0;
    // The device-type feature bits (0-23) and ring bits it supports; the transport adds
    // VERSION_1, INDIRECT_DESC and EVENT_IDX, which Virtqueue implements for every device.
    [[nodiscard]] virtual uint64_t features() const = 0;
    [[nodiscard]] virtual unsigned queue_count() const = 0;
    [[nodiscard]] virtual uint16_t max_queue_size(unsigned /*index*/) const { return 256; }

    // The device-specific configuration space (§4.1.4.6), read and written by vCPU threads.
    [[nodiscard]] virtual uint32_t config_size() const { return 0; }
    virtual void read_config(uint32_t /*offset*/, std::span<uint8_t> data) {
        for (uint8_t& b : data) b = 0;
    }
    virtual void write_config(uint32_t /*offset*/, std::span<const uint8_t> /*data*/) {}

    // DRIVER_OK: the enabled queues are configured and checked; `context` stays valid until
    // reset(). A failure puts the device into DEVICE_NEEDS_RESET with its message.
    [[nodiscard]] virtual Result<void> activate(VirtioContext& context) = 0;
    // The driver notified queue `index` (only between activate() and reset()).
    virtual void queue_notified(unsigned index) = 0;
    // Device reset (§2.4): stop all work, forget the context, drop pending requests.
    virtual void reset() = 0;

    // Snapshots, on the loop, which the transport then holds until the snapshot is written
    // (VirtioPci::quiesce). quiesce() finishes the work in flight (requests the back end is
    // still doing complete and go back used) and gives back chains taken but not yet filled
    // (Virtqueue::unpop), so that the rings alone say where the device is; active or not. A
    // ring found broken meanwhile fails the device (VirtioContext::fail), as it would have anyway.
    virtual void quiesce() {}
    // The device type's own state beyond its rings and its configuration (which the machine's
    // configuration gives): console input not yet delivered, for one. Nothing by default.
    virtual void save_state(StateWriter& /*out*/) const {}
    // Reads what save_state() wrote, refusing (through `in`) what the device cannot hold, and
    // returns the change that sets it, made on the loop before the activation that continues
    // a restored device.
    [[nodiscard]] virtual std::function<void()> load_state(StateReader& /*in*/) {
        return [] {};
    }
    // After that activation: what the device owes a driver whose host-side peers did not survive
    // the restore (vsock: a TRANSPORT_RESET event).
    virtual void restored() {}
};

}  // namespace strata
