#include "devices/legacy/acpi_pm.hpp"

#include <ctime>

#include <fmt/format.h>

namespace strata {
namespace {

constexpr int64_t kNsPerSecond = 1'000'000'000;
constexpr uint64_t kTimerMask = 0xff'ffff;  // 24-bit PM timer (FADT TMR_VAL_EXT = 0)
constexpr unsigned kOverflowBit = 23;
// Bits of PM1_STS/PM1_EN that exist here; the rest read as zero.
constexpr uint16_t kStatusMask = AcpiPm::kTmrStatus | AcpiPm::kPwrBtnStatus | AcpiPm::kRtcStatus | AcpiPm::kWakeStatus;
constexpr uint16_t kEnableMask = AcpiPm::kTmrStatus | AcpiPm::kGblStatus | AcpiPm::kPwrBtnStatus | AcpiPm::kRtcStatus;
constexpr uint16_t kControlMask = AcpiPm::kSciEnable | AcpiPm::kSlpTypMask;  // SLP_EN is write-only

}  // namespace

int64_t AcpiPm::host_monotonic_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t{ts.tv_sec} * kNsPerSecond + ts.tv_nsec;
}

AcpiPm::AcpiPm(IrqLine& sci, MachineControl& control, Clock monotonic_ns)
    : sci_(sci), control_(control), monotonic_ns_(std::move(monotonic_ns)) {
    if (!monotonic_ns_) monotonic_ns_ = host_monotonic_ns;
    start_ns_ = monotonic_ns_();
}

uint64_t AcpiPm::timer_ticks() {
    int64_t elapsed = monotonic_ns_() - start_ns_;
    if (elapsed < 0) elapsed = 0;
    // Split seconds and the fraction so ns × 3.58 MHz cannot overflow however long the VM runs.
    auto ns = static_cast<uint64_t>(elapsed);
    return (ns / kNsPerSecond) * kTimerHz + (ns % kNsPerSecond) * kTimerHz / kNsPerSecond;
}

void AcpiPm::poll_timer_overflow() {
    uint64_t periods = timer_ticks() >> kOverflowBit;
    if (periods != overflow_periods_seen_) {
        overflow_periods_seen_ = periods;
        status_ |= kTmrStatus;  // bit 23 of the counter changed state (§4.8.3.3)
    }
}

uint8_t AcpiPm::register_byte(uint64_t offset) {
    switch (offset) {
        case 0: return static_cast<uint8_t>(status_);
        case 1: return static_cast<uint8_t>(status_ >> 8);
        case 2: return static_cast<uint8_t>(enable_);
        case 3: return static_cast<uint8_t>(enable_ >> 8);
        case 4: return static_cast<uint8_t>(control_bits_);
        case 5: return static_cast<uint8_t>(control_bits_ >> 8);
        default: return 0;
    }
}

void AcpiPm::read(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex_);
    poll_timer_overflow();
    uint64_t timer = timer_ticks() & kTimerMask;
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t at = offset + i;
        if (at >= static_cast<uint64_t>(Reg::PmTimer) && at < kWindowSize)
            data[i] = static_cast<uint8_t>(timer >> (8 * (at - static_cast<uint64_t>(Reg::PmTimer))));
        else
            data[i] = at < kWindowSize ? register_byte(at) : uint8_t{0xff};
    }
    update_sci();
}

