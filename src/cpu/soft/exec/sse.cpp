// The SSE family of the soft CPU: MMX, SSE, SSE2, SSE3, SSSE3, SSE4.1 and SSE4.2 (what CPUID
// advertises; POPCNT is the bit family's; MOVNTI, the prefetches and fences data_movement.cpp's),
// bound from the files that implement them:
//   sse_moves.cpp      data movement, MOVD/MOVQ, MOVMSK, PEXTRW/PINSRW, SHUFPS/SHUFPD, MASKMOV
//   sse_float.cpp      floating-point arithmetic, comparisons, rounding, dot products, CVT*
//   simd_integer.cpp   the integer SIMD of MMX and SSE2-SSE4.1 on both register widths, EMMS
//   sse4.cpp           PMOVSX/ZX, PINSR/PEXTR, blends, PTEST, INSERTPS/EXTRACTPS, MPSADBW, CRC32
//   sse_string.cpp     PCMPESTRI/PCMPESTRM/PCMPISTRI/PCMPISTRM
//   sse_state.cpp      FXSAVE/FXRSTOR, LDMXCSR/STMXCSR
// Not advertised and left unbound (#UD): AES-NI, PCLMULQDQ, SHA, 3DNow!, SSE4a; VEX and EVEX
// encodings (AVX) get #UD from the decoder.
//
// Spec: Intel SDM vol. 1 ch. 9-12; vol. 2; vol. 3A §13.1-13.2 (CR4.OSFXSR, OSXMMEXCPT).
#include "cpu/soft/exec/simd.hpp"

namespace strata::soft {

void bind_sse(HandlerTable& table) {
    simd::bind_sse_moves(table);
    simd::bind_sse_float(table);
    simd::bind_simd_integer(table);
    simd::bind_sse4(table);
    simd::bind_sse_string(table);
    simd::bind_sse_state(table);

    // MOVSD and CMPSD also name string instructions (string.cpp): these are their SSE2 forms.
    table.bind(ZYDIS_MNEMONIC_MOVSD, HandlerForm::Vector, &simd::movsd_xmm);
    table.bind(ZYDIS_MNEMONIC_CMPSD, HandlerForm::Vector, &simd::cmpsd_xmm);
}

}  // namespace strata::soft
