// One KVM vCPU and the host thread that runs it.
//
// Its thread is a VcpuThread (cpu/vcpu_thread.hpp, shared with the soft engine) that loops on
// KVM_RUN and dispatches exits to the machine's buses; it finishes when the machine asks it to
// stop (a signal kicks it out of KVM_RUN; kvm_run.immediate_exit closes the race) or when its own
// exit ends the VM (shutdown, internal error), which it reports through MachineControl.
//
// Its state moves through KVM_GET/SET_SREGS, _REGS, _XSAVE (x87 and SSE, see xsave_area.hpp;
// KVM_GET/SET_FPU only where KVM lacks KVM_CAP_XSAVE), _XCRS, _DEBUGREGS, _MSRS, _LAPIC,
// _VCPU_EVENTS and _MP_STATE. A port-I/O or MMIO exit is complete only once KVM_RUN is entered
// again (api.rst, KVM_EXIT_IO and KVM_EXIT_MMIO: an OUT's RIP advance, an IN's or MMIO read's data
// into the register); a vCPU that stopped right after one gets that KVM_RUN, with immediate_exit
// set so that no further guest code runs, before its state is read or set.
#pragma once

#include <linux/kvm.h>

#include <array>
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
    // Everything, the extended state included. Not const: it completes a pending I/O exit.
    [[nodiscard]] Result<CpuState> state();
    [[nodiscard]] Result<void> set_mp_state(uint32_t mp_state);

    // Starts the thread; `platform` must outlive it, and the next state() or set_state() after
    // it stopped (completing a pending exit may still reach the buses). After kick(), start()
    // starts nothing until rearm(): a stop request is never lost, whenever it arrives.
    [[nodiscard]] Result<void> start(const Platform& platform);
    // Asks the thread to finish (any thread, any time, more than once).
    void kick();
    // Waits for the thread, if there is one (any thread but the vCPU's own).
    void join();
    // After join(): forgets the stop request, so that start() runs the vCPU again (S3 resume).
    void rearm();
    // The exits to Strata so far, by reason; any thread.
    [[nodiscard]] VcpuMetrics metrics() const;

    // IA32_TSC, read and written as the guest sees it (KVM adjusts the TSC offset). Only while
    // the thread does not run.
    [[nodiscard]] Result<uint64_t> tsc() const;
    [[nodiscard]] Result<void> set_tsc(uint64_t value);

private:
    // What this host's KVM offers for moving FPU state (KVM_CHECK_EXTENSION on the VM fd).
    struct FpuTransfer {
        size_t xsave_size = 0;  // the XSAVE area's size; 0 without KVM_CAP_XSAVE (KVM_GET/SET_FPU)
        bool xsave2 = false;    // KVM_GET_XSAVE2 reads it (KVM_CAP_XSAVE2), else KVM_GET_XSAVE
        bool xcrs = false;      // KVM_CAP_XCRS: XCR0 can be read and set
    };

    KvmVcpu(unsigned index, Fd fd, kvm_run* run, size_t run_size, FpuTransfer fpu_transfer)
        : index_(index), fd_(std::move(fd)), run_(run), run_size_(run_size), fpu_transfer_(fpu_transfer),
          thread_(*this, index) {}

    // VcpuRunner: one KVM_RUN and the exit it returns with.
    void enter_thread() override;
    bool run_once(const Platform& platform) override;
    void on_stop(std::thread* running) override;
    void on_rearm() override;

    [[nodiscard]] Result<void> configure(const CpuidTable& supported_cpuid, unsigned cpus,
                                         HostQuirks quirks);
    // The registers alone, for crash reports (fewer host calls that could fail).
    [[nodiscard]] Result<CpuState> registers();
    [[nodiscard]] Result<ExtendedCpuState> extended_state();
    // Re-enters KVM_RUN with immediate_exit set when the last exit was port I/O or MMIO that KVM
    // has not completed yet; nothing otherwise. Only while the thread does not run KVM_RUN.
    [[nodiscard]] Result<void> complete_pending_exit();
    [[nodiscard]] Result<FpuState> fpu() const;
    [[nodiscard]] Result<void> set_fpu(const FpuState& fpu);
    // KVM's XSAVE area of this vCPU (fpu_transfer_.xsave_size bytes).
    [[nodiscard]] Result<std::vector<uint8_t>> xsave_area() const;
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
    FpuTransfer fpu_transfer_;
    // Exits by KVM exit reason; the last slot counts the reasons past it.
    static constexpr size_t kCountedExitReasons = 64;
    std::array<RelaxedCounter, kCountedExitReasons> exit_counts_;
    // The buses of the last start(), for the pieces of a string I/O or split MMIO access that a
    // completing KVM_RUN may still exit for.
    const Platform* platform_ = nullptr;
    // The last KVM_RUN returned a port-I/O or MMIO exit, handled, that no KVM_RUN has completed
    // since. Written by whichever thread runs KVM_RUN; VcpuThread's join() orders it for readers.
    bool exit_pending_ = false;
    VcpuThread thread_;
};

}  // namespace strata::kvm
