// The x87 arithmetic of the soft CPU runs on the host's own x87 unit: the soft engine runs on
// x86-64 hosts only, whose x87 is the very unit the guest expects (SDM vol. 1 ch. 8). Each
// operation loads the guest's control word (precision, rounding and exception masks) into the
// host's x87, loads the operands exactly (80-bit loads are bit-exact and raise nothing), runs the
// same instruction, and reads the host's status word back. Results, C0-C3 and exception flags are
// therefore those of the host CPU bit for bit — including the unmasked responses (an unmasked
// overflow leaves the biased-exponent result, an unmasked invalid operation leaves the destination
// unchanged) and the transcendental instructions' accuracy — which is what the differential tests
// compare against.
//
// Each operation is one self-contained asm statement: the host's exceptions cannot trap in it
// because every instruction after the operation runs with the flags cleared (FNCLEX) and all
// exceptions masked, and it ends with FNINIT so that whatever the operation did to the host's
// register stack (an unmasked exception may skip a push or a pop) never leaks out. The guest's
// tags, TOP and stack faults are kept by the caller (x87_stack.hpp), not by the host.
#pragma once

#include <array>
#include <cstdint>

namespace strata::soft::x87host {

enum class Op : uint8_t {
    // ST(0) = ST(0) op ST(1)
    Add, Sub, Subr, Mul, Div, Divr,
    // ST(0) = ST(0) op memory operand (m32fp, m64fp, m16int, m32int)
    AddF32, SubF32, SubrF32, MulF32, DivF32, DivrF32,
    AddF64, SubF64, SubrF64, MulF64, DivF64, DivrF64,
    AddI16, SubI16, SubrI16, MulI16, DivI16, DivrI16,
    AddI32, SubI32, SubrI32, MulI32, DivI32, DivrI32,
    // C0, C2, C3 from comparing ST(0) with ST(1) or the memory operand; FXAM classifies ST(0)
    Com, Ucom, ComF32, ComF64, ComI16, ComI32, Tst, Xam,
    // ST(0) = f(ST(0))
    Sqrt, Rndint, F2xm1, Sin, Cos,
    // ST(0) = f(ST(0), ST(1))
    Scale, Prem, Prem1,
    // ST(1) = f(ST(1), ST(0)) and pop: the result is `st0` of the Result
    Patan, Yl2x, Yl2xp1,
    // push: the Result's st0 and st1 are the new ST(0) and ST(1)
    Ptan, Xtract, Sincos,
    // push the memory operand (m32fp, m64fp, m80bcd) or a constant rounded by FCW.RC
    LoadF32, LoadF64, LoadBcd, LoadPi, LoadL2e, LoadL2t, LoadLg2, LoadLn2,
    // ST(0) to the memory operand (FST rounds by FCW; FIST rounds by RC; FISTTP truncates)
    StoreF32, StoreF64, StoreI16, StoreI32, StoreI64, StoreTruncI16, StoreTruncI32, StoreTruncI64, StoreBcd,
};

struct Operands {
    long double st0 = 0, st1 = 0;
    std::array<uint8_t, 16> memory{};  // the memory operand's bytes, little-endian
};

struct Result {
    long double st0 = 0, st1 = 0;
    std::array<uint8_t, 16> memory{};  // what a store wrote
    uint16_t status = 0;               // the host's FSW after the operation (TOP meaningless)
};

// Runs `op` with the guest's control word `fcw`.
Result run(Op op, const Operands& in, uint16_t fcw);

}  // namespace strata::soft::x87host
