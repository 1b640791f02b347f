#include "devices/irqchip/pit8254.hpp"

#include <algorithm>
#include <limits>
#include <mutex>
#include <optional>

#include "devices/facet.hpp"

namespace strata {
namespace {

using CounterState = Pit8254::CounterState;
using Access = Pit8254::Access;

constexpr int64_t kNsPerSecond = 1'000'000'000;
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
constexpr int64_t kInputHz = Pit8254::kInputHz;
// Snapshot ticks and times must stay far from overflow in the arithmetic below (2^60 ticks are
// some 30,000 years of input clock).
constexpr int64_t kTickLimit = int64_t{1} << 60;

// Control word (datasheet "Control Word Format"): SC1 SC0 RW1 RW0 M2 M1 M0 BCD.
constexpr unsigned kSelectReadBack = 3;
// Read-back command: 1 1 COUNT# STATUS# CNT2 CNT1 CNT0 0 (the two latch bits are active low).
constexpr uint8_t kReadBackNoCount = 0x20;
constexpr uint8_t kReadBackNoStatus = 0x10;
// Status byte: OUTPUT, NULL COUNT, then the control word's bits 5-0.
constexpr uint8_t kStatusOutput = 0x80;
constexpr uint8_t kStatusNullCount = 0x40;

// System control port B (IBM PC AT Technical Reference, port 61h).
constexpr uint8_t kPortBGate2 = 0x01;
constexpr uint8_t kPortBWritable = 0x0f;  // GATE 2, speaker data, parity and IOCHK check enables
constexpr uint8_t kPortBRefresh = 0x10;
constexpr uint8_t kPortBOut2 = 0x20;

// The input tick running at machine time `ns`, and the first machine ns of `tick`, in parts so
// that neither product overflows.
int64_t tick_at(int64_t ns) {
    ns = std::max<int64_t>(ns, 0);
    return ns / kNsPerSecond * kInputHz + ns % kNsPerSecond * kInputHz / kNsPerSecond;
}
int64_t ns_of_tick(int64_t tick) {
    if (tick <= 0) return 0;
    return tick / kInputHz * kNsPerSecond + (tick % kInputHz * kNsPerSecond + kInputHz - 1) / kInputHz;
}

int64_t modulus(const CounterState& c) { return c.bcd ? 10'000 : 0x10000; }

// CE as the counter holds it: counting down wraps (after terminal count in modes 0, 1, 4, 5).
uint16_t wrap(const CounterState& c, int64_t value) {
    int64_t m = modulus(c);
    return static_cast<uint16_t>(((value % m) + m) % m);
}

// What a read shows of CE: binary, or four BCD digits.
uint16_t encode(const CounterState& c, uint16_t value) {
    if (!c.bcd) return value;
    unsigned v = value % 10'000u;
    return static_cast<uint16_t>((v / 1000) << 12 | (v / 100 % 10) << 8 | (v / 10 % 10) << 4 | v % 10);
}

// A written count; 0 is the largest count. Non-decimal BCD nibbles count by their value (the
// datasheet leaves them undefined), reduced into the decade counter's range.
uint32_t decode(const CounterState& c, uint16_t raw) {
    if (!c.bcd) return raw == 0 ? 0x10000u : raw;
    uint32_t value = (raw >> 12 & 0xfu) * 1000 + (raw >> 8 & 0xfu) * 100 + (raw >> 4 & 0xfu) * 10 + (raw & 0xfu);
    value %= 10'000;
    return value == 0 ? 10'000u : value;
}

struct Output {
    uint16_t value;  // CE, binary
    bool out;
};

int64_t elapsed(const CounterState& c, int64_t tick) {
    return c.suspended ? c.suspended_elapsed : tick - c.run_start;
}

// CE and OUT at `tick` ("Mode Definitions"; counting begins on the CLK after the load). A new
// CR of modes 2/3 has taken over once its switch tick has come.
Output output_at(const CounterState& c, int64_t tick) {
    if (!c.counting) return {c.idle_value, c.idle_out};
    bool switched = c.switch_pending && tick >= c.switch_tick;
    int64_t e = switched ? tick - c.switch_start : elapsed(c, tick);
    if (e < 0) return {c.idle_value, c.idle_out};
    int64_t n = switched ? c.count : c.run_count;
    switch (c.mode) {
        case 0:  // OUT low until terminal count, then high
        case 1: return {wrap(c, n - e), e >= n};
        case 2: {  // OUT low for the one CLK while CE is 1, then reload
            int64_t phase = e % n;
            return {wrap(c, n - phase), n == 1 || phase != n - 1};
        }
        case 3: {  // high for (N+1)/2 CLKs, low for N/2; CE counts by two from N (odd: N-1)
            int64_t phase = e % n, high = (n + 1) / 2;
            bool out = phase < high;
            int64_t into_half = out ? phase : phase - high;
            return {wrap(c, (n & ~int64_t{1}) - 2 * into_half), out};
        }
        default: return {wrap(c, n - e), e != n};  // 4, 5: one CLK low at terminal count
    }
}

// The first rising edge of OUT after tick `after`, for a run of `n` from `start`.
std::optional<int64_t> run_rising_edge(uint8_t mode, int64_t start, int64_t n, int64_t after) {
    int64_t edge = 0;
    switch (mode) {
        case 0:
        case 1: edge = start + n; break;
        case 2:
        case 3:
            if (n < 2) return std::nullopt;
            edge = after < start ? start + n : start + ((after - start) / n + 1) * n;
            break;
        default: edge = start + n + 1; break;
    }
    if (edge <= after) return std::nullopt;
    return edge;
}

std::optional<int64_t> next_rising_edge(const CounterState& c, int64_t after) {
    if (!c.counting || c.suspended) return std::nullopt;
    auto edge = run_rising_edge(c.mode, c.run_start, c.run_count, after);
    if (!c.switch_pending || (edge && *edge <= c.switch_tick)) return edge;
    return run_rising_edge(c.mode, c.switch_start, c.count, std::max(after, c.switch_tick));
}

// Makes a new CR of modes 2/3 whose switch tick has come the count in progress, before a write
// changes the counter (reads and IRQ0 look at a pending switch as it is, so that the edge at the
// switch tick is not lost).
void normalize(CounterState& c, int64_t tick) {
    if (c.switch_pending && tick >= c.switch_tick) {
        c.run_start = c.switch_start;
        c.run_count = c.count;
        c.switch_pending = false;
    }
}

uint8_t status_of(const CounterState& c, int64_t tick) {
    uint8_t status = static_cast<uint8_t>(static_cast<uint8_t>(c.access) << 4 | c.mode_bits << 1 | (c.bcd ? 1 : 0));
    if (output_at(c, tick).out) status |= kStatusOutput;
    if (tick < c.null_count_until) status |= kStatusNullCount;
    return status;
}

// CR moves into CE on the next CLK; OUT reads `out_before` until then.
void start_run(CounterState& c, int64_t tick, const Output& now, bool out_before) {
    c.counting = true;
    c.run_start = tick + 1;
    c.run_count = c.count;
    c.switch_pending = false;
    c.idle_value = now.value;
    c.idle_out = out_before;
    c.suspended = (c.mode == 0 || c.mode == 4) && !c.gate;  // GATE low disables counting
    c.suspended_elapsed = 0;
    c.null_count_until = std::min(c.null_count_until, tick + 1);
}

void latch_count(CounterState& c, int64_t tick) {
    if (c.count_latched) return;  // a second latch before the first is read is ignored
    c.latched_count = encode(c, output_at(c, tick).value);
    c.count_latched = true;
}

void write_control_word(CounterState& c, uint8_t value, int64_t tick) {
    Output now = output_at(c, tick);
    c.access = static_cast<Access>(value >> 4 & 3);
    c.mode_bits = static_cast<uint8_t>(value >> 1 & 7);
    c.mode = c.mode_bits > 5 ? static_cast<uint8_t>(c.mode_bits & 3) : c.mode_bits;
    c.bcd = (value & 1) != 0;
    c.count_written = false;
    c.write_high_next = false;
    c.read_high_next = false;
    c.null_count_until = kNever;
    // "All control logic is reset": counting stops until a count is written, OUT goes low in
    // mode 0 and high in every other mode.
    c.counting = false;
    c.suspended = false;
    c.switch_pending = false;
    c.idle_value = now.value;
    c.idle_out = c.mode != 0;
}

void load_count(CounterState& c, uint16_t raw, int64_t tick) {
    Output now = output_at(c, tick);
    c.null_count_until = kNever;
    c.count = decode(c, raw);
    c.count_written = true;
    switch (c.mode) {
        case 0:
        case 4:  // (re)loaded on the next CLK; mode 0's OUT goes low
            start_run(c, tick, now, c.mode == 4);
            break;
        case 1:
        case 5: break;  // waits for a GATE trigger; a one-shot in progress goes on
        default:        // 2, 3
            if (c.counting && elapsed(c, tick) >= 0) {
                // The count in progress finishes its period (mode 3: its half-cycle) first.
                int64_t n = c.run_count, e = elapsed(c, tick);
                int64_t period_start = c.run_start + e / n * n;
                int64_t high = (n + 1) / 2;
                if (c.mode == 3 && e % n < high) {
                    c.switch_tick = period_start + high;  // the new count begins with its low half
                    c.switch_start = c.switch_tick - (int64_t{c.count} + 1) / 2;
                } else {
                    c.switch_tick = period_start + n;
                    c.switch_start = c.switch_tick;
                }
                c.switch_pending = true;
                c.null_count_until = c.switch_tick;
            } else if (c.gate) {
                start_run(c, tick, now, true);
            }
            break;
    }
}

void write_count_byte(CounterState& c, uint8_t byte, int64_t tick) {
    switch (c.access) {
        case Access::LowByte: load_count(c, byte, tick); break;
        case Access::HighByte: load_count(c, static_cast<uint16_t>(byte << 8), tick); break;
        default:
            if (!c.write_high_next) {
                c.written_low = byte;
                c.write_high_next = true;
                if (c.mode == 0) {
                    // Mode 0: writing the first byte stops counting and sets OUT low at once.
                    Output now = output_at(c, tick);
                    c.counting = false;
                    c.idle_value = now.value;
                    c.idle_out = false;
                }
            } else {
                c.write_high_next = false;
                load_count(c, static_cast<uint16_t>(c.written_low | byte << 8), tick);
            }
            break;
    }
}

uint8_t read_count_byte(CounterState& c, int64_t tick) {
    if (c.status_latched) {  // a latched status is read before a latched count
        c.status_latched = false;
        return c.latched_status;
    }
    uint16_t value = c.count_latched ? c.latched_count : encode(c, output_at(c, tick).value);
    bool high = c.access == Access::HighByte || (c.access == Access::LowThenHigh && c.read_high_next);
    if (c.access == Access::LowThenHigh) c.read_high_next = !c.read_high_next;
    if (c.access != Access::LowThenHigh || high) c.count_latched = false;  // read out
    return static_cast<uint8_t>(high ? value >> 8 : value);
}

// GATE per mode ("Gate Pin Operations Summary").
void set_gate(CounterState& c, bool level, int64_t tick) {
    if (level == c.gate) return;
    Output now = output_at(c, tick);
    c.gate = level;
    switch (c.mode) {
        case 0:
        case 4:  // low disables counting, high enables it again on the next CLK
            if (!c.counting) break;
            if (!level) {
                c.suspended_elapsed = std::max<int64_t>(elapsed(c, tick), 0);
                c.suspended = true;
            } else {
                c.run_start = tick + 1 - c.suspended_elapsed;
                c.suspended = false;
            }
            break;
        case 1:
        case 5:  // the rising edge triggers: CR into CE on the next CLK
            if (level && c.count_written) start_run(c, tick, now, now.out);
            break;
        default:  // 2, 3: low stops counting and forces OUT high; the rising edge reloads
            if (!level) {
                c.counting = false;
                c.switch_pending = false;
                c.idle_value = now.value;
                c.idle_out = true;
            } else if (c.count_written) {
                start_run(c, tick, now, true);
            }
            break;
    }
}

CounterState power_on_counter(bool gate) {
    CounterState c;
    c.gate = gate;
    c.null_count_until = kNever;
    return c;
}

Result<void> check_counter(const CounterState& c, unsigned index) {
    auto bad = [index](const char* what) { return fail("PIT counter {}: {}", index, what); };
    if (c.mode > 5) return bad("mode above 5");
    if (c.mode_bits > 7 || (c.mode_bits <= 5 ? c.mode_bits : (c.mode_bits & 3)) != c.mode)
        return bad("mode bits that do not give its mode");
    if (c.access == Access::Latch || static_cast<uint8_t>(c.access) > 3) return bad("no read/write access mode");
    uint32_t limit = c.bcd ? 10'000u : 0x10000u;
    if (c.count < 1 || c.count > limit || c.run_count < 1 || c.run_count > limit) return bad("count out of range");
    for (int64_t tick : {c.run_start, c.suspended_elapsed, c.switch_tick, c.switch_start})
        if (tick < -kTickLimit || tick > kTickLimit) return bad("tick out of range");
    if (c.suspended_elapsed < 0) return bad("negative suspended count");
    return {};
}

}  // namespace

struct Pit8254::Core {
    Core(IrqLine& irq, TimerService& timers) : irq0(irq), clock(timers.clock()) {
        for (unsigned i = 0; i < state.counters.size(); ++i) state.counters[i] = power_on_counter(i != 2);
        timer = timers.create_timer([this] { on_timer(); });
    }

