// The host-x87 operations of x87_host.hpp: one asm statement per instruction, in one frame.
#include "cpu/soft/exec/x87_host.hpp"

namespace strata::soft::x87host {

namespace {

// The frame around one host instruction (AT&T syntax): save the host's control word, clear its
// flags, load the guest's control word, push ST(1) then ST(0), run INSN, read the status, clear the
// flags again and mask everything before storing the two top registers (a register the operation
// popped stores as the indefinite, harmlessly), then FNINIT and restore the host's control word.
// Only non-waiting instructions run while an unmasked exception may be pending, so nothing traps.
// Every x87 register is clobbered: the compiler keeps no value of its own on the stack across it.
#define STRATA_HOST_X87(INSN)                                                                          \
    asm volatile("fnstcw %[saved]\n\t"                                                                 \
                 "fnclex\n\t"                                                                          \
                 "fldcw %[cw]\n\t"                                                                     \
                 "fldt %[b]\n\t"                                                                       \
                 "fldt %[a]\n\t" INSN                                                                  \
                 "\n\t"                                                                                \
                 "fnstsw %[sw]\n\t"                                                                    \
                 "fnclex\n\t"                                                                          \
                 "fldcw %[masked]\n\t"                                                                 \
                 "fstpt %[r0]\n\t"                                                                     \
                 "fstpt %[r1]\n\t"                                                                     \
                 "fninit\n\t"                                                                          \
                 "fldcw %[saved]"                                                                      \
                 : [r0] "=m"(out.st0), [r1] "=m"(out.st1), [omem] "=m"(out.memory), [sw] "=m"(out.status), \
                   [saved] "=m"(saved)                                                                 \
                 : [a] "m"(in.st0), [b] "m"(in.st1), [imem] "m"(in.memory), [cw] "m"(fcw), [masked] "m"(masked) \
                 : "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)")

}  // namespace

Result run(Op op, const Operands& in, uint16_t fcw) {
    Result out;
    uint16_t saved = 0;
    const uint16_t masked = static_cast<uint16_t>(fcw | 0x3f);
    switch (op) {
        case Op::Add: STRATA_HOST_X87("fadd %%st(1), %%st"); break;
        case Op::Sub: STRATA_HOST_X87("fsub %%st(1), %%st"); break;
        case Op::Subr: STRATA_HOST_X87("fsubr %%st(1), %%st"); break;
        case Op::Mul: STRATA_HOST_X87("fmul %%st(1), %%st"); break;
        case Op::Div: STRATA_HOST_X87("fdiv %%st(1), %%st"); break;
        case Op::Divr: STRATA_HOST_X87("fdivr %%st(1), %%st"); break;
        case Op::AddF32: STRATA_HOST_X87("fadds %[imem]"); break;
        case Op::SubF32: STRATA_HOST_X87("fsubs %[imem]"); break;
        case Op::SubrF32: STRATA_HOST_X87("fsubrs %[imem]"); break;
        case Op::MulF32: STRATA_HOST_X87("fmuls %[imem]"); break;
        case Op::DivF32: STRATA_HOST_X87("fdivs %[imem]"); break;
        case Op::DivrF32: STRATA_HOST_X87("fdivrs %[imem]"); break;
        case Op::AddF64: STRATA_HOST_X87("faddl %[imem]"); break;
        case Op::SubF64: STRATA_HOST_X87("fsubl %[imem]"); break;
        case Op::SubrF64: STRATA_HOST_X87("fsubrl %[imem]"); break;
        case Op::MulF64: STRATA_HOST_X87("fmull %[imem]"); break;
        case Op::DivF64: STRATA_HOST_X87("fdivl %[imem]"); break;
        case Op::DivrF64: STRATA_HOST_X87("fdivrl %[imem]"); break;
        case Op::AddI16: STRATA_HOST_X87("fiadds %[imem]"); break;
        case Op::SubI16: STRATA_HOST_X87("fisubs %[imem]"); break;
        case Op::SubrI16: STRATA_HOST_X87("fisubrs %[imem]"); break;
        case Op::MulI16: STRATA_HOST_X87("fimuls %[imem]"); break;
        case Op::DivI16: STRATA_HOST_X87("fidivs %[imem]"); break;
        case Op::DivrI16: STRATA_HOST_X87("fidivrs %[imem]"); break;
        case Op::AddI32: STRATA_HOST_X87("fiaddl %[imem]"); break;
        case Op::SubI32: STRATA_HOST_X87("fisubl %[imem]"); break;
        case Op::SubrI32: STRATA_HOST_X87("fisubrl %[imem]"); break;
        case Op::MulI32: STRATA_HOST_X87("fimull %[imem]"); break;
        case Op::DivI32: STRATA_HOST_X87("fidivl %[imem]"); break;
        case Op::DivrI32: STRATA_HOST_X87("fidivrl %[imem]"); break;
        case Op::Com: STRATA_HOST_X87("fcom %%st(1)"); break;
        case Op::Ucom: STRATA_HOST_X87("fucom %%st(1)"); break;
        case Op::ComF32: STRATA_HOST_X87("fcoms %[imem]"); break;
        case Op::ComF64: STRATA_HOST_X87("fcoml %[imem]"); break;
        case Op::ComI16: STRATA_HOST_X87("ficoms %[imem]"); break;
        case Op::ComI32: STRATA_HOST_X87("ficoml %[imem]"); break;
        case Op::Tst: STRATA_HOST_X87("ftst"); break;
        case Op::Xam: STRATA_HOST_X87("fxam"); break;
        case Op::Sqrt: STRATA_HOST_X87("fsqrt"); break;
        case Op::Rndint: STRATA_HOST_X87("frndint"); break;
        case Op::F2xm1: STRATA_HOST_X87("f2xm1"); break;
        case Op::Sin: STRATA_HOST_X87("fsin"); break;
        case Op::Cos: STRATA_HOST_X87("fcos"); break;
        case Op::Scale: STRATA_HOST_X87("fscale"); break;
        case Op::Prem: STRATA_HOST_X87("fprem"); break;
        case Op::Prem1: STRATA_HOST_X87("fprem1"); break;
        case Op::Patan: STRATA_HOST_X87("fpatan"); break;
        case Op::Yl2x: STRATA_HOST_X87("fyl2x"); break;
        case Op::Yl2xp1: STRATA_HOST_X87("fyl2xp1"); break;
        case Op::Ptan: STRATA_HOST_X87("fptan"); break;
        case Op::Xtract: STRATA_HOST_X87("fxtract"); break;
        case Op::Sincos: STRATA_HOST_X87("fsincos"); break;
        case Op::LoadF32: STRATA_HOST_X87("flds %[imem]"); break;
        case Op::LoadF64: STRATA_HOST_X87("fldl %[imem]"); break;
        case Op::LoadBcd: STRATA_HOST_X87("fbld %[imem]"); break;
        case Op::LoadPi: STRATA_HOST_X87("fldpi"); break;
        case Op::LoadL2e: STRATA_HOST_X87("fldl2e"); break;
        case Op::LoadL2t: STRATA_HOST_X87("fldl2t"); break;
        case Op::LoadLg2: STRATA_HOST_X87("fldlg2"); break;
        case Op::LoadLn2: STRATA_HOST_X87("fldln2"); break;
        case Op::StoreF32: STRATA_HOST_X87("fsts %[omem]"); break;
        case Op::StoreF64: STRATA_HOST_X87("fstl %[omem]"); break;
        case Op::StoreI16: STRATA_HOST_X87("fists %[omem]"); break;
        case Op::StoreI32: STRATA_HOST_X87("fistl %[omem]"); break;
        case Op::StoreI64: STRATA_HOST_X87("fistpll %[omem]"); break;
        case Op::StoreTruncI16: STRATA_HOST_X87("fisttps %[omem]"); break;
        case Op::StoreTruncI32: STRATA_HOST_X87("fisttpl %[omem]"); break;
        case Op::StoreTruncI64: STRATA_HOST_X87("fisttpll %[omem]"); break;
        case Op::StoreBcd: STRATA_HOST_X87("fbstp %[omem]"); break;
    }
    return out;
}

#undef STRATA_HOST_X87

}  // namespace strata::soft::x87host
