#include "devices/irqchip/apic_router.hpp"

namespace strata {

ApicRouter::ApicRouter(std::span<LocalApic* const> apics) {
    for (LocalApic* apic : apics) add(*apic);
}

void ApicRouter::add(LocalApic& apic) {
    apics_.push_back(&apic);
    if (pic_ != nullptr) apic.connect(*pic_, *ioapic_);
    if (lint0_level_.load()) apic.set_lint0(true);
}

void ApicRouter::connect(ExtIntSource& pic, EoiListener& ioapic) {
    pic_ = &pic;
    ioapic_ = &ioapic;
    for (LocalApic* apic : apics_) apic->connect(pic, ioapic);
}

void ApicRouter::Lint0Fanout::set_level(bool asserted) {
    router_.lint0_level_.store(asserted);
    // Every LAPIC sees the line; only one whose LVT LINT0 is unmasked (the BSP's, in ExtINT mode,
    // as firmware leaves it) does anything with it.
    for (LocalApic* apic : router_.apics_) apic->set_lint0(asserted);
}

bool ApicRouter::matches(const LocalApic::Addressing& target, const ApicMessage& message) {
    if (!target.enabled) return false;
    uint32_t destination = message.x2apic_destination ? message.destination : message.destination & 0xff;
    uint32_t broadcast = message.x2apic_destination ? 0xffff'ffffu : 0xffu;
    if (destination == broadcast) return true;  // physical and logical (§11.6.2.1, §11.6.2.2)
    if (!message.logical) return target.id == destination;
    if (target.x2apic) {
        // Cluster in bits 31:16, one bit per member in 15:0 (§11.12.10.2).
        return (target.ldr >> 16) == (destination >> 16) && (target.ldr & destination & 0xffff) != 0;
    }
    uint32_t logical_id = target.ldr >> 24;
    if (!target.cluster_model) return (logical_id & destination) != 0;  // flat: a bit per APIC
    // Cluster: MDA[7:4] names the cluster (0xf: every cluster), MDA[3:0] its members.
    bool cluster = (logical_id >> 4) == (destination >> 4) || (destination >> 4) == 0xf;
    return cluster && (logical_id & destination & 0xf) != 0;
}

void ApicRouter::send(const ApicMessage& message) {
    auto named = [&](const LocalApic* apic, const LocalApic::Addressing& target) {
        switch (message.shorthand) {
            case DestinationShorthand::None: return matches(target, message);
            case DestinationShorthand::Self: return target.enabled && apic == message.source;
            case DestinationShorthand::AllIncludingSelf: return target.enabled;
            case DestinationShorthand::AllExcludingSelf: return target.enabled && apic != message.source;
        }
        return false;
    };
    if (message.mode == DeliveryMode::LowestPriority) {
        // One target: the lowest arbitration priority among those that would take it (§11.6.2.4).
        LocalApic* chosen = nullptr;
        uint8_t lowest = 0;
        for (LocalApic* apic : apics_) {
            LocalApic::Addressing target = apic->addressing();
            if (!named(apic, target) || !target.accepts_interrupts) continue;
            if (chosen == nullptr || target.arbitration_priority < lowest) {
                chosen = apic;
                lowest = target.arbitration_priority;
            }
        }
        if (chosen != nullptr) chosen->accept(message);
        return;
    }
    for (LocalApic* apic : apics_) {
        if (named(apic, apic->addressing())) apic->accept(message);
    }
}

}  // namespace strata
