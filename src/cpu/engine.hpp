// The narrow boundary between a CPU engine (kvm, later soft) and the machine: an engine runs the
// vCPUs of one VM over the machine's memory and buses and reports how the VM ended through
// MachineControl. Both engines present the same interrupt lines (one per GSI) to the board.
#pragma once

#include <string_view>

#include "base/error.hpp"
#include "bus/bus.hpp"
#include "bus/io_event.hpp"
#include "bus/irq_line.hpp"
#include "bus/machine_control.hpp"
#include "bus/msi.hpp"
#include "devices/irqchip/apic_bus.hpp"
#include "devices/irqchip/irqchip_state.hpp"
#include "cpu/cpu_state.hpp"
#include "cpu/vcpu_metrics.hpp"
#include "memory/guest_dma.hpp"
#include "memory/guest_memory.hpp"

namespace strata {

// What a vCPU reaches outside itself. The machine owns all of it and outlives the engine's threads.
struct Platform {
    const GuestMemory& memory;
    const Bus& pio;
    const Bus& mmio;
    MachineControl& control;
};

class CpuEngine {
public:
    virtual ~CpuEngine() = default;

    [[nodiscard]] virtual std::string_view name() const = 0;
    [[nodiscard]] virtual unsigned vcpu_count() const = 0;

    // The engine's local APICs when it has no in-kernel interrupt controllers: then the board
    // places Strata's own 8259 pair, IOAPIC and PIT and wires them to these, and irq_line() is
    // not used. nullptr when the engine brings its own (KVM's in-kernel irqchip).
    [[nodiscard]] virtual LocalApicSet* local_apics() { return nullptr; }

    // With in-kernel interrupt controllers: the interrupt line of global system interrupt `gsi` (ISA IRQ n is GSI n, except that the
    // PIT's IRQ0 arrives at IOAPIC pin 2 as on every PC); nullptr past the last pin.
    [[nodiscard]] virtual IrqLine* irq_line(unsigned gsi) = 0;

    // Where message-signalled interrupts (PCI MSI and MSI-X) go: the engine's local APICs,
    // whichever kind they are. Valid as long as the engine.
    [[nodiscard]] virtual MsiController& msi() = 0;

    // The engine's in-kernel path from a guest write to an eventfd, or nullptr.
    [[nodiscard]] virtual IoEventRegistry* io_events() { return nullptr; }

    // What must hear of devices' writes to guest memory (the soft engine's predecoded code), or
    // nullptr when nothing must (KVM sees guest memory as the hardware does).
    [[nodiscard]] virtual MemoryWriteObserver* dma_observer() { return nullptr; }

    // Sets the boot CPU's entry state; the others wait for INIT-SIPI-SIPI.
    [[nodiscard]] virtual Result<void> set_boot_state(const CpuState& state) = 0;

    // The whole state of vCPU `index` (extended part included), and setting it; only while the
    // vCPUs are not running (before start(), after join()).
    [[nodiscard]] virtual Result<CpuState> vcpu_state(unsigned index) const = 0;
    [[nodiscard]] virtual Result<void> set_vcpu_state(unsigned index, const CpuState& state) = 0;

    // Snapshots: the interrupt controllers and PIT the engine brings (KVM's in-kernel ones), in the
    // board's neutral form, with times on the machine clock, which reads `machine_now_ns`; nullopt
    // when the engine has none (the board's are Strata's own). Only while the vCPUs are stopped.
    [[nodiscard]] virtual Result<std::optional<IrqchipState>> irqchip_state(int64_t /*machine_now_ns*/) const {
        return std::nullopt;
    }
    [[nodiscard]] virtual Result<void> set_irqchip_state(const IrqchipState& /*state*/, int64_t /*machine_now_ns*/) {
        return fail("the {} engine has no interrupt controllers of its own", name());
    }

    // Each vCPU's counts (vcpu_metrics.hpp); any thread, any time.
    [[nodiscard]] virtual std::vector<VcpuMetrics> metrics() const = 0;

    // Starts one host thread per vCPU; `platform` must outlive them (until join()).
    [[nodiscard]] virtual Result<void> start(const Platform& platform) = 0;
    // Asks every vCPU thread to finish (any thread may call it, more than once, at any moment: a
    // stop that comes before or during start() holds, and start() then runs nothing) ...
    virtual void stop() = 0;
    // ... and waits until they have.
    virtual void join() = 0;

    // After join(), for a pause: forgets the stop request, so that start() runs every vCPU on
    // from where it stopped (an instruction boundary; its state untouched).
    virtual void rearm() = 0;

    // After join(), for a pause: takes note of the guest clocks that would run on in the host
    // while the vCPUs are stopped (KVM: each vCPU's TSC, the in-kernel PIT) ...
    [[nodiscard]] virtual Result<void> freeze_time() { return {}; }
    // ... and before start() sets them back, so that guest time does not jump over the pause.
    // Nothing to do for an engine whose clocks are the machine clock (the soft engine).
    [[nodiscard]] virtual Result<void> thaw_time() { return {}; }

    // After join(), for ACPI S3 resume: the boot CPU at `boot`, the others waiting for
    // INIT-SIPI-SIPI again, the earlier stop request forgotten; start() then runs them.
    [[nodiscard]] virtual Result<void> prepare_resume(const CpuState& boot) = 0;
};

}  // namespace strata
