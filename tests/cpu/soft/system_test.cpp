// The soft CPU's system architecture, run from raw instruction bytes: mode switches from real
// mode to protected and long mode, far jumps and calls (call gates with a stack switch), event
// delivery in each mode (error codes, TSS stacks, IST, double and triple faults), IRET in its
// forms, SYSCALL/SYSRET, segment-load faults with their error codes, control-register and MSR
// #GPs, the I/O permission bitmap, string I/O, CPUID and the TSC.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "cpu/soft/descriptors.hpp"
#include "cpu/soft/msrs.hpp"
#include "cpu/soft/soft_cpuid.hpp"
#include "cpu/soft/soft_fixture.hpp"

namespace strata::soft {
namespace {

// Guest layout of these tests (the fixture's page tables are at 0x1000-0x3fff, code at 1 MiB).
constexpr uint64_t kGdt = 0x5000, kIdt = 0x6000, kTss = 0x8000;
constexpr uint64_t kKernelStackTop = 0xa000, kUserStackTop = 0xc000, kIstStackTop = 0xd000;
constexpr uint64_t kHandler = 0x2'0000;  // interrupt handlers and kernel code
constexpr uint16_t kGdtLimit = 0xff;

// GDT selectors (Linux's layout for the first ones, so that STAR means what it means there).
constexpr uint16_t kCode32 = 0x08, kCode64 = 0x10, kData = 0x18, kUserCode32 = 0x23, kUserData = 0x2b,
                   kUserCode64 = 0x33, kCode16 = 0x38, kData16 = 0x40, kAbsentData = 0x48, kReadOnlyData = 0x50,
                   kTssSelector = 0x58, kCallGate = 0x68, kExecuteOnly = 0x78;

struct SegmentDescriptor {
    uint32_t base = 0;
    uint32_t limit = 0xfffff;  // 20 bits
    unsigned type = 3;
    unsigned dpl = 0;
    bool s = true, present = true, l = false, db = true, g = true;
};

uint64_t encode(const SegmentDescriptor& d) {
    uint64_t low = (d.limit & 0xffff) | (uint64_t{d.base & 0xffff} << 16);
    uint64_t high = ((d.base >> 16) & 0xff) | (uint64_t{d.type} << 8) | (uint64_t{d.s} << 12) |
                    (uint64_t{d.dpl} << 13) | (uint64_t{d.present} << 15) | (d.limit & 0xf'0000) |
                    (uint64_t{d.l} << 21) | (uint64_t{d.db} << 22) | (uint64_t{d.g} << 23) | (d.base & 0xff00'0000);
    return low | (high << 32);
}

// A gate's first 8 bytes (interrupt, trap or call gate; SDM vol. 3A figures 5-8 and 6-2).
uint64_t gate(uint16_t selector, uint64_t offset, unsigned type, unsigned dpl, unsigned ist_or_params = 0) {
    uint64_t low = (offset & 0xffff) | (uint64_t{selector} << 16);
    uint64_t high = (offset & 0xffff'0000) | (1u << 15) | (dpl << 13) | (type << 8) | ist_or_params;
    return low | (high << 32);
}

class SystemTest : public SoftCpuFixture {
protected:
    void write_gdt() {
        SegmentDescriptor code32{.type = 0xb};
        SegmentDescriptor code64{.type = 0xb, .l = true, .db = false};
        put_descriptor(kCode32, code32);
        put_descriptor(kCode64, code64);
        put_descriptor(kData, {});
        put_descriptor(kUserCode32, {.type = 0xb, .dpl = 3});
        put_descriptor(kUserData, {.dpl = 3});
        put_descriptor(kUserCode64, {.type = 0xb, .dpl = 3, .l = true, .db = false});
        put_descriptor(kCode16, {.limit = 0xffff, .type = 0xb, .db = false, .g = false});
        put_descriptor(kData16, {.limit = 0xffff, .db = false, .g = false});
        put_descriptor(kAbsentData, {.present = false});
        put_descriptor(kReadOnlyData, {.type = 1});
        put_descriptor(kExecuteOnly, {.type = 8});
        // TSS: 0x68 bytes plus a 32-byte I/O bitmap and its terminating byte.
        write64(kGdt + kTssSelector, encode({.base = static_cast<uint32_t>(kTss), .limit = 0x68 + 32, .type = 9,
                                             .s = false, .db = false, .g = false}));
        write64(kGdt + kTssSelector + 8, 0);
        cpu.gdtr = {kGdt, kGdtLimit};
    }
    void put_descriptor(uint16_t selector, const SegmentDescriptor& d) { write64(kGdt + (selector & ~7u), encode(d)); }

    // The segment cache a load of `selector` from our GDT leaves.
    SegmentState cached(uint16_t selector) {
        Descriptor d;
        uint64_t raw = read64(kGdt + (selector & ~7u));
        d.low = static_cast<uint32_t>(raw);
        d.high = static_cast<uint32_t>(raw >> 32);
        return segment_from(selector, d);
    }

    // 64-bit TSS: RSP0 and IST1; the I/O bitmap right after the TSS, all ports denied but `open`.
    void write_tss64(uint64_t rsp0, uint64_t ist1, std::vector<uint16_t> open = {}) {
        for (uint64_t i = 0; i < 0x68 + 33; i += 8) write64(kTss + i, 0);
        write64(kTss + 4, rsp0);
        write64(kTss + 0x24, ist1);
        write_io_bitmap(open);
        load_tr();
    }
    // 32-bit TSS: SS0:ESP0.
    void write_tss32(uint32_t esp0, uint16_t ss0) {
        for (uint64_t i = 0; i < 0x68 + 33; i += 8) write64(kTss + i, 0);
        ASSERT_TRUE(memory().write_obj(kTss + 4, esp0));
        ASSERT_TRUE(memory().write_obj(kTss + 8, uint32_t{ss0}));
        write_io_bitmap({});
        load_tr();
    }
    void write_io_bitmap(const std::vector<uint16_t>& open) {
        ASSERT_TRUE(memory().write_obj(kTss + 0x66, uint16_t{0x68}));
        std::vector<uint8_t> bitmap(33, 0xff);
        for (uint16_t port : open) bitmap[port / 8] = static_cast<uint8_t>(bitmap[port / 8] & ~(1u << (port & 7)));
        load(kTss + 0x68, bitmap);
    }
    void load_tr() {
        Descriptor d;
        uint64_t raw = read64(kGdt + kTssSelector);
        d.low = static_cast<uint32_t>(raw);
        d.high = static_cast<uint32_t>(raw >> 32) | (2u << 8);  // busy
        cpu.tr = segment_from(kTssSelector, d);
    }

    void gate64(uint8_t vector, uint64_t offset, unsigned dpl = 0, unsigned ist = 0, unsigned type = 0xe) {
        write64(kIdt + vector * 16u, gate(kCode64, offset, type, dpl, ist));
        write64(kIdt + vector * 16u + 8, offset >> 32);
        cpu.idtr = {kIdt, 0xfff};
    }
    void gate32(uint8_t vector, uint64_t offset, unsigned dpl = 0, unsigned type = 0xe) {
        write64(kIdt + vector * 8u, gate(kCode32, offset, type, dpl));
        cpu.idtr = {kIdt, 0x7ff};
    }
    void absent_gate64(uint8_t vector) {
        write64(kIdt + vector * 16u, 0);
        write64(kIdt + vector * 16u + 8, 0);
    }

    // 64-bit mode with our GDT at privilege `cpl`, IF clear, IOPL 0.
    void long_mode(unsigned cpl) {
        enter_long_mode(cpl);
        write_gdt();
        cpu.seg[CS] = cached(cpl == 3 ? kUserCode64 : kCode64);
        cpu.seg[SS] = cached(cpl == 3 ? kUserData : kData);
        cpu.gpr[4] = cpl == 3 ? kUserStackTop : kKernelStackTop;
        cpu.refresh_mode();
    }
    // 32-bit protected mode with our GDT at privilege `cpl`, no paging.
    void protected_mode(unsigned cpl) {
        enter_protected_mode();
        write_gdt();
        cpu.seg[CS] = cached(cpl == 3 ? kUserCode32 : kCode32);
        cpu.seg[SS] = cpu.seg[DS] = cpu.seg[ES] = cached(cpl == 3 ? kUserData : kData);
        cpu.gpr[4] = cpl == 3 ? kUserStackTop : kKernelStackTop;
        cpu.refresh_mode();
    }

    uint32_t read32(uint64_t gpa) { return memory().read_obj<uint32_t>(gpa).value(); }
    uint16_t read16(uint64_t gpa) { return memory().read_obj<uint16_t>(gpa).value(); }

    // Runs one instruction at RIP (loading `hex` there first), delivering what it raises.
    void step(const std::string& hex) {
        load(cpu.code64 ? cpu.rip : cpu.seg[CS].base + cpu.rip, hex_bytes(hex));
        interpreter.step_instruction();
    }
};

// --- Mode switches ---

TEST_F(SystemTest, RealModeReachesProtectedModeThenLongMode) {
    enter_real_mode(0x1000, 0);
    write_gdt();
    cpu.gdtr = {};
    ASSERT_TRUE(memory().write_obj(0x7000, uint16_t{kGdtLimit}));
    ASSERT_TRUE(memory().write_obj(0x7002, uint32_t{kGdt}));
    // lgdt [0x7000]; mov eax, cr0; or al, 1; mov cr0, eax; jmp dword 0x08:0x10100
    load(0x1'0000, hex_bytes("0f 01 16 00 70 0f 20 c0 0c 01 0f 22 c0 66 ea 00 01 01 00 08 00"));
    interpreter.step_instruction();
    EXPECT_EQ(cpu.gdtr.base, kGdt);
    EXPECT_EQ(cpu.gdtr.limit, kGdtLimit);
    run_until(13);
    EXPECT_TRUE(cpu.protected_mode);
    EXPECT_EQ(cpu.code_bits, 16u) << "CS keeps its real-mode cache until the far jump";
    interpreter.step_instruction();
    EXPECT_EQ(cpu.seg[CS].selector, kCode32);
    EXPECT_EQ(cpu.code_bits, 32u);
    EXPECT_EQ(cpu.rip, 0x1'0100u);

    // mov ax, 0x18; mov ds, ax; mov ss, ax; CR4.PAE; CR3 = 0x1000; EFER.LME; CR0.PG;
    // jmp 0x10:0x10200
    write64(kPml4, kPdpt | 7);
    write64(kPdpt, kPd | 7);
    for (uint64_t i = 0; i < 512; ++i) write64(kPd + i * 8, (i << 21) | 0x87);
    load(0x1'0100, hex_bytes("66 b8 18 00 8e d8 8e d0 0f 20 e0 83 c8 20 0f 22 e0 b8 00 10 00 00 0f 22 d8 b9 80 00 00 c0 "
                             "0f 32 0d 00 01 00 00 0f 30 0f 20 c0 0d 00 00 00 80 0f 22 c0 ea 00 02 01 00 10 00"));
    run_until(0x1'0100 + 6);
    EXPECT_EQ(cpu.seg[DS].base, 0u);
    EXPECT_EQ(cpu.seg[DS].limit, 0xffff'ffffu);
    EXPECT_TRUE(read64(kGdt + kData) & (1ull << 40)) << "the load set the accessed bit";
    run_until(0x1'0100 + 0x32);
    EXPECT_TRUE(cpu.efer & efer::LMA) << "paging with LME activates IA-32e mode";
    EXPECT_TRUE(cpu.long_mode);
    EXPECT_FALSE(cpu.code64) << "compatibility mode until CS is a 64-bit segment";
    // mov rax, 0x123456789; nop
    load(0x1'0200, hex_bytes("48 b8 89 67 45 23 01 00 00 00 90"));
    interpreter.step_instruction();
    EXPECT_TRUE(cpu.code64);
    EXPECT_EQ(cpu.rip, 0x1'0200u);
    run_until(0x1'020a);
    EXPECT_EQ(cpu.gpr[0], 0x1'2345'6789u);
}

TEST_F(SystemTest, ClearingPagingLeavesLongModeOnlyFromCompatibilityMode) {
    long_mode(0);
    cpu.gpr[0] = cpu.cr0 & ~cr0::PG;
    auto f = fault_of("0f 22 c0");  // mov cr0, rax
    ASSERT_TRUE(f);
    EXPECT_EQ(f->vector, vec::GP);
    cpu.seg[CS] = cached(kCode32);  // compatibility mode
    cpu.refresh_mode();
    cpu.rip = kCodeAddress;
    cpu.gpr[0] = cpu.cr0 & ~cr0::PG;
    EXPECT_FALSE(fault_of("0f 22 c0"));
    EXPECT_FALSE(cpu.efer & efer::LMA);
    EXPECT_FALSE(cpu.long_mode);
    EXPECT_TRUE(cpu.protected_mode);
}

// --- Real mode ---

TEST_F(SystemTest, RealModeInterruptAndIret) {
    enter_real_mode(0x1000, 0);
    cpu.gpr[4] = 0x8000;
    ASSERT_TRUE(memory().write_obj(0x21 * 4, uint32_t{0x2000'0010}));  // IVT: 2000:0010
    run_code("fb");  // sti
    step("cd 21");   // int 0x21
    EXPECT_EQ(cpu.seg[CS].selector, 0x2000);
    EXPECT_EQ(cpu.seg[CS].base, 0x2'0000u);
    EXPECT_EQ(cpu.rip, 0x10u);
    EXPECT_EQ(cpu.gpr[4], 0x8000u - 6);
    EXPECT_EQ(read16(0x7ffa), 3) << "IP after INT";
    EXPECT_EQ(read16(0x7ffc), 0x1000);
    EXPECT_TRUE(read16(0x7ffe) & rflags::IF) << "FLAGS as they were";
    EXPECT_FALSE(cpu.rflags() & rflags::IF) << "IF cleared";
    step("cf");  // iret
    EXPECT_EQ(cpu.seg[CS].selector, 0x1000);
    EXPECT_EQ(cpu.rip, 3u);
    EXPECT_EQ(cpu.gpr[4], 0x8000u);
    EXPECT_TRUE(cpu.rflags() & rflags::IF);
}

TEST_F(SystemTest, RealModeFarJumpAndSegmentLoad) {
    enter_real_mode(0x1000, 0);
    step("ea 05 00 00 30");  // jmp 0x3000:0x0005
    EXPECT_EQ(cpu.seg[CS].base, 0x3'0000u);
    EXPECT_EQ(cpu.rip, 5u);
    cpu.gpr[0] = 0x1234;
    step("8e d8");  // mov ds, ax
    EXPECT_EQ(cpu.seg[DS].base, 0x1'2340u);
    EXPECT_EQ(cpu.seg[DS].limit, 0xffffu);
}

// --- Protected mode delivery ---

TEST_F(SystemTest, ProtectedModeFaultPushesErrorCodeOnTheSameStack) {
    protected_mode(0);
    gate32(vec::NP, kHandler);
    cpu.gpr[0] = kAbsentData;
    uint64_t at = cpu.rip;
    step("8e d8");  // mov ds, ax
    EXPECT_EQ(cpu.rip, kHandler);
    EXPECT_EQ(cpu.gpr[4], kKernelStackTop - 16);
    EXPECT_EQ(read32(kKernelStackTop - 16), kAbsentData) << "#NP(selector)";
    EXPECT_EQ(read32(kKernelStackTop - 12), at) << "the faulting instruction";
    EXPECT_EQ(read32(kKernelStackTop - 8), kCode32);
    EXPECT_TRUE(read32(kKernelStackTop - 4) & rflags::RF) << "a fault's image has RF";
    EXPECT_EQ(cpu.seg[DS].selector, kData) << "DS unchanged";
}

TEST_F(SystemTest, ProtectedModeIntFromRing3SwitchesToTheTssStack) {
    protected_mode(3);
    write_tss32(static_cast<uint32_t>(kKernelStackTop), kData);
    gate32(0x80, kHandler, 3);
    cpu.set_rflags(cpu.rflags() | rflags::IF);
    uint64_t next = cpu.rip + 2;
    step("cd 80");
    EXPECT_EQ(cpu.rip, kHandler);
    EXPECT_EQ(cpu.cpl, 0u);
    EXPECT_EQ(cpu.seg[SS].selector, kData);
    EXPECT_EQ(cpu.gpr[4], kKernelStackTop - 20);
    EXPECT_EQ(read32(kKernelStackTop - 20), next);
    EXPECT_EQ(read32(kKernelStackTop - 16), kUserCode32);
    EXPECT_TRUE(read32(kKernelStackTop - 12) & rflags::IF);
    EXPECT_EQ(read32(kKernelStackTop - 8), kUserStackTop);
    EXPECT_EQ(read32(kKernelStackTop - 4), kUserData);
    EXPECT_FALSE(cpu.rflags() & rflags::IF);

    step("cf");  // iretd: back to ring 3
    EXPECT_EQ(cpu.cpl, 3u);
    EXPECT_EQ(cpu.rip, next);
    EXPECT_EQ(cpu.gpr[4], kUserStackTop);
    EXPECT_EQ(cpu.seg[SS].selector, kUserData);
    EXPECT_TRUE(cpu.rflags() & rflags::IF);
}

TEST_F(SystemTest, IntThroughAGateOfLowerDplIsAGeneralProtectionFault) {
    protected_mode(3);
    write_tss32(static_cast<uint32_t>(kKernelStackTop), kData);
    gate32(0x80, kHandler, 0);
    gate32(vec::GP, kHandler + 0x100, 0);
    uint64_t at = cpu.rip;
    step("cd 80");
    EXPECT_EQ(cpu.rip, kHandler + 0x100);
    EXPECT_EQ(read32(kKernelStackTop - 24), 0x80u * 8 + 2) << "IDT index, IDT bit, EXT clear";
    EXPECT_EQ(read32(kKernelStackTop - 20), at);
}

TEST_F(SystemTest, FarCallThroughACallGateCopiesParametersAndRetFarReturnsOutward) {
    protected_mode(3);
    write_tss32(static_cast<uint32_t>(kKernelStackTop), kData);
    write64(kGdt + kCallGate, gate(kCode32, kHandler, 0xc, 3, 2));  // 32-bit call gate, 2 parameters
    // push 0x11111111; push 0x22222222; call 0x6b:0
    run_code("68 11 11 11 11 68 22 22 22 22");
    uint64_t next = cpu.rip + 7;
    step("9a 00 00 00 00 6b 00");
    EXPECT_EQ(cpu.rip, kHandler);
    EXPECT_EQ(cpu.cpl, 0u);
    EXPECT_EQ(cpu.seg[CS].selector, kCode32);
    uint64_t sp = kKernelStackTop;
    EXPECT_EQ(read32(sp - 4), kUserData);
    EXPECT_EQ(read32(sp - 8), kUserStackTop - 8);
    EXPECT_EQ(read32(sp - 12), 0x1111'1111u) << "parameters in their order";
    EXPECT_EQ(read32(sp - 16), 0x2222'2222u);
    EXPECT_EQ(read32(sp - 20), kUserCode32);
    EXPECT_EQ(read32(sp - 24), next);
    EXPECT_EQ(cpu.gpr[4], sp - 24);

    cpu.seg[DS] = cached(kData);  // a DPL-0 segment the return to ring 3 must not leave usable
    step("ca 08 00");  // retf 8
    EXPECT_EQ(cpu.cpl, 3u);
    EXPECT_EQ(cpu.rip, next);
    EXPECT_EQ(cpu.gpr[4], kUserStackTop) << "the parameters released on the outer stack";
    EXPECT_EQ(cpu.seg[DS].selector, 0);
    EXPECT_TRUE(cpu.seg[DS].unusable);
    EXPECT_EQ(cpu.seg[ES].selector, kUserData) << "a DPL-3 segment stays";
}

// --- Long mode delivery ---

TEST_F(SystemTest, LongModeInterruptFromUserUsesRsp0AlignedAndANullStackSegment) {
    long_mode(3);
    write_tss64(kKernelStackTop + 8, kIstStackTop);
    gate64(0x80, kHandler, 3);
    cpu.gpr[4] = kUserStackTop - 8;
    uint64_t next = cpu.rip + 2;
    step("cd 80");
    EXPECT_EQ(cpu.rip, kHandler);
    EXPECT_EQ(cpu.cpl, 0u);
    EXPECT_EQ(cpu.seg[SS].selector, 0) << "SS = null with RPL = new CPL";
    uint64_t frame = kKernelStackTop - 40;  // RSP0 + 8, aligned down to 16
    EXPECT_EQ(cpu.gpr[4], frame);
    EXPECT_EQ(read64(frame), next);
    EXPECT_EQ(read64(frame + 8), kUserCode64);
    EXPECT_EQ(read64(frame + 24), kUserStackTop - 8);
    EXPECT_EQ(read64(frame + 32), kUserData);

    step("48 cf");  // iretq
    EXPECT_EQ(cpu.cpl, 3u);
    EXPECT_EQ(cpu.rip, next);
    EXPECT_EQ(cpu.gpr[4], kUserStackTop - 8);
    EXPECT_EQ(cpu.seg[SS].selector, kUserData);
    EXPECT_TRUE(cpu.code64);
}

TEST_F(SystemTest, LongModeExceptionOnAnIstStack) {
    long_mode(3);
    write_tss64(kKernelStackTop, kIstStackTop);
    gate64(vec::UD, kHandler, 0, 1);
    uint64_t at = cpu.rip;
    step("0f 0b");  // ud2
    EXPECT_EQ(cpu.rip, kHandler);
    EXPECT_EQ(cpu.gpr[4], kIstStackTop - 40);
    EXPECT_EQ(read64(kIstStackTop - 40), at);
}

TEST_F(SystemTest, LongModeIretqAtTheSameLevelPopsSsAndRsp) {
    long_mode(0);
    // A frame for RIP 0x101000, CS kernel, RFLAGS 0x202 (IF), RSP 0x9800, SS kernel data.
    uint64_t sp = kKernelStackTop - 40;
    write64(sp, 0x10'1000);
    write64(sp + 8, kCode64);
    write64(sp + 16, 0x202);
    write64(sp + 24, 0x9800);
    write64(sp + 32, kData);
    cpu.gpr[4] = sp;
    cpu.nmi_masked = true;
    step("48 cf");
    EXPECT_EQ(cpu.rip, 0x10'1000u);
    EXPECT_EQ(cpu.gpr[4], 0x9800u);
    EXPECT_TRUE(cpu.rflags() & rflags::IF);
    EXPECT_FALSE(cpu.nmi_masked) << "IRET unblocks NMIs";
}

TEST_F(SystemTest, FaultDeliveringAFaultIsADoubleFaultAndThenATripleFault) {
    long_mode(0);
    write_tss64(kKernelStackTop, kIstStackTop);
    gate64(vec::DF, kHandler + 0x800);
    absent_gate64(vec::GP);
    cpu.gpr[0] = 0x100;  // beyond the GDT's limit
    step("8e d8");       // mov ds, ax: #GP(0x100), whose gate is absent: #NP, contributory twice
    EXPECT_EQ(cpu.rip, kHandler + 0x800);
    EXPECT_EQ(read64(cpu.gpr[4]), 0u) << "#DF's error code";

    long_mode(0);
    write_tss64(kKernelStackTop, kIstStackTop);
    absent_gate64(vec::GP);
    absent_gate64(vec::DF);
    cpu.gpr[0] = 0x100;
    load(cpu.rip, hex_bytes("8e d8"));
    EXPECT_THROW(interpreter.step_instruction(), TripleFault);
}

TEST_F(SystemTest, PageFaultWhileDeliveringAPageFaultIsADoubleFault) {
    long_mode(0);
    write_tss64(kKernelStackTop, kIstStackTop);
    gate64(vec::PF, kHandler);
    gate64(vec::DF, kHandler + 0x800, 0, 1);
    cpu.gpr[4] = 0x4000'0000 + 0x100;  // beyond the mapped first GiB: the frame's push faults
    cpu.gpr[3] = 0x4000'0000;
    step("8b 03");  // mov eax, [rbx]
    EXPECT_EQ(cpu.rip, kHandler + 0x800);
    EXPECT_EQ(cpu.gpr[4], kIstStackTop - 48);
}

// --- Interrupt shadow ---

// The run loop takes interrupts between blocks: the block after STI or MOV SS must end after
// its first instruction, or `sti; nop; cli` would never let a pending interrupt in
// (kvm-unit-tests' eventinj "vec 32/33").
TEST_F(SystemTest, StiAndMovSsShadowOnlyTheNextInstruction) {
    long_mode(0);
    uint64_t start = cpu.rip;
    load(start, hex_bytes("fb 90 fa 90"));  // sti; nop; cli; nop
    interpreter.step();
    EXPECT_EQ(cpu.rip, start + 1);
    EXPECT_TRUE(cpu.rflags() & rflags::IF);
    EXPECT_NE(cpu.interrupt_shadow, 0u);
    interpreter.step();
    EXPECT_EQ(cpu.rip, start + 2) << "the shadowed NOP ran alone";
    EXPECT_EQ(cpu.interrupt_shadow, 0u);
    EXPECT_TRUE(cpu.rflags() & rflags::IF) << "an interrupt can be taken before CLI";

    long_mode(0);
    start = cpu.rip;
    cpu.gpr[0] = kData;
    load(start, hex_bytes("8e d0 90 90 90"));  // mov ss, eax; nop; nop; nop
    interpreter.step();
    EXPECT_EQ(cpu.rip, start + 2);
    EXPECT_NE(cpu.interrupt_shadow, 0u);
    interpreter.step();
    EXPECT_EQ(cpu.rip, start + 3);
    EXPECT_EQ(cpu.interrupt_shadow, 0u);
}

// --- SYSCALL / SYSRET, SYSENTER ---

TEST_F(SystemTest, SyscallAndSysretRoundTrip) {
    long_mode(3);
    cpu.msr.star = (uint64_t{kUserCode32 & ~3u} << 48) | (uint64_t{kCode64} << 32);
    cpu.msr.lstar = kHandler;
    cpu.msr.sfmask = rflags::IF | rflags::TF | rflags::DF;
    cpu.set_rflags(cpu.rflags() | rflags::IF | rflags::DF);
    uint64_t next = cpu.rip + 2;
    step("0f 05");
    EXPECT_EQ(cpu.rip, kHandler);
    EXPECT_EQ(cpu.gpr[1], next);
    EXPECT_TRUE(cpu.gpr[11] & rflags::IF) << "R11 = RFLAGS";
    EXPECT_FALSE(cpu.rflags() & (rflags::IF | rflags::DF)) << "masked by SFMASK";
    EXPECT_EQ(cpu.cpl, 0u);
    EXPECT_EQ(cpu.seg[CS].selector, kCode64);
    EXPECT_EQ(cpu.seg[SS].selector, kData);
    EXPECT_TRUE(cpu.code64);

    step("48 0f 07");  // sysretq
    EXPECT_EQ(cpu.rip, next);
    EXPECT_EQ(cpu.cpl, 3u);
    EXPECT_EQ(cpu.seg[CS].selector, kUserCode64);
    EXPECT_EQ(cpu.seg[SS].selector, kUserData);
    EXPECT_TRUE(cpu.rflags() & rflags::IF);
    EXPECT_TRUE(cpu.code64);
}

TEST_F(SystemTest, SyscallNeedsSceAndSysretFaultsOnANonCanonicalRcx) {
    long_mode(0);
    cpu.efer &= ~efer::SCE;
    auto f = fault_of("0f 05");
    ASSERT_TRUE(f);
    EXPECT_EQ(f->vector, vec::UD);
    cpu.efer |= efer::SCE;
    cpu.gpr[1] = 0x8000'0000'0000ull;
    f = fault_of("48 0f 07");
    ASSERT_TRUE(f);
    EXPECT_EQ(f->vector, vec::GP);
    EXPECT_EQ(cpu.cpl, 0u) << "nothing changed";
}

TEST_F(SystemTest, SysretWithoutRexWReturnsToCompatibilityMode) {
    long_mode(0);
    cpu.msr.star = uint64_t{kUserCode32 & ~3u} << 48;
    cpu.gpr[1] = 0xffff'ffff'0040'0000ull;
    step("0f 07");
    EXPECT_EQ(cpu.rip, 0x40'0000u) << "ECX, zero-extended";
    EXPECT_EQ(cpu.seg[CS].selector, kUserCode32);
    EXPECT_FALSE(cpu.code64);
    EXPECT_EQ(cpu.code_bits, 32u);
}

TEST_F(SystemTest, SyscallFromCompatibilityModeEntersCstarAsOnAmd) {
    long_mode(3);
    cpu.seg[CS] = cached(kUserCode32);
    cpu.refresh_mode();
    cpu.msr.star = (uint64_t{kUserCode32 & ~3u} << 48) | (uint64_t{kCode64} << 32);
    cpu.msr.lstar = kHandler;
    cpu.msr.cstar = kHandler + 0x400;
    uint64_t next = cpu.rip + 2;
    step("0f 05");
    EXPECT_EQ(cpu.rip, kHandler + 0x400);
    EXPECT_EQ(cpu.gpr[1], next);
    EXPECT_EQ(cpu.seg[CS].selector, kCode64);
    EXPECT_TRUE(cpu.code64);
    EXPECT_EQ(cpu.cpl, 0u);

    protected_mode(3);
    cpu.efer |= efer::SCE;
    auto f = fault_of("0f 05");
    ASSERT_TRUE(f) << "outside long mode SYSCALL stays #UD";
    EXPECT_EQ(f->vector, vec::UD);
}

// Linux's entry code leaves through IRET when TF is set because SYSRET would trap at once.
TEST_F(SystemTest, SysretLoadingTfTrapsBeforeTheFirstUserInstruction) {
    long_mode(0);
    write_tss64(kKernelStackTop, kIstStackTop);
    gate64(vec::DB, kHandler + 0x800);
    cpu.msr.star = uint64_t{kUserCode32 & ~3u} << 48;
    cpu.gpr[1] = 0x40'0000;
    cpu.gpr[11] = rflags::TF | rflags::IF | rflags::FIXED1;
    cpu.gpr[4] = kKernelStackTop;
    step("0f 07");  // sysretl
    EXPECT_EQ(cpu.rip, kHandler + 0x800);
    EXPECT_EQ(cpu.cpl, 0u);
    uint64_t frame = cpu.gpr[4];
    EXPECT_EQ(read64(frame), 0x40'0000u) << "the trap's RIP is the user instruction not yet run";
    EXPECT_EQ(read64(frame + 8), kUserCode32);
    EXPECT_TRUE(read64(frame + 16) & rflags::TF);
    EXPECT_TRUE(cpu.dr6 & (1u << 14)) << "DR6.BS";
}

TEST_F(SystemTest, SysenterNeedsSysenterCs) {
    protected_mode(3);
    auto f = fault_of("0f 34");
    ASSERT_TRUE(f);
    EXPECT_EQ(f->vector, vec::GP);
    cpu.msr.sysenter_cs = kCode32;
    cpu.msr.sysenter_esp = kKernelStackTop;
    cpu.msr.sysenter_eip = kHandler;
    step("0f 34");
    EXPECT_EQ(cpu.rip, kHandler);
    EXPECT_EQ(cpu.cpl, 0u);
    EXPECT_EQ(cpu.seg[SS].selector, kCode32 + 8) << "SYSENTER_CS + 8, whatever the GDT holds there";
    EXPECT_EQ(cpu.gpr[4], kKernelStackTop);
}

// --- Segment loads ---

TEST_F(SystemTest, SegmentLoadFaultsCarryTheSelector) {
    protected_mode(0);
    auto load_fault = [&](const char* hex, uint16_t selector) {
        cpu.rip = kCodeAddress;
        cpu.gpr[0] = selector;
        return fault_of(hex);
    };
    auto f = load_fault("8e d8", 0x100);  // beyond the GDT's limit
    ASSERT_TRUE(f);
    EXPECT_EQ(f->vector, vec::GP);
    EXPECT_EQ(f->error_code, 0x100u);
    f = load_fault("8e d8", kAbsentData);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->vector, vec::NP);
    EXPECT_EQ(f->error_code, kAbsentData);
    f = load_fault("8e d8", kExecuteOnly);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->vector, vec::GP);
    EXPECT_EQ(f->error_code, kExecuteOnly);
    f = load_fault("8e d0", kUserData);  // mov ss: RPL 3 at CPL 0
    ASSERT_TRUE(f);
    EXPECT_EQ(f->vector, vec::GP);
    EXPECT_EQ(f->error_code, kUserData & ~3u);
    f = load_fault("8e d0", kReadOnlyData);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->vector, vec::GP);
    f = load_fault("8e d0", kAbsentData);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->vector, vec::SS);
    EXPECT_EQ(f->error_code, kAbsentData);
    f = load_fault("8e d0", 0);
    ASSERT_TRUE(f) << "a null SS outside 64-bit mode";
    EXPECT_EQ(f->error_code, 0u);

    EXPECT_FALSE(load_fault("8e d8", kCode32)) << "readable code may go into DS";
    EXPECT_FALSE(load_fault("8e d8", 0)) << "a null DS";
    EXPECT_TRUE(cpu.seg[DS].unusable);
    cpu.rip = kCodeAddress;
    f = fault_of("8b 03");  // mov eax, [ebx] through the null DS
    ASSERT_TRUE(f);
    EXPECT_EQ(f->vector, vec::GP);
    EXPECT_FALSE(load_fault("8e d0", kData16));
    EXPECT_EQ(cpu.interrupt_shadow, 2) << "MOV SS blocks interrupts for one instruction";
    EXPECT_EQ(cpu.stack_bits, 16u);
}

TEST_F(SystemTest, NullStackSegmentIn64BitModeOnlyBelowCpl3) {
    long_mode(0);
    cpu.gpr[0] = 0;
    EXPECT_FALSE(fault_of("8e d0"));
    EXPECT_TRUE(cpu.seg[SS].unusable);
    long_mode(3);
    cpu.gpr[0] = 3;
    auto f = fault_of("8e d0");
    ASSERT_TRUE(f);
    EXPECT_EQ(f->vector, vec::GP);
}

TEST_F(SystemTest, PushAndPopSegmentRegisters) {
    protected_mode(0);
    cpu.seg[FS] = cached(kData);
    run_code("0f a0 0f a9");  // push fs; pop gs
    EXPECT_EQ(cpu.seg[GS].selector, kData);
    EXPECT_EQ(cpu.gpr[4], kKernelStackTop);
    // lss esp, [eax] with a far pointer at 0x7000: offset 0x9100, selector kData
    ASSERT_TRUE(memory().write_obj(0x7000, uint32_t{0x9100}));
    ASSERT_TRUE(memory().write_obj(0x7004, kData));
    cpu.gpr[0] = 0x7000;
    run_code("0f b2 20");
    EXPECT_EQ(cpu.gpr[4], 0x9100u);
    EXPECT_EQ(cpu.seg[SS].selector, kData);
}

// --- Control registers, MSRs, privileged instructions ---

TEST_F(SystemTest, ControlRegisterWritesWithReservedOrInconsistentBitsFault) {
    long_mode(0);
    auto write_fault = [&](const char* hex, uint64_t value) {
        cpu.rip = kCodeAddress;
        cpu.gpr[0] = value;
        auto f = fault_of(hex);
        return f && f->vector == vec::GP && f->error_code == 0;
    };
    EXPECT_TRUE(write_fault("0f 22 e0", cpu.cr4 | (1u << 20))) << "SMEP is not advertised";
    EXPECT_TRUE(write_fault("0f 22 e0", cpu.cr4 & ~cr4::PAE)) << "PAE is needed in IA-32e mode";
    EXPECT_TRUE(write_fault("0f 22 c0", cpu.cr0 & ~cr0::PE)) << "PG without PE";
    EXPECT_TRUE(write_fault("0f 22 c0", cpu.cr0 | (1ull << 32))) << "CR0[63:32]";
    EXPECT_TRUE(write_fault("0f 22 d8", cpu.cr3 | (1ull << 63))) << "no PCID: bit 63 is reserved";
    EXPECT_TRUE(write_fault("0f 22 d8", 1ull << 45)) << "beyond MAXPHYADDR";
    EXPECT_FALSE(write_fault("0f 22 e0", cpu.cr4 | cr4::PGE));
    EXPECT_TRUE(cpu.cr4 & cr4::PGE);
    cpu.rip = kCodeAddress;
    auto f = fault_of("0f 20 c8");  // mov rax, cr1
    ASSERT_TRUE(f);
    EXPECT_EQ(f->vector, vec::UD);
}

TEST_F(SystemTest, MsrAccessesAndTheirFaults) {
    long_mode(0);
    auto wrmsr = [&](uint32_t index, uint64_t value) {
        cpu.rip = kCodeAddress;
        cpu.gpr[1] = index;
        cpu.gpr[0] = value & 0xffff'ffffu;
        cpu.gpr[2] = value >> 32;
        return !fault_of("0f 30");
    };
    auto rdmsr = [&](uint32_t index) -> std::optional<uint64_t> {
        cpu.rip = kCodeAddress;
        cpu.gpr[1] = index;
        if (fault_of("0f 32")) return std::nullopt;
        return (cpu.gpr[2] << 32) | cpu.gpr[0];
    };
    EXPECT_FALSE(wrmsr(0x1234'5678, 0));
    EXPECT_FALSE(rdmsr(0x1234'5678));
    EXPECT_FALSE(wrmsr(msr_index::Efer, cpu.efer | 2)) << "reserved EFER bit";
    EXPECT_FALSE(wrmsr(msr_index::Efer, cpu.efer & ~efer::LME)) << "LME while paging";
    EXPECT_TRUE(wrmsr(msr_index::Efer, cpu.efer & ~efer::NXE));
    EXPECT_EQ(rdmsr(msr_index::Efer), efer::LME | efer::LMA | efer::SCE);
    EXPECT_FALSE(wrmsr(msr_index::Lstar, 0x8000'0000'0000ull)) << "non-canonical";
    EXPECT_TRUE(wrmsr(msr_index::Lstar, 0xffff'ffff'8100'0000ull));
    EXPECT_EQ(rdmsr(msr_index::Lstar), 0xffff'ffff'8100'0000ull);
    EXPECT_FALSE(wrmsr(msr_index::Pat, 0x0007'0406'0007'0402ull)) << "memory type 2 does not exist";
    EXPECT_TRUE(wrmsr(msr_index::Pat, 0x0007'0106'0007'0406ull));
    EXPECT_EQ(cpu.msr.pat, 0x0007'0106'0007'0406ull);
    EXPECT_FALSE(wrmsr(msr_index::MtrrPhysBase0, 0x3)) << "variable MTRR of type 3";
    EXPECT_TRUE(wrmsr(msr_index::MtrrPhysBase0 + 1, 0xff'c000'0800ull));
    EXPECT_FALSE(wrmsr(msr_index::MtrrCap, 0)) << "read-only";
    // Immune to what speculation-based attacks need: RDCL_NO (no page-table isolation) and
    // ITS_NO (no return thunks) among the rest; read-only.
    ASSERT_TRUE(rdmsr(msr_index::ArchCapabilities));
    EXPECT_EQ(*rdmsr(msr_index::ArchCapabilities) & ((1ull << 62) | 1), (1ull << 62) | 1);
    EXPECT_FALSE(wrmsr(msr_index::ArchCapabilities, 0)) << "read-only";
    EXPECT_TRUE(wrmsr(msr_index::GsBase, 0x1234'5000));
    EXPECT_EQ(cpu.seg[GS].base, 0x1234'5000u);
    EXPECT_TRUE(wrmsr(msr_index::KernelGsBase, 0x6000));
    run_code("0f 01 f8");  // swapgs
    EXPECT_EQ(cpu.seg[GS].base, 0x6000u);
    EXPECT_EQ(cpu.msr.kernel_gs_base, 0x1234'5000u);
    EXPECT_FALSE(wrmsr(msr_index::TscAux, 1ull << 32));
    EXPECT_FALSE(wrmsr(0x48, 0)) << "IA32_SPEC_CTRL is not advertised";
    // kvm-unit-tests' msr counts MCA banks by IA32_MCG_CAP: none, and the banks' MSRs are absent.
    EXPECT_EQ(rdmsr(msr_index::McgCap), 0u);
    EXPECT_FALSE(wrmsr(msr_index::McgCap, 0)) << "read-only";
    EXPECT_EQ(rdmsr(msr_index::McgStatus), 0u);
    EXPECT_TRUE(wrmsr(msr_index::McgStatus, 0));
    EXPECT_FALSE(wrmsr(msr_index::McgStatus, 4)) << "no machine check in progress to set MCIP for";
    EXPECT_FALSE(rdmsr(0x400)) << "IA32_MC0_CTL";
}

TEST_F(SystemTest, PrivilegedInstructionsAtCpl3RaiseGp0) {
    long_mode(3);
    for (const char* hex : {"0f 20 c0", "0f 22 d8", "0f 32", "0f 30", "f4", "0f 01 f8", "0f 06", "0f 09", "0f 01 38",
                            "0f 21 f8", "48 0f 07"}) {
        cpu.rip = kCodeAddress;
        auto f = fault_of(hex);
        ASSERT_TRUE(f) << hex;
        EXPECT_EQ(f->vector, vec::GP) << hex;
        EXPECT_EQ(f->error_code, 0u) << hex;
    }
    EXPECT_FALSE(cpu.halted);
}

TEST_F(SystemTest, HltHalts) {
    long_mode(0);
    step("f4");
    EXPECT_TRUE(cpu.halted);
    EXPECT_EQ(cpu.rip, kCodeAddress + 1) << "an interrupt returns past HLT";
}

TEST_F(SystemTest, DebugRegisters) {
    long_mode(0);
    cpu.gpr[0] = 0x1'0000'0000ull;
    EXPECT_TRUE(fault_of("0f 23 f8")) << "DR7[63:32] must be 0";
    cpu.rip = kCodeAddress;
    cpu.gpr[0] = 0x0000'0401 | (1u << 12);
    ::testing::internal::CaptureStderr();
    EXPECT_FALSE(fault_of("0f 23 f8"));  // mov dr7, rax
    EXPECT_EQ(cpu.dr7, 0x401u) << "bit 12 is reserved (0), bit 10 reads 1";
    // L0 enables a breakpoint that cannot trigger yet: the user is told, once.
    EXPECT_NE(::testing::internal::GetCapturedStderr().find("hardware breakpoints (DR7 0x401) are not implemented"),
              std::string::npos);
    cpu.rip = kCodeAddress;
    EXPECT_FALSE(fault_of("0f 21 e8"));  // mov rax, dr5 = DR7 without CR4.DE
    EXPECT_EQ(cpu.gpr[0], 0x401u);
    cpu.cr4 |= 1u << 3;  // DE
    cpu.rip = kCodeAddress;
    auto f = fault_of("0f 21 e8");
    ASSERT_TRUE(f);
    EXPECT_EQ(f->vector, vec::UD);
}

TEST_F(SystemTest, DescriptorTableInstructions) {
    long_mode(0);
    write_tss64(kKernelStackTop, kIstStackTop);
    cpu.tr = {};
    // The TSS descriptor is available (type 9): LTR marks it busy.
    cpu.gpr[0] = kTssSelector;
    run_code("0f 00 d8");  // ltr ax
    EXPECT_EQ(cpu.tr.selector, kTssSelector);
    EXPECT_EQ(cpu.tr.base, kTss);
    EXPECT_EQ((read64(kGdt + kTssSelector) >> 40) & 0xf, 0xbu);
    cpu.gpr[0] = kTssSelector;
    auto f = fault_of("0f 00 d8");
    ASSERT_TRUE(f) << "a busy TSS";
    EXPECT_EQ(f->vector, vec::GP);
    EXPECT_EQ(f->error_code, kTssSelector);

    cpu.rip = kCodeAddress;
    cpu.gpr[0] = 0x7000;
    run_code("0f 01 00");  // sgdt [rax]
    EXPECT_EQ(read16(0x7000), kGdtLimit);
    EXPECT_EQ(read64(0x7002), kGdt);

    cpu.gpr[0] = kUserCode64;
    run_code("0f 02 c0");  // lar eax, ax
    EXPECT_TRUE(cpu.flags.zf());
    EXPECT_EQ(cpu.gpr[0], 0x00a0'fb00u);
    cpu.gpr[0] = kData;
    run_code("0f 03 c0");  // lsl eax, ax
    EXPECT_TRUE(cpu.flags.zf());
    EXPECT_EQ(cpu.gpr[0], 0xffff'ffffu);
    cpu.gpr[0] = 0x100;
    run_code("0f 03 c0");
    EXPECT_FALSE(cpu.flags.zf()) << "beyond the GDT: ZF clear, no fault";
    cpu.gpr[0] = kReadOnlyData;
    run_code("0f 00 e8");  // verw ax
    EXPECT_FALSE(cpu.flags.zf());
    run_code("0f 00 e0");  // verr ax
    EXPECT_TRUE(cpu.flags.zf());
}

TEST_F(SystemTest, LongModeCallGateToRing0AndRetfqBack) {
    long_mode(3);
    write_tss64(kKernelStackTop, kIstStackTop);
    write64(kGdt + kCallGate, gate(kCode64, kHandler, 0xc, 3));  // 64-bit call gate: 16 bytes
    write64(kGdt + kCallGate + 8, 0);
    ASSERT_TRUE(memory().write_obj(0x7000, uint32_t{0}));  // the offset is the gate's
    ASSERT_TRUE(memory().write_obj(0x7004, uint16_t{kCallGate | 3}));
    cpu.gpr[0] = 0x7000;
    uint64_t next = cpu.rip + 2;
    step("ff 18");  // call far [rax]
    EXPECT_EQ(cpu.rip, kHandler);
    EXPECT_EQ(cpu.cpl, 0u);
    EXPECT_EQ(cpu.seg[SS].selector, 0) << "a null SS of RPL 0";
    EXPECT_EQ(cpu.gpr[4], kKernelStackTop - 32);
    EXPECT_EQ(read64(kKernelStackTop - 8), kUserData);
    EXPECT_EQ(read64(kKernelStackTop - 16), kUserStackTop);
    EXPECT_EQ(read64(kKernelStackTop - 24), kUserCode64);
    EXPECT_EQ(read64(kKernelStackTop - 32), next);
    step("48 cb");  // retfq
    EXPECT_EQ(cpu.cpl, 3u);
    EXPECT_EQ(cpu.rip, next);
    EXPECT_EQ(cpu.gpr[4], kUserStackTop);
    EXPECT_EQ(cpu.seg[SS].selector, kUserData);
}

TEST_F(SystemTest, TaskGatesAreMissingAndRaiseGp) {
    protected_mode(0);
    gate32(vec::GP, kHandler);
    write64(kIdt + 0x30 * 8, gate(kTssSelector, 0, 5, 0));  // a task gate
    step("cd 30");
    EXPECT_EQ(cpu.rip, kHandler);
    EXPECT_EQ(read32(cpu.gpr[4]), 0x30u * 8 + 2);
}

TEST_F(SystemTest, IretdEntersVirtual8086ModeAndAnInterruptLeavesIt) {
    protected_mode(0);
    write_tss32(static_cast<uint32_t>(kKernelStackTop), kData);
    gate32(0x21, kHandler, 3);
    gate32(vec::GP, kHandler + 0x100);
    uint32_t frame[9] = {0x10, 0x2000, static_cast<uint32_t>(rflags::VM | rflags::IOPL | rflags::FIXED1), 0x0ff0,
                         0x3000, 0x4000, 0x5000, 0x6000, 0x7000};
    uint64_t sp = kKernelStackTop - 0x100;
    for (unsigned i = 0; i < 9; ++i) ASSERT_TRUE(memory().write_obj(sp + 4 * i, frame[i]));
    cpu.gpr[4] = sp;
    step("cf");  // iretd
    EXPECT_TRUE(cpu.v86);
    EXPECT_EQ(cpu.cpl, 3u);
    EXPECT_EQ(cpu.seg[CS].base, 0x2'0000u);
    EXPECT_EQ(cpu.rip, 0x10u);
    EXPECT_EQ(cpu.seg[SS].base, 0x3'0000u);
    EXPECT_EQ(cpu.seg[DS].base, 0x5'0000u);
    EXPECT_EQ(cpu.seg[GS].selector, 0x7000);
    EXPECT_EQ(cpu.gpr[4], 0x0ff0u);

    step("cd 21");  // int 0x21 from virtual-8086 mode, IOPL 3
    EXPECT_FALSE(cpu.v86);
    EXPECT_EQ(cpu.cpl, 0u);
    EXPECT_EQ(cpu.rip, kHandler);
    EXPECT_EQ(cpu.gpr[4], kKernelStackTop - 36);
    EXPECT_EQ(read32(kKernelStackTop - 36), 0x12u) << "EIP";
    EXPECT_EQ(read32(kKernelStackTop - 32), 0x2000u) << "CS";
    EXPECT_TRUE(read32(kKernelStackTop - 28) & rflags::VM) << "EFLAGS";
    EXPECT_EQ(read32(kKernelStackTop - 24), 0x0ff0u) << "ESP";
    EXPECT_EQ(read32(kKernelStackTop - 20), 0x3000u) << "SS";
    EXPECT_EQ(read32(kKernelStackTop - 16), 0x4000u) << "ES";
    EXPECT_EQ(read32(kKernelStackTop - 12), 0x5000u) << "DS";
    EXPECT_EQ(read32(kKernelStackTop - 8), 0x6000u) << "FS";
    EXPECT_EQ(read32(kKernelStackTop - 4), 0x7000u) << "GS";
    EXPECT_EQ(cpu.seg[DS].selector, 0);
    EXPECT_TRUE(cpu.seg[GS].unusable);

    // Back in virtual-8086 mode with IOPL 0, INT n is a #GP(0).
    frame[2] = static_cast<uint32_t>(rflags::VM | rflags::FIXED1);
    for (unsigned i = 0; i < 9; ++i) ASSERT_TRUE(memory().write_obj(sp + 4 * i, frame[i]));
    cpu.gpr[4] = sp;
    cpu.rip = kHandler + 0x200;
    step("cf");
    ASSERT_TRUE(cpu.v86);
    step("cd 21");
    EXPECT_EQ(cpu.rip, kHandler + 0x100);
    EXPECT_EQ(read32(kKernelStackTop - 40), 0u) << "#GP(0)";
}

TEST_F(SystemTest, RealModeExceptionsGoThroughTheIvt) {
    enter_real_mode(0x1000, 0);
    cpu.gpr[4] = 0x8000;
    ASSERT_TRUE(memory().write_obj(vec::UD * 4, uint32_t{0x2000'0000}));
    step("0f 0b");  // ud2
    EXPECT_EQ(cpu.seg[CS].selector, 0x2000);
    EXPECT_EQ(cpu.rip, 0u);
    EXPECT_EQ(read16(0x7ffa), 0) << "the faulting IP";
    EXPECT_EQ(cpu.gpr[4], 0x8000u - 6) << "no error code in real mode";
}

TEST_F(SystemTest, LmswCannotClearPeAndA16BitLgdtKeeps24BitsOfBase) {
    enter_real_mode(0x1000, 0);
    ASSERT_TRUE(memory().write_obj(0x7000, uint16_t{0x27}));
    ASSERT_TRUE(memory().write_obj(0x7002, uint32_t{0xfedc'ba98}));
    run_code("0f 01 16 00 70");  // lgdt [0x7000] with a 16-bit operand size
    EXPECT_EQ(cpu.gdtr.base, 0xdc'ba98u);
    EXPECT_EQ(cpu.gdtr.limit, 0x27);
    cpu.gpr[0] = 1;
    run_code("0f 01 f0");  // lmsw ax: sets PE
    EXPECT_TRUE(cpu.cr0 & cr0::PE);
    cpu.gpr[0] = 0;
    run_code("0f 01 f0");
    EXPECT_TRUE(cpu.cr0 & cr0::PE) << "LMSW never clears PE";
}

TEST_F(SystemTest, Cr3LoadsFlushButGlobalPagesStayUntilInvlpg) {
    long_mode(0);
    write64(0x20'0000, 0xaaaa);
    write64(0x40'0000, 0xbbbb);
    auto read = [&] { return cpu.read<uint64_t>(DS, 0x20'0000); };
    EXPECT_EQ(read(), 0xaaaau);
    write64(kPd + 8, 0x40'0000 | 0x87);  // remap 2-4 MiB
    cpu.gpr[0] = cpu.cr3;
    run_code("0f 22 d8");  // mov cr3, rax
    EXPECT_EQ(read(), 0xbbbbu);

    cpu.gpr[0] = cpu.cr4 | cr4::PGE;
    run_code("0f 22 e0");
    write64(kPd + 8, 0x20'0000 | 0x187);  // global
    cpu.gpr[0] = cpu.cr3;
    run_code("0f 22 d8");
    EXPECT_EQ(read(), 0xaaaau);
    write64(kPd + 8, 0x40'0000 | 0x187);
    cpu.gpr[0] = cpu.cr3;
    run_code("0f 22 d8");
    EXPECT_EQ(read(), 0xaaaau) << "a global translation survives a CR3 load";
    cpu.gpr[0] = 0x20'0000;
    run_code("0f 01 38");  // invlpg [rax]
    EXPECT_EQ(read(), 0xbbbbu);
}

// --- I/O ---

class PortRecorder : public BusDevice {
public:
    void read(uint64_t offset, std::span<uint8_t> data) override {
        for (auto& b : data) b = static_cast<uint8_t>(next++ + offset);
    }
    void write(uint64_t offset, std::span<const uint8_t> data) override {
        for (uint8_t b : data) written.push_back({offset, b});
    }
    uint8_t next = 0x40;
    std::vector<std::pair<uint64_t, uint8_t>> written;
};

TEST_F(SystemTest, IoPermissionBitmapAtCpl3) {
    auto device = std::make_shared<PortRecorder>();
    ASSERT_TRUE(pio.add(0x80, 2, device, "recorder"));
    long_mode(3);
    write_tss64(kKernelStackTop, kIstStackTop, {0x80});
    cpu.gpr[0] = 0x5a;
    EXPECT_FALSE(fault_of("e6 80")) << "port 0x80 is open in the bitmap";
    ASSERT_EQ(device->written.size(), 1u);
    EXPECT_EQ(device->written[0].second, 0x5a);
    for (const char* hex : {"e6 81", "66 e7 80"}) {
        cpu.rip = kCodeAddress;
        auto f = fault_of(hex);
        ASSERT_TRUE(f) << hex;
        EXPECT_EQ(f->vector, vec::GP);
    }
    cpu.rip = kCodeAddress;
    cpu.gpr[2] = 0x400;  // beyond the bitmap
    EXPECT_TRUE(fault_of("ee"));
    cpu.rip = kCodeAddress;
    cpu.set_rflags(cpu.rflags() | rflags::IOPL);  // IOPL 3: no bitmap
    EXPECT_FALSE(fault_of("e6 81"));
    EXPECT_EQ(device->written.size(), 2u);
}

TEST_F(SystemTest, RepInsAndOuts) {
    auto device = std::make_shared<PortRecorder>();
    ASSERT_TRUE(pio.add(0x60, 4, device, "recorder"));
    long_mode(0);
    cpu.gpr[2] = 0x60;
    cpu.gpr[1] = 5;
    cpu.gpr[7] = 0x7000;
    run_code("f3 6c");  // rep insb
    EXPECT_EQ(cpu.gpr[1], 0u);
    EXPECT_EQ(cpu.gpr[7], 0x7005u);
    EXPECT_EQ(memory().read_obj<uint32_t>(0x7000).value(), 0x4342'4140u);
    cpu.gpr[1] = 2;
    cpu.gpr[6] = 0x7000;
    run_code("66 f3 6f");  // rep outsw
    EXPECT_EQ(cpu.gpr[6], 0x7004u);
    ASSERT_EQ(device->written.size(), 4u);
    EXPECT_EQ(device->written[2].second, 0x42);
    cpu.gpr[0] = ~0ull;
    run_code("ed");  // in eax, dx
    EXPECT_EQ(cpu.gpr[0] >> 32, 0u) << "zero-extended";
}

// --- CPUID and the TSC ---

TEST_F(SystemTest, CpuidPresentsOneCoherentIntelCpu) {
    long_mode(0);
    cpu.gpr[0] = 0;
    run_code("0f a2");
    char vendor[13] = {};
    std::memcpy(vendor, &cpu.gpr[3], 4);
    std::memcpy(vendor + 4, &cpu.gpr[2], 4);
    std::memcpy(vendor + 8, &cpu.gpr[1], 4);
    EXPECT_STREQ(vendor, "GenuineIntel");
    cpu.gpr[0] = 1;
    run_code("0f a2");
    EXPECT_EQ((cpu.gpr[0] >> 8) & 0xf, 6u) << "family 6";
    EXPECT_TRUE(cpu.gpr[1] & (1u << 20)) << "SSE4.2";
    EXPECT_TRUE(cpu.gpr[1] & (1u << 31)) << "hypervisor";
    EXPECT_FALSE(cpu.gpr[1] & (1u << 26)) << "no XSAVE";
    EXPECT_FALSE(cpu.gpr[1] & (1u << 3)) << "no MONITOR";
    cpu.gpr[0] = 0x8000'0002;
    run_code("0f a2");
    char brand[5] = {};
    std::memcpy(brand, &cpu.gpr[0], 4);
    EXPECT_STREQ(brand, "Stra");
    cpu.gpr[0] = 0x15;
    run_code("0f a2");
    EXPECT_EQ(cpu.gpr[1], 1'000'000'000u) << "a 1 GHz crystal";

    CpuidTable table = soft_cpuid_table(3, 4);
    cpu.cpuid = &table;
    cpu.gpr[0] = 0xb;
    cpu.gpr[1] = 1;
    run_code("0f a2");
    EXPECT_EQ(cpu.gpr[2], 3u) << "x2APIC ID";
    EXPECT_EQ(cpu.gpr[3], 4u) << "logical processors at the core level";
    cpu.cpuid = nullptr;
}

TEST_F(SystemTest, TscCountsAndFollowsWrites) {
    long_mode(0);
    run_code("0f 31");
    uint64_t first = (cpu.gpr[2] << 32) | cpu.gpr[0];
    run_code("0f 31");
    uint64_t second = (cpu.gpr[2] << 32) | cpu.gpr[0];
    EXPECT_GT(second, first);
    ASSERT_TRUE(write_msr(cpu, msr_index::Tsc, 1ull << 50));
    run_code("0f 01 f9");  // rdtscp
    uint64_t third = (cpu.gpr[2] << 32) | cpu.gpr[0];
    EXPECT_GE(third, 1ull << 50);
    EXPECT_LT(third, (1ull << 50) + 10'000'000'000ull);
    cpu.cr4 |= 1u << 2;  // TSD
    long_mode(3);
    cpu.cr4 |= 1u << 2;
    auto f = fault_of("0f 31");
    ASSERT_TRUE(f);
    EXPECT_EQ(f->vector, vec::GP);
}

TEST_F(SystemTest, Int3AndIntoAreSoftwareExceptions) {
    long_mode(3);
    write_tss64(kKernelStackTop, kIstStackTop);
    gate64(vec::BP, kHandler, 3);
    uint64_t next = cpu.rip + 1;
    step("cc");
    EXPECT_EQ(cpu.rip, kHandler);
    EXPECT_EQ(read64(cpu.gpr[4]), next) << "the return address is past INT3";
}

}  // namespace
}  // namespace strata::soft
