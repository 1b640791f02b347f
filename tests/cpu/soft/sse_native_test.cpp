// The soft CPU's MMX/SSE-SSE4.2 register forms against the host CPU running the same instruction
// (native_code.hpp): for each instruction, many inputs — special floating-point values (zeros,
// denormals, infinities, quiet and signaling NaNs, integer-conversion boundaries), random bit
// patterns, small shift counts — under several MXCSR settings (rounding modes, DAZ/FTZ), compared
// in XMM0-3, MM0-3, RAX/RCX/RDX, the arithmetic flags an instruction defines, and MXCSR. PCMPxSTRx
// is swept over all 256 imm8 values with crafted strings and explicit lengths.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/differential/harness.hpp"
#include "cpu/soft/exec/fpu_common.hpp"
#include "cpu/soft/native_code.hpp"
#include "cpu/soft/soft_fixture.hpp"

namespace strata::soft {
namespace {

using Xmm = std::array<uint8_t, 16>;
constexpr uint64_t kArithFlags = 0x8d5;  // CF PF AF ZF SF OF

// The block the native code loads its inputs from and stores its outputs to.
struct alignas(16) SimdState {
    std::array<Xmm, 4> xmm{};
    uint64_t rax = 0, rcx = 0, rdx = 0;
    uint64_t rflags = 0;
    uint32_t mxcsr = 0x1f80;
    uint32_t host_mxcsr = 0;
    uint64_t pad = 0;
    std::array<uint64_t, 4> mm{};
};
static_assert(offsetof(SimdState, rax) == 64 && offsetof(SimdState, rflags) == 88 && offsetof(SimdState, mxcsr) == 96 &&
              offsetof(SimdState, mm) == 112);

constexpr const char* kPrologue = R"(
stmxcsr [rdi+100]
ldmxcsr [rdi+96]
movups xmm0, [rdi]
movups xmm1, [rdi+16]
movups xmm2, [rdi+32]
movups xmm3, [rdi+48]
movq mm0, [rdi+112]
movq mm1, [rdi+120]
movq mm2, [rdi+128]
movq mm3, [rdi+136]
mov rax, [rdi+64]
mov rcx, [rdi+72]
mov rdx, [rdi+80]
)";

constexpr const char* kEpilogue = R"(
movups [rdi], xmm0
movups [rdi+16], xmm1
movups [rdi+32], xmm2
movups [rdi+48], xmm3
movq [rdi+112], mm0
movq [rdi+120], mm1
movq [rdi+128], mm2
movq [rdi+136], mm3
mov [rdi+64], rax
mov [rdi+72], rcx
mov [rdi+80], rdx
pushfq
pop qword ptr [rdi+88]
stmxcsr [rdi+96]
ldmxcsr [rdi+100]
emms
ret
)";

enum class Inputs { Single, Double, Integer };

struct SimdCase {
    std::string code;
    Inputs inputs = Inputs::Integer;
    uint64_t flags = 0;  // the RFLAGS bits the instruction defines
    // Which NaN a lane of XMM0 holds is the implementation's: DPPS and DPPD sum their products in
    // an order the SDM does not fix, and Intel's processors give the default NaN where AMD's (and
    // the soft engine) propagate an operand's. Off an AMD host, any NaN matches any NaN there.
    bool any_nan = false;
};

// Whether `got` and `want` agree lane by lane, a NaN matching any NaN (SimdCase::any_nan).
bool same_but_nan_payloads(const Xmm& got, const Xmm& want, Inputs inputs) {
    size_t lane = inputs == Inputs::Double ? 8 : 4;
    auto is_nan = [&](const uint8_t* bytes) {
        if (lane == 8) {
            double v;
            std::memcpy(&v, bytes, 8);
            return v != v;
        }
        float v;
        std::memcpy(&v, bytes, 4);
        return v != v;
    };
    for (size_t at = 0; at < got.size(); at += lane) {
        if (is_nan(got.data() + at) && is_nan(want.data() + at)) continue;
        if (std::memcmp(got.data() + at, want.data() + at, lane) != 0) return false;
    }
    return true;
}

