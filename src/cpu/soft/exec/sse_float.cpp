// SSE/SSE2/SSE3/SSE4.1 floating point: ADD/SUB/MUL/DIV/MIN/MAX/SQRT (PS, SS, PD, SD), RCP and
// RSQRT (PS, SS), CMPPS/CMPSS/CMPPD/CMPSD (predicates 0-7), COMISS/UCOMISS/COMISD/UCOMISD (EFLAGS),
// ADDSUBPS/PD, HADDPS/PD, HSUBPS/PD, ROUNDPS/PD/SS/SD, DPPS/DPPD, and the conversions CVT*
// between XMM formats, general registers and MMX registers (the truncating forms included;
// an unrepresentable result is the integer indefinite 80000000H / 8000000000000000H).
//
// The arithmetic itself runs on the host's SSE unit under the guest's MXCSR (sse_host.hpp); this
// file reads and writes the operands and applies the exception rules (simd.hpp sse_compute).
// Spec: Intel SDM vol. 1 §10.4, §11.4, §11.5, §12.3, §12.10; vol. 2 (each instruction).
#include "cpu/soft/exec/simd.hpp"

namespace strata::soft::simd {

namespace {

using ssehost::Format;
using ssehost::Op;

// dest = op(dest, src), with dest's upper elements kept by the scalar forms (the host
// instruction keeps them too).
template <Op kOp>
void arith(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    Xmm b = read_xmm_source(cpu, insn, 1);
    unsigned d = insn.op[0].reg;
    Xmm a = cpu.xmm[d];
    cpu.xmm[d] = sse_compute<Xmm>(cpu, [&](uint32_t csr, Xmm& r) {
        r = a;
        return ssehost::run(kOp, r, b, csr);
    });
}

// CMPccPS/SS/PD/SD: all ones or all zeros per element; the legacy encodings know predicates 0-7.
template <Format kFormat>
void compare(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    Xmm b = read_xmm_source(cpu, insn, 1);
    unsigned d = insn.op[0].reg;
    Xmm a = cpu.xmm[d];
    unsigned predicate = static_cast<unsigned>(insn.imm & 7);
    cpu.xmm[d] = sse_compute<Xmm>(cpu, [&](uint32_t csr, Xmm& r) {
        r = a;
        return ssehost::compare(kFormat, predicate, r, b, csr);
    });
}

// COMISS/UCOMISS/COMISD/UCOMISD: ZF, PF, CF as unordered (111), less (001), equal (100) or
// greater (000); OF, SF and AF cleared.
template <bool kDouble, bool kQuiet>
void compare_eflags(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    Xmm b = read_xmm_source(cpu, insn, 1);
    Xmm a = cpu.xmm[insn.op[0].reg];
    auto f = sse_compute<ssehost::CompareFlags>(cpu, [&](uint32_t csr, ssehost::CompareFlags& r) {
        return ssehost::compare_scalar(kDouble, kQuiet, a, b, r, csr);
    });
    cpu.flags.materialize();
    cpu.flags.put(rflags::OF | rflags::SF | rflags::AF, false);
    cpu.flags.put(rflags::ZF, f.zf);
    cpu.flags.put(rflags::PF, f.pf);
    cpu.flags.put(rflags::CF, f.cf);
}

// ROUNDPS/PD/SS/SD imm8: bits 1:0 the rounding, bit 2 "use MXCSR.RC instead", bit 3 no #P.
template <Format kFormat>
void round(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    Xmm b = read_xmm_source(cpu, insn, 1);
    unsigned d = insn.op[0].reg;
    Xmm a = cpu.xmm[d];
    unsigned imm = static_cast<unsigned>(insn.imm);
    bool quiet = (imm & 8) != 0;
    cpu.xmm[d] = sse_compute<Xmm>(cpu, [&](uint32_t csr, Xmm& r) {
        if (!(imm & 4)) csr = (csr & ~fpu::mxcsr::RC) | ((imm & 3u) << 13);
        r = a;
        return ssehost::round(kFormat, quiet, r, b, csr);
    });
}

// One scalar operation of a dot product: the low element of x op y, its flags added to `flags`.
template <class T>
T scalar_op(Op op, T x, T y, uint32_t csr, uint32_t& flags) {
    Xmm a{}, b{};
    set_lane<T>(a, 0, x);
    set_lane<T>(b, 0, y);
    flags |= ssehost::run(op, a, b, csr);
    return lane<T>(a, 0);
}

// DPPS imm8 (vol. 2 DPPS "DP_primitive"): the products selected by imm8[7:4] (the others +0.0),
// summed as (p0 + p1) + (p2 + p3), written to the elements imm8[3:0] selects (the others +0.0).
// Each multiply and add rounds and flags on its own, so the host's scalar MULSS/ADDSS give it.
void dpps(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    Xmm b = read_xmm_source(cpu, insn, 1);
    unsigned d = insn.op[0].reg;
    Xmm a = cpu.xmm[d];
    unsigned imm = static_cast<unsigned>(insn.imm);
    cpu.xmm[d] = sse_compute<Xmm>(cpu, [&](uint32_t csr, Xmm& r) {
        uint32_t flags = 0;
        float p[4];
        for (unsigned i = 0; i < 4; ++i)
            p[i] = (imm >> (4 + i)) & 1 ? scalar_op<float>(Op::MulSs, lane<float>(a, i), lane<float>(b, i), csr, flags) : 0.0f;
        float sum = scalar_op<float>(Op::AddSs, scalar_op<float>(Op::AddSs, p[0], p[1], csr, flags),
                                     scalar_op<float>(Op::AddSs, p[2], p[3], csr, flags), csr, flags);
        r = {};
        for (unsigned i = 0; i < 4; ++i)
            if ((imm >> i) & 1) set_lane<float>(r, i, sum);
        return flags;
    });
}

void dppd(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    Xmm b = read_xmm_source(cpu, insn, 1);
    unsigned d = insn.op[0].reg;
    Xmm a = cpu.xmm[d];
    unsigned imm = static_cast<unsigned>(insn.imm);
    cpu.xmm[d] = sse_compute<Xmm>(cpu, [&](uint32_t csr, Xmm& r) {
        uint32_t flags = 0;
        double p[2];
        for (unsigned i = 0; i < 2; ++i)
            p[i] = (imm >> (4 + i)) & 1 ? scalar_op<double>(Op::MulSd, lane<double>(a, i), lane<double>(b, i), csr, flags) : 0.0;
        double sum = scalar_op<double>(Op::AddSd, p[0], p[1], csr, flags);
        r = {};
        for (unsigned i = 0; i < 2; ++i)
            if ((imm >> i) & 1) set_lane<double>(r, i, sum);
        return flags;
    });
}

// CVTSI2SS/CVTSI2SD xmm, r/m32 or r/m64.
template <bool kDouble>
void from_integer(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    uint64_t value = read_operand(cpu, insn, 1);
    bool wide = insn.op[1].size == 8;
    unsigned d = insn.op[0].reg;
    Xmm a = cpu.xmm[d];
    cpu.xmm[d] = sse_compute<Xmm>(cpu, [&](uint32_t csr, Xmm& r) {
        r = a;
        return ssehost::from_integer(kDouble, wide, r, value, csr);
    });
}

// CVT(T)SS2SI / CVT(T)SD2SI r32/r64, xmm/m32/m64.
template <bool kDouble, bool kTruncate>
void to_integer(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    Xmm b = read_xmm_source(cpu, insn, 1);
    bool wide = insn.op[0].size == 8;
    uint64_t value = sse_compute<uint64_t>(cpu, [&](uint32_t csr, uint64_t& r) {
        return ssehost::to_integer(kDouble, kTruncate, wide, b, r, csr);
    });
    write_operand(cpu, insn, 0, value);
}

// The conversions with an MMX side: CVTPI2PS, CVTPI2PD (xmm, mm/m64), CVT(T)PS2PI, CVT(T)PD2PI
// (mm, xmm/m64 or m128). The packed-integer instruction of the XMM world does the work on the
// two elements (the other two are zero and convert exactly, raising nothing). Each puts the x87 in
// MMX mode (TOP = 0, tags valid) after a pending x87 exception check — except CVTPI2PD from memory.
template <Op kOp, bool kToMmx>
void mmx_convert(Cpu& cpu, const Insn& insn) {
    bool mmx_register = insn.op[0].kind == OpKind::Mmx || insn.op[1].kind == OpKind::Mmx;
    bool transitions = mmx_register || kOp == Op::Cvtdq2ps;
    fpu::sse_prologue(cpu);
    if (transitions) fpu::x87_check_pending(cpu);
    Xmm src = kToMmx ? read_xmm_source(cpu, insn, 1) : xmm_from(lane<uint64_t>(read_mm_source(cpu, insn, 1), 0));
    if (kToMmx && (kOp == Op::Cvtps2dq || kOp == Op::Cvttps2dq)) src = xmm_from(lane<uint64_t>(src, 0));
    Xmm result = sse_compute<Xmm>(cpu, [&](uint32_t csr, Xmm& r) {
        r = {};
        return ssehost::run(kOp, r, src, csr);
    });
    if (kToMmx) {
        Mm out;
        std::memcpy(out.data(), result.data(), 8);
        fpu::write_mmx(cpu, insn.op[0].reg, out);
    } else if (kOp == Op::Cvtdq2ps) {
        std::memcpy(cpu.xmm[insn.op[0].reg].data(), result.data(), 8);  // high quadword kept
    } else {
        cpu.xmm[insn.op[0].reg] = result;
    }
    if (transitions) fpu::mmx_transition(cpu);
}

}  // namespace

void bind_sse_float(HandlerTable& table) {
    table.bind(ZYDIS_MNEMONIC_ADDPS, &arith<Op::AddPs>);
    table.bind(ZYDIS_MNEMONIC_ADDSS, &arith<Op::AddSs>);
    table.bind(ZYDIS_MNEMONIC_ADDPD, &arith<Op::AddPd>);
    table.bind(ZYDIS_MNEMONIC_ADDSD, &arith<Op::AddSd>);
    table.bind(ZYDIS_MNEMONIC_SUBPS, &arith<Op::SubPs>);
    table.bind(ZYDIS_MNEMONIC_SUBSS, &arith<Op::SubSs>);
    table.bind(ZYDIS_MNEMONIC_SUBPD, &arith<Op::SubPd>);
    table.bind(ZYDIS_MNEMONIC_SUBSD, &arith<Op::SubSd>);
    table.bind(ZYDIS_MNEMONIC_MULPS, &arith<Op::MulPs>);
    table.bind(ZYDIS_MNEMONIC_MULSS, &arith<Op::MulSs>);
    table.bind(ZYDIS_MNEMONIC_MULPD, &arith<Op::MulPd>);
    table.bind(ZYDIS_MNEMONIC_MULSD, &arith<Op::MulSd>);
    table.bind(ZYDIS_MNEMONIC_DIVPS, &arith<Op::DivPs>);
    table.bind(ZYDIS_MNEMONIC_DIVSS, &arith<Op::DivSs>);
    table.bind(ZYDIS_MNEMONIC_DIVPD, &arith<Op::DivPd>);
    table.bind(ZYDIS_MNEMONIC_DIVSD, &arith<Op::DivSd>);
    table.bind(ZYDIS_MNEMONIC_MINPS, &arith<Op::MinPs>);
    table.bind(ZYDIS_MNEMONIC_MINSS, &arith<Op::MinSs>);
    table.bind(ZYDIS_MNEMONIC_MINPD, &arith<Op::MinPd>);
    table.bind(ZYDIS_MNEMONIC_MINSD, &arith<Op::MinSd>);
    table.bind(ZYDIS_MNEMONIC_MAXPS, &arith<Op::MaxPs>);
    table.bind(ZYDIS_MNEMONIC_MAXSS, &arith<Op::MaxSs>);
    table.bind(ZYDIS_MNEMONIC_MAXPD, &arith<Op::MaxPd>);
    table.bind(ZYDIS_MNEMONIC_MAXSD, &arith<Op::MaxSd>);
    table.bind(ZYDIS_MNEMONIC_SQRTPS, &arith<Op::SqrtPs>);
    table.bind(ZYDIS_MNEMONIC_SQRTSS, &arith<Op::SqrtSs>);
    table.bind(ZYDIS_MNEMONIC_SQRTPD, &arith<Op::SqrtPd>);
    table.bind(ZYDIS_MNEMONIC_SQRTSD, &arith<Op::SqrtSd>);
    table.bind(ZYDIS_MNEMONIC_RCPPS, &arith<Op::RcpPs>);
    table.bind(ZYDIS_MNEMONIC_RCPSS, &arith<Op::RcpSs>);
    table.bind(ZYDIS_MNEMONIC_RSQRTPS, &arith<Op::RsqrtPs>);
    table.bind(ZYDIS_MNEMONIC_RSQRTSS, &arith<Op::RsqrtSs>);
    table.bind(ZYDIS_MNEMONIC_ADDSUBPS, &arith<Op::AddsubPs>);
    table.bind(ZYDIS_MNEMONIC_ADDSUBPD, &arith<Op::AddsubPd>);
    table.bind(ZYDIS_MNEMONIC_HADDPS, &arith<Op::HaddPs>);
    table.bind(ZYDIS_MNEMONIC_HADDPD, &arith<Op::HaddPd>);
    table.bind(ZYDIS_MNEMONIC_HSUBPS, &arith<Op::HsubPs>);
    table.bind(ZYDIS_MNEMONIC_HSUBPD, &arith<Op::HsubPd>);

    table.bind(ZYDIS_MNEMONIC_CVTPS2PD, &arith<Op::Cvtps2pd>);
    table.bind(ZYDIS_MNEMONIC_CVTPD2PS, &arith<Op::Cvtpd2ps>);
    table.bind(ZYDIS_MNEMONIC_CVTSS2SD, &arith<Op::Cvtss2sd>);
    table.bind(ZYDIS_MNEMONIC_CVTSD2SS, &arith<Op::Cvtsd2ss>);
    table.bind(ZYDIS_MNEMONIC_CVTDQ2PS, &arith<Op::Cvtdq2ps>);
    table.bind(ZYDIS_MNEMONIC_CVTPS2DQ, &arith<Op::Cvtps2dq>);
    table.bind(ZYDIS_MNEMONIC_CVTTPS2DQ, &arith<Op::Cvttps2dq>);
    table.bind(ZYDIS_MNEMONIC_CVTDQ2PD, &arith<Op::Cvtdq2pd>);
    table.bind(ZYDIS_MNEMONIC_CVTPD2DQ, &arith<Op::Cvtpd2dq>);
    table.bind(ZYDIS_MNEMONIC_CVTTPD2DQ, &arith<Op::Cvttpd2dq>);
    table.bind(ZYDIS_MNEMONIC_CVTSI2SS, &from_integer<false>);
    table.bind(ZYDIS_MNEMONIC_CVTSI2SD, &from_integer<true>);
    table.bind(ZYDIS_MNEMONIC_CVTSS2SI, &to_integer<false, false>);
    table.bind(ZYDIS_MNEMONIC_CVTTSS2SI, &to_integer<false, true>);
    table.bind(ZYDIS_MNEMONIC_CVTSD2SI, &to_integer<true, false>);
    table.bind(ZYDIS_MNEMONIC_CVTTSD2SI, &to_integer<true, true>);
    table.bind(ZYDIS_MNEMONIC_CVTPI2PS, &mmx_convert<Op::Cvtdq2ps, false>);
    table.bind(ZYDIS_MNEMONIC_CVTPI2PD, &mmx_convert<Op::Cvtdq2pd, false>);
    table.bind(ZYDIS_MNEMONIC_CVTPS2PI, &mmx_convert<Op::Cvtps2dq, true>);
    table.bind(ZYDIS_MNEMONIC_CVTTPS2PI, &mmx_convert<Op::Cvttps2dq, true>);
    table.bind(ZYDIS_MNEMONIC_CVTPD2PI, &mmx_convert<Op::Cvtpd2dq, true>);
    table.bind(ZYDIS_MNEMONIC_CVTTPD2PI, &mmx_convert<Op::Cvttpd2dq, true>);

    table.bind(ZYDIS_MNEMONIC_CMPPS, &compare<Format::Ps>);
    table.bind(ZYDIS_MNEMONIC_CMPSS, &compare<Format::Ss>);
    table.bind(ZYDIS_MNEMONIC_CMPPD, &compare<Format::Pd>);
    table.bind(ZYDIS_MNEMONIC_COMISS, &compare_eflags<false, false>);
    table.bind(ZYDIS_MNEMONIC_UCOMISS, &compare_eflags<false, true>);
    table.bind(ZYDIS_MNEMONIC_COMISD, &compare_eflags<true, false>);
    table.bind(ZYDIS_MNEMONIC_UCOMISD, &compare_eflags<true, true>);
    table.bind(ZYDIS_MNEMONIC_ROUNDPS, &round<Format::Ps>);
    table.bind(ZYDIS_MNEMONIC_ROUNDSS, &round<Format::Ss>);
    table.bind(ZYDIS_MNEMONIC_ROUNDPD, &round<Format::Pd>);
    table.bind(ZYDIS_MNEMONIC_ROUNDSD, &round<Format::Sd>);
    table.bind(ZYDIS_MNEMONIC_DPPS, &dpps);
    table.bind(ZYDIS_MNEMONIC_DPPD, &dppd);
}

// CMPSD's SSE2 form (its mnemonic is also the string instruction's).
void cmpsd_xmm(Cpu& cpu, const Insn& insn) { compare<Format::Sd>(cpu, insn); }

}  // namespace strata::soft::simd
