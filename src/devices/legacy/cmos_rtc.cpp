#include "devices/legacy/cmos_rtc.hpp"

#include <algorithm>
#include <ctime>

#include "base/checked.hpp"

namespace strata {
namespace {

constexpr int64_t kNsPerSecond = 1'000'000'000;
constexpr int64_t kSecondsPerDay = 86'400;
constexpr int64_t kUipWindowNs = 244'000;  // UIP rises 244 µs before the update (datasheet tBUC)
constexpr int64_t kTicksPerSecond = 32'768;  // the 32.768 kHz time base
// Guest times Strata accepts: 1900-01-01 up to 2199-12-31, so offsets stay far from overflow.
constexpr int64_t kEarliestSecond = -2'208'988'800;
constexpr int64_t kLatestSecond = 7'258'118'399;

// Register A.
constexpr uint8_t kAUpdateInProgress = 0x80;
constexpr uint8_t kARateMask = 0x0f;
// Register B.
constexpr uint8_t kBSet = 0x80;
constexpr uint8_t kBPeriodicEnable = 0x40;
constexpr uint8_t kBAlarmEnable = 0x20;
constexpr uint8_t kBUpdateEnable = 0x10;
constexpr uint8_t kBBinary = 0x04;
constexpr uint8_t kB24Hour = 0x02;
// Register C.
constexpr uint8_t kCIrqf = 0x80;
constexpr uint8_t kCPeriodic = 0x40;
constexpr uint8_t kCAlarm = 0x20;
constexpr uint8_t kCUpdate = 0x10;
// Register D.
constexpr uint8_t kDValidRam = 0x80;

constexpr uint8_t kHourPm = 0x80;
constexpr uint8_t kDontCare = 0xc0;  // alarm bytes 0xc0-0xff match every value

constexpr int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

bool dont_care(uint8_t alarm) { return (alarm & kDontCare) == kDontCare; }

}  // namespace

int64_t CmosRtc::host_realtime_ns() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return int64_t{ts.tv_sec} * kNsPerSecond + ts.tv_nsec;
}

CmosRtc::CmosRtc(IrqLine& irq, TimerService& timers, const WallClock& wall_clock)
    : irq_(irq), clock_(timers.clock()) {
    timer_ = timers.create_timer([this] { on_timer(); });
    std::lock_guard lock(mutex_);
    cmos_[static_cast<uint8_t>(Reg::A)] = 0x26;  // 32.768 kHz divider, 1024 Hz rate (power-on)
    cmos_[static_cast<uint8_t>(Reg::B)] = kB24Hour;
    int64_t now = clock_.now_ns();
    int64_t wall = wall_clock ? wall_clock() : host_realtime_ns();
    offset_ns_ = wall - now;
    last_second_ = floor_div(wall, kNsPerSecond);
    next_periodic_ = next_periodic_after(wall);
    reschedule();
}

void CmosRtc::read(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex_);
    int64_t now = clock_.now_ns();
    for (size_t i = 0; i < data.size(); ++i) {
        // The index port is write-only; the data port reads the selected byte.
        data[i] = offset + i == 1 ? read_register(index_, now) : uint8_t{0xff};
    }
}

void CmosRtc::write(uint64_t offset, std::span<const uint8_t> data) {
    std::lock_guard lock(mutex_);
    int64_t now = clock_.now_ns();
    // Byte lanes as on the ISA bus: a 16-bit write to the index port also writes the data port,
    // which some firmware uses to set index and value at once.
    for (size_t i = 0; i < data.size(); ++i) {
        if (offset + i == 0) {
            index_ = static_cast<uint8_t>(data[i] & 0x7f);
            nmi_masked_ = (data[i] & 0x80) != 0;
        } else if (offset + i == 1) {
            write_register(index_, data[i], now);
        }
    }
}

