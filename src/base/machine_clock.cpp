#include "base/machine_clock.hpp"

#include <algorithm>
#include <chrono>
#include <set>
#include <tuple>

#include "base/error.hpp"

namespace strata {
namespace {

// The longest the service thread sleeps at a time: a far deadline (an RTC alarm tomorrow) is
// looked at again every hour, and the steady clock's time_point never overflows.
constexpr int64_t kLongestSleepNs = int64_t{3600} * 1'000'000'000;

int64_t steady_now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

// ---- MachineClock ----

MachineClock::MachineClock() : MachineClock(steady_now_ns) {}

MachineClock::MachineClock(TimeSource source) : source_(std::move(source)) {
    if (!source_) source_ = steady_now_ns;
    origin_ = source_();
}

MachineClock::~MachineClock() {
    std::lock_guard lock(services_mutex_);
    if (!services_.empty()) panic("a TimerService outlived the MachineClock it reads");
}

int64_t MachineClock::now_ns() const {
    std::lock_guard lock(mutex_);
    int64_t source_now = paused_ ? paused_at_ : source_();
    return source_now - origin_ - paused_total_;
}

void MachineClock::pause() {
    {
        std::lock_guard lock(mutex_);
        if (paused_) return;
        paused_at_ = source_();
        paused_ = true;
    }
    notify_services();
}

void MachineClock::set_paused_time(int64_t ns) {
    {
        std::lock_guard lock(mutex_);
        if (!paused_) panic("MachineClock::set_paused_time on a running clock");
        paused_total_ = paused_at_ - origin_ - ns;
    }
    notify_services();
}

void MachineClock::resume() {
    {
        std::lock_guard lock(mutex_);
        if (!paused_) return;
        paused_total_ += source_() - paused_at_;
        paused_ = false;
    }
    notify_services();
}

bool MachineClock::paused() const {
    std::lock_guard lock(mutex_);
    return paused_;
}

void MachineClock::attach(TimerService* service) {
    std::lock_guard lock(services_mutex_);
    services_.push_back(service);
}

void MachineClock::detach(TimerService* service) {
    std::lock_guard lock(services_mutex_);
    std::erase(services_, service);
}

// Lock order: services_mutex_, then a service's core mutex, then (on the service thread) the
// time mutex_. Nothing takes services_mutex_ while holding a core mutex.
void MachineClock::notify_services() {
    std::lock_guard lock(services_mutex_);
    for (TimerService* service : services_) service->clock_changed();
}

// ---- TimerService ----

struct TimerService::Core {
    std::mutex mutex;
    std::condition_variable wakeup;    // the service thread sleeps here
    std::condition_variable progress;  // a callback or a pass of the service thread finished
    // Armed timers by (deadline, arm order).
    std::set<std::tuple<int64_t, uint64_t, Timer*>> queue;
    uint64_t next_sequence = 0;
    uint64_t wakeups = 0;  // bumped whenever the thread must look at the queue or the clock again
    bool stopping = false;
    Timer* running = nullptr;  // whose callback runs now
    std::thread::id thread_id;
    uint64_t passes_requested = 0;  // run_due_timers() tickets
    uint64_t passes_done = 0;

