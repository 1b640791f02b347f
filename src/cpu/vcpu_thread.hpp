// One vCPU's host thread, as both engines run it.
//
// State machine (Firecracker's habit): Created → Running → Finished, and back to Created by
// rearm() (S3 resume). The thread calls the engine's run_once() until a stop is requested or
// run_once() says the vCPU is done (its own exit ended the VM). A stop may be requested from any
// thread at any moment (before, during or after start()) and is never lost: start() after a stop
// starts nothing until rearm(). The engine says how to get a running run_once() to return
// (on_stop: a signal and kvm_run.immediate_exit for KVM, a flag for the soft engine).
#pragma once

#include <atomic>
#include <mutex>
#include <thread>

#include "cpu/engine.hpp"

namespace strata {

class VcpuRunner {
public:
    virtual ~VcpuRunner() = default;
    // On the new thread, before the first run_once() (e.g. its signal mask).
    virtual void enter_thread() {}
    // Runs guest code to its next exit and handles it; false when this vCPU must finish.
    virtual bool run_once(const Platform& platform) = 0;
    // A stop was requested (any thread, the VcpuThread's lock held): make a running run_once()
    // return soon. `running` is the vCPU's thread when there is one.
    virtual void on_stop(std::thread* running) = 0;
    // The stop request is forgotten (rearm()).
    virtual void on_rearm() {}
};

class VcpuThread {
public:
    VcpuThread(VcpuRunner& runner, unsigned index) : runner_(runner), index_(index) {}
    // The owner stops and joins the thread first (it still needs the runner's resources).
    ~VcpuThread() { join(); }
    VcpuThread(const VcpuThread&) = delete;
    VcpuThread& operator=(const VcpuThread&) = delete;

    // Starts the thread; `platform` must outlive it.
    [[nodiscard]] Result<void> start(const Platform& platform);
    void stop();
    // Waits for the thread, if there is one (any thread but the vCPU's own).
    void join();
    // After join(): forgets the stop request, so that start() runs the vCPU again.
    void rearm();

private:
    void main(const Platform& platform);

    VcpuRunner& runner_;
    unsigned index_;
    std::mutex mutex_;  // thread_ and the transitions of stop_requested_
    std::thread thread_;
    std::atomic<bool> stop_requested_{false};
};

}  // namespace strata