std::string describe(const SimdState& s) {
    std::string out;
    for (unsigned i = 0; i < 4; ++i) {
        uint64_t lo, hi;
        std::memcpy(&lo, s.xmm[i].data(), 8);
        std::memcpy(&hi, s.xmm[i].data() + 8, 8);
        out += fmt::format("xmm{}={:016x}:{:016x} ", i, hi, lo);
    }
    for (unsigned i = 0; i < 4; ++i) out += fmt::format("mm{}={:016x} ", i, s.mm[i]);
    out += fmt::format("rax={:#x} rcx={:#x} rdx={:#x} rflags={:#x} mxcsr={:#x}", s.rax, s.rcx, s.rdx, s.rflags, s.mxcsr);
    return out;
}

class Inputs32 {
public:
    explicit Inputs32(uint64_t seed) : random_(seed) {}

    uint32_t single() {
        static constexpr uint32_t kSpecial[] = {
            0x00000000, 0x80000000, 0x3f800000, 0xbf800000, 0x3fc00000, 0x00000001, 0x807fffff, 0x00800000,
            0x7f7fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001, 0xffa00000, 0x4f000000,
            0xcf000000, 0x4effffff, 0x5f000000, 0xdf000001, 0x3f000000, 0x3fc00001, 0x40400000, 0x3eaaaaab,
            0x3f200000, 0xbfa00000, 0x00400000, 0x0c000000};
        switch (random_() % 4) {
            case 0:
            case 1: return kSpecial[random_() % std::size(kSpecial)];
            case 2: return static_cast<uint32_t>(random_());
            default:  // a moderate normal number, so that arithmetic is inexact but finite
                return static_cast<uint32_t>((random_() & 0x807fffffu) | ((110u + random_() % 40u) << 23));
        }
    }
    uint64_t double_value() {
        static constexpr uint64_t kSpecial[] = {
            0, 0x8000000000000000, 0x3ff0000000000000, 0xbff0000000000000, 0x3ff8000000000000, 1,
            0x800fffffffffffff, 0x0010000000000000, 0x7fefffffffffffff, 0x7ff0000000000000, 0xfff0000000000000,
            0x7ff8000000000000, 0xfff8000000000000, 0x7ff0000000000001, 0xfff4000000000000, 0x41e0000000000000,
            0xc1e0000000000000, 0x41dfffffffc00000, 0x43e0000000000000, 0xc3e0000000000001, 0x3fe0000000000000,
            0x3fe0000000000001, 0x4008000000000000, 0x3fd5555555555555, 0x47efffffe0000000, 0x36a0000000000000,
            0x3810000000000000, 0xc1e0000000200000};
        switch (random_() % 4) {
            case 0:
            case 1: return kSpecial[random_() % std::size(kSpecial)];
            case 2: return random_();
            default: return (random_() & 0x800fffffffffffffull) | ((1000ull + random_() % 50) << 52);
        }
    }
    uint64_t integer() {
        static constexpr uint64_t kSpecial[] = {0, ~0ull, 0x8000000000000000, 0x7fffffffffffffff,
                                                0x8080808080808080, 0x7f7f7f7f7f7f7f7f, 0x0101010101010101,
                                                0x8000800080008000, 0x7fff7fff7fff7fff, 0x0000ffff0000ffff,
                                                0xff00ff00ff00ff00, 0x0102030405060708, 0x80000000ffffffff};
        switch (random_() % 4) {
            case 0: return kSpecial[random_() % std::size(kSpecial)];
            case 1: return random_() % 70;  // shift counts, small values
            default: return random_();
        }
    }
    uint64_t next() { return random_(); }

private:
    std::mt19937_64 random_;
};

SimdState random_state(Inputs32& in, Inputs kind) {
    SimdState s;
    for (Xmm& x : s.xmm) {
        for (unsigned i = 0; i < 4; ++i) {
            switch (kind) {
                case Inputs::Single: {
                    uint32_t v = in.single();
                    std::memcpy(x.data() + 4 * i, &v, 4);
                    break;
                }
                case Inputs::Double:
                    if (i % 2 == 0) {
                        uint64_t v = in.double_value();
                        std::memcpy(x.data() + 4 * i, &v, 8);
                    }
                    break;
                case Inputs::Integer:
                    if (i % 2 == 0) {
                        uint64_t v = in.integer();
                        std::memcpy(x.data() + 4 * i, &v, 8);
                    }
                    break;
            }
        }
    }
    s.rax = in.integer();
    s.rcx = in.integer();
    s.rdx = in.integer();
    for (uint64_t& m : s.mm) m = kind == Inputs::Integer ? in.integer() : (uint64_t{in.single()} << 32) | in.single();
    return s;
}

