// Descriptor tables and segment loading for the soft CPU: what segment-register loads, far
// control transfers, interrupt delivery and the system instructions share.
//
// State:    none of its own; reads and writes the GDT, LDT, IDT and TSS through the CPU's
//           supervisor (system) accesses, and the segment registers' descriptor caches.
// Features: selector lookup in the GDT or LDT with the table limit (8- and 16-byte descriptors),
//           the accessed and busy bits set atomically in guest memory, the data-segment and SS
//           checks of MOV/POP/LxS with their selector error codes, real-mode and virtual-8086
//           loads, null selectors (with Intel's base clearing), the privilege checks of far
//           transfers to code segments, the TSS's inner stacks, and stack frames built before
//           anything is committed.
// Missing:  task switches (callers raise #GP for TSS descriptors and task gates).
// Spec:     Intel SDM vol. 3A §3.4 (segments, selectors, descriptors), §3.5 (system descriptor
//           types), §5.5-5.8 (privilege checks, gates), §6.14 (64-bit descriptors), §7.2 (TSS),
//           vol. 2 "MOV", "POP", "LDS/LES/LFS/LGS/LSS", "JMP", "CALL", "RET", "IRET".
#pragma once

#include <cstdint>
#include <optional>

#include "cpu/soft/cpu.hpp"

namespace strata::soft {

// Descriptor types (SDM vol. 3A §3.4.5.1 table 3-1 for code/data, §3.5 table 3-2 for system).
namespace seg_type {
constexpr uint8_t Accessed = 1, Writable = 2, ExpandDown = 4, Readable = 2, Conforming = 4, Code = 8;
// System types, legacy mode. In IA-32e mode types 2, 9, 0xb, 0xc, 0xe and 0xf are 64-bit forms
// and the 16-bit ones (1, 3, 4, 6, 7) and the task gate (5) are invalid.
constexpr uint8_t Tss16Available = 1, Ldt = 2, Tss16Busy = 3, CallGate16 = 4, TaskGate = 5, InterruptGate16 = 6,
                  TrapGate16 = 7, TssAvailable = 9, TssBusy = 0xb, CallGate = 0xc, InterruptGate = 0xe,
                  TrapGate = 0xf;
}  // namespace seg_type

// A selector's parts (SDM vol. 3A §3.4.2).
inline constexpr unsigned rpl(uint16_t selector) { return selector & 3u; }
inline constexpr bool null_selector(uint16_t selector) { return (selector & 0xfffc) == 0; }
// The error code of a fault about `selector`: index and TI, EXT = `external` (SDM §6.13).
inline constexpr uint32_t selector_error(uint16_t selector, bool external = false) {
    return (selector & 0xfffcu) | (external ? 1u : 0u);
}

// A segment, gate or system descriptor as it sits in a table: the two dwords of every
// descriptor and, for the 16-byte system descriptors of IA-32e mode, the next two.
struct Descriptor {
    uint32_t low = 0, high = 0;
    uint32_t high2 = 0, high3 = 0;  // bytes 8-15 of a 16-byte descriptor

