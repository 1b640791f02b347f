// The compiled operand forms (exec/forms.hpp) against the generic handlers they stand in for:
// the same instruction from the same state — random registers and flags, memory behind RBX —
// must leave the same registers, RFLAGS and memory, or raise the same fault. Also that the
// decoder does pick a compiled form for these shapes, and keeps the generic handler for the
// shapes the forms leave out (AH-BH, LOCK).
#include <Zydis/Zydis.h>

#include <algorithm>
#include <random>

#include "cpu/soft/decode/decoder.hpp"
#include "soft_fixture.hpp"

namespace strata::soft {
namespace {

constexpr uint64_t kData = 0x20'0000;

struct Outcome {
    std::array<uint64_t, 16> gpr{};
    uint64_t rflags = 0;
    std::array<uint64_t, 4> memory{};
    std::optional<uint8_t> fault;
};

class FormsTest : public SoftCpuFixture {
protected:
    Outcome run(Handler handler, const Insn& insn, const CpuState& start, const std::array<uint64_t, 4>& memory) {
        cpu.set_state(start);
        for (unsigned i = 0; i < memory.size(); ++i) write64(kData + 8 * i, memory[i]);
        Outcome out;
        cpu.next_rip = cpu.rip + insn.length;
        try {
            handler(cpu, insn);
        } catch (const GuestFault& fault) {
            out.fault = fault.vector;
        }
        std::copy_n(cpu.gpr.begin(), out.gpr.size(), out.gpr.begin());
        out.rflags = cpu.rflags();
        for (unsigned i = 0; i < memory.size(); ++i) out.memory[i] = read64(kData + 8 * i);
        return out;
    }

