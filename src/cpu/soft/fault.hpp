// Guest exceptions inside the soft CPU. An instruction that faults throws a GuestFault before it
// has changed any architectural state it must not (Intel SDM vol. 3A §6.5: faults are restartable);
// the vCPU's run loop catches it at the block and delivers the exception through the IDT. Throwing
// costs a few microseconds, paid only when the guest faults; the dispatch loop itself pays nothing.
#pragma once

#include <cstdint>

namespace strata::soft {

// Exception vectors (SDM vol. 3A §6.3.1, table 6-1).
namespace vec {
constexpr uint8_t DE = 0, DB = 1, NMI = 2, BP = 3, OF = 4, BR = 5, UD = 6, NM = 7, DF = 8, TS = 10, NP = 11,
                  SS = 12, GP = 13, PF = 14, MF = 16, AC = 17, MC = 18, XM = 19;
}

struct GuestFault {
    uint8_t vector = 0;
    bool has_error_code = false;
    uint32_t error_code = 0;
};

[[noreturn]] inline void raise_fault(uint8_t vector) { throw GuestFault{vector, false, 0}; }
[[noreturn]] inline void raise_fault(uint8_t vector, uint32_t error_code) { throw GuestFault{vector, true, error_code}; }
[[noreturn]] inline void raise_ud() { raise_fault(vec::UD); }
[[noreturn]] inline void raise_gp(uint32_t error_code = 0) { raise_fault(vec::GP, error_code); }
[[noreturn]] inline void raise_ss(uint32_t error_code = 0) { raise_fault(vec::SS, error_code); }
[[noreturn]] inline void raise_de() { raise_fault(vec::DE); }
[[noreturn]] inline void raise_nm() { raise_fault(vec::NM); }

// #PF error code bits (SDM vol. 3A §4.7).
namespace pf {
constexpr uint32_t P = 1u << 0, W = 1u << 1, U = 1u << 2, RSVD = 1u << 3, I = 1u << 4, PK = 1u << 5;
}

}  // namespace strata::soft