class SseNativeTest : public SoftCpuFixture {
protected:
    void SetUp() override { enter_long_mode(3); }

    // Assembles `native` (prologue + instruction + epilogue) and `bare` (the instruction alone)
    // for each case, in one assembler run.
    struct Assembled {
        std::vector<std::vector<uint8_t>> native, bare;
    };
    static Assembled assemble(const std::vector<std::string>& codes) {
        std::vector<differential::Case> cases;
        for (const std::string& code : codes) {
            cases.push_back({.name = code + " (native)", .code = std::string(kPrologue) + code + kEpilogue});
            cases.push_back({.name = code, .code = code});
        }
        auto code = differential::assemble(cases);
        EXPECT_TRUE(code.has_value()) << (code ? "" : code.error().message);
        Assembled out;
        if (!code) return out;
        for (size_t i = 0; i < code->size(); i += 2) {
            out.native.push_back((*code)[i]);
            out.bare.push_back((*code)[i + 1]);
        }
        return out;
    }

    // Runs the decoded instruction on the soft CPU from `in`.
    SimdState run_soft(const Insn& insn, const SimdState& in) {
        for (unsigned i = 0; i < 4; ++i) {
            cpu.xmm[i] = in.xmm[i];
            fpu::Mm m;
            std::memcpy(m.data(), &in.mm[i], 8);
            fpu::write_mmx(cpu, i, m);
        }
        fpu::mmx_transition(cpu);
        cpu.gpr[0] = in.rax;
        cpu.gpr[1] = in.rcx;
        cpu.gpr[2] = in.rdx;
        cpu.mxcsr = in.mxcsr;
        cpu.set_rflags(0x2);
        cpu.next_rip = cpu.rip + insn.length;
        SimdState out = in;
        try {
            insn.exec(cpu, insn);
        } catch (const GuestFault& f) {
            ADD_FAILURE() << "soft CPU raised vector " << unsigned{f.vector};
            return out;
        }
        for (unsigned i = 0; i < 4; ++i) {
            out.xmm[i] = cpu.xmm[i];
            fpu::Mm m = fpu::read_mmx(cpu, i);
            std::memcpy(&out.mm[i], m.data(), 8);
        }
        out.rax = cpu.gpr[0];
        out.rcx = cpu.gpr[1];
        out.rdx = cpu.gpr[2];
        out.rflags = cpu.rflags();
        out.mxcsr = cpu.mxcsr;
        return out;
    }

    // Compares every case over `count` random states under each of `mxcsr_values`.
    void sweep(const std::vector<SimdCase>& cases, unsigned count, std::vector<uint32_t> mxcsr_values) {
        std::vector<std::string> codes;
        for (const SimdCase& c : cases) codes.push_back(c.code);
        Assembled code = assemble(codes);
        ASSERT_EQ(code.native.size(), cases.size());
        Inputs32 inputs(0x5eed);
        Decoder decoder;
        for (size_t k = 0; k < cases.size(); ++k) {
            testing::NativeCode native(code.native[k]);
            ASSERT_TRUE(native.ok());
            Insn insn;
            ASSERT_EQ(decoder.decode(CodeMode::Long64, 64, code.bare[k], insn).status, DecodeStatus::Ok) << cases[k].code;
            unsigned failures = 0;
            for (uint32_t mxcsr : mxcsr_values) {
                for (unsigned n = 0; n < count && failures < 3; ++n) {
                    SimdState in = random_state(inputs, cases[k].inputs);
                    in.mxcsr = mxcsr;
                    SimdState expected = in;
                    native(&expected);
                    SimdState got = run_soft(insn, in);
                    bool xmm_same = got.xmm == expected.xmm;
                    if (!xmm_same && cases[k].any_nan && !differential::host_is_amd())
                        xmm_same = std::equal(got.xmm.begin() + 1, got.xmm.end(), expected.xmm.begin() + 1) &&
                                   same_but_nan_payloads(got.xmm[0], expected.xmm[0], cases[k].inputs);
                    bool same = xmm_same && got.mm == expected.mm && got.rax == expected.rax &&
                                got.rcx == expected.rcx && got.rdx == expected.rdx && got.mxcsr == expected.mxcsr &&
                                (got.rflags & cases[k].flags) == (expected.rflags & cases[k].flags);
                    if (!same) {
                        ++failures;
                        ADD_FAILURE() << cases[k].code << "\n  input:  " << describe(in) << "\n  native: "
                                      << describe(expected) << "\n  soft:   " << describe(got);
                    }
                }
            }
        }
    }
};

