// The constants and structures of the virtio 1.2 specification that Strata's virtio devices, the
// split virtqueue and the virtio-pci transport share. Values are the spec's; names follow it with
// the VIRTIO_/VIRTQ_ prefixes dropped. Transport-specific layouts (virtio-pci capabilities, §4.1)
// live with the transport.
//
// Spec: Virtual I/O Device (VIRTIO) Version 1.2, OASIS Committee Specification 01: §2.1 (device
//       status), §2.7 (split virtqueues), §5 (device types), §6 (reserved feature bits).
#pragma once

#include <bit>
#include <cstdint>

namespace strata::virtio {

// Every field of a virtio 1.x ring and structure is little-endian (§2.7.3 contrasts legacy); the
// structures below are read and written as host objects, which is that on x86-64 only.
static_assert(std::endian::native == std::endian::little, "virtio structures are read as host objects");

// --- §2.1 Device Status Field: bits the driver sets as it initializes the device ---
constexpr uint8_t kStatusAcknowledge = 1;        // the guest found the device
constexpr uint8_t kStatusDriver = 2;             // the guest knows how to drive it
constexpr uint8_t kStatusDriverOk = 4;           // the driver is set up and ready
constexpr uint8_t kStatusFeaturesOk = 8;         // feature negotiation is complete
constexpr uint8_t kStatusDeviceNeedsReset = 64;  // set by the device: it hit an error it cannot recover from
constexpr uint8_t kStatusFailed = 128;           // the guest gave up on the device

// --- §5 Device Types: the device ID (virtio-pci device ID 0x1040 + it, §4.1.2) ---
enum class DeviceType : uint16_t {
    Net = 1,      // §5.1 network device
    Block = 2,    // §5.2 block device
    Console = 3,  // §5.3 console device
    Entropy = 4,  // §5.4 entropy device (virtio-rng)
    Vsock = 19,   // §5.10 socket device
};

// --- §6 Reserved Feature Bits (bits 24..40 are the transport's and the queue's; 0..23 are each
// device type's own). These are bit numbers; feature_mask() makes the 64-bit mask. ---
enum class Feature : unsigned {
    IndirectDesc = 28,      // §2.7.5.3 descriptors may point at indirect descriptor tables
    EventIdx = 29,          // §2.7.7, §2.7.10 used_event / avail_event notification suppression
    Version1 = 32,          // compliant with this specification (not legacy); mandatory for 1.x
    AccessPlatform = 33,    // device addresses go through the platform's IOMMU / restrictions
    RingPacked = 34,        // §2.8 packed virtqueues
    InOrder = 35,           // §2.7.9 buffers are used in the order they were made available
    OrderPlatform = 36,     // the driver needs platform-strength memory barriers
    SrIov = 37,             // single root I/O virtualization
    NotificationData = 38,  // §2.9 the driver passes extra data with its notifications
    NotifConfigData = 39,   // notifications carry the identifier the device gave for the queue
    RingReset = 40,         // §2.6.1 individual virtqueues can be reset
};

[[nodiscard]] constexpr uint64_t feature_mask(Feature feature) { return uint64_t{1} << static_cast<unsigned>(feature); }
[[nodiscard]] constexpr bool has_feature(uint64_t features, Feature feature) {
    return (features & feature_mask(feature)) != 0;
}

// --- §2.7 Split virtqueues ---
constexpr uint32_t kMaxQueueSize = 32768;  // §2.7: "The maximum Queue Size value is 32768", a power of 2

// Alignment and size in bytes of each part (the table in §2.7). The available and used rings'
// sizes include their trailing used_event / avail_event whether or not EVENT_IDX is negotiated.
constexpr uint64_t kDescriptorTableAlignment = 16;
constexpr uint64_t kAvailRingAlignment = 2;
constexpr uint64_t kUsedRingAlignment = 4;
[[nodiscard]] constexpr uint64_t descriptor_table_size(uint32_t queue_size) { return 16 * uint64_t{queue_size}; }
[[nodiscard]] constexpr uint64_t avail_ring_size(uint32_t queue_size) { return 6 + 2 * uint64_t{queue_size}; }
[[nodiscard]] constexpr uint64_t used_ring_size(uint32_t queue_size) { return 6 + 8 * uint64_t{queue_size}; }

// §2.7.5 struct virtq_desc.
struct Descriptor {
    uint64_t addr;   // guest-physical address of the buffer
    uint32_t len;    // its length in bytes
    uint16_t flags;  // kDescriptor* below
    uint16_t next;   // the next descriptor of the chain, when flags has kDescriptorNext
};
static_assert(sizeof(Descriptor) == 16);
constexpr uint16_t kDescriptorNext = 1;      // the chain continues at `next`
constexpr uint16_t kDescriptorWrite = 2;     // device-writable (otherwise device-readable)
constexpr uint16_t kDescriptorIndirect = 4;  // the buffer is a table of descriptors (§2.7.5.3)

// §2.7.6 struct virtq_avail: le16 flags, le16 idx, le16 ring[size], le16 used_event.
constexpr uint64_t kAvailFlagsOffset = 0;
constexpr uint64_t kAvailIdxOffset = 2;
constexpr uint64_t kAvailRingOffset = 4;
[[nodiscard]] constexpr uint64_t used_event_offset(uint32_t queue_size) { return 4 + 2 * uint64_t{queue_size}; }
constexpr uint16_t kAvailNoInterrupt = 1;  // §2.7.7: the driver needs no used buffer notification

// §2.7.8 struct virtq_used: le16 flags, le16 idx, virtq_used_elem ring[size], le16 avail_event.
struct UsedElement {
    uint32_t id;   // head of the descriptor chain that was used
    uint32_t len;  // bytes the device wrote into it
};
static_assert(sizeof(UsedElement) == 8);
constexpr uint64_t kUsedFlagsOffset = 0;
constexpr uint64_t kUsedIdxOffset = 2;
constexpr uint64_t kUsedRingOffset = 4;
[[nodiscard]] constexpr uint64_t avail_event_offset(uint32_t queue_size) { return 4 + 8 * uint64_t{queue_size}; }
constexpr uint16_t kUsedNoNotify = 1;  // §2.7.10: the device needs no available buffer notification

// §2.7.7 with EVENT_IDX: whether moving an index from `old_idx` to `new_idx` passed `event_idx`,
// i.e. event_idx lies in [old_idx, new_idx) modulo 2^16. The same test serves used_event (the
// device deciding to interrupt) and avail_event (the driver deciding to notify).
[[nodiscard]] constexpr bool need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx) {
    return static_cast<uint16_t>(new_idx - event_idx - 1) < static_cast<uint16_t>(new_idx - old_idx);
}

}  // namespace strata::virtio
