// The kvm engine: hardware-assisted vCPUs through /dev/kvm (Documentation/virt/kvm/api.rst).
//
// State: the VM fd, one KvmVcpu per guest CPU, the in-kernel irqchip (8259 pair, IOAPIC, a LAPIC
// per vCPU) and PIT, and the guest RAM regions registered as KVM memory slots.
// Features: PC GSI routing (IRQ0 → IOAPIC pin 2, as QEMU and kvmtool do), 8259s programmed as
// firmware leaves them, CPUID policy, INIT-SIPI-SIPI handled by the in-kernel LAPIC (APs start
// uninitialized), one thread per vCPU.
// MSI: KVM_SIGNAL_MSI, and MSI-X vectors as GSI routes with irqfds (kvm_msi.hpp).
// Queue notifications: KVM_IOEVENTFD (IoEventRegistry).
// Missing: dirty-page logging (snapshots), KVM_CAP_SPLIT_IRQCHIP.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cpu/engine.hpp"
#include "cpu/kvm/kvm_fd.hpp"
#include "cpu/kvm/kvm_msi.hpp"

namespace strata::kvm {

class KvmVcpu;

// What the host's KVM is: decides whether `--accel auto` may pick kvm.
struct HostKvmInfo {
    bool available = false;         // /dev/kvm opens read-write with the expected API version
    bool hardware_assisted = false; // VT-x or AMD-V: guest kernel mode runs natively
    bool pvm = false;               // the PVM module: guest kernel mode is emulated
    std::string reason;             // why kvm is not available / not hardware assisted
};
HostKvmInfo probe_host_kvm();
// True when /dev/kvm is PVM (/sys/module/kvm_pvm exists).
bool host_kvm_is_pvm();

class KvmEngine final : public CpuEngine {
public:
    static Result<std::unique_ptr<KvmEngine>> create(const GuestMemory& memory, unsigned cpus);
    ~KvmEngine() override;

    [[nodiscard]] std::string_view name() const override { return "kvm"; }
    [[nodiscard]] unsigned vcpu_count() const override { return static_cast<unsigned>(vcpus_.size()); }
    [[nodiscard]] IrqLine* irq_line(unsigned gsi) override;
    [[nodiscard]] MsiController& msi() override;
    [[nodiscard]] IoEventRegistry* io_events() override { return &io_events_; }
    [[nodiscard]] Result<void> set_boot_state(const CpuState& state) override;
    [[nodiscard]] Result<CpuState> vcpu_state(unsigned index) const override;
    [[nodiscard]] Result<void> set_vcpu_state(unsigned index, const CpuState& state) override;
    [[nodiscard]] Result<std::optional<IrqchipState>> irqchip_state(int64_t machine_now_ns) const override;
    [[nodiscard]] Result<void> set_irqchip_state(const IrqchipState& state, int64_t machine_now_ns) override;
    [[nodiscard]] std::vector<VcpuMetrics> metrics() const override;
    [[nodiscard]] Result<void> start(const Platform& platform) override;
    void stop() override;
    void join() override;
    void rearm() override;
    [[nodiscard]] Result<void> freeze_time() override;
    [[nodiscard]] Result<void> thaw_time() override;
    [[nodiscard]] Result<void> prepare_resume(const CpuState& boot) override;

private:
    KvmEngine() = default;
    [[nodiscard]] Result<void> create_vm(const GuestMemory& memory);
    [[nodiscard]] Result<void> set_gsi_routing();
    [[nodiscard]] Result<void> program_pics_as_firmware();

    class Line;
    // KVM_IOEVENTFD on the VM.
    class IoEvents final : public IoEventRegistry {
    public:
        explicit IoEvents(const Fd& vm) : vm_(vm) {}
        [[nodiscard]] Result<void> add(const IoEvent& event) override;
        void remove(const IoEvent& event) override;

    private:
        const Fd& vm_;
    };

    Fd kvm_;
    Fd vm_;
    std::unique_ptr<KvmMsi> msi_;  // the GSI routing table: pin routes and devices' MSI routes
    IoEvents io_events_{vm_};
    std::vector<std::unique_ptr<KvmVcpu>> vcpus_;
    // What freeze_time() took for thaw_time() to set back: each vCPU's TSC, the in-kernel PIT.
    struct FrozenTime {
        std::vector<uint64_t> tsc;
        kvm_pit_state2 pit{};
    };
    std::optional<FrozenTime> frozen_;
    std::vector<std::unique_ptr<Line>> lines_;
};

}  // namespace strata::kvm
