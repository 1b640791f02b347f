// LocalApic's timer (SDM vol. 3A §11.5.4): one-shot and periodic counts at timer_hz / divisor,
// and TSC-deadline mode. Nothing ticks: the current count is computed from the machine clock and
// the count's origin, expirations are found whenever the APIC's state is looked at (every locked
// operation begins with advance_timer), and the one host timer only makes sure someone looks
// when an expiration is due: its callback sets kTimerDue and kicks the vCPU, which then calls in.
#include <algorithm>
#include <limits>

#include "devices/irqchip/local_apic.hpp"
#include "devices/irqchip/local_apic_registers.hpp"

namespace strata {

using namespace local_apic;

namespace {

__extension__ using Int128 = __int128;

constexpr int64_t kNsPerSecond = 1'000'000'000;
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

int64_t saturate(Int128 value) {
    if (value > kNever) return kNever;
    if (value < std::numeric_limits<int64_t>::min()) return std::numeric_limits<int64_t>::min();
    return static_cast<int64_t>(value);
}

}  // namespace

LocalApic::TimerMode LocalApic::timer_mode_of(uint32_t lvt) const {
    switch ((lvt >> 17) & 3) {
        case 1: return TimerMode::Periodic;
        case 2: return config_.tsc_deadline ? TimerMode::TscDeadline : TimerMode::OneShot;
        default: return TimerMode::OneShot;  // 11b is reserved; it counts as one-shot
    }
}

LocalApic::TimerMode LocalApic::timer_mode() const { return timer_mode_of(lvt_[kLvtTimer]); }

// Divide configuration bits 3, 1:0 (§11.5.4): 000b = 2, 001b = 4, ... 110b = 128, 111b = 1.
uint64_t LocalApic::timer_divisor() const {
    uint32_t code = (divide_ & 3) | ((divide_ >> 1) & 4);
    return uint64_t{1} << ((code + 1) & 7);
}

uint64_t LocalApic::counts_since_origin(int64_t now) const {
    if (now <= timer_origin_ns_) return 0;
    Int128 elapsed = Int128{now} - timer_origin_ns_;
    Int128 counts = elapsed * config_.timer_hz / (Int128{timer_divisor()} * kNsPerSecond);
    return counts > std::numeric_limits<uint64_t>::max() ? std::numeric_limits<uint64_t>::max()
                                                         : static_cast<uint64_t>(counts);
}

// The first guest time at which `count` counts have passed since the origin.
int64_t LocalApic::time_of_count(uint64_t count) const {
    Int128 period = Int128{timer_divisor()} * kNsPerSecond;
    Int128 ns = (Int128{count} * period + (config_.timer_hz - 1)) / config_.timer_hz;
    return saturate(Int128{timer_origin_ns_} + ns);
}

uint64_t LocalApic::tsc_at(int64_t now) const {
    Int128 ticks = Int128{std::max<int64_t>(now, 0)} * config_.tsc_hz / kNsPerSecond;
    return static_cast<uint64_t>(ticks) + tsc_offset_;  // the TSC wraps, as the offset may make it
}

uint32_t LocalApic::current_count(int64_t now) const {
    if (!timer_counting_ || timer_mode() == TimerMode::TscDeadline) return 0;
    uint64_t counts = counts_since_origin(now);
    if (counts < timer_origin_count_) return static_cast<uint32_t>(timer_origin_count_ - counts);
    if (timer_mode() != TimerMode::Periodic || initial_count_ == 0) return 0;
    // Reached 0 and reloaded from the initial count, every initial_count_ counts.
    return static_cast<uint32_t>(initial_count_ - (counts - timer_origin_count_) % initial_count_);
}

void LocalApic::start_count(uint32_t count, int64_t at) {
    timer_counting_ = count != 0;  // a 0 initial count stops the timer (§11.5.4)
    timer_origin_ns_ = at;
    timer_origin_count_ = count;
    timer_expirations_ = 0;
    timer_last_fire_ns_ = saturate(Int128{at} - kMinPeriodicIntervalNs);
}

// Restarts the count in progress from its current value, before its rate or mode changes.
void LocalApic::rebase_count(int64_t now) {
    if (!timer_counting_) return;
    start_count(current_count(now), now);
}

void LocalApic::advance_timer(int64_t now, Effects& effects) {
    if (timer_mode() == TimerMode::TscDeadline) {
        // Fires once when the TSC reaches the deadline, which then reads 0 (§11.5.4.1).
        if (tsc_deadline_ != 0 && tsc_at(now) >= tsc_deadline_) {
            tsc_deadline_ = 0;
            deliver_lvt(kLvtTimer, effects);
        }
        return;
    }
    if (!timer_counting_) return;
    uint64_t counts = counts_since_origin(now);
    if (counts < timer_origin_count_) return;
    if (timer_mode() != TimerMode::Periodic || initial_count_ == 0) {
        timer_counting_ = false;  // one-shot: stays at 0
        deliver_lvt(kLvtTimer, effects);
        return;
    }
    // Every expiration since the last look sets the one IRR bit: they coalesce.
    uint64_t expirations = 1 + (counts - timer_origin_count_) / initial_count_;
    if (expirations > timer_expirations_) {
        timer_expirations_ = expirations;
        timer_last_fire_ns_ = now;
        deliver_lvt(kLvtTimer, effects);
    }
}

// After advance_timer(now), the next expiration is later than now; the host timer is armed for
// it while the LVT entry would deliver it.
void LocalApic::arm_host_timer(int64_t now) {
    std::optional<int64_t> deadline;
    if (hardware_enabled() && !(lvt_[kLvtTimer] & kLvtMasked)) {
        if (timer_mode() == TimerMode::TscDeadline) {
            if (tsc_deadline_ != 0) {
                uint64_t ticks = tsc_deadline_ - tsc_at(now);
                Int128 ns = (Int128{ticks} * kNsPerSecond + (config_.tsc_hz - 1)) / config_.tsc_hz;
                deadline = saturate(Int128{now} + ns);
            }
        } else if (timer_counting_) {
            if (timer_mode() == TimerMode::Periodic && initial_count_ != 0) {
                Int128 next = Int128{timer_origin_count_} + Int128{timer_expirations_} * initial_count_;
                uint64_t next_count = next > std::numeric_limits<uint64_t>::max() ? std::numeric_limits<uint64_t>::max()
                                                                                 : static_cast<uint64_t>(next);
                // However short the period, the host wakes at most every kMinPeriodicIntervalNs.
                deadline = std::max(time_of_count(next_count),
                                    saturate(Int128{timer_last_fire_ns_} + kMinPeriodicIntervalNs));
            } else {
                deadline = time_of_count(timer_origin_count_);
            }
        }
    }
    if (deadline && *deadline == kNever) deadline.reset();  // beyond any guest's lifetime
    if (deadline == host_timer_at_) return;
    host_timer_at_ = deadline;
    if (deadline) {
        timer_->arm_at(*deadline);
    } else {
        timer_->cancel();
    }
}

void LocalApic::write_tsc_deadline(uint64_t value, int64_t now, Effects& effects) {
    // Ignored outside TSC-deadline mode (§11.5.4.1); 0 disarms; a deadline already passed fires.
    if (!hardware_enabled() || timer_mode() != TimerMode::TscDeadline) return;
    tsc_deadline_ = value;
    advance_timer(now, effects);
}

// On the TimerService thread: no lock of the LocalApic is taken here (see the header's Threads).
void LocalApic::on_timer() {
    events_.fetch_or(kTimerDue, std::memory_order_acq_rel);
    host_.kick();
}

}  // namespace strata