    void read_counters(uint64_t offset, std::span<uint8_t> data);
    void write_counters(uint64_t offset, std::span<const uint8_t> data);
    void read_port_b(uint64_t offset, std::span<uint8_t> data);
    void write_port_b(uint64_t offset, std::span<const uint8_t> data);

    void write_control(uint8_t value, int64_t tick);
    void signal_due_edges(int64_t now, int64_t tick);
    void irq_reprogrammed(int64_t tick);
    void schedule_irq();
    void on_timer();

    IrqLine& irq0;
    MachineClock& clock;
    mutable std::mutex mutex;
    State state;
    std::unique_ptr<TimerService::Timer> timer;  // last: goes (and its callback finishes) first
};

void Pit8254::Core::read_counters(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex);
    int64_t tick = tick_at(clock.now_ns());
    // Byte lanes as on the ISA bus: a wider access reaches the next port too.
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t port = offset + i;
        // The control word register cannot be read (datasheet: no operation, 3-state).
        data[i] = port < 3 ? read_count_byte(state.counters[port], tick) : uint8_t{0xff};
    }
}

void Pit8254::Core::write_counters(uint64_t offset, std::span<const uint8_t> data) {
    std::lock_guard lock(mutex);
    int64_t now = clock.now_ns();
    int64_t tick = tick_at(now);
    // An edge that came under the old programming is signalled even if its timer is late.
    signal_due_edges(now, tick);
    for (auto& c : state.counters) normalize(c, tick);
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t port = offset + i;
        if (port < 3) {
            write_count_byte(state.counters[port], data[i], tick);
            if (port == 0) irq_reprogrammed(tick);
        } else if (port == 3) {
            write_control(data[i], tick);
        }
    }
}

