// Message-signalled interrupts under the kvm engine (Documentation/virt/kvm/api.rst): a single
// message goes with KVM_SIGNAL_MSI; a route (an MSI-X vector that fires again and again) is a GSI
// of its own with an MSI entry in the VM's routing table and an irqfd, so a device thread raises
// it with one eventfd write and the kernel delivers it to the in-kernel local APICs.
//
// State:    the PC's pin routes (8259s, IOAPIC) and each route's GSI and message.
// Features: routes are numbered from GSI 24 (after the IOAPIC's pins); KVM_SET_GSI_ROUTING
//           replaces the whole table, so every change writes the pin routes and all programmed
//           MSI routes again; a route whose message is not programmed yet (address 0) has no
//           entry, and its irqfd delivers nothing.
// Missing:  GSI reuse once routes are gone (a VM's routes live as long as its devices).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "base/error.hpp"
#include "bus/msi.hpp"

namespace strata::kvm {

class KvmMsi final : public MsiController {
public:
    // `pin_routes`: the irqchip entries every table keeps.
    KvmMsi(int vm_fd, std::vector<kvm_irq_routing_entry> pin_routes);

    [[nodiscard]] Result<void> apply();  // writes the table; the engine calls it once at creation
    void send(uint64_t address, uint32_t data) override;
    [[nodiscard]] std::unique_ptr<MsiRoute> create_route() override;

private:
    class Route;
    struct Message {
        uint64_t address = 0;
        uint32_t data = 0;
    };
    void set_message(uint32_t gsi, Message message);
    [[nodiscard]] Message message(uint32_t gsi);
    [[nodiscard]] Result<void> apply_locked();

    int vm_fd_;
    std::vector<kvm_irq_routing_entry> pin_routes_;
    std::mutex mutex_;
    std::map<uint32_t, Message> messages_;  // by GSI
    uint32_t next_gsi_ = 24;
};

}  // namespace strata::kvm
