// Hand-picked edge cases of integer arithmetic (SDM vol. 2, ADD ADC SUB SBB CMP NEG INC DEC):
// every width with operands at the carry, overflow, auxiliary-carry and zero boundaries and both
// carry-ins; the 8-bit high registers; 32-bit writes zero-extending and 8/16-bit writes keeping the
// rest of the register. The cases are data built by the tables below; the kvm engine must also
// give the answers of a small model of the SDM's flag rules, which shows the tables say what
// they mean before they judge the soft engine.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "cpu/differential/harness.hpp"

namespace strata::differential {
namespace {

using enum Gpr;

struct Width {
    unsigned bits;
    const char *a, *b;  // the operand registers: A in RAX, B in RBX
    [[nodiscard]] uint64_t mask() const { return bits == 64 ? ~0ull : (1ull << bits) - 1; }
    [[nodiscard]] uint64_t sign() const { return 1ull << (bits - 1); }
};
constexpr Width kWidths[] = {{8, "al", "bl"}, {16, "ax", "bx"}, {32, "eax", "ebx"}, {64, "rax", "rbx"}};

// What the rest of RAX and RBX hold: 8- and 16-bit writes keep it, 32-bit writes clear it.
constexpr uint64_t kUpperGarbage = 0xa5c3'96e1'7b2d'f048;

// Operands at the boundaries: zero, one, the nibble edge (AF), the largest positive, the most
// negative, all ones.
std::vector<uint64_t> boundary_values(const Width& w) {
    return {0, 1, 0xf, w.sign() - 1, w.sign(), w.mask()};
}

uint64_t with_upper(const Width& w, uint64_t value) { return (kUpperGarbage & ~w.mask()) | (value & w.mask()); }

// The SDM's result and flags for ADD/ADC (subtract = false) and SUB/SBB/CMP (subtract = true).
struct Model {
    uint64_t result;
    uint64_t flags;
};
Model add_or_subtract(const Width& w, uint64_t a, uint64_t b, bool carry_in, bool subtract) {
    uint64_t m = w.mask(), cin = carry_in ? 1 : 0;
    uint64_t r = (subtract ? a - b - cin : a + b + cin) & m;
    bool carry;
    if (subtract)
        carry = a < b || (carry_in && a == b);  // a borrow out of the top bit
    else
        carry = (w.bits == 64) ? (r < a || (carry_in && r == a)) : ((a + b + cin) >> w.bits) != 0;
    uint64_t f = carry ? flag::CF : 0;
    uint64_t overflow = subtract ? (a ^ b) & (a ^ r) : ~(a ^ b) & (a ^ r);
    if (overflow & w.sign()) f |= flag::OF;
    if ((a ^ b ^ r) & 0x10) f |= flag::AF;
    if (r == 0) f |= flag::ZF;
    if (r & w.sign()) f |= flag::SF;
    if (__builtin_parityll(r & 0xff) == 0) f |= flag::PF;
    return {r, f};
}

struct BinaryCase {
    Case c;
    Model expected;
    bool writes;  // CMP writes no result
    Width width;
};

// ADD ADC SUB SBB CMP, register to register, over every pair of boundary values and carry-in.
std::vector<BinaryCase> binary_cases() {
    struct Op {
        const char* name;
        bool subtract, uses_carry, writes;
    };
    constexpr Op kOps[] = {{"add", false, false, true}, {"adc", false, true, true}, {"sub", true, false, true},
                           {"sbb", true, true, true},   {"cmp", true, false, false}};
    std::vector<BinaryCase> out;
    for (const Width& w : kWidths)
        for (const Op& op : kOps)
            for (uint64_t a : boundary_values(w))
                for (uint64_t b : boundary_values(w))
                    for (bool carry : {false, true}) {
                        if (carry && !op.uses_carry && a != b) continue;  // CF-in matters only to ADC/SBB
                        Case c{.name = fmt::format("{} {} {:#x}, {:#x} CF={}", op.name, w.a, a, b, carry ? 1 : 0),
                               .code = fmt::format("{} {}, {}", op.name, w.a, w.b),
                               .regs = {{Rax, with_upper(w, a)}, {Rbx, with_upper(w, b)}},
                               .flags = carry ? flag::CF : 0};
                        Model m = add_or_subtract(w, a, b, op.uses_carry && carry, op.subtract);
                        out.push_back({std::move(c), m, op.writes, w});
                    }
    return out;
}

// NEG INC DEC at each width and boundary, with CF set and clear (INC/DEC keep it).
std::vector<Case> unary_cases() {
    std::vector<Case> out;
    for (const Width& w : kWidths)
        for (const char* op : {"neg", "inc", "dec"})
            for (uint64_t a : boundary_values(w))
                for (bool carry : {false, true})
                    out.push_back({.name = fmt::format("{} {} {:#x} CF={}", op, w.a, a, carry ? 1 : 0),
                                   .code = fmt::format("{} {}", op, w.a),
                                   .regs = {{Rax, with_upper(w, a)}},
                                   .flags = carry ? flag::CF : 0});
    return out;
}

// The same operations on memory operands and with immediates (sign-extended imm8 and imm32).
std::vector<Case> form_cases() {
    return {
        {.name = "add byte to memory carries", .code = "add byte ptr [DATA], bl", .regs = {{Rbx, 0x01}},
         .data = {0xff, 0x11}},
        {.name = "adc word to memory with CF", .code = "adc word ptr [DATA + 1], bx", .regs = {{Rbx, 0x7fff}},
         .flags = flag::CF, .data = {0, 0, 0, 0x55}},
        {.name = "sub dword from memory borrows", .code = "sub dword ptr [DATA], ebx", .regs = {{Rbx, 1}}},
        {.name = "sbb qword memory minus register", .code = "sbb qword ptr [DATA + 8], rbx",
         .regs = {{Rbx, 0x8000'0000'0000'0000}}, .flags = flag::CF, .data = qwords({0, 0x7fff'ffff'ffff'ffff})},
        {.name = "cmp memory with register leaves memory", .code = "cmp qword ptr [DATA], rbx", .regs = {{Rbx, 5}},
         .data = qwords({5})},
        {.name = "register minus memory", .code = "sub rax, [DATA]", .regs = {{Rax, 3}}, .data = qwords({4})},
        {.name = "add imm8 sign-extended to 64 bits", .code = "add rax, -1", .regs = {{Rax, 0}}},
        {.name = "add imm32 sign-extended to 64 bits", .code = "add rax, -0x80000000", .regs = {{Rax, 0x8000'0000}}},
        {.name = "adc imm8 to 16 bits", .code = "adc ax, 0x7f", .regs = {{Rax, 0x7f80}}, .flags = flag::CF},
        {.name = "sub imm to AL (short form)", .code = "sub al, 0x80", .regs = {{Rax, 0x7f}}},
        {.name = "cmp imm32 with 32-bit register", .code = "cmp ecx, 0x7fffffff", .regs = {{Rcx, 0x8000'0000}}},
        {.name = "neg memory", .code = "neg dword ptr [DATA]", .data = {0, 0, 0, 0x80}},
        {.name = "inc memory byte wraps", .code = "inc byte ptr [DATA]", .flags = flag::CF, .data = {0xff}},
        {.name = "dec memory qword to zero", .code = "dec qword ptr [DATA]", .data = qwords({1})},
        {.name = "lock add to memory", .code = "lock add dword ptr [DATA], ebx", .regs = {{Rbx, 0x8000'0000}},
         .data = {0, 0, 0, 0x80}},
    };
}

// The 8-bit high registers, the REX 8-bit registers, and what a write does to the rest.
std::vector<Case> register_cases() {
    constexpr uint64_t kAll = 0x1122'3344'5566'7788;
    return {
        {.name = "add ah, bh", .code = "add ah, bh", .regs = {{Rax, 0xffff'ff80'ff80}, {Rbx, 0x8001}}},
        {.name = "sub ch, dl", .code = "sub ch, dl", .regs = {{Rcx, 0x1234}, {Rdx, 0x99}}},
        {.name = "adc dh, al", .code = "adc dh, al", .regs = {{Rdx, 0x7f00}, {Rax, 0}}, .flags = flag::CF},
        {.name = "sbb bh, ah", .code = "sbb bh, ah", .regs = {{Rbx, 0x0000}, {Rax, 0x0100}}, .flags = flag::CF},
        {.name = "cmp ah, ch", .code = "cmp ah, ch", .regs = {{Rax, 0x8000}, {Rcx, 0x0100}}},
        {.name = "inc ah keeps AL", .code = "inc ah", .regs = {{Rax, 0xff'ff}}},
        {.name = "neg bh", .code = "neg bh", .regs = {{Rbx, 0x8000}}},
        {.name = "dec ch from zero", .code = "dec ch", .regs = {{Rcx, 0x00ff}}},
        {.name = "add sil, dil", .code = "add sil, dil", .regs = {{Rsi, 0x7f}, {Rdi, 1}}},
        {.name = "add r12b, r13b", .code = "add r12b, r13b", .regs = {{R12, kAll}, {R13, 0x88}}},
        {.name = "sub bpl, r9b", .code = "sub bpl, r9b", .regs = {{Rbp, 0}, {R9, 1}}},
        {.name = "32-bit add zero-extends", .code = "add eax, ebx", .regs = {{Rax, kAll}, {Rbx, 0}}},
        {.name = "32-bit mov zero-extends", .code = "mov ecx, ebx", .regs = {{Rcx, kAll}, {Rbx, 0x8000'0000}}},
        {.name = "32-bit inc zero-extends", .code = "inc r10d", .regs = {{R10, ~0ull}}},
        {.name = "32-bit neg zero-extends", .code = "neg edx", .regs = {{Rdx, 0xffff'ffff'0000'0001}}},
        {.name = "32-bit sbb zero-extends", .code = "sbb r8d, r9d", .regs = {{R8, kAll}, {R9, kAll}},
         .flags = flag::CF},
        {.name = "32-bit cmp writes nothing", .code = "cmp eax, ebx", .regs = {{Rax, kAll}, {Rbx, 1}}},
        {.name = "16-bit add keeps the rest", .code = "add ax, bx", .regs = {{Rax, kAll}, {Rbx, 0xffff}}},
        {.name = "16-bit sub keeps the rest", .code = "sub r11w, r14w", .regs = {{R11, kAll}, {R14, 0x7789}}},
        {.name = "16-bit inc keeps the rest", .code = "inc cx", .regs = {{Rcx, 0xdead'beef'ffff}}},
        {.name = "8-bit add keeps the rest", .code = "add al, bl", .regs = {{Rax, kAll}, {Rbx, 0x78}}},
        {.name = "8-bit dec keeps the rest", .code = "dec r15b", .regs = {{R15, 0xffff'ffff'ffff'ff00}}},
    };
}

std::vector<Case> all_cases() {
    std::vector<Case> out;
    for (auto& b : binary_cases()) out.push_back(std::move(b.c));
    for (auto* part : {unary_cases, form_cases, register_cases})
        for (auto& c : part()) out.push_back(std::move(c));
    return out;
}

TEST(DifferentialIntegerArith, KvmGivesTheModelsAnswers) {
    auto runner = Runner::create(EngineKind::Kvm);
    if (!runner) GTEST_SKIP() << runner.error().message;
    std::vector<BinaryCase> cases = binary_cases();
    std::vector<Case> plain;
    for (const auto& b : cases) plain.push_back(b.c);
    auto outcomes = (*runner)->run_all(plain);
    ASSERT_TRUE(outcomes) << outcomes.error().message;
    for (size_t i = 0; i < cases.size(); ++i) {
        const BinaryCase& b = cases[i];
        const Outcome& o = (*outcomes)[i];
        ASSERT_EQ(o.failure, "") << b.c.name;
        uint64_t a_in = b.c.regs[0].second;
        uint64_t expected_rax = !b.writes ? a_in
                                : b.width.bits == 32 ? b.expected.result
                                                     : (a_in & ~b.width.mask()) | b.expected.result;
        EXPECT_EQ(o[Rax], expected_rax) << b.c.name;
        EXPECT_EQ(o.rflags & flag::kStatus, b.expected.flags) << b.c.name;
    }
}

TEST(DifferentialIntegerArith, EveryCaseRunsToItsEndOnKvm) {
    auto runner = Runner::create(EngineKind::Kvm);
    if (!runner) GTEST_SKIP() << runner.error().message;
    std::vector<Case> cases = all_cases();
    auto outcomes = (*runner)->run_all(cases);
    ASSERT_TRUE(outcomes) << outcomes.error().message;
    for (size_t i = 0; i < cases.size(); ++i)
        EXPECT_TRUE((*outcomes)[i].failure.empty() && !(*outcomes)[i].exception)
            << cases[i].name << "\n" << describe((*outcomes)[i]);
}

TEST(DifferentialIntegerArith, KvmAgreesWithSoft) { compare(EngineKind::Kvm, EngineKind::Soft, all_cases()); }

}  // namespace
}  // namespace strata::differential
