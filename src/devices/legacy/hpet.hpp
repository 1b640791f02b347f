// The High Precision Event Timer of a PC chipset: one timer block with a 64-bit main counter and
// three comparators.
//
// State:    the general configuration (ENABLE_CNF, LEG_RT_CNF) and interrupt status; the main
//           counter as "held value while halted, or value at the machine time it was enabled";
//           per timer its configuration, comparator (in periodic mode the accumulator), the last
//           value written to it (the period), and the counter tick of its next match; the levels
//           of the PIT's and the RTC's interrupt outputs that pass through it; state()/set_state()
//           for snapshots.
// Features: one 1 KiB MMIO window (§2.3.1 register map). Capabilities: revision 1, 3 timers,
//           64-bit counter, LegacyReplacement capable, vendor 0x8086, COUNTER_CLK_PERIOD 10 ns
//           (as QEMU's). The counter runs on the machine clock only while ENABLE_CNF is set (so
//           it stops while the VM is paused), reads are monotonic, writes take while halted.
//           Timers: edge or level interrupts (level ones set their status bit, whether or not
//           INT_ENB is set, and hold the line until the guest writes 1 to the bit); one-shot,
//           and periodic on timer 0 with the accumulator semantics of Tn_VAL_SET_CNF (a write with
//           VAL_SET sets comparator and period, one without sets the period only, as QEMU and
//           the AMD-8111); 32-bit mode (the comparator matches the counter's low 32 bits, its
//           upper half reads 0 and is cleared on entry); INT_ROUTE with the routes the board
//           wired as the allowed-routes mask in bits 63-32, writes of other routes ignored.
//           LegacyReplacement (while ENABLE_CNF and LEG_RT_CNF are set): timer 0 drives IRQ0
//           (8259 IR0 and IOAPIC pin 2), timer 1 IRQ8, and the PIT's and RTC's own interrupts,
//           which the board passes through pit_input() and rtc_input(), are cut off; otherwise
//           those two pass unchanged. Accesses of 1-8 bytes reach the bytes they cover of the
//           aligned 64-bit registers (the spec asks for 32- and 64-bit accesses); every write is
//           masked to the writable bits, and unknown offsets read 0 and ignore writes.
// Choice:   a one-shot timer matches every time the counter comes round to its comparator: in
//           32-bit mode again every 2^32 ticks (43 s), in 64-bit mode never again in practice.
//           QEMU instead raises an extra interrupt when the low 32 bits wrap to 0. Periodic
//           interrupts that the host delivers late are coalesced into one (the accumulator
//           skips the missed periods), and a periodic timer fires at most once per
//           kMinPeriodicIntervalNs of machine time, so that a period of a few ticks cannot make
//           the host spin.
// Missing:  FSB (MSI) delivery (Tn_FSB_INT_DEL_CAP reads 0); under the kvm engine the in-kernel
//           PIT is not cut off in LegacyReplacement mode (Linux does not program it once the
//           HPET runs); the routed IOAPIC inputs take the line active high, while Linux's
//           /dev/hpet driver registers them level, active low.
// Spec:     IA-PC HPET Specification 1.0a: §2.3.1 register map, §2.3.4 general capabilities,
//           §2.3.5 general configuration (LegacyReplacement routing), §2.3.6 interrupt status,
//           §2.3.7 main counter, §2.3.8 timer configuration and capabilities, §2.3.9 comparator
//           (one-shot and periodic modes); §3.2.4 the ACPI HPET description table; Intel ICH9
//           datasheet, HPET registers (TIMERn_32MODE_CNF clears the upper comparator); Linux
//           arch/x86/kernel/hpet.c (periodic set-up with SETVAL, one-shot with a counter check)
//           and Documentation/timers/hpet.rst (legacy mode blocks the 8254's and RTC's interrupts).
//
// Concurrency: vCPU threads access the window, the timer service runs matches, the PIT's and
// RTC's timers drive the inputs; one mutex guards the state, and the output lines are driven
// with it held (lock order: the PIT's or RTC's lock, then the HPET's, then the interrupt chips').
#pragma once

#include <array>
#include <cstdint>
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

