// virtio-net, the network device: one receive and one transmit queue carrying Ethernet frames
// between the guest and a host back end (host/net_backend.hpp: user networking or a TAP).
//
// State:    the MAC address and link status (the configuration space, fixed); the context between
//           activate() and reset(); the frames held for the guest (a FrameQueue) and a receive chain
//           taken but not yet used; counters.
// Features: receiveq (0) and transmitq (1) (§5.1.2); MRG_RXBUF (§5.1.6.3.1); MAC (§5.1.4: the address the board gives,
//           52:54:00:12:34:56 and on by default), STATUS with LINK_UP, CSUM (§5.1.6.2: the device
//           completes a checksum the driver left partial, for back ends that take only finished
//           frames); MTU (§5.1.4.1) with the back end's, when it has one (user networking: 65520);
//           GUEST_CSUM for a back end whose frames' checksums are its own and right (slirp), whose
//           frames are then marked DATA_VALID so that the guest does not check them again
//           (§5.1.6.4.1). The 12-byte virtio_net_hdr of VERSION_1 (§5.1.6) precedes every frame.
//           Transmit: each chain is checked before anything leaves: a header, a frame of at least
//           an Ethernet header, at most 65562 bytes in all, device-readable buffers only, no
//           segmentation (gso_type NONE: no TSO is offered), a partial checksum only with CSUM and
//           inside the frame. A chain that fails is dropped and counted (the packet is lost, as on a
//           wire), its first such failure said once on stderr, and it is returned used; only a
//           malformed ring needs a reset. The frame then goes to the back end, which may drop it too.
//           Receive: a frame from the back end goes into the next receive chain, header first
//           (flags DATA_VALID with GUEST_CSUM, else 0; gso NONE; §5.1.6.4), or with MRG_RXBUF
//           into as many chains as it needs, num_buffers saying how many, all of them published
//           by one used idx update so that the driver never sees part of a frame; when the
//           driver has made no chain available it waits, with up to kBacklogFrames others (and
//           kBacklogBytes), in arrival order, and beyond that frames are dropped and counted; a
//           driver notification of new buffers delivers what waits. A frame larger than the chain
//           taken for it (with MRG_RXBUF: than every chain of the queue) is dropped and counted,
//           and the chains kept for the next one; chains held for a frame that waits are given
//           back before a snapshot. The back end
//           runs from DRIVER_OK to the reset (so nothing is received before), and frames it gives
//           while the device needs a reset are dropped and counted. A device-readable buffer on
//           receiveq, which the driver cannot mean (§2.7.4: receive buffers are the device's to
//           write), needs a reset.
// Missing:  the TSO/UFO offloads (neither back end takes or gives offload metadata); the control queue (CTRL_VQ: promiscuous mode, MAC filtering, VLANs,
//           announcements); multiqueue (MQ, RSS).
// Threads:  read_config() from vCPUs (constant data); everything else on the transport's loop,
//           where the back end also runs: its frames arrive there, so no lock is needed between
//           receiving and the queues. The counters are atomic for readers elsewhere.
// Spec:     virtio 1.2 §5.1 (Network Device).
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "devices/virtio/frame_queue.hpp"
#include "devices/virtio/virtio_device.hpp"
#include "host/net_backend.hpp"

namespace strata {

class VirtioNet final : public VirtioDevice, private NetBackend::Receiver {
public:
    static constexpr unsigned kReceiveQueue = 0;
    static constexpr unsigned kTransmitQueue = 1;
    static constexpr uint16_t kQueueSize = 256;
    static constexpr uint32_t kHeaderSize = 12;  // struct virtio_net_hdr with VERSION_1 (§5.1.6)
    static constexpr uint32_t kMaxChainBytes = kHeaderSize + kMaxFrameSize;  // 65562
    static constexpr size_t kBacklogFrames = 256;
    static constexpr size_t kBacklogBytes = 512 * 1024;
    static constexpr MacAddress kDefaultMac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

    // Feature bits (§5.1.3).
    static constexpr unsigned kFeatureCsum = 0, kFeatureGuestCsum = 1, kFeatureMtu = 3, kFeatureMac = 5,
                              kFeatureMrgRxbuf = 15, kFeatureStatus = 16;
    // virtio_net_hdr (§5.1.6).
    static constexpr uint8_t kHeaderNeedsCsum = 1;
    static constexpr uint8_t kHeaderDataValid = 2;
    static constexpr uint8_t kGsoNone = 0;
    static constexpr uint16_t kStatusLinkUp = 1;

    struct Counters {
        std::atomic<uint64_t> tx_frames{0}, tx_bytes{0};
        std::atomic<uint64_t> tx_malformed{0};    // chains that broke a rule above
        std::atomic<uint64_t> tx_dropped{0};      // frames the back end refused
        std::atomic<uint64_t> rx_frames{0}, rx_bytes{0};
        std::atomic<uint64_t> rx_dropped{0};      // no buffer and the backlog full, or not started
        std::atomic<uint64_t> rx_too_large{0};    // larger than the chain taken for it
    };

