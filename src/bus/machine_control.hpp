// How a device (or a vCPU) ends the VM: power-off, reset, the debug-exit port. The machine owns
// the one implementation; the first stop requested wins and every vCPU thread is told to finish.
#pragma once

#include <cstdint>
#include <string>

namespace strata {

enum class StopKind {
    PowerOff,          // the guest powered off (ACPI S5 or another supported path)
    Reset,             // the guest asked for a reset (0xCF9, i8042, ACPI reset register)
    DebugExit,         // a write to the isa-debug-exit port
    TripleFault,       // KVM_EXIT_SHUTDOWN or the soft engine's equivalent
    EmulationFailure,  // the CPU engine could not run a guest instruction
    HostError,         // something of the VMM's or the host's failed
    UserQuit,          // the console escape sequence
    Signal,            // SIGINT/SIGTERM/SIGHUP
    Killed,            // the control API's kill, or its graceful stop's deadline passing
};

struct StopReason {
    StopKind kind = StopKind::PowerOff;
    uint32_t value = 0;  // the debug-exit value, or the signal number
    std::string detail;  // one line for the user

    // The process exit status for this stop. Guest power-off and reset give 0; the debug-exit
    // port gives (value << 1) | 1 as QEMU's isa-debug-exit; VMM errors give 2; a crashed guest
    // gives an even status no debug-exit write can produce: 4 for a triple fault, 6 for an
    // emulation failure; a kill through the control API gives 8; a signal gives 128 + its number.
    [[nodiscard]] int exit_status() const {
        switch (kind) {
            case StopKind::PowerOff:
            case StopKind::Reset:
            case StopKind::UserQuit: return 0;
            case StopKind::DebugExit: return static_cast<int>(((value << 1) | 1) & 0xff);
            case StopKind::HostError: return 2;
            case StopKind::TripleFault: return 4;
            case StopKind::EmulationFailure: return 6;
            case StopKind::Killed: return 8;
            case StopKind::Signal: return 128 + static_cast<int>(value);
        }
        return 2;
    }
};

class MachineControl {
public:
    virtual ~MachineControl() = default;
    virtual void request_stop(StopReason reason) = 0;

    // ACPI S3: the guest's CPUs stop until request_wake(), then the boot CPU resumes in real mode
    // at the FACS waking vector. A machine without sleep support ignores both.
    virtual void request_sleep() {}
    virtual void request_wake() {}
};

}  // namespace strata