class Hpet final : public BusDevice {
public:
    static constexpr uint64_t kWindowSize = 0x400;  // §2.3.1: 1 KiB per timer block
    static constexpr unsigned kTimers = 3;
    static constexpr unsigned kRoutes = 32;          // INT_ROUTE is 5 bits: IOAPIC inputs 0-31
    static constexpr int64_t kTickNs = 10;
    static constexpr uint64_t kTickFemtoseconds = 10'000'000;
    static constexpr int64_t kMinPeriodicIntervalNs = 20'000;

    // Registers (§2.3.1), each 64 bits wide at an 8-byte aligned offset.
    enum class Reg : uint64_t {
        Capabilities = 0x000,     // RO: GCAP_ID
        Configuration = 0x010,    // RW: GEN_CONF
        InterruptStatus = 0x020,  // RW1C: GINTR_STA
        MainCounter = 0x0f0,      // RW while halted: MAIN_CNT
        Timer0 = 0x100,           // timer n at Timer0 + n * kTimerStride
    };
    enum class TimerReg : uint64_t {
        Configuration = 0x00,  // Tn_CONF: configuration and capabilities
        Comparator = 0x08,     // Tn_COMPARATOR
        FsbRoute = 0x10,       // Tn_FSB_ROUTE (no FSB delivery: reads 0)
    };
    static constexpr uint64_t kTimerStride = 0x20;

    // General capabilities and ID (§2.3.4): REV_ID 1, NUM_TIM_CAP = timers - 1, COUNT_SIZE_CAP,
    // LEG_RT_CAP, VENDOR_ID, COUNTER_CLK_PERIOD in femtoseconds.
    static constexpr uint64_t kCapabilities = 0x01 | uint64_t{kTimers - 1} << 8 | uint64_t{1} << 13 |
                                              uint64_t{1} << 15 | uint64_t{0x8086} << 16 |
                                              kTickFemtoseconds << 32;
    // The ACPI HPET table's Event Timer Block ID is the low half of the capabilities (§3.2.4).
    static constexpr uint32_t kEventTimerBlockId = static_cast<uint32_t>(kCapabilities);

    // General configuration (§2.3.5).
    static constexpr uint64_t kEnable = 1u << 0;         // ENABLE_CNF
    static constexpr uint64_t kLegacyRoute = 1u << 1;    // LEG_RT_CNF
    // Timer n configuration and capabilities (§2.3.8).
    static constexpr uint64_t kLevelTriggered = 1u << 1; // Tn_INT_TYPE_CNF
    static constexpr uint64_t kIntEnable = 1u << 2;      // Tn_INT_ENB_CNF
    static constexpr uint64_t kPeriodic = 1u << 3;       // Tn_TYPE_CNF
    static constexpr uint64_t kPeriodicCapable = 1u << 4;// Tn_PER_INT_CAP (RO)
    static constexpr uint64_t kSize64Capable = 1u << 5;  // Tn_SIZE_CAP (RO)
    static constexpr uint64_t kValueSet = 1u << 6;       // Tn_VAL_SET_CNF
    static constexpr uint64_t k32BitMode = 1u << 8;      // Tn_32MODE_CNF
    static constexpr unsigned kRouteShift = 9;           // Tn_INT_ROUTE_CNF, bits 13-9
    static constexpr uint64_t kRouteMask = uint64_t{0x1f} << kRouteShift;
    static constexpr unsigned kRouteCapShift = 32;       // Tn_INT_ROUTE_CAP, bits 63-32 (RO)

    // Where interrupts go; lines the board does not give are not offered to the guest.
    struct Wiring {
        IrqLine* irq0 = nullptr;                 // LegacyReplacement timer 0: ISA IRQ 0 (IOAPIC pin 2)
        IrqLine* irq8 = nullptr;                 // LegacyReplacement timer 1: ISA IRQ 8
        std::array<IrqLine*, kRoutes> ioapic{};  // INT_ROUTE n drives ioapic[n]
    };

    // Timers come from `timers` (whose clock is the counter's), which must outlive the HPET, as
    // must the lines. A route line that is also irq0 or irq8 is a board bug and panics.
    Hpet(TimerService& timers, const Wiring& wiring);
    Hpet(const Hpet&) = delete;
    Hpet& operator=(const Hpet&) = delete;

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // The PIT's OUT 0 and the RTC's IRQ output: they reach IRQ0 and IRQ8 through the HPET, which
    // cuts them off while LegacyReplacement routing is on.
    [[nodiscard]] IrqLine& pit_input() { return pit_input_; }
    [[nodiscard]] IrqLine& rtc_input() { return rtc_input_; }

