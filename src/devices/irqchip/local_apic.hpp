// The local APIC of one vCPU of the soft engine: interrupt acceptance and priority, IPIs, the
// local vector table and its timer, as the xAPIC MMIO page and the x2APIC MSRs present them.
//
// State:    IA32_APIC_BASE (base, BSP, EN, EXTD), the registers of the xAPIC page (ID, TPR, LDR,
//           DFR, SVR, ISR/TMR/IRR, ESR and the errors not yet latched into it, ICR, six LVT entries
//           with their remote IRR, timer initial count and divide configuration), the timer's
//           running count as an origin in guest time, IA32_TSC_DEADLINE, the LINT0/LINT1 input
//           levels, and the events the vCPU has yet to take (NMI, INIT, SIPI, an ExtINT message).
// Features: xAPIC MMIO (32-bit accesses at 16-byte aligned offsets; reads of other widths and
//           offsets return the bytes of the register slot they cover, bytes 4-15 of a slot read 0;
//           other writes are ignored, as only 32-bit stores are architectural, §11.4.1; access to
//           an unimplemented offset sets ESR "illegal register address"); x2APIC MSRs 0x800-0x83f
//           with their #GP rules (§11.12.1.2-3: read-only, write-only and absent registers,
//           non-zero reserved bits, 64-bit ICR, SELF IPI, LDR derived from the ID, no DFR);
//           IA32_APIC_BASE transitions of §11.12.5 (disabled, xAPIC, x2APIC; x2APIC → xAPIC is
//           illegal); version 0x00050014 (six LVT entries: timer, thermal, performance counter,
//           LINT0, LINT1, error; no CMCI, no EOI-broadcast suppression); TPR/PPR/APR (§11.8.3.1,
//           §11.6.2.4); IRR → ISR → EOI with the EOI of a level-triggered vector (TMR) reaching the
//           IOAPIC; SVR software enable (disabled: LVTs masked and kept masked, fixed interrupts
//           refused, NMI/INIT/SIPI still taken, §11.4.7.2); ESR write-before-read with the error
//           LVT, send/receive illegal vector (vectors 0-15 never reach the IRR, §11.5.3); ICR IPIs
//           fixed, lowest priority, SMI (sent; the receivers drop it), NMI, INIT assert and level
//           de-assert, SIPI, with the shorthands self, all, all but self; delivery status reads
//           idle; LINT0/LINT1 in Fixed (edge or level, with remote IRR), NMI, INIT and ExtINT modes,
//           and as INTR/NMI pins while the APIC is globally disabled (§11.4.3); timer one-shot,
//           periodic and TSC-deadline (§11.5.4) on one TimerService timer, its current count
//           computed from the machine clock; reset and INIT state (§11.4.7.1, §11.4.7.3); state
//           as the 1 KiB register image of kvm_lapic_state plus LocalApicExtraState.
// Missing:  SMI (SMI messages and LVT entries in SMI mode do nothing); thermal and performance-
//           counter interrupts (their LVT entries are registers only); the pin polarity bit
//           (inputs are active high); focus-processor checking; remote read (RRD reads 0); CMCI;
//           EOI-broadcast suppression and directed EOI; the arbitration ID of the 3-wire bus.
//           Periodic timers are coalesced: however small the period, the host timer fires at most
//           once every kMinPeriodicIntervalNs and each firing sets the timer's IRR bit once (the
//           current count still reads exactly).
// Spec:     Intel SDM vol. 3A chapter 11 (§11.4 local APIC, §11.5 LVT, timer and ESR, §11.6 ICR,
//           §11.8 acceptance, priorities and EOI, §11.9 spurious interrupt, §11.12 x2APIC).
//
// Threads:  the vCPU thread makes register accesses, takes events and acknowledges interrupts;
//           accept() and the LINT inputs come from any thread (IOAPIC, other vCPUs, MSIs, the
//           8259 pair), the timer from the TimerService thread. One mutex guards the state. It
//           is the innermost lock: while holding it the LocalApic calls nothing that could call
//           back — ApicBus::send, EoiListener, ExtIntSource and LocalApicHost::kick run after it
//           is released — except its TimerService timer's arm_at()/cancel(), which wait for no
//           callback. The timer callback takes no lock of the LocalApic (it sets an atomic and
//           kicks the host). Callers may hold their own locks when calling in (the 8259 pair
//           its own while driving LINT0, the IOAPIC its own while sending): lock order
//           caller → LocalApic.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <type_traits>

