#include "cpu/vcpu_thread.hpp"

namespace strata {

Result<void> VcpuThread::start(const Platform& platform) {
    std::lock_guard lock(mutex_);
    if (thread_.joinable()) return fail("vCPU {} started while its thread still runs", index_);
    // A stop that came first wins: the vCPU stays stopped, and join() has nothing to wait for.
    if (stop_requested_) return {};
    thread_ = std::thread([this, &platform] { main(platform); });
    return {};
}

void VcpuThread::stop() {
    std::lock_guard lock(mutex_);
    stop_requested_ = true;
    runner_.on_stop(thread_.joinable() ? &thread_ : nullptr);
}

void VcpuThread::join() {
    std::thread thread;
    {
        std::lock_guard lock(mutex_);
        // A vCPU that ends the VM from its own thread cannot wait for itself; the machine joins it.
        if (!thread_.joinable() || thread_.get_id() == std::this_thread::get_id()) return;
        thread = std::move(thread_);
    }
    thread.join();
}

void VcpuThread::rearm() {
    std::lock_guard lock(mutex_);
    stop_requested_ = false;
    runner_.on_rearm();
}

void VcpuThread::main(const Platform& platform) {
    runner_.enter_thread();
    while (!stop_requested_)
        if (!runner_.run_once(platform)) return;
}

}  // namespace strata
