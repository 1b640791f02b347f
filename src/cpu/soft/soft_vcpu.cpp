#include "cpu/soft/soft_vcpu.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "cpu/soft/interrupts.hpp"
#include "cpu/soft/soft_cpuid.hpp"

namespace strata::soft {

namespace {
// Blocks run between looks at the stop flag when nothing kicks the vCPU: bounds the latency of a
// stop to some microseconds of guest code.
constexpr unsigned kBlocksPerSlice = 1024;

// The longest a halted vCPU spins before it sleeps (halt_poll.hpp); STRATA_SOFT_HALT_POLL_US
// overrides it, 0 turns polling off.
HaltPollWindow::Duration halt_poll_limit() {
    static const HaltPollWindow::Duration limit = [] {
        const char* text = std::getenv("STRATA_SOFT_HALT_POLL_US");
        long us = text && *text ? std::strtol(text, nullptr, 10) : 200;
        return std::chrono::duration_cast<HaltPollWindow::Duration>(std::chrono::microseconds(std::clamp(us, 0L, 10'000L)));
    }();
    return limit;
}

// The boot CPU's LINT0 takes the 8259's interrupts (virtual wire mode, ExtINT) and LINT1 is NMI,
// as PC firmware leaves them (MP spec §3.6.2.2) and as the kvm engine sets KVM's
// (kvm_vcpu.cpp); the APs' stay masked until their OS programs them. Real-mode guests depend on
// it (kvm-unit-tests' realmode takes IRQ 11 through the 8259 while halted). Through an import:
// with the SVR at its reset value the APIC is software-disabled and an LVT write could not clear
// the masks.
void enter_virtual_wire_mode(LocalApic& lapic) {
    constexpr size_t kLvtLint0 = 0x350, kLvtLint1 = 0x360;  // xAPIC page offsets (SDM vol. 3A table 11-1)
    constexpr uint32_t kDeliveryExtInt = 7u << 8, kDeliveryNmi = 4u << 8;
    LocalApicState state = lapic.export_state();
    auto set_lvt = [&](size_t offset, uint32_t value) {
        uint32_t reg = 0;
        std::memcpy(&reg, state.page.data() + offset, sizeof reg);
        reg = (reg & ~0x1'07ffu) | value;  // clear the mask (bit 16), the delivery mode and the vector
        std::memcpy(state.page.data() + offset, &reg, sizeof reg);
    };
    set_lvt(kLvtLint0, kDeliveryExtInt);
    set_lvt(kLvtLint1, kDeliveryNmi);
    if (auto r = lapic.import_state(state); !r) panic(fmt::format("the boot CPU's local APIC: {}", r.error().message));
}
}  // namespace

SoftVcpu::SoftVcpu(unsigned index, unsigned cpus, const GuestMemory& memory, CodePages& code_pages,
                   TimerService& timers, ApicBus& apic_bus, const LocalApicConfig& apic_config)
    : cpuid_(soft_cpuid_table(index, cpus)),
      interpreter_(cpu_),
      lapic_(apic_config, timers, apic_bus, *this),
      thread_(*this, index),
      halt_poll_(halt_poll_limit()) {
    cpu_.cpuid = &cpuid_;
    cpu_.index = index;
    cpu_.memory = &memory;
    cpu_.code_pages = &code_pages;
    cpu_.vcpu = this;
    cpu_.lapic = &lapic_;
    cpu_.clock = &timers.clock();
    cpu_.msr.apic_base = lapic_.apic_base();
    cpu_.refresh_mode();
    if (apic_config.bootstrap) enter_virtual_wire_mode(lapic_);
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
    auto woken = [&] { return stop_.load(std::memory_order_acquire) || kicked_.load(std::memory_order_acquire); };
    // Only a halt polls: an application processor waiting for its start-up IPI waits long.
    bool halt = cpu_.halted && !waiting_for_sipi_;
    bool poll = halt && halt_poll_.window() > HaltPollWindow::Duration::zero();
    auto start = std::chrono::steady_clock::now();
    if (poll) {
        auto deadline = start + halt_poll_.window();
        for (unsigned spin = 1;; ++spin) {
            if (woken()) {
                auto halted = std::chrono::steady_clock::now() - start;
                halt_poll_.record(halted, false);
                count_halt(halted);
                return;
            }
            __builtin_ia32_pause();
            if (spin % 64 == 0 && std::chrono::steady_clock::now() >= deadline) break;
        }
    }
    {
        std::unique_lock lock(sleep_mutex_);
        wake_.wait(lock, woken);
    }
    auto halted = std::chrono::steady_clock::now() - start;
    if (halt) halt_poll_.record(halted, true);
    count_halt(halted);
}

void SoftVcpu::count_halt(std::chrono::steady_clock::duration halted) {
    published_.halts.add();
    published_.halted_ns.add(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(halted).count()));
}

void SoftVcpu::publish_counts() {
    published_.instructions.set(interpreter_.instructions());
    published_.blocks_run.set(interpreter_.blocks_run());
    published_.blocks_decoded.set(interpreter_.cache().blocks_built());
    published_.jump_misses.set(interpreter_.jump_misses());
    published_.tlb_flushes.set(cpu_.tlb_generation());
}

VcpuMetrics SoftVcpu::metrics() const {
    return {.index = cpu_.index,
            .exits = {{"halt", published_.halts.get()}},
            .halted_ns = published_.halted_ns.get(),
            .soft = VcpuMetrics::Soft{.instructions = published_.instructions.get(),
                                      .blocks_run = published_.blocks_run.get(),
                                      .blocks_decoded = published_.blocks_decoded.get(),
                                      .jump_cache_misses = published_.jump_misses.get(),
                                      .tlb_flushes = published_.tlb_flushes.get()}};
}

// INIT (SDM vol. 3A §9.1.1, table 9-1): the reset state of the registers, except that x87/SSE
// state, the MTRRs and the local APIC's base survive; the processor then waits for a start-up IPI.
void SoftVcpu::enter_init_state() {
    CpuState s = real_mode_at(0);
    s.rip = 0xfff0;
    s.cs.selector = 0xf000;
    s.cs.base = 0xffff'0000;
    s.apic_base = cpu_.msr.apic_base;
    cpu_.set_state(s);
    cpu_.halted = false;
    cpu_.nmi_masked = false;
    cpu_.interrupt_shadow = 0;
    waiting_for_sipi_ = true;
}

// Events, in the priority order of SDM vol. 3A §6.9: INIT, then (for a waiting AP) SIPI, NMI,
// then maskable interrupts.
void SoftVcpu::take_events() {
    uint32_t events = lapic_.pending_events();
    if ((events & LocalApic::kEventInit) && lapic_.take_init()) enter_init_state();
    if (events & LocalApic::kEventStartUp) {
        if (auto vector = lapic_.take_sipi(); vector && waiting_for_sipi_) {
            // The AP starts in real mode at vector << 12 (§8.4.4.1).
            CpuState s = real_mode_at(uint32_t{*vector} << 12);
            s.apic_base = cpu_.msr.apic_base;
            cpu_.set_state(s);
            waiting_for_sipi_ = false;
        }
    }
    if (waiting_for_sipi_) return;
    if ((events & LocalApic::kEventNmi) && !cpu_.nmi_masked && lapic_.take_nmi()) {
        cpu_.halted = false;
        cpu_.nmi_masked = true;
        deliver_event(cpu_, 2, EventKind::Nmi);
        return;
    }
    if ((events & LocalApic::kEventInterrupt) && (cpu_.flags.other & rflags::IF) && !cpu_.interrupt_shadow) {
        if (lapic_.pending_interrupt()) {
            uint8_t vector = lapic_.acknowledge();
            cpu_.halted = false;
            deliver_event(cpu_, vector, EventKind::External);
        }
    }
}

bool SoftVcpu::run_once(const Platform& platform) {
    cpu_.platform = &platform;
    try {
        while (!stop_.load(std::memory_order_acquire)) {
            // Clearing the kick and then looking at the events must not be reordered (a store
            // and a later load may be, even on x86): an event posted between them would find
            // its kick erased while this thread found no event, and a halted vCPU would sleep
            // through it (kvm-unit-tests' vmexit_ipi lost IPIs so).
            kicked_.store(false, std::memory_order_relaxed);
            std::atomic_thread_fence(std::memory_order_seq_cst);
            if (lapic_.has_event()) take_events();
            if (cpu_.halted || waiting_for_sipi_) {
                sleep_until_event();
                continue;
            }
            // At least one block runs between looks at the events: an event that cannot be taken
            // yet (an interrupt while RFLAGS.IF is clear) must not stop the guest from reaching
            // the instruction that will let it in.
            interpreter_.run_slice(kBlocksPerSlice, lapic_.event_word(), kicked_);
            publish_counts();
        }
    } catch (const TripleFault&) {
        report_triple_fault(platform);
        return false;
    }
    return true;
}

void SoftVcpu::report_triple_fault(const Platform& platform) {
    std::string detail = fmt::format("vCPU {}: the guest triple-faulted\n", cpu_.index);
    detail += cpu_.state().describe();
    platform.control.request_stop({StopKind::TripleFault, 0, std::move(detail)});
}

}  // namespace strata::soft