void Pit8254::Core::write_control(uint8_t value, int64_t tick) {
    unsigned select = value >> 6;
    if (select == kSelectReadBack) {
        for (unsigned i = 0; i < state.counters.size(); ++i) {
            if (!(value & (2u << i))) continue;
            CounterState& c = state.counters[i];
            // Status and count are latched at the same moment; each only if not latched already.
            if (!(value & kReadBackNoStatus) && !c.status_latched) {
                c.latched_status = status_of(c, tick);
                c.status_latched = true;
            }
            if (!(value & kReadBackNoCount)) latch_count(c, tick);
        }
        return;
    }
    CounterState& c = state.counters[select];
    if (static_cast<Access>(value >> 4 & 3) == Access::Latch) {
        latch_count(c, tick);
        return;
    }
    write_control_word(c, value, tick);
    if (select == 0) irq_reprogrammed(tick);
}

void Pit8254::Core::read_port_b(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex);
    int64_t tick = tick_at(clock.now_ns());
    for (size_t i = 0; i < data.size(); ++i) {
        if (offset + i != 0) {
            data[i] = 0xff;
            continue;
        }
        uint8_t value = state.port_b & kPortBWritable;
        if (state.refresh_toggle) value |= kPortBRefresh;
        if (output_at(state.counters[2], tick).out) value |= kPortBOut2;
        state.refresh_toggle = !state.refresh_toggle;
        data[i] = value;
    }
}

