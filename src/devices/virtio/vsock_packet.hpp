// The virtio-vsock packet header and its constants (virtio 1.2 §5.10.6), shared by the device
// (virtio_vsock) and its connection logic (vsock_muxer). Names follow the spec without the
// VIRTIO_VSOCK_ prefix.
//
// Spec: virtio 1.2 §5.10.3 (feature bits), §5.10.4 (configuration), §5.10.6 (device operation:
//       .2 addressing, .3 buffer space management, .4 the packet and its header, .5 stream
//       sockets, .7 device events).
#pragma once

#include <cstdint>
#include <type_traits>

namespace strata::vsock {

// §5.10.3 feature bits.
constexpr unsigned kFeatureStream = 0;     // VIRTIO_VSOCK_F_STREAM
constexpr unsigned kFeatureSeqpacket = 1;  // VIRTIO_VSOCK_F_SEQPACKET (not offered)

// The queues (§5.10.2).
constexpr unsigned kRxQueue = 0, kTxQueue = 1, kEventQueue = 2;

// Well-known CIDs (§5.10.4 and Linux's <linux/vm_sockets.h>): 0 is the hypervisor, 1 local
// loopback, 2 the host; 0xffffffff is VMADDR_CID_ANY. A guest gets one of 3..0xfffffffe.
constexpr uint64_t kHostCid = 2;
constexpr uint64_t kFirstGuestCid = 3;
constexpr uint64_t kLastGuestCid = 0xffff'fffe;

// §5.10.6 struct virtio_vsock_hdr, packed, little-endian (read and written as a host object on
// x86-64, like the rest of virtio; see virtio_spec.hpp).
#pragma pack(push, 1)
struct Header {
    uint64_t src_cid;
    uint64_t dst_cid;
    uint32_t src_port;
    uint32_t dst_port;
    uint32_t len;  // payload bytes after the header (RW only)
    uint16_t type;
    uint16_t op;
    uint32_t flags;
    uint32_t buf_alloc;  // the sender's receive buffer for this connection
    uint32_t fwd_cnt;    // bytes the sender has taken out of it, modulo 2^32
};
#pragma pack(pop)
static_assert(sizeof(Header) == 44 && std::is_trivially_copyable_v<Header>);
constexpr uint32_t kHeaderSize = sizeof(Header);

// type
constexpr uint16_t kTypeStream = 1;
constexpr uint16_t kTypeSeqpacket = 2;

// op
enum class Op : uint16_t {
    Invalid = 0,
    Request = 1,       // connect
    Response = 2,      // connection accepted
    Rst = 3,           // connection refused or reset
    Shutdown = 4,      // no more data in the directions of `flags`
    Rw = 5,            // data
    CreditUpdate = 6,  // buf_alloc / fwd_cnt changed
    CreditRequest = 7, // please send a CREDIT_UPDATE
};
constexpr uint16_t kLastOp = 7;

// SHUTDOWN flags: the sender will receive (RCV) or send (SEND) no more.
constexpr uint32_t kShutdownReceive = 1;
constexpr uint32_t kShutdownSend = 2;
constexpr uint32_t kShutdownBoth = kShutdownReceive | kShutdownSend;

// §5.10.6.7 struct virtio_vsock_event: le32 id.
constexpr uint32_t kEventTransportReset = 0;
constexpr uint32_t kEventSize = 4;

// The largest payload a packet may carry: what Linux sends at most
// (VIRTIO_VSOCK_MAX_PKT_BUF_SIZE); the spec sets no limit, so this is the device's rule.
constexpr uint32_t kMaxPayload = 64 * 1024;

}  // namespace strata::vsock
