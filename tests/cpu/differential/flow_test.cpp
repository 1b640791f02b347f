// Differential cases of the data movement, control, stack, string and flag families
// (src/cpu/soft/exec/{data_movement,control,stack,string,flagops}.cpp): every instruction and
// operand size, with the edge cases the SDM singles out and the host (the reference) decides.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "cpu/differential/harness.hpp"

namespace strata::differential {
namespace {

using layout::kData;

// The sixteen condition codes in opcode order (SDM vol. 1 app. B), as Jcc/SETcc/CMOVcc suffixes.
constexpr const char* kConditions[16] = {"o", "no", "b", "nb", "z", "nz", "be", "nbe",
                                         "s", "ns", "p", "np", "l", "nl", "le", "nle"};
std::string condition_suffix(unsigned cc) { return kConditions[cc]; }

// Every combination of CF, PF, ZF, SF and OF.
std::vector<uint64_t> flag_combinations() {
    constexpr uint64_t kBits[] = {flag::CF, flag::PF, flag::ZF, flag::SF, flag::OF};
    std::vector<uint64_t> out;
    for (unsigned m = 0; m < 32; ++m) {
        uint64_t f = 0;
        for (unsigned b = 0; b < 5; ++b)
            if (m & (1u << b)) f |= kBits[b];
        out.push_back(f);
    }
    return out;
}

std::vector<uint8_t> counting_bytes(size_t n) {
    std::vector<uint8_t> out(n);
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(i * 7 + 1);
    return out;
}

// --- Data movement ---

std::vector<Case> data_movement_cases() {
    std::vector<Case> c = {
        // MOV
        {.name = "mov r64, imm64", .code = "movabs rax, 0x123456789abcdef0"},
        {.name = "mov r32, imm zero-extends", .code = "mov eax, 0x80000000", .regs = {{Gpr::Rax, ~0ull}}},
        {.name = "mov r16, imm merges", .code = "mov ax, 0x1234", .regs = {{Gpr::Rax, ~0ull}}},
        {.name = "mov r8 low and high", .code = "mov al, 0x12; mov ah, 0x34; mov sil, 0x56; mov r9b, 0x78",
         .regs = {{Gpr::Rax, ~0ull}, {Gpr::Rsi, ~0ull}, {Gpr::R9, ~0ull}}},
        {.name = "mov r/m64, imm32 sign-extends",
         .code = "mov rbx, -5; mov qword ptr [DATA], -2; mov dword ptr [DATA + 8], -3; mov word ptr [DATA + 16], -4; "
                 "mov byte ptr [DATA + 24], -5"},
        {.name = "mov register to register at each size",
         .code = "mov rbx, rax; mov ecx, eax; mov dx, ax; mov sil, al; mov bh, al",
         .regs = {{Gpr::Rax, 0x1122334455667788}, {Gpr::Rcx, ~0ull}, {Gpr::Rdx, ~0ull}, {Gpr::Rsi, ~0ull}}},
        {.name = "mov loads and stores at each size",
         .code = "mov rax, [DATA]; mov ebx, [DATA + 8]; mov cx, [DATA + 16]; mov dl, [DATA + 24]; "
                 "mov [DATA + 32], rax; mov [DATA + 40], ebx; mov [DATA + 48], cx; mov [DATA + 56], dl",
         .regs = {{Gpr::Rbx, ~0ull}, {Gpr::Rcx, ~0ull}, {Gpr::Rdx, ~0ull}},
         .data = qwords({0x8877665544332211, 0xffeeddccbbaa9988, 0x1234, 0x56})},
        {.name = "mov moffs forms", .code = "movabs eax, [DATA + 8]; mov rbx, rax; movabs rax, [DATA]; "
                                           "movabs [DATA + 16], al; movabs [DATA + 24], ax; movabs [DATA + 32], rax",
         .data = qwords({0x1111222233334444, 0x5555666677778888})},
        {.name = "mov rip-relative", .code = "mov rax, [rip + 0]; lea rbx, [rip + 0x40]"},
        {.name = "mov from unmapped memory faults", .code = "mov rax, 1; mov rbx, [UNMAPPED + 8]"},
        {.name = "mov to read-only memory faults", .code = "mov byte ptr [READONLY + 3], 1"},
        {.name = "mov to supervisor memory faults", .code = "mov qword ptr [SUPERVISOR], rax"},
        {.name = "mov non-canonical faults", .code = "movabs rbx, NONCANONICAL; mov rax, [rbx]"},
        // MOVZX, MOVSX, MOVSXD
        {.name = "movzx forms",
         .code = "movzx eax, bl; movzx rcx, bx; movzx dx, bl; movzx esi, byte ptr [DATA]; movzx rdi, word ptr [DATA]",
         .regs = {{Gpr::Rax, ~0ull}, {Gpr::Rbx, 0xfedc'ba98'7654'ff80}, {Gpr::Rcx, ~0ull}, {Gpr::Rdx, ~0ull},
                  {Gpr::Rsi, ~0ull}, {Gpr::Rdi, ~0ull}},
         .data = qwords({0x8081})},
        {.name = "movsx forms",
         .code = "movsx eax, bl; movsx rcx, bx; movsx dx, bl; movsx rsi, byte ptr [DATA]; movsx edi, word ptr [DATA]; "
                 "movsx ebp, bh",
         .regs = {{Gpr::Rax, ~0ull}, {Gpr::Rbx, 0x1234'5678'9abc'8f80}, {Gpr::Rcx, ~0ull}, {Gpr::Rdx, ~0ull}},
         .data = qwords({0x8081})},
        {.name = "movsxd forms",
         .code = "movsxd rax, ebx; movsxd rcx, dword ptr [DATA]; .byte 0x63, 0xd3; .byte 0x66, 0x63, 0xf3",
         .regs = {{Gpr::Rbx, 0x1'8000'0001}, {Gpr::Rdx, ~0ull}, {Gpr::Rsi, ~0ull}},
         .data = qwords({0xffff'ffff'7fff'fffe})},
        // LEA
        {.name = "lea base index scale displacement",
         .code = "lea rax, [rbx + rcx * 4 + 0x10]; lea rdx, [rbx * 8 - 1]; lea rsi, [r12 + r13 * 2]; lea rdi, [rbp]; "
                 "lea r8, [r13]; lea r9, [rbx - 0x80000000]",
         .regs = {{Gpr::Rbx, 0x1000}, {Gpr::Rcx, 0x0123'4567'89ab}, {Gpr::Rbp, 7}, {Gpr::R12, ~0ull},
                  {Gpr::R13, 0x4000'0000'0000'0000}}},
        {.name = "lea truncated to 32 and 16 bits",
         .code = "lea eax, [rbx + rcx]; lea dx, [rbx + rcx * 2 + 3]; lea esi, [rbx - 1]",
         .regs = {{Gpr::Rax, ~0ull}, {Gpr::Rbx, 0xffff'ffff'ffff'fff0}, {Gpr::Rcx, 0x20}, {Gpr::Rdx, ~0ull},
                  {Gpr::Rsi, ~0ull}}},
        {.name = "lea with 32-bit addresses",
         .code = "lea eax, [ebx + ecx * 8 - 1]; lea rdx, [ebx + ecx]; lea si, [ebx + 2]",
         .regs = {{Gpr::Rax, ~0ull}, {Gpr::Rbx, 0x1'ffff'fff0}, {Gpr::Rcx, 0x10}, {Gpr::Rdx, ~0ull},
                  {Gpr::Rsi, ~0ull}}},
        {.name = "lea rip-relative", .code = "lea rax, [rip - 0x100]; lea ecx, [rip + 0x1000]"},
        // XCHG
        {.name = "xchg registers at each size",
         .code = "xchg rax, rbx; xchg ecx, edx; xchg si, di; xchg al, ah; xchg r8b, r9b; xchg r10, rax",
         .regs = {{Gpr::Rax, 0x1111'2222'3333'4444}, {Gpr::Rbx, 0x5555'6666'7777'8888}, {Gpr::Rcx, ~0ull},
                  {Gpr::Rdx, 0x9999'aaaa'bbbb'cccc}, {Gpr::Rsi, 0x1234}, {Gpr::Rdi, 0x5678}, {Gpr::R8, 0xff},
                  {Gpr::R9, 0x11}, {Gpr::R10, 42}}},
        {.name = "xchg eax, eax zero-extends (87 c0); nop does not (90)",
         .code = ".byte 0x87, 0xc0; .byte 0x90; .byte 0x87, 0xdb",
         .regs = {{Gpr::Rax, 0xffff'ffff'1234'5678}, {Gpr::Rbx, 0xffff'ffff'0000'0001}}},
        {.name = "xchg r8, rax (49 90) is no nop", .code = ".byte 0x49, 0x90",
         .regs = {{Gpr::Rax, 1}, {Gpr::R8, 2}}},
        {.name = "xchg with memory at each size",
         .code = "xchg [DATA], rax; xchg [DATA + 8], ebx; xchg cx, [DATA + 16]; xchg dl, [DATA + 24]; "
                 "lock xchg [DATA + 32], rsi",
         .regs = {{Gpr::Rax, 1}, {Gpr::Rbx, ~0ull}, {Gpr::Rcx, 3}, {Gpr::Rdx, 4}, {Gpr::Rsi, 5}},
         .data = qwords({0xa1, 0xb2b2b2b2b2b2b2b2, 0xc3c3, 0xd4, 0xe5})},
        {.name = "xchg misaligned within a page", .code = "xchg [DATA + 3], rax", .regs = {{Gpr::Rax, 0x0102030405060708}},
         .data = qwords({~0ull, ~0ull})},
        {.name = "xchg across a page end", .code = "xchg [DATA + 0xffc], rax", .regs = {{Gpr::Rax, 0x0102030405060708}}},
        {.name = "xchg with read-only memory faults", .code = "xchg [READONLY], eax", .regs = {{Gpr::Rax, 7}}},
        // CMPXCHG
        {.name = "cmpxchg memory equal", .code = "lock cmpxchg [DATA], rbx",
         .regs = {{Gpr::Rax, 5}, {Gpr::Rbx, 9}}, .data = qwords({5})},
        {.name = "cmpxchg memory not equal", .code = "lock cmpxchg [DATA], rbx",
         .regs = {{Gpr::Rax, 4}, {Gpr::Rbx, 9}}, .data = qwords({5})},
        {.name = "cmpxchg memory without lock", .code = "cmpxchg [DATA], ecx; cmpxchg [DATA + 8], cx",
         .regs = {{Gpr::Rax, 0xffff'ffff'0000'0001}, {Gpr::Rcx, 2}}, .data = qwords({1, 3})},
        {.name = "cmpxchg bytes and words",
         .code = "cmpxchg [DATA], bl; mov r8, rax; cmpxchg [DATA + 8], bx; mov r9, rax; lock cmpxchg [DATA + 16], bh",
         .regs = {{Gpr::Rax, 0x80}, {Gpr::Rbx, 0x1234}}, .data = qwords({0x80, 0x7f80, 0x80})},
        {.name = "cmpxchg r32 equal writes the destination",
         .code = "cmpxchg ebx, ecx", .regs = {{Gpr::Rax, 0xaaaa'aaaa'0000'0005}, {Gpr::Rbx, 0xbbbb'bbbb'0000'0005},
                                              {Gpr::Rcx, 0xcccc'cccc'0000'0009}}},
        {.name = "cmpxchg r32 not equal loads the accumulator",
         .code = "cmpxchg ebx, ecx", .regs = {{Gpr::Rax, 0xaaaa'aaaa'0000'0004}, {Gpr::Rbx, 0xbbbb'bbbb'0000'0005},
                                              {Gpr::Rcx, 0xcccc'cccc'0000'0009}}},
        {.name = "cmpxchg r64 and r16",
         .code = "cmpxchg rbx, rcx; cmpxchg dx, si",
         .regs = {{Gpr::Rax, 3}, {Gpr::Rbx, 3}, {Gpr::Rcx, 7}, {Gpr::Rdx, 0x10003}, {Gpr::Rsi, 0x20008}}},
        {.name = "cmpxchg eax, ecx", .code = "cmpxchg eax, ecx",
         .regs = {{Gpr::Rax, 0xffff'ffff'0000'0001}, {Gpr::Rcx, 0xffff'ffff'0000'0002}}},
        {.name = "cmpxchg flags as cmp", .code = "cmpxchg [DATA], ebx",
         .regs = {{Gpr::Rax, 0x7fff'ffff}}, .data = qwords({0x8000'0000})},
        // CMPXCHG8B, CMPXCHG16B
        {.name = "cmpxchg8b equal", .code = "lock cmpxchg8b [DATA]",
         .regs = {{Gpr::Rax, 0xffff'ffff'1111'1111}, {Gpr::Rdx, 0xffff'ffff'2222'2222}, {Gpr::Rbx, 0x3333'3333},
                  {Gpr::Rcx, 0x4444'4444}},
         .flags = flag::CF | flag::SF, .data = qwords({0x2222'2222'1111'1111})},
        {.name = "cmpxchg8b not equal", .code = "cmpxchg8b [DATA]",
         .regs = {{Gpr::Rax, 0xffff'ffff'1111'1111}, {Gpr::Rdx, 0xffff'ffff'2222'2222}, {Gpr::Rbx, 3},
                  {Gpr::Rcx, 4}},
         .flags = flag::ZF | flag::OF, .data = qwords({0x2222'2222'1111'1112})},
        {.name = "cmpxchg16b equal", .code = "lock cmpxchg16b [DATA + 16]",
         .regs = {{Gpr::Rax, 1}, {Gpr::Rdx, 2}, {Gpr::Rbx, 3}, {Gpr::Rcx, 4}}, .data = qwords({0, 0, 1, 2})},
        {.name = "cmpxchg16b not equal", .code = "cmpxchg16b [DATA + 16]",
         .regs = {{Gpr::Rax, 1}, {Gpr::Rdx, 2}, {Gpr::Rbx, 3}, {Gpr::Rcx, 4}}, .flags = flag::ZF,
         .data = qwords({0, 0, 1, 5})},
        {.name = "cmpxchg16b misaligned faults", .code = "lock cmpxchg16b [DATA + 8]",
         .regs = {{Gpr::Rax, 1}, {Gpr::Rdx, 2}}},
        {.name = "cmpxchg on unmapped memory faults as a write", .code = "cmpxchg [UNMAPPED], ebx"},
        {.name = "lock cmpxchg on read-only memory faults", .code = "lock cmpxchg [READONLY + 8], rbx",
         .regs = {{Gpr::Rax, 0xa5a5'a5a5'a5a5'a5a5}}},
        {.name = "lock cmpxchg8b on read-only memory faults", .code = "lock cmpxchg8b [READONLY]"},
        {.name = "xchg with unmapped memory faults as a write", .code = "xchg [UNMAPPED + 4], ax"},
        {.name = "xadd on unmapped memory faults as a write", .code = "xadd [UNMAPPED], ecx"},
        {.name = "lock xadd on read-only memory faults", .code = "lock xadd [READONLY], cl"},
        // LOCK where it is not allowed
        {.name = "lock xchg with a register destination is invalid", .code = ".byte 0xf0, 0x87, 0xc3"},
        {.name = "lock mov is invalid", .code = ".byte 0xf0, 0x89, 0x03", .regs = {{Gpr::Rbx, kData}}},
        {.name = "lock cmpxchg with a register destination is invalid", .code = ".byte 0xf0, 0x0f, 0xb1, 0xc8"},
        // XADD
        {.name = "xadd registers at each size", .code = "xadd rax, rbx; xadd ecx, edx; xadd si, di; xadd r8b, r9b",
         .regs = {{Gpr::Rax, 1}, {Gpr::Rbx, ~0ull}, {Gpr::Rcx, 0xffff'ffff'7fff'ffff}, {Gpr::Rdx, 1},
                  {Gpr::Rsi, 0x8000}, {Gpr::Rdi, 0x8000}, {Gpr::R8, 0x0f}, {Gpr::R9, 0x01}}},
        {.name = "xadd same register", .code = "xadd eax, eax", .regs = {{Gpr::Rax, 0xffff'ffff'4000'0001}}},
        {.name = "xadd memory", .code = "xadd [DATA], rax; lock xadd [DATA + 8], ebx; lock xadd [DATA + 16], cl",
         .regs = {{Gpr::Rax, 10}, {Gpr::Rbx, 0x8000'0000}, {Gpr::Rcx, 0xff}},
         .data = qwords({5, 0x8000'0000, 1})},
        // BSWAP, MOVBE, MOVNTI
        {.name = "bswap 32 and 64", .code = "bswap eax; bswap rbx; bswap r12d; bswap r13",
         .regs = {{Gpr::Rax, 0xffff'ffff'1122'3344}, {Gpr::Rbx, 0x1122'3344'5566'7788}, {Gpr::R12, 0x0102'0304},
                  {Gpr::R13, 0x8070'6050'4030'2010}}},
        {.name = "bswap 16 (undefined by the SDM)", .code = ".byte 0x66, 0x0f, 0xc8; .byte 0x66, 0x0f, 0xcb",
         .regs = {{Gpr::Rax, 0x1122'3344'5566'7788}, {Gpr::Rbx, 0x1234}}},
        {.name = "movbe loads and stores",
         .code = "movbe ax, [DATA]; movbe ebx, [DATA]; movbe rcx, [DATA]; movbe [DATA + 8], dx; movbe [DATA + 16], esi; "
                 "movbe [DATA + 24], rdi",
         .regs = {{Gpr::Rax, ~0ull}, {Gpr::Rbx, ~0ull}, {Gpr::Rdx, 0x1122}, {Gpr::Rsi, 0x11223344},
                  {Gpr::Rdi, 0x1122334455667788}},
         .data = qwords({0x0807'0605'0403'0201})},
        {.name = "movnti", .code = "movnti [DATA], eax; movnti [DATA + 8], rbx",
         .regs = {{Gpr::Rax, 0x1234'5678'9abc'def0}, {Gpr::Rbx, 0x0fed'cba9'8765'4321}}},
        // CBW family, CWD family
        {.name = "cbw cwde cdqe negative",
         .code = "cbw; mov rbx, rax; mov eax, 0x8000; cwde; mov rcx, rax; mov rax, 0x80000000; cdqe",
         .regs = {{Gpr::Rax, 0xffff'ffff'ffff'0080}}},
        {.name = "cbw cwde cdqe positive", .code = "cbw; mov rbx, rax; cwde; mov rcx, rax; cdqe",
         .regs = {{Gpr::Rax, 0x1234'5678'9abc'0070}}},
        {.name = "cwd cdq cqo", .code = "cwd; mov rbx, rdx; cdq; mov rcx, rdx; cqo; mov rsi, rdx; mov eax, 1; cqo",
         .regs = {{Gpr::Rax, 0x8000'0000'8000'8000}, {Gpr::Rdx, 0x1234'5678'9abc'def0}}},
        // XLAT
        {.name = "xlat", .code = "xlatb; mov ecx, eax; mov al, 0xff; xlatb",
         .regs = {{Gpr::Rax, 0x1234'5603}, {Gpr::Rbx, kData}}, .data = counting_bytes(256)},
        {.name = "xlat with 32-bit addresses", .code = ".byte 0x67, 0xd7",
         .regs = {{Gpr::Rax, 0x10}, {Gpr::Rbx, 0x7'0000'0000 + kData}}, .data = counting_bytes(32)},
        // LAHF, SAHF
        {.name = "lahf all set", .code = "lahf", .regs = {{Gpr::Rax, ~0ull}}, .flags = flag::kStatus},
        {.name = "lahf none set", .code = "lahf", .regs = {{Gpr::Rax, ~0ull}}},
        {.name = "lahf after arithmetic", .code = "add al, 0x90; lahf", .regs = {{Gpr::Rax, 0x90}}},
        {.name = "sahf all", .code = "sahf", .regs = {{Gpr::Rax, 0xff00}}, .flags = flag::OF},
        {.name = "sahf none", .code = "sahf", .regs = {{Gpr::Rax, 0x0000}}, .flags = flag::kStatus},
        {.name = "sahf after arithmetic keeps OF", .code = "add al, 0x70; mov ah, 0x41; sahf", .regs = {{Gpr::Rax, 0x10}}},
        // NOPs, hints, cache control, fences
        {.name = "nops of every length do not touch memory",
         .code = "nop; xchg ax, ax; nop dword ptr [rax]; nop dword ptr [rax + 0]; nop dword ptr [rax + rax * 1 + 0]; "
                 "nop word ptr [rax + rax * 1 + 0]; nop dword ptr [rax + 0x1000]; nop dword ptr [rax + rax * 1 + 0x1000]; "
                 "nop word ptr [rax + rax * 1 + 0x1000]; .byte 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0",
         .regs = {{Gpr::Rax, layout::kUnmapped}}},
        {.name = "endbr64 and pause", .code = "endbr64; pause; endbr32"},
        {.name = "prefetches never fault",
         .code = "prefetcht0 [UNMAPPED]; prefetcht1 [SUPERVISOR]; prefetcht2 [rax]; prefetchnta [DATA]; "
                 "prefetchw [UNMAPPED]; prefetch [DATA]",
         .regs = {{Gpr::Rax, layout::kNonCanonical}}},
        {.name = "clflush clflushopt clwb on RAM", .code = "clflush [DATA]; clflushopt [DATA + 64]; clwb [READONLY]"},
        {.name = "clflush of unmapped memory faults", .code = "clflush [UNMAPPED + 0x40]"},
        {.name = "clflushopt of supervisor memory faults", .code = "clflushopt [SUPERVISOR]"},
        {.name = "clflush non-canonical faults", .code = "clflush [rax]", .regs = {{Gpr::Rax, layout::kNonCanonical}}},
        {.name = "fences", .code = "lfence; sfence; mfence; mov rax, 1"},
    };

    // CMOVcc: each condition true and false, the 32-bit form zero-extending in both cases, the
    // 16-bit form keeping the destination, and a memory source.
    for (uint64_t flags : {uint64_t{0}, flag::kStatus, flag::ZF | flag::SF, flag::CF | flag::OF}) {
        std::string code;
        for (unsigned cc = 0; cc < 16; ++cc)
            code += fmt::format("mov r8, -1; cmov{0} r8d, eax; mov [DATA + {1}], r8; "
                                "mov r9, -1; cmov{0} r9w, cx; mov [DATA + {2}], r9; ",
                                condition_suffix(cc), 8 * cc, 0x100 + 8 * cc);
        code += "cmovz edi, [DATA]; cmovnz rbp, [DATA]";
        c.push_back({.name = fmt::format("cmovcc with flags {:#x}", flags), .code = code,
                     .regs = {{Gpr::Rax, 0x1234'5678}, {Gpr::Rcx, 0x7777}, {Gpr::Rdi, ~0ull}, {Gpr::Rbp, ~0ull}},
                     .flags = flags, .data = qwords({0xaaaa'bbbb'cccc'dddd})});
    }
    c.push_back({.name = "cmov from unmapped memory faults with the condition false",
                 .code = "cmovz eax, [UNMAPPED]", .regs = {{Gpr::Rax, ~0ull}}});

    // SETcc: all sixteen conditions over every combination of CF, PF, ZF, SF, OF.
    constexpr const char* kByteRegisters[16] = {"al",  "cl",  "dl",   "bl",   "bpl",  "sil",  "dil",  "r8b",
                                                "r9b", "r10b", "r11b", "r12b", "r13b", "r14b", "r15b", "ah"};
    for (uint64_t flags : flag_combinations()) {
        std::string code;
        for (unsigned cc = 0; cc < 16; ++cc) code += fmt::format("set{} {}; ", condition_suffix(cc), kByteRegisters[cc]);
        code += "seto byte ptr [DATA]; setnle byte ptr [DATA + 1]";
        std::vector<std::pair<Gpr, uint64_t>> regs;
        for (unsigned r = 0; r < 16; ++r)
            if (r != static_cast<unsigned>(Gpr::Rsp)) regs.push_back({static_cast<Gpr>(r), 0x5555'5555'5555'5555});
        c.push_back({.name = fmt::format("setcc with flags {:#x}", flags), .code = code, .regs = regs, .flags = flags});
    }
    // SETcc after a comparison (the flags computed from a recorded CMP).
    for (auto [a, b] : {std::pair<uint64_t, uint64_t>{0, 0}, {1, 2}, {2, 1}, {~0ull, 1}, {0x8000'0000, 1},
                        {0x7fff'ffff, 0xffff'ffff}, {0x80, 0x7f}}) {
        std::string code = "cmp eax, ebx; ";
        for (unsigned cc = 0; cc < 16; ++cc)
            code += fmt::format("set{} byte ptr [DATA + {}]; ", condition_suffix(cc), cc);
        code += "cmp al, bl; ";
        for (unsigned cc = 0; cc < 16; ++cc)
            code += fmt::format("set{} byte ptr [DATA + {}]; ", condition_suffix(cc), 16 + cc);
        c.push_back({.name = fmt::format("setcc after cmp {:#x}, {:#x}", a, b), .code = code,
                     .regs = {{Gpr::Rax, a}, {Gpr::Rbx, b}}});
    }
    return c;
}

// --- Control transfers ---

std::vector<Case> control_cases() {
    std::vector<Case> c = {
        {.name = "jmp rel8 and rel32", .code = "jmp 1f; mov eax, 1; 1: jmp 2f; .fill 200, 1, 0x90; mov ebx, 1; 2:"},
        {.name = "jmp backwards", .code = "mov ecx, 3; 1: inc eax; dec ecx; jnz 1b"},
        {.name = "jmp indirect through a register and memory",
         .code = "lea rax, [rip + 1f]; jmp rax; ud2; 1: lea rbx, [rip + 2f]; mov [DATA], rbx; jmp qword ptr [DATA]; "
                 "ud2; 2:"},
        {.name = "jmp to a non-canonical address faults", .code = "movabs rax, NONCANONICAL; jmp rax"},
        {.name = "jmp to an unmapped address faults", .code = "mov eax, UNMAPPED; jmp rax"},
        {.name = "jrcxz and jecxz",
         .code = "jrcxz 1f; mov ebx, 1; 1: jecxz 2f; mov edx, 1; 2: mov rcx, 0; jrcxz 3f; mov esi, 1; 3:",
         .regs = {{Gpr::Rcx, 0x1'0000'0000}}},
        {.name = "loop counts down", .code = "mov ecx, 5; 1: add eax, 2; loop 1b"},
        {.name = "loop with rcx 1 falls through", .code = "mov rcx, 1; 1: inc eax; loop 1b"},
        {.name = "loop with a 32-bit count", .code = "1: inc eax; addr32 loop 1b", .regs = {{Gpr::Rcx, 0x1'0000'0003}}},
        {.name = "loope stops on ZF 0", .code = "mov ecx, 10; 1: inc eax; cmp eax, 3; loope 1b",
         .regs = {{Gpr::Rax, 2}}},
        {.name = "loope runs out", .code = "mov ecx, 4; 1: cmp eax, eax; loope 1b"},
        {.name = "loopne stops on ZF 1", .code = "mov ecx, 10; 1: inc eax; cmp eax, 3; loopne 1b"},
        {.name = "loop keeps the flags", .code = "mov ecx, 2; 1: loop 1b", .flags = flag::ZF | flag::CF | flag::AF},
        // CALL, RET
        {.name = "call rel and ret", .code = "call 1f; jmp 2f; 1: mov eax, 1; ret; 2: mov ebx, 2"},
        {.name = "call pushes the return address", .code = "call 1f; 1: pop rax; lea rbx, [rip - 1]"},
        {.name = "call indirect through a register",
         .code = "lea rcx, [rip + 1f]; call rcx; jmp 2f; 1: mov eax, [rsp]; ret; 2:"},
        {.name = "call indirect through [rsp] reads the old rsp",
         .code = "lea rcx, [rip + 1f]; push rcx; call qword ptr [rsp]; jmp 2f; 1: mov rax, rsp; ret; 2: pop rdx"},
        {.name = "ret imm16 releases arguments",
         .code = "push 1; push 2; call 1f; jmp 2f; 1: mov rax, [rsp + 8]; ret 16; 2: mov rbx, rsp"},
        {.name = "ret to a non-canonical address faults with rsp unchanged",
         .code = "movabs rax, NONCANONICAL; push rax; ret"},
        // RSP shows that nothing was pushed. The slot below it holds the return address beforehand:
        // Intel's processors store it there before the fault, AMD's (and the soft engine) do not.
        {.name = "call to a non-canonical address faults before pushing",
         .code = "movabs rax, NONCANONICAL; lea rbx, [rip + 1f]; mov [rsp - 8], rbx; call rax; 1:"},
        {.name = "call through unmapped memory faults before pushing", .code = "call qword ptr [UNMAPPED]"},
        {.name = "call with an unmapped stack faults", .code = "mov rsp, UNMAPPED + 0x100; call 1f; 1:"},
        // ENTER, LEAVE
        {.name = "enter level 0 and leave", .code = "enter 0x20, 0; mov rax, rsp; mov rbx, rbp; leave",
         .regs = {{Gpr::Rbp, 0x1234'5678}}},
        {.name = "enter level 1", .code = "enter 0x10, 1; mov rax, rsp; mov rbx, rbp",
         .regs = {{Gpr::Rbp, layout::kStack + 0x900}}},
        {.name = "enter level 3 copies frame pointers",
         .code = "mov qword ptr [rbp - 8], 0x1111; mov qword ptr [rbp - 16], 0x2222; enter 8, 3; mov rax, rsp; "
                 "mov rbx, rbp",
         .regs = {{Gpr::Rbp, layout::kStack + 0xa00}}},
        {.name = "enter level 33 is level 1", .code = "enter 0, 33", .regs = {{Gpr::Rbp, layout::kStack + 0x900}}},
        {.name = "enter with a 16-bit operand", .code = ".byte 0x66, 0xc8, 0x10, 0x00, 0x00; mov rax, rsp",
         .regs = {{Gpr::Rbp, 0xffff'0000'0000'1234}}},
        {.name = "leave with a 16-bit operand", .code = ".byte 0x66, 0xc9",
         .regs = {{Gpr::Rbp, layout::kStack + 0x700}}},
        {.name = "leave faulting leaves rsp", .code = "leave", .regs = {{Gpr::Rbp, layout::kUnmapped}}},
    };
    // Jcc: all sixteen conditions over every flag combination, one bit of EAX per condition taken.
    for (uint64_t flags : flag_combinations()) {
        std::string code;
        for (unsigned cc = 0; cc < 16; ++cc)
            code += fmt::format("j{} 1f; lea eax, [rax + {}]; 1: ", condition_suffix(cc), 1u << cc);
        // The near (0F 8x) forms of the same conditions.
        for (unsigned cc = 0; cc < 16; ++cc)
            code += fmt::format("j{} 1f; lea ebx, [rbx + {}]; .fill 130, 1, 0x90; 1: ", condition_suffix(cc), 1u << cc);
        c.push_back({.name = fmt::format("jcc with flags {:#x}", flags), .code = code, .flags = flags});
    }
    return c;
}

// --- Stack ---

std::vector<Case> stack_cases() {
    return {
        {.name = "push and pop registers", .code = "push rax; push r15; push bx; pop cx; pop rdx; pop rsi",
         .regs = {{Gpr::Rax, 0x1111'2222'3333'4444}, {Gpr::R15, 0x5555}, {Gpr::Rbx, 0x6666'7777}, {Gpr::Rcx, ~0ull}}},
        {.name = "push immediates sign-extended",
         .code = "push -1; push 0x7f; push -0x80; push 0x12345678; push -0x12345678; pushw 0x1234; pushw -2",
         .regs = {}},
        {.name = "push and pop memory", .code = "push qword ptr [DATA]; push word ptr [DATA + 8]; pop word ptr [DATA + 16]; "
                                               "pop qword ptr [DATA + 24]",
         .data = qwords({0x1122'3344'5566'7788, 0x99aa})},
        {.name = "push rsp pushes the old value", .code = "push rsp; pop rax; push sp; pop bx"},
        {.name = "push [rsp] reads before the push", .code = "push 7; push qword ptr [rsp]; push qword ptr [rsp + 8]; "
                                                         "pop rax; pop rbx; pop rcx"},
        {.name = "pop rsp takes the popped value", .code = "mov rax, rsp; push rax; sub qword ptr [rsp], 0x40; pop rsp"},
        {.name = "pop sp merges", .code = "push 0x1234; pop sp; mov rax, rsp"},
        {.name = "pop [rsp] addresses after the increment",
         .code = "push 0x1111; push 0x2222; pop qword ptr [rsp]; pop rax"},
        {.name = "pop [rsp + 8] addresses after the increment",
         .code = "push 0x1111; push 0x2222; push 0x3333; pop qword ptr [rsp + 8]; pop rax; pop rbx"},
        {.name = "pop to read-only memory faults with rsp unchanged", .code = "push 5; pop qword ptr [READONLY]"},
        {.name = "push to an unmapped stack faults", .code = "mov rsp, UNMAPPED + 8; push rax"},
        {.name = "pop from an unmapped stack faults", .code = "mov rsp, UNMAPPED + 0x10; pop rax"},
        {.name = "pushfq and popfq of the arithmetic flags",
         .code = "pushfq; pop rax; push 0x8d5; popfq; pushfq; pop rbx; push 0; popfq; pushfq; pop rcx; "
                 "and rax, -0x3001; and rbx, -0x3001; and rcx, -0x3001",
         .flags = flag::CF | flag::ZF | flag::OF},
    };
}

// --- Flags ---

// The kvm reference on PVM hosts runs CPL3 code natively with the host's IOPL of 0 (harness.hpp):
// images of RFLAGS drop IOPL before they are compared, and CLI/STI (which IOPL decides) are
// tested on the soft CPU alone (tests/cpu/soft/flow_test.cpp).
std::vector<Case> flag_cases() {
    return {
        {.name = "clc stc cmc", .code = "clc; setc al; stc; setc bl; cmc; setc cl; cmc", .flags = flag::ZF},
        {.name = "clc after arithmetic keeps the other flags", .code = "add eax, ebx; clc",
         .regs = {{Gpr::Rax, 0xffff'ffff}, {Gpr::Rbx, 1}}},
        {.name = "cmc after arithmetic", .code = "sub eax, ebx; cmc", .regs = {{Gpr::Rbx, 1}}},
        {.name = "std and cld", .code = "std; pushfq; cld; pushfq; pop rax; pop rbx; and rax, -0x3001; and rbx, -0x3001"},
        {.name = "pushf 16-bit and popf 16-bit",
         .code = "pushw 0x0cd5; popfw; pushfw; pop ax; pushfq; pop rbx; and eax, 0xcfff; and rbx, -0x3001",
         .flags = flag::DF},
        {.name = "popfq sets and clears the arithmetic flags and DF",
         .code = "push 0xcd5; popfq; pushfq; pop rax; push 0; popfq; pushfq; pop rbx; and rax, -0x3001; "
                 "and rbx, -0x3001"},
        {.name = "popfq toggles ID and AC",
         .code = "push 0x240000; popfq; pushfq; pop rax; push 0; popfq; pushfq; pop rbx; and rax, -0x3001; "
                 "and rbx, -0x3001"},
        {.name = "popfq ignores RF and VM", .code = "push 0x30000; popfq; pushfq; pop rax; and rax, -0x3001"},
    };
}

// --- Strings ---

std::vector<Case> string_cases() {
    using layout::kReadOnly;
    std::vector<uint8_t> text = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', 0, 'h', 'e', 'l', 'p', 0};
    std::vector<uint8_t> two_strings(64, 0);
    for (unsigned i = 0; i < 16; ++i) two_strings[i] = two_strings[32 + i] = static_cast<uint8_t>('a' + i);
    two_strings[32 + 9] = 'X';
    return {
        // Single elements, both directions.
        {.name = "movs of each size forward",
         .code = "movsb; movsw; movsd; movsq",
         .regs = {{Gpr::Rsi, kData}, {Gpr::Rdi, kData + 0x100}}, .data = counting_bytes(64)},
        {.name = "movs of each size backward",
         .code = "movsb; movsw; movsd; movsq",
         .regs = {{Gpr::Rsi, kData + 32}, {Gpr::Rdi, kData + 0x100}}, .flags = flag::DF, .data = counting_bytes(64)},
        {.name = "stos of each size", .code = "stosb; stosw; stosd; stosq; std; stosd",
         .regs = {{Gpr::Rax, 0x1122'3344'5566'7788}, {Gpr::Rdi, kData + 8}}},
        {.name = "lods of each size", .code = "lodsb; mov rbx, rax; lodsw; mov rcx, rax; lodsd; mov rdx, rax; lodsq",
         .regs = {{Gpr::Rax, ~0ull}, {Gpr::Rsi, kData}}, .data = counting_bytes(32)},
        {.name = "cmps of each size", .code = "cmpsb; setz al; cmpsw; setb bl; cmpsd; setl cl; cmpsq",
         .regs = {{Gpr::Rsi, kData}, {Gpr::Rdi, kData + 32}}, .data = two_strings},
        {.name = "scas of each size", .code = "scasb; setz bl; scasw; setb cl; scasd; setl dl; scasq",
         .regs = {{Gpr::Rax, 0x6867'6665'6463'6261}, {Gpr::Rdi, kData}}, .data = two_strings},
        // REP MOVS
        {.name = "rep movsb count 0", .code = "rep movsb", .regs = {{Gpr::Rsi, layout::kUnmapped}, {Gpr::Rdi, kData}}},
        {.name = "rep movsb count 1", .code = "rep movsb",
         .regs = {{Gpr::Rcx, 1}, {Gpr::Rsi, kData}, {Gpr::Rdi, kData + 0x100}}, .data = counting_bytes(8)},
        {.name = "rep movsb across pages from read-only memory", .code = "rep movsb",
         .regs = {{Gpr::Rcx, 0x1000}, {Gpr::Rsi, kReadOnly}, {Gpr::Rdi, kData + 0x801}}},
        {.name = "rep movsq many", .code = "rep movsq",
         .regs = {{Gpr::Rcx, 300}, {Gpr::Rsi, kData}, {Gpr::Rdi, kData + 0x1000}}, .data = counting_bytes(2400)},
        {.name = "rep movsd backward", .code = "rep movsd",
         .regs = {{Gpr::Rcx, 100}, {Gpr::Rsi, kData + 396}, {Gpr::Rdi, kData + 0x1000 + 396}}, .flags = flag::DF,
         .data = counting_bytes(400)},
        {.name = "rep movsb overlapping forward replicates", .code = "rep movsb",
         .regs = {{Gpr::Rcx, 64}, {Gpr::Rsi, kData}, {Gpr::Rdi, kData + 3}}, .data = counting_bytes(8)},
        {.name = "rep movsq overlapping by half an element", .code = "rep movsq",
         .regs = {{Gpr::Rcx, 10}, {Gpr::Rsi, kData}, {Gpr::Rdi, kData + 4}}, .data = counting_bytes(96)},
        {.name = "rep movsb overlapping backward", .code = "rep movsb",
         .regs = {{Gpr::Rcx, 64}, {Gpr::Rsi, kData + 63}, {Gpr::Rdi, kData + 64}}, .flags = flag::DF,
         .data = counting_bytes(64)},
        {.name = "rep movsb overlapping with the destination below", .code = "rep movsb",
         .regs = {{Gpr::Rcx, 100}, {Gpr::Rsi, kData + 5}, {Gpr::Rdi, kData}}, .data = counting_bytes(128)},
        {.name = "rep movsb from unmapped memory faults at once", .code = "rep movsb",
         .regs = {{Gpr::Rcx, 10}, {Gpr::Rsi, layout::kUnmapped}, {Gpr::Rdi, kData}}},
        {.name = "rep movsw into read-only memory faults midway", .code = "rep movsw",
         .regs = {{Gpr::Rcx, 20}, {Gpr::Rsi, kData}, {Gpr::Rdi, kReadOnly - 10}}, .data = counting_bytes(40)},
        {.name = "rep movsb with 32-bit addresses", .code = ".byte 0x67, 0xf3, 0xa4",
         .regs = {{Gpr::Rcx, 0xffff'0000'0000'0010}, {Gpr::Rsi, 0x1'0000'0000 + kData},
                  {Gpr::Rdi, 0xff'0000'0000 + kData + 0x100}},
         .data = counting_bytes(32)},
        // REP STOS
        {.name = "rep stosb count 0", .code = "rep stosb", .regs = {{Gpr::Rdi, layout::kUnmapped}}},
        {.name = "rep stosb many", .code = "rep stosb", .regs = {{Gpr::Rax, 0x5a}, {Gpr::Rcx, 1000}, {Gpr::Rdi, kData + 7}}},
        {.name = "rep stosb across the data pages", .code = "rep stosb",
         .regs = {{Gpr::Rax, 0xa5}, {Gpr::Rcx, 5000}, {Gpr::Rdi, kData + 100}}},
        {.name = "rep stosb backward past a restart", .code = "rep stosb",
         .regs = {{Gpr::Rax, 0x3c}, {Gpr::Rcx, 5000}, {Gpr::Rdi, kData + 0x1fff}}, .flags = flag::DF},
        {.name = "rep stosw stosd stosq", .code = "rep stosw; mov ecx, 17; rep stosd; mov ecx, 33; rep stosq",
         .regs = {{Gpr::Rax, 0x1122'3344'5566'7788}, {Gpr::Rcx, 9}, {Gpr::Rdi, kData + 1}}},
        {.name = "rep stosq over the whole data area", .code = "rep stosq",
         .regs = {{Gpr::Rax, 0x0102'0304'0506'0708}, {Gpr::Rcx, 1024}, {Gpr::Rdi, kData}}},
        {.name = "rep stosb into read-only memory faults midway", .code = "rep stosb",
         .regs = {{Gpr::Rax, 0x77}, {Gpr::Rcx, 20}, {Gpr::Rdi, kReadOnly - 10}}},
        {.name = "rep stosd across an unaligned page end", .code = "rep stosd",
         .regs = {{Gpr::Rax, 0xdead'beef}, {Gpr::Rcx, 8}, {Gpr::Rdi, kData + 0xff2}}},
        // REP LODS
        {.name = "rep lodsb", .code = "rep lodsb", .regs = {{Gpr::Rcx, 3}, {Gpr::Rsi, kData}}, .data = counting_bytes(8)},
        // REPE/REPNE CMPS and SCAS
        {.name = "repe cmpsb finds the first difference", .code = "repe cmpsb",
         .regs = {{Gpr::Rcx, 16}, {Gpr::Rsi, kData}, {Gpr::Rdi, kData + 32}}, .data = two_strings},
        {.name = "repe cmpsb runs out on equal strings", .code = "repe cmpsb",
         .regs = {{Gpr::Rcx, 9}, {Gpr::Rsi, kData}, {Gpr::Rdi, kData + 32}}, .data = two_strings},
        {.name = "repne cmpsb stops at the first equal element", .code = "repne cmpsb",
         .regs = {{Gpr::Rcx, 16}, {Gpr::Rsi, kData}, {Gpr::Rdi, kData + 33}}, .data = two_strings},
        {.name = "repe cmpsq backward", .code = "repe cmpsq",
         .regs = {{Gpr::Rcx, 2}, {Gpr::Rsi, kData + 8}, {Gpr::Rdi, kData + 40}}, .flags = flag::DF,
         .data = two_strings},
        {.name = "repne scasb finds the terminator", .code = "repne scasb",
         .regs = {{Gpr::Rcx, ~0ull}, {Gpr::Rdi, kData}}, .data = text},
        {.name = "repe scasb stops at a difference", .code = "repe scasb",
         .regs = {{Gpr::Rax, 'h'}, {Gpr::Rcx, 10}, {Gpr::Rdi, kData}}, .data = text},
        {.name = "repne scasd", .code = "repne scasd",
         .regs = {{Gpr::Rax, 0x706c'6568}, {Gpr::Rcx, 8}, {Gpr::Rdi, kData}}, .data = text},
        {.name = "repne scasb count 0 keeps the flags", .code = "repne scasb",
         .regs = {{Gpr::Rdi, layout::kUnmapped}}, .flags = flag::CF | flag::SF},
        // RCX and RDI say where it stopped. The flags are those of the last compare on AMD's
        // processors (and the soft engine); Intel's leave them as they were before the instruction.
        {.name = "repne scasb into unmapped memory faults", .code = "repne scasb",
         .regs = {{Gpr::Rax, 0x99}, {Gpr::Rcx, 100}, {Gpr::Rdi, kReadOnly + 0xff0}},
         .undefined_flags = host_is_amd() ? 0 : flag::kStatus},
    };
}

TEST(DifferentialFlow, DataMovement) { compare(EngineKind::Kvm, EngineKind::Soft, data_movement_cases()); }
TEST(DifferentialFlow, Control) { compare(EngineKind::Kvm, EngineKind::Soft, control_cases()); }
TEST(DifferentialFlow, Stack) { compare(EngineKind::Kvm, EngineKind::Soft, stack_cases()); }
TEST(DifferentialFlow, Flags) { compare(EngineKind::Kvm, EngineKind::Soft, flag_cases()); }
TEST(DifferentialFlow, Strings) { compare(EngineKind::Kvm, EngineKind::Soft, string_cases()); }

}  // namespace
}  // namespace strata::differential