void Pit8254::Core::write_port_b(uint64_t offset, std::span<const uint8_t> data) {
    std::lock_guard lock(mutex);
    int64_t tick = tick_at(clock.now_ns());
    normalize(state.counters[2], tick);
    for (size_t i = 0; i < data.size(); ++i) {
        if (offset + i != 0) continue;
        state.port_b = data[i] & kPortBWritable;
        set_gate(state.counters[2], (state.port_b & kPortBGate2) != 0, tick);
    }
}

// Counter 0 changed: edges before now belong to the old programming.
void Pit8254::Core::irq_reprogrammed(int64_t tick) {
    state.irq_signalled_through = tick;
    schedule_irq();
}

void Pit8254::Core::schedule_irq() {
    auto edge = next_rising_edge(state.counters[0], state.irq_signalled_through);
    if (!edge) {
        timer->cancel();
        return;
    }
    int64_t at = ns_of_tick(*edge);
    if (state.irq_sent) at = std::max(at, state.last_irq_ns + kMinIrqIntervalNs);
    timer->arm_at(at);
}

// One IRQ0 pulse for every rising edge of counter 0's OUT since the last one (coalesced), unless
// the last pulse is more recent than the rate bound allows.
void Pit8254::Core::signal_due_edges(int64_t now, int64_t tick) {
    if (state.irq_sent && now < state.last_irq_ns + kMinIrqIntervalNs) return;
    auto edge = next_rising_edge(state.counters[0], state.irq_signalled_through);
    if (edge && *edge <= tick) {
        irq0.pulse();
        state.irq_sent = true;
        state.last_irq_ns = now;
    }
    state.irq_signalled_through = std::max(state.irq_signalled_through, tick);
}

