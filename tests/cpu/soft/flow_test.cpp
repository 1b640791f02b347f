// The data movement, control, stack, string and flag families in what the CPL3 differential tests
// cannot reach: real mode and 32-bit code (16-bit addressing, IP wrap, PUSHA/POPA, 16-bit SI/DI
// wrap, segment overrides with real bases), interruptible REP runs, privilege rules of CLI/STI
// and POPF, and the decoder's split of shared mnemonics.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>

#include "cpu/soft/exec/exec.hpp"
#include "cpu/soft/jit/translator.hpp"
#include "cpu/soft/soft_fixture.hpp"

namespace strata::soft {
namespace {

constexpr unsigned kAx = 0, kCx = 1, kDx = 2, kBx = 3, kSp = 4, kBp = 5, kSi = 6, kDi = 7;

class FlowTest : public SoftCpuFixture {
protected:
    uint8_t byte_at(uint64_t gpa) { return memory().read_obj<uint8_t>(gpa).value(); }
    uint16_t word_at(uint64_t gpa) { return memory().read_obj<uint16_t>(gpa).value(); }
    uint32_t dword_at(uint64_t gpa) { return memory().read_obj<uint32_t>(gpa).value(); }
    void set_segment(unsigned s, uint16_t selector) {  // real mode: base = selector × 16
        cpu.seg[s].selector = selector;
        cpu.seg[s].base = uint64_t{selector} << 4;
    }
    // Loads `hex` at CS:RIP and runs exactly one step of the interpreter (one instruction, or one
    // bounded run of a REP instruction).
    void step_code(const std::string& hex) {
        std::vector<uint8_t> bytes = hex_bytes(hex);
        load(cpu.code64 ? cpu.rip : cpu.seg[CS].base + cpu.rip, bytes);
        interpreter.step_instruction();
    }
    std::vector<uint8_t> pattern(size_t n, unsigned seed) {
        std::vector<uint8_t> out(n);
        for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(i * 13 + seed + (i >> 8));
        return out;
    }
    std::vector<uint8_t> bytes_at(uint64_t gpa, size_t n) {
        std::vector<uint8_t> out(n);
        EXPECT_TRUE(memory().read(gpa, out));
        return out;
    }
};

// --- Real mode: 16-bit addressing, IP and SI/DI wrap, 16-bit stack ---

class FlowRealModeTest : public FlowTest {
protected:
    void SetUp() override {
        enter_real_mode(0x1000, 0);
        cpu.gpr[kSp] = 0x8000;
    }
};

TEST_F(FlowRealModeTest, BaseIndexAddressingUsesDsAndSsByDefault) {
    set_segment(SS, 0x2000);
    cpu.gpr[kBx] = 0x1000;
    cpu.gpr[kSi] = 0x0234;
    cpu.gpr[kBp] = 0x0100;
    cpu.gpr[kDi] = 0x0020;
    write64(0x1234, 0x1111);
    write64(0x2'0124, 0x2222);
    write64(0x0224, 0x3333);  // [si + 0xfff0] wraps within the 64 KiB segment
    run_code("8b 00 8b 4b 04 8b 94 f0 ff");  // mov ax,[bx+si]; mov cx,[bp+di+4]; mov dx,[si-0x10]
    EXPECT_EQ(cpu.reg(kAx, 2), 0x1111u);
    EXPECT_EQ(cpu.reg(kCx, 2), 0x2222u);
    EXPECT_EQ(cpu.reg(kDx, 2), 0x3333u);
}

TEST_F(FlowRealModeTest, LeaComputesSixteenBitOffsets) {
    cpu.gpr[kBx] = 0xfff0;
    cpu.gpr[kSi] = 0x0020;
    cpu.gpr[kAx] = 0xdead'0000;
    run_code("8d 40 10 66 8d 08");  // lea ax,[bx+si+0x10]; lea ecx,[bx+si]
    EXPECT_EQ(cpu.gpr[kAx], 0xdead'0020u);  // wrapped to 16 bits, EAX's upper half kept
    EXPECT_EQ(cpu.gpr[kCx], 0x0010u);       // a 16-bit address zero-extended into ECX
}

TEST_F(FlowRealModeTest, ShortJumpWrapsIp) {
    step_code("eb fb");  // jmp -5 from IP 2
    EXPECT_EQ(cpu.rip, 0xfffdu);
}

// A block ends with the instruction after which IP wraps around: the next one starts at 0.
TEST_F(FlowRealModeTest, BlocksRunAcrossTheIpWrap) {
    cpu.rip = 0xfffd;
    load(cpu.seg[CS].base + 0xfffd, hex_bytes("40 40 40"));  // inc ax ×3, the last at 0xffff
    load(cpu.seg[CS].base, hex_bytes("43 43 f4"));           // inc bx ×2, hlt
    interpreter.step();
    EXPECT_EQ(cpu.rip, 0u);
    EXPECT_EQ(cpu.gpr[kAx] & 0xffff, 3u);
    interpreter.step();
    EXPECT_EQ(cpu.gpr[3] & 0xffff, 2u);
    EXPECT_EQ(cpu.rip, 3u);
    EXPECT_TRUE(cpu.halted);
}

TEST_F(FlowRealModeTest, NearCallAndRetUseSixteenBitStackSlots) {
    cpu.rip = 0x0100;
    step_code("e8 fd ff");  // call 0x100
    EXPECT_EQ(cpu.rip, 0x0100u);
    EXPECT_EQ(cpu.gpr[kSp], 0x7ffeu);
    EXPECT_EQ(word_at(0x7ffe), 0x0103u);
    cpu.rip = 0x200;  // fresh bytes at a fresh address (test loads bypass code-page tracking)
    step_code("c2 04 00");  // ret 4
    EXPECT_EQ(cpu.rip, 0x0103u);
    EXPECT_EQ(cpu.gpr[kSp], 0x8004u);
}

TEST_F(FlowRealModeTest, StackPointerWrapsAtSixteenBits) {
    cpu.gpr[kSp] = 0x1234'0000;  // SP = 0: the push goes to SS:FFFE
    cpu.gpr[kAx] = 0xbeef;
    run_code("50");  // push ax
    EXPECT_EQ(cpu.gpr[kSp], 0x1234'fffeu);
    EXPECT_EQ(word_at(0xfffe), 0xbeefu);
}

TEST_F(FlowRealModeTest, PushaAndPopaSaveEveryRegisterButSp) {
    for (unsigned r = 0; r < 8; ++r)
        if (r != kSp) cpu.gpr[r] = 0xdead'0000u + 0x1111u * (r + 1);
    run_code("60");  // pusha
    EXPECT_EQ(cpu.gpr[kSp], 0x7ff0u);
    // From the lowest address: DI, SI, BP, the original SP, BX, DX, CX, AX.
    EXPECT_EQ(word_at(0x7ff0), 0x8888u);
    EXPECT_EQ(word_at(0x7ff2), 0x7777u);
    EXPECT_EQ(word_at(0x7ff4), 0x6666u);
    EXPECT_EQ(word_at(0x7ff6), 0x8000u);
    EXPECT_EQ(word_at(0x7ff8), 0x4444u);
    EXPECT_EQ(word_at(0x7ffe), 0x1111u);
    for (unsigned r = 0; r < 8; ++r)
        if (r != kSp) cpu.gpr[r] = 0xffff'ffffu;
    load(0x7ff6, {0, 0});  // a saved SP of 0 must be skipped
    cpu.rip = 0x10;
    run_code("61");  // popa
    EXPECT_EQ(cpu.gpr[kSp], 0x8000u);
    EXPECT_EQ(cpu.gpr[kAx], 0xffff'1111u);  // 16-bit pops keep the upper halves
    EXPECT_EQ(cpu.gpr[kDi], 0xffff'8888u);
    EXPECT_EQ(cpu.gpr[kBx], 0xffff'4444u);  // from the slot after the skipped SP
}

TEST_F(FlowRealModeTest, EnterWithNestingOnASixteenBitStack) {
    cpu.gpr[kBp] = 0x7f00;
    write64(0x7efe, 0xaaaa);  // [bp - 2]: the frame pointer level 2 copies
    run_code("c8 04 00 02");      // enter 4, 2
    // push bp (at 7ffe); copy [bp-2] (at 7ffc); push the frame (7ffe, at 7ffa); sp -= 4.
    EXPECT_EQ(word_at(0x7ffe), 0x7f00u);
    EXPECT_EQ(word_at(0x7ffc), 0xaaaau);
    EXPECT_EQ(word_at(0x7ffa), 0x7ffeu);
    EXPECT_EQ(cpu.gpr[kBp], 0x7ffeu);
    EXPECT_EQ(cpu.gpr[kSp], 0x7ff6u);
    cpu.rip = 0x20;
    run_code("c9");  // leave
    EXPECT_EQ(cpu.gpr[kSp], 0x8000u);
    EXPECT_EQ(cpu.gpr[kBp], 0x7f00u);
}

TEST_F(FlowRealModeTest, LoopAndJcxzCountInCx) {
    cpu.gpr[kCx] = 0x5555'0003;
    run_code("8d 74 01 e2 fb e3 00");  // 1: lea si,[si+1]; loop 1b; jcxz +0
    EXPECT_EQ(cpu.gpr[kSi], 3u);
    EXPECT_EQ(cpu.gpr[kCx], 0x5555'0000u);  // only CX counted
}

TEST_F(FlowRealModeTest, MovsWrapsSiAndDiWithinSixteenBits) {
    set_segment(ES, 0x3000);
    cpu.gpr[kSi] = 0x1234'ffff;
    cpu.gpr[kDi] = 0x0000'ffff;
    load(0xffff, {0x5a});
    run_code("a4");  // movsb
    EXPECT_EQ(byte_at(0x3'ffff), 0x5au);
    EXPECT_EQ(cpu.gpr[kSi], 0x1234'0000u);
    EXPECT_EQ(cpu.gpr[kDi], 0u);
}

TEST_F(FlowRealModeTest, RepStosWrapsDiAroundTheSegment) {
    set_segment(ES, 0x3000);
    cpu.gpr[kDi] = 0xfffe;
    cpu.gpr[kCx] = 4;
    cpu.gpr[kAx] = 0xab;
    run_code("f3 aa");  // rep stosb
    EXPECT_EQ(byte_at(0x3'fffe), 0xabu);
    EXPECT_EQ(byte_at(0x3'ffff), 0xabu);
    EXPECT_EQ(byte_at(0x3'0000), 0xabu);
    EXPECT_EQ(byte_at(0x3'0001), 0xabu);
    EXPECT_EQ(byte_at(0x4'0000), 0u);  // not past the wrap
    EXPECT_EQ(cpu.gpr[kDi], 2u);
    EXPECT_EQ(cpu.gpr[kCx], 0u);
}

TEST_F(FlowRealModeTest, AWordAtTheSegmentEndFaults) {
    cpu.gpr[kSi] = 0xffff;
    auto fault = fault_of("a5");  // movsw reading DS:FFFF-10000
    ASSERT_TRUE(fault);
    EXPECT_EQ(fault->vector, vec::GP);
    EXPECT_EQ(cpu.gpr[kSi], 0xffffu);
}

TEST_F(FlowRealModeTest, SegmentOverridesApplyToTheSourceOnly) {
    set_segment(FS, 0x4000);
    set_segment(ES, 0x5000);
    cpu.gpr[kSi] = 0x10;
    cpu.gpr[kDi] = 0x20;
    load(0x4'0010, {0x77});
    load(0x0010, {0x11});
    run_code("64 a4");  // fs movsb
    EXPECT_EQ(byte_at(0x5'0020), 0x77u);
    cpu.rip = 0x40;
    cpu.gpr[kBx] = 0x100;
    cpu.gpr[kAx] = 0x05;
    load(0x5'0105, {0x99});
    run_code("26 d7");  // es xlat
    EXPECT_EQ(cpu.reg(kAx, 1), 0x99u);
}

TEST_F(FlowRealModeTest, RepStosBackwardIsInterruptedAndResumed) {
    cpu.gpr[kDi] = 0x7fff;
    cpu.gpr[kCx] = 0x6000;
    cpu.gpr[kAx] = 0xc3;
    set_segment(ES, 0x3000);
    cpu.flags.other |= rflags::DF;
    step_code("f3 aa");  // rep stosb with DF = 1: the element loop, a bounded run per step
    EXPECT_EQ(cpu.rip, 0u) << "the instruction restarts";
    EXPECT_GT(cpu.gpr[kCx], 0u);
    EXPECT_LT(cpu.gpr[kCx], 0x6000u);
    EXPECT_EQ(cpu.gpr[kDi], 0x7fff - (0x6000 - cpu.gpr[kCx]));
    run_until(2);
    EXPECT_EQ(cpu.gpr[kCx], 0u);
    EXPECT_EQ(cpu.gpr[kDi], 0x1fffu);
    std::vector<uint8_t> filled = bytes_at(0x3'2000, 0x6000);
    EXPECT_EQ(filled, std::vector<uint8_t>(0x6000, 0xc3));
    EXPECT_EQ(byte_at(0x3'1fff), 0u);
    EXPECT_EQ(byte_at(0x3'8000), 0u);
}

TEST_F(FlowRealModeTest, PopfChangesIoplAndIfInRealMode) {
    cpu.gpr[kAx] = 0x3202;  // IOPL 3, IF
    run_code("50 9d");      // push ax; popf
    EXPECT_EQ(cpu.rflags() & (rflags::IOPL | rflags::IF), rflags::IOPL | rflags::IF);
}

// SALC (undocumented D6, kvm-unit-tests' realmode "salc"): AL from CF, the flags untouched.
TEST_F(FlowRealModeTest, SalcSetsAlFromCarry) {
    cpu.gpr[kAx] = 0x1234;
    run_code("f9 d6");  // stc; salc
    EXPECT_EQ(cpu.gpr[kAx], 0x12ffu);
    EXPECT_TRUE(cpu.flags.cf());
    run_code("f8 d6");  // clc; salc
    EXPECT_EQ(cpu.gpr[kAx], 0x1200u);
    EXPECT_FALSE(cpu.flags.cf());
}

// --- 32-bit protected mode ---

class FlowProtectedModeTest : public FlowTest {
protected:
    void SetUp() override {
        enter_protected_mode();
        cpu.gpr[kSp] = 0x8'0000;
    }
};

TEST_F(FlowProtectedModeTest, PushadAndPopad) {
    for (unsigned r = 0; r < 8; ++r)
        if (r != kSp) cpu.gpr[r] = 0x1000'0000u * (r + 1);
    run_code("60");  // pushad
    EXPECT_EQ(cpu.gpr[kSp], 0x8'0000u - 32);
    EXPECT_EQ(dword_at(0x8'0000 - 4), 0x1000'0000u);   // EAX
    EXPECT_EQ(dword_at(0x8'0000 - 20), 0x8'0000u);     // the original ESP
    EXPECT_EQ(dword_at(0x8'0000 - 32), 0x8000'0000u);  // EDI
    for (unsigned r = 0; r < 8; ++r)
        if (r != kSp) cpu.gpr[r] = 0;
    run_code("61");  // popad
    EXPECT_EQ(cpu.gpr[kSp], 0x8'0000u);
    for (unsigned r = 0; r < 8; ++r) {
        if (r != kSp) {
            EXPECT_EQ(cpu.gpr[r], 0x1000'0000u * (r + 1)) << "register " << r;
        }
    }
}

TEST_F(FlowProtectedModeTest, SixteenBitAddressingByPrefix) {
    cpu.gpr[kBx] = 0x1'fff0;
    cpu.gpr[kSi] = 0x20;
    run_code("67 8d 00");  // lea eax, [bx+si]
    EXPECT_EQ(cpu.gpr[kAx], 0x10u);
}

TEST_F(FlowProtectedModeTest, SixteenBitJumpTruncatesEip) {
    step_code("66 e9 00 00");  // jmp rel16 from EIP 0x100004
    EXPECT_EQ(cpu.rip, 0x0004u);
}

TEST_F(FlowProtectedModeTest, SixteenBitPushInThirtyTwoBitCode) {
    run_code("66 6a ff 6a 80");  // push word -1; push dword -128
    EXPECT_EQ(cpu.gpr[kSp], 0x8'0000u - 6);
    EXPECT_EQ(word_at(0x8'0000 - 2), 0xffffu);
    EXPECT_EQ(dword_at(0x8'0000 - 6), 0xffff'ff80u);
}

TEST_F(FlowProtectedModeTest, RepMovsIsInterruptedAndResumedWithTheSameResult) {
    constexpr uint64_t kSource = 0x20'0000, kDestination = 0x30'0000, kCount = 200'000;
    std::vector<uint8_t> data = pattern(kCount, 5);
    load(kSource, data);
    cpu.gpr[kSi] = kSource;
    cpu.gpr[kDi] = kDestination;
    cpu.gpr[kCx] = kCount;
    step_code("f3 a4");  // rep movsb
    EXPECT_EQ(cpu.rip, kCodeAddress) << "the instruction restarts";
    uint64_t done = kCount - cpu.gpr[kCx];
    EXPECT_GT(done, 0u);
    EXPECT_LT(done, kCount);
    EXPECT_EQ(cpu.gpr[kSi], kSource + done);
    EXPECT_EQ(cpu.gpr[kDi], kDestination + done);
    EXPECT_EQ(byte_at(kDestination + done), 0u) << "nothing beyond what the registers say";
    run_until(kCodeAddress + 2);
    EXPECT_EQ(cpu.gpr[kCx], 0u);
    EXPECT_EQ(bytes_at(kDestination, kCount), data);
}

TEST_F(FlowProtectedModeTest, RepMovsdOverlappingForwardReplicatesLikeElements) {
    constexpr uint64_t kBuffer = 0x20'0000;
    load(kBuffer, {1, 2, 3, 4, 5, 6, 7, 8});
    cpu.gpr[kSi] = kBuffer;
    cpu.gpr[kDi] = kBuffer + 8;
    cpu.gpr[kCx] = 1000;
    run_code("f3 a5");  // rep movsd
    std::vector<uint8_t> expected;
    for (unsigned i = 0; i < 1002; ++i) expected.insert(expected.end(), {1, 2, 3, 4, 5, 6, 7, 8});
    expected.resize(4008);
    EXPECT_EQ(bytes_at(kBuffer, 4008), expected);
}

TEST_F(FlowProtectedModeTest, RepeCmpsStopsAtTheFirstDifference) {
    std::vector<uint8_t> a = pattern(3000, 1), b = a;
    b[2500] ^= 1;
    load(0x20'0000, a);
    load(0x30'0000, b);
    cpu.gpr[kSi] = 0x20'0000;
    cpu.gpr[kDi] = 0x30'0000;
    cpu.gpr[kCx] = 3000;
    run_code("f3 a6");  // repe cmpsb
    EXPECT_EQ(cpu.gpr[kCx], 3000u - 2501);
    EXPECT_EQ(cpu.gpr[kSi], 0x20'0000u + 2501);
    EXPECT_FALSE(cpu.flags.zf());
}

TEST_F(FlowProtectedModeTest, SingleStepRunsOneElementPerStep) {
    cpu.flags.other |= rflags::TF;
    cpu.gpr[kDi] = 0x20'0000;
    cpu.gpr[kCx] = 5;
    auto fault = fault_of("f3 aa");  // rep stosb, run directly (no #DB delivery)
    EXPECT_FALSE(fault);
    EXPECT_EQ(cpu.gpr[kCx], 4u);
    EXPECT_EQ(cpu.rip, kCodeAddress);
}

TEST_F(FlowProtectedModeTest, StiSetsTheShadowOnlyWhenIfWasClear) {
    cpu.flags.other &= ~rflags::IF;
    EXPECT_FALSE(fault_of("fb"));
    EXPECT_TRUE(cpu.flags.other & rflags::IF);
    EXPECT_EQ(cpu.interrupt_shadow, 1);
    EXPECT_TRUE(cpu.end_block);
    cpu.interrupt_shadow = 0;
    EXPECT_FALSE(fault_of("fb"));
    EXPECT_EQ(cpu.interrupt_shadow, 0);
}

TEST_F(FlowProtectedModeTest, PushfAndPopfInVirtual8086ModeNeedIopl3) {
    cpu.flags.other |= rflags::VM;  // IOPL 0
    cpu.refresh_mode();
    ASSERT_TRUE(cpu.v86);
    auto pushf = fault_of("9c");
    ASSERT_TRUE(pushf);
    EXPECT_EQ(pushf->vector, vec::GP);
    auto cli = fault_of("fa");
    ASSERT_TRUE(cli);
    EXPECT_EQ(cli->vector, vec::GP);
}

// --- 64-bit mode: privilege rules at CPL 3 with IOPL 0 ---

class FlowUserModeTest : public FlowTest {
protected:
    void SetUp() override {
        enter_long_mode(3);
        cpu.gpr[kSp] = 0x8'0000;
    }
};

// A block goes on past a conditional jump that does not jump and ends at one that does: one
// interpreter step of threaded code runs `cmp; jne; mov; cmp; je; mov; nop` up to the taken
// jump, and the instructions after it do not run.
TEST_F(FlowUserModeTest, BlockRunsPastAnUntakenJccAndStopsAtATakenOne) {
    // cmp rax, rbx; jne +5; mov ecx, 1; cmp rax, rbx; je +5; mov edx, 2; nop; nop
    std::vector<uint8_t> code = hex_bytes("48 39 d8 75 05 b9 01 00 00 00 48 39 d8 74 05 ba 02 00 00 00 90 90");
    load(kCodeAddress, code);
    cpu.gpr[0] = cpu.gpr[3] = 7;
    cpu.gpr[1] = cpu.gpr[2] = 0;
    uint64_t before = interpreter.instructions();
    interpreter.step();
    EXPECT_EQ(cpu.gpr[1], 1u) << "the mov after the untaken JNE ran";
    EXPECT_EQ(cpu.gpr[2], 0u) << "the mov after the taken JE did not";
    EXPECT_EQ(cpu.rip, kCodeAddress + 20) << "JE's target";
    EXPECT_EQ(interpreter.instructions() - before, 5u);
    // The same block again with the first jump taken: it leaves after two instructions.
    cpu.rip = kCodeAddress;
    cpu.gpr[3] = 8;
    cpu.gpr[1] = 0;
    before = interpreter.instructions();
    interpreter.step();
    EXPECT_EQ(cpu.gpr[1], 0u);
    EXPECT_EQ(cpu.rip, kCodeAddress + 10);
    EXPECT_EQ(interpreter.instructions() - before, 2u);
}

// A block whose jump goes back to its own first instruction loops inside one interpreter step
// (exec/control.cpp loop_back): ten iterations of `inc rax; dec rcx; jnz` then the `jmp $` after
// it, every instruction counted.
TEST_F(FlowUserModeTest, ALoopBackToTheBlockStartRunsWithinOneStep) {
    load(kCodeAddress, hex_bytes("48 ff c0 48 ff c9 75 f8 eb fe"));  // 1: inc rax; dec rcx; jnz 1b; jmp $
    cpu.gpr[0] = 0;
    cpu.gpr[1] = 10;
    uint64_t before = interpreter.instructions();
    interpreter.step();
    EXPECT_EQ(cpu.gpr[0], 10u);
    EXPECT_EQ(cpu.gpr[1], 0u);
    EXPECT_EQ(cpu.rip, kCodeAddress + 8) << "the jmp $ ended the block";
    EXPECT_EQ(interpreter.instructions() - before, 31u);
}

// A long loop leaves the block now and then (so that the run loop can take events) and carries
// on where it was: the result and the count of instructions are those of every iteration.
TEST_F(FlowUserModeTest, ALongLoopBackLeavesTheBlockAndResumes) {
    load(kCodeAddress, hex_bytes("48 ff c0 48 ff c9 75 f8 eb fe"));
    cpu.gpr[0] = 0;
    cpu.gpr[1] = 100000;
    uint64_t before = interpreter.instructions();
    interpreter.step();
    EXPECT_GT(cpu.gpr[1], 0u) << "one step ran the whole loop";
    EXPECT_EQ(cpu.rip, kCodeAddress) << "it left at the loop's head";
    unsigned steps = 1;
    for (; steps < 100000 && cpu.rip != kCodeAddress + 8; ++steps) interpreter.step();
    EXPECT_EQ(cpu.gpr[0], 100000u);
    EXPECT_EQ(cpu.gpr[1], 0u);
    EXPECT_EQ(interpreter.instructions() - before, 300001u);
    EXPECT_GT(steps, 100u);
}

// A loop that rewrites its own code sees the new bytes at the next iteration: the store into
// `mov eax, imm32` makes each iteration add the previous counter.
TEST_F(FlowUserModeTest, ALoopThatRewritesItsOwnCodeRunsTheNewBytes) {
    // 1: mov eax, 0; add ebx, eax; mov [rip-12], ecx (the mov's imm32); inc ecx; cmp ecx, 5;
    // jne 1b; jmp $
    load(kCodeAddress, hex_bytes("b8 00 00 00 00 01 c3 89 0d f4 ff ff ff ff c1 83 f9 05 75 ec eb fe"));
    cpu.gpr[1] = 1;
    cpu.gpr[3] = 0;
    for (unsigned i = 0; i < 100 && cpu.rip != kCodeAddress + 20; ++i) interpreter.step();
    EXPECT_EQ(cpu.rip, kCodeAddress + 20);
    EXPECT_EQ(cpu.gpr[3], 0u + 1 + 2 + 3) << "iterations ran the immediate the one before stored";
}

// --- Block chaining: a run loop's slice goes from block to block without returning ---

class FlowChainTest : public FlowTest {
protected:
    // A: inc rax; jmp B; B: dec rcx; jnz A; hlt. Each iteration is two blocks, A and B.
    static constexpr uint64_t kBlockB = kCodeAddress + 6;
    void SetUp() override {
        enter_long_mode(0);
        cpu.gpr[kSp] = 0x8'0000;
        load(kCodeAddress, hex_bytes("48 ff c0 eb 01 90 48 ff c9 75 f5 f4"));
        cpu.gpr[kAx] = 0;
        cpu.gpr[kCx] = 1000;
    }
    void run_slice(unsigned blocks) { interpreter.run_slice(blocks, events, kicked); }
    std::atomic<uint32_t> events{0};
    std::atomic<bool> kicked{false};
};

// Chained blocks run what the same blocks run one step at a time: every iteration, up to HLT,
// which ends the slice, and every instruction and block counted.
TEST_F(FlowChainTest, ChainedBlocksRunToTheEndWithEveryInstructionCounted) {
    uint64_t instructions = interpreter.instructions(), blocks = interpreter.blocks_run();
    run_slice(1'000'000);
    EXPECT_TRUE(cpu.halted);
    EXPECT_EQ(cpu.gpr[kAx], 1000u);
    EXPECT_EQ(cpu.gpr[kCx], 0u);
    EXPECT_EQ(cpu.rip, kCodeAddress + 12) << "past the HLT";
    EXPECT_EQ(interpreter.instructions() - instructions, 1000u * 2 + 999u * 2 + 3);
    EXPECT_EQ(interpreter.blocks_run() - blocks, 2000u);
}

// A slice runs as many blocks as it is given, chained or not.
TEST_F(FlowChainTest, ASliceRunsExactlyItsBlocks) {
    uint64_t blocks = interpreter.blocks_run();
    run_slice(10);
    EXPECT_EQ(interpreter.blocks_run() - blocks, 10u);
    EXPECT_EQ(cpu.gpr[kAx], 5u);
    EXPECT_EQ(cpu.gpr[kCx], 995u);
    EXPECT_EQ(cpu.rip, kCodeAddress);
}

// An event (an interrupt for the run loop to take) or a kick (a stop, a pause) ends the slice
// after the block that is running: the chain does not go on.
TEST_F(FlowChainTest, AnEventOrAKickEndsTheSliceAfterOneBlock) {
    run_slice(4);  // A and B, twice: the links are made
    uint64_t blocks = interpreter.blocks_run();
    events = 1;
    run_slice(1000);
    EXPECT_EQ(interpreter.blocks_run() - blocks, 1u);
    EXPECT_EQ(cpu.gpr[kAx], 3u);
    EXPECT_EQ(cpu.rip, kBlockB);
    events = 0;
    kicked = true;
    run_slice(1000);
    EXPECT_EQ(interpreter.blocks_run() - blocks, 2u);
    EXPECT_EQ(cpu.gpr[kCx], 997u);
    EXPECT_EQ(cpu.rip, kCodeAddress);
}

// A link to a block whose code was written since (here by the host, as a device's DMA would)
// is not followed: the new code runs. B's `dec rcx` becomes `shr rcx, 1`.
TEST_F(FlowChainTest, ALinkToRewrittenCodeIsNotFollowed) {
    cpu.gpr[kCx] = 10;
    run_slice(10);
    ASSERT_EQ(cpu.gpr[kCx], 5u);
    ASSERT_EQ(cpu.rip, kCodeAddress);
    load(kBlockB, hex_bytes("48 d1 e9"));
    run_slice(1000);
    EXPECT_TRUE(cpu.halted);
    EXPECT_EQ(cpu.gpr[kCx], 0u);
    EXPECT_EQ(cpu.gpr[kAx], 5u + 3) << "5 -> 2 -> 1 -> 0";
}

// The translator (jit/translator.hpp) on the same loop: an interpreter that translates blocks
// once they have run `threshold` times, made while the threshold is set.
class FlowTranslateTest : public FlowChainTest {
protected:
    std::unique_ptr<Interpreter> translating(unsigned threshold) {
        unsigned old = Translator::threshold();
        Translator::set_threshold(threshold);
        auto made = std::make_unique<Interpreter>(cpu);
        Translator::set_threshold(old);
        return made;
    }
};

// Translated blocks run what the threaded code runs, to the same registers and the same counts,
// and the two hot blocks are translated once each.
TEST_F(FlowTranslateTest, TranslatedBlocksRunWhatThreadedCodeRuns) {
    auto jit = translating(3);
    jit->run_slice(1'000'000, events, kicked);
    EXPECT_TRUE(cpu.halted);
    EXPECT_EQ(cpu.gpr[kAx], 1000u);
    EXPECT_EQ(cpu.gpr[kCx], 0u);
    EXPECT_EQ(cpu.rip, kCodeAddress + 12) << "past the HLT";
    EXPECT_EQ(jit->instructions(), 1000u * 2 + 999u * 2 + 3);
    EXPECT_EQ(jit->blocks_run(), 2000u);
    EXPECT_EQ(jit->blocks_translated(), 2u);
}

// Code written after it was translated runs as written: the block is decoded (and translated)
// again. B's `dec rcx` becomes `shr rcx, 1`.
TEST_F(FlowTranslateTest, RewrittenCodeDoesNotRunItsOldTranslation) {
    auto jit = translating(0);
    cpu.gpr[kCx] = 10;
    jit->run_slice(10, events, kicked);
    ASSERT_EQ(cpu.gpr[kCx], 5u);
    ASSERT_EQ(jit->blocks_translated(), 2u);
    load(kBlockB, hex_bytes("48 d1 e9"));
    jit->run_slice(1000, events, kicked);
    EXPECT_TRUE(cpu.halted);
    EXPECT_EQ(cpu.gpr[kCx], 0u);
    EXPECT_EQ(cpu.gpr[kAx], 5u + 3) << "5 -> 2 -> 1 -> 0";
    EXPECT_EQ(jit->blocks_translated(), 4u) << "A and B again: the write was to their page";
}

// An instruction the soft CPU lacks is said on stderr when it runs — with its bytes and address
// — not when a block that merely contains it is decoded; the guest gets #UD.
TEST_F(FlowUserModeTest, UnimplementedInstructionIsReportedWhenItRunsNotWhenDecoded) {
    const std::string xrstor64 = "48 0f ae 2f";  // xrstor64 [rdi]: XSAVE is not advertised
    Decoder decoder;
    Insn insn;
    ::testing::internal::CaptureStderr();
    decoder.decode(CodeMode::Long64, 64, hex_bytes(xrstor64), insn);
    EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
    ::testing::internal::CaptureStderr();
    auto fault = fault_of(xrstor64);
    std::string said = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(fault);
    EXPECT_EQ(fault->vector, vec::UD);
    EXPECT_NE(said.find("xrstor64 (48 0f ae 2f) at 0x100000 is not implemented"), std::string::npos) << said;
}

TEST_F(FlowUserModeTest, SalcIsUndefinedIn64BitMode) {
    auto fault = fault_of("d6");
    ASSERT_TRUE(fault);
    EXPECT_EQ(fault->vector, vec::UD);
}

TEST_F(FlowUserModeTest, CliAndStiFaultAboveIopl) {
    auto cli = fault_of("fa");
    ASSERT_TRUE(cli);
    EXPECT_EQ(cli->vector, vec::GP);
    EXPECT_EQ(cli->error_code, 0u);
    auto sti = fault_of("fb");
    ASSERT_TRUE(sti);
    EXPECT_EQ(sti->vector, vec::GP);
}

TEST_F(FlowUserModeTest, PopfKeepsIfAndIoplAboveIopl) {
    cpu.flags.assign(rflags::IF);
    run_code("68 d5 30 04 00 9d");  // push 0x430d5 (AC, IOPL 3, arithmetic flags, no IF); popfq
    EXPECT_TRUE(cpu.flags.other & rflags::IF) << "IF kept";
    EXPECT_EQ(cpu.flags.other & rflags::IOPL, 0u) << "IOPL kept";
    EXPECT_TRUE(cpu.flags.other & rflags::AC);
    EXPECT_EQ(cpu.flags.value() & rflags::kArith, 0xd5u);
}

TEST_F(FlowUserModeTest, LockedExchangesReachGuestRam) {
    write64(0x9'0000, 40);
    cpu.gpr[kAx] = 2;
    cpu.gpr[kBx] = 0x9'0000;
    run_code("f0 48 0f c1 03 48 87 03");  // lock xadd [rbx], rax; xchg [rbx], rax
    EXPECT_EQ(read64(0x9'0000), 40u);        // xchg put back the old value
    EXPECT_EQ(cpu.gpr[kAx], 42u);
}

// --- The decoder's forms of shared mnemonics ---

TEST(FlowHandlerForms, SharedMnemonicsFindTheirFamilysForm) {
    Decoder decoder;
    auto handler_of = [&](std::vector<uint8_t> bytes) {
        Insn insn;
        decoder.decode(CodeMode::Long64, 64, bytes, insn);
        return insn.exec;
    };
    const HandlerTable& table = handler_table();
    EXPECT_EQ(handler_of({0x88, 0xdc}), table.find(ZYDIS_MNEMONIC_MOV));                          // mov ah, bl
    EXPECT_EQ(handler_of({0xa5}), table.find(ZYDIS_MNEMONIC_MOVSD));                              // movsd (string)
    EXPECT_EQ(handler_of({0xc3}), table.find(ZYDIS_MNEMONIC_RET));                                // ret near
    EXPECT_NE(handler_of({0x8e, 0xd8}), table.find(ZYDIS_MNEMONIC_MOV));                          // mov ds, ax
    EXPECT_NE(handler_of({0xcb}), table.find(ZYDIS_MNEMONIC_RET));                                // ret far
    EXPECT_NE(handler_of({0xf2, 0x0f, 0x10, 0xc1}), table.find(ZYDIS_MNEMONIC_MOVSD));            // movsd xmm0, xmm1
}

}  // namespace
}  // namespace strata::soft