    void wake() {
        ++wakeups;
        wakeup.notify_one();
    }
    [[nodiscard]] bool on_service_thread() const { return std::this_thread::get_id() == thread_id; }
};

TimerService::TimerService(MachineClock& clock) : clock_(clock), core_(std::make_shared<Core>()) {
    clock_.attach(this);
    std::lock_guard lock(core_->mutex);  // thread_id is set before the thread reads it
    thread_ = std::thread([this] { run(); });
    core_->thread_id = thread_.get_id();
}

TimerService::~TimerService() {
    if (core_->on_service_thread()) panic("a TimerService destroyed from one of its own timer callbacks");
    clock_.detach(this);
    {
        std::lock_guard lock(core_->mutex);
        core_->stopping = true;
        for (auto& [deadline, sequence, timer] : core_->queue) timer->armed_ = false;
        core_->queue.clear();
        core_->wake();
        core_->progress.notify_all();
    }
    thread_.join();
}

MachineClock& TimerService::clock() const { return clock_; }

std::unique_ptr<TimerService::Timer> TimerService::create_timer(std::function<void()> callback) {
    return std::unique_ptr<Timer>(new Timer(core_, std::move(callback)));
}

void TimerService::run_due_timers() {
    Core& core = *core_;
    if (core.on_service_thread()) panic("run_due_timers() called from a timer callback");
    std::unique_lock lock(core.mutex);
    uint64_t ticket = ++core.passes_requested;
    core.wake();
    core.progress.wait(lock, [&] { return core.passes_done >= ticket || core.stopping; });
}

void TimerService::clock_changed() {
    std::lock_guard lock(core_->mutex);
    core_->wake();
}

void TimerService::run() {
    Core& core = *core_;
    std::unique_lock lock(core.mutex);
    while (!core.stopping) {
        // One pass: every timer due by now, earliest first, each callback without the lock held
        // so that it may arm and cancel timers (its own too).
        // Wakes from now on (also those while a callback runs unlocked) start another pass.
        uint64_t seen = core.wakeups;
        uint64_t serving = core.passes_requested;
        while (!core.stopping && !core.queue.empty() && !clock_.paused()) {
            auto first = core.queue.begin();
            auto [deadline, sequence, timer] = *first;
            if (deadline > clock_.now_ns()) break;
            core.queue.erase(first);
            timer->armed_ = false;
            core.running = timer;
            lock.unlock();
            timer->callback_();
            lock.lock();
            core.running = nullptr;
            core.progress.notify_all();
        }
        core.passes_done = serving;
        core.progress.notify_all();
        if (core.stopping) break;

        auto woken = [&] { return core.wakeups != seen; };
        if (core.queue.empty() || clock_.paused()) {
            core.wakeup.wait(lock, woken);  // nothing can fire until a timer is armed or time runs
            continue;
        }
        int64_t remaining = std::get<0>(*core.queue.begin()) - clock_.now_ns();
        if (remaining <= 0) continue;
        remaining = std::min(remaining, kLongestSleepNs);
        core.wakeup.wait_until(lock, std::chrono::steady_clock::now() + std::chrono::nanoseconds(remaining), woken);
    }
}

// ---- TimerService::Timer ----

TimerService::Timer::Timer(std::shared_ptr<Core> core, std::function<void()> callback)
    : core_(std::move(core)), callback_(std::move(callback)) {
    if (!callback_) panic("a timer without a callback");
}

TimerService::Timer::~Timer() {
    std::unique_lock lock(core_->mutex);
    dying_ = true;
    if (armed_) core_->queue.erase({deadline_, sequence_, this});
    armed_ = false;
    if (core_->running == this) {
        if (core_->on_service_thread()) panic("a timer destroyed from its own callback");
        core_->progress.wait(lock, [&] { return core_->running != this; });
    }
}

void TimerService::Timer::arm_at(int64_t deadline_ns) {
    std::lock_guard lock(core_->mutex);
    if (core_->stopping || dying_) return;
    if (armed_) core_->queue.erase({deadline_, sequence_, this});
    deadline_ = deadline_ns;
    sequence_ = core_->next_sequence++;
    auto [position, inserted] = core_->queue.insert({deadline_, sequence_, this});
    armed_ = true;
    // Only a new earliest deadline shortens the thread's sleep.
    if (position == core_->queue.begin()) core_->wake();
}

void TimerService::Timer::cancel() {
    std::lock_guard lock(core_->mutex);
    if (armed_) core_->queue.erase({deadline_, sequence_, this});
    armed_ = false;
}

bool TimerService::Timer::armed() const {
    std::lock_guard lock(core_->mutex);
    return armed_;
}

}  // namespace strata
