// Random integer instruction sequences for the differential tests: from a fixed seed, N cases of
// M instructions each over random registers, flags and data — ALU ops, shifts and rotates
// (double shifts too), MUL/IMUL, DIV/IDIV with guarded divisors, bit ops and bit scans, LEA,
// MOVZX/MOVSX/MOVSXD, CMOVcc/SETcc and short forward Jcc, PUSH/POP, string ops with small counts
// in the data area, XCHG/CMPXCHG/CMPXCHG8B/XADD with and without LOCK, BSWAP, the sign
// extensions, flag ops, and POPCNT/LZCNT/TZCNT where the host has them.
//
// The generator never lets a sequence fault (memory stays in the data area and the stack page,
// locked operands are aligned, divisors are non-zero and the quotient fits) and tracks which flags
// are undefined (SDM vol. 1 app. A, and each instruction's "Flags Affected"): before an instruction
// reads a flag that is undefined it inserts a CMP that defines all six, and a sequence's
// undefined_flags are those still undefined at its end. So the outcome depends on no vendor's
// choice for undefined flags. (The destination of BSF/BSR with a zero source, which the SDM leaves
// undefined, is left unchanged by Intel and AMD alike, and is compared.)
#pragma once

#include <cstdint>
#include <vector>

#include "cpu/differential/harness.hpp"

namespace strata::differential {

// Instructions the generator may use beyond x86-64's base set: the reference runs guest user code
// natively, so what counts is what this host's CPU has (CPUID, read here).
struct HostFeatures {
    bool popcnt = false;  // CPUID.01H:ECX.POPCNT[23]
    bool lzcnt = false;   // CPUID.80000001H:ECX.ABM/LZCNT[5]
    bool bmi1 = false;    // CPUID.(EAX=07H,ECX=0):EBX.BMI1[3] (TZCNT)
    static HostFeatures probe();
};

// `count` cases of `length` generated instructions each (plus the set-up and guard instructions
// the generator inserts), the same for the same seed and features.
std::vector<Case> random_integer_sequences(uint64_t seed, size_t count, size_t length,
                                           HostFeatures features = HostFeatures::probe());

}  // namespace strata::differential
