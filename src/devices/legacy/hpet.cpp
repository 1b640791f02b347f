#include "devices/legacy/hpet.hpp"

#include <algorithm>
#include <limits>

#include "base/checked.hpp"
#include "base/error.hpp"

namespace strata {
namespace {

constexpr uint64_t kRegisterBytes = 8;
constexpr uint64_t kLowHalf = 0xffff'ffff;
constexpr uint64_t kTimer0 = static_cast<uint64_t>(Hpet::Reg::Timer0);
constexpr uint64_t kStatusBits = (uint64_t{1} << Hpet::kTimers) - 1;
constexpr unsigned kPeriodicTimers = 1;  // timer 0 alone has Tn_PER_INT_CAP

// What the guest may write (§2.3.5, §2.3.8); everything else is reserved or read-only.
constexpr uint64_t kConfigurationWritable = Hpet::kEnable | Hpet::kLegacyRoute;
constexpr uint64_t kTimerWritable = Hpet::kLevelTriggered | Hpet::kIntEnable | Hpet::k32BitMode | Hpet::kRouteMask;
constexpr uint64_t kPeriodicTimerWritable = Hpet::kPeriodic | Hpet::kValueSet;

uint64_t merge(uint64_t old_value, uint64_t value, uint64_t mask) { return (old_value & ~mask) | (value & mask); }

// The bits of bytes [first, first + count) of a 64-bit register.
uint64_t byte_mask(unsigned first, unsigned count) {
    uint64_t bits = count >= kRegisterBytes ? ~uint64_t{0} : (uint64_t{1} << (8 * count)) - 1;
    return bits << (8 * first);
}

// Calls visit(register, first byte, byte count, position in the access) for every aligned
// 64-bit register that the access [offset, offset + size) covers inside the window.
template <class Visit>
void for_each_register(uint64_t offset, size_t size, Visit visit) {
    size_t done = 0;
    while (done < size && offset < Hpet::kWindowSize && done < Hpet::kWindowSize - offset) {
        uint64_t address = offset + done;
        unsigned first = static_cast<unsigned>(address % kRegisterBytes);
        unsigned count = static_cast<unsigned>(std::min<size_t>(kRegisterBytes - first, size - done));
        visit(address - first, first, count, done);
        done += count;
    }
}

// The counter bits a timer compares: the low 32 in 32-bit mode (§2.3.8, Tn_32MODE_CNF).
uint64_t width_mask(uint64_t timer_config) { return (timer_config & Hpet::k32BitMode) ? kLowHalf : ~uint64_t{0}; }

}  // namespace

void Hpet::LegacyInput::set_level(bool asserted) {
    std::lock_guard lock(hpet_.mutex_);
    hpet_.legacy_inputs_[output_] = asserted;
    hpet_.update_lines();
}

Hpet::Hpet(TimerService& timers, const Wiring& wiring) : clock_(timers.clock()) {
    outputs_[kOutputIrq0] = wiring.irq0;
    outputs_[kOutputIrq8] = wiring.irq8;
    for (unsigned route = 0; route < kRoutes; ++route) {
        if (!wiring.ioapic[route]) continue;
        outputs_[kOutputRoute0 + route] = wiring.ioapic[route];
        route_capabilities_ |= uint32_t{1} << route;
    }
    // Each output has one driver here: the HPET cannot tell two routes of one line apart.
    for (unsigned a = 0; a < kOutputs; ++a) {
        for (unsigned b = a + 1; b < kOutputs; ++b) {
            if (outputs_[a] && outputs_[a] == outputs_[b]) panic("Hpet: the board wired one line to two HPET outputs");
        }
    }
    timer_ = timers.create_timer([this] { on_timer(); });
}

void Hpet::read(uint64_t offset, std::span<uint8_t> data) {
    std::ranges::fill(data, uint8_t{0});
    std::lock_guard lock(mutex_);
    int64_t now = clock_.now_ns();
    // Status bits and accumulators show every match up to now.
    if (advance(now)) {
        update_lines();
        reschedule();
    }
    for_each_register(offset, data.size(), [&](uint64_t reg, unsigned first, unsigned count, size_t at) {
        uint64_t value = read_register(reg, now);
        for (unsigned i = 0; i < count; ++i) data[at + i] = static_cast<uint8_t>(value >> (8 * (first + i)));
    });
}

void Hpet::write(uint64_t offset, std::span<const uint8_t> data) {
    std::lock_guard lock(mutex_);
    int64_t now = clock_.now_ns();
    advance(now);  // a write applies after the matches that came before it
    for_each_register(offset, data.size(), [&](uint64_t reg, unsigned first, unsigned count, size_t at) {
        uint64_t value = 0;
        for (unsigned i = 0; i < count; ++i) value |= uint64_t{data[at + i]} << (8 * (first + i));
        write_register(reg, value, byte_mask(first, count), now);
    });
    advance(now);  // a comparator written to the counter's value matches at once
    update_lines();
    reschedule();
}

uint64_t Hpet::read_register(uint64_t reg, int64_t now) const {
    switch (static_cast<Reg>(reg)) {
        case Reg::Capabilities: return kCapabilities;
        case Reg::Configuration: return config_;
        case Reg::InterruptStatus: return status_;
        case Reg::MainCounter: return counter(now);
        default: break;
    }
    if (reg < kTimer0 || (reg - kTimer0) / kTimerStride >= kTimers) return 0;
    unsigned index = static_cast<unsigned>((reg - kTimer0) / kTimerStride);
    const Timer& timer = timers_[index];
    switch (static_cast<TimerReg>((reg - kTimer0) % kTimerStride)) {
        case TimerReg::Configuration: return timer.config | capabilities(index);
        case TimerReg::Comparator: return timer.comparator & width_mask(timer.config);
        default: return 0;  // the FSB route (no FSB delivery) and the reserved quadword
    }
}

void Hpet::write_register(uint64_t reg, uint64_t value, uint64_t byte_mask, int64_t now) {
    switch (static_cast<Reg>(reg)) {
        case Reg::Configuration: write_configuration(merge(config_, value, byte_mask), now); return;
        case Reg::InterruptStatus: status_ &= ~(value & byte_mask & kStatusBits); return;  // §2.3.6: write 1 to clear
        case Reg::MainCounter:
            // §2.3.7: software halts the counter before writing it; a write while it runs is lost.
            if (!enabled()) counter_ = merge(counter_, value, byte_mask);
            return;
        default: break;
    }
    if (reg < kTimer0 || (reg - kTimer0) / kTimerStride >= kTimers) return;
    unsigned index = static_cast<unsigned>((reg - kTimer0) / kTimerStride);
    switch (static_cast<TimerReg>((reg - kTimer0) % kTimerStride)) {
        case TimerReg::Configuration:
            write_timer_configuration(index, merge(timers_[index].config, value, byte_mask));
            find_next_match(index, now, false);
            return;
        case TimerReg::Comparator: write_comparator(index, value, byte_mask, now); return;
        default: return;
    }
}

void Hpet::write_configuration(uint64_t value, int64_t now) {
    value &= kConfigurationWritable;
    bool was_enabled = enabled();
    bool enabling = (value & kEnable) != 0;
    if (was_enabled && !enabling) counter_ = counter(now);  // §2.3.5: halts the main counter
    if (!was_enabled && enabling) enabled_at_ = now;
    config_ = value;
    if (was_enabled == enabling) return;
    for (unsigned index = 0; index < kTimers; ++index) find_next_match(index, now, true);
}

void Hpet::write_timer_configuration(unsigned index, uint64_t value) {
    Timer& timer = timers_[index];
    value &= kTimerWritable | (index < kPeriodicTimers ? kPeriodicTimerWritable : 0);
    // §2.3.8 Tn_INT_ROUTE_CNF: a route the timer does not offer does not take.
    unsigned route = static_cast<unsigned>((value & kRouteMask) >> kRouteShift);
    if (!((route_capabilities_ >> route) & 1)) value = merge(value, timer.config, kRouteMask);
    // Entering 32-bit mode loads the comparator's upper half with 0 (ICH9, TIMERn_32MODE_CNF).
    if ((value & k32BitMode) && !(timer.config & k32BitMode)) {
        timer.comparator &= kLowHalf;
        timer.period &= kLowHalf;
    }
    // Status bits belong to level-triggered interrupts (§2.3.6).
    if (!(value & kLevelTriggered)) status_ &= ~(uint64_t{1} << index);
    timer.config = value;
}

// §2.3.9: a write sets the comparator, except in periodic mode without Tn_VAL_SET_CNF, where it
// sets only the period that the next match adds; VAL_SET clears itself after one write.
void Hpet::write_comparator(unsigned index, uint64_t value, uint64_t byte_mask, int64_t now) {
    Timer& timer = timers_[index];
    byte_mask &= width_mask(timer.config);
    if (!(timer.config & kPeriodic) || (timer.config & kValueSet)) timer.comparator = merge(timer.comparator, value, byte_mask);
    timer.period = merge(timer.period, value, byte_mask);
    timer.config &= ~kValueSet;
    find_next_match(index, now, true);
}

uint64_t Hpet::capabilities(unsigned index) const {
    uint64_t caps = kSize64Capable | uint64_t{route_capabilities_} << kRouteCapShift;
    if (index < kPeriodicTimers) caps |= kPeriodicCapable;
    return caps;
}

uint64_t Hpet::ticks_since_enable(int64_t now) const {
    return now > enabled_at_ ? static_cast<uint64_t>(now - enabled_at_) / kTickNs : 0;
}

uint64_t Hpet::counter(int64_t now) const { return enabled() ? counter_ + ticks_since_enable(now) : counter_; }

std::optional<unsigned> Hpet::output_of(unsigned index) const {
    // §2.3.5 LEG_RT_CNF: timers 0 and 1 take IRQ0 and IRQ8 whatever their routes say.
    if (legacy_routing() && index < 2) return index == 0 ? kOutputIrq0 : kOutputIrq8;
    unsigned route = static_cast<unsigned>((timers_[index].config & kRouteMask) >> kRouteShift);
    if (!outputs_[kOutputRoute0 + route]) return std::nullopt;
    return kOutputRoute0 + route;
}

bool Hpet::level_asserted(unsigned index) const {
    uint64_t config = timers_[index].config;
    return enabled() && (config & kLevelTriggered) && (config & kIntEnable) && ((status_ >> index) & 1);
}

// The tick (counted from the enable) of the next match of timer `index`, or none: the HPET is
// halted, or nothing would be seen of a match (an edge-triggered one-shot with INT_ENB clear),
// or it lies beyond 2^64 ticks. `including_now`: a match at the current tick counts.
void Hpet::find_next_match(unsigned index, int64_t now, bool including_now) {
    Timer& timer = timers_[index];
    timer.match_tick.reset();
    if (!enabled() || !(timer.config & (kIntEnable | kLevelTriggered | kPeriodic))) return;
    uint64_t width = width_mask(timer.config);
    uint64_t ticks = ticks_since_enable(now);
    uint64_t distance = (timer.comparator - (counter_ + ticks)) & width;
    if (distance == 0 && !including_now) {
        if (width == ~uint64_t{0}) return;  // the 64-bit counter comes round again after 5,800 years
        distance = width + 1;
    }
    timer.match_tick = checked_add(ticks, distance);
}

// Runs every match due by `now`: one interrupt however many periods were missed, the periodic
// accumulator moved past now (§2.3.9, periodic mode), a one-shot 32-bit timer armed for the
// next round.
bool Hpet::advance(int64_t now) {
    if (!enabled()) return false;
    bool matched = false;
    uint64_t ticks = ticks_since_enable(now);
    for (unsigned index = 0; index < kTimers; ++index) {
        Timer& timer = timers_[index];
        if (!timer.match_tick || ticks < *timer.match_tick) continue;
        matched = true;
        fire(index);
        uint64_t width = width_mask(timer.config);
        bool periodic = (timer.config & kPeriodic) != 0;
        if (periodic) timer.last_periodic_fire_ns = now;
        uint64_t step = periodic ? timer.period & width : 0;
        if (step == 0) {  // the comparator stays: it matches again once the counter wraps
            if (width == ~uint64_t{0}) {
                timer.match_tick.reset();
                continue;
            }
            step = width + 1;
        }
        uint64_t steps = (ticks - *timer.match_tick) / step + 1;
        auto distance = checked_mul(steps, step);
        if (periodic) timer.comparator = (timer.comparator + steps * step) & width;
        timer.match_tick = distance ? checked_add(*timer.match_tick, *distance) : std::nullopt;
    }
    return matched;
}

void Hpet::fire(unsigned index) {
    const Timer& timer = timers_[index];
    if (timer.config & kLevelTriggered) {
        status_ |= uint64_t{1} << index;  // the line follows in update_lines()
        return;
    }
    if (!(timer.config & kIntEnable)) return;
    auto output = output_of(index);
    if (!output || !outputs_[*output] || output_levels_[*output]) return;  // a line held high shows no edge
    outputs_[*output]->pulse();
}

void Hpet::State::encode(StateWriter& out) const {
    out.u64(config);
    out.u64(status);
    out.u64(counter);
    out.i64(enabled_at);
    for (const TimerState& t : timers) {
        out.u64(t.config);
        out.u64(t.comparator);
        out.u64(t.period);
        out.optional_u64(t.match_tick);
        out.optional_i64(t.last_periodic_fire_ns);
    }
    for (bool level : legacy_inputs) out.boolean(level);
}

Hpet::State Hpet::State::decode(StateReader& in) {
    State s;
    s.config = in.u64("configuration");
    s.status = in.u64("interrupt status");
    s.counter = in.u64("main counter");
    s.enabled_at = in.i64("enable time");
    for (TimerState& t : s.timers) {
        t.config = in.u64("timer configuration");
        t.comparator = in.u64("timer comparator");
        t.period = in.u64("timer period");
        t.match_tick = in.optional_u64("timer match tick");
        t.last_periodic_fire_ns = in.optional_i64("timer last periodic interrupt");
    }
    for (bool& level : s.legacy_inputs) level = in.boolean("legacy input level");
    return s;
}

Hpet::State Hpet::state() const {
    std::lock_guard lock(mutex_);
    State s{.config = config_, .status = status_, .counter = counter_, .enabled_at = enabled_at_,
            .legacy_inputs = legacy_inputs_};
    for (unsigned i = 0; i < kTimers; ++i) {
        const Timer& t = timers_[i];
        s.timers[i] = {.config = t.config,
                       .comparator = t.comparator,
                       .period = t.period,
                       .match_tick = t.match_tick,
                       .last_periodic_fire_ns = t.last_periodic_fire_ns};
    }
    return s;
}

Result<void> Hpet::set_state(const State& s) {
    int64_t now = clock_.now_ns();
    if (s.config & ~kConfigurationWritable) return fail("configuration {:#x} has bits it does not keep", s.config);
    if (s.status >> kTimers) return fail("interrupt status {:#x} names timers it does not have", s.status);
    if (s.enabled_at < 0 || s.enabled_at > now)
        return fail("the counter was enabled at {} ns, outside the machine's 0-{} ns", s.enabled_at, now);
    for (unsigned i = 0; i < kTimers; ++i) {
        const TimerState& t = s.timers[i];
        uint64_t writable = kTimerWritable | (i < kPeriodicTimers ? kPeriodicTimerWritable : 0);
        if (t.config & ~writable) return fail("timer {} configuration {:#x} has bits it does not keep", i, t.config);
        unsigned route = static_cast<unsigned>((t.config & kRouteMask) >> kRouteShift);
        // Route 0 is the reset value, which stays until the guest writes a wired one.
        if (route != 0 && !((route_capabilities_ >> route) & 1)) return fail("timer {} is routed to IOAPIC input {}, which is not wired", i, route);
        if ((t.config & k32BitMode) && ((t.comparator | t.period) >> 32))
            return fail("timer {} is in 32-bit mode with a 64-bit comparator", i);
        if (t.last_periodic_fire_ns && (*t.last_periodic_fire_ns < 0 || *t.last_periodic_fire_ns > now))
            return fail("timer {}'s last periodic interrupt is outside the machine's time", i);
    }
    std::lock_guard lock(mutex_);
    config_ = s.config;
    status_ = s.status;
    counter_ = s.counter;
    enabled_at_ = s.enabled_at;
    for (unsigned i = 0; i < kTimers; ++i) {
        const TimerState& t = s.timers[i];
        timers_[i] = {.config = t.config,
                      .comparator = t.comparator,
                      .period = t.period,
                      .match_tick = t.match_tick,
                      .last_periodic_fire_ns = t.last_periodic_fire_ns};
    }
    legacy_inputs_ = s.legacy_inputs;
    // The interrupt controllers were restored with the lines' levels: the lines that are up are
    // driven up again (no change there), the others stay down.
    output_levels_ = {};
    update_lines();
    armed_deadline_.reset();
    reschedule();
    return {};
}

void Hpet::update_lines() {
    std::array<bool, kOutputs> wanted{};
    if (!legacy_routing()) {
        wanted[kOutputIrq0] = legacy_inputs_[kOutputIrq0];
        wanted[kOutputIrq8] = legacy_inputs_[kOutputIrq8];
    }
    for (unsigned index = 0; index < kTimers; ++index) {
        if (!level_asserted(index)) continue;
        if (auto output = output_of(index)) wanted[*output] = true;
    }
    for (unsigned output = 0; output < kOutputs; ++output) {
        if (!outputs_[output] || wanted[output] == output_levels_[output]) continue;
        output_levels_[output] = wanted[output];
        outputs_[output]->set_level(wanted[output]);
    }
}

// Arms the service timer for the earliest match. The earliest a periodic timer fires again is
// kMinPeriodicIntervalNs after its last interrupt (see Choice).
void Hpet::reschedule() {
    std::optional<int64_t> earliest;
    for (const Timer& timer : timers_) {
        // Without Tn_INT_ENB a match changes only what reads show (the periodic accumulator, a
        // level timer's status bit), and every access runs the matches due first: no host timer
        // (Linux leaves its periodic timer 0 so when the local APIC timer takes over).
        if (!timer.match_tick || !(timer.config & kIntEnable)) continue;
        if (*timer.match_tick > static_cast<uint64_t>(std::numeric_limits<int64_t>::max() - enabled_at_) / kTickNs)
            continue;  // centuries away
        int64_t deadline = enabled_at_ + static_cast<int64_t>(*timer.match_tick) * kTickNs;
        if ((timer.config & kPeriodic) && timer.last_periodic_fire_ns)
            deadline = std::max(deadline, *timer.last_periodic_fire_ns + kMinPeriodicIntervalNs);
        if (!earliest || deadline < *earliest) earliest = deadline;
    }
    if (!earliest) {
        timer_->cancel();
    } else if (earliest != armed_deadline_ || !timer_->armed()) {
        timer_->arm_at(*earliest);
    }
    armed_deadline_ = earliest;
}

// On the service thread. A callback that a guest access overtook finds its matches done, and
// only re-arms.
void Hpet::on_timer() {
    std::lock_guard lock(mutex_);
    advance(clock_.now_ns());
    update_lines();
    reschedule();
}

}  // namespace strata
