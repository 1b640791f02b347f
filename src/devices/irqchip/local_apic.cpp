// LocalApic: construction, the lock's frame, and the registers as xAPIC MMIO and x2APIC MSRs
// present them. Interrupts are in local_apic_interrupts.cpp, IA32_APIC_BASE, reset and state in
// local_apic_state.cpp, the timer in local_apic_timer.cpp.
#include "devices/irqchip/local_apic.hpp"

#include "base/bytes.hpp"
#include "devices/irqchip/local_apic_registers.hpp"

namespace strata {

using namespace local_apic;

namespace {

constexpr uint32_t kLvtFullWritable = 0x0001'07ff;  // vector, delivery mode, mask
constexpr uint32_t kLvtLintWritable = 0x0001'a7ff;  // + polarity, trigger mode
constexpr RegisterRule kRegisters[] = {
    {0x020, 1, kReadWrite, kRead, kBoth, 0xff00'0000, 0},          // ID (x2APIC: read-only)
    {0x030, 1, kRead, kRead, kBoth, 0, 0},                          // version
    {0x080, 1, kReadWrite, kReadWrite, kBoth, 0xff, 0},             // TPR
    {0x090, 1, kRead, kRead, kXapic, 0, 0},                         // APR
    {0x0a0, 1, kRead, kRead, kBoth, 0, 0},                          // PPR
    {0x0b0, 1, kWrite, kWrite, kBoth, 0, 0},                        // EOI (x2APIC: only 0 written)
    {0x0c0, 1, kRead, kRead, kXapic, 0, 0},                         // RRD
    {0x0d0, 1, kReadWrite, kRead, kBoth, 0xff00'0000, 0},           // LDR (x2APIC: derived)
    {0x0e0, 1, kReadWrite, kRead, kXapic, kDfrModel, 0},            // DFR
    {0x0f0, 1, kReadWrite, kReadWrite, kBoth, kSvrWritable, 0},     // SVR
    {0x100, 8, kRead, kRead, kBoth, 0, 0},                          // ISR
    {0x180, 8, kRead, kRead, kBoth, 0, 0},                          // TMR
    {0x200, 8, kRead, kRead, kBoth, 0, 0},                          // IRR
    {0x280, 1, kReadWrite, kReadWrite, kBoth, 0, 0},                // ESR (x2APIC: only 0 written)
    {0x300, 1, kReadWrite, kReadWrite, kBoth, kIcrWritable, kIcrDeliveryStatus},  // ICR
    {0x310, 1, kReadWrite, kRead, kXapic, 0xff00'0000, 0},          // ICR high
    {0x320, 1, kReadWrite, kReadWrite, kBoth, 0x0007'00ff, kLvtDeliveryStatus},       // LVT timer
    {0x330, 1, kReadWrite, kReadWrite, kBoth, kLvtFullWritable, kLvtDeliveryStatus},  // thermal
    {0x340, 1, kReadWrite, kReadWrite, kBoth, kLvtFullWritable, kLvtDeliveryStatus},  // perf counter
    {0x350, 2, kReadWrite, kReadWrite, kBoth, kLvtLintWritable, kLvtDeliveryStatus | kLvtRemoteIrr},
    {0x370, 1, kReadWrite, kReadWrite, kBoth, 0x0001'00ff, kLvtDeliveryStatus},       // LVT error
    {0x380, 1, kReadWrite, kReadWrite, kBoth, 0xffff'ffff, 0},      // timer initial count
    {0x390, 1, kRead, kRead, kBoth, 0, 0},                          // timer current count
    {0x3e0, 1, kReadWrite, kReadWrite, kBoth, 0xb, 0},              // timer divide configuration
    {0x3f0, 1, kWrite, kWrite, kX2apic, 0xff, 0},                   // SELF IPI
};

}  // namespace

const RegisterRule* local_apic::rule_for(uint32_t offset, bool x2apic) {
    for (const RegisterRule& rule : kRegisters) {
        if (offset < rule.offset || offset >= rule.offset + 0x10u * rule.count) continue;
        return (rule.modes & (x2apic ? kX2apic : kXapic)) ? &rule : nullptr;
    }
    return nullptr;
}

LocalApic::LocalApic(const LocalApicConfig& config, TimerService& timers, ApicBus& bus, LocalApicHost& host)
    : config_(config), timers_(timers), bus_(bus), host_(host) {
    // Up to 1 THz, so that the timer's 128-bit arithmetic cannot overflow.
    constexpr uint64_t kMaxHz = 1'000'000'000'000;
    if (config_.timer_hz == 0 || config_.tsc_hz == 0 || config_.timer_hz > kMaxHz || config_.tsc_hz > kMaxHz)
        panic("LocalApic: timer and TSC frequencies must be 1 Hz to 1 THz");
    if (config_.physical_address_bits < 32 || config_.physical_address_bits > 52)
        panic("LocalApic: physical address width out of range");
    timer_ = timers_.create_timer([this] { on_timer(); });
    reset();
}

LocalApic::~LocalApic() = default;

void LocalApic::connect(ExtIntSource& pic, EoiListener& ioapic) {
    std::lock_guard lock(mutex_);
    pic_ = &pic;
    ioapic_ = &ioapic;
}

int64_t LocalApic::begin(Effects& effects) {
    // Cleared before the clock is read: a timer callback after this point sets it again, and one
    // before it fired for a deadline that `now` has reached.
    events_.fetch_and(~kTimerDue, std::memory_order_acq_rel);
    int64_t now = timers_.clock().now_ns();
    advance_timer(now, effects);
    return now;
}

void LocalApic::finish(int64_t now, Effects& effects) {
    arm_host_timer(now);
    uint32_t bits = 0;
    if (ext_int_pending() || deliverable_vector()) bits |= kEventInterrupt;
    if (nmi_pending_) bits |= kEventNmi;
    if (init_pending_) bits |= kEventInit;
    if (sipi_vector_) bits |= kEventStartUp;
    // Only the timer callback changes events_ without the lock, and only kTimerDue.
    uint32_t old = events_.load(std::memory_order_relaxed);
    while (!events_.compare_exchange_weak(old, (old & kTimerDue) | bits, std::memory_order_acq_rel)) {
    }
    if ((bits & ~old) != 0) effects.kick = true;
    effects.ioapic = ioapic_;
}

void LocalApic::run(const Effects& effects) {
    if (effects.ipi) bus_.send(*effects.ipi);
    if (effects.eoi && effects.ioapic) effects.ioapic->end_of_interrupt(*effects.eoi);
    if (effects.kick) host_.kick();
}

// ---- MMIO and MSRs

bool LocalApic::decodes_mmio() const {
    std::lock_guard lock(mutex_);
    return hardware_enabled() && !x2apic_mode_locked();
}

void LocalApic::read(uint64_t offset, std::span<uint8_t> data) {
    locked([&](int64_t now, Effects& effects) {
        bool decoded = hardware_enabled() && !x2apic_mode_locked();
        std::optional<uint32_t> slot;  // the register slot read last, and its value
        uint32_t value = 0;
        for (size_t i = 0; i < data.size(); ++i) {
            if (!decoded || offset >= kWindowSize || i >= kWindowSize - offset) {
                data[i] = 0xff;  // not decoded: the bus floats
                continue;
            }
            uint32_t position = static_cast<uint32_t>(offset + i);
            uint32_t register_offset = position & ~0xfu;
            if (slot != register_offset) {
                slot = register_offset;
                const RegisterRule* rule = rule_for(register_offset, false);
                if (rule == nullptr) record_error(kErrorIllegalRegister, effects);
                value = rule && (rule->xapic_access & kRead) ? read_register(register_offset, false, now) : 0;
            }
            uint32_t byte = position & 0xf;
            data[i] = byte < 4 ? static_cast<uint8_t>(value >> (8 * byte)) : uint8_t{0};
        }
    });
}

void LocalApic::write(uint64_t offset, std::span<const uint8_t> data) {
    // Only 32-bit stores to the start of a register are architectural (§11.4.1); others are
    // dropped rather than guessed at.
    if (data.size() != 4 || offset >= kWindowSize || (offset & 0xf) != 0) return;
    locked([&](int64_t now, Effects& effects) {
        if (hardware_enabled() && !x2apic_mode_locked())
            (void)write_register(static_cast<uint32_t>(offset), load_le(data), false, now, effects);
    });
}

std::optional<uint64_t> LocalApic::read_msr(uint32_t index) {
    if (index == kApicBaseMsr) return apic_base();
    bool x2apic_register = index >= 0x800 && index <= 0x8ff;
    if (!x2apic_register && !(index == kTscDeadlineMsr && config_.tsc_deadline)) return std::nullopt;
    return locked([&](int64_t now, Effects&) -> std::optional<uint64_t> {
        if (index == kTscDeadlineMsr) {
            // Reads 0 outside TSC-deadline mode (§11.5.4.1).
            return hardware_enabled() && timer_mode() == TimerMode::TscDeadline ? tsc_deadline_ : 0;
        }
        uint32_t offset = (index - 0x800) << 4;
        const RegisterRule* rule = rule_for(offset, true);
        if (!x2apic_mode_locked() || rule == nullptr || !(rule->x2apic_access & kRead)) return std::nullopt;
        uint64_t value = read_register(offset, true, now);
        if (offset == static_cast<uint32_t>(Reg::IcrLow)) value |= uint64_t{icr_high_} << 32;
        return value;
    });
}

bool LocalApic::write_msr(uint32_t index, uint64_t value) {
    if (index == kApicBaseMsr) return set_apic_base(value);
    bool x2apic_register = index >= 0x800 && index <= 0x8ff;
    if (!x2apic_register && !(index == kTscDeadlineMsr && config_.tsc_deadline)) return false;
    return locked([&](int64_t now, Effects& effects) {
        if (index == kTscDeadlineMsr) {
            write_tsc_deadline(value, now, effects);
            return true;
        }
        return x2apic_mode_locked() && write_register((index - 0x800) << 4, value, true, now, effects);
    });
}

uint32_t LocalApic::read_register(uint32_t offset, bool x2apic, int64_t now) {
    if (offset >= static_cast<uint32_t>(Reg::Isr) && offset < static_cast<uint32_t>(Reg::Esr)) {
        uint32_t word = (offset & 0x70) >> 4;
        if (offset < static_cast<uint32_t>(Reg::Tmr)) return isr_[word];
        if (offset < static_cast<uint32_t>(Reg::Irr)) return tmr_[word];
        return irr_[word];
    }
    if (offset >= static_cast<uint32_t>(Reg::LvtTimer) && offset <= static_cast<uint32_t>(Reg::LvtError))
        return lvt_[(offset - static_cast<uint32_t>(Reg::LvtTimer)) >> 4];
    switch (static_cast<Reg>(offset)) {
        case Reg::Id: return x2apic ? id_ : id_ << 24;
        case Reg::Version: return kVersion;
        case Reg::Tpr: return tpr_;
        case Reg::Apr: return arbitration_priority();
        case Reg::Ppr: return processor_priority();
        case Reg::Ldr: return logical_destination();
        case Reg::Dfr: return dfr_ | kDfrReadsOne;
        case Reg::Svr: return svr_;
        case Reg::Esr: return esr_;
        case Reg::IcrLow: return icr_low_;
        case Reg::IcrHigh: return icr_high_;
        case Reg::InitialCount: return initial_count_;
        case Reg::CurrentCount: return current_count(now);
        case Reg::DivideConfig: return divide_;
        default: return 0;  // EOI, RRD, SELF IPI
    }
}

uint32_t LocalApic::lvt_writable(unsigned index) const {
    uint32_t writable = rule_for(static_cast<uint32_t>(Reg::LvtTimer) + 0x10 * index, false)->writable;
    if (index == kLvtTimer && !config_.tsc_deadline) writable &= ~kLvtTscDeadline;
    return writable;
}

bool LocalApic::write_register(uint32_t offset, uint64_t value, bool x2apic, int64_t now, Effects& effects) {
    const RegisterRule* rule = rule_for(offset, x2apic);
    if (rule == nullptr) {
        // x2APIC: #GP for absent registers, and no ESR bit (§11.12.1.3).
        if (!x2apic) record_error(kErrorIllegalRegister, effects);
        return !x2apic;
    }
    if (!((x2apic ? rule->x2apic_access : rule->xapic_access) & kWrite)) return !x2apic;  // read-only
    bool is_icr = offset == static_cast<uint32_t>(Reg::IcrLow);
    bool is_lvt = offset >= static_cast<uint32_t>(Reg::LvtTimer) && offset <= static_cast<uint32_t>(Reg::LvtError);
    unsigned lvt_index = is_lvt ? (offset - static_cast<uint32_t>(Reg::LvtTimer)) >> 4 : 0;
    if (x2apic) {
        // Only the ICR is 64 bits wide; reserved bits must be 0 (§11.12.1.3).
        uint32_t defined = (is_lvt ? lvt_writable(lvt_index) : rule->writable) | rule->status;
        if (is_icr ? (value & kIcrX2apicReserved) != 0 : (value & ~uint64_t{defined}) != 0) return false;
    }
    uint32_t low = static_cast<uint32_t>(value);
    if (is_icr) {
        write_icr(x2apic ? value : low, x2apic, effects);
        return true;
    }
    if (is_lvt) {
        write_lvt(lvt_index, low, now, effects);
        return true;
    }
    switch (static_cast<Reg>(offset)) {
        case Reg::Id: id_ = low >> 24; break;
        case Reg::Tpr: tpr_ = static_cast<uint8_t>(low); break;
        case Reg::Eoi: end_of_interrupt(effects); break;
        case Reg::Ldr: ldr_ = low & rule->writable; break;
        case Reg::Dfr: dfr_ = low | kDfrReadsOne; break;
        case Reg::Svr:
            svr_ = low & kSvrWritable;
            if (!software_enabled())
                for (uint32_t& lvt : lvt_) lvt |= kLvtMasked;  // §11.4.7.2
            break;
        case Reg::Esr:
            // A write latches the errors since the previous write (§11.5.3).
            esr_ = pending_errors_;
            pending_errors_ = 0;
            break;
        case Reg::IcrHigh: icr_high_ = low & rule->writable; break;
        case Reg::InitialCount:
            if (timer_mode() == TimerMode::TscDeadline) break;  // ignored in TSC-deadline mode (§11.5.4.1)
            initial_count_ = low;
            start_count(low, now);
            break;
        case Reg::DivideConfig:
            rebase_count(now);  // the count so far at the old rate
            divide_ = low & rule->writable;
            break;
        case Reg::SelfIpi: {
            ApicMessage message;
            message.vector = static_cast<uint8_t>(low);
            message.shorthand = DestinationShorthand::Self;
            send_ipi(message, effects);
            break;
        }
        default: break;
    }
    return true;
}

void LocalApic::write_lvt(unsigned index, uint32_t value, int64_t now, Effects& effects) {
    uint32_t stored = value & lvt_writable(index);
    if (!software_enabled()) stored |= kLvtMasked;  // masks stay set while disabled (§11.4.7.2)
    if (index == kLvtLint0 && lvt_delivery_mode(stored) == DeliveryMode::Fixed && (stored & kLvtLevelTriggered))
        stored |= lvt_[index] & kLvtRemoteIrr;  // read-only, kept while the entry stays level-triggered
    if (index == kLvtTimer) {
        TimerMode old_mode = timer_mode(), new_mode = timer_mode_of(stored);
        if ((old_mode == TimerMode::TscDeadline) != (new_mode == TimerMode::TscDeadline)) {
            // Switching to or from TSC-deadline mode disarms the timer (§11.5.4.1).
            initial_count_ = 0;
            timer_counting_ = false;
            tsc_deadline_ = 0;
        } else if (old_mode != new_mode) {
            rebase_count(now);  // one-shot ↔ periodic: the count in progress continues
        }
    }
    lvt_[index] = stored;
    if (index == kLvtLint0 || index == kLvtLint1) evaluate_lint(index, false, effects);  // level inputs
}

}  // namespace strata
