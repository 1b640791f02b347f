// The soft CPU's x87, MMX and SSE families from raw instruction bytes.
//  - x87 sequences against the host CPU running them natively (native_code.hpp): each sequence
//    starts with FNINIT and ends with FNSAVE, and the saved image (control, status and tag words,
//    FOP, the eight registers) and the data the sequence stored are compared — arithmetic in every
//    precision and rounding mode, NaNs, denormals, stack faults, unmasked exceptions, BCD, the
//    transcendental instructions, FCOMI's EFLAGS (seen through FCMOVcc), environment and MMX state.
//  - What user mode or the host cannot show: #NM for CR0.TS/EM (and WAIT's MP rule), #UD for SSE
//    without CR4.OSFXSR, #MF at the next waiting instruction, #XM and #UD for unmasked SIMD
//    exceptions, alignment #GP, the FXSAVE layout and its abridged tag word, FNSTENV's real-mode
//    and 16-bit layouts, MMX's aliasing of the x87 registers.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cpu/differential/harness.hpp"
#include "cpu/soft/exec/fpu_common.hpp"
#include "cpu/soft/native_code.hpp"
#include "cpu/soft/soft_fixture.hpp"

namespace strata::soft {
namespace {

constexpr uint64_t kBlock = 0x30'0000;        // the sequences' data (RDI) in guest memory
constexpr size_t kDataBytes = 256;            // what a sequence may read and write
constexpr size_t kSaveOffset = 256;           // where it ends with FNSAVE
constexpr size_t kBlockBytes = kSaveOffset + 108;

struct alignas(64) Block {
    std::array<uint8_t, 512> bytes{};
};

template <class T>
void put(std::vector<uint8_t>& data, size_t offset, T value) {
    if (data.size() < offset + sizeof(T)) data.resize(offset + sizeof(T));
    std::memcpy(data.data() + offset, &value, sizeof(T));
}

std::vector<uint8_t> doubles(std::initializer_list<double> values) {
    std::vector<uint8_t> data;
    size_t offset = 0;
    for (double v : values) put(data, (offset++) * 8, v);
    return data;
}

// A raw 80-bit value at `offset`.
void put80(std::vector<uint8_t>& data, size_t offset, uint64_t significand, uint16_t sign_exponent) {
    put(data, offset, significand);
    put(data, offset + 8, sign_exponent);
}

struct X87Case {
    std::string code;  // Intel syntax; RDI points at the data
    std::vector<uint8_t> data = {};
    size_t ignore_from = 0, ignore_to = 0;  // data bytes not compared (a stored FIP/FDP)
};

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

std::string hex_dump(const uint8_t* bytes, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) out += fmt::format("{:02x}{}", bytes[i], (i % 16 == 15) ? "\n    " : " ");
    return out;
}

class FpuTest : public SoftCpuFixture {
protected:
    // Runs `bytes` on the soft CPU from kCodeAddress (decoded afresh).
    void run_soft(const std::vector<uint8_t>& bytes) {
        cpu.rip = kCodeAddress;
        load(kCodeAddress, bytes);
        interpreter.clear_cache();
        run_until(kCodeAddress + bytes.size(), 1000);
    }

    void compare_x87(const std::vector<X87Case>& cases) {
        enter_long_mode(3);
        std::vector<differential::Case> asm_cases;
        for (const X87Case& c : cases) {
            asm_cases.push_back({.name = c.code, .code = c.code + fmt::format("\nfnsave [rdi+{}]", kSaveOffset)});
        }
        auto code = differential::assemble(asm_cases);
        ASSERT_TRUE(code.has_value()) << code.error().message;
        for (size_t k = 0; k < cases.size(); ++k) {
            Block native_block, initial;
            std::copy(cases[k].data.begin(), cases[k].data.end(), initial.bytes.begin());
            native_block = initial;
            testing::NativeCode native((*code)[k]);
            ASSERT_TRUE(native.ok());
            native(native_block.bytes.data());

            load(kBlock, std::vector<uint8_t>(initial.bytes.begin(), initial.bytes.end()));
            cpu.gpr[7] = kBlock;
            run_soft((*code)[k]);
            std::vector<uint8_t> soft(kBlockBytes);
            ASSERT_TRUE(memory().read(kBlock, soft));

            uint8_t* want = native_block.bytes.data();
            for (size_t i = cases[k].ignore_from; i < cases[k].ignore_to; ++i) soft[i] = want[i] = 0;
            auto fop = [](const uint8_t* image) { return (image[kSaveOffset + 18] | (image[kSaveOffset + 19] << 8)) & 0x7ff; };
            // Empty registers keep whatever earlier code left in them: compare the others only.
            const uint8_t* image = want + kSaveOffset;
            unsigned top = (image[5] >> 3) & 7, tags = image[8] | (image[9] << 8);
            bool registers_same = true;
            for (unsigned i = 0; i < 8; ++i) {
                if (((tags >> (2 * ((top + i) & 7))) & 3) == 3) continue;
                registers_same &= std::memcmp(soft.data() + kSaveOffset + 28 + 10 * i, image + 28 + 10 * i, 10) == 0;
            }
            // Intel's processors store FOP only for an unmasked exception (differential::host_is_amd).
            bool same = std::memcmp(soft.data(), want, kDataBytes) == 0 &&
                        std::memcmp(soft.data() + kSaveOffset, image, 12) == 0 && registers_same &&
                        (!differential::host_is_amd() || fop(soft.data()) == fop(want));
            EXPECT_TRUE(same) << cases[k].code << "\n  native FNSAVE: " << hex_dump(want + kSaveOffset, 108)
                              << "\n  soft FNSAVE:   " << hex_dump(soft.data() + kSaveOffset, 108)
                              << "\n  native data: " << hex_dump(want, 64) << "\n  soft data:   " << hex_dump(soft.data(), 64);
        }
    }

