// The backend-neutral state of one vCPU: what a loader sets up for the first instruction, what
// moves between the kvm and soft engines, and what error reports print. Segment registers carry
// their hidden (descriptor-cache) parts, as the Intel SDM vol. 3A §3.4.3 describes them.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace strata {

enum class Gpr : unsigned { Rax, Rcx, Rdx, Rbx, Rsp, Rbp, Rsi, Rdi, R8, R9, R10, R11, R12, R13, R14, R15 };

struct SegmentState {
    uint64_t base = 0;
    uint32_t limit = 0xffff;
    uint16_t selector = 0;
    uint8_t type = 0;  // descriptor type field (bits 8-11 of the high dword)
    bool present = true;
    uint8_t dpl = 0;
    bool db = false;      // default operation size (32-bit when set)
    bool s = true;        // code/data (true) or system (false) segment
    bool l = false;       // 64-bit code segment
    bool g = false;       // limit in 4 KiB units
    bool avl = false;
    bool unusable = false;
};

struct TableState {
    uint64_t base = 0;
    uint16_t limit = 0xffff;
};

// Control-register bits used by the loaders and the engines.
namespace cr0 {
constexpr uint64_t PE = 1ull << 0, MP = 1ull << 1, ET = 1ull << 4, NE = 1ull << 5, WP = 1ull << 16, PG = 1ull << 31;
}
namespace cr4 {
constexpr uint64_t PAE = 1ull << 5, PGE = 1ull << 7, OSFXSR = 1ull << 9, OSXMMEXCPT = 1ull << 10;
}
namespace efer {
constexpr uint64_t SCE = 1ull << 0, LME = 1ull << 8, LMA = 1ull << 10, NXE = 1ull << 11;
}

// x87 and SSE state as FXSAVE lays it out (Intel SDM vol. 1 §10.5.1).
struct FpuState {
    std::array<std::array<uint8_t, 16>, 8> st{};  // ST0-ST7 (80 bits each, padded)
    uint16_t fcw = 0x37f;                           // FNINIT's control word
    uint16_t fsw = 0;
    uint8_t ftw_abridged = 0;                       // one bit per register: valid
    uint16_t fop = 0;
    uint64_t fip = 0, fdp = 0;
    std::array<std::array<uint8_t, 16>, 16> xmm{};
    uint32_t mxcsr = 0x1f80;                        // all SSE exceptions masked
    bool operator==(const FpuState&) const = default;
};

struct DebugRegisters {
    std::array<uint64_t, 4> dr{};
    uint64_t dr6 = 0xffff'0ff0, dr7 = 0x400;  // reset values (SDM vol. 3B §18.2)
    bool operator==(const DebugRegisters&) const = default;
};

inline constexpr uint32_t kTscMsr = 0x10;  // IA32_TIME_STAMP_COUNTER
inline constexpr uint32_t kTscDeadlineMsr = 0x6e0;  // IA32_TSC_DEADLINE

struct MsrValue {
    uint32_t index = 0;
    uint64_t value = 0;
    bool operator==(const MsrValue&) const = default;
};

// Where a vCPU is in its life (the multiprocessor start-up protocol, SDM vol. 3A §8.4).
enum class MpState { Runnable, Uninitialized, InitReceived, Halted, SipiReceived };

// Events taken or to be taken at the next instruction boundary.
struct PendingEvents {
    struct {
        bool injected = false;  // being delivered
        bool pending = false;   // raised, not yet delivered
        uint8_t vector = 0;
        bool has_error_code = false;
        uint32_t error_code = 0;
    } exception;
    struct {
        bool injected = false;
        uint8_t vector = 0;
        bool soft = false;  // INTn
    } interrupt;
    struct {
        bool injected = false, pending = false, masked = false;
    } nmi;
    uint8_t interrupt_shadow = 0;  // after STI (bit 0) or MOV SS/POP SS (bit 1)
    uint32_t sipi_vector = 0;
};

// Everything of a vCPU beyond what a loader sets up for the first instruction: what an engine
// reports, and what moving a vCPU (snapshot, another engine) must carry.
struct ExtendedCpuState {
    FpuState fpu;
    DebugRegisters debug;
    uint64_t xcr0 = 1;                 // x87 only
    std::vector<MsrValue> msrs;        // those of kSavedMsrs the engine has
    PendingEvents events;
    MpState mp_state = MpState::Runnable;
    std::array<uint8_t, 1024> lapic{};  // the xAPIC register page (SDM vol. 3A §11.4.1, table 11-1)
};

// The MSRs a vCPU's state carries (FS/GS base travel with the segments, EFER on its own).
inline constexpr uint32_t kSavedMsrs[] = {
    0x10,         // IA32_TSC
    0x174,        // IA32_SYSENTER_CS
    0x175,        // IA32_SYSENTER_ESP
    0x176,        // IA32_SYSENTER_EIP
    0x1a0,        // IA32_MISC_ENABLE
    0x277,        // IA32_PAT
    0x2ff,        // IA32_MTRR_DEF_TYPE
    0xc000'0081,  // STAR
    0xc000'0082,  // LSTAR
    0xc000'0083,  // CSTAR
    0xc000'0084,  // SFMASK
    0xc000'0102,  // KERNEL_GS_BASE
    0xc000'0103,  // TSC_AUX
    0x6e0,        // IA32_TSC_DEADLINE: after IA32_TSC, which it is compared with
};

struct CpuState {
    std::array<uint64_t, 16> gpr{};  // indexed by Gpr
    uint64_t rip = 0xfff0;
    uint64_t rflags = 0x2;

    SegmentState cs, ds, es, fs, gs, ss;
    // The task register must hold a busy TSS and the LDT a system descriptor for VM entry
    // (Intel SDM vol. 3C §26.3.1.2) even while the guest uses neither.
    SegmentState tr{.base = 0, .limit = 0xffff, .selector = 0, .type = 0xb, .present = true, .dpl = 0, .db = false,
                    .s = false, .l = false, .g = false, .avl = false, .unusable = false};
    SegmentState ldt{.base = 0, .limit = 0xffff, .selector = 0, .type = 0x2, .present = true, .dpl = 0, .db = false,
                     .s = false, .l = false, .g = false, .avl = false, .unusable = false};
    TableState gdt, idt;
    uint64_t cr0 = 0x6000'0010, cr2 = 0, cr3 = 0, cr4 = 0, cr8 = 0;
    uint64_t efer = 0;
    uint64_t apic_base = 0xfee0'0000 | (1u << 11) | (1u << 8);  // enabled, bootstrap processor
    // Absent in a loader's entry state (the engine keeps what reset and firmware set up); present
    // in what an engine reports, and then applied whole by set_vcpu_state().
    std::optional<ExtendedCpuState> extended;

    uint64_t& operator[](Gpr reg) { return gpr[static_cast<unsigned>(reg)]; }
    uint64_t operator[](Gpr reg) const { return gpr[static_cast<unsigned>(reg)]; }

    // A multi-line dump for error reports (triple fault, emulation failure).
    [[nodiscard]] std::string describe() const;
};

// Flat segments for the loaders' entry states.
SegmentState flat_code32();
SegmentState flat_code64();
SegmentState flat_data(uint16_t selector);

// Real mode with CS:IP reaching `address` (CS = address >> 4), as firmware jumps to a waking
// vector (ACPI 6.5 §16.3.2).
CpuState real_mode_at(uint32_t address);

}  // namespace strata