void AcpiPm::write(uint64_t offset, std::span<const uint8_t> data) {
    // Gather what the access writes into each 16-bit register (any width, any byte lane).
    uint16_t values[3] = {}, lanes[3] = {};
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t at = offset + i;
        if (at >= static_cast<uint64_t>(Reg::PmTimer)) break;  // PM_TMR is read-only
        size_t reg = static_cast<size_t>(at / 2);
        unsigned shift = static_cast<unsigned>(at % 2) * 8;
        values[reg] = static_cast<uint16_t>(values[reg] | (data[i] << shift));
        lanes[reg] = static_cast<uint16_t>(lanes[reg] | (0xffu << shift));
    }
    std::unique_lock lock(mutex_);
    poll_timer_overflow();
    status_ = static_cast<uint16_t>(status_ & ~(values[0] & lanes[0]));  // write 1 to clear
    enable_ = static_cast<uint16_t>((enable_ & ~lanes[1]) | (values[1] & lanes[1] & kEnableMask));
    control_bits_ = static_cast<uint16_t>((control_bits_ & ~lanes[2]) | (values[2] & lanes[2] & kControlMask));
    update_sci();
    bool sleep = (values[2] & lanes[2] & kSlpEnable) != 0;
    uint16_t sleep_type = static_cast<uint16_t>((control_bits_ & kSlpTypMask) >> kSlpTypShift);
    bool suspend = sleep && sleep_type == kSlpTypS3 && !sleeping_;
    if (suspend) sleeping_ = true;
    lock.unlock();
    if (sleep && sleep_type == kSlpTypS5)
        control_.request_stop({StopKind::PowerOff, 0, "guest entered ACPI S5 (soft off)"});
    if (suspend) control_.request_sleep();
}

void AcpiPm::rtc_alarm() {
    std::unique_lock lock(mutex_);
    status_ |= kRtcStatus;
    bool wake = sleeping_ && (enable_ & kRtcStatus);
    if (wake) {
        sleeping_ = false;
        status_ |= kWakeStatus;
    }
    update_sci();
    lock.unlock();
    if (wake) control_.request_wake();
}

void AcpiPm::press_power_button() {
    std::lock_guard lock(mutex_);
    status_ |= kPwrBtnStatus;
    update_sci();
}

void AcpiPm::State::encode(StateWriter& out) const {
    out.i64(start_ns);
    out.u64(overflow_periods_seen);
    out.u16(status);
    out.u16(enable);
    out.u16(control);
    out.boolean(sleeping);
}

AcpiPm::State AcpiPm::State::decode(StateReader& in) {
    State s;
    s.start_ns = in.i64("timer start");
    s.overflow_periods_seen = in.u64("timer overflows seen");
    s.status = in.u16("PM1_STS");
    s.enable = in.u16("PM1_EN");
    s.control = in.u16("PM1_CNT");
    s.sleeping = in.boolean("sleeping");
    return s;
}

AcpiPm::State AcpiPm::state() const {
    std::lock_guard lock(mutex_);
    return {.start_ns = start_ns_,
            .overflow_periods_seen = overflow_periods_seen_,
            .status = status_,
            .enable = enable_,
            .control = control_bits_,
            .sleeping = sleeping_};
}

Result<void> AcpiPm::set_state(const State& s) {
    int64_t now = monotonic_ns_();
    if (s.start_ns > now) return fail("the PM timer starts at {} ns, after the clock's present {} ns", s.start_ns, now);
    if (s.status & ~kStatusMask) return fail("PM1_STS {:#06x} has bits it does not keep", s.status);
    if (s.enable & ~kEnableMask) return fail("PM1_EN {:#06x} has bits it does not keep", s.enable);
    if (s.control & ~kControlMask) return fail("PM1_CNT {:#06x} has bits it does not keep", s.control);
    if (s.sleeping) return fail("the guest was asleep in S3, and a restore does not resume a sleeping machine");
    std::lock_guard lock(mutex_);
    start_ns_ = s.start_ns;
    overflow_periods_seen_ = s.overflow_periods_seen;
    status_ = s.status;
    enable_ = s.enable;
    control_bits_ = s.control;
    sleeping_ = false;
    // The interrupt controllers were restored with the SCI's level; an SCI that is up is driven
    // up again (no change there).
    sci_level_ = false;
    update_sci();
    return {};
}

void AcpiPm::update_sci() {
    bool level = (status_ & enable_ & kStatusMask) != 0;
    if (level == sci_level_) return;
    sci_level_ = level;
    sci_.set_level(level);
}

}  // namespace strata