#include "base/error.hpp"
#include "base/machine_clock.hpp"
#include "bus/bus_device.hpp"
#include "devices/irqchip/apic_bus.hpp"

namespace strata {

// What a local APIC needs from its vCPU.
class LocalApicHost {
public:
    virtual ~LocalApicHost() = default;
    // Something became pending (see LocalApic::pending_events): end the vCPU's current block, or
    // wake it from HLT. Called from any thread (the TimerService's too, so it must not wait
    // long), never with the LocalApic's lock held.
    virtual void kick() = 0;
};

struct LocalApicConfig {
    uint32_t apic_id = 0;              // the initial APIC ID (CPUID 1 EBX[31:24], x2APIC ID 0xb)
    bool bootstrap = false;            // IA32_APIC_BASE.BSP after reset
    uint64_t timer_hz = 1'000'000'000;  // the timer's input clock (bus/crystal clock, CPUID 0x15)
    uint64_t tsc_hz = 1'000'000'000;    // TSC = guest ns * tsc_hz / 1e9 + the TSC offset
    bool x2apic = true;                // CPUID 1 ECX.x2APIC: IA32_APIC_BASE.EXTD may be set
    bool tsc_deadline = true;          // CPUID 1 ECX.TSC_DEADLINE: LVT timer mode 2 exists
    uint8_t physical_address_bits = 46;  // CPUID 0x80000008 EAX[7:0]: APIC base bits above are reserved
};

// What a local APIC holds beyond its register page: what moving a vCPU must carry along with
// ExtendedCpuState::lapic to resume exactly. Without it (a page from the kvm engine) the timer
// restarts at import from the page's current count.
struct LocalApicExtraState {
    int64_t saved_at_ns = 0;       // guest time of the export: the page's current count is as of then
    bool timer_counting = false;   // one-shot or periodic count in progress
    uint64_t tsc_deadline = 0;     // IA32_TSC_DEADLINE (0: disarmed)
    uint64_t tsc_offset = 0;
    uint8_t pending_errors = 0;    // errors not yet latched into the ESR by a write
    bool nmi_pending = false;
    bool init_pending = false;
    std::optional<uint8_t> sipi_vector;
    bool ext_int_message = false;  // an ExtINT message waiting for its INTA
    bool lint0 = false, lint1 = false;  // input levels
    bool operator==(const LocalApicExtraState&) const = default;
};

struct LocalApicState {
    uint64_t apic_base = 0;
    std::array<uint8_t, 1024> page{};  // kvm_lapic_state's regs: the registers at their MMIO offsets
    std::optional<LocalApicExtraState> extra;
};

class LocalApic final : public BusDevice {
public:
    static constexpr uint64_t kWindowSize = 4096;
    static constexpr uint64_t kDefaultBase = 0xfee0'0000;
    static constexpr uint32_t kVersion = 0x0005'0014;  // max LVT entry 5 (six entries), version 0x14
    static constexpr int64_t kMinPeriodicIntervalNs = 50'000;  // periodic timers: at most 20 kHz
    static constexpr uint32_t kApicBaseMsr = 0x1b;
    static constexpr uint32_t kTscDeadlineMsr = 0x6e0;

    // The bits of pending_events().
    static constexpr uint32_t kEventInterrupt = 1u << 0;  // call pending_interrupt() when IF allows
    static constexpr uint32_t kEventNmi = 1u << 1;
    static constexpr uint32_t kEventInit = 1u << 2;
    static constexpr uint32_t kEventStartUp = 1u << 3;

    // An interrupt the vCPU may take: from the IRR (its vector known), or an ExtINT whose vector
    // the 8259 pair names in the acknowledge cycle.
    struct PendingInterrupt {
        bool external = false;
        uint8_t vector = 0;  // when !external
        bool operator==(const PendingInterrupt&) const = default;
    };

    // `bus` carries this APIC's IPIs (the ApicRouter); `host` is its vCPU. The APIC starts in its
    // power-up state (reset()).
    LocalApic(const LocalApicConfig& config, TimerService& timers, ApicBus& bus, LocalApicHost& host);
    ~LocalApic() override;
    LocalApic(const LocalApic&) = delete;
    LocalApic& operator=(const LocalApic&) = delete;