    // Runs `hex` through its compiled form and through the generic handler from 200 random
    // states and compares them.
    void expect_same_as_generic(const std::string& hex) {
        SCOPED_TRACE(hex);
        std::vector<uint8_t> bytes = hex_bytes(hex);
        Insn insn;
        Decoder decoder;
        enter_long_mode();
        ASSERT_EQ(decoder.decode(CodeMode::Long64, 64, bytes, insn).status, DecodeStatus::Ok);
        Handler generic = handler_table().find(static_cast<ZydisMnemonic>(insn.mnemonic));
        ASSERT_NE(insn.exec, generic) << "no compiled form was picked";
        std::mt19937_64 random(7);
        for (int round = 0; round < 200; ++round) {
            CpuState start = cpu.state();
            for (uint64_t& r : start.gpr) r = random();
            if (round % 4 == 0) start.gpr[1] &= 0xff;  // small values: zero and carry results
            start.gpr[3] = kData;                        // RBX addresses the data
            start.rflags = (random() & rflags::kArith) | rflags::FIXED1;
            std::array<uint64_t, 4> memory{random(), random(), random(), random()};
            Outcome compiled = run(insn.exec, insn, start, memory);
            Outcome reference = run(generic, insn, start, memory);
            ASSERT_EQ(compiled.gpr, reference.gpr) << "round " << round;
            ASSERT_EQ(compiled.rflags, reference.rflags) << "round " << round;
            ASSERT_EQ(compiled.memory, reference.memory) << "round " << round;
            ASSERT_EQ(compiled.fault, reference.fault) << "round " << round;
        }
    }
};

TEST_F(FormsTest, AluFormsMatchTheGenericHandlers) {
    for (const char* op : {"01", "29", "21", "09", "31"}) {  // ADD, SUB, AND, OR, XOR r/m, r
        std::string o = op;
        expect_same_as_generic("48 " + o + " c8");     // r64, r64
        expect_same_as_generic(o + " c8");             // r32, r32
        expect_same_as_generic("66 " + o + " c8");     // r16, r16
        expect_same_as_generic("48 " + o + " 4b 08");  // [rbx+8], rcx
        expect_same_as_generic(o + " 4b 09");          // [rbx+9], ecx (unaligned)
    }
    for (const char* op : {"03", "2b", "23", "0b", "33", "3b"}) {  // ADD..CMP r, r/m
        std::string o = op;
        expect_same_as_generic("48 " + o + " 4b 10");  // r64, [rbx+16]
        expect_same_as_generic(o + " 4b 10");          // r32, [rbx+16]
    }
    expect_same_as_generic("00 c8");                // add al, cl
    expect_same_as_generic("40 30 ee");             // xor sil, bpl
    expect_same_as_generic("48 83 c0 ff");          // add rax, -1 (imm8 sign-extended)
    expect_same_as_generic("83 e8 01");             // sub eax, 1
    expect_same_as_generic("48 81 e1 00 00 00 80"); // and rcx, imm32 sign-extended
    expect_same_as_generic("66 83 f0 80");          // xor ax, -128
    expect_same_as_generic("48 83 7b 08 05");       // cmp qword [rbx+8], 5
    expect_same_as_generic("83 43 04 7f");          // add dword [rbx+4], 127
    expect_same_as_generic("48 85 c8");             // test rax, rcx
    expect_same_as_generic("85 4b 08");             // test [rbx+8], ecx
    expect_same_as_generic("f6 c1 01");             // test cl, 1
    expect_same_as_generic("48 39 c8");             // cmp rax, rcx
}

TEST_F(FormsTest, MoveFormsMatchTheGenericHandlers) {
    expect_same_as_generic("48 89 c8");             // mov rax, rcx
    expect_same_as_generic("89 c8");                // mov eax, ecx (zero-extends)
    expect_same_as_generic("66 89 c8");             // mov ax, cx (merges)
    expect_same_as_generic("88 c8");                // mov al, cl
    expect_same_as_generic("48 8b 43 08");          // mov rax, [rbx+8]
    expect_same_as_generic("8a 43 0b");             // mov al, [rbx+11]
    expect_same_as_generic("48 89 4b 08");          // mov [rbx+8], rcx
    expect_same_as_generic("66 89 4b 03");          // mov [rbx+3], cx
    expect_same_as_generic("48 c7 43 08 ff ff ff ff");  // mov qword [rbx+8], -1
    expect_same_as_generic("c6 43 01 aa");          // mov byte [rbx+1], 0xaa
    expect_same_as_generic("48 b8 88 77 66 55 44 33 22 11");  // mov rax, imm64
    expect_same_as_generic("b8 78 56 34 12");       // mov eax, imm32
    expect_same_as_generic("48 0f b6 c1");          // movzx rax, cl
    expect_same_as_generic("0f b7 43 08");          // movzx eax, word [rbx+8]
    expect_same_as_generic("48 0f be 43 08");       // movsx rax, byte [rbx+8]
    expect_same_as_generic("0f bf c1");             // movsx eax, cx
    expect_same_as_generic("48 63 c1");             // movsxd rax, ecx
    expect_same_as_generic("48 63 43 0c");          // movsxd rax, [rbx+12]
    expect_same_as_generic("48 8d 44 8b 10");       // lea rax, [rbx+rcx*4+16]
    expect_same_as_generic("8d 44 8b 10");          // lea eax, [rbx+rcx*4+16]
    expect_same_as_generic("67 48 8d 44 8b 10");    // lea rax, [ebx+ecx*4+16] (32-bit address)
}

TEST_F(FormsTest, ShiftFormsMatchTheGenericHandlers) {
    expect_same_as_generic("48 c1 c8 07");  // ror rax, 7
    expect_same_as_generic("c1 c0 05");     // rol eax, 5
    expect_same_as_generic("c1 c8 00");     // ror eax, 0 (no flags change; EAX zero-extended)
    expect_same_as_generic("48 d3 c0");     // rol rax, cl
    expect_same_as_generic("d3 c8");        // ror eax, cl
    expect_same_as_generic("48 d3 e0");     // shl rax, cl
    expect_same_as_generic("d1 e0");        // shl eax, 1
    expect_same_as_generic("c1 e0 1f");     // shl eax, 31
    expect_same_as_generic("d3 e8");        // shr eax, cl
    expect_same_as_generic("48 d1 e8");     // shr rax, 1
    expect_same_as_generic("c1 f8 1f");     // sar eax, 31
    expect_same_as_generic("48 d3 f8");     // sar rax, cl
    expect_same_as_generic("48 c1 f8 3f");  // sar rax, 63
}

TEST_F(FormsTest, MultiplyFormsMatchTheGenericHandler) {
    expect_same_as_generic("48 0f af c1");              // imul rax, rcx
    expect_same_as_generic("0f af c1");                 // imul eax, ecx
    expect_same_as_generic("0f af 43 08");              // imul eax, [rbx+8]
    expect_same_as_generic("48 0f af 43 08");           // imul rax, [rbx+8]
    expect_same_as_generic("48 6b c1 07");              // imul rax, rcx, 7
    expect_same_as_generic("6b c1 80");                 // imul eax, ecx, -128
    expect_same_as_generic("69 c1 78 56 34 12");        // imul eax, ecx, 0x12345678
    expect_same_as_generic("48 69 43 08 ff ff ff ff");  // imul rax, [rbx+8], -1
}

TEST_F(FormsTest, UnaryFormsMatchTheGenericHandlers) {
    // INC eax, rax, ax, cl; DEC rcx, r10w, sil; NEG eax, rax, bl; NOT ecx, rcx, dx.
    for (const char* hex : {"ff c0", "48 ff c0", "66 ff c0", "fe c1", "48 ff c9", "66 41 ff ca", "40 fe ce", "f7 d8",
                            "48 f7 d8", "f6 db", "f7 d1", "48 f7 d1", "66 f7 d2"})
        expect_same_as_generic(hex);
}

TEST_F(FormsTest, MemoryFaultsAreTheSame) {
    // RBX + 0x4000_0000 is beyond the identity map of the first GiB: a #PF either way.
    expect_same_as_generic("48 8b 83 00 00 00 40");  // mov rax, [rbx+0x40000000]
    expect_same_as_generic("48 01 8b 00 00 00 40");  // add [rbx+0x40000000], rcx
}

TEST_F(FormsTest, ShapesWithoutAFormKeepTheGenericHandler) {
    Decoder decoder;
    auto handler_of = [&](const std::string& hex) {
        Insn insn;
        decoder.decode(CodeMode::Long64, 64, hex_bytes(hex), insn);
        return insn.exec;
    };
    const HandlerTable& table = handler_table();
    EXPECT_EQ(handler_of("00 e0"), table.find(ZYDIS_MNEMONIC_ADD));        // add al, ah
    EXPECT_EQ(handler_of("f0 01 0b"), table.find(ZYDIS_MNEMONIC_ADD));     // lock add [rbx], ecx
    EXPECT_EQ(handler_of("88 e0"), table.find(ZYDIS_MNEMONIC_MOV));        // mov al, ah
    EXPECT_EQ(handler_of("0f b6 c4"), table.find(ZYDIS_MNEMONIC_MOVZX));   // movzx eax, ah
    EXPECT_EQ(handler_of("fe c4"), table.find(ZYDIS_MNEMONIC_INC));        // inc ah
    EXPECT_EQ(handler_of("f0 ff 03"), table.find(ZYDIS_MNEMONIC_INC));     // lock inc dword [rbx]
    EXPECT_EQ(handler_of("f7 13"), table.find(ZYDIS_MNEMONIC_NOT));        // not dword [rbx]
}

}  // namespace
}  // namespace strata::soft
