// The soft engine: one SoftVcpu (and host thread) per guest CPU over shared guest memory and
// code-page tracking. One host thread per vCPU, as QEMU's multi-threaded TCG: guests see real
// parallelism, and a halted vCPU sleeps on the host instead of being polled by a scheduler.
#include "cpu/soft/soft_engine.hpp"

#include <cstdlib>
#include <vector>

#include "cpu/soft/mmu/code_pages.hpp"
#include "cpu/soft/msrs.hpp"
#include "cpu/soft/soft_vcpu.hpp"
#include "devices/irqchip/apic_router.hpp"

namespace strata::soft {


// MSI and MSI-X messages go onto the APIC bus as the IOAPIC's do (SDM vol. 3A §11.11).
class ApicMsi final : public MsiController {
public:
    explicit ApicMsi(ApicBus& bus) : bus_(bus) {}
    void send(uint64_t address, uint32_t data) override { bus_.send(ApicMessage::from_msi(address, data)); }

private:
    ApicBus& bus_;
};

// A device's DMA write is a write to code like a vCPU's: it invalidates blocks decoded from the
// pages it touched.
class CodeWriteObserver final : public MemoryWriteObserver {
public:
    explicit CodeWriteObserver(CodePages& pages) : pages_(pages) {}
    void written(uint64_t gpa, uint64_t length) override {
        if (length == 0) return;
        uint64_t last = gpa + (length - 1);
        if (last < gpa) last = ~uint64_t{0};
        for (uint64_t page = gpa & ~uint64_t{0xfff};; page += 0x1000) {
            pages_.written(page);
            if (last - page < 0x1000) break;
        }
    }

private:
    CodePages& pages_;
};

class SoftEngine final : public CpuEngine {
public:
    SoftEngine(const GuestMemory& memory, unsigned cpus, TimerService& timers)
        : code_pages_(memory), msi_(router_), code_writes_(code_pages_) {
        for (unsigned i = 0; i < cpus; ++i) {
            LocalApicConfig apic{.apic_id = i, .bootstrap = i == 0};
            vcpus_.push_back(std::make_unique<SoftVcpu>(i, cpus, memory, code_pages_, timers, router_, apic));
            router_.add(vcpus_.back()->lapic());
            // Application processors wait for INIT-SIPI-SIPI (SDM vol. 3A §8.4.1).
            if (i > 0) vcpus_.back()->set_waiting_for_sipi(true);
        }
    }
    ~SoftEngine() override {
        stop();
        join();
        // STRATA_SOFT_STATS=1: what each vCPU executed, for benchmarks (bench/soft_vs_tcg.py).
        if (const char* stats = std::getenv("STRATA_SOFT_STATS"); stats && *stats == '1')
            for (auto& vcpu : vcpus_)
                fmt::print(stderr,
                           "strata: soft engine: vCPU {}: instructions={} blocks_run={} jump_cache_misses={} "
                           "blocks_decoded={} blocks_translated={} tlb_flushes={}\n",
                           vcpu->cpu().index, vcpu->interpreter().instructions(), vcpu->interpreter().blocks_run(),
                           vcpu->interpreter().jump_misses(), vcpu->interpreter().cache().blocks_built(),
                           vcpu->interpreter().blocks_translated(), vcpu->cpu().tlb_generation());
    }

    [[nodiscard]] std::string_view name() const override { return "soft"; }
    [[nodiscard]] unsigned vcpu_count() const override { return static_cast<unsigned>(vcpus_.size()); }
    [[nodiscard]] IrqLine* irq_line(unsigned) override { return nullptr; }
    [[nodiscard]] LocalApicSet* local_apics() override { return &router_; }
    [[nodiscard]] MsiController& msi() override { return msi_; }
    [[nodiscard]] MemoryWriteObserver* dma_observer() override { return &code_writes_; }

