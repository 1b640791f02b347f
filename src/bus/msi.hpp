// Message-signalled interrupts as a device sees them: a write of `data` to `address` (0xFEExxxxx)
// that the platform turns into an interrupt message to local APICs (SDM vol. 3A §11.11). The
// engine decides how: the soft engine hands the message to its local APICs; the kvm engine sends
// it with KVM_SIGNAL_MSI, or for a route through a GSI with an MSI routing entry and an irqfd,
// which the kernel delivers without a VMM ioctl per interrupt.
#pragma once

#include <cstdint>
#include <memory>

namespace strata {

// One vector a device raises again and again (an MSI-X table entry): the message the guest
// programmed, and the way to send it.
class MsiRoute {
public:
    virtual ~MsiRoute() = default;
    // The guest changed the message; the next trigger() sends the new one.
    virtual void set_message(uint64_t address, uint32_t data) = 0;
    // Sends the message. Any thread.
    virtual void trigger() = 0;
};

class MsiController {
public:
    virtual ~MsiController() = default;
    // Sends one message. Any thread.
    virtual void send(uint64_t address, uint32_t data) = 0;
    // A route for one vector. The default sends through send(); an engine with a faster path
    // (the kvm engine's irqfds) overrides it.
    [[nodiscard]] virtual std::unique_ptr<MsiRoute> create_route();
};

}  // namespace strata