const std::vector<uint32_t> kFloatMxcsr = {0x1f80, 0x3f80, 0x5f80, 0x7f80, 0x9fc0};

TEST_F(SseNativeTest, SinglePrecisionArithmeticMatchesTheHost) {
    std::vector<SimdCase> cases;
    for (const char* op : {"addps", "addss", "subps", "subss", "mulps", "mulss", "divps", "divss", "minps", "minss",
                           "maxps", "maxss", "sqrtps", "sqrtss", "rcpps", "rcpss", "rsqrtps", "rsqrtss", "addsubps",
                           "haddps", "hsubps", "cvtps2pd", "cvtss2sd", "cvtps2dq", "cvttps2dq", "cvtdq2ps",
                           "movss", "movhlps", "movlhps", "movsldup", "movshdup", "unpcklps", "unpckhps", "andps",
                           "andnps", "orps", "xorps"})
        cases.push_back({fmt::format("{} xmm0, xmm1", op), Inputs::Single});
    for (unsigned p = 0; p < 8; ++p) {
        cases.push_back({fmt::format("cmpps xmm0, xmm1, {}", p), Inputs::Single});
        cases.push_back({fmt::format("cmpss xmm0, xmm1, {}", p), Inputs::Single});
    }
    for (unsigned imm = 0; imm < 16; ++imm) {
        cases.push_back({fmt::format("roundps xmm0, xmm1, {}", imm), Inputs::Single});
        cases.push_back({fmt::format("roundss xmm0, xmm1, {}", imm), Inputs::Single});
    }
    for (unsigned imm : {0xffu, 0xf1u, 0x71u, 0x3cu, 0x00u, 0x8fu, 0x55u})
        cases.push_back({fmt::format("dpps xmm0, xmm1, {}", imm), Inputs::Single, 0, true});
    for (const char* op : {"comiss", "ucomiss"}) cases.push_back({fmt::format("{} xmm0, xmm1", op), Inputs::Single, kArithFlags});
    for (const char* op : {"cvtss2si eax, xmm1", "cvtss2si rax, xmm1", "cvttss2si eax, xmm1", "cvttss2si rax, xmm1",
                           "cvtsi2ss xmm0, eax", "cvtsi2ss xmm0, rax", "cvtpi2ps xmm0, mm1", "cvtps2pi mm0, xmm1",
                           "cvttps2pi mm0, xmm1", "movmskps eax, xmm1", "shufps xmm0, xmm1, 0x1b",
                           "shufps xmm0, xmm1, 0xe4", "blendps xmm0, xmm1, 5", "blendvps xmm1, xmm2, xmm0",
                           "insertps xmm0, xmm1, 0x00", "insertps xmm0, xmm1, 0x4d", "insertps xmm0, xmm1, 0xf0",
                           "insertps xmm0, xmm1, 0xbf", "extractps eax, xmm1, 2", "extractps rax, xmm1, 3"})
        cases.push_back({op, Inputs::Single});
    sweep(cases, 48, kFloatMxcsr);
}

