// LocalApic's IA32_APIC_BASE (SDM vol. 3A §11.4.3-4, §11.12.5), CR8, reset and INIT state
// (§11.4.7), the router's view, and state export/import in kvm_lapic_state's page layout.
#include <algorithm>

#include "base/bytes.hpp"
#include "devices/irqchip/local_apic.hpp"
#include "devices/irqchip/local_apic_registers.hpp"

namespace strata {

using namespace local_apic;

namespace {

uint32_t load32(const std::array<uint8_t, 1024>& page, uint32_t offset) {
    return static_cast<uint32_t>(load_le(std::span(page).subspan(offset, 4)));
}
void store32(std::array<uint8_t, 1024>& page, uint32_t offset, uint32_t value) {
    store_le(std::span(page).subspan(offset, 4), value);
}

}  // namespace

uint64_t LocalApic::apic_base() const {
    std::lock_guard lock(mutex_);
    return apic_base_;
}

uint64_t LocalApic::mmio_base() const { return apic_base() & kBaseAddressMask; }

bool LocalApic::x2apic_mode() const {
    std::lock_guard lock(mutex_);
    return x2apic_mode_locked();
}

bool LocalApic::valid_apic_base(uint64_t value) const {
    uint64_t reserved = 0x2ff | ~((uint64_t{1} << config_.physical_address_bits) - 1);
    if (!config_.x2apic) reserved |= kBaseExtd;
    if (value & reserved) return false;
    return (value & kBaseEnable) || !(value & kBaseExtd);  // EN=0 EXTD=1 is the invalid state
}

bool LocalApic::set_apic_base(uint64_t value) {
    if (!valid_apic_base(value)) return false;
    return locked([&](int64_t, Effects&) {
        bool was_enabled = hardware_enabled(), was_x2apic = was_enabled && x2apic_mode_locked();
        bool enable = (value & kBaseEnable) != 0, x2apic = (value & kBaseExtd) != 0;
        // x2APIC → xAPIC and disabled → x2APIC must go through the disabled / xAPIC state (§11.12.5).
        if ((was_x2apic && enable && !x2apic) || (!was_enabled && x2apic)) return false;
        apic_base_ = value;
        if (was_enabled && !enable) {
            // Prior initialization is lost (§11.4.3).
            reset_registers();
            id_ = config_.apic_id & 0xff;
        } else if (!was_x2apic && x2apic) {
            id_ = config_.apic_id;  // the x2APIC ID is the hardware's, whatever xAPIC software wrote
        }
        return true;
    });
}

uint64_t LocalApic::cr8() const {
    std::lock_guard lock(mutex_);
    return tpr_ >> 4;
}

void LocalApic::set_cr8(uint64_t value) {
    locked([&](int64_t, Effects&) { tpr_ = static_cast<uint8_t>((value & 0xf) << 4); });
}

void LocalApic::set_tsc_offset(uint64_t offset) {
    locked([&](int64_t now, Effects& effects) {
        tsc_offset_ = offset;
        advance_timer(now, effects);  // a deadline may have been reached by the jump
    });
}

void LocalApic::reset_registers() {
    // §11.4.7.1. The ID is the caller's business.
    tpr_ = 0;
    ldr_ = 0;
    dfr_ = 0xffff'ffff;
    svr_ = 0xff;
    isr_ = {};
    tmr_ = {};
    irr_ = {};
    esr_ = 0;
    pending_errors_ = 0;
    icr_low_ = icr_high_ = 0;
    lvt_.fill(kLvtMasked);
    initial_count_ = 0;
    divide_ = 0;
    timer_counting_ = false;
    tsc_deadline_ = 0;
    ext_int_message_ = false;
}

void LocalApic::reset() {
    locked([&](int64_t, Effects&) {
        apic_base_ = kDefaultBase | kBaseEnable | (config_.bootstrap ? kBaseBsp : 0);
        reset_registers();
        id_ = config_.apic_id & 0xff;
        nmi_pending_ = init_pending_ = false;
        sipi_vector_.reset();
    });
}

LocalApic::Addressing LocalApic::addressing() const {
    std::lock_guard lock(mutex_);
    return Addressing{.enabled = hardware_enabled(),
                      .accepts_interrupts = hardware_enabled() && software_enabled(),
                      .x2apic = x2apic_mode_locked(),
                      .id = id_,
                      .ldr = logical_destination(),
                      .cluster_model = (dfr_ & kDfrModel) == 0,
                      .arbitration_priority = arbitration_priority()};
}

LocalApicState LocalApic::export_state() {
    return locked([&](int64_t now, Effects&) {
        LocalApicState state;
        state.apic_base = apic_base_;
        // KVM's layout: the ID in bits 31:24 in either mode (without KVM_X2APIC_API_USE_32BIT_IDS),
        // an x2APIC ICR's destination in the ICR-high slot, the current count as of now.
        store32(state.page, static_cast<uint32_t>(Reg::Id), id_ << 24);
        for (uint32_t offset = static_cast<uint32_t>(Reg::Version); offset < 0x400; offset += 0x10) {
            const RegisterRule* rule = rule_for(offset, false);
            if (rule && (rule->xapic_access & kRead)) store32(state.page, offset, read_register(offset, false, now));
        }
        state.extra = LocalApicExtraState{.saved_at_ns = now,
                                          .timer_counting = timer_counting_,
                                          .tsc_deadline = tsc_deadline_,
                                          .tsc_offset = tsc_offset_,
                                          .pending_errors = pending_errors_,
                                          .nmi_pending = nmi_pending_,
                                          .init_pending = init_pending_,
                                          .sipi_vector = sipi_vector_,
                                          .ext_int_message = ext_int_message_,
                                          .lint0 = lint_level_[0],
                                          .lint1 = lint_level_[1]};
        return state;
    });
}

Result<void> LocalApic::import_state(const LocalApicState& state) {
    if (!valid_apic_base(state.apic_base))
        return fail("local APIC state: IA32_APIC_BASE {:#x} is not valid for this APIC", state.apic_base);
    const auto& page = state.page;
    auto get = [&](Reg reg, uint32_t index = 0) { return load32(page, static_cast<uint32_t>(reg) + 0x10 * index); };
    locked([&](int64_t now, Effects& effects) {
        apic_base_ = state.apic_base;
        reset_registers();
        bool x2apic = x2apic_mode_locked();
        id_ = x2apic ? config_.apic_id : get(Reg::Id) >> 24;
        tpr_ = static_cast<uint8_t>(get(Reg::Tpr));
        ldr_ = get(Reg::Ldr) & 0xff00'0000;
        dfr_ = get(Reg::Dfr) | kDfrReadsOne;
        svr_ = get(Reg::Svr) & kSvrWritable;
        for (uint32_t word = 0; word < 8; ++word) {
            uint32_t legal = word == 0 ? 0xffff'0000u : 0xffff'ffffu;  // vectors 0-15 never pend
            isr_[word] = get(Reg::Isr, word) & legal;
            tmr_[word] = get(Reg::Tmr, word) & legal;
            irr_[word] = get(Reg::Irr, word) & legal;
        }
        esr_ = static_cast<uint8_t>(get(Reg::Esr));
        icr_low_ = get(Reg::IcrLow) & kIcrWritable;
        icr_high_ = x2apic ? get(Reg::IcrHigh) : get(Reg::IcrHigh) & 0xff00'0000;
        // Kept as given even while the SVR disables the APIC: KVM's firmware state has LINT0 in
        // ExtINT mode unmasked with the SVR at its reset value, and 8259 interrupts flow.
        for (unsigned index = 0; index < kLvtCount; ++index) {
            uint32_t remote_irr = index == kLvtLint0 ? kLvtRemoteIrr : 0;
            lvt_[index] = get(Reg::LvtTimer, index) & (lvt_writable(index) | remote_irr);
        }
        initial_count_ = get(Reg::InitialCount);
        divide_ = get(Reg::DivideConfig) & 0xb;

        // Without the extra state (a page from the kvm engine) the count restarts now from the
        // page's current count, and the pins keep their levels.
        LocalApicExtraState extra = state.extra.value_or(LocalApicExtraState{
            .saved_at_ns = now, .timer_counting = true, .tsc_deadline = 0, .tsc_offset = tsc_offset_,
            .pending_errors = 0, .nmi_pending = false, .init_pending = false, .sipi_vector = std::nullopt,
            .ext_int_message = false, .lint0 = lint_level_[0], .lint1 = lint_level_[1]});
        if (timer_mode() == TimerMode::TscDeadline) {
            tsc_deadline_ = extra.tsc_deadline;
        } else if (extra.timer_counting) {
            // As of the export, but never later than now: a new VM's clock may be younger.
            start_count(get(Reg::CurrentCount), std::min(extra.saved_at_ns, now));
        }
        tsc_offset_ = extra.tsc_offset;
        pending_errors_ = extra.pending_errors;
        nmi_pending_ = extra.nmi_pending;
        init_pending_ = extra.init_pending;
        sipi_vector_ = extra.sipi_vector;
        ext_int_message_ = extra.ext_int_message;
        lint_level_[0] = extra.lint0;
        lint_level_[1] = extra.lint1;
        advance_timer(now, effects);
    });
    return {};
}

}  // namespace strata
