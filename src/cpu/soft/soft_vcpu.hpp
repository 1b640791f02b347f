// One vCPU of the soft engine: its Cpu, its executor and block cache, its local APIC, and its
// host thread's run loop, which takes events at block boundaries (stop requests, INIT, SIPI, NMI,
// interrupts when RFLAGS.IF and the interrupt shadow allow) and sleeps on the host while the
// guest is halted or waits for a start-up IPI, so an idle guest burns no host CPU.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <chrono>
#include <mutex>

#include "cpu/soft/cpu.hpp"
#include "cpu/soft/halt_poll.hpp"
#include "cpu/soft/interpreter.hpp"
#include "cpu/vcpu_thread.hpp"
#include "devices/irqchip/local_apic.hpp"

namespace strata::soft {

class SoftVcpu final : public VcpuRunner, public LocalApicHost {
public:
    SoftVcpu(unsigned index, unsigned cpus, const GuestMemory& memory, CodePages& code_pages, TimerService& timers,
             ApicBus& apic_bus, const LocalApicConfig& apic_config);

    Cpu& cpu() { return cpu_; }
    const Cpu& cpu() const { return cpu_; }
    LocalApic& lapic() { return lapic_; }
    VcpuThread& thread() { return thread_; }
    [[nodiscard]] const Interpreter& interpreter() const { return interpreter_; }
    // Only while the vCPU's thread is not running.
    void clear_code_cache() { interpreter_.clear_cache(); }

    // Waits for INIT-SIPI-SIPI before running (an application processor).
    void set_waiting_for_sipi(bool waiting) { waiting_for_sipi_ = waiting; }
    [[nodiscard]] bool waiting_for_sipi() const { return waiting_for_sipi_; }

    // LocalApicHost: something for this vCPU happened (an interrupt became pending, a stop): end
    // the current block soon and wake the thread if it sleeps. Any thread.
    void kick() override;

    // What this vCPU has done, as of its last slice or halt; any thread.
    [[nodiscard]] VcpuMetrics metrics() const;

    bool run_once(const Platform& platform) override;
    void on_stop(std::thread* running) override;
    void on_rearm() override;

private:
    void take_events();
    void enter_init_state();
    void sleep_until_event();
    // Copies the interpreter's counts where metrics() reads them.
    void publish_counts();
    void count_halt(std::chrono::steady_clock::duration halted);
    void report_triple_fault(const Platform& platform);

    Cpu cpu_;
    CpuidTable cpuid_;  // what CPUID answers on this vCPU (its APIC ID, the VM's vCPU count)
    Interpreter interpreter_;
    LocalApic lapic_;
    VcpuThread thread_;
    std::atomic<bool> stop_{false};
    std::atomic<bool> kicked_{false};
    bool waiting_for_sipi_ = false;
    std::mutex sleep_mutex_;
    std::condition_variable wake_;
    HaltPollWindow halt_poll_;  // this thread's alone
    struct PublishedCounts {
        RelaxedCounter instructions, blocks_run, blocks_decoded, jump_misses, tlb_flushes, halts, halted_ns;
    } published_;
};

}  // namespace strata::soft