    std::optional<GuestFault> fault(const std::string& hex) { return fault_of(hex); }
};

TEST_F(FpuTest, ArithmeticMatchesTheHost) {
    std::vector<X87Case> cases = {
        {"fninit; fld1; fldpi; faddp st(1), st; fstp qword ptr [rdi]"},
        {"fninit; fldl2e; fldl2t; fldlg2; fldln2; fldz; fld1; fldpi"},
        {"fninit; fld qword ptr [rdi]; fdiv qword ptr [rdi+8]; fst qword ptr [rdi+16]; fstp dword ptr [rdi+24]",
         doubles({1.0, 3.0})},
        {"fninit; fld qword ptr [rdi]; fld qword ptr [rdi+8]; fsub st, st(1); fsubr st(1), st; fdivr st, st(1); fmul st(1), st; fdivp st(1), st",
         doubles({2.5, -7.25})},
        {"fninit; fld qword ptr [rdi]; fld qword ptr [rdi+8]; fsubp st(1), st; fld qword ptr [rdi]; fsubrp st(1), st; fld qword ptr [rdi+8]; fdivrp st(1), st; fld1; fmulp st(1), st",
         doubles({2.5, -7.25})},
        {"fninit; fld qword ptr [rdi]; fadd dword ptr [rdi+16]; fsub dword ptr [rdi+16]; fsubr dword ptr [rdi+16]; fmul qword ptr [rdi+8]; fdiv dword ptr [rdi+16]; fdivr qword ptr [rdi+8]",
         [] { auto d = doubles({1.1, 3.3}); put(d, 16, 0.7f); return d; }()},
        {"fninit; fild dword ptr [rdi]; fiadd word ptr [rdi+8]; fisub dword ptr [rdi]; fisubr word ptr [rdi+8]; fimul dword ptr [rdi]; fidiv word ptr [rdi+8]; fidivr dword ptr [rdi]",
         [] { std::vector<uint8_t> d; put<int32_t>(d, 0, -123456); put<int16_t>(d, 8, 77); return d; }()},
        {"fninit; fild qword ptr [rdi]; fild word ptr [rdi+8]; fild dword ptr [rdi+16]; fistp qword ptr [rdi+24]; fistp dword ptr [rdi+32]; fistp word ptr [rdi+40]",
         [] { std::vector<uint8_t> d; put<int64_t>(d, 0, -0x7fffffffffffffffll); put<int16_t>(d, 8, -32768); put<int32_t>(d, 16, 2147483647); return d; }()},
        {"fninit; fld qword ptr [rdi]; fsqrt; fld qword ptr [rdi+8]; fsqrt; frndint; fld qword ptr [rdi]; frndint", doubles({2.0, -1.0})},
        // Exceptions: SNaN and denormal loads, division by zero, 0/0, inf - inf, overflow, underflow.
        {"fninit; fld dword ptr [rdi]; fld dword ptr [rdi+4]; fld1; fldz; fdivp st(1), st; fldz; fldz; fdivp st(1), st",
         [] { std::vector<uint8_t> d; put<uint32_t>(d, 0, 0x7f800001); put<uint32_t>(d, 4, 0x00000010); return d; }()},
        {"fninit; fld qword ptr [rdi]; fld st(0); fmul st, st(1); fmul st, st(0); fmul st, st(0); fmul st, st(0); fmul st, st(0); fmul st, st(0); fmul st, st(0); fmul st, st(0); fmul st, st(0); fstp dword ptr [rdi+16]",
         doubles({1e300})},
        {"fninit; fld qword ptr [rdi]; fld st(0); fmul st, st(1); fmul st, st(0); fmul st, st(0); fmul st, st(0); fmul st, st(0); fmul st, st(0); fmul st, st(0); fmul st, st(0); fmul st, st(0); fmul st, st(0); fmul st, st(0); fst qword ptr [rdi+16]",
         doubles({1e-300})},
        {"fninit; fld tbyte ptr [rdi]; fld tbyte ptr [rdi+16]; fadd st, st(1); fld tbyte ptr [rdi]; fchs; fadd st, st(2)",
         [] { std::vector<uint8_t> d; put80(d, 0, 0x8000000000000000, 0x7fff); put80(d, 16, 0xc000000000000001, 0x3fff); return d; }()},
        // Unsupported formats (an unnormal, a pseudo-NaN) are invalid operands.
        {"fninit; fld tbyte ptr [rdi]; fld1; fadd st, st(1); fld tbyte ptr [rdi+16]; fld1; fmul st, st(1)",
         [] { std::vector<uint8_t> d; put80(d, 0, 0x4000000000000000, 0x4000); put80(d, 16, 0x4000000000000001, 0x7fff); return d; }()},
        {"fninit; fld tbyte ptr [rdi]; fchs; fld tbyte ptr [rdi]; fabs; fld tbyte ptr [rdi+16]; fchs; fabs",
         [] { std::vector<uint8_t> d; put80(d, 0, 0xa000000000000000, 0x7fff); put80(d, 16, 0x8000000000000000, 0x0000); return d; }()},
    };
    // Precision and rounding control.
    for (unsigned cw : {0x037fu, 0x007fu, 0x027fu, 0x077fu, 0x0b7fu, 0x0f7fu, 0x047fu, 0x0c7fu}) {
        auto d = doubles({1.0, 3.0, -2.5, 0.1});
        put<uint16_t>(d, 64, static_cast<uint16_t>(cw));
        cases.push_back({"fninit; fldcw [rdi+64]; fld qword ptr [rdi]; fdiv qword ptr [rdi+8]; fld qword ptr [rdi+24]; "
                         "fmul st, st(0); fldpi; fldl2t; fldlg2; fld qword ptr [rdi+16]; frndint; fst dword ptr [rdi+32]; "
                         "fld qword ptr [rdi+24]; fst dword ptr [rdi+40]",
                         d});
    }
    compare_x87(cases);
}

TEST_F(FpuTest, StoresAndConversionsMatchTheHost) {
    std::vector<X87Case> cases;
    for (unsigned cw : {0x037fu, 0x077fu, 0x0b7fu, 0x0f7fu}) {
        for (double v : {2.5, -2.5, 2.7, -3.5, 32767.5, 32768.0, -32768.4, -32769.0, 2147483647.5, 1e19, -9.3e18,
                         kNan}) {
            auto d = doubles({v});
            put<uint16_t>(d, 64, static_cast<uint16_t>(cw));
            cases.push_back({"fninit; fldcw [rdi+64]; fld qword ptr [rdi]; fist word ptr [rdi+8]; fist dword ptr [rdi+16]; "
                             "fld st(0); fistp qword ptr [rdi+24]; fld st(0); fisttp word ptr [rdi+32]; fld st(0); "
                             "fisttp dword ptr [rdi+40]; fld st(0); fisttp qword ptr [rdi+48]; fst dword ptr [rdi+56]",
                             d});
        }
    }
    // Packed BCD both ways, including the indefinite for an unrepresentable value.
    for (double v : {123456789012345678.0, -42.5, 1e18, 1e19, -0.0, kNan}) {
        auto d = doubles({v});
        cases.push_back({"fninit; fld qword ptr [rdi]; fbstp tbyte ptr [rdi+16]; fbld tbyte ptr [rdi+16]; fbld tbyte ptr [rdi+32]", d});
    }
    {
        std::vector<uint8_t> d(48);
        put80(d, 32, 0x1234567890abcdefull, 0x800f);  // invalid digits
        cases.push_back({"fninit; fbld tbyte ptr [rdi+32]; fstp tbyte ptr [rdi]", d});
    }
    // Empty ST(0): the masked stores write the indefinites.
    cases.push_back({"fninit; fst dword ptr [rdi]; fstp qword ptr [rdi+8]; fistp word ptr [rdi+16]; fistp dword ptr [rdi+24]; "
                     "fistp qword ptr [rdi+32]; fbstp tbyte ptr [rdi+48]; fstp tbyte ptr [rdi+64]; fisttp dword ptr [rdi+80]"});
    compare_x87(cases);
}

TEST_F(FpuTest, StackFaultsAndRegisterOperationsMatchTheHost) {
    compare_x87({
        {"fninit; fld1; fld1; fld1; fld1; fld1; fld1; fld1; fld1; fld1; fldpi"},  // overflow
        {"fninit; fadd st, st(1)"},                                              // underflow
        {"fninit; fld1; faddp st(3), st; fld1; fsqrt; fsin"},
        {"fninit; fld1; fxch st(3); fldpi; fxch; fld st(5); fst st(3); fstp st(6)"},
        {"fninit; fld1; fldpi; fldz; ffree st(1); fincstp; fincstp; fdecstp; fld1; ffreep st(0)"},
        {"fninit; fld1; fstp st(0); fstp st(0); fcompp"},
        {"fninit; fld1; fldz; fucompp; fld1; fcomp st(1); fcom"},
        {"fninit; fptan; fld1; fptan; fxtract"},
        {"fninit; fldpi; fld1; fld1; fld1; fld1; fld1; fld1; fsincos; fld1; fsincos"},  // room, then overflow
        {"fninit; fld1; fld st(0); fld st(0); fld st(0); fld st(0); fld st(0); fld st(0); fld st(0); fld1"},
        {"fninit; fldz; fchs; fabs; fchs; fld1; fxam; fstsw word ptr [rdi]"},
    });
}

TEST_F(FpuTest, ComparisonsMatchTheHost) {
    std::vector<X87Case> cases;
    auto values = doubles({1.0, 2.0, -0.0, kNan, kInf, 4.9e-324});
    put<uint32_t>(values, 48, 0x7f800001);  // SNaN m32
    put<int32_t>(values, 52, 2);
    put<int16_t>(values, 56, -3);
    for (const char* compare : {"fcom qword ptr [rdi+8]", "fcom dword ptr [rdi+48]", "fcomp qword ptr [rdi+24]",
                                "fucom st(1)", "fcom st(1)", "fucomp st(2)", "ficom dword ptr [rdi+52]",
                                "ficomp word ptr [rdi+56]", "ftst", "fxam"}) {
        for (size_t a = 0; a < 6; ++a) {
            cases.push_back({fmt::format("fninit; fld qword ptr [rdi+24]; fld qword ptr [rdi+{}]; {}; fnstsw word ptr [rdi+64]",
                                         a * 8, compare),
                             values});
        }
    }
    // FXAM of an empty register, a denormal, an unnormal, and -inf.
    {
        std::vector<uint8_t> d;
        put80(d, 0, 0x0000000000000001, 0x0000);
        put80(d, 16, 0x4000000000000000, 0x4001);
        put80(d, 32, 0x8000000000000000, 0xffff);
        cases.push_back({"fninit; fxam; fnstsw word ptr [rdi+64]; fld tbyte ptr [rdi]; fxam; fnstsw word ptr [rdi+66]; "
                         "fld tbyte ptr [rdi+16]; fxam; fnstsw word ptr [rdi+68]; fld tbyte ptr [rdi+32]; fxam; fnstsw word ptr [rdi+70]",
                         d});
    }
    // FCOMI and friends set ZF, PF, CF: seen through FCMOVcc, which copies ST(1) to ST(0) or not.
    for (const char* compare : {"fcomi st, st(1)", "fucomi st, st(1)", "fcomip st, st(1)", "fucomip st, st(1)"}) {
        for (const char* move : {"fcmovb", "fcmove", "fcmovbe", "fcmovu", "fcmovnb", "fcmovne", "fcmovnbe", "fcmovnu"}) {
            for (size_t a : {0u, 1u, 3u}) {
                cases.push_back({fmt::format("fninit; fld qword ptr [rdi+8]; fld qword ptr [rdi+{}]; {}; fldz; fld1; {} st, st(1)",
                                             a * 8, compare, move),
                                 values});
            }
        }
    }
    compare_x87(cases);
}

TEST_F(FpuTest, TranscendentalInstructionsMatchTheHost) {
    std::vector<X87Case> cases;
    for (double v : {0.5, 1.0, -1.0, 3.14159, 100.0, 1e10, 1e19, -1e19, 0.0, 1e-310, kInf}) {
        auto d = doubles({v, 0.75, -3.0});
        cases.push_back({"fninit; fld qword ptr [rdi]; fsin; fld qword ptr [rdi]; fcos; fld qword ptr [rdi]; fsincos; "
                         "fld qword ptr [rdi]; fptan",
                         d});
        cases.push_back({"fninit; fld qword ptr [rdi+8]; fld qword ptr [rdi]; fpatan; fld qword ptr [rdi]; fld qword ptr [rdi+8]; "
                         "fyl2x; fld qword ptr [rdi+16]; fld qword ptr [rdi+8]; fyl2xp1; fld qword ptr [rdi+8]; f2xm1",
                         d});
        cases.push_back({"fninit; fld qword ptr [rdi+16]; fld qword ptr [rdi]; fscale; fld qword ptr [rdi]; fxtract; "
                         "fld qword ptr [rdi+8]; fld qword ptr [rdi]; fprem; fld qword ptr [rdi+16]; fld qword ptr [rdi]; fprem1",
                         d});
    }
    // A partial remainder (C2 set) and a second step.
    cases.push_back({"fninit; fld qword ptr [rdi+8]; fld qword ptr [rdi]; fprem; fprem", doubles({1e300, 3.0})});
    compare_x87(cases);
}

TEST_F(FpuTest, UnmaskedExceptionsAndControlInstructionsMatchTheHost) {
    auto with_cw = [](uint16_t cw, std::vector<uint8_t> d = {}) {
        put<uint16_t>(d, 64, static_cast<uint16_t>(cw));
        return d;
    };
    std::vector<X87Case> cases = {
        // Zero divide unmasked: destination unchanged, ES and B set (FNSAVE does not wait).
        {"fninit; fldcw [rdi+64]; fld1; fldz; fdivp st(1), st", with_cw(0x037b)},
        // Invalid unmasked: SNaN load does not push; stack underflow leaves everything.
        // (Each case ends at its unmasked exception: a waiting instruction after it would trap the
        // native run.)
        {"fninit; fldcw [rdi+64]; fld1; fld dword ptr [rdi]", with_cw(0x037e, [] {
             std::vector<uint8_t> d;
             put<uint32_t>(d, 0, 0x7fa00000);
             return d;
         }())},
        {"fninit; fldcw [rdi+64]; fld1; fadd st, st(3)", with_cw(0x037e)},
        // Overflow and underflow unmasked: a register gets the biased result, a store nothing.
        {"fninit; fldcw [rdi+64]; fld qword ptr [rdi]; fmul st, st(0); fmul st, st(0); fmul st, st(0); fmul st, st(0); fmul st, st(0)",
         with_cw(0x0377, doubles({1e300}))},
        {"fninit; fldcw [rdi+64]; fld qword ptr [rdi]; fst dword ptr [rdi+16]", with_cw(0x0377, doubles({1e300}))},
        {"fninit; fldcw [rdi+64]; fld qword ptr [rdi]; fmul st, st(0); fmul st, st(0); fmul st, st(0); fmul st, st(0); fmul st, st(0)",
         with_cw(0x036f, doubles({1e-300}))},
        {"fninit; fldcw [rdi+64]; fld qword ptr [rdi]; fst dword ptr [rdi+16]", with_cw(0x036f, doubles({1e-300}))},
        {"fninit; fldcw [rdi+64]; fld qword ptr [rdi]; fld qword ptr [rdi+8]; fdivp st(1), st",
         with_cw(0x035f, doubles({1.0, 3.0}))},
        {"fninit; fldcw [rdi+64]; fld qword ptr [rdi]; fsqrt", with_cw(0x037e, doubles({-4.0}))},
        {"fninit; fldcw [rdi+64]; fld qword ptr [rdi]; fistp word ptr [rdi+16]", with_cw(0x037e, doubles({1e10}))},
        // Status and control.
        {"fninit; fld1; fldz; fdivp st(1), st; fnstsw word ptr [rdi]; fnclex; fnstsw word ptr [rdi+2]; fnstcw word ptr [rdi+4]"},
        {"fninit; fld1; fldz; fdivp st(1), st; fldcw [rdi+64]", with_cw(0x037b)},  // unmasking a flagged exception
        {"fninit; fld1; fldpi; fnstenv [rdi+128]; fldz; fldz; fldenv [rdi+128]", with_cw(0x037f), 140, 156},
        {"fninit; fld1; fldpi; fnstenv [rdi+128]", with_cw(0x037f), 140, 156},
        {"fninit; fld1; fldpi; fnsave [rdi+128]; fld1; frstor [rdi+128]; fldz", {}, 140, 236},
        {"fninit; fldpi; fnop; fld1; fnclex"},
        // MMX on the x87 registers: TOP 0, tags valid, exponents all ones; EMMS empties them.
        // (The registers are filled first: MMX makes the empty ones valid, whatever they hold.)
        {"fninit; fldz; fld1; fldz; fld1; fldz; fld1; fldz; fld1; fninit; fld1; fldpi; movq mm2, qword ptr [rdi]; movq mm5, mm2",
         doubles({1.5})},
        {"fninit; fld1; movq mm1, qword ptr [rdi]; paddd mm1, mm1; emms; fldpi", doubles({1.5})},
    };
    compare_x87(cases);
}

// --- What user mode cannot show ---

TEST_F(FpuTest, X87InstructionsRaiseDeviceNotAvailableForTsOrEm) {
    enter_long_mode();
    cpu.cr0 |= fpu::kCr0Ts;
    EXPECT_EQ(fault("d9 e8")->vector, vec::NM) << "FLD1 with CR0.TS";
    EXPECT_EQ(fault("db e3")->vector, vec::NM) << "FNINIT with CR0.TS";
    cpu.cr0 &= ~cr0::MP;
    EXPECT_FALSE(fault("9b").has_value()) << "WAIT with TS but not MP runs";
    cpu.cr0 |= cr0::MP;
    EXPECT_EQ(fault("9b")->vector, vec::NM) << "WAIT with TS and MP";
    cpu.cr0 &= ~fpu::kCr0Ts;
    cpu.cr0 |= fpu::kCr0Em;
    EXPECT_EQ(fault("d9 e8")->vector, vec::NM) << "FLD1 with CR0.EM";
    EXPECT_FALSE(fault("9b").has_value()) << "WAIT ignores EM";
    EXPECT_EQ(fault("0f fc c1")->vector, vec::UD) << "PADDB mm with CR0.EM";
    EXPECT_EQ(fault("66 0f fc c1")->vector, vec::UD) << "PADDB xmm with CR0.EM";
}

TEST_F(FpuTest, SseNeedsOsfxsrAndRaisesNmForTs) {
    enter_long_mode();
    cpu.cr4 &= ~cr4::OSFXSR;
    EXPECT_EQ(fault("0f 58 c1")->vector, vec::UD) << "ADDPS without OSFXSR";
    EXPECT_EQ(fault("66 0f 38 00 c1")->vector, vec::UD) << "PSHUFB xmm without OSFXSR";
    EXPECT_FALSE(fault("0f 38 00 c1").has_value()) << "PSHUFB mm needs no OSFXSR";
    cpu.cr4 |= cr4::OSFXSR;
    cpu.cr0 |= fpu::kCr0Ts;
    EXPECT_EQ(fault("0f 58 c1")->vector, vec::NM) << "ADDPS with CR0.TS";
    EXPECT_EQ(fault("0f ae 00")->vector, vec::NM) << "FXSAVE with CR0.TS";
    cpu.cr0 &= ~fpu::kCr0Ts;
    cpu.gpr[2] = 0x1234;
    EXPECT_FALSE(fault("f2 0f 38 f0 c2").has_value()) << "CRC32 is an integer instruction";
}

TEST_F(FpuTest, PendingUnmaskedX87ExceptionIsReportedByTheNextWaitingInstruction) {
    enter_long_mode();
    cpu.x87.fcw = 0x037b;  // ZE unmasked
    ASSERT_FALSE(fault("d9 e8").has_value());           // fld1
    ASSERT_FALSE(fault("d9 ee").has_value());           // fldz
    ASSERT_FALSE(fault("de f9").has_value());           // fdivp: raises ZE, pending
    EXPECT_EQ(cpu.x87.fsw & (fpu::fsw::ZE | fpu::fsw::ES | fpu::fsw::B), fpu::fsw::ZE | fpu::fsw::ES | fpu::fsw::B);
    EXPECT_FALSE(fault("df e0").has_value()) << "FNSTSW AX does not wait";
    EXPECT_EQ(cpu.gpr[0] & 0xffff, cpu.x87.fsw);
    EXPECT_EQ(fault("9b")->vector, vec::MF) << "FWAIT";
    EXPECT_EQ(fault("d9 e8")->vector, vec::MF) << "FLD1";
    EXPECT_EQ(fault("0f fc c1")->vector, vec::MF) << "an MMX instruction";
    EXPECT_FALSE(fault("66 0f fc c1").has_value()) << "SSE instructions ignore x87 exceptions";
    EXPECT_FALSE(fault("db e2").has_value()) << "FNCLEX";
    EXPECT_FALSE(fault("9b").has_value()) << "nothing pending after FNCLEX";
}

TEST_F(FpuTest, UnmaskedSimdExceptionRaisesXmOrUdAndLeavesTheDestination) {
    enter_long_mode();
    float one = 1.0f, zero = 0.0f;
    std::memcpy(cpu.xmm[0].data(), &one, 4);
    std::memcpy(cpu.xmm[1].data(), &zero, 4);
    auto before = cpu.xmm[0];
    cpu.mxcsr = 0x1f80 & ~(1u << 9);  // ZM clear
    EXPECT_EQ(fault("f3 0f 5e c1")->vector, vec::XM) << "DIVSS by zero";
    EXPECT_EQ(cpu.xmm[0], before);
    EXPECT_EQ(cpu.mxcsr & 0x3f, 4u) << "ZE set";
    cpu.cr4 &= ~cr4::OSXMMEXCPT;
    EXPECT_EQ(fault("f3 0f 5e c1")->vector, vec::UD) << "without OSXMMEXCPT";
    cpu.cr4 |= cr4::OSXMMEXCPT;
    cpu.mxcsr = 0x1f80;
    EXPECT_FALSE(fault("f3 0f 5e c1").has_value()) << "masked";
    float inf;
    std::memcpy(&inf, cpu.xmm[0].data(), 4);
    EXPECT_TRUE(std::isinf(inf));
    // Unmasked underflow counts an exact tiny result too (masked hardware does not flag it).
    uint32_t tiny = 0x00000100, two = 0x40000000;  // a denormal times two is exact
    std::memcpy(cpu.xmm[0].data(), &tiny, 4);
    std::memcpy(cpu.xmm[1].data(), &two, 4);
    cpu.mxcsr = 0x1f80;
    EXPECT_FALSE(fault("f3 0f 59 c1").has_value());
    EXPECT_EQ(cpu.mxcsr & 0x3f, 0x2u) << "masked: a denormal operand (DE), exact, no UE";
    std::memcpy(cpu.xmm[0].data(), &tiny, 4);
    cpu.mxcsr = 0x1f80 & ~(1u << 11);  // UM clear
    EXPECT_EQ(fault("f3 0f 59 c1")->vector, vec::XM);
    EXPECT_EQ(cpu.mxcsr & 0x3f, 0x12u) << "UE and DE set";
}

TEST_F(FpuTest, AlignedSseAccessesRaiseGpOnMisalignedOperands) {
    enter_long_mode();
    cpu.gpr[0] = 0x20'0008;
    EXPECT_EQ(fault("0f 28 00")->vector, vec::GP) << "MOVAPS xmm0, [rax]";
    EXPECT_EQ(fault("66 0f fc 00")->vector, vec::GP) << "PADDB xmm0, [rax]";
    EXPECT_FALSE(fault("0f 10 00").has_value()) << "MOVUPS";
    EXPECT_FALSE(fault("f3 0f 58 00").has_value()) << "ADDSS m32";
    EXPECT_FALSE(fault("66 0f 3a 63 00 0c").has_value()) << "PCMPISTRI m128 needs no alignment";
    EXPECT_EQ(fault("0f ae 00")->vector, vec::GP) << "FXSAVE";
    cpu.gpr[0] = 0x20'0010;
    EXPECT_FALSE(fault("0f 28 00").has_value());
}

TEST_F(FpuTest, FxsaveLayoutAndAbridgedTagWord) {
    enter_long_mode();
    run_code("db e3 d9 e8 d9 eb d9 ee");  // fninit; fld1; fldpi; fldz
    cpu.mxcsr = 0x1f80 | 0x3;
    for (unsigned i = 0; i < 16; ++i) cpu.xmm[i].fill(static_cast<uint8_t>(i + 1));
    cpu.gpr[0] = 0x20'0000;
    std::vector<uint8_t> filler(512, 0xcc);
    load(0x20'0000, filler);
    run_code("48 0f ae 00");  // fxsave64 [rax]
    std::vector<uint8_t> image(512);
    ASSERT_TRUE(memory().read(0x20'0000, image));
    auto u16 = [&](size_t o) { return static_cast<unsigned>(image[o] | (image[o + 1] << 8)); };
    auto u32 = [&](size_t o) { return u16(o) | (u16(o + 2) << 16); };
    EXPECT_EQ(u16(0), 0x37fu) << "FCW";
    EXPECT_EQ(u16(2), 5u << 11) << "FSW: TOP = 5";
    EXPECT_EQ(image[4], 0xe0) << "abridged tags: R5-R7 in use";
    EXPECT_EQ(u16(6), 0x1eeu) << "FOP of FLDZ (D9 EE)";
    EXPECT_EQ(u32(24), 0x1f83u) << "MXCSR";
    EXPECT_EQ(u32(28), 0xffffu) << "MXCSR_MASK";
    EXPECT_EQ(image[32 + 9], 0) << "ST0 = +0";
    EXPECT_EQ(u16(48 + 8), 0x4000u) << "ST1 = pi";
    EXPECT_EQ(u16(64 + 8), 0x3fffu) << "ST2 = 1.0";
    EXPECT_EQ(image[160], 1) << "XMM0";
    EXPECT_EQ(image[160 + 16 * 15], 16) << "XMM15 in 64-bit mode";
    EXPECT_EQ(image[416], 0xcc) << "bytes 416-511 untouched";

    // FXRSTOR: tags come back classified (valid, special, zero), MXCSR reserved bits #GP.
    run_code("db e3");  // fninit
    run_code("48 0f ae 08");  // fxrstor64 [rax]
    EXPECT_EQ(cpu.x87.ftw, 0x07ff) << "R0-R4 empty (11), R5 zero (01), R6 and R7 valid (00)";
    EXPECT_EQ(cpu.mxcsr, 0x1f83u);
    image[26] = 0x01;  // MXCSR bit 16
    load(0x20'0000, image);
    EXPECT_EQ(fault("48 0f ae 08")->vector, vec::GP);
    cpu.gpr[1] = 0x20'0000 + 26;
    EXPECT_EQ(fault("0f ae 11")->vector, vec::GP) << "LDMXCSR [rcx] with a reserved bit";
}

TEST_F(FpuTest, EnvironmentLayoutsInRealAnd16BitProtectedMode) {
    enter_real_mode(0x1000, 0x100);
    cpu.x87.fcw = 0x37f;
    run_code("d9 e8 2e d9 06 00 02 d9 36 00 03");  // fld1; fld dword cs:[0x200]; fnstenv [0x300]
    std::vector<uint8_t> env(14);
    ASSERT_TRUE(memory().read(0x300, env));
    auto u16 = [&](size_t o) { return static_cast<unsigned>(env[o] | (env[o + 1] << 8)); };
    EXPECT_EQ(u16(0), 0x37fu);
    EXPECT_EQ((u16(2) >> 11) & 7, 6u) << "TOP after two pushes";
    EXPECT_EQ(u16(4), 0x1fffu) << "R6 zero, R7 valid, the rest empty";
    // The instruction pointer is linear: CS 0x1000 << 4 + 0x102, split around FOP.
    EXPECT_EQ(u16(6), 0x0102u);
    EXPECT_EQ(u16(8), (0x1u << 12) | 0x106u) << "bits 16-19 of FIP and FOP (D9 06)";
    EXPECT_EQ(u16(10), 0x0200u) << "FDP: CS (the override) 0x1000 << 4 + 0x200, low 16 bits";
    EXPECT_EQ(u16(12), 0x1000u) << "FDP bits 16-19";
}

TEST_F(FpuTest, EnvironmentLayoutsIn32BitModes) {
    enter_protected_mode();
    run_code("90 d9 e8 66 d9 35 00 03 00 00");  // nop; fld1; fnstenv (16-bit operand size) [0x300]
    std::vector<uint8_t> env(28);
    ASSERT_TRUE(memory().read(0x300, env));
    auto u16 = [&](size_t o) { return static_cast<unsigned>(env[o] | (env[o + 1] << 8)); };
    auto u32 = [&](size_t o) { return u16(o) | (u16(o + 2) << 16); };
    EXPECT_EQ(u16(0), 0x37fu);
    EXPECT_EQ(u16(6), 0x0001u) << "FIP offset, low 16 bits of 0x100001";
    EXPECT_EQ(u16(8), cpu.seg[CS].selector) << "FCS";
    EXPECT_EQ(cpu.x87.fcw & 0x3f, 0x3fu) << "FNSTENV masks every exception";

    // 32-bit operand size in real mode: 20-bit linear pointers, FOP beside the high bits.
    enter_real_mode(0x2000, 0x10);
    run_code("db e3 d9 ee 66 d9 36 00 04");  // fninit; fldz; fnstenv (32-bit) [0x400]
    ASSERT_TRUE(memory().read(0x400, env));
    EXPECT_EQ(u32(0), 0xffff'037fu) << "reserved upper halves are ones";
    EXPECT_EQ(u32(12), 0xffff'0012u) << "FIP bits 0-15 of 0x20012";
    EXPECT_EQ(u32(16), (0x2u << 12) | 0x1eeu) << "FIP bits 16-31 at 12-27, FOP (D9 EE)";

    // FNSAVE/FRSTOR in the 16-bit real-mode layout bring the same state back.
    run_code("d9 eb dd 36 00 05 db e3 dd 26 00 05");  // fldpi; fnsave [0x500]; fninit; frstor [0x500]
    EXPECT_EQ((cpu.x87.fsw >> 11) & 7, 6u);
    EXPECT_EQ(cpu.x87.ftw, 0x4fff) << "R6 valid (pi), R7 zero";
    uint16_t exponent;
    std::memcpy(&exponent, reinterpret_cast<const uint8_t*>(&cpu.x87.st[6]) + 8, 2);
    EXPECT_EQ(exponent, 0x4000);
}

TEST_F(FpuTest, MmxAliasesTheX87Registers) {
    enter_long_mode();
    run_code("db e3 d9 e8");  // fninit; fld1 (TOP = 7)
    cpu.gpr[0] = 0x1122'3344'5566'7788;
    run_code("48 0f 6e d8");  // movq mm3, rax
    EXPECT_EQ((cpu.x87.fsw >> 11) & 7, 0u) << "TOP = 0";
    EXPECT_EQ(cpu.x87.ftw, 0u) << "all tags valid";
    uint64_t significand;
    uint16_t exponent;
    std::memcpy(&significand, &cpu.x87.st[3], 8);
    std::memcpy(&exponent, reinterpret_cast<const uint8_t*>(&cpu.x87.st[3]) + 8, 2);
    EXPECT_EQ(significand, 0x1122'3344'5566'7788u);
    EXPECT_EQ(exponent, 0xffff);
    run_code("0f 77");  // emms
    EXPECT_EQ(cpu.x87.ftw, 0xffff);
}

TEST_F(FpuTest, Crc32cKnownAnswers) {
    enter_long_mode();
    // CRC-32C of "123456789" is E3069283 (initial value and final XOR ~0).
    const char* text = "123456789";
    cpu.gpr[0] = 0xffff'ffff;
    for (int i = 0; i < 9; ++i) {
        cpu.gpr[1] = static_cast<uint8_t>(text[i]);
        run_code("f2 0f 38 f0 c1");  // crc32 eax, cl
    }
    EXPECT_EQ(~cpu.gpr[0] & 0xffff'ffff, 0xe306'9283u);
    cpu.gpr[0] = 0xffff'ffff'0000'0000;
    cpu.gpr[1] = 0;
    run_code("f2 48 0f 38 f1 c1");  // crc32 rax, rcx: the upper half of RAX is not an input
    EXPECT_EQ(cpu.gpr[0] >> 32, 0u);
}

}  // namespace
}  // namespace strata::soft