void CmosRtc::set_memory_size(uint64_t below_4g, uint64_t above_4g) {
    std::lock_guard lock(mutex_);
    auto put16 = [&](uint8_t at, uint64_t value) {
        value = std::min<uint64_t>(value, 0xffff);
        cmos_[at] = static_cast<uint8_t>(value);
        cmos_[at + 1] = static_cast<uint8_t>(value >> 8);
    };
    put16(0x15, 640);  // conventional memory, KiB
    uint64_t extended_kib = below_4g > MiB ? (below_4g - MiB) / KiB : 0;
    put16(0x17, extended_kib);
    put16(0x30, extended_kib);
    put16(0x34, below_4g > 16 * MiB ? (below_4g - 16 * MiB) / (64 * KiB) : 0);
    uint64_t high_units = std::min<uint64_t>(above_4g / (64 * KiB), 0xff'ffff);
    cmos_[0x5b] = static_cast<uint8_t>(high_units);
    cmos_[0x5c] = static_cast<uint8_t>(high_units >> 8);
    cmos_[0x5d] = static_cast<uint8_t>(high_units >> 16);
}

bool CmosRtc::set_mode() const { return (cmos_[static_cast<uint8_t>(Reg::B)] & kBSet) != 0; }

bool CmosRtc::is_time_register(uint8_t index) const {
    switch (static_cast<Reg>(index)) {
        case Reg::Seconds:
        case Reg::Minutes:
        case Reg::Hours:
        case Reg::DayOfWeek:
        case Reg::DayOfMonth:
        case Reg::Month:
        case Reg::Year:
        case Reg::Century: return true;
        default: return false;
    }
}

uint8_t CmosRtc::read_register(uint8_t index, int64_t now) {
    advance(now);
    if (is_time_register(index)) {
        if (!set_mode()) store_time_fields(floor_div(now + offset_ns_, kNsPerSecond));
        return cmos_[index];
    }
    switch (static_cast<Reg>(index)) {
        case Reg::A: {
            uint8_t value = static_cast<uint8_t>(cmos_[index] & ~kAUpdateInProgress);
            int64_t phase = (now + offset_ns_) - floor_div(now + offset_ns_, kNsPerSecond) * kNsPerSecond;
            if (!set_mode() && phase >= kNsPerSecond - kUipWindowNs) value |= kAUpdateInProgress;
            return value;
        }
        case Reg::C: {
            uint8_t value = flags_;
            if (irqf()) value |= kCIrqf;
            flags_ = 0;  // all flags clear on read, and with them IRQF and the line
            update_irq();
            reschedule();
            return value;
        }
        case Reg::D: return kDValidRam;
        default: return cmos_[index & 0x7f];
    }
}

void CmosRtc::write_register(uint8_t index, uint8_t value, int64_t now) {
    advance(now);
    if (is_time_register(index)) {
        if (set_mode()) {
            cmos_[index] = value;  // committed when SET clears
            return;
        }
        // A write while the clock runs: apply it to the current time and keep the phase
        // within the second, so the next update comes when it would have.
        int64_t guest = now + offset_ns_;
        int64_t second = floor_div(guest, kNsPerSecond);
        store_time_fields(second);
        cmos_[index] = value;
        commit_time_fields(now, guest - second * kNsPerSecond);
        reschedule();
        return;
    }
    switch (static_cast<Reg>(index)) {
        case Reg::A:
            cmos_[index] = static_cast<uint8_t>(value & ~kAUpdateInProgress);
            next_periodic_ = next_periodic_after(now + offset_ns_);
            break;
        case Reg::B: {
            bool was_set = set_mode();
            bool setting = (value & kBSet) != 0;
            if (setting) value &= static_cast<uint8_t>(~kBUpdateEnable);  // SET clears UIE
            if (setting && !was_set) store_time_fields(floor_div(now + offset_ns_, kNsPerSecond));
            cmos_[index] = value;
            // Leaving SET starts the clock from the written time at the start of a second.
            if (was_set && !setting) commit_time_fields(now, 0);
            update_irq();  // IRQF = PF·PIE + AF·AIE + UF·UIE follows the enables at once
            break;
        }
        case Reg::C:
        case Reg::D: return;  // read-only
        default: cmos_[index & 0x7f] = value; break;  // CMOS RAM, and the alarm bytes
    }
    reschedule();
}

uint8_t CmosRtc::encode(int value) const {
    if (cmos_[static_cast<uint8_t>(Reg::B)] & kBBinary) return static_cast<uint8_t>(value);
    return static_cast<uint8_t>(((value / 10) % 10) << 4 | (value % 10));
}

int CmosRtc::decode(uint8_t value) const {
    if (cmos_[static_cast<uint8_t>(Reg::B)] & kBBinary) return value;
    return (value >> 4) * 10 + (value & 0x0f);
}

uint8_t CmosRtc::encode_hour(int hour) const {
    if (cmos_[static_cast<uint8_t>(Reg::B)] & kB24Hour) return encode(hour);
    int twelve = hour % 12 == 0 ? 12 : hour % 12;
    return static_cast<uint8_t>(encode(twelve) | (hour >= 12 ? kHourPm : 0));
}

int CmosRtc::decode_hour(uint8_t value) const {
    if (cmos_[static_cast<uint8_t>(Reg::B)] & kB24Hour) return decode(value);
    int hour = decode(static_cast<uint8_t>(value & ~kHourPm)) % 12;  // 12 AM is 0, 12 PM is 12
    return (value & kHourPm) ? hour + 12 : hour;
}

void CmosRtc::store_time_fields(int64_t guest_second) {
    time_t t = static_cast<time_t>(guest_second);
    tm fields{};
    gmtime_r(&t, &fields);
    int year = fields.tm_year + 1900;
    cmos_[static_cast<uint8_t>(Reg::Seconds)] = encode(fields.tm_sec);
    cmos_[static_cast<uint8_t>(Reg::Minutes)] = encode(fields.tm_min);
    cmos_[static_cast<uint8_t>(Reg::Hours)] = encode_hour(fields.tm_hour);
    cmos_[static_cast<uint8_t>(Reg::DayOfWeek)] = encode(fields.tm_wday + 1);  // 1 = Sunday
    cmos_[static_cast<uint8_t>(Reg::DayOfMonth)] = encode(fields.tm_mday);
    cmos_[static_cast<uint8_t>(Reg::Month)] = encode(fields.tm_mon + 1);
    cmos_[static_cast<uint8_t>(Reg::Year)] = encode(year % 100);
    cmos_[static_cast<uint8_t>(Reg::Century)] = encode(year / 100);
}

void CmosRtc::commit_time_fields(int64_t now, int64_t phase_ns) {
    tm fields{};
    fields.tm_sec = decode(cmos_[static_cast<uint8_t>(Reg::Seconds)]);
    fields.tm_min = decode(cmos_[static_cast<uint8_t>(Reg::Minutes)]);
    fields.tm_hour = decode_hour(cmos_[static_cast<uint8_t>(Reg::Hours)]);
    fields.tm_mday = decode(cmos_[static_cast<uint8_t>(Reg::DayOfMonth)]);
    fields.tm_mon = decode(cmos_[static_cast<uint8_t>(Reg::Month)]) - 1;
    fields.tm_year = decode(cmos_[static_cast<uint8_t>(Reg::Century)]) * 100 +
                     decode(cmos_[static_cast<uint8_t>(Reg::Year)]) - 1900;
    // timegm normalizes nonsense (month 0x99, second 75) into some date; the range check below
    // keeps hostile values from pushing the offset anywhere near overflow.
    int64_t second = static_cast<int64_t>(timegm(&fields));
    if (second < kEarliestSecond || second > kLatestSecond) return;
    offset_ns_ = second * kNsPerSecond + phase_ns - now;
    last_second_ = second;
    next_periodic_ = next_periodic_after(now + offset_ns_);
}

std::optional<int64_t> CmosRtc::next_alarm_after(int64_t guest_second) const {
    uint8_t want_second = cmos_[static_cast<uint8_t>(Reg::SecondsAlarm)];
    uint8_t want_minute = cmos_[static_cast<uint8_t>(Reg::MinutesAlarm)];
    uint8_t want_hour = cmos_[static_cast<uint8_t>(Reg::HoursAlarm)];
    auto matches = [](uint8_t alarm, int decoded, int value) { return dont_care(alarm) || decoded == value; };
    int alarm_second = decode(want_second), alarm_minute = decode(want_minute), alarm_hour = decode_hour(want_hour);
    // Walk today and tomorrow hour by hour, skipping whole hours and minutes that end before
    // the start, so the search costs at most a few hundred steps.
    int64_t day = floor_div(guest_second + 1, kSecondsPerDay) * kSecondsPerDay;
    for (int d = 0; d < 2; ++d, day += kSecondsPerDay) {
        for (int h = 0; h < 24; ++h) {
            int64_t hour_start = day + h * 3600;
            if (!matches(want_hour, alarm_hour, h) || hour_start + 3599 <= guest_second) continue;
            for (int m = 0; m < 60; ++m) {
                int64_t minute_start = hour_start + m * 60;
                if (!matches(want_minute, alarm_minute, m) || minute_start + 59 <= guest_second) continue;
                for (int s = 0; s < 60; ++s) {
                    if (matches(want_second, alarm_second, s) && minute_start + s > guest_second)
                        return minute_start + s;
                }
            }
        }
    }
    return std::nullopt;  // the alarm names a time that never comes (hour 25, minute 0x7a, ...)
}

std::optional<int64_t> CmosRtc::next_periodic_after(int64_t guest_ns) const {
    unsigned rate = cmos_[static_cast<uint8_t>(Reg::A)] & kARateMask;
    if (rate == 0) return std::nullopt;
    // Datasheet Table 3 for the 32.768 kHz time base: RS 1 and 2 repeat the rates of RS 8 and 9.
    if (rate <= 2) rate += 7;
    int64_t period_ticks = int64_t{1} << (rate - 1);
    // Every rate divides one second, so events sit at fixed tick positions within each second.
    int64_t second = floor_div(guest_ns, kNsPerSecond);
    int64_t fraction = guest_ns - second * kNsPerSecond;
    int64_t tick = fraction * kTicksPerSecond / kNsPerSecond;
    int64_t next_tick = (tick / period_ticks + 1) * period_ticks;
    if (next_tick >= kTicksPerSecond) return (second + 1) * kNsPerSecond;
    return second * kNsPerSecond + (next_tick * kNsPerSecond + kTicksPerSecond - 1) / kTicksPerSecond;
}

bool CmosRtc::irqf() const {
    uint8_t b = cmos_[static_cast<uint8_t>(Reg::B)];
    return ((flags_ & kCPeriodic) && (b & kBPeriodicEnable)) || ((flags_ & kCAlarm) && (b & kBAlarmEnable)) ||
           ((flags_ & kCUpdate) && (b & kBUpdateEnable));
}

void CmosRtc::advance(int64_t now) {
    int64_t guest = now + offset_ns_;
    if (!set_mode()) {
        int64_t second = floor_div(guest, kNsPerSecond);
        if (second > last_second_) {
            flags_ |= kCUpdate;
            auto alarm = next_alarm_after(last_second_);
            if (alarm && *alarm <= second) flags_ |= kCAlarm;
        }
        last_second_ = second;
    }
    if (next_periodic_ && guest >= *next_periodic_) {
        flags_ |= kCPeriodic;
        next_periodic_ = next_periodic_after(guest);
    }
    update_irq();
}

void CmosRtc::State::encode(StateWriter& out) const {
    out.bytes(cmos);
    out.u8(index);
    out.boolean(nmi_masked);
    out.i64(offset_ns);
    out.i64(last_second);
    out.optional_i64(next_periodic);
    out.u8(flags);
}

CmosRtc::State CmosRtc::State::decode(StateReader& in) {
    State s;
    s.cmos = in.array<128>("CMOS RAM");
    s.index = in.u8_at_most(127, "index");
    s.nmi_masked = in.boolean("NMI mask");
    s.offset_ns = in.i64("clock offset");
    s.last_second = in.i64("last second");
    s.next_periodic = in.optional_i64("next periodic event");
    s.flags = in.u8("register C flags");
    return s;
}

CmosRtc::State CmosRtc::state() const {
    std::lock_guard lock(mutex_);
    return {.cmos = cmos_,
            .index = index_,
            .nmi_masked = nmi_masked_,
            .offset_ns = offset_ns_,
            .last_second = last_second_,
            .next_periodic = next_periodic_,
            .flags = flags_};
}

Result<void> CmosRtc::set_state(const State& s) {
    auto in_range = [](int64_t guest_ns) {
        return guest_ns >= kEarliestSecond * kNsPerSecond && guest_ns <= kLatestSecond * kNsPerSecond;
    };
    if (!in_range(s.offset_ns)) return fail("the clock offset {} ns is outside 1900-2199", s.offset_ns);
    if (s.last_second < kEarliestSecond || s.last_second > kLatestSecond)
        return fail("the last second {} is outside 1900-2199", s.last_second);
    if (s.next_periodic && !in_range(*s.next_periodic))
        return fail("the next periodic event {} ns is outside 1900-2199", *s.next_periodic);
    if (s.flags & ~(kCPeriodic | kCAlarm | kCUpdate)) return fail("register C flags {:#04x} are not PF/AF/UF", s.flags);
    std::lock_guard lock(mutex_);
    cmos_ = s.cmos;
    index_ = s.index;
    nmi_masked_ = s.nmi_masked;
    offset_ns_ = s.offset_ns;
    last_second_ = s.last_second;
    next_periodic_ = s.next_periodic;
    flags_ = s.flags;
    // The interrupt controllers were restored with this line's level; driving it again changes
    // nothing there and keeps irq_level_ true to it.
    irq_level_ = irqf();
    irq_.set_level(irq_level_);
    reschedule();
    return {};
}

void CmosRtc::update_irq() {
    bool level = irqf();
    if (level == irq_level_) return;
    irq_level_ = level;
    irq_.set_level(level);
}

std::optional<int64_t> CmosRtc::next_deadline() const {
    if (irqf()) return std::nullopt;  // the line is up until the guest reads reg C
    uint8_t b = cmos_[static_cast<uint8_t>(Reg::B)];
    std::optional<int64_t> guest;
    auto consider = [&](std::optional<int64_t> at) {
        if (at && (!guest || *at < *guest)) guest = at;
    };
    if (b & kBPeriodicEnable) consider(next_periodic_);
    if (!set_mode() && (b & kBUpdateEnable)) consider((last_second_ + 1) * kNsPerSecond);
    if (!set_mode() && (b & kBAlarmEnable)) {
        auto alarm = next_alarm_after(last_second_);
        if (alarm) consider(*alarm * kNsPerSecond);
    }
    if (!guest) return std::nullopt;
    return *guest - offset_ns_;
}

// Called with mutex_ held whenever the next event may have moved. The timer stays unarmed while
// nothing enabled can fire, so an RTC with its interrupts off costs the host nothing.
void CmosRtc::reschedule() {
    if (auto deadline = next_deadline()) {
        timer_->arm_at(*deadline);
    } else {
        timer_->cancel();
    }
}

// On the service thread. A callback that was already running when a guest access cancelled or
// moved the timer finds the state that access left, so it only ever does what is due now.
void CmosRtc::on_timer() {
    std::lock_guard lock(mutex_);
    advance(clock_.now_ns());
    reschedule();
}

}  // namespace strata