    // The 8259 pair answering ExtINT acknowledge cycles, and the IOAPIC taking EOIs of
    // level-triggered vectors. Before the vCPU runs.
    void connect(ExtIntSource& pic, EoiListener& ioapic);

    // The xAPIC page at offsets 0-0xfff. While the APIC is disabled or in x2APIC mode the page is
    // not decoded (decodes_mmio()): reads return all ones and writes are ignored.
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;
    [[nodiscard]] bool decodes_mmio() const;

    // RDMSR/WRMSR of IA32_APIC_BASE (0x1b), IA32_TSC_DEADLINE (0x6e0) and the x2APIC registers
    // (0x800-0x8ff). nullopt / false: the MSR does not exist in this mode or the access is
    // illegal, and the CPU raises #GP(0).
    [[nodiscard]] std::optional<uint64_t> read_msr(uint32_t index);
    [[nodiscard]] bool write_msr(uint32_t index, uint64_t value);

    // IA32_APIC_BASE. set_apic_base() is a guest WRMSR: false (#GP) for reserved bits, the
    // invalid state EN=0 EXTD=1, EXTD without x2APIC support, and the illegal transitions
    // x2APIC → xAPIC and disabled → x2APIC (§11.12.5). Entering the disabled state returns the
    // registers to their power-up values (§11.4.3); entering x2APIC mode sets the x2APIC ID and
    // LDR. The engine maps the page at mmio_base() while decodes_mmio().
    [[nodiscard]] bool set_apic_base(uint64_t value);
    [[nodiscard]] uint64_t apic_base() const;
    [[nodiscard]] uint64_t mmio_base() const;
    [[nodiscard]] bool x2apic_mode() const;

    // CR8 is TPR[7:4] (SDM vol. 3A §11.8.6.1); it works whatever the APIC's mode.
    [[nodiscard]] uint64_t cr8() const;
    void set_cr8(uint64_t value);

    // The TSC's offset from guest time, so TSC-deadline mode follows guest writes of IA32_TSC.
    void set_tsc_offset(uint64_t offset);

    // An interrupt message for this APIC (the router has matched its destination). Any thread.
    void accept(const ApicMessage& message);
    // The LINT0 and LINT1 input pins. Any thread.
    void set_lint0(bool asserted);
    void set_lint1(bool asserted);

    // For the vCPU. has_event() is one relaxed atomic load, cheap enough for every block boundary;
    // pending_events() says which (kEvent* bits).
    [[nodiscard]] bool has_event() const { return events_.load(std::memory_order_relaxed) != 0; }
    // The word has_event() reads, for a run loop that looks at it between blocks itself.
    [[nodiscard]] const std::atomic<uint32_t>& event_word() const { return events_; }
    [[nodiscard]] uint32_t pending_events() const;
    // The interrupt the vCPU would take now (an ExtINT first, then the highest IRR vector whose
    // priority class is above the PPR's); nullopt when none.
    [[nodiscard]] std::optional<PendingInterrupt> pending_interrupt();
    // The interrupt-acknowledge cycle: the vector to deliver. An ExtINT's comes from the 8259
    // pair; an IRR vector moves to the ISR; when nothing is pending any more, the SVR's spurious
    // vector (§11.9), which sets no ISR bit.
    [[nodiscard]] uint8_t acknowledge();
    [[nodiscard]] bool take_nmi();
    // An INIT is consumed together with the APIC's INIT reset (§11.4.7.3); the engine then resets
    // its core (wait-for-SIPI on an AP).
    [[nodiscard]] bool take_init();
    [[nodiscard]] std::optional<uint8_t> take_sipi();

    // Power-up or RESET (§11.4.7.1): xAPIC mode at kDefaultBase, the initial APIC ID, every
    // register at its reset value, no pending event.
    void reset();

    // The routing view: what the router matches destinations and priorities against. Any thread.
    struct Addressing {
        bool enabled = false;       // IA32_APIC_BASE.EN: a disabled APIC takes no messages
        bool accepts_interrupts = false;  // and SVR enabled: fixed and lowest-priority ones too
        bool x2apic = false;
        uint32_t id = 0;            // 8 bits in xAPIC mode, 32 in x2APIC mode
        uint32_t ldr = 0;           // the LDR register as read
        bool cluster_model = false;  // DFR model 0000b (xAPIC)
        uint8_t arbitration_priority = 0;  // APR, for lowest-priority delivery
    };
    [[nodiscard]] Addressing addressing() const;