TEST_F(SseNativeTest, DoublePrecisionArithmeticMatchesTheHost) {
    std::vector<SimdCase> cases;
    for (const char* op : {"addpd", "addsd", "subpd", "subsd", "mulpd", "mulsd", "divpd", "divsd", "minpd", "minsd",
                           "maxpd", "maxsd", "sqrtpd", "sqrtsd", "addsubpd", "haddpd", "hsubpd", "cvtpd2ps",
                           "cvtsd2ss", "cvtpd2dq", "cvttpd2dq", "cvtdq2pd", "movsd", "movddup", "unpcklpd",
                           "unpckhpd", "andpd", "andnpd", "orpd", "xorpd"})
        cases.push_back({fmt::format("{} xmm0, xmm1", op), Inputs::Double});
    for (unsigned p = 0; p < 8; ++p) {
        cases.push_back({fmt::format("cmppd xmm0, xmm1, {}", p), Inputs::Double});
        cases.push_back({fmt::format("cmpsd xmm0, xmm1, {}", p), Inputs::Double});
    }
    for (unsigned imm = 0; imm < 16; ++imm) {
        cases.push_back({fmt::format("roundpd xmm0, xmm1, {}", imm), Inputs::Double});
        cases.push_back({fmt::format("roundsd xmm0, xmm1, {}", imm), Inputs::Double});
    }
    for (unsigned imm : {0x33u, 0x31u, 0x12u, 0x00u, 0xffu, 0x21u})
        cases.push_back({fmt::format("dppd xmm0, xmm1, {}", imm), Inputs::Double, 0, true});
    for (const char* op : {"comisd", "ucomisd"}) cases.push_back({fmt::format("{} xmm0, xmm1", op), Inputs::Double, kArithFlags});
    for (const char* op : {"cvtsd2si eax, xmm1", "cvtsd2si rax, xmm1", "cvttsd2si eax, xmm1", "cvttsd2si rax, xmm1",
                           "cvtsi2sd xmm0, eax", "cvtsi2sd xmm0, rax", "cvtpi2pd xmm0, mm1", "cvtpd2pi mm0, xmm1",
                           "cvttpd2pi mm0, xmm1", "movmskpd eax, xmm1", "shufpd xmm0, xmm1, 1", "shufpd xmm0, xmm1, 2",
                           "blendpd xmm0, xmm1, 2", "blendvpd xmm1, xmm2, xmm0"})
        cases.push_back({op, Inputs::Double});
    sweep(cases, 48, kFloatMxcsr);
}

TEST_F(SseNativeTest, IntegerSimdOnXmmRegistersMatchesTheHost) {
    std::vector<SimdCase> cases;
    for (const char* op :
         {"paddb", "paddw", "paddd", "paddq", "psubb", "psubw", "psubd", "psubq", "paddsb", "paddsw", "paddusb",
          "paddusw", "psubsb", "psubsw", "psubusb", "psubusw", "pmullw", "pmulld", "pmulhw", "pmulhuw", "pmulhrsw",
          "pmuludq", "pmuldq", "pmaddwd", "pmaddubsw", "pavgb", "pavgw", "psadbw", "pminub", "pminuw", "pminud",
          "pminsb", "pminsw", "pminsd", "pmaxub", "pmaxuw", "pmaxud", "pmaxsb", "pmaxsw", "pmaxsd", "pcmpeqb",
          "pcmpeqw", "pcmpeqd", "pcmpeqq", "pcmpgtb", "pcmpgtw", "pcmpgtd", "pcmpgtq", "pand", "pandn", "por", "pxor",
          "pabsb", "pabsw", "pabsd", "psignb", "psignw", "psignd", "phaddw", "phaddd", "phaddsw", "phsubw", "phsubd",
          "phsubsw", "pshufb", "punpcklbw", "punpcklwd", "punpckldq", "punpcklqdq", "punpckhbw", "punpckhwd",
          "punpckhdq", "punpckhqdq", "packsswb", "packssdw", "packuswb", "packusdw", "psllw", "pslld", "psllq",
          "psrlw", "psrld", "psrlq", "psraw", "psrad", "pmovsxbw", "pmovsxbd", "pmovsxbq", "pmovsxwd", "pmovsxwq",
          "pmovsxdq", "pmovzxbw", "pmovzxbd", "pmovzxbq", "pmovzxwd", "pmovzxwq", "pmovzxdq", "phminposuw", "movq",
          "movdqa", "movdqu", "movaps"})
        cases.push_back({fmt::format("{} xmm0, xmm1", op)});
    for (unsigned imm : {0u, 1u, 3u, 7u, 8u, 15u, 16u, 17u, 31u, 32u, 63u, 64u, 255u}) {
        for (const char* op : {"psllw", "pslld", "psllq", "psrlw", "psrld", "psrlq", "psraw", "psrad"})
            cases.push_back({fmt::format("{} xmm0, {}", op, imm)});
    }
    for (unsigned imm : {0u, 1u, 5u, 15u, 16u, 200u}) {
        cases.push_back({fmt::format("pslldq xmm0, {}", imm)});
        cases.push_back({fmt::format("psrldq xmm0, {}", imm)});
    }
    for (unsigned imm : {0u, 3u, 8u, 15u, 16u, 20u, 31u, 32u, 255u}) cases.push_back({fmt::format("palignr xmm0, xmm1, {}", imm)});
    for (unsigned imm : {0x1bu, 0x00u, 0xe4u, 0x4eu}) {
        cases.push_back({fmt::format("pshufd xmm0, xmm1, {}", imm)});
        cases.push_back({fmt::format("pshufhw xmm0, xmm1, {}", imm)});
        cases.push_back({fmt::format("pshuflw xmm0, xmm1, {}", imm)});
    }
    for (unsigned imm = 0; imm < 8; ++imm) cases.push_back({fmt::format("mpsadbw xmm0, xmm1, {}", imm)});
    for (const char* op :
         {"pmovmskb eax, xmm1", "pextrw eax, xmm1, 5", "pinsrw xmm0, eax, 3", "pextrb eax, xmm1, 13",
          "pextrd eax, xmm1, 2", "pextrq rax, xmm1, 1", "pinsrb xmm0, eax, 9", "pinsrd xmm0, eax, 3",
          "pinsrq xmm0, rax, 1", "movd eax, xmm1", "movq rax, xmm1", "movd xmm0, eax", "movq xmm0, rax",
          "pblendw xmm0, xmm1, 0xa5", "pblendvb xmm1, xmm2, xmm0", "movq2dq xmm0, mm1", "movdq2q mm0, xmm1"})
        cases.push_back({op});
    cases.push_back({"ptest xmm0, xmm1", Inputs::Integer, kArithFlags});
    cases.push_back({"ptest xmm0, xmm0", Inputs::Integer, kArithFlags});
    for (const char* op : {"crc32 eax, cl", "crc32 eax, cx", "crc32 eax, ecx", "crc32 rax, cl", "crc32 rax, rcx"})
        cases.push_back({op});
    sweep(cases, 64, {0x1f80});
}

