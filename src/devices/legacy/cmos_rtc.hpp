// The MC146818A real-time clock and CMOS RAM.
//
// State:    128 bytes of CMOS, the index register, the guest's clock as an offset from the machine
//           clock, register A-D control bits, the reg C flags, and the next periodic event;
//           state()/set_state() for snapshots.
// Features: index port (offset 0, bit 7 = NMI mask) and data port (offset 1); time of day in UTC,
//           starting from the host's wall clock when the RTC is made and running on the machine
//           clock from then on (so it stops while the VM is paused, as QEMU's -rtc clock=vm), BCD
//           or binary (reg B DM) and 12 or 24 hour (reg B 24/12, PM in bit 7 of the hour); guest
//           writes of time (with or without SET) move an offset that later reads keep; UIP (reg A
//           bit 7) during the last 244 µs before each second's update; SET (reg B bit 7) freezes the time registers and clears UIE; reg C (IRQF, PF, AF, UF) clears
//           on read, which lowers the line; reg D VRT = 1; periodic interrupt at the reg A RS rate,
//           alarm with "don't care" values 0xc0-0xff, update-ended interrupt; century at 0x32;
//           memory-size bytes via set_memory_size(). Flags are set whether or not their interrupt is
//           enabled (datasheet "Register C"); a timer of the machine's TimerService raises the
//           line on time and is not armed whenever no enabled interrupt can fire.
// Missing:  the divider bits DV of reg A (the clock always runs); daylight-saving (reg B DSE);
//           square-wave output; the NMI mask bit is recorded but not forwarded to the CPU; guest
//           times before 1900 or after 2199 are ignored.
// Spec:     Motorola MC146818A datasheet ("Address Map", "Registers A-D", "Update Cycle",
//           Table 3 periodic rates); Linux drivers/rtc/rtc-mc146818-lib.c (polls UIP, reads reg C).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>

#include "base/error.hpp"
#include "base/machine_clock.hpp"
#include "base/state_stream.hpp"
#include "bus/bus_device.hpp"
#include "bus/irq_line.hpp"

namespace strata {

class CmosRtc final : public BusDevice {
public:
    static constexpr uint64_t kWindowSize = 2;  // index, data
    using WallClock = std::function<int64_t()>;  // ns since the Unix epoch

    // The host's wall clock (CLOCK_REALTIME) in ns since the Unix epoch.
    static int64_t host_realtime_ns();

    // The time of day starts at `wall_clock()` and then follows `timers.clock()`; tests pass
    // both to control time.
    CmosRtc(IrqLine& irq, TimerService& timers, const WallClock& wall_clock = host_realtime_ns);

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // The memory-size bytes a PC BIOS leaves for the OS: 0x15/0x16 base KiB, 0x17/0x18 and
    // 0x30/0x31 KiB above 1 MiB (capped at 0xffff), 0x34/0x35 64 KiB units above 16 MiB,
    // 0x5b-0x5d 64 KiB units above 4 GiB.
    void set_memory_size(uint64_t below_4g, uint64_t above_4g);

    // For snapshots. The guest's clock is kept as its offset from the machine clock, which a
    // restore sets back to the snapshot's time, so the RTC reads on from where it was.
    struct State {
        std::array<uint8_t, 128> cmos{};
        uint8_t index = 0;
        bool nmi_masked = false;
        int64_t offset_ns = 0;
        int64_t last_second = 0;
        std::optional<int64_t> next_periodic;
        uint8_t flags = 0;
        void encode(StateWriter& out) const;
        static State decode(StateReader& in);
    };
    [[nodiscard]] State state() const;
    // Fails, changing nothing, on a time outside 1900-2199 or flags reg C does not have.
    Result<void> set_state(const State& state);

private:
    enum class Reg : uint8_t {
        Seconds = 0x00,
        SecondsAlarm = 0x01,
        Minutes = 0x02,
        MinutesAlarm = 0x03,
        Hours = 0x04,
        HoursAlarm = 0x05,
        DayOfWeek = 0x06,
        DayOfMonth = 0x07,
        Month = 0x08,
        Year = 0x09,
        A = 0x0a,  // UIP, divider, rate select
        B = 0x0b,  // SET, PIE, AIE, UIE, SQWE, DM, 24/12, DSE
        C = 0x0c,  // IRQF, PF, AF, UF (read-only, clear on read)
        D = 0x0d,  // VRT (read-only)
        Century = 0x32,
    };

    uint8_t read_register(uint8_t index, int64_t now);
    void write_register(uint8_t index, uint8_t value, int64_t now);

    [[nodiscard]] bool set_mode() const;
    [[nodiscard]] bool is_time_register(uint8_t index) const;
    [[nodiscard]] uint8_t encode(int value) const;
    [[nodiscard]] int decode(uint8_t value) const;
    [[nodiscard]] uint8_t encode_hour(int hour) const;
    [[nodiscard]] int decode_hour(uint8_t value) const;
    void store_time_fields(int64_t guest_second);
    void commit_time_fields(int64_t now, int64_t phase_ns);
    [[nodiscard]] std::optional<int64_t> next_alarm_after(int64_t guest_second) const;
    [[nodiscard]] std::optional<int64_t> next_periodic_after(int64_t guest_ns) const;
    [[nodiscard]] bool irqf() const;
    void advance(int64_t now);
    void update_irq();
    [[nodiscard]] std::optional<int64_t> next_deadline() const;  // machine-clock ns
    void reschedule();
    void on_timer();

    IrqLine& irq_;
    MachineClock& clock_;
    mutable std::mutex mutex_;

    std::array<uint8_t, 128> cmos_{};
    uint8_t index_ = 0;
    bool nmi_masked_ = false;
    int64_t offset_ns_ = 0;      // guest time (ns since the epoch) = machine clock + offset
    int64_t last_second_ = 0;    // guest second when update/alarm were last evaluated
    std::optional<int64_t> next_periodic_;  // guest ns of the next periodic flag
    uint8_t flags_ = 0;          // reg C PF/AF/UF
    bool irq_level_ = false;

    // Last: destroyed (and a running callback waited for) before the state above goes away.
    std::unique_ptr<TimerService::Timer> timer_;
};

}  // namespace strata