    [[nodiscard]] LocalApicState export_state();
    // Restores a state: apic_base must be a valid state for this APIC's configuration; register
    // values are masked to what each register holds.
    [[nodiscard]] Result<void> import_state(const LocalApicState& state);

private:
    // The register map by xAPIC MMIO offset; the x2APIC MSR is 0x800 + offset / 16 (§11.12.1.2).
    // Access rules and masks are in the table of local_apic.cpp, reset values in reset_registers().
    enum class Reg : uint16_t {
        Id = 0x020,
        Version = 0x030,
        Tpr = 0x080,           // task priority
        Apr = 0x090,           // arbitration priority (xAPIC only)
        Ppr = 0x0a0,           // processor priority
        Eoi = 0x0b0,
        Rrd = 0x0c0,           // remote read (xAPIC only)
        Ldr = 0x0d0,           // logical destination
        Dfr = 0x0e0,           // destination format (xAPIC only)
        Svr = 0x0f0,           // spurious interrupt vector, software enable
        Isr = 0x100,           // in service, 8 registers of 32 vectors
        Tmr = 0x180,           // trigger mode, 8 registers
        Irr = 0x200,           // interrupt request, 8 registers
        Esr = 0x280,           // error status
        IcrLow = 0x300,        // interrupt command (x2APIC: all 64 bits)
        IcrHigh = 0x310,       // its destination (xAPIC only)
        LvtTimer = 0x320,      // the six LVT entries, in LvtIndex order
        LvtThermal = 0x330,
        LvtPerformance = 0x340,
        LvtLint0 = 0x350,
        LvtLint1 = 0x360,
        LvtError = 0x370,
        InitialCount = 0x380,
        CurrentCount = 0x390,
        DivideConfig = 0x3e0,
        SelfIpi = 0x3f0,       // x2APIC only
    };
    // The LVT entries by (offset - 0x320) / 16.
    enum LvtIndex : unsigned { kLvtTimer, kLvtThermal, kLvtPerf, kLvtLint0, kLvtLint1, kLvtError, kLvtCount };
    enum class TimerMode : uint8_t { OneShot = 0, Periodic = 1, TscDeadline = 2 };
    // What an operation does once the lock is released.
    struct Effects {
        bool kick = false;               // LocalApicHost::kick
        std::optional<ApicMessage> ipi;  // ApicBus::send
        std::optional<uint8_t> eoi;      // a level-triggered vector's EOI, for the IOAPIC
        EoiListener* ioapic = nullptr;
    };

    // Every public operation that changes state: `work(now, effects)` under the lock between
    // begin() (reads the clock, advances the timer) and finish() (arms the host timer, recomputes
    // the event bits), then run() carries out the effects without the lock.
    template <class Work>
    auto locked(Work&& work) {
        Effects effects;
        std::unique_lock lock(mutex_);
        int64_t now = begin(effects);
        if constexpr (std::is_void_v<std::invoke_result_t<Work, int64_t, Effects&>>) {
            work(now, effects);
            finish(now, effects);
            lock.unlock();
            run(effects);
        } else {
            auto result = work(now, effects);
            finish(now, effects);
            lock.unlock();
            run(effects);
            return result;
        }
    }
    int64_t begin(Effects& effects);
    void finish(int64_t now, Effects& effects);
    void run(const Effects& effects);

    // Registers by MMIO offset (x2APIC: MSR 0x800 + offset / 16), for a readable offset.
    [[nodiscard]] uint32_t read_register(uint32_t offset, bool x2apic, int64_t now);
    // false: #GP in x2APIC mode (absent or read-only register, reserved bits); in xAPIC mode
    // writes are never refused, an absent register sets an ESR bit.
    [[nodiscard]] bool write_register(uint32_t offset, uint64_t value, bool x2apic, int64_t now, Effects& effects);
    void write_lvt(unsigned index, uint32_t value, int64_t now, Effects& effects);
    [[nodiscard]] uint32_t lvt_writable(unsigned index) const;
    void write_icr(uint64_t value, bool x2apic, Effects& effects);
    void send_ipi(const ApicMessage& message, Effects& effects);
    void end_of_interrupt(Effects& effects);

