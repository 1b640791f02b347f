// Differential cases of the x87, MMX and SSE families (src/cpu/soft/exec/x87*.cpp, sse*.cpp,
// simd_integer.cpp): memory operands, alignment and page faults, #XM and #MF delivery, FXSAVE /
// FNSAVE / FNSTENV images through memory, and MMX state. (Register forms are swept over many
// values against the host in tests/cpu/soft/sse_native_test.cpp and fpu_test.cpp; these cases
// check the paths through guest memory and exception delivery the native sweeps cannot.)
//
// x87 state outlives a case in the harness's VM, so each x87 case starts with kFresh: every
// register written, then FNINIT — empty registers keep contents, and FNSAVE stores them.
//
// Where this host (AMD EPYC under PVM, the kvm reference) differs from the SDM, the cases leave
// it out; tests/cpu/soft/fpu_test.cpp checks the SDM's behaviour directly:
// - FCS/FDS read as the host's selectors, and MXCSR_MASK is the host's (0x2ffff: AMD's
//   misaligned-SSE bit); FXSAVE stores FOP, FIP and FDP as zeros while no x87 exception is
//   pending (AMD's rule; Intel, which the soft CPU's CPUID names, stores them). Cases clear those
//   fields before they are compared.
// - A #GP that SSE instructions raise natively at CPL3 reaches the guest as #UD for some of them
//   (PADDB m128 misaligned, LDMXCSR with reserved bits) and FXSAVE to a misaligned operand
//   completes: PVM's emulator seems to see those faults first.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cstring>

#include "cpu/differential/harness.hpp"

