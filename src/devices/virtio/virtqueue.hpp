// A split virtqueue (virtio 1.2 §2.7) as the device sees it: the descriptor chains the driver
// makes available, walked and checked against a hostile driver, and the used ring the device
// returns them on, with both directions of notification suppression.
//
// State:    the configuration the driver wrote (queue size, the guest addresses of the descriptor
//           table, the available ring (driver area) and the used ring (device area), whether
//           EVENT_IDX and INDIRECT_DESC were negotiated); next_avail, the free-running index of the
//           next available-ring entry the device takes; used_idx, the used index it last
//           published (kept here, never read back from the guest); and the used index at the
//           last should_interrupt() decision.
// Features: enable() checks the configuration: a power-of-two size from 1 to 32768, the §2.7
//           alignments (16/2/4), and every area wholly in guest RAM. pop() takes the next
//           available chain into a caller-owned DescriptorChain: direct descriptors, then at most
//           one indirect table (§2.7.5.3.2: "zero or more normal chained descriptors followed by a
//           single descriptor with INDIRECT"), as segments in chain order. push_used() writes the
//           used element, then publishes used->idx with release order (§2.7.8.2).
//           should_interrupt() applies NO_INTERRUPT, or with EVENT_IDX used_event (§2.7.7);
//           disable_notifications() / enable_notifications() set NO_NOTIFY, or with EVENT_IDX
//           avail_event (§2.7.10). DescriptorChain copies to and from guest memory through
//           GuestDma, within the segments.
//           pop() fails, naming the descriptor, when a chain breaks a rule: the avail idx more
//           than the queue size ahead of next_avail; a head or next index past its table;
//           INDIRECT without the feature, together with NEXT (forbidden to the driver by
//           §2.7.5.3.1; refused rather than ignored, since ignoring it would drop buffers the driver
//           counts on), or inside an indirect table; an indirect table whose length is not a
//           non-zero multiple of 16 or that is not in RAM; more descriptors in a table than it has
//           (a loop), or more buffers in a chain than the queue size (§2.7.5.3.1); a buffer not in
//           RAM (or whose address + length wraps); a device-readable buffer after a
//           device-writable one (§2.7.4.2); more buffers or bytes than the DescriptorChain takes.
//           Zero-length buffers are allowed (the spec does not forbid them): they count in the
//           chain and in the readable-before-writable order, but give no segment, and their
//           address is not checked since no byte of it is ever touched.
// Missing:  packed virtqueues (§2.8); VIRTIO_F_IN_ORDER's shortcut of one used element for a
//           batch (§2.7.9; each chain is pushed on its own, which is still correct);
//           NOTIFICATION_DATA; ACCESS_PLATFORM (device addresses are guest-physical); publishing
//           several used elements with one idx store.
// Threads:  a Virtqueue is not thread-safe: one device thread uses it at a time, and the device
//           serializes the transport's enable() and reset() with its processing. The driver runs
//           concurrently on vCPUs and may rewrite the rings and descriptors at any moment: every
//           descriptor is read once into a local copy that is checked and then used, so a change
//           after the check (or a torn read) cannot bypass it; ring indexes are loaded with
//           acquire and published with release order, and a full fence separates a store the
//           driver must see from the load that follows it (used idx → used_event/flags, avail_event
//           or flags → avail idx), as §2.7.7 and §2.7.10 need against lost notifications.
// Spec:     virtio 1.2 §2.7 (split virtqueues), §2.7.4 (message framing), §2.7.5 (descriptor
//           table, indirect descriptors), §2.7.6 (available ring), §2.7.7 (used buffer
//           notification suppression), §2.7.8 (used ring), §2.7.10 (available buffer
//           notification suppression).
//
// A device's loop, on a notification from the driver (each call's error checked):
//     for (;;) {
//         queue.disable_notifications();
//         while (*queue.pop(chain)) { ...use chain...; queue.push_used(chain.head(), written); }
//         if (*queue.should_interrupt()) irq.raise();
//         if (!*queue.enable_notifications()) break;  // true: buffers came meanwhile
//     }
// and on any error: DEVICE_NEEDS_RESET, one line on stderr, and no more use of the queue until
// the driver resets it. (A buffer's bytes are the driver's too: a device reads a request header
// once, into host memory, before it checks it.)
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "memory/guest_dma.hpp"
#include "devices/virtio/virtio_spec.hpp"