TEST_F(SseNativeTest, MmxRegisterFormsMatchTheHost) {
    std::vector<SimdCase> cases;
    for (const char* op :
         {"paddb", "paddw", "paddd", "paddq", "psubb", "psubw", "psubd", "psubq", "paddsb", "paddsw", "paddusb",
          "paddusw", "psubsb", "psubsw", "psubusb", "psubusw", "pmullw", "pmulhw", "pmulhuw", "pmulhrsw", "pmuludq",
          "pmaddwd", "pmaddubsw", "pavgb", "pavgw", "psadbw", "pminub", "pminsw", "pmaxub", "pmaxsw", "pcmpeqb",
          "pcmpeqw", "pcmpeqd", "pcmpgtb", "pcmpgtw", "pcmpgtd", "pand", "pandn", "por", "pxor", "pabsb", "pabsw",
          "pabsd", "psignb", "psignw", "psignd", "phaddw", "phaddd", "phaddsw", "phsubw", "phsubd", "phsubsw",
          "pshufb", "punpcklbw", "punpcklwd", "punpckldq", "punpckhbw", "punpckhwd", "punpckhdq", "packsswb",
          "packssdw", "packuswb", "psllw", "pslld", "psllq", "psrlw", "psrld", "psrlq", "psraw", "psrad", "movq"})
        cases.push_back({fmt::format("{} mm0, mm1", op)});
    for (unsigned imm : {0u, 1u, 7u, 15u, 16u, 33u, 64u, 255u})
        for (const char* op : {"psllw", "pslld", "psllq", "psrlw", "psrld", "psrlq", "psraw", "psrad"})
            cases.push_back({fmt::format("{} mm0, {}", op, imm)});
    for (unsigned imm : {0u, 3u, 7u, 8u, 12u, 15u, 16u, 255u}) cases.push_back({fmt::format("palignr mm0, mm1, {}", imm)});
    for (unsigned imm : {0x1bu, 0x00u, 0xe4u}) cases.push_back({fmt::format("pshufw mm0, mm1, {}", imm)});
    for (const char* op : {"pmovmskb eax, mm1", "pextrw eax, mm1, 2", "pinsrw mm0, eax, 1", "movd mm0, eax",
                           "movd eax, mm1", "movq mm0, rax", "movq rax, mm1"})
        cases.push_back({op});
    sweep(cases, 64, {0x1f80});
}

