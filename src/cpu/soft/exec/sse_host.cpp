// The host-SSE operations of sse_host.hpp: one asm statement each, inside which the host MXCSR is
// the caller's and outside which it is the host's own again.
#include "cpu/soft/exec/sse_host.hpp"

#include <emmintrin.h>

#include <cstring>

namespace strata::soft::ssehost {

namespace {

__m128i to_vector(const Xmm& x) {
    __m128i v;
    std::memcpy(&v, x.data(), 16);
    return v;
}

void from_vector(Xmm& x, __m128i v) { std::memcpy(x.data(), &v, 16); }

// AT&T operand order: INSN's source is %[b], its destination %[a]. The flags are read before the
// host's MXCSR is restored; the asm is volatile so that it is neither dropped nor merged.
#define STRATA_HOST_SSE(INSN, ...)                                                                \
    asm volatile("stmxcsr %[saved]\n\t"                                                           \
                 "ldmxcsr %[csr]\n\t" INSN                                                        \
                 "\n\t"                                                                           \
                 "stmxcsr %[after]\n\t"                                                           \
                 "ldmxcsr %[saved]"                                                               \
                 : [a] "+x"(a), [saved] "=m"(saved), [after] "=m"(after)                          \
                 : [b] "x"(b), [csr] "m"(csr) __VA_ARGS__)

template <unsigned kPredicate>
uint32_t compare_with(Format format, __m128i& a, __m128i b, uint32_t csr) {
    uint32_t saved = 0, after = 0;
    switch (format) {
        case Format::Ps: STRATA_HOST_SSE("cmpps %[p], %[b], %[a]", , [p] "i"(kPredicate)); break;
        case Format::Ss: STRATA_HOST_SSE("cmpss %[p], %[b], %[a]", , [p] "i"(kPredicate)); break;
        case Format::Pd: STRATA_HOST_SSE("cmppd %[p], %[b], %[a]", , [p] "i"(kPredicate)); break;
        case Format::Sd: STRATA_HOST_SSE("cmpsd %[p], %[b], %[a]", , [p] "i"(kPredicate)); break;
    }
    return after & 0x3f;
}

}  // namespace

uint32_t run(Op op, Xmm& dest, const Xmm& src, uint32_t csr) {
    __m128i a = to_vector(dest), b = to_vector(src);
    uint32_t saved = 0, after = 0;
    switch (op) {
        case Op::AddPs: STRATA_HOST_SSE("addps %[b], %[a]"); break;
        case Op::AddSs: STRATA_HOST_SSE("addss %[b], %[a]"); break;
        case Op::AddPd: STRATA_HOST_SSE("addpd %[b], %[a]"); break;
        case Op::AddSd: STRATA_HOST_SSE("addsd %[b], %[a]"); break;
        case Op::SubPs: STRATA_HOST_SSE("subps %[b], %[a]"); break;
        case Op::SubSs: STRATA_HOST_SSE("subss %[b], %[a]"); break;
        case Op::SubPd: STRATA_HOST_SSE("subpd %[b], %[a]"); break;
        case Op::SubSd: STRATA_HOST_SSE("subsd %[b], %[a]"); break;
        case Op::MulPs: STRATA_HOST_SSE("mulps %[b], %[a]"); break;
        case Op::MulSs: STRATA_HOST_SSE("mulss %[b], %[a]"); break;
        case Op::MulPd: STRATA_HOST_SSE("mulpd %[b], %[a]"); break;
        case Op::MulSd: STRATA_HOST_SSE("mulsd %[b], %[a]"); break;
        case Op::DivPs: STRATA_HOST_SSE("divps %[b], %[a]"); break;
        case Op::DivSs: STRATA_HOST_SSE("divss %[b], %[a]"); break;
        case Op::DivPd: STRATA_HOST_SSE("divpd %[b], %[a]"); break;
        case Op::DivSd: STRATA_HOST_SSE("divsd %[b], %[a]"); break;
        case Op::MinPs: STRATA_HOST_SSE("minps %[b], %[a]"); break;
        case Op::MinSs: STRATA_HOST_SSE("minss %[b], %[a]"); break;
        case Op::MinPd: STRATA_HOST_SSE("minpd %[b], %[a]"); break;
        case Op::MinSd: STRATA_HOST_SSE("minsd %[b], %[a]"); break;
        case Op::MaxPs: STRATA_HOST_SSE("maxps %[b], %[a]"); break;
        case Op::MaxSs: STRATA_HOST_SSE("maxss %[b], %[a]"); break;
        case Op::MaxPd: STRATA_HOST_SSE("maxpd %[b], %[a]"); break;
        case Op::MaxSd: STRATA_HOST_SSE("maxsd %[b], %[a]"); break;
        case Op::SqrtPs: STRATA_HOST_SSE("sqrtps %[b], %[a]"); break;
        case Op::SqrtSs: STRATA_HOST_SSE("sqrtss %[b], %[a]"); break;
        case Op::SqrtPd: STRATA_HOST_SSE("sqrtpd %[b], %[a]"); break;
        case Op::SqrtSd: STRATA_HOST_SSE("sqrtsd %[b], %[a]"); break;
        case Op::RcpPs: STRATA_HOST_SSE("rcpps %[b], %[a]"); break;
        case Op::RcpSs: STRATA_HOST_SSE("rcpss %[b], %[a]"); break;
        case Op::RsqrtPs: STRATA_HOST_SSE("rsqrtps %[b], %[a]"); break;
        case Op::RsqrtSs: STRATA_HOST_SSE("rsqrtss %[b], %[a]"); break;
        case Op::AddsubPs: STRATA_HOST_SSE("addsubps %[b], %[a]"); break;
        case Op::AddsubPd: STRATA_HOST_SSE("addsubpd %[b], %[a]"); break;
        case Op::HaddPs: STRATA_HOST_SSE("haddps %[b], %[a]"); break;
        case Op::HaddPd: STRATA_HOST_SSE("haddpd %[b], %[a]"); break;
        case Op::HsubPs: STRATA_HOST_SSE("hsubps %[b], %[a]"); break;
        case Op::HsubPd: STRATA_HOST_SSE("hsubpd %[b], %[a]"); break;
        case Op::Cvtps2pd: STRATA_HOST_SSE("cvtps2pd %[b], %[a]"); break;
        case Op::Cvtpd2ps: STRATA_HOST_SSE("cvtpd2ps %[b], %[a]"); break;
        case Op::Cvtss2sd: STRATA_HOST_SSE("cvtss2sd %[b], %[a]"); break;
        case Op::Cvtsd2ss: STRATA_HOST_SSE("cvtsd2ss %[b], %[a]"); break;
        case Op::Cvtdq2ps: STRATA_HOST_SSE("cvtdq2ps %[b], %[a]"); break;
        case Op::Cvtps2dq: STRATA_HOST_SSE("cvtps2dq %[b], %[a]"); break;
        case Op::Cvttps2dq: STRATA_HOST_SSE("cvttps2dq %[b], %[a]"); break;
        case Op::Cvtdq2pd: STRATA_HOST_SSE("cvtdq2pd %[b], %[a]"); break;
        case Op::Cvtpd2dq: STRATA_HOST_SSE("cvtpd2dq %[b], %[a]"); break;
        case Op::Cvttpd2dq: STRATA_HOST_SSE("cvttpd2dq %[b], %[a]"); break;
    }
    from_vector(dest, a);
    return after & 0x3f;
}

uint32_t compare(Format format, unsigned predicate, Xmm& dest, const Xmm& src, uint32_t csr) {
    __m128i a = to_vector(dest), b = to_vector(src);
    uint32_t flags = 0;
    switch (predicate & 7) {
        case 0: flags = compare_with<0>(format, a, b, csr); break;
        case 1: flags = compare_with<1>(format, a, b, csr); break;
        case 2: flags = compare_with<2>(format, a, b, csr); break;
        case 3: flags = compare_with<3>(format, a, b, csr); break;
        case 4: flags = compare_with<4>(format, a, b, csr); break;
        case 5: flags = compare_with<5>(format, a, b, csr); break;
        case 6: flags = compare_with<6>(format, a, b, csr); break;
        default: flags = compare_with<7>(format, a, b, csr); break;
    }
    from_vector(dest, a);
    return flags;
}

uint32_t round(Format format, bool quiet, Xmm& dest, const Xmm& src, uint32_t csr) {
    __m128i a = to_vector(dest), b = to_vector(src);
    uint32_t saved = 0, after = 0;
    // Immediate 4: round by MXCSR.RC (the caller put the rounding it wants there); 12: also no #P.
    switch (format) {
        case Format::Ps:
            if (quiet) STRATA_HOST_SSE("roundps $12, %[b], %[a]");
            else STRATA_HOST_SSE("roundps $4, %[b], %[a]");
            break;
        case Format::Ss:
            if (quiet) STRATA_HOST_SSE("roundss $12, %[b], %[a]");
            else STRATA_HOST_SSE("roundss $4, %[b], %[a]");
            break;
        case Format::Pd:
            if (quiet) STRATA_HOST_SSE("roundpd $12, %[b], %[a]");
            else STRATA_HOST_SSE("roundpd $4, %[b], %[a]");
            break;
        case Format::Sd:
            if (quiet) STRATA_HOST_SSE("roundsd $12, %[b], %[a]");
            else STRATA_HOST_SSE("roundsd $4, %[b], %[a]");
            break;
    }
    from_vector(dest, a);
    return after & 0x3f;
}

uint32_t compare_scalar(bool is_double, bool quiet, const Xmm& x, const Xmm& y, CompareFlags& flags, uint32_t csr) {
    __m128i a = to_vector(x), b = to_vector(y);
    uint32_t saved = 0, after = 0;
    bool zf = false, pf = false, cf = false;
#define STRATA_HOST_COMI(INSN)                                                                     \
    asm volatile("stmxcsr %[saved]\n\t"                                                           \
                 "ldmxcsr %[csr]\n\t" INSN " %[b], %[a]\n\t"                                      \
                 "stmxcsr %[after]\n\t"                                                           \
                 "ldmxcsr %[saved]"                                                               \
                 : "=@ccz"(zf), "=@ccp"(pf), "=@ccc"(cf), [saved] "=m"(saved), [after] "=m"(after) \
                 : [a] "x"(a), [b] "x"(b), [csr] "m"(csr))
    if (is_double) {
        if (quiet) STRATA_HOST_COMI("ucomisd");
        else STRATA_HOST_COMI("comisd");
    } else {
        if (quiet) STRATA_HOST_COMI("ucomiss");
        else STRATA_HOST_COMI("comiss");
    }
#undef STRATA_HOST_COMI
    flags = {zf, pf, cf};
    return after & 0x3f;
}

uint32_t to_integer(bool is_double, bool truncate, bool wide, const Xmm& src, uint64_t& out, uint32_t csr) {
    __m128i b = to_vector(src);
    uint64_t r = 0;
    uint32_t saved = 0, after = 0;
#define STRATA_HOST_CVT(INSN)                                                                      \
    asm volatile("stmxcsr %[saved]\n\t"                                                           \
                 "ldmxcsr %[csr]\n\t" INSN "\n\t"                                                 \
                 "stmxcsr %[after]\n\t"                                                           \
                 "ldmxcsr %[saved]"                                                               \
                 : [r] "=r"(r), [saved] "=m"(saved), [after] "=m"(after)                          \
                 : [b] "x"(b), [csr] "m"(csr))
    if (is_double) {
        if (truncate) {
            if (wide) STRATA_HOST_CVT("cvttsd2si %[b], %q[r]");
            else STRATA_HOST_CVT("cvttsd2si %[b], %k[r]");
        } else {
            if (wide) STRATA_HOST_CVT("cvtsd2si %[b], %q[r]");
            else STRATA_HOST_CVT("cvtsd2si %[b], %k[r]");
        }
    } else {
        if (truncate) {
            if (wide) STRATA_HOST_CVT("cvttss2si %[b], %q[r]");
            else STRATA_HOST_CVT("cvttss2si %[b], %k[r]");
        } else {
            if (wide) STRATA_HOST_CVT("cvtss2si %[b], %q[r]");
            else STRATA_HOST_CVT("cvtss2si %[b], %k[r]");
        }
    }
#undef STRATA_HOST_CVT
    out = wide ? r : (r & 0xffff'ffffu);
    return after & 0x3f;
}

uint32_t from_integer(bool is_double, bool wide, Xmm& dest, uint64_t value, uint32_t csr) {
    __m128i a = to_vector(dest);
    uint32_t saved = 0, after = 0;
#define STRATA_HOST_CVT(INSN)                                                                      \
    asm volatile("stmxcsr %[saved]\n\t"                                                           \
                 "ldmxcsr %[csr]\n\t" INSN "\n\t"                                                 \
                 "stmxcsr %[after]\n\t"                                                           \
                 "ldmxcsr %[saved]"                                                               \
                 : [a] "+x"(a), [saved] "=m"(saved), [after] "=m"(after)                          \
                 : [g] "r"(value), [csr] "m"(csr))
    if (is_double) {
        if (wide) STRATA_HOST_CVT("cvtsi2sdq %q[g], %[a]");
        else STRATA_HOST_CVT("cvtsi2sdl %k[g], %[a]");
    } else {
        if (wide) STRATA_HOST_CVT("cvtsi2ssq %q[g], %[a]");
        else STRATA_HOST_CVT("cvtsi2ssl %k[g], %[a]");
    }
#undef STRATA_HOST_CVT
    from_vector(dest, a);
    return after & 0x3f;
}

#undef STRATA_HOST_SSE

}  // namespace strata::soft::ssehost
