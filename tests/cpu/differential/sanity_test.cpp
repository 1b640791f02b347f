// The differential harness itself, on the kvm engine alone: cases with known answers (results,
// flags, memory, and exceptions with their vector, error code, faulting RIP and CR2) show that it
// sets up a case and reads back its outcome correctly, and the same cases run twice on two VMs
// agree, so nothing of one case leaks into the next.
#include <gtest/gtest.h>

#include <chrono>

#include "cpu/differential/harness.hpp"

namespace strata::differential {
namespace {

using enum Gpr;

// Known-answer cases, indexed by the tests below.
const std::vector<Case> kSanityCases = {
    {.name = "add", .code = "add rax, rbx", .regs = {{Rax, 40}, {Rbx, 2}}},
    {.name = "add sets CF ZF", .code = "add eax, ebx", .regs = {{Rax, ~0ull}, {Rbx, 1}}},
    {.name = "store", .code = "mov qword ptr [DATA + 8], rax; mov ebx, [DATA]",
     .regs = {{Rax, 0x1122'3344'5566'7788}}, .data = qwords({0xdead'beef})},
    {.name = "div by zero", .code = "mov ecx, 7\nxor ebx, ebx\ndiv rbx\nmov ecx, 8", .regs = {{Rax, 1}}},
    {.name = "write to read-only page", .code = "mov eax, [READONLY + 0x10]\nmov [READONLY + 0x18], eax"},
    {.name = "ud2", .code = "nop; ud2"},
    {.name = "hlt at CPL3", .code = "hlt"},
    {.name = "read of supervisor page", .code = "mov eax, [SUPERVISOR]"},
    {.name = "xmm", .code = "paddq xmm1, xmm2", .xmm = {{1, {1, 2}}, {2, {10, 20}}}},
    {.name = "push pop flags", .code = "push 5; pushfq; pop rbx; pop rcx", .flags = flag::CF | flag::SF},
    {.name = "non-canonical access", .code = "mov rbx, NONCANONICAL\nmov eax, [rbx]"},
    {.name = "int3", .code = "int3"},
};

const Case& sanity(std::string_view name) {
    for (const Case& c : kSanityCases)
        if (c.name == name) return c;
    ADD_FAILURE() << "no case " << name;
    return kSanityCases.front();
}

class DifferentialHarness : public ::testing::Test {
protected:
    void SetUp() override {
        auto runner = Runner::create(EngineKind::Kvm);
        if (!runner) GTEST_SKIP() << runner.error().message;
        runner_ = std::move(*runner);
    }
    Outcome run(std::string_view name) {
        const Case& c = sanity(name);
        auto code = assemble(std::span(&c, 1));
        if (!code) {
            ADD_FAILURE() << code.error().message;
            return {};
        }
        code_size_ = code->front().size();
        Outcome o = runner_->run(c, code->front());
        EXPECT_EQ(o.failure, "");
        return o;
    }
    std::unique_ptr<Runner> runner_;
    size_t code_size_ = 0;
};

TEST_F(DifferentialHarness, AddLeavesTheSumAndRunsToTheEnd) {
    Outcome o = run("add");
    EXPECT_EQ(o[Rax], 42u);
    EXPECT_EQ(o[Rbx], 2u);
    EXPECT_EQ(o[Rsp], layout::kStackTop);
    EXPECT_EQ(o.rip, code_size_);
    EXPECT_FALSE(o.exception);
    EXPECT_EQ(o.rflags & flag::kStatus, 0u);
    EXPECT_EQ(o.rflags & (flag::IF | flag::kIopl3), flag::IF) << "IF and IOPL as the harness set them";
}

TEST_F(DifferentialHarness, FlagsOfA32BitCarryOut) {
    Outcome o = run("add sets CF ZF");
    EXPECT_EQ(o[Rax], 0u) << "the 32-bit write zero-extends";
    EXPECT_EQ(o.rflags & flag::kStatus, flag::CF | flag::ZF | flag::PF | flag::AF);
}

TEST_F(DifferentialHarness, StoreReachesTheDataArea) {
    Outcome o = run("store");
    ASSERT_EQ(o.data.size(), layout::kDataSize);
    EXPECT_EQ(o.data[8], 0x88);
    EXPECT_EQ(o.data[15], 0x11);
    EXPECT_EQ(o.data[16], 0);
    EXPECT_EQ(o[Rbx], 0xdead'beefu) << "the case's initial data";
}

TEST_F(DifferentialHarness, DivideByZeroRaisesDeAtTheDiv) {
    Outcome o = run("div by zero");
    ASSERT_TRUE(o.exception);
    EXPECT_EQ(o.exception->vector, 0);
    EXPECT_EQ(o.exception->error_code, 0u);
    EXPECT_EQ(o.rip, 7u) << "mov ecx, 7 (5 bytes); xor ebx, ebx (2 bytes); div rbx faults";
    EXPECT_EQ(o[Rcx], 7u) << "the instruction after the fault did not run";
    EXPECT_EQ(o[Rax], 1u);
    EXPECT_EQ(o[Rsp], layout::kStackTop) << "the user RSP from the exception frame";
}

TEST_F(DifferentialHarness, WriteToReadOnlyPageRaisesPfWithErrorCodeAndCr2) {
    Outcome o = run("write to read-only page");
    ASSERT_TRUE(o.exception);
    EXPECT_EQ(o.exception->vector, 14);
    EXPECT_EQ(o.exception->error_code, 0x7u) << "present, write, user (SDM vol. 3A §4.7)";
    EXPECT_EQ(o.exception->cr2, layout::kReadOnly + 0x18);
    EXPECT_EQ(o[Rax], 0xa5a5'a5a5u) << "the read before it worked";
    EXPECT_EQ(o.rip, 7u) << "mov eax, [disp32] is 7 bytes";
}

TEST_F(DifferentialHarness, ReadOfSupervisorPageRaisesPf) {
    Outcome o = run("read of supervisor page");
    ASSERT_TRUE(o.exception);
    EXPECT_EQ(o.exception->vector, 14);
    EXPECT_EQ(o.exception->error_code, 0x5u) << "present, read, user";
    EXPECT_EQ(o.exception->cr2, layout::kSupervisor);
    EXPECT_EQ(o.rip, 0u);
}

TEST_F(DifferentialHarness, Ud2RaisesUd) {
    Outcome o = run("ud2");
    ASSERT_TRUE(o.exception);
    EXPECT_EQ(o.exception->vector, 6);
    EXPECT_EQ(o.rip, 1u);
}

TEST_F(DifferentialHarness, PrivilegedInstructionAtCpl3RaisesGp) {
    Outcome o = run("hlt at CPL3");
    ASSERT_TRUE(o.exception);
    EXPECT_EQ(o.exception->vector, 13);
    EXPECT_EQ(o.exception->error_code, 0u);
    EXPECT_EQ(o.rip, 0u);
}

TEST_F(DifferentialHarness, NonCanonicalAccessRaisesGp) {
    Outcome o = run("non-canonical access");
    ASSERT_TRUE(o.exception);
    EXPECT_EQ(o.exception->vector, 13);
    EXPECT_EQ(o.exception->error_code, 0u);
    EXPECT_EQ(o.rip, 10u);
}

TEST_F(DifferentialHarness, Int3ReachesItsDpl3GateWithRipAfterIt) {
    Outcome o = run("int3");
    ASSERT_TRUE(o.exception);
    EXPECT_EQ(o.exception->vector, 3);
    EXPECT_EQ(o.rip, 1u) << "a trap: the frame's RIP is after INT3";
}

TEST_F(DifferentialHarness, XmmRegistersGoInAndComeOut) {
    Outcome o = run("xmm");
    EXPECT_EQ(o.xmm[1], (Xmm{11, 22}));
    EXPECT_EQ(o.xmm[2], (Xmm{10, 20}));
    EXPECT_EQ(o.xmm[0], Xmm{});
}

TEST_F(DifferentialHarness, InitialFlagsAndStackPage) {
    Outcome o = run("push pop flags");
    EXPECT_EQ(o[Rcx], 5u);
    EXPECT_EQ(o[Rbx] & (flag::kStatus | flag::IF), flag::CF | flag::SF | flag::IF);
    EXPECT_EQ(o[Rsp], layout::kStackTop);
    ASSERT_EQ(o.stack.size(), layout::kStackSize);
    EXPECT_EQ(o.stack[layout::kStackTop - layout::kStack - 8], 5) << "the pushed 5 stays below RSP";
}

TEST_F(DifferentialHarness, AssemblerErrorsNameTheCase) {
    std::vector<Case> cases = {{.name = "fine", .code = "nop"}, {.name = "broken one", .code = "nop\nmov eax, ebx, ecx"}};
    auto code = assemble(cases);
    ASSERT_FALSE(code);
    EXPECT_NE(code.error().message.find("case 'broken one', line 2:"), std::string::npos) << code.error().message;
}

// The same cases on two VMs, each reused for all of them, agree: the harness resets everything a
// case can change. Also measures what a case costs.
TEST(DifferentialHarnessKvm, TwoVmsAgreeOnEveryCase) {
    std::vector<Case> cases;
    for (int round = 0; round < 5; ++round) cases.insert(cases.end(), kSanityCases.begin(), kSanityCases.end());
    auto start = std::chrono::steady_clock::now();
    compare(EngineKind::Kvm, EngineKind::Kvm, cases);
    auto elapsed = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
    std::cout << "[ cost     ] " << cases.size() * 2 << " kvm runs, assembly included: " << elapsed / (2.0 * static_cast<double>(cases.size()))
              << " us a case\n";
}

}  // namespace
}  // namespace strata::differential
