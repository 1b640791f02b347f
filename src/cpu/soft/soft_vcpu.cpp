#include "cpu/soft/soft_vcpu.hpp"

#include "cpu/soft/interrupts.hpp"

namespace strata::soft {

namespace {
// Blocks run between looks at the stop flag when nothing kicks the vCPU: bounds the latency of a
// stop to a few microseconds of guest code.
constexpr unsigned kBlocksPerSlice = 1024;
}  // namespace

SoftVcpu::SoftVcpu(unsigned index, const GuestMemory& memory, CodePages& code_pages)
    : interpreter_(cpu_), thread_(*this, index) {
    cpu_.index = index;
    cpu_.memory = &memory;
    cpu_.code_pages = &code_pages;
    cpu_.vcpu = this;
    cpu_.refresh_mode();
}

void SoftVcpu::kick() {
    kicked_.store(true, std::memory_order_release);
    std::lock_guard lock(sleep_mutex_);
    wake_.notify_all();
}

void SoftVcpu::on_stop(std::thread*) {
    stop_.store(true, std::memory_order_release);
    kick();
}

void SoftVcpu::on_rearm() { stop_.store(false, std::memory_order_release); }

void SoftVcpu::sleep_until_event() {
    std::unique_lock lock(sleep_mutex_);
    wake_.wait(lock, [&] { return stop_.load() || kicked_.load(); });
}

bool SoftVcpu::run_once(const Platform& platform) {
    cpu_.platform = &platform;
    while (!stop_.load(std::memory_order_acquire)) {
        kicked_.store(false, std::memory_order_relaxed);
        if (cpu_.halted || waiting_for_sipi_) {
            sleep_until_event();
            continue;
        }
        try {
            for (unsigned i = 0; i < kBlocksPerSlice && !cpu_.halted; ++i) {
                interpreter_.step();
                if (kicked_.load(std::memory_order_relaxed)) break;
            }
        } catch (const TripleFault&) {
            report_triple_fault(platform);
            return false;
        }
    }
    return true;
}

void SoftVcpu::report_triple_fault(const Platform& platform) {
    std::string detail = fmt::format("vCPU {}: the guest triple-faulted\n", cpu_.index);
    detail += cpu_.state().describe();
    platform.control.request_stop({StopKind::TripleFault, 0, std::move(detail)});
}

}  // namespace strata::soft
