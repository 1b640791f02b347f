// virtio-vsock, the socket device: stream connections between the guest (its CID) and the host
// (CID 2), whose host ends are Unix sockets (Firecracker's model; see vsock_muxer.hpp for the
// protocol and the connection logic).
//
// State:    the muxer (the listener, the connections); between activate() and reset() the
//           context; an rx chain popped but not yet filled (the muxer had nothing after all), and
//           whether a TRANSPORT_RESET event is owed; one reusable chain and payload buffer per
//           direction.
// Features: queues rx (0), tx (1) and event (2) of 256 entries (§5.10.2); VIRTIO_VSOCK_F_STREAM
//           (§5.10.3; Linux 6.1 does not know the bit and uses streams anyway, as §5.10.3 lets it);
//           configuration space guest_cid (le64, §5.10.4). tx: each chain is one packet, a 44-byte
//           header and its payload, however the driver split them into buffers (§2.7.4); a chain
//           shorter than a header is dropped and returned, the rest goes to the muxer, which
//           checks every field. rx: each packet for the guest goes into one chain, header then
//           payload, as much payload as the chain holds (and the guest's credit allows), returned
//           with the bytes written. event: transport_reset() drops every connection and puts
//           VIRTIO_VSOCK_EVENT_TRANSPORT_RESET into an event buffer (§5.10.6.7), after which the
//           driver resets its sockets and reads guest_cid again. A device-readable buffer on rx or
//           event, a device-writable one on tx, an rx buffer too small for a header or an event
//           buffer too small for an event break the spec's framing rules for the driver (§5.10.6.4,
//           §5.10.6.7): like a malformed ring, DEVICE_NEEDS_RESET. A reset or failure closes every
//           connection (host programs read EOF); the listener stays for the next driver.
// Missing:  SEQPACKET and F_NO_IMPLIED_STREAM. TRANSPORT_RESET is sent after a snapshot's restore
//           (restored()), whose process has none of the host-side connections.
// Threads:  everything on the transport's loop but read_config() (vCPUs; the CID is constant),
//           connection_count() and transport_reset() (any thread).
// Spec:     virtio 1.2 §5.10 (Socket Device).
#pragma once

#include <array>
#include <atomic>
#include <memory>

#include "devices/virtio/virtio_device.hpp"
#include "devices/virtio/vsock_muxer.hpp"

namespace strata {

class VirtioVsock final : public VirtioDevice {
public:
    static constexpr uint16_t kQueueSize = 256;
    static constexpr uint32_t kConfigSize = 8;  // struct virtio_vsock_config: le64 guest_cid

    // Binds the host side's listener (VsockMuxer::create): a clear error for a path that exists,
    // a directory that does not, or a path too long for a Unix socket.
    [[nodiscard]] static Result<std::unique_ptr<VirtioVsock>> create(VsockOptions options);
    ~VirtioVsock() override;

    [[nodiscard]] virtio::DeviceType type() const override { return virtio::DeviceType::Vsock; }
    [[nodiscard]] std::string_view name() const override { return "virtio-vsock"; }
    [[nodiscard]] uint64_t features() const override { return uint64_t{1} << vsock::kFeatureStream; }
    [[nodiscard]] unsigned queue_count() const override { return 3; }
    [[nodiscard]] uint16_t max_queue_size(unsigned /*index*/) const override { return kQueueSize; }
    [[nodiscard]] uint32_t config_size() const override { return kConfigSize; }
    void read_config(uint32_t offset, std::span<uint8_t> data) override;
    [[nodiscard]] Result<void> activate(VirtioContext& context) override;
    void queue_notified(unsigned index) override;
    void reset() override;
    // Gives back an rx chain popped for a packet the muxer did not have after all.
    void quiesce() override;
    // Connections are the process's: a restored device has none, and owes the driver a
    // TRANSPORT_RESET, after which the guest's sockets see their connections reset.
    void restored() override;

    // Drops every connection and owes the driver a TRANSPORT_RESET event (§5.10.6.7). Any thread;
    // nothing happens before the first DRIVER_OK.
    void transport_reset();
    // The connections open (host programs still sending their CONNECT line included), as of the
    // loop's last piece of work. Any thread.
    [[nodiscard]] size_t connection_count() const { return connection_count_.load(); }

private:
    class LoopWatcher;

    explicit VirtioVsock(std::unique_ptr<VsockMuxer> muxer);
    void rx_wanted();  // the muxer has a packet for the guest
    void after_work();
    void stop(std::string_view why);
    [[nodiscard]] Result<void> serve_tx();
    [[nodiscard]] Result<void> serve_rx();
    [[nodiscard]] Result<void> serve_events();
    void restart_transport();

    std::unique_ptr<LoopWatcher> watcher_;  // declared first: the muxer that uses it goes before it
    std::unique_ptr<VsockMuxer> muxer_;
    VirtioContext* context_ = nullptr;       // the loop's
    std::atomic<EventLoop*> loop_{nullptr};  // set at the first activate(); the same loop until the end
    bool busy_ = false;         // serving a queue: the muxer's rx wishes wait for its end
    bool rx_held_ = false;      // rx_chain_ is popped and not yet used
    bool event_owed_ = false;   // a TRANSPORT_RESET for the event queue
    std::atomic<size_t> connection_count_{0};
    DescriptorChain rx_chain_{kQueueSize};
    DescriptorChain tx_chain_{kQueueSize};
    DescriptorChain event_chain_{kQueueSize};
    std::array<uint8_t, vsock::kMaxPayload> rx_payload_{};
    std::array<uint8_t, vsock::kMaxPayload> tx_payload_{};
};

}  // namespace strata
