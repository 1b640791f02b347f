// The ACPI fixed hardware block the FADT points at: PM1a event and control registers and the
// PM timer.
//
// State:    PM1_STS, PM1_EN, PM1_CNT (SCI_EN, SLP_TYP), the timer's start time, the count of
//           timer-overflow periods already reported, and the SCI level; state()/set_state() for
//           snapshots.
// Features: PM1_STS (offset 0, u16, write 1 to clear), PM1_EN (offset 2, u16), PM1_CNT (offset 4,
//           u16): SLP_EN (bit 13) written with SLP_TYP (bits 12:10) == kSlpTypS5 powers off; SCI_EN
//           reads 1 from reset because the FADT has no SMI_CMD (a hardware-reduced-style "always in
//           ACPI mode" platform). PM_TMR (offset 8, u32, read-only): a 24-bit counter at
//           3.579545 MHz from the clock it is given (the board's: the machine clock, which stops
//           while the VM is paused), starting at 0. TMR_STS is set when bit 23
//           of the counter has toggled since the last look; press_power_button() sets PWRBTN_STS.
//           SCI = (PM1_STS & PM1_EN) != 0, evaluated on every access and button press.
//           SLP_TYP == kSlpTypS3 suspends the machine (MachineControl::request_sleep) until
//           rtc_alarm() with RTC_EN set wakes it, with WAK_STS and RTC_STS set. GBL_EN (bit 5 of
//           PM1_EN) keeps what is written: ACPICA enables it and reads it back before it uses the
//           FACS global lock (an ACPI Error if it does not stick); GBL_STS never sets, since no
//           firmware here takes the lock.
// Missing:  an asynchronous SCI for timer overflow (nothing wakes the device when bit 23 flips;
//           TMR_STS becomes visible at the next access — Linux does not enable TMR_EN); sleep
//           states other than S3 and S5 (SLP_EN with another SLP_TYP is ignored); wake by the
//           power button; GPE blocks.
// Spec:     ACPI 6.5 §4.8.3 (PM1 event/control registers, PM timer), Table 4.14-4.16.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <span>

#include "base/error.hpp"
#include "base/state_stream.hpp"
#include "bus/bus_device.hpp"
#include "bus/irq_line.hpp"
#include "bus/machine_control.hpp"

namespace strata {

class AcpiPm final : public BusDevice {
public:
    static constexpr uint64_t kWindowSize = 12;
    static constexpr uint16_t kSlpTypS5 = 5;       // the SLP_TYP our DSDT's \_S5 package carries
    static constexpr uint16_t kSlpTypS3 = 1;       // QEMU's S3 value, which kvm-unit-tests' s3 writes
    static constexpr uint64_t kTimerHz = 3'579'545;

    using Clock = std::function<int64_t()>;  // monotonic ns
    static int64_t host_monotonic_ns();

    AcpiPm(IrqLine& sci, MachineControl& control, Clock monotonic_ns = host_monotonic_ns);

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // For snapshots. The timer's start is on the device's clock, which for the board's is the
    // machine clock that a restore sets back to the snapshot's time.
    struct State {
        int64_t start_ns = 0;
        uint64_t overflow_periods_seen = 0;
        uint16_t status = 0;
        uint16_t enable = 0;
        uint16_t control = 0;
        bool sleeping = false;
        void encode(StateWriter& out) const;
        static State decode(StateReader& in);
    };
    [[nodiscard]] State state() const;
    // Fails, changing nothing, on bits the registers do not keep, a timer started after the
    // clock's present, or a guest asleep in S3 (a restore does not resume a sleeping machine).
    Result<void> set_state(const State& state);

    // Sets PWRBTN_STS, so a guest with PWRBTN_EN gets an SCI and can shut down gracefully.
    void press_power_button();
    // The RTC's alarm fired: sets RTC_STS, and wakes a sleeping guest when RTC_EN allows.
    void rtc_alarm();

    // PM1 status/enable bits (ACPI 6.5 Tables 4.14, 4.15).
    static constexpr uint16_t kTmrStatus = 1u << 0;
    static constexpr uint16_t kGblStatus = 1u << 5;  // GBL_STS / GBL_EN
    static constexpr uint16_t kPwrBtnStatus = 1u << 8;
    static constexpr uint16_t kRtcStatus = 1u << 10;
    static constexpr uint16_t kWakeStatus = 1u << 15;
    // PM1 control bits (Table 4.16).
    static constexpr uint16_t kSciEnable = 1u << 0;
    static constexpr uint16_t kSlpTypShift = 10;
    static constexpr uint16_t kSlpTypMask = 7u << kSlpTypShift;
    static constexpr uint16_t kSlpEnable = 1u << 13;

private:
    enum class Reg : uint8_t { Pm1Status = 0, Pm1Enable = 2, Pm1Control = 4, PmTimer = 8 };

    [[nodiscard]] uint64_t timer_ticks();
    [[nodiscard]] uint8_t register_byte(uint64_t offset);
    void poll_timer_overflow();
    void update_sci();

    IrqLine& sci_;
    MachineControl& control_;
    Clock monotonic_ns_;
    mutable std::mutex mutex_;
    int64_t start_ns_ = 0;
    uint64_t overflow_periods_seen_ = 0;  // 2^23-tick periods already turned into TMR_STS
    uint16_t status_ = 0;
    uint16_t enable_ = 0;
    uint16_t control_bits_ = kSciEnable;
    bool sci_level_ = false;
    bool sleeping_ = false;  // in S3 until a wake event
};

}  // namespace strata
