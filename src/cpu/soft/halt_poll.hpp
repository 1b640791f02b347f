// How long a halted vCPU spins before it sleeps: an adaptive window, KVM's halt_poll_ns policy
// (virt/kvm/kvm_main.c, kvm_vcpu_halt) applied to the soft engine's threads.
//
// Why: a guest waiting for I/O halts, and its wake-up (a completion's MSI from a device thread)
// then has to wake a sleeping host thread: a futex wake, an IPI and a reschedule, which costs
// tens of microseconds on a virtualized host — more than the rest of a cached 4 KiB read. A vCPU
// that spins for a short while first takes such an interrupt at once. A guest that sleeps long
// (an idle one, a timer tick far away) must not pay a core for it, so the window follows what the
// last halts did:
//   - woken while polling, or after sleeping but within the window: it stays;
//   - woken after sleeping, sooner than the limit: it was too short, it doubles (from kGrowStart);
//   - woken only after the limit: polling cannot help, it halves (to 0 below kGrowStart).
// State: the window. Missing: per-guest tuning from the command line (STRATA_SOFT_HALT_POLL_US
// sets the limit; 0 turns polling off).
#pragma once
#include <algorithm>
#include <chrono>

namespace strata::soft {

class HaltPollWindow {
public:
    using Duration = std::chrono::nanoseconds;
    static constexpr Duration kGrowStart = std::chrono::microseconds(10);

    explicit HaltPollWindow(Duration limit) : limit_(limit) {}

    [[nodiscard]] Duration window() const { return window_; }
    [[nodiscard]] Duration limit() const { return limit_; }

    // One halt ended after `halted` in all (polling and sleeping), the event arriving after the
    // poll had given up when `slept`.
    void record(Duration halted, bool slept) {
        if (!slept || halted <= window_) return;
        if (halted > limit_) {
            window_ = window_ / 2 < kGrowStart ? Duration::zero() : window_ / 2;
        } else if (window_ < limit_) {
            window_ = std::min(limit_, window_ == Duration::zero() ? kGrowStart : window_ * 2);
        }
    }

private:
    Duration limit_;
    Duration window_{0};
};

}  // namespace strata::soft