    void accept_locked(const ApicMessage& message, Effects& effects);
    void set_irr(uint8_t vector, bool level);
    void record_error(uint8_t error, Effects& effects);
    void deliver_lvt(unsigned index, Effects& effects);
    void evaluate_lint(unsigned index, bool rising, Effects& effects);

    [[nodiscard]] bool hardware_enabled() const;  // IA32_APIC_BASE.EN
    [[nodiscard]] bool software_enabled() const;  // SVR bit 8
    [[nodiscard]] bool x2apic_mode_locked() const;
    [[nodiscard]] bool valid_apic_base(uint64_t value) const;
    [[nodiscard]] uint8_t processor_priority() const;
    [[nodiscard]] uint8_t arbitration_priority() const;
    [[nodiscard]] std::optional<uint8_t> deliverable_vector() const;
    [[nodiscard]] bool ext_int_pending() const;
    [[nodiscard]] uint32_t logical_destination() const;
    void reset_registers();

    // The timer (local_apic_timer.cpp).
    [[nodiscard]] TimerMode timer_mode_of(uint32_t lvt) const;
    [[nodiscard]] TimerMode timer_mode() const;
    [[nodiscard]] uint64_t timer_divisor() const;
    [[nodiscard]] uint64_t counts_since_origin(int64_t now) const;
    [[nodiscard]] int64_t time_of_count(uint64_t count) const;
    [[nodiscard]] uint64_t tsc_at(int64_t now) const;
    [[nodiscard]] uint32_t current_count(int64_t now) const;
    void start_count(uint32_t count, int64_t at);
    void rebase_count(int64_t now);
    void advance_timer(int64_t now, Effects& effects);
    void arm_host_timer(int64_t now);
    void write_tsc_deadline(uint64_t value, int64_t now, Effects& effects);
    void on_timer();

    const LocalApicConfig config_;
    TimerService& timers_;
    ApicBus& bus_;
    LocalApicHost& host_;

    mutable std::mutex mutex_;
    ExtIntSource* pic_ = nullptr;
    EoiListener* ioapic_ = nullptr;

    uint64_t apic_base_ = 0;
    uint32_t id_ = 0;  // the APIC ID as a number (8 bits in xAPIC mode)
    uint8_t tpr_ = 0;
    uint32_t ldr_ = 0;  // xAPIC; x2APIC mode derives it from the ID
    uint32_t dfr_ = 0xffff'ffff;
    uint32_t svr_ = 0xff;
    std::array<uint32_t, 8> isr_{}, tmr_{}, irr_{};
    uint8_t esr_ = 0;             // as read
    uint8_t pending_errors_ = 0;  // since the last ESR write
    uint32_t icr_low_ = 0, icr_high_ = 0;
    std::array<uint32_t, kLvtCount> lvt_{};  // remote IRR included
    uint32_t initial_count_ = 0;
    uint32_t divide_ = 0;

    // The count in progress: at guest time timer_origin_ns_ it read timer_origin_count_; it counts
    // down at timer_hz / divisor and in periodic mode reloads from initial_count_.
    bool timer_counting_ = false;
    int64_t timer_origin_ns_ = 0;
    uint32_t timer_origin_count_ = 0;
    uint64_t timer_expirations_ = 0;  // periodic expirations since the origin, already delivered
    int64_t timer_last_fire_ns_ = 0;
    uint64_t tsc_deadline_ = 0;
    uint64_t tsc_offset_ = 0;
    std::optional<int64_t> host_timer_at_;  // the deadline the host timer is armed at

    bool lint_level_[2] = {false, false};
    bool nmi_pending_ = false;
    bool init_pending_ = false;
    std::optional<uint8_t> sipi_vector_;
    bool ext_int_message_ = false;

    // kEvent* bits as last computed under the lock, plus kTimerDue from the timer callback.
    static constexpr uint32_t kTimerDue = 1u << 4;
    std::atomic<uint32_t> events_{0};

    std::unique_ptr<TimerService::Timer> timer_;  // last: destroyed (and its callback finished) first
};

}  // namespace strata