    // For snapshots; the counter's enable time is machine time, which a restore sets back to the
    // snapshot's, so the counter reads on from where it was.
    struct TimerState {
        uint64_t config = 0;
        uint64_t comparator = ~uint64_t{0};
        uint64_t period = 0;
        std::optional<uint64_t> match_tick;
        std::optional<int64_t> last_periodic_fire_ns;
    };
    struct State {
        uint64_t config = 0;
        uint64_t status = 0;
        uint64_t counter = 0;
        int64_t enabled_at = 0;
        std::array<TimerState, kTimers> timers{};
        std::array<bool, 2> legacy_inputs{};
        void encode(StateWriter& out) const;
        static State decode(StateReader& in);
    };
    [[nodiscard]] State state() const;
    // Fails, changing nothing, on bits the registers do not keep, a route the board did not wire,
    // or an enable time after the machine's present.
    Result<void> set_state(const State& state);

private:
    // Output lines by index: the two legacy IRQs, then the IOAPIC routes.
    static constexpr unsigned kOutputIrq0 = 0;
    static constexpr unsigned kOutputIrq8 = 1;
    static constexpr unsigned kOutputRoute0 = 2;
    static constexpr unsigned kOutputs = kOutputRoute0 + kRoutes;

    // The PIT's or the RTC's line into the HPET; `output` is kOutputIrq0 or kOutputIrq8.
    class LegacyInput final : public IrqLine {
    public:
        LegacyInput(Hpet& hpet, unsigned output) : hpet_(hpet), output_(output) {}
        void set_level(bool asserted) override;

    private:
        Hpet& hpet_;
        unsigned output_;
    };

    struct Timer {
        uint64_t config = 0;       // the writable bits (capabilities are added on read)
        uint64_t comparator = ~uint64_t{0};
        uint64_t period = 0;       // the last value written to the comparator
        std::optional<uint64_t> match_tick;  // ticks since enable of the next match; none: never
        std::optional<int64_t> last_periodic_fire_ns;  // machine ns, for the periodic rate bound
    };

    [[nodiscard]] uint64_t read_register(uint64_t reg, int64_t now) const;
    void write_register(uint64_t reg, uint64_t value, uint64_t byte_mask, int64_t now);
    void write_configuration(uint64_t value, int64_t now);
    void write_timer_configuration(unsigned index, uint64_t value);
    void write_comparator(unsigned index, uint64_t value, uint64_t byte_mask, int64_t now);

    [[nodiscard]] bool enabled() const { return (config_ & kEnable) != 0; }
    [[nodiscard]] bool legacy_routing() const { return enabled() && (config_ & kLegacyRoute) != 0; }
    [[nodiscard]] uint64_t capabilities(unsigned index) const;
    [[nodiscard]] uint64_t ticks_since_enable(int64_t now) const;
    [[nodiscard]] uint64_t counter(int64_t now) const;
    [[nodiscard]] std::optional<unsigned> output_of(unsigned index) const;
    [[nodiscard]] bool level_asserted(unsigned index) const;

    void find_next_match(unsigned index, int64_t now, bool including_now);
    bool advance(int64_t now);  // true when a timer matched
    void fire(unsigned index);
    void update_lines();
    void reschedule();
    void on_timer();

    MachineClock& clock_;
    std::array<IrqLine*, kOutputs> outputs_{};
    LegacyInput pit_input_{*this, kOutputIrq0};
    LegacyInput rtc_input_{*this, kOutputIrq8};
    uint32_t route_capabilities_ = 0;  // bit n: the board wired IOAPIC input n

    mutable std::mutex mutex_;
    uint64_t config_ = 0;
    uint64_t status_ = 0;
    uint64_t counter_ = 0;       // halted: the counter; running: its value at enabled_at_
    int64_t enabled_at_ = 0;     // machine ns
    std::array<Timer, kTimers> timers_{};
    std::array<bool, 2> legacy_inputs_{};     // the PIT's and the RTC's levels, by output index
    std::array<bool, kOutputs> output_levels_{};  // as last driven
    std::optional<int64_t> armed_deadline_;       // of timer_, so that polling does not re-arm it

    // Last: destroyed (and a running callback waited for) before the state above goes away.
    std::unique_ptr<TimerService::Timer> timer_;
};

}  // namespace strata
