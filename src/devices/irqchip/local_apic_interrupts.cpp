// LocalApic's interrupts: IPIs sent, messages accepted, the LVT's local sources (LINT0/LINT1,
// error, timer), EOI, priorities, and what the vCPU takes (SDM vol. 3A §11.5, §11.6, §11.8).
#include <algorithm>
#include <utility>

#include "devices/irqchip/local_apic.hpp"
#include "devices/irqchip/local_apic_registers.hpp"

namespace strata {

using namespace local_apic;

// ---- IPIs (§11.6.1)

void LocalApic::write_icr(uint64_t value, bool x2apic, Effects& effects) {
    icr_low_ = static_cast<uint32_t>(value) & kIcrWritable;  // delivery status reads idle
    if (x2apic) icr_high_ = static_cast<uint32_t>(value >> 32);
    ApicMessage message;
    message.vector = static_cast<uint8_t>(icr_low_);
    message.mode = static_cast<DeliveryMode>((icr_low_ >> 8) & 7);
    message.logical = (icr_low_ >> 11) & 1;
    message.level_triggered = (icr_low_ >> 15) & 1;
    message.assert = ((icr_low_ >> 14) & 1) != 0 || !message.level_triggered;
    message.shorthand = static_cast<DestinationShorthand>((icr_low_ >> 18) & 3);
    message.destination = x2apic ? icr_high_ : icr_high_ >> 24;
    send_ipi(message, effects);
}

void LocalApic::send_ipi(const ApicMessage& ipi, Effects& effects) {
    ApicMessage message = ipi;
    message.source = this;
    message.x2apic_destination = x2apic_mode_locked();
    switch (message.mode) {
        case DeliveryMode::Fixed:
        case DeliveryMode::LowestPriority:
            if (message.vector < 16) {
                record_error(kErrorSendIllegalVector, effects);  // and the IPI is not sent (§11.5.3)
                return;
            }
            break;
        case DeliveryMode::Smi:
        case DeliveryMode::Nmi:
        case DeliveryMode::Init:
        case DeliveryMode::StartUp: break;
        default: return;  // ICR modes 011b and 111b are reserved
    }
    if (message.shorthand == DestinationShorthand::Self) {
        // Only a fixed IPI may go to self (§11.6.1, valid ICR combinations); it needs no bus.
        if (message.mode == DeliveryMode::Fixed) accept_locked(message, effects);
        return;
    }
    effects.ipi = message;
}

// ---- Acceptance (§11.8.3, §11.8.4)

void LocalApic::accept(const ApicMessage& message) {
    locked([&](int64_t, Effects& effects) { accept_locked(message, effects); });
}

void LocalApic::accept_locked(const ApicMessage& message, Effects& effects) {
    // A globally disabled APIC is not on the bus (§11.4.3); a software-disabled one still takes
    // NMI, INIT, SMI and SIPI (§11.4.7.2).
    if (!hardware_enabled()) return;
    switch (message.mode) {
        case DeliveryMode::Fixed:
        case DeliveryMode::LowestPriority:
            if (!software_enabled()) return;
            if (message.vector < 16) {
                record_error(kErrorReceiveIllegalVector, effects);
                return;
            }
            set_irr(message.vector, message.level_triggered);
            return;
        case DeliveryMode::Nmi: nmi_pending_ = true; return;
        case DeliveryMode::Init:
            if (message.level_triggered && !message.assert) return;  // INIT level de-assert: no effect
            init_pending_ = true;
            return;
        case DeliveryMode::StartUp: sipi_vector_ = message.vector; return;
        case DeliveryMode::ExtInt:
            if (software_enabled()) ext_int_message_ = true;
            return;
        default: return;  // SMI: Missing
    }
}

void LocalApic::set_irr(uint8_t vector, bool level) {
    set_vector(irr_, vector, true);
    set_vector(tmr_, vector, level);
}

void LocalApic::record_error(uint8_t error, Effects& effects) {
    // Errors are collected whether or not the error LVT is masked (§11.5.3).
    pending_errors_ |= error;
    deliver_lvt(kLvtError, effects);
}

// An LVT entry's interrupt (timer, error, LINT), as its delivery mode says (§11.5.1).
void LocalApic::deliver_lvt(unsigned index, Effects& effects) {
    uint32_t lvt = lvt_[index];
    if (lvt & kLvtMasked) return;
    bool always_fixed = index == kLvtTimer || index == kLvtError;
    switch (always_fixed ? DeliveryMode::Fixed : lvt_delivery_mode(lvt)) {
        case DeliveryMode::Fixed: {
            uint8_t vector = static_cast<uint8_t>(lvt & kLvtVector);
            if (vector < 16) {
                pending_errors_ |= kErrorReceiveIllegalVector;
                if (index != kLvtError) deliver_lvt(kLvtError, effects);  // the error entry's own: no loop
                return;
            }
            bool level = index == kLvtLint0 && (lvt & kLvtLevelTriggered);
            set_irr(vector, level);
            if (level) lvt_[index] |= kLvtRemoteIrr;  // until the EOI of this vector
            return;
        }
        case DeliveryMode::Nmi: nmi_pending_ = true; return;
        case DeliveryMode::Init: init_pending_ = true; return;
        default: return;  // SMI: Missing; ExtINT is a level the vCPU reads (ext_int_pending)
    }
}

// LINT0/LINT1 after an input or LVT change. NMI and INIT are edge-triggered, ExtINT level-
// triggered, Fixed as the LVT's trigger mode says (level is not supported on LINT1, §11.5.1).
void LocalApic::evaluate_lint(unsigned index, bool rising, Effects& effects) {
    bool level = lint_level_[index - kLvtLint0];
    if (!hardware_enabled()) {
        // The pins are INTR and NMI then (§11.4.3); INTR is read by ext_int_pending().
        if (index == kLvtLint1 && rising) nmi_pending_ = true;
        return;
    }
    uint32_t lvt = lvt_[index];
    if (lvt & kLvtMasked) return;
    DeliveryMode mode = lvt_delivery_mode(lvt);
    if (mode == DeliveryMode::Fixed && index == kLvtLint0 && (lvt & kLvtLevelTriggered)) {
        if (level && !(lvt & kLvtRemoteIrr)) deliver_lvt(index, effects);
        return;
    }
    if (mode != DeliveryMode::ExtInt && rising) deliver_lvt(index, effects);
}

void LocalApic::set_lint0(bool asserted) {
    locked([&](int64_t, Effects& effects) {
        bool rising = asserted && !lint_level_[0];
        lint_level_[0] = asserted;
        evaluate_lint(kLvtLint0, rising, effects);
    });
}

void LocalApic::set_lint1(bool asserted) {
    locked([&](int64_t, Effects& effects) {
        bool rising = asserted && !lint_level_[1];
        lint_level_[1] = asserted;
        evaluate_lint(kLvtLint1, rising, effects);
    });
}

// EOI (§11.8.5): the highest in-service vector is done; a level-triggered one (TMR set) is
// broadcast to the IOAPIC, and releases the remote IRR of a LINT entry that raised it.
void LocalApic::end_of_interrupt(Effects& effects) {
    std::optional<uint8_t> vector = highest_vector(isr_);
    if (!vector) return;
    set_vector(isr_, *vector, false);
    if (!test_vector(tmr_, *vector)) return;
    effects.eoi = *vector;
    for (unsigned index : {kLvtLint0, kLvtLint1}) {
        if ((lvt_[index] & kLvtRemoteIrr) && (lvt_[index] & kLvtVector) == *vector) {
            lvt_[index] &= ~kLvtRemoteIrr;
            evaluate_lint(index, false, effects);  // still asserted: delivered again
        }
    }
}

// ---- Priorities (§11.8.3.1, §11.6.2.4)

bool LocalApic::hardware_enabled() const { return (apic_base_ & kBaseEnable) != 0; }
bool LocalApic::software_enabled() const { return (svr_ & kSvrEnable) != 0; }
bool LocalApic::x2apic_mode_locked() const { return (apic_base_ & kBaseExtd) != 0; }

uint8_t LocalApic::processor_priority() const {
    uint8_t isrv = highest_vector(isr_).value_or(0);
    if (priority_class(tpr_) >= priority_class(isrv)) return tpr_;
    return isrv & 0xf0;
}

uint8_t LocalApic::arbitration_priority() const {
    uint8_t isrv = highest_vector(isr_).value_or(0);
    uint8_t irrv = highest_vector(irr_).value_or(0);
    if (priority_class(tpr_) >= priority_class(irrv) && priority_class(tpr_) > priority_class(isrv)) return tpr_;
    return std::max({static_cast<uint8_t>(tpr_ & 0xf0), static_cast<uint8_t>(isrv & 0xf0),
                     static_cast<uint8_t>(irrv & 0xf0)});
}

std::optional<uint8_t> LocalApic::deliverable_vector() const {
    if (!hardware_enabled()) return std::nullopt;
    std::optional<uint8_t> vector = highest_vector(irr_);
    if (!vector || priority_class(*vector) <= priority_class(processor_priority())) return std::nullopt;
    return vector;
}

bool LocalApic::ext_int_pending() const {
    if (!hardware_enabled()) return lint_level_[0];  // LINT0 is INTR (§11.4.3)
    if (ext_int_message_) return true;
    uint32_t lvt = lvt_[kLvtLint0];
    return lint_level_[0] && !(lvt & kLvtMasked) && lvt_delivery_mode(lvt) == DeliveryMode::ExtInt;
}

uint32_t LocalApic::logical_destination() const {
    // x2APIC: cluster ID[19:4] in bits 31:16, one bit for ID[3:0] in 15:0 (§11.12.10.2).
    if (x2apic_mode_locked()) return ((id_ >> 4) << 16) | (1u << (id_ & 0xf));
    return ldr_;
}

// ---- The vCPU's side

uint32_t LocalApic::pending_events() const {
    uint32_t events = events_.load(std::memory_order_relaxed);
    if (events & kTimerDue) events = (events & ~kTimerDue) | kEventInterrupt;
    return events;
}

std::optional<LocalApic::PendingInterrupt> LocalApic::pending_interrupt() {
    return locked([&](int64_t, Effects&) -> std::optional<PendingInterrupt> {
        if (ext_int_pending()) return PendingInterrupt{.external = true, .vector = 0};
        if (std::optional<uint8_t> vector = deliverable_vector())
            return PendingInterrupt{.external = false, .vector = *vector};
        return std::nullopt;
    });
}

uint8_t LocalApic::acknowledge() {
    ExtIntSource* pic = nullptr;
    uint8_t vector = locked([&](int64_t, Effects&) {
        if (ext_int_pending()) {
            ext_int_message_ = false;
            pic = pic_;
            return static_cast<uint8_t>(svr_);  // if no 8259 pair is connected
        }
        std::optional<uint8_t> deliverable = deliverable_vector();
        if (!deliverable) return static_cast<uint8_t>(svr_);  // spurious (§11.9): no ISR bit
        set_vector(irr_, *deliverable, false);
        set_vector(isr_, *deliverable, true);
        return *deliverable;
    });
    // The 8259's INTA cycle, outside the lock: the PIC lowers its INT output (LINT0) in it.
    return pic ? pic->acknowledge() : vector;
}

bool LocalApic::take_nmi() {
    return locked([&](int64_t, Effects&) { return std::exchange(nmi_pending_, false); });
}

bool LocalApic::take_init() {
    return locked([&](int64_t, Effects&) {
        if (!std::exchange(init_pending_, false)) return false;
        // The INIT state (§11.4.7.3): as after power-up but for the APIC ID and the mode.
        uint32_t id = id_;
        reset_registers();
        id_ = id;
        nmi_pending_ = false;
        return true;
    });
}

std::optional<uint8_t> LocalApic::take_sipi() {
    return locked([&](int64_t, Effects&) { return std::exchange(sipi_vector_, std::nullopt); });
}

}  // namespace strata
