#include "cpu/cpu_state.hpp"

#include <fmt/format.h>

namespace strata {

namespace {

std::string describe_segment(const char* name, const SegmentState& s) {
    return fmt::format("{:<3} sel={:04x} base={:016x} limit={:08x} type={:x} s={:d} dpl={} p={:d} db={:d} l={:d} g={:d}{}\n",
                       name, s.selector, s.base, s.limit, s.type, s.s, s.dpl, s.present, s.db, s.l, s.g,
                       s.unusable ? " unusable" : "");
}

}  // namespace

std::string CpuState::describe() const {
    static constexpr const char* kNames[] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                             "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
    std::string out;
    for (unsigned i = 0; i < 16; ++i) out += fmt::format("{:<3}={:016x}{}", kNames[i], gpr[i], i % 4 == 3 ? "\n" : " ");
    out += fmt::format("rip={:016x} rflags={:08x}\n", rip, rflags);
    out += describe_segment("cs", cs) + describe_segment("ss", ss) + describe_segment("ds", ds) +
           describe_segment("es", es) + describe_segment("fs", fs) + describe_segment("gs", gs) +
           describe_segment("tr", tr) + describe_segment("ldt", ldt);
    out += fmt::format("gdt={:016x}/{:04x} idt={:016x}/{:04x}\n", gdt.base, gdt.limit, idt.base, idt.limit);
    out += fmt::format("cr0={:016x} cr2={:016x} cr3={:016x} cr4={:016x}\nefer={:016x} apic_base={:016x}\n", cr0, cr2,
                       cr3, cr4, efer, apic_base);
    return out;
}

SegmentState flat_code32() {
    return {.base = 0, .limit = 0xffff'ffff, .selector = 0x10, .type = 0xb, .present = true, .dpl = 0,
            .db = true, .s = true, .l = false, .g = true};
}

SegmentState flat_code64() {
    return {.base = 0, .limit = 0xffff'ffff, .selector = 0x10, .type = 0xb, .present = true, .dpl = 0,
            .db = false, .s = true, .l = true, .g = true};
}

CpuState real_mode_at(uint32_t address) {
    CpuState state;
    auto segment = [](uint16_t selector, uint8_t type) {
        return SegmentState{.base = uint64_t{selector} << 4, .limit = 0xffff, .selector = selector, .type = type,
                            .present = true, .dpl = 0, .db = false, .s = true, .l = false, .g = false};
    };
    state.cs = segment(static_cast<uint16_t>(address >> 4), 0xb);
    state.ds = state.es = state.fs = state.gs = state.ss = segment(0, 0x3);
    state.rip = address & 0xf;
    state.cr0 = 0x6000'0010;  // reset value: caches off, ET, no protection
    return state;
}

SegmentState flat_data(uint16_t selector) {
    return {.base = 0, .limit = 0xffff'ffff, .selector = selector, .type = 0x3, .present = true, .dpl = 0,
            .db = true, .s = true, .l = false, .g = true};
}

}  // namespace strata