// PCMPxSTRx over every imm8 with strings built to exercise each aggregation: character sets,
// ranges (including signed ones), prefixes and needles across the end, embedded zeros, and explicit
// lengths below, at and beyond the register (negative ones count by their absolute value).
TEST_F(SseNativeTest, PackedStringComparesMatchTheHostForEveryControlByte) {
    auto text = [](std::string_view s) {
        Xmm x{};
        std::memcpy(x.data(), s.data(), std::min<size_t>(s.size(), 16));
        return x;
    };
    std::vector<std::pair<Xmm, Xmm>> strings = {
        {text("abc"), text("xxabcabc abc\0zz")},
        {text("azAZ09"), text("Hello, World! 12")},
        {text("lo"), text("Hello, World!")},
        {text("Hello"), text("Hello, World!")},
        {text("World!xyz"), text("Hello, World!")},
        {text(""), text("nonempty")},
        {text("needle"), text("")},
        {text("abcdefghijklmnop"), text("abcdefghijklmnop")},
        {text("abcdefghijklmnoX"), text("abcdefghijklmnop")},
        {text("ab\0cd"), text("ab\0cd")},
        {text("p"), text("abcdefghijklmnop")},
        {text("\x80\xff\x01\x7f"), text("\x7f\x80\x81\xfe\xff\x01\x02")},
    };
    std::mt19937_64 random(7);
    for (int i = 0; i < 12; ++i) {
        Xmm a, b;
        static constexpr uint8_t kAlphabet[] = {0, 'a', 'b', 0x80, 0xff, 0x7f, 1};
        for (auto& byte : a) byte = kAlphabet[random() % std::size(kAlphabet)];
        for (auto& byte : b) byte = kAlphabet[random() % std::size(kAlphabet)];
        strings.push_back({a, b});
        for (auto& byte : a) byte = static_cast<uint8_t>(random());
        for (auto& byte : b) byte = static_cast<uint8_t>(random() | 1);  // no zero bytes
        strings.push_back({a, b});
    }
    static constexpr uint64_t kLengths[] = {0, 1, 3, 7, 8, 9, 15, 16, 17, 100, ~0ull, ~4ull, ~15ull, ~16ull,
                                            0x8000'0000, 0x7fff'ffff, 0xffff'fff0'0000'0005ull};

    std::vector<std::string> codes;
    for (unsigned imm = 0; imm < 256; ++imm)
        for (const char* op : {"pcmpistri", "pcmpistrm", "pcmpestri", "pcmpestrm"}) codes.push_back(fmt::format("{} xmm1, xmm2, {}", op, imm));
    for (unsigned imm = 0; imm < 256; imm += 5)
        for (const char* op : {"rex.w pcmpestri", "rex.w pcmpestrm"}) codes.push_back(fmt::format("{} xmm1, xmm2, {}", op, imm));
    Assembled code = assemble(codes);
    ASSERT_EQ(code.native.size(), codes.size());
    Decoder decoder;
    for (size_t k = 0; k < codes.size(); ++k) {
        testing::NativeCode native(code.native[k]);
        ASSERT_TRUE(native.ok());
        Insn insn;
        ASSERT_EQ(decoder.decode(CodeMode::Long64, 64, code.bare[k], insn).status, DecodeStatus::Ok) << codes[k];
        unsigned failures = 0;
        for (size_t s = 0; s < strings.size() && failures < 3; ++s) {
            SimdState in;
            in.xmm[0] = text("unchanged?");
            in.xmm[1] = strings[s].first;
            in.xmm[2] = strings[s].second;
            in.rax = kLengths[(s * 7 + k) % std::size(kLengths)];
            in.rdx = kLengths[(s * 3 + k / 4) % std::size(kLengths)];
            in.rcx = 0xdead'beef'dead'beefull;
            SimdState expected = in;
            native(&expected);
            SimdState got = run_soft(insn, in);
            if (got.xmm != expected.xmm || got.rcx != expected.rcx || ((got.rflags ^ expected.rflags) & kArithFlags)) {
                ++failures;
                ADD_FAILURE() << codes[k] << "\n  input:  " << describe(in) << "\n  native: " << describe(expected)
                              << "\n  soft:   " << describe(got);
            }
        }
    }
}

}  // namespace
}  // namespace strata::soft
