// Differential cases of the system, segment and I/O families (src/cpu/soft/exec/{system,segment,
// io}.cpp and interrupts.cpp) for what CPL3 can reach: privileged instructions fault with #GP(0),
// port I/O without IOPL or a bitmap faults before any element moves, the descriptor-table stores
// UMIP does not hide, the TSC counts, INT3 and IRETQ at the same privilege.
// CPUID is not compared (the feature sets differ by design), and neither are INT n, SYSCALL,
// segment loads or far transfers: on PVM hosts they run against the host's GDT and system-call
// path (harness.hpp), so the kvm engine is no reference for them; the soft tests cover them.
#include <gtest/gtest.h>

#include "cpu/differential/harness.hpp"

namespace strata::differential {
namespace {

std::vector<Case> privileged_cases() {
    // Each runs at CPL3 and must raise #GP(0) at its first instruction, leaving RAX..RDX as set.
    const std::pair<const char*, const char*> kPrivileged[] = {
        {"mov from cr0", "mov rax, cr0"},
        {"mov to cr3", "mov cr3, rax"},
        {"mov from cr8", "mov rax, cr8"},
        {"mov to cr4", "mov cr4, rax"},
        {"mov from dr7", "mov rax, dr7"},
        {"mov to dr0", "mov dr0, rax"},
        {"rdmsr", "rdmsr"},
        {"wrmsr", "wrmsr"},
        {"hlt", "hlt"},
        {"clts", "clts"},
        {"lmsw", "lmsw ax"},
        {"invlpg", "invlpg [DATA]"},
        {"wbinvd", "wbinvd"},
        {"invd", "invd"},
        {"lgdt", "lgdt [DATA]"},
        {"lidt", "lidt [DATA]"},
        {"lldt", "lldt ax"},
        {"ltr", "ltr ax"},
        {"swapgs", "swapgs"},
        {"sysretq", "sysretq"},
    };
    std::vector<Case> out;
    for (auto [name, code] : kPrivileged)
        out.push_back({.name = std::string(name) + " at CPL3", .code = code,
                       .regs = {{Gpr::Rax, 0x10}, {Gpr::Rcx, 0x1b}, {Gpr::Rdx, 0}}});
    return out;
}

std::vector<Case> system_cases() {
    return {
        // Exceptions the program raises itself.
        {.name = "int3 through its DPL-3 gate", .code = "mov eax, 1; int3; mov eax, 2"},
        {.name = "ud2", .code = "mov ebx, 7; ud2"},
        {.name = "ud1 with a ModRM byte", .code = "ud1 eax, dword ptr [rax]"},
        {.name = "into is invalid in 64-bit mode", .code = ".byte 0xce"},

        // Stores of system registers that UMIP does not hide here (harness.hpp).
        {.name = "sgdt and sidt", .code = "sgdt [DATA]; sidt [DATA + 16]"},
        {.name = "sldt and str to registers and memory",
         .code = "sldt eax; str rbx; sldt word ptr [DATA]; str word ptr [DATA + 8]; str cx",
         .regs = {{Gpr::Rax, ~0ull}, {Gpr::Rbx, ~0ull}, {Gpr::Rcx, ~0ull}}, .data = qwords({~0ull, ~0ull})},
        {.name = "smsw to a 64-bit register and memory", .code = "smsw rax; smsw word ptr [DATA]; smsw cx",
         .regs = {{Gpr::Rax, ~0ull}, {Gpr::Rcx, ~0ull}}, .data = qwords({~0ull})},

        // The TSC: monotonic at CPL3 (CR4.TSD clear); its values differ, so only the order is kept.
        {.name = "rdtsc counts up",
         .code = "rdtsc; shl rdx, 32; or rax, rdx; mov rbx, rax; rdtsc; shl rdx, 32; or rax, rdx; "
                 "cmp rax, rbx; seta cl; movzx ecx, cl; xor eax, eax; xor ebx, ebx; xor edx, edx",
         .undefined_flags = flag::kStatus},
        {.name = "rdtscp counts up and writes ECX",
         .code = "mov ecx, 0xffffffff; rdtscp; shl rdx, 32; or rax, rdx; mov rbx, rax; rdtsc; shl rdx, 32; "
                 "or rax, rdx; cmp rax, rbx; seta sil; xor eax, eax; xor ebx, ebx; xor ecx, ecx; xor edx, edx",
         .undefined_flags = flag::kStatus},
        {.name = "cpuid does not fault at CPL3",
         .code = "xor eax, eax; cpuid; mov eax, 1; cpuid; xor eax, eax; xor ebx, ebx; xor ecx, ecx; xor edx, edx"},

        // Port I/O at CPL3 with IOPL 0 and a TSS without an I/O bitmap: #GP(0) before anything
        // moves, also for the repeated string forms (RCX, RDI, RSI and memory unchanged).
        {.name = "out imm8 without permission", .code = "mov al, 1; out 0x80, al"},
        {.name = "in dx without permission", .code = "mov dx, 0x3f8; in eax, dx", .regs = {{Gpr::Rax, 5}}},
        {.name = "rep insb without permission", .code = "mov dx, 0x60; lea rdi, [DATA]; mov ecx, 4; rep insb",
         .data = qwords({0x1122334455667788})},
        {.name = "rep outsw without permission", .code = "mov dx, 0x60; lea rsi, [DATA]; mov ecx, 2; rep outsw"},
        {.name = "outsd without permission", .code = "mov dx, 0x61; lea rsi, [DATA]; outsd"},

        // IRETQ at CPL3 to CPL3: it pops SS:RSP in 64-bit mode even without a privilege change.
        // The selectors are each engine's own (harness.hpp), so they are cleared from registers
        // and from the frame afterwards.
        {.name = "iretq at the same privilege",
         .code = "mov eax, ss; push rax; lea rax, [rsp + 8]; push rax; pushfq; or qword ptr [rsp], 0x801; "
                 "mov eax, cs; push rax; lea rax, [rip + 1f]; push rax; iretq; 1: setc bl; seto bh; "
                 "xor eax, eax; mov [rsp - 8], rax; mov [rsp - 16], rax; mov [rsp - 32], rax; mov [rsp - 40], rax"},
    };
}

TEST(DifferentialSystem, PrivilegedInstructionsAtCpl3) {
    compare(EngineKind::Kvm, EngineKind::Soft, privileged_cases());
}
TEST(DifferentialSystem, Cpl3SystemInstructions) { compare(EngineKind::Kvm, EngineKind::Soft, system_cases()); }

}  // namespace
}  // namespace strata::differential
