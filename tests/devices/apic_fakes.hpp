// Recording fakes of what a local APIC talks to: its vCPU, the 8259 pair's INTA cycle and the
// IOAPIC's EOI input (the APIC bus is fakes.hpp's FakeApicBus); and a clock the tests move by hand.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "base/machine_clock.hpp"
#include "devices/irqchip/apic_bus.hpp"
#include "devices/irqchip/local_apic.hpp"

namespace strata::testing {

class FakeApicHost : public LocalApicHost {
public:
    void kick() override { ++kicks; }
    std::atomic<int> kicks{0};
};

class FakeExtIntSource : public ExtIntSource {
public:
    uint8_t acknowledge() override {
        ++acknowledges;
        return vector;
    }
    uint8_t vector = 0x21;
    std::atomic<int> acknowledges{0};
};

class FakeEoiListener : public EoiListener {
public:
    void end_of_interrupt(uint8_t vector) override {
        std::lock_guard lock(mutex_);
        eois_.push_back(vector);
    }
    [[nodiscard]] std::vector<uint8_t> eois() const {
        std::lock_guard lock(mutex_);
        return eois_;
    }

private:
    mutable std::mutex mutex_;
    std::vector<uint8_t> eois_;
};

// Guest time that moves only when the test says so; advance() lets the timer service run
// whatever became due, so no test depends on the host's speed.
struct ManualClock {
    std::atomic<int64_t> source_ns{1'000'000};
    MachineClock clock{[this] { return source_ns.load(); }};
    TimerService timers{clock};

    void advance(int64_t ns) {
        source_ns += ns;
        timers.run_due_timers();
    }
};

}  // namespace strata::testing
