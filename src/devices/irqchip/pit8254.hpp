// The Intel 8254 programmable interval timer, wired as in the PC.
//
// State:    per counter: mode, access (LSB/MSB/both), BCD, the count register (CR), the byte
//           flip-flops for reads and writes, a latched count and a latched status, GATE, and the
//           count in progress as "CE held run_count at input tick run_start" (with a pending new
//           CR for modes 2/3 and a suspended count for modes 0/4); system control port B bits
//           0-3; the refresh toggle; how far IRQ0 has been signalled.
// Features: two windows the board places separately: counters() (offsets 0-2 the counters, 3 the
//           control word; 0x40-0x43) and system_control() (port B, 0x61). Input clock 1.193182 MHz
//           on the machine clock: a counter's value and OUT are computed from the time of each
//           access, no thread ticks. Modes 0-5 (6/7 act as 2/3) with the datasheet's load on the
//           next CLK, GATE behaviour per mode, mode 0's first byte of two stopping the count, new
//           counts in modes 2/3 taking effect at the end of the period (half-cycle in mode 3),
//           count 0 = 65536 (10000 in BCD), BCD counting; counter latch command; read-back
//           (status byte with OUTPUT and NULL COUNT, count, several counters at once; status read
//           before count). Counter 0's OUT drives IRQ0: each rising edge of OUT is one pulse() (the
//           PC's 8259 and IOAPIC take IRQ0 edge-triggered), on a TimerService timer armed for the
//           next edge; periodic modes re-arm. Counter 2's GATE is port B bit 0 and its OUT is port
//           B bit 5; port B bit 4 (refresh) toggles on every read, as delay loops expect. GATE of
//           counters 0 and 1 is tied high. state()/set_state() for snapshots.
// Choice:   IRQ0 is bounded to one interrupt per kMinIrqIntervalNs (20 µs) of machine time: a
//           guest that programs count 2 (a 596 kHz rate) gets 50 kHz, the rising edges in between
//           coalesced into the next interrupt, so the host never spins on the timer. A count of 1
//           in modes 2 and 3 (illegal in mode 2, degenerate in mode 3) keeps OUT high: no interrupt.
// Missing:  the edge of OUT that a control word itself causes (mode 0 OUT low → high in another
//           mode) is not signalled on IRQ0, as in QEMU and KVM; counter 1's OUT (DRAM refresh) goes
//           nowhere; port B bits 6-7 (parity/IOCHK errors) read 0; the speaker is silent.
// Spec:     Intel 8254 Programmable Interval Timer datasheet (231164): "Control Word Format",
//           "Read-Back Command", "Mode Definitions", Figure "Gate Pin Operations Summary"; IBM PC AT
//           Technical Reference, "System Timers" and port 61h; Linux arch/x86/kernel/tsc.c
//           (pit_calibrate_tsc, quick_pit_calibrate) and drivers/clocksource/i8253.c.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>

#include "base/error.hpp"
#include "base/machine_clock.hpp"
#include "bus/bus_device.hpp"
#include "bus/irq_line.hpp"

namespace strata {

class Pit8254 {
public:
    static constexpr uint64_t kCountersWindowSize = 4;       // counters 0-2, control word (0x40-0x43)
    static constexpr uint64_t kSystemControlWindowSize = 1;  // system control port B (0x61)
    static constexpr int64_t kInputHz = 1'193'182;           // the PC's 14.31818 MHz crystal / 12
    static constexpr int64_t kMinIrqIntervalNs = 20'000;     // IRQ0 rate bound (see Choice)

    // Control word bits 5-4 (RW1 RW0).
    enum class Access : uint8_t { Latch = 0, LowByte = 1, HighByte = 2, LowThenHigh = 3 };

    // One counter, complete, as a snapshot keeps it. Ticks are periods of the input clock on the
    // machine clock: tick t begins at machine time t / kInputHz seconds.
    struct CounterState {
        uint8_t mode = 0;       // 0-5
        uint8_t mode_bits = 0;  // M2-M0 as written (6 and 7 too), for the read-back status
        Access access = Access::LowThenHigh;
        bool bcd = false;
        uint32_t count = 0x10000;        // CR: 1-65536 (BCD: 1-10000); a written 0 is the maximum
        bool count_written = false;      // since the last control word
        int64_t null_count_until = 0;    // NULL COUNT reads 1 before this tick (INT64_MAX: until loaded)
        bool write_high_next = false;    // LowThenHigh: the LSB is written, the MSB comes next
        uint8_t written_low = 0;
        bool read_high_next = false;
        bool count_latched = false;
        uint16_t latched_count = 0;      // as read: BCD-encoded in BCD mode
        bool status_latched = false;
        uint8_t latched_status = 0;
        bool gate = true;
        // The count in progress: CE held run_count at tick run_start (before that, idle_value).
        bool counting = false;
        int64_t run_start = 0;
        uint32_t run_count = 0x10000;    // 1-65536
        bool suspended = false;          // modes 0/4 with GATE low: CE holds at suspended_elapsed
        int64_t suspended_elapsed = 0;
        uint16_t idle_value = 0;         // CE and OUT while not counting, or before run_start
        bool idle_out = false;
        bool switch_pending = false;     // modes 2/3: CR takes over at switch_tick, the run then
        int64_t switch_tick = 0;         // counting as if it had begun at switch_start (mode 3 may
        int64_t switch_start = 0;        // begin in its low half)
    };

    struct State {
        std::array<CounterState, 3> counters{};
        uint8_t port_b = 0;  // bits 0-3 as written: GATE 2, speaker data, parity and IOCHK enables
        bool refresh_toggle = false;
        int64_t irq_signalled_through = 0;  // IRQ0: rising edges up to this tick are signalled
        bool irq_sent = false;              // last_irq_ns is valid
        int64_t last_irq_ns = 0;            // machine time of the last IRQ0 pulse
    };

    // IRQ0 is counter 0's OUT; timers come from the machine's TimerService, which must outlive
    // the PIT (the facets keep the PIT's state alive as long as the board keeps them).
    Pit8254(IrqLine& irq0, TimerService& timers);

    // Counters and control word (0x40-0x43).
    [[nodiscard]] std::shared_ptr<BusDevice> counters() const { return counters_; }
    // System control port B (0x61).
    [[nodiscard]] std::shared_ptr<BusDevice> system_control() const { return system_control_; }

    [[nodiscard]] State state() const;
    // Fails, changing nothing, on a state no guest could have made (mode 6, count 0, GATE 0 low ...).
    Result<void> set_state(const State& state);

private:
    struct Core;  // defined in pit8254.cpp; shared by both windows

    std::shared_ptr<Core> core_;
    std::shared_ptr<BusDevice> counters_;
    std::shared_ptr<BusDevice> system_control_;
};

}  // namespace strata
