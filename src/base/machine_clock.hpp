// The machine's one clock and timer service: every device timer of the VM (RTC, PIT, the local
// APICs' timers) reads time from MachineClock and sleeps through TimerService, instead of
// keeping a thread and a clock of its own, so that pausing the VM stops all of them at once and
// guest time does not jump on resume.
//
// State:    MachineClock: a host monotonic time source minus the time spent paused.
//           TimerService: one host thread and the armed timers, ordered by deadline (ties in the
//           order they were armed).
// Features: guest nanoseconds (now_ns); pause()/resume(); timers armed at an absolute guest time,
//           re-armed or cancelled from any thread (also from their own callback); callbacks run on
//           the service thread, one at a time, and none starts after cancel() or destruction
//           returned. The thread sleeps (condition variable, steady clock) until the earliest
//           deadline, and without a deadline while paused or idle. A time source of the tests' own
//           and run_due_timers() drive time deterministically.
// Choice:   cancel() does not wait for a callback that is already running, so that a device may
//           cancel while holding the lock its callback takes; devices decide in the callback,
//           under that lock, whether to re-arm. ~Timer does wait (the callback's state goes away).
// Missing:  a clock source that is not CLOCK_MONOTONIC (e.g. a virtual clock for replay); pause()
//           does not wait for a callback that is already running.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace strata {

class TimerService;

class MachineClock {
public:
    // Host monotonic time in ns (any origin); tests pass a source they move by hand.
    using TimeSource = std::function<int64_t()>;

    MachineClock();  // CLOCK_MONOTONIC (std::chrono::steady_clock)
    explicit MachineClock(TimeSource source);
    ~MachineClock();
    MachineClock(const MachineClock&) = delete;
    MachineClock& operator=(const MachineClock&) = delete;

    // Guest time in ns since the clock was created, not counting paused time. Thread-safe.
    [[nodiscard]] int64_t now_ns() const;
    // While paused, now_ns() stands still and no timer fires; resume() continues from the paused
    // value. Pausing a paused clock (or resuming a running one) changes nothing.
    void pause();
    void resume();
    [[nodiscard]] bool paused() const;
    // While paused: makes now_ns() read `ns` (a restored snapshot's time), which resume() then
    // continues from. Timers armed for earlier times fire at resume.
    void set_paused_time(int64_t ns);

private:
    friend class TimerService;
    void attach(TimerService* service);
    void detach(TimerService* service);
    void notify_services();

    TimeSource source_;
    mutable std::mutex mutex_;  // guards the time fields below
    int64_t origin_ = 0;        // source time at creation
    int64_t paused_total_ = 0;  // source ns spent paused
    bool paused_ = false;
    int64_t paused_at_ = 0;     // source time when the current pause began

    std::mutex services_mutex_;  // taken without mutex_ held; guards services_
    std::vector<TimerService*> services_;
};

class TimerService {
public:
    class Timer;
    explicit TimerService(MachineClock& clock);
    ~TimerService();  // cancels every timer and ends the thread; not from a timer callback
    TimerService(const TimerService&) = delete;
    TimerService& operator=(const TimerService&) = delete;

    [[nodiscard]] MachineClock& clock() const;

    // A timer that calls `callback` on the service thread when guest time reaches its deadline.
    // A timer may outlive the service: it then never fires again.
    [[nodiscard]] std::unique_ptr<Timer> create_timer(std::function<void()> callback);

    // For tests whose time source jumps: has the service thread look at the clock again and
    // returns once every callback due by then has run (also those re-armed into the past by a
    // callback). Not from a timer callback.
    void run_due_timers();

private:
    friend class MachineClock;
    struct Core;  // shared with the timers, so that a timer may outlive the service
    void clock_changed();
    void run();

    MachineClock& clock_;
    std::shared_ptr<Core> core_;
    std::thread thread_;  // last: started once everything above exists
};

class TimerService::Timer {
public:
    ~Timer();  // cancel(), and waits for a running callback to finish; not from its own callback
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;

    // Fires once at guest time `deadline_ns` (at once if it has passed); replaces an earlier deadline.
    void arm_at(int64_t deadline_ns);
    // No callback starts after cancel() returns unless the timer is armed again (also by a
    // callback that is running now: cancel does not wait for it).
    void cancel();
    [[nodiscard]] bool armed() const;

private:
    friend class TimerService;
    Timer(std::shared_ptr<Core> core, std::function<void()> callback);

    std::shared_ptr<Core> core_;
    std::function<void()> callback_;
    // Guarded by the core's mutex: the key of this timer in the deadline queue while armed.
    bool armed_ = false;
    bool dying_ = false;  // ~Timer began: arm_at from a running callback is ignored
    int64_t deadline_ = 0;
    uint64_t sequence_ = 0;
};

}  // namespace strata
