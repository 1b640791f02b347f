// A host TAP interface as the guest's network: every frame the guest sends comes out of the
// interface on the host, and every frame the host routes or bridges to it goes to the guest.
//
// State:    the /dev/net/tun descriptor attached to the interface; whether reading is paused; one
//           frame's buffer.
// Features: IFF_TAP | IFF_NO_PI (plain Ethernet frames, no packet information); attaches to an
//           existing interface (made with `ip tuntap add NAME mode tap [user USER]`, which lets
//           that user attach without privileges) or creates one (needs CAP_NET_ADMIN), and says
//           which. Reading pauses while the device cannot take a frame (the guest has no receive
//           buffer): frames then wait in the interface's own queue, where the host's kernel
//           applies its queueing and drops, and reading resumes at receive_ready(). Reads are
//           capped per wake-up so that the guest's transmissions on the same loop are not starved.
// Missing:  IFF_VNET_HDR with checksum and segmentation offloads (TUNSETOFFLOAD); multiqueue;
//           bringing the interface up or giving it addresses (the host's administrator's job).
// Threads:  open() on any thread; the rest on the loop it was started on.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/fd.hpp"
#include "host/net_backend.hpp"

namespace strata {

class TapBackend final : public NetBackend {
public:
    static constexpr unsigned kFramesPerWakeup = 64;

    // Attaches to (or creates) the TAP interface `ifname`. Fails naming it and the reason: no
    // /dev/net/tun, not permitted (with what would permit it), busy (another process has it),
    // not a TAP interface.
    [[nodiscard]] static Result<std::unique_ptr<TapBackend>> open(const std::string& ifname);

    [[nodiscard]] std::string_view name() const override { return name_; }
    [[nodiscard]] const std::string& interface_name() const { return ifname_; }
    [[nodiscard]] Result<void> start(EventLoop& loop, Receiver& receiver) override;
    void stop() override;
    [[nodiscard]] bool send(std::span<const uint8_t> frame) override;
    void receive_ready() override;

private:
    TapBackend(Fd fd, std::string ifname);
    void readable();
    [[nodiscard]] Result<void> watch();
    void report_once(bool& reported, std::string_view what);

    Fd fd_;
    std::string ifname_;
    std::string name_;  // "tap NAME"
    EventLoop* loop_ = nullptr;
    Receiver* receiver_ = nullptr;  // while started
    bool paused_ = false;           // not watching fd_ until receive_ready()
    std::vector<uint8_t> buffer_;   // kMaxFrameSize
    bool reported_read_error_ = false;
    bool reported_write_error_ = false;
};

}  // namespace strata
