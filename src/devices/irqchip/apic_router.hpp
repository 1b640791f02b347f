// The APIC bus of a VM without in-kernel interrupt controllers: delivers IOAPIC, MSI and IPI
// messages to the local APICs their destination names, and fans the 8259 pair's INT output out
// to every local APIC's LINT0.
//
// State:    the local APICs (fixed before the vCPUs run), the 8259 pair and IOAPIC they are
//           connected to, the level of the LINT0 line.
// Features: physical destinations (APIC ID; 0xff broadcast for 8-bit destinations, 0xffffffff for
//           x2APIC ones); logical destinations in the xAPIC flat model (LDR[31:24] & MDA) and
//           cluster model (MDA[7:4] cluster, 0xf all clusters; MDA[3:0] members) and in x2APIC
//           mode (cluster in bits 31:16, member bitmap in 15:0); shorthands self, all, all but
//           self; lowest-priority delivery to the matching APIC with the lowest arbitration
//           priority (APR: TPR, ISR and IRR together), the first one on ties. A globally disabled
//           APIC (IA32_APIC_BASE.EN = 0) is not on the bus and gets nothing (SDM §11.4.3); a
//           software-disabled one is matched, refuses fixed and lowest-priority interrupts itself
//           and takes NMI, INIT, SMI and SIPI (§11.4.7.2), and is never chosen as the lowest-
//           priority target. As KVM does, an 8-bit 0xff destination is a broadcast for APICs in
//           x2APIC mode too, so an IOAPIC or MSI without interrupt remapping reaches them all.
// Missing:  focus-processor checking and the chipset's lowest-priority redirection policies;
//           interrupt remapping.
// Spec:     Intel SDM vol. 3A §11.6.2 (destination modes), §11.6.2.4 (lowest priority), §11.6.1
//           (shorthands), §11.12.10 (x2APIC logical destinations).
#pragma once

#include <atomic>
#include <span>
#include <vector>

#include "devices/irqchip/apic_bus.hpp"
#include "devices/irqchip/local_apic.hpp"

namespace strata {

class ApicRouter final : public LocalApicSet {
public:
    ApicRouter() = default;
    explicit ApicRouter(std::span<LocalApic* const> apics);
    ApicRouter(const ApicRouter&) = delete;
    ApicRouter& operator=(const ApicRouter&) = delete;

    // Adds a vCPU's local APIC: before any message is sent (the list is not locked).
    void add(LocalApic& apic);

    // Any thread.
    void send(const ApicMessage& message) override;
    IrqLine& lint0() override { return lint0_; }
    // Passes the 8259 pair and the IOAPIC to every local APIC, also to those added later.
    void connect(ExtIntSource& pic, EoiListener& ioapic) override;

    // Whether `target` is named by the message's destination (shorthand None).
    [[nodiscard]] static bool matches(const LocalApic::Addressing& target, const ApicMessage& message);

private:
    class Lint0Fanout final : public IrqLine {
    public:
        explicit Lint0Fanout(ApicRouter& router) : router_(router) {}
        void set_level(bool asserted) override;

    private:
        ApicRouter& router_;
    };

    std::vector<LocalApic*> apics_;
    ExtIntSource* pic_ = nullptr;
    EoiListener* ioapic_ = nullptr;
    std::atomic<bool> lint0_level_{false};
    Lint0Fanout lint0_{*this};
};

}  // namespace strata
