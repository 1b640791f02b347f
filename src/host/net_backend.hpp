// The host side of a virtual network card: where the Ethernet frames a guest sends go, and where
// the frames it receives come from. The device (devices/virtio/virtio_net) sees only this.
//
// State:    each back end's own (a user-mode TCP/IP stack, a TAP descriptor).
// Features: whole Ethernet frames without any virtio header, both ways; the back end runs on the
//           event loop it is started on (the device's), so send() and the receiver's calls happen
//           on that one thread and the device needs no lock for them. Flow control towards the
//           guest: a back end asks the receiver whether it can take a frame now; one that can leave
//           frames on the host (TAP: in the kernel's queue) stops reading until receive_ready(),
//           one that cannot (slirp) hands every frame over and the device queues or drops it.
//           Two implementations: SlirpBackend (host/slirp_backend.hpp, user networking) and
//           TapBackend (host/tap_backend.hpp).
//           A back end may also say what MTU the guest should use and that its frames' checksums
//           need no checking in the guest.
// Missing:  offload metadata (checksum, segmentation) in either direction: frames are complete.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "host/event_loop.hpp"

namespace strata {

using MacAddress = std::array<uint8_t, 6>;
using Ipv4Address = std::array<uint8_t, 4>;

[[nodiscard]] std::string format_mac(const MacAddress& mac);    // "52:54:00:12:34:56"
[[nodiscard]] std::string format_ipv4(const Ipv4Address& ip);   // "10.0.2.15"

// The largest frame either direction carries: the 65535-byte IP packet of the largest MTU Linux
// allows a virtio-net interface, with its 14-byte Ethernet header and a VLAN tag, rounded to what
// the 65562-byte limit on a transmit chain leaves after the 12-byte virtio_net_hdr.
constexpr size_t kMaxFrameSize = 65550;
constexpr size_t kEthernetHeaderSize = 14;

class NetBackend {
public:
    // The device, as the back end sees it; called on the loop only.
    class Receiver {
    public:
        virtual ~Receiver() = default;
        // One frame for the guest (the span is valid during the call only).
        virtual void receive(std::span<const uint8_t> frame) = 0;
        // Whether receive() would put a frame into a guest buffer or a short queue now; false
        // while the device is holding frames for want of guest buffers.
        [[nodiscard]] virtual bool can_receive() const = 0;
    };

    virtual ~NetBackend() = default;
    // For messages: "user network", "tap strata0".
    [[nodiscard]] virtual std::string_view name() const = 0;
    // Starts delivering frames to `receiver` on `loop` (from the loop thread, or before it runs
    // anything of this back end). Called when the guest's driver starts the device.
    [[nodiscard]] virtual Result<void> start(EventLoop& loop, Receiver& receiver) = 0;
    // Stops watching the host (on the loop thread): no receiver call after it returns. Called at
    // a device reset and before the loop goes away; start() may follow again.
    virtual void stop() = 0;
    // The MTU the guest's interface should take (virtio-net's MTU feature), or 0 to advertise none
    // and leave the guest at Ethernet's 1500.
    [[nodiscard]] virtual uint16_t mtu() const { return 0; }
    // Whether every frame the back end gives has complete and correct checksums of its own making
    // (its own TCP/IP stack built the packet), so that the guest may skip checking them.
    [[nodiscard]] virtual bool checksums_verified() const { return false; }
    // Sends one frame from the guest (on the loop); false when the host dropped it.
    [[nodiscard]] virtual bool send(std::span<const uint8_t> frame) = 0;
    // The receiver can take frames again after can_receive() said no.
    virtual void receive_ready() {}
};

}  // namespace strata
