// The backend-neutral state of one vCPU: what a loader sets up for the first instruction, what
// moves between the kvm and soft engines, and what error reports print. Segment registers carry
// their hidden (descriptor-cache) parts, as the Intel SDM vol. 3A §3.4.3 describes them.
#pragma once

#include <array>
#include <cstdint>
#include <string>

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
