// Delivery of exceptions and interrupts through the IVT (real mode, virtual-8086 via the IDT) or
// the IDT (protected mode, long mode): gate checks, privilege changes with the TSS's stacks and
// long mode's IST, error codes, and the double-fault and triple-fault rules (SDM vol. 3A
// §6.10-6.15, table 6-5 "Conditions for Generating a Double Fault").
#pragma once

#include <cstdint>
#include <optional>

#include "cpu/soft/cpu.hpp"

namespace strata::soft {

enum class EventKind : uint8_t {
    Fault,             // an exception raised by the instruction at cpu.rip (return address: cpu.rip)
    Trap,              // an exception after an instruction completed (#DB traps; return: cpu.rip)
    External,          // an interrupt from the LAPIC/PIC (return address: cpu.rip)
    Nmi,
    SoftwareInt,       // INT n (return address: cpu.next_rip; gate DPL checked against CPL)
    SoftwareException, // INT3, INTO (as SoftwareInt, but for the gate DPL check and vectors)
    PrivilegedSoftware // INT1/ICEBP (no DPL check)
};

// Thrown when delivery itself fails in a way that must end the VM (a fault while delivering #DF).
struct TripleFault {};

// Delivers `vector` as `kind` with an optional error code, leaving the CPU at the handler's first
// instruction. A fault during delivery becomes #DF or, during #DF, a TripleFault throw.
void deliver_event(Cpu& cpu, uint8_t vector, EventKind kind, std::optional<uint32_t> error_code = std::nullopt);

// A GuestFault caught by the run loop, delivered as its exception.
inline void deliver_fault(Cpu& cpu, const GuestFault& fault) {
    deliver_event(cpu, fault.vector, EventKind::Fault,
                  fault.has_error_code ? std::optional<uint32_t>(fault.error_code) : std::nullopt);
}

}  // namespace strata::soft
