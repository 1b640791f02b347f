// pc-testdev: the test device kvm-unit-tests expects of QEMU (emulator, eventinj, realmode,
// ioapic, ...).
//
// State:    a 32-bit scratch register, a byte scratch register, 64 KiB of scratch memory, and
//           the 24 interrupt lines it drives.
// Features: three windows the board places separately.
//           ports()     (0xe0-0xef): 0xe0-0xe3 a 32-bit scratch register at any width and byte
//                       offset; 0xe4 "flush page": a write of a guest-physical address drops the
//                       page's host mapping (MADV_DONTNEED on the shared memfd: the contents
//                       stay), so KVM drops its mapping too and the guest's next access faults
//                       into KVM again, as under QEMU; addresses outside RAM are ignored; 0xe8 a
//                       byte scratch register. Other ports read all ones.
//           irq_ports() (0x2000-0x2017): a byte write of v at offset n sets line n to (v != 0).
//                       Every write reaches the line, even an unchanged level, because the test
//                       device exists to let the guest drive its lines exactly as QEMU's does.
//           mmio()      (64 KiB): scratch memory that reads back what was written at any width.
// Missing:  nothing kvm-unit-tests uses.
// Spec:     QEMU hw/misc/pc-testdev.c (behaviour only); kvm-unit-tests x86/run, which adds
//           "-device pc-testdev", and the tests that use it (x86/emulator.c, x86/eventinj.c,
//           x86/realmode.c).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/error.hpp"
#include "base/state_stream.hpp"
#include "bus/bus_device.hpp"
#include "bus/irq_line.hpp"
#include "memory/guest_memory.hpp"

namespace strata {

class PcTestDev {
public:
    static constexpr uint64_t kPortsWindowSize = 0x10;
    static constexpr uint64_t kIrqPortsWindowSize = 24;
    static constexpr uint64_t kMmioWindowSize = 64 * 1024;

    // `lines[n]` is GSI n; a null entry makes writes to its port do nothing. `memory` must
    // outlive the device.
    PcTestDev(const GuestMemory& memory, std::array<IrqLine*, 24> lines);

    [[nodiscard]] std::shared_ptr<BusDevice> ports() const { return ports_; }
    [[nodiscard]] std::shared_ptr<BusDevice> irq_ports() const { return irq_ports_; }
    [[nodiscard]] std::shared_ptr<BusDevice> mmio() const { return mmio_; }

    // For snapshots: the scratch registers and memory and the IRQ lines' levels as written.
    struct State {
        uint32_t scratch32 = 0;
        uint8_t scratch8 = 0;
        std::vector<uint8_t> scratch_memory;  // kMmioWindowSize bytes
        std::array<bool, 24> levels{};
        void encode(StateWriter& out) const;
        static State decode(StateReader& in);
    };
    [[nodiscard]] State state() const;
    Result<void> set_state(const State& state);

private:
    struct Core;  // defined in pc_testdev.cpp; shared by the three windows

    std::shared_ptr<Core> core_;
    std::shared_ptr<BusDevice> ports_;
    std::shared_ptr<BusDevice> irq_ports_;
    std::shared_ptr<BusDevice> mmio_;
};

}  // namespace strata
