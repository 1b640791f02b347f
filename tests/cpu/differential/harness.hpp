// Differential tests of the CPU engines: the same x86-64 instruction sequences run at CPL3 in
// 64-bit long mode under any CpuEngine, and what they leave behind (registers, flags, XMM, memory,
// the exception they raised) is compared between engines. On hosts where /dev/kvm runs guest user
// mode natively (PVM, and every VT-x/AMD-V host) the kvm engine is the reference.
//
// How to add cases. A case is data: a name, Intel-syntax assembly (GNU as, `.intel_syntax
// noprefix`; instructions separated by newlines or ';'; labels must be numeric locals such as
// `1:` / `jnz 1b`, because every case of a run goes through one `as` invocation), the registers
// and arithmetic flags it starts with, XMM registers, the data area's first bytes, and the flags
// the SDM leaves undefined after it (not compared, so that the reference's vendor does not
// matter). Put a family's cases in tests/cpu/differential/<family>_test.cpp:
//
//     using namespace strata::differential;
//     const std::vector<Case> kShiftCases = {
//         {.name = "shl8 by 1 sets CF", .code = "shl al, 1", .regs = {{Gpr::Rax, 0x80}}},
//         {.name = "sar64 by cl", .code = "sar rbx, cl", .regs = {{Gpr::Rbx, ~0ull}, {Gpr::Rcx, 3}},
//          .undefined_flags = flag::AF},
//         {.name = "load", .code = "mov eax, [DATA + 8]", .data = qwords({1, 2})},
//     };
//     TEST(DifferentialShift, KvmAgreesWithSoft) { compare(EngineKind::Kvm, EngineKind::Soft, kShiftCases); }
//
// Registers a case does not name start at 0, RSP at kStackTop, XMM at 0 and MXCSR at 0x1f80;
// RFLAGS holds `flags` (CF, PF, AF, ZF, SF, OF, DF) with IF=1 and IOPL=0, as in an OS's user
// mode. The assembler knows the layout's addresses as symbols: CODE, DATA (kDataSize bytes, user
// read-write, not executable), STACK and STACK_TOP (the stack page), READONLY (a user page
// holding 0xa5 bytes), UNMAPPED (not present), SUPERVISOR (a supervisor page filled with 0x5a),
// NONCANONICAL. Cases may also be built by loops (see integer_arith_test.cpp), and
// random_sequences.hpp generates them. Cases must not set TF (the harness's own routines would
// trap).
//
// Guest layout (identity-mapped, 4-level paging, 4 KiB pages in the first 2 MiB): a GDT with
// 64-bit kernel and user segments and a TSS whose RSP0 is a supervisor stack; an IDT whose
// vectors 0-31 enter CPL0 stubs. The vCPU enters at CPL3 in a prologue that loads XMM0-15 and
// MXCSR from memory and jumps to the case; the case is followed by a jump to an end routine that
// stores XMM and MXCSR back. An exception stub completes the frame on the kernel stack (vector,
// error code) and IRETs to a dump routine at CPL3 that does the same stores with the faulting
// RSP and RFLAGS, so that the general registers stay as the fault left them; the harness reads
// the frame from the kernel stack. Both routines then write to a doorbell page (MMIO: the
// engine's MMIO exit wakes the harness) and spin; the harness stops the engine and reads its
// state. (Why not through the engine's FPU state, or a port write: harness_support.cpp.)
//
// Where the kvm reference is not the architecture. On PVM hosts (/sys/module/kvm_pvm) guest user
// code runs natively in host user mode, so some instructions see the host rather than the guest
// (measured on this project's AMD EPYC hosts); cases must not depend on them, or must not use
// kvm as their reference:
// - CPUID at CPL3 is the host's, not the engine's CPUID policy (APIC id, CMPXCHG16B, OSXSAVE...);
//   RDTSCP and RDPID return the host's TSC_AUX.
// - Instructions gated by guest CR4 bits run anyway: RDFSBASE/WRGSBASE (CR4.FSGSBASE clear),
//   XGETBV and AVX (CR4.OSXSAVE clear) execute instead of raising #UD.
// - Segment registers read as the host's selectors (CS 0x33, SS/DS 0x2b, ES/GS 0); LAR, LSL,
//   VERR and VERW look in the host's GDT; far transfers and segment loads use it too (RETF to
//   0x23 enters the host's 32-bit compatibility segment).
// - INT n other than INT3 raises #UD instead of #GP or the gate's vector; SYSCALL takes PVM's
//   own system-call path, not the one the MSRs say (with LSTAR 0 it faulted as a user fetch).
// - PUSHFQ shows IF=1 whatever the guest's RFLAGS (the harness runs cases with IF=1 for that).
// SGDT, SIDT, SLDT, STR and SMSW do report the guest's values (UMIP on the host traps them).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "cpu/cpu_state.hpp"
#include "cpu/engines.hpp"