namespace strata {

// One buffer of a chain: [gpa, gpa + length) of guest RAM, checked when the chain was popped.
struct ChainSegment {
    uint64_t gpa = 0;
    uint32_t length = 0;  // never 0
    bool device_writable = false;
};

// A popped descriptor chain: its head (what push_used() returns) and its buffers, readable ones
// first. The caller owns it and reuses it for every pop(), which then allocates nothing.
class DescriptorChain {
public:
    // Room for `max_segments` buffers (allocated here, once) and at most `max_bytes` in all;
    // pop() refuses a chain with more. The default is what a used element's 32-bit len can count
    // (the spec's own cap is 2^32 bytes, §2.7.5.2); a device with a smaller request size says so.
    explicit DescriptorChain(uint32_t max_segments, uint32_t max_bytes = UINT32_MAX);

    [[nodiscard]] uint16_t head() const { return head_; }
    [[nodiscard]] std::span<const ChainSegment> segments() const { return segments_; }
    [[nodiscard]] std::span<const ChainSegment> readable() const { return std::span(segments_).first(readable_count_); }
    [[nodiscard]] std::span<const ChainSegment> writable() const {
        return std::span(segments_).subspan(readable_count_);
    }
    [[nodiscard]] uint32_t readable_bytes() const { return readable_bytes_; }
    [[nodiscard]] uint32_t writable_bytes() const { return writable_bytes_; }
    [[nodiscard]] uint32_t max_segments() const { return max_segments_; }
    [[nodiscard]] uint32_t max_bytes() const { return max_bytes_; }
    // Fails, naming the chain and `rule`, when it has a buffer of the direction a queue's buffers
    // must not have: any device-writable one when `device_writable` is false (the device only
    // reads them: transmit queues), any device-readable one when it is true.
    [[nodiscard]] Result<void> expect_only(bool device_writable, std::string_view rule) const;

    // Copies the readable bytes from `offset` (counted across the readable segments in order)
    // into `out`; returns how many there were, less than out.size() where the readable part ends.
    [[nodiscard]] Result<size_t> read(const GuestDma& dma, uint64_t offset, std::span<uint8_t> out) const;
    // Copies `in` into the writable segments from `offset`; returns how many bytes fitted. The
    // observers of `dma` are told of every byte written.
    [[nodiscard]] Result<size_t> write(const GuestDma& dma, uint64_t offset, std::span<const uint8_t> in) const;

private:
    friend class Virtqueue;
    void start(uint16_t head);
    // Appends a buffer (checked to be in RAM when not empty); fails on the readable-before-writable
    // order or a limit, and the caller names the descriptor.
    [[nodiscard]] Result<void> add(uint64_t gpa, uint32_t length, bool device_writable);

    std::vector<ChainSegment> segments_;  // capacity max_segments_, never grown
    uint32_t max_segments_;
    uint32_t max_bytes_;
    uint16_t head_ = 0;
    size_t readable_count_ = 0;
    bool seen_writable_ = false;  // including zero-length buffers, which give no segment
    uint32_t readable_bytes_ = 0;
    uint32_t writable_bytes_ = 0;
};

// What the driver configured for a queue, through the transport (virtio-pci: queue_size,
// queue_desc, queue_driver, queue_device, §4.1.4.3) and the negotiated features.
struct VirtqueueConfig {
    uint32_t size = 0;              // entries: a power of two, 1 to 32768
    uint64_t descriptor_table = 0;  // 16-byte aligned, 16 * size bytes
    uint64_t avail_ring = 0;        // the driver area: 2-byte aligned, 6 + 2 * size bytes
    uint64_t used_ring = 0;         // the device area: 4-byte aligned, 6 + 8 * size bytes
    bool event_idx = false;         // VIRTIO_F_EVENT_IDX negotiated
    bool indirect_descriptors = false;  // VIRTIO_F_INDIRECT_DESC negotiated
};

// Where a device is in an enabled queue: what a snapshot keeps beside the configuration.
struct VirtqueuePosition {
    uint16_t next_avail = 0;
    uint16_t used_idx = 0;
    uint16_t signalled_used = 0;
    friend bool operator==(const VirtqueuePosition&, const VirtqueuePosition&) = default;
};

class Virtqueue {
public:
    explicit Virtqueue(const GuestDma& dma) : dma_(dma) {}