    [[nodiscard]] Result<void> set_boot_state(const CpuState& state) override {
        forget_code();
        vcpus_.front()->cpu().set_state(state);
        return {};
    }
    [[nodiscard]] Result<CpuState> vcpu_state(unsigned index) const override {
        if (index >= vcpus_.size()) return fail("vCPU {} does not exist ({} vCPUs)", index, vcpus_.size());
        SoftVcpu& vcpu = *vcpus_[index];
        CpuState s = vcpu.cpu().state();
        ExtendedCpuState& x = *s.extended;
        if (vcpu.waiting_for_sipi()) x.mp_state = MpState::Uninitialized;
        // The local APIC's register page (its current count as of now) and the TSC, which the
        // CPU's state leaves to the engine: both live beside the CPU.
        LocalApicState apic = vcpu.lapic().export_state();
        s.apic_base = apic.apic_base;
        x.lapic = apic.page;
        for (MsrValue& m : x.msrs)
            if (m.index == kTscMsr) m.value = guest_tsc(vcpu.cpu());
        // The TSC deadline is the local APIC's; the CPU's state leaves it out.
        if (auto deadline = read_msr(vcpu.cpu(), kTscDeadlineMsr)) x.msrs.push_back({kTscDeadlineMsr, *deadline});
        return s;
    }
    [[nodiscard]] Result<void> set_vcpu_state(unsigned index, const CpuState& state) override {
        if (index >= vcpus_.size()) return fail("vCPU {} does not exist ({} vCPUs)", index, vcpus_.size());
        forget_code();
        SoftVcpu& vcpu = *vcpus_[index];
        if (state.extended) {
            // Check what can be refused before anything changes: nothing is half set.
            LocalApicState apic{.apic_base = state.apic_base, .page = state.extended->lapic, .extra = std::nullopt};
            if (auto r = vcpu.lapic().import_state(apic); !r) return context(r.error(), fmt::format("vCPU {}: local APIC", index));
        }
        vcpu.cpu().set_state(state);
        if (state.extended) {
            vcpu.set_waiting_for_sipi(state.extended->mp_state == MpState::Uninitialized);
            // The TSC first: a TSC deadline is armed against it.
            for (const MsrValue& m : state.extended->msrs)
                if (m.index == kTscMsr) (void)write_msr(vcpu.cpu(), kTscMsr, m.value);
            for (const MsrValue& m : state.extended->msrs)
                if (m.index == kTscDeadlineMsr) (void)write_msr(vcpu.cpu(), kTscDeadlineMsr, m.value);
        }
        return {};
    }
    [[nodiscard]] std::vector<VcpuMetrics> metrics() const override {
        std::vector<VcpuMetrics> all;
        for (const auto& vcpu : vcpus_) all.push_back(vcpu->metrics());
        return all;
    }
    [[nodiscard]] Result<void> start(const Platform& platform) override {
        for (auto& vcpu : vcpus_)
            if (auto r = vcpu->thread().start(platform); !r) return r;
        return {};
    }
    void stop() override {
        for (auto& vcpu : vcpus_) vcpu->thread().stop();
    }
    void join() override {
        for (auto& vcpu : vcpus_) vcpu->thread().join();
    }
    void rearm() override {
        for (auto& vcpu : vcpus_) vcpu->thread().rearm();
    }
    [[nodiscard]] Result<void> prepare_resume(const CpuState& boot) override {
        forget_code();
        for (size_t i = 0; i < vcpus_.size(); ++i) {
            vcpus_[i]->thread().rearm();
            if (i == 0) {
                vcpus_[i]->cpu().set_state(boot);
                vcpus_[i]->cpu().halted = false;
            }
            vcpus_[i]->set_waiting_for_sipi(i != 0);
        }
        return {};
    }

private:
    // While the vCPUs are stopped, memory may have been rewritten behind their backs (a loader, a
    // test, a restore): predecoded blocks are dropped so that nothing stale runs.
    void forget_code() {
        for (auto& vcpu : vcpus_) vcpu->clear_code_cache();
    }

    CodePages code_pages_;
    ApicRouter router_;  // before the vCPUs: their local APICs send through it until they are gone
    ApicMsi msi_;
    CodeWriteObserver code_writes_;
    std::vector<std::unique_ptr<SoftVcpu>> vcpus_;
};

Result<std::unique_ptr<CpuEngine>> create_soft_engine(const GuestMemory& memory, unsigned cpus, TimerService& timers) {
    if (cpus == 0 || cpus > 254) return fail("{} vCPUs requested; the soft engine supports 1 to 254", cpus);
    return std::unique_ptr<CpuEngine>(std::make_unique<SoftEngine>(memory, cpus, timers));
}

}  // namespace strata::soft