// On the service thread. A callback that was already running when a guest write moved the timer
// finds the state that write left, so it only signals edges that are due now.
void Pit8254::Core::on_timer() {
    std::lock_guard lock(mutex);
    int64_t now = clock.now_ns();
    signal_due_edges(now, tick_at(now));
    schedule_irq();
}

Pit8254::Pit8254(IrqLine& irq0, TimerService& timers)
    : core_(std::make_shared<Core>(irq0, timers)),
      counters_(std::make_shared<Facet<Core>>(core_, &Core::read_counters, &Core::write_counters)),
      system_control_(std::make_shared<Facet<Core>>(core_, &Core::read_port_b, &Core::write_port_b)) {}

Pit8254::State Pit8254::state() const {
    std::lock_guard lock(core_->mutex);
    return core_->state;
}

Result<void> Pit8254::set_state(const State& state) {
    for (unsigned i = 0; i < state.counters.size(); ++i) {
        if (auto r = check_counter(state.counters[i], i); !r) return r;
    }
    if (!state.counters[0].gate || !state.counters[1].gate) return fail("PIT: GATE of counters 0 and 1 is tied high");
    if (state.port_b & ~kPortBWritable) return fail("PIT: port B bits {:#x} are not writable", state.port_b);
    if (state.counters[2].gate != ((state.port_b & kPortBGate2) != 0)) return fail("PIT: GATE 2 differs from port B bit 0");
    if (state.irq_signalled_through < -kTickLimit || state.irq_signalled_through > kTickLimit ||
        state.last_irq_ns < -kTickLimit || state.last_irq_ns > kTickLimit)
        return fail("PIT: IRQ0 time out of range");
    std::lock_guard lock(core_->mutex);
    core_->state = state;
    core_->schedule_irq();
    return {};
}

}  // namespace strata