namespace strata::differential {

using testing::EngineKind;

// RFLAGS bits (Intel SDM vol. 1 §3.4.3).
namespace flag {
constexpr uint64_t CF = 1u << 0, PF = 1u << 2, AF = 1u << 4, ZF = 1u << 6, SF = 1u << 7, TF = 1u << 8,
                   IF = 1u << 9, DF = 1u << 10, OF = 1u << 11, RF = 1u << 16, AC = 1u << 18;
constexpr uint64_t kStatus = CF | PF | AF | ZF | SF | OF;  // the arithmetic flags
constexpr uint64_t kIopl3 = 3u << 12;
}  // namespace flag

// The guest's layout: virtual = physical.
namespace layout {
constexpr uint64_t kCode = 0x1'0000, kCodeSize = 0x1'0000;   // user, read-write-execute
constexpr uint64_t kStack = 0x3'0000, kStackSize = 0x1000;   // user, read-write
constexpr uint64_t kStackTop = kStack + 0x800;               // initial RSP: room to push and to pop
constexpr uint64_t kData = 0x4'0000, kDataSize = 0x2000;     // user, read-write, no-execute
constexpr uint64_t kReadOnly = 0x4'2000;                     // user, read-only, filled with 0xa5
constexpr uint64_t kUnmapped = 0x4'3000;                     // not present
constexpr uint64_t kSupervisor = 0x4'4000;                   // supervisor read-write
constexpr uint64_t kNonCanonical = 0x8000'0000'0000;
constexpr uint16_t kEndPort = 0xf4, kExceptionPort = 0xf5;
}  // namespace layout

struct Xmm {
    uint64_t low = 0, high = 0;
    bool operator==(const Xmm&) const = default;
};

struct Case {
    std::string name;
    std::string code;                                 // Intel syntax; the harness appends its exit
    std::vector<std::pair<Gpr, uint64_t>> regs = {};  // the others start at 0 (RSP at kStackTop)
    uint64_t flags = 0;                               // of flag::kStatus | flag::DF
    std::vector<std::pair<unsigned, Xmm>> xmm = {};   // XMM0-15; the others start at 0
    std::vector<uint8_t> data = {};                   // the data area's first bytes; the rest is 0
    uint32_t mxcsr = 0x1f80;                          // all SSE exceptions masked, round to nearest
    uint64_t undefined_flags = 0;                     // flags not compared after this code
    uint64_t model_flags = 0;  // undefined flags that differ between models of one vendor: never compared
};

// Little-endian bytes of `values`, for Case::data.
std::vector<uint8_t> qwords(std::initializer_list<uint64_t> values);

// An exception the case raised, as the CPU delivered it to the IDT.
struct Exception {
    uint8_t vector = 0;
    uint64_t error_code = 0;  // 0 for vectors without one
    uint64_t cr2 = 0;         // compared only for #PF
    bool operator==(const Exception&) const = default;
};

// What a case left behind. For an exception, registers are those at the faulting instruction
// (RIP, RSP and RFLAGS from the exception frame).
struct Outcome {
    std::array<uint64_t, 16> gpr{};
    uint64_t rip = 0;  // offset from the case's first byte: its length when it ran to the end
    uint64_t rflags = 0;
    std::array<Xmm, 16> xmm{};
    uint32_t mxcsr = 0;
    std::vector<uint8_t> data;   // the data area
    std::vector<uint8_t> stack;  // the stack page
    std::optional<Exception> exception;
    std::string failure;  // why the case did not come to an end or an exception (harness level)

    uint64_t operator[](Gpr reg) const { return gpr[static_cast<unsigned>(reg)]; }
};

// Whether the reference CPU (this host's) is AMD's. Where vendors differ in what the SDM leaves
// undefined or implementation-specific, the soft engine does what AMD's processors do, so such
// results are compared only on an AMD host.
bool host_is_amd();

// Every difference between two outcomes, one line each ("rax: kvm=0x1 soft=0x2"), ignoring
// `ignored_flags`; empty when they agree.
std::string diff(const Outcome& a, const Outcome& b, uint64_t ignored_flags, std::string_view a_name,
                 std::string_view b_name);

// A readable dump of an outcome (registers, flags, exception), for failure messages.
std::string describe(const Outcome& outcome);

// Machine code of each case, assembled together with one run of GNU as.
Result<std::vector<std::vector<uint8_t>>> assemble(std::span<const Case> cases);

// One VM on one engine, reused for every case it runs.
class Runner {
public:
    // Fails when the engine cannot be made here (no /dev/kvm, soft engine not built).
    static Result<std::unique_ptr<Runner>> create(EngineKind kind);
    ~Runner();
    Runner(const Runner&) = delete;
    Runner& operator=(const Runner&) = delete;

    [[nodiscard]] std::string_view engine_name() const;
    // Runs `code` (the case's machine code) from the case's initial state.
    [[nodiscard]] Outcome run(const Case& c, std::span<const uint8_t> code);
    // Assembles and runs every case; fails only when the assembler does.
    [[nodiscard]] Result<std::vector<Outcome>> run_all(std::span<const Case> cases);

    class Impl;

private:
    explicit Runner(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// The differential driver: runs every case on both engines and adds one test failure per case
// whose outcomes differ (the diff, the case's code and both outcomes). Skips the test, saying
// why, while either engine cannot be made. Call it as a test's last statement.
void compare(EngineKind reference, EngineKind candidate, std::span<const Case> cases);

}  // namespace strata::differential