    [[nodiscard]] uint8_t type() const { return static_cast<uint8_t>((high >> 8) & 0xf); }
    [[nodiscard]] bool code_or_data() const { return (high >> 12) & 1; }  // S
    [[nodiscard]] bool code() const { return code_or_data() && (type() & seg_type::Code); }
    [[nodiscard]] bool data() const { return code_or_data() && !(type() & seg_type::Code); }
    [[nodiscard]] bool conforming_code() const { return code() && (type() & seg_type::Conforming); }
    [[nodiscard]] bool readable() const { return data() || (code() && (type() & seg_type::Readable)); }
    [[nodiscard]] bool writable_data() const { return data() && (type() & seg_type::Writable); }
    [[nodiscard]] unsigned dpl() const { return (high >> 13) & 3; }
    [[nodiscard]] bool present() const { return (high >> 15) & 1; }
    [[nodiscard]] bool l() const { return (high >> 21) & 1; }
    [[nodiscard]] bool db() const { return (high >> 22) & 1; }
    [[nodiscard]] bool g() const { return (high >> 23) & 1; }
    [[nodiscard]] uint32_t base32() const {
        return (low >> 16) | ((high & 0xff) << 16) | (high & 0xff00'0000u);
    }
    // A 16-byte system descriptor's base (LDT, TSS in IA-32e mode).
    [[nodiscard]] uint64_t base64() const { return base32() | (uint64_t{high2} << 32); }
    // The byte limit: the 20-bit field, scaled by G (SDM §3.4.5).
    [[nodiscard]] uint32_t limit() const {
        uint32_t raw = (low & 0xffff) | (high & 0xf'0000);
        return g() ? (raw << 12) | 0xfff : raw;
    }
    // Gates (SDM §5.8.3 figure 5-8, §6.11 figure 6-2, §6.14.1 figure 6-8).
    [[nodiscard]] uint16_t gate_selector() const { return static_cast<uint16_t>(low >> 16); }
    [[nodiscard]] uint64_t gate_offset32() const { return (low & 0xffff) | (high & 0xffff'0000u); }
    [[nodiscard]] uint64_t gate_offset64() const { return gate_offset32() | (uint64_t{high2} << 32); }
    [[nodiscard]] unsigned gate_parameter_count() const { return high & 0x1f; }  // call gates
    [[nodiscard]] unsigned gate_ist() const { return high & 7; }                 // 64-bit IDT gates
    // The type field of a 16-byte descriptor's upper half, which must be 0 (SDM §5.8.3.1).
    [[nodiscard]] unsigned upper_type() const { return (high3 >> 8) & 0x1f; }
};

// The guest-linear address of the descriptor `selector` names in the GDT or LDT, or nullopt when
// its `bytes` (8 or 16) are not all within the table's limit (or the LDT is null).
[[nodiscard]] std::optional<uint64_t> descriptor_address(const Cpu& cpu, uint16_t selector, unsigned bytes = 8);
// Reads that descriptor (a system access); nullopt past the limit.
[[nodiscard]] std::optional<Descriptor> read_descriptor(Cpu& cpu, uint16_t selector, unsigned bytes = 8);
// Sets the accessed bit of a code or data descriptor in its table, as a locked update.
void mark_accessed(Cpu& cpu, uint16_t selector, Descriptor& descriptor);
// Sets a TSS descriptor's busy bit, as a locked update.
void mark_tss_busy(Cpu& cpu, uint16_t selector, Descriptor& descriptor);

// The descriptor cache a load of `selector` with `descriptor` leaves.
[[nodiscard]] SegmentState segment_from(uint16_t selector, const Descriptor& descriptor);
// The cache of a null selector load in protected mode: unusable, base cleared (as Intel
// processors do; AMD's keep FS/GS base), `selector` kept (its RPL matters for SS in 64-bit mode).
[[nodiscard]] SegmentState null_segment(uint16_t selector);
// Real mode and virtual-8086 mode: base = selector << 4. Real mode keeps the cached limit and
// attributes (what "unreal mode" relies on); virtual-8086 mode sets a 64 KiB DPL-3 data segment.
void load_real_mode_segment(Cpu& cpu, unsigned sreg, uint16_t selector);

// MOV/POP/LxS into DS, ES, FS, GS or SS with every check of the SDM's pseudo-code (#GP, #SS,
// #NP with the selector as error code), in every mode. Ends the block; refreshes the mode for SS.
void load_segment_register(Cpu& cpu, unsigned sreg, uint16_t selector);

// Whether a code segment at `descriptor` may become CS for JMP/CALL without a gate, at the CPU's
// CPL, with `rpl` requested: #GP(selector) if not, #NP(selector) if not present (SDM vol. 2 JMP).
void check_direct_code_target(const Cpu& cpu, uint16_t selector, const Descriptor& descriptor);
// The checks every code-segment target shares: a code segment, a valid L/D pair in IA-32e mode,
// present. `error` is the selector's error code (with EXT for interrupt delivery).
void check_code_segment(const Cpu& cpu, const Descriptor& descriptor, uint32_t error);

// The inner stack of privilege level `dpl` from the current TSS (32- or 16-bit; SDM §7.2.1
// figures 7-2 and 7-11), #TS(TR selector + EXT) if beyond its limit.
struct InnerStack {
    uint16_t ss = 0;
    uint64_t sp = 0;
};
[[nodiscard]] InnerStack legacy_tss_stack(Cpu& cpu, unsigned dpl, bool external);
// RSPn (ist = 0) or ISTn (1-7) from the 64-bit TSS (SDM §7.7 figure 7-11), #TS if beyond its limit.
[[nodiscard]] uint64_t long_tss_stack(Cpu& cpu, unsigned dpl, unsigned ist, bool external);
// Checks a new inner stack segment of privilege `dpl` for a gate's privilege change: #TS(error)
// for a bad selector or descriptor, #SS if not present. Returns its descriptor cache.
[[nodiscard]] SegmentState check_inner_stack(Cpu& cpu, uint16_t selector, unsigned dpl, bool external);

// A stack frame pushed onto a stack that need not be the current one (a privilege change): the
// writes happen as they are pushed, through the given SS's checks, but no register changes until
// the caller commits `rsp()`, so that a fault leaves the CPU as it was (SDM §6.12.1).
class StackFrame {
public:
    // `width`: 64 for a 64-bit mode stack, else 32 or 16 (SS.B); `supervisor`: the pushes are
    // accesses of privilege 0-2; `fault_error`: the #SS error code for a limit violation.
    StackFrame(Cpu& cpu, const SegmentState& ss, uint64_t rsp, unsigned width, bool supervisor, uint32_t fault_error)
        : cpu_(cpu), ss_(ss), rsp_(rsp), width_(width), supervisor_(supervisor), fault_error_(fault_error) {}
    void push(unsigned bytes, uint64_t value);
    // Writes only the low 16 bits of a `bytes`-wide slot, as recent Intel processors push
    // segment selectors (SDM vol. 2 PUSH).
    void push_selector(unsigned bytes, uint16_t selector);
    [[nodiscard]] uint64_t rsp() const { return rsp_; }
    // The new RSP merged into the old one as a `width`-bit stack pointer update does.
    [[nodiscard]] uint64_t merged_rsp(uint64_t old_rsp) const;

private:
    uint64_t slot(unsigned bytes);
    Cpu& cpu_;
    const SegmentState& ss_;
    uint64_t rsp_;
    unsigned width_;
    bool supervisor_;
    uint32_t fault_error_;
};

// The linear address of `bytes` at `offset` in the stack segment `ss` (not necessarily the
// current SS), with a `width`-bit stack: #SS(fault_error) outside its limit or non-canonical.
[[nodiscard]] uint64_t stack_linear(const SegmentState& ss, uint64_t offset, unsigned bytes, unsigned width,
                                    uint32_t fault_error);

// After a return to an outer privilege level (RET far, IRET): data segment registers whose
// descriptor the new CPL may not use become null (SDM vol. 2 RET, "Operation", last loop).
void invalidate_inaccessible_segments(Cpu& cpu, unsigned new_cpl);

}  // namespace strata::soft
