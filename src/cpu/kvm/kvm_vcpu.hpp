// One KVM vCPU and the host thread that runs it.
//
// Its thread is a VcpuThread (cpu/vcpu_thread.hpp, shared with the soft engine) that loops on
// KVM_RUN and dispatches exits to the machine's buses; it finishes when the machine asks it to
// stop (a signal kicks it out of KVM_RUN; kvm_run.immediate_exit closes the race) or when its own
// exit ends the VM (shutdown, internal error), which it reports through MachineControl.
#pragma once

#include <linux/kvm.h>

#include <optional>
#include <thread>
#include <vector>

#include "cpu/engine.hpp"
#include "cpu/cpuid.hpp"
#include "cpu/kvm/kvm_fd.hpp"
#include "cpu/vcpu_thread.hpp"

namespace strata::kvm {

class KvmVcpu final : private VcpuRunner {
public:
    // Creates vCPU `index` of `vm_fd`; `run_size` is KVM_GET_VCPU_MMAP_SIZE.
    static Result<std::unique_ptr<KvmVcpu>> create(int vm_fd, unsigned index, size_t run_size,
                                                   const CpuidTable& supported_cpuid,
                                                   unsigned cpus, HostQuirks quirks);
    ~KvmVcpu();
    KvmVcpu(const KvmVcpu&) = delete;
    KvmVcpu& operator=(const KvmVcpu&) = delete;

    // The registers, and the extended state when `state` has it.
    [[nodiscard]] Result<void> set_state(const CpuState& state);
    // Everything, the extended state included.
    [[nodiscard]] Result<CpuState> state() const;
    [[nodiscard]] Result<void> set_mp_state(uint32_t mp_state);

    // Starts the thread; `platform` must outlive it. After kick(), start() starts nothing until
    // rearm(): a stop request is never lost, whenever it arrives.
    [[nodiscard]] Result<void> start(const Platform& platform);
    // Asks the thread to finish (any thread, any time, more than once).
    void kick();
    // Waits for the thread, if there is one (any thread but the vCPU's own).
    void join();
    // After join(): forgets the stop request, so that start() runs the vCPU again (S3 resume).
    void rearm();

private:
    KvmVcpu(unsigned index, Fd fd, kvm_run* run, size_t run_size)
        : index_(index), fd_(std::move(fd)), run_(run), run_size_(run_size), thread_(*this, index) {}

    // VcpuRunner: one KVM_RUN and the exit it returns with.
    void enter_thread() override;
    bool run_once(const Platform& platform) override;
    void on_stop(std::thread* running) override;
    void on_rearm() override;

    [[nodiscard]] Result<void> configure(const CpuidTable& supported_cpuid, unsigned cpus,
                                         HostQuirks quirks);
    // The registers alone, for crash reports (fewer host calls that could fail).
    [[nodiscard]] Result<CpuState> registers() const;
    [[nodiscard]] Result<ExtendedCpuState> extended_state() const;
    // One MSR at a time, so that one the host lacks does not hide or refuse the others.
    [[nodiscard]] std::optional<uint64_t> msr(uint32_t index) const;
    [[nodiscard]] bool set_msr(const MsrValue& msr);
    [[nodiscard]] Result<void> set_extended_state(const ExtendedCpuState& state);
    // Handles one exit; returns false when this vCPU must finish.
    bool handle_exit(const Platform& platform);
    void handle_io(const Platform& platform);
    void handle_mmio(const Platform& platform);
    void report_guest_crash(const Platform& platform, StopKind kind, std::string what);

    unsigned index_;
    Fd fd_;
    kvm_run* run_;
    size_t run_size_;
    VcpuThread thread_;
};

}  // namespace strata::kvm