namespace strata::differential {
namespace {

constexpr const char* kFresh = "fninit; fldz; fld1; fldz; fld1; fldz; fld1; fldz; fld1; fninit; ";

// Clears an FXSAVE image's FOP, FIP, FCS, FDP and FDS (bytes 6-23) and MXCSR_MASK (28-31) at
// DATA + offset.
std::string clear_host_fields(unsigned offset) {
    return fmt::format("; mov word ptr [DATA + {0}], 0; mov qword ptr [DATA + {1}], 0; mov qword ptr [DATA + {2}], 0; "
                       "mov dword ptr [DATA + {3}], 0",
                       offset + 6, offset + 8, offset + 16, offset + 28);
}

// Clears, unless the reference is AMD's, the FOP and FDP of an FNSAVE/FNSTENV image (32-bit
// layout) at DATA + offset: Intel's processors store them only for an unmasked exception
// (FOP compatibility mode off, CPUID.(EAX=7):EBX[6] FDP_EXCPTN_ONLY), AMD's and the soft engine
// for every x87 instruction.
std::string clear_vendor_fields_of_fnsave(unsigned offset) {
    if (host_is_amd()) return "";
    return fmt::format("; mov word ptr [DATA + {}], 0; mov dword ptr [DATA + {}], 0", offset + 18, offset + 20);
}

std::vector<uint8_t> bytes_of(std::initializer_list<double> values) {
    std::vector<uint8_t> out;
    for (double v : values) {
        uint64_t bits;
        std::memcpy(&bits, &v, 8);
        for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(bits >> (8 * i)));
    }
    return out;
}

std::vector<Case> sse_memory_cases() {
    std::vector<uint8_t> counting(96);
    for (size_t i = 0; i < counting.size(); ++i) counting[i] = static_cast<uint8_t>(i * 13 + 7);
    Xmm pattern{0x0f0e0d0c0b0a0908, 0x8001020304050607};
    return {
        {.name = "movaps aligned load and store", .code = "movaps xmm0, [DATA + 16]; movaps [DATA + 48], xmm0", .data = counting},
        {.name = "movaps misaligned: #GP(0)", .code = "movaps xmm0, [DATA + 8]", .data = counting},
        {.name = "movaps misaligned store: #GP(0)", .code = "movaps [DATA + 4], xmm1", .xmm = {{1, pattern}}},
        {.name = "movups and movdqu and lddqu misaligned", .code = "movups xmm0, [DATA + 3]; movdqu xmm1, [DATA + 5]; "
                                                                  "lddqu xmm2, [DATA + 7]; movdqu [DATA + 33], xmm0",
         .data = counting},
        {.name = "scalar loads zero the rest, stores write the element",
         .code = "movss xmm0, [DATA + 4]; movsd xmm1, [DATA + 8]; movss [DATA + 64], xmm2; movsd [DATA + 72], xmm2",
         .xmm = {{0, pattern}, {1, pattern}, {2, pattern}}, .data = counting},
        {.name = "movlps, movhps, movlpd, movhpd", .code = "movlps xmm0, [DATA]; movhps xmm1, [DATA + 8]; movlpd [DATA + 64], xmm2; "
                                                            "movhpd [DATA + 72], xmm2",
         .xmm = {{0, pattern}, {1, pattern}, {2, pattern}}, .data = counting},
        {.name = "movd and movq through memory", .code = "movd xmm0, [DATA + 4]; movq xmm1, [DATA + 8]; movd [DATA + 64], xmm2; "
                                                          "movq [DATA + 72], xmm2",
         .xmm = {{0, pattern}, {1, pattern}, {2, pattern}}, .data = counting},
        {.name = "scalar arithmetic from memory needs no alignment",
         .code = "addss xmm0, [DATA + 4]; mulsd xmm1, [DATA + 9]; cvtps2pd xmm2, [DATA + 3]; cvtsi2sd xmm3, qword ptr [DATA + 1]; "
                 "cvttsd2si rax, qword ptr [DATA + 40]",
         .data = bytes_of({1.5, -2.25, 3.0, 1e10, 7.75, 0.5})},
        {.name = "packed arithmetic from aligned memory", .code = "addps xmm0, [DATA]; mulpd xmm1, [DATA + 16]; pmaddwd xmm2, [DATA + 32]",
         .xmm = {{0, pattern}, {1, pattern}, {2, pattern}}, .data = bytes_of({1.5, -2.25, 3.0, 1e10, 7.75, 0.5})},
        {.name = "pextrw, pinsrb, pextrd, pinsrq through memory",
         .code = "pextrw [DATA + 64], xmm1, 3; pinsrb xmm0, byte ptr [DATA + 1], 5; pextrd [DATA + 70], xmm1, 2; "
                 "pinsrq xmm2, qword ptr [DATA + 3], 1; extractps [DATA + 80], xmm1, 1",
         .xmm = {{1, pattern}}, .data = counting},
        {.name = "pmovzx and pmovsx from memory", .code = "pmovzxbw xmm0, [DATA + 3]; pmovsxwd xmm1, [DATA + 5]; pmovsxbq xmm2, [DATA + 7]",
         .data = counting},
        {.name = "pcmpistri with an unaligned m128", .code = "pcmpistri xmm1, [DATA + 3], 0x0c", .xmm = {{1, {0x0000000000706f6e, 0}}},
         .data = [] {
             std::vector<uint8_t> d(64, 'x');
             std::memcpy(d.data() + 10, "nop", 3);
             d[40] = 0;
             return d;
         }()},
        {.name = "pcmpestrm from memory", .code = "mov eax, 3; mov edx, 12; pcmpestrm xmm1, [DATA + 16], 0x44",
         .xmm = {{1, {0x00000000007a6174, 0}}}, .data = counting},
        {.name = "movntdq, movntps, movntdqa", .code = "movntdq [DATA + 64], xmm1; movntps [DATA + 80], xmm1; movntdqa xmm2, [DATA]",
         .xmm = {{1, pattern}}, .data = counting},
        {.name = "maskmovdqu stores the selected bytes at rdi", .code = "lea rdi, [DATA + 3]; maskmovdqu xmm1, xmm2",
         .xmm = {{1, pattern}, {2, {0x80ff007f80000080, 0x0000ff0080818283}}}, .data = counting},
        {.name = "movups store crossing into an unmapped page: #PF, nothing written",
         .code = "movups [UNMAPPED - 8], xmm1", .xmm = {{1, pattern}}},
        {.name = "movaps store to a read-only page: #PF", .code = "movaps [READONLY], xmm1", .xmm = {{1, pattern}}},
        {.name = "ldmxcsr and stmxcsr", .code = "ldmxcsr [DATA]; stmxcsr [DATA + 8]; addss xmm0, xmm1",
         .xmm = {{0, {0x3f800000, 0}}, {1, {0x3eaaaaab, 0}}}, .data = qwords({0x7f80})},
        {.name = "unmasked divide by zero: #XM, destination kept, ZE set",
         .code = "ldmxcsr [DATA]; divss xmm0, xmm1", .xmm = {{0, {0x3f800000, 0}}}, .data = qwords({0x1d80})},
        {.name = "unmasked invalid in one element of a packed op: #XM",
         .code = "ldmxcsr [DATA]; sqrtps xmm0, xmm1", .xmm = {{1, {0xbf80000040800000, 0x3f80000041100000}}},
         .data = qwords({0x1f00})},
        {.name = "unmasked precision on a conversion: #XM", .code = "ldmxcsr [DATA]; cvtsd2si eax, xmm1",
         .xmm = {{1, {0x3ff8000000000000, 0}}}, .data = qwords({0x0f80})},
        {.name = "unmasked invalid with a masked precision: only IE matters",
         .code = "ldmxcsr [DATA]; cvttss2si eax, xmm1", .xmm = {{1, {0x7f800000, 0}}}, .data = qwords({0x1f00})},
    };
}

std::vector<Case> state_cases() {
    std::string fresh = kFresh;
    return {
        {.name = "fxsave after x87 and SSE work",
         .code = fresh + "fld1; fldpi; fldz; fld qword ptr [DATA + 512]; fxsave [DATA]" + clear_host_fields(0),
         .xmm = {{3, {1, 2}}, {15, {3, 4}}}, .data = [] {
             std::vector<uint8_t> d(520, 0xcc);
             for (int i = 0; i < 8; ++i) d[512 + i] = 0;
             d[519] = 0x40;
             return d;
         }()},
        {.name = "fxsave64", .code = fresh + "fld1; fxsave64 [DATA]" + clear_host_fields(0), .data = std::vector<uint8_t>(512, 0xcc)},
        {.name = "fxrstor round trip", .code = fresh + "fld1; fldpi; fxsave [DATA]; fninit; ldmxcsr [DATA + 1024]; fxrstor [DATA]; "
                                                    "fld1; fnsave [DATA + 512]; mov word ptr [DATA + 528], 0; mov word ptr [DATA + 536], 0" +
                                            clear_vendor_fields_of_fnsave(512) + clear_host_fields(0),
         .data = [] {
             std::vector<uint8_t> d(1032, 0);
             d[1024] = 0x80;
             d[1025] = 0x3f;
             return d;
         }()},
        {.name = "fxrstor with a reserved MXCSR bit: #GP(0)", .code = "fxsave [DATA]; mov dword ptr [DATA + 24], 0x10000; mov dword ptr [DATA + 28], 0; fxrstor [DATA]"},
        {.name = "fnsave and fnstenv images", .code = fresh + "fld1; fldl2t; fld dword ptr [DATA + 200]; fnstenv [DATA]; "
                                                             "fnsave [DATA + 32]; mov word ptr [DATA + 16], 0; mov word ptr [DATA + 24], 0; "
                                                             "mov word ptr [DATA + 48], 0; mov word ptr [DATA + 56], 0" +
                                                             clear_vendor_fields_of_fnsave(0) + clear_vendor_fields_of_fnsave(32),
         .data = [] {
             std::vector<uint8_t> d(204, 0);
             d[203] = 0x7f;
             d[202] = 0xc0;
             return d;
         }()},
        {.name = "unmasked x87 divide by zero: #MF at the next waiting instruction",
         .code = fresh + "fldcw [DATA]; fld1; fldz; fdivp st(1), st; fnstsw ax; fwait", .data = qwords({0x037b})},
        {.name = "pending x87 exception reported by an MMX instruction",
         .code = fresh + "fldcw [DATA]; fld1; fldz; fdivp st(1), st; paddb mm0, mm1", .data = qwords({0x037b})},
        {.name = "x87 store to a read-only page: #PF", .code = fresh + "fld1; fstp qword ptr [READONLY]"},
        {.name = "x87 loads and stores at every size",
         .code = fresh + "fld dword ptr [DATA]; fld qword ptr [DATA + 8]; fld tbyte ptr [DATA + 16]; fild word ptr [DATA + 32]; "
                         "fild dword ptr [DATA + 36]; fild qword ptr [DATA + 40]; fbld tbyte ptr [DATA + 48]; "
                         "fstp tbyte ptr [DATA + 64]; fistp qword ptr [DATA + 80]; fistp dword ptr [DATA + 88]; "
                         "fistp word ptr [DATA + 92]; fstp qword ptr [DATA + 96]; fstp dword ptr [DATA + 104]; "
                         "fbstp tbyte ptr [DATA + 112]",
         .data = [] {
             std::vector<uint8_t> d = qwords({0x40490fdb, 0x400921fb54442d18, 0xc90fdaa22168c235, 0x4000,
                                              0x8000000112345678, 0x0000000000000099, 0x0000000987654321, 0x8000});
             return d;
         }()},
        {.name = "mmx through memory", .code = fresh + "movq mm0, [DATA]; paddw mm0, [DATA + 8]; pshufw mm1, [DATA + 16], 0x1b; "
                                                      "movq [DATA + 32], mm0; movd [DATA + 40], mm1; movntq [DATA + 48], mm1; "
                                                      "fnsave [DATA + 64]; mov word ptr [DATA + 80], 0; mov word ptr [DATA + 88], 0",
         .data = qwords({0x0001000200030004, 0x7fff8000ffff0001, 0x1122334455667788})},
        {.name = "emms empties the x87 registers", .code = fresh + "movq mm0, [DATA]; emms; fnstenv [DATA + 16]; "
                                                                "mov word ptr [DATA + 32], 0; mov word ptr [DATA + 40], 0",
         .data = qwords({1})},
    };
}

TEST(DifferentialFpu, SseMemoryOperandsAndExceptionsAgree) { compare(EngineKind::Kvm, EngineKind::Soft, sse_memory_cases()); }

TEST(DifferentialFpu, X87AndSaveAreasThroughMemoryAgree) { compare(EngineKind::Kvm, EngineKind::Soft, state_cases()); }

}  // namespace
}  // namespace strata::differential
