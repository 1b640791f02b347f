// isa-debug-exit: the port through which test kernels (kvm-unit-tests, Strata's own guests) end
// the VM with a status.
//
// State:    none.
// Features: a write of V at any width stops the machine with StopKind::DebugExit and value V; the
//           process then exits with (V << 1) | 1, as QEMU's isa-debug-exit (StopReason::exit_status).
//           Reads return 0.
// Missing:  nothing a guest relies on.
// Spec:     QEMU hw/misc/debugexit.c (behaviour only); kvm-unit-tests x86/run
//           ("-device isa-debug-exit,iobase=0xf4,iosize=0x4") and lib/x86's exit(), which writes
//           the test's status to that port.
#pragma once

#include "bus/bus_device.hpp"
#include "bus/machine_control.hpp"

namespace strata {

class DebugExit final : public BusDevice {
public:
    static constexpr uint64_t kWindowSize = 4;

    explicit DebugExit(MachineControl& control) : control_(control) {}

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    MachineControl& control_;
};

}  // namespace strata