    VirtioNet(std::unique_ptr<NetBackend> backend, MacAddress mac = kDefaultMac);
    ~VirtioNet() override;

    [[nodiscard]] virtio::DeviceType type() const override { return virtio::DeviceType::Net; }
    [[nodiscard]] std::string_view name() const override { return "virtio-net"; }
    [[nodiscard]] uint64_t features() const override;
    [[nodiscard]] unsigned queue_count() const override { return 2; }
    [[nodiscard]] uint16_t max_queue_size(unsigned /*index*/) const override { return kQueueSize; }
    [[nodiscard]] uint32_t config_size() const override { return kConfigSize; }
    void read_config(uint32_t offset, std::span<uint8_t> data) override;
    [[nodiscard]] Result<void> activate(VirtioContext& context) override;
    void queue_notified(unsigned index) override;
    void reset() override;
    // Gives back a receive chain held for a frame that did not fit. Frames waiting in the backlog
    // stay in host memory: a restore does not have them (lost, as on a wire).
    void quiesce() override;

    [[nodiscard]] const Counters& counters() const { return counters_; }
    [[nodiscard]] const MacAddress& mac() const { return mac_; }
    [[nodiscard]] NetBackend& backend() { return *backend_; }

private:
    // struct virtio_net_config (§5.1.4) up to mtu: mac[6], le16 status, le16 max_virtqueue_pairs
    // (0: MQ is not offered), le16 mtu (0 without the MTU feature).
    static constexpr uint32_t kConfigSize = 12;

    // NetBackend::Receiver, on the loop.
    void receive(std::span<const uint8_t> frame) override;
    [[nodiscard]] bool can_receive() const override;

    [[nodiscard]] Result<void> serve_transmit(Virtqueue& queue);
    // Checks the chain in tx_chain_ and copies its frame into tx_frame_: its length, or the rule
    // it breaks.
    [[nodiscard]] Result<size_t> take_frame();
    // Takes one more receive chain for the next frame into rx_held_: false when the driver has
    // none available (it is then asked to notify when it adds one).
    [[nodiscard]] Result<bool> hold_receive_chain();
    // Drops the held chains from the device's books (a reset, a new start, or given back).
    void forget_held_chains();
    // Puts `frame` into the receive chains held and the next ones: one chain, or with MRG_RXBUF as
    // many as it needs. True when the frame is done with (delivered, or dropped as too large: for
    // one chain, or for every chain of the queue), false when the driver has too few available.
    [[nodiscard]] Result<bool> place(std::span<const uint8_t> frame);
    // Writes the header and the frame into the first `buffers` chains held and returns them used.
    [[nodiscard]] Result<void> fill(std::span<const uint8_t> header, std::span<const uint8_t> frame, size_t buffers);
    // Delivers held frames while chains come; then, once none is held, lets the back end go on.
    [[nodiscard]] Result<void> deliver_backlog();
    [[nodiscard]] Result<void> interrupt_if_needed(unsigned index);
    void stop(const Error& error, std::string_view queue);
    [[nodiscard]] bool running() const { return context_ && !failed_; }

    std::unique_ptr<NetBackend> backend_;
    const MacAddress mac_;
    std::array<uint8_t, kConfigSize> config_{};
    VirtioContext* context_ = nullptr;
    bool failed_ = false;
    bool backend_started_ = false;
    bool csum_ = false;        // CSUM negotiated
    bool guest_csum_ = false;  // GUEST_CSUM negotiated (offered for back ends whose checksums need no check)
    bool reported_malformed_ = false;
    DescriptorChain tx_chain_{kQueueSize};
    bool mrg_rxbuf_ = false;   // MRG_RXBUF negotiated
    DescriptorChain rx_chain_{kQueueSize};  // the chain being popped
    // Receive chains taken for the next frame and not yet used (at most one without MRG_RXBUF),
    // oldest first: the last ones popped, so that quiesce() can give them back. Their writable
    // buffers are in rx_segments_, in order.
    struct HeldChain {
        uint16_t head = 0;
        uint32_t first_segment = 0, segments = 0;
        uint32_t bytes = 0;
    };
    std::vector<HeldChain> rx_held_;           // capacity kQueueSize
    std::vector<ChainSegment> rx_segments_;
    uint64_t rx_held_bytes_ = 0;
    std::vector<virtio::UsedElement> rx_used_;  // capacity kQueueSize
    std::vector<uint8_t> tx_frame_;  // kMaxFrameSize
    FrameQueue backlog_{kBacklogFrames, kBacklogBytes};
    Counters counters_;
};

}  // namespace strata
