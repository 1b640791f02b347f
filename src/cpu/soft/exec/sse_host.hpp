// SSE floating-point arithmetic on the host's own SSE unit, as the x87 runs on the host's x87
// (x87_host.hpp): the soft engine runs on x86-64 hosts only, and their SSE-SSE4.1 units compute
// exactly what the guest's instruction computes. Each operation loads a host MXCSR made of the
// guest's rounding control, DAZ and FTZ with every exception masked and every flag clear, runs
// the same instruction, and returns the flags it raised. Results — NaN propagation, MIN/MAX's
// operand rules, DAZ/FTZ, the integer indefinite of conversions, and the approximations of
// RCPPS/RSQRTPS — are the host's, bit for bit, which the differential tests compare against.
// Unmasked exceptions are the caller's business (sse_float.cpp): the host never traps.
//
// Host requirement: SSE4.1 (ROUNDPS/PD/SS/SD), present on every x86-64 CPU since 2008-2011.
#pragma once

#include <array>
#include <cstdint>

namespace strata::soft::ssehost {

using Xmm = std::array<uint8_t, 16>;

enum class Op : uint8_t {
    // dest = dest op src, element-wise (PS, PD) or on the low element (SS, SD; the rest kept)
    AddPs, AddSs, AddPd, AddSd, SubPs, SubSs, SubPd, SubSd, MulPs, MulSs, MulPd, MulSd,
    DivPs, DivSs, DivPd, DivSd, MinPs, MinSs, MinPd, MinSd, MaxPs, MaxSs, MaxPd, MaxSd,
    // dest = f(src) (scalar forms keep dest's upper elements)
    SqrtPs, SqrtSs, SqrtPd, SqrtSd, RcpPs, RcpSs, RsqrtPs, RsqrtSs,
    // SSE3
    AddsubPs, AddsubPd, HaddPs, HaddPd, HsubPs, HsubPd,
    // conversions between XMM formats (dest = convert(src), scalar forms keep dest's upper part)
    Cvtps2pd, Cvtpd2ps, Cvtss2sd, Cvtsd2ss, Cvtdq2ps, Cvtps2dq, Cvttps2dq, Cvtdq2pd, Cvtpd2dq, Cvttpd2dq,
};

// Packed or scalar, single or double: the element type of a comparison or rounding.
enum class Format : uint8_t { Ps, Ss, Pd, Sd };

// Returns the exception flags (MXCSR bits 0-5) the operation raised; `csr` is the host MXCSR to
// run under (the caller's rounding, DAZ and FTZ, exceptions masked).
uint32_t run(Op op, Xmm& dest, const Xmm& src, uint32_t csr);
// CMPPS/CMPSS/CMPPD/CMPSD with predicate 0-7.
uint32_t compare(Format format, unsigned predicate, Xmm& dest, const Xmm& src, uint32_t csr);
// ROUNDPS/SS/PD/SD by csr's rounding control; `quiet` suppresses the precision exception.
uint32_t round(Format format, bool quiet, Xmm& dest, const Xmm& src, uint32_t csr);

struct CompareFlags {
    bool zf = false, pf = false, cf = false;
};
// COMISS/UCOMISS (double: COMISD/UCOMISD) of the low elements.
uint32_t compare_scalar(bool is_double, bool quiet, const Xmm& a, const Xmm& b, CompareFlags& flags, uint32_t csr);

// CVT(T)SS2SI / CVT(T)SD2SI to a 32- or 64-bit integer.
uint32_t to_integer(bool is_double, bool truncate, bool wide, const Xmm& src, uint64_t& out, uint32_t csr);
// CVTSI2SS / CVTSI2SD from a 32- or 64-bit integer into dest's low element.
uint32_t from_integer(bool is_double, bool wide, Xmm& dest, uint64_t value, uint32_t csr);

}  // namespace strata::soft::ssehost