    // Takes the configuration when it is valid (otherwise fails naming the problem and stays
    // disabled), starting from index 0 as after a reset.
    [[nodiscard]] Result<void> enable(const VirtqueueConfig& config);
    // Back to disabled and unconfigured (device reset, §2.4; queue reset).
    void reset();
    [[nodiscard]] bool enabled() const { return enabled_; }
    [[nodiscard]] const VirtqueueConfig& config() const { return config_; }

    // Takes the next available chain into `chain`: true, or false when there is none; fails when
    // the driver broke a rule (see the top of this file). On failure nothing is consumed.
    [[nodiscard]] Result<bool> pop(DescriptorChain& chain);
    // pop() for a device that waits for buffers (receive queues): with none available, asks for
    // a notification (enable_notifications()) and takes one made available meanwhile, which
    // would come without one. False: none, and the driver will notify when it adds one.
    [[nodiscard]] Result<bool> pop_or_arm(DescriptorChain& chain);

    // Returns the chain at `head` to the driver, `written` bytes written into it (§2.7.8: written
    // into its writable buffers before this call). Fails for a head past the queue size or when no
    // chain is in flight (the device's bug, refused rather than corrupting the driver's view).
    [[nodiscard]] Result<void> push_used(uint16_t head, uint32_t written);
    // push_used() of several chains, published by one store of the used idx, so that the driver
    // sees all of them or none: a packet spread over several receive buffers (virtio-net's
    // MRG_RXBUF, §5.1.6.4) must arrive whole. Fails, publishing nothing, when fewer chains than
    // `elements` are in flight or a head is past the queue size.
    [[nodiscard]] Result<void> push_used(std::span<const virtio::UsedElement> elements);

    // Whether the driver wants a used buffer notification (an interrupt) for what push_used()
    // published since the last call: never when nothing was; otherwise unless NO_INTERRUPT is set
    // or, with EVENT_IDX, unless used_event was not passed (§2.7.7.2). Call it after a batch.
    [[nodiscard]] Result<bool> should_interrupt();

    // Tells the driver that the device is polling and needs no available buffer notifications:
    // NO_NOTIFY in the used ring's flags; with EVENT_IDX nothing is written (avail_event stays
    // behind, so the driver notifies at most once more). A hint the driver may ignore (§2.7.10).
    [[nodiscard]] Result<void> disable_notifications();
    // Asks for notifications again before the device waits: flags 0, or with EVENT_IDX
    // avail_event = next_avail ("notify when you make entry next_avail available"); then, after a
    // full fence, looks at the avail idx again: true when buffers are waiting (added while
    // notifications were off), which the device pops instead of waiting.
    [[nodiscard]] Result<bool> enable_notifications();

    [[nodiscard]] uint16_t next_avail() const { return next_avail_; }
    [[nodiscard]] uint16_t used_idx() const { return used_idx_; }

    // Snapshots. Gives back the `count` chains pop() took last, which must be all that are in
    // flight: the next pops take them again (receive chains held for data that has not come,
    // before the device's state is saved).
    [[nodiscard]] Result<void> unpop(uint16_t count = 1);
    [[nodiscard]] VirtqueuePosition position() const { return {next_avail_, used_idx_, signalled_used_}; }
    // enable(), then carries on from `position`, which must have no chain in flight (a quiesced
    // device's, as a snapshot has it).
    [[nodiscard]] Result<void> restore(const VirtqueueConfig& config, VirtqueuePosition position);

private:
    [[nodiscard]] Result<void> walk_chain(uint16_t head, DescriptorChain& chain) const;

    const GuestDma& dma_;
    VirtqueueConfig config_;
    bool enabled_ = false;
    uint16_t next_avail_ = 0;
    uint16_t used_idx_ = 0;
    uint16_t signalled_used_ = 0;  // used_idx_ at the last should_interrupt()
};

}  // namespace strata
