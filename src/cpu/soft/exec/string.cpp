// The string instructions MOVS, STOS, LODS, CMPS and SCAS at every element size, alone or with
// REP/REPE/REPNE (SDM vol. 1 §7.3.9, vol. 2B "REP/REPE/REPZ/REPNE/REPNZ").
//
// Registers: the source is seg:rSI (DS unless overridden), the destination ES:rDI (never
// overridden), the count rCX; all three are SI/DI/CX, ESI/EDI/ECX or RSI/RDI/RCX by the address
// size, and written at that size (a 32-bit write zero-extends, a 16-bit one wraps within the
// low word). rSI/rDI step by the element size, down when DF = 1.
//
// REP: the instruction is interruptible. One call runs at most kMaxElementsPerCall elements (or
// kMaxFastBytesPerCall bytes by the fast path below) and, if rCX is not yet zero, leaves RIP on
// the instruction itself and ends the block, so the run loop looks at interrupts and stop
// requests before the next run; rSI/rDI/rCX are updated element by element, so a fault or an
// interrupt between elements restarts exactly where the SDM says (vol. 2B REP: "the registers
// ... reflect the progress"). With TF set, every element is one step (a #DB after each).
// REPE/REPNE end CMPS/SCAS when ZF becomes 0/1; on MOVS/STOS/LODS both mean REP.
//
// Fast path: REP MOVS and REP STOS with DF = 0 over RAM move whole runs of elements up to the end
// of the current source or destination page with one host memmove/fill, through host pointers
// from the same page walk (permissions, A/D bits) the element accesses would use, and with the
// code-page invalidation writes need (Cpu::rmw_pointer marks the page written). A MOVS whose
// destination starts inside its own source run (an element-wise forward copy replicates the
// pattern) and everything not RAM take the element loop.
// Spec: Intel SDM vol. 2B MOVS, STOS, LODS, CMPS, SCAS, REP; vol. 3B §17.3.1.4 (single step).
#include <Zydis/Zydis.h>

#include <algorithm>

#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

namespace {

constexpr uint64_t kMaxElementsPerCall = 4096;
constexpr uint64_t kMaxFastBytesPerCall = 64 * 1024;
constexpr unsigned kSi = 6, kDi = 7, kCx = 1;

bool repeated(const Insn& insn) { return (insn.prefixes & (prefix::Rep | prefix::Repne)) != 0; }

// The byte distance rSI/rDI move per element.
uint64_t step(const Cpu& cpu, unsigned size) {
    return (cpu.flags.other & rflags::DF) ? 0 - static_cast<uint64_t>(size) : size;
}

// An index register's offset, and advancing it, at the address size.
uint64_t index_offset(const Cpu& cpu, const Insn& insn, unsigned r) { return cpu.reg(r, insn.asize); }
void advance(Cpu& cpu, const Insn& insn, unsigned r, uint64_t delta) { cpu.set_reg(r, insn.asize, cpu.gpr[r] + delta); }

uint64_t element_budget(const Cpu& cpu) { return (cpu.flags.other & rflags::TF) ? 1 : kMaxElementsPerCall; }

// rCX is not yet zero: run this instruction again after the run loop has looked at events.
// cpu.rip is still the instruction's own address while its handler runs.
void restart(Cpu& cpu) {
    cpu.next_rip = cpu.rip;
    cpu.end_block = true;
}

// --- One element of each instruction ---

void movs_element(Cpu& cpu, const Insn& insn, unsigned size) {
    uint64_t value = cpu.read_sized(insn.mem.seg, index_offset(cpu, insn, kSi), size);
    cpu.write_sized(ES, index_offset(cpu, insn, kDi), size, value);
    advance(cpu, insn, kSi, step(cpu, size));
    advance(cpu, insn, kDi, step(cpu, size));
}

void stos_element(Cpu& cpu, const Insn& insn, unsigned size) {
    cpu.write_sized(ES, index_offset(cpu, insn, kDi), size, cpu.reg(0, size));
    advance(cpu, insn, kDi, step(cpu, size));
}

void lods_element(Cpu& cpu, const Insn& insn, unsigned size) {
    uint64_t value = cpu.read_sized(insn.mem.seg, index_offset(cpu, insn, kSi), size);
    cpu.set_reg(0, size, value);
    advance(cpu, insn, kSi, step(cpu, size));
}

// CMPS: flags of [seg:rSI] − [ES:rDI].
void cmps_element(Cpu& cpu, const Insn& insn, unsigned size) {
    uint64_t source = cpu.read_sized(insn.mem.seg, index_offset(cpu, insn, kSi), size);
    uint64_t destination = cpu.read_sized(ES, index_offset(cpu, insn, kDi), size);
    cpu.flags.set(CcOp::Sub, size, source - destination, source, destination);
    advance(cpu, insn, kSi, step(cpu, size));
    advance(cpu, insn, kDi, step(cpu, size));
}

// SCAS: flags of the accumulator − [ES:rDI].
void scas_element(Cpu& cpu, const Insn& insn, unsigned size) {
    uint64_t accumulator = cpu.reg(0, size);
    uint64_t destination = cpu.read_sized(ES, index_offset(cpu, insn, kDi), size);
    cpu.flags.set(CcOp::Sub, size, accumulator - destination, accumulator, destination);
    advance(cpu, insn, kDi, step(cpu, size));
}

// --- The fast path's bounds ---

// How many of `elements` elements from `offset` in segment s the fast path may touch: not past
// the address size's wrap, and outside 64-bit mode within an expand-up segment's limit (0: the
// element loop raises the fault or handles the expand-down segment).
uint64_t segment_room(const Cpu& cpu, const Insn& insn, unsigned s, uint64_t offset, unsigned size, uint64_t elements) {
    if (insn.asize < 8) elements = std::min(elements, (LazyFlags::mask(insn.asize) - offset + 1) / size);
    if (cpu.code64) return elements;
    const SegmentState& sg = cpu.seg[s];
    bool expand_down = !(sg.type & 8) && (sg.type & 4);
    if (expand_down || offset + size - 1 > sg.limit) return 0;
    return std::min(elements, (sg.limit - offset + 1) / size);
}

// Whole elements from linear address `linear` to the end of its page.
uint64_t page_room(uint64_t linear, unsigned size) { return (0x1000 - (linear & 0xfff)) / size; }

// What a fast run did: `done` elements, or none, and then how many elements the element loop
// should do before the next try (up to and including one that crosses a page end).
struct Run {
    uint64_t done = 0;
    uint64_t slow = 1;
};

// A run of MOVS elements as one host memmove. The source is translated before the destination's
// segment is checked, in the order one element's accesses would fault.
Run movs_run(Cpu& cpu, const Insn& insn, unsigned size, uint64_t elements) {
    uint64_t source_offset = index_offset(cpu, insn, kSi), destination_offset = index_offset(cpu, insn, kDi);
    uint64_t source = cpu.linear(insn.mem.seg, source_offset, size, Access::Read);
    uint64_t n = std::min(segment_room(cpu, insn, insn.mem.seg, source_offset, size, elements), page_room(source, size));
    if (n == 0) return {0, 1};
    const uint8_t* from = cpu.read_pointer(source, static_cast<unsigned>(n * size));
    uint64_t destination = cpu.linear(ES, destination_offset, size, Access::Write);
    n = std::min({n, segment_room(cpu, insn, ES, destination_offset, size, n), page_room(destination, size)});
    Run slow{0, std::min(page_room(source, size), page_room(destination, size)) + 1};
    if (n == 0 || !from) return slow;
    uint64_t bytes = n * size;
    uint8_t* to = cpu.rmw_pointer(destination, static_cast<unsigned>(bytes));
    if (!to) return slow;
    auto from_address = reinterpret_cast<uintptr_t>(from), to_address = reinterpret_cast<uintptr_t>(to);
    if (to_address > from_address && to_address < from_address + bytes) return slow;
    std::memmove(to, from, bytes);
    advance(cpu, insn, kSi, bytes);
    advance(cpu, insn, kDi, bytes);
    return {n, 0};
}

template <class T>
void fill(uint8_t* to, uint64_t count, uint64_t value) {
    auto v = static_cast<T>(value);
    for (uint64_t i = 0; i < count; ++i) std::memcpy(to + i * sizeof(T), &v, sizeof(T));
}

// A run of STOS elements as one host fill.
Run stos_run(Cpu& cpu, const Insn& insn, unsigned size, uint64_t elements) {
    uint64_t offset = index_offset(cpu, insn, kDi);
    uint64_t destination = cpu.linear(ES, offset, size, Access::Write);
    uint64_t n = std::min(segment_room(cpu, insn, ES, offset, size, elements), page_room(destination, size));
    if (n == 0) return {0, 1};
    uint8_t* to = cpu.rmw_pointer(destination, static_cast<unsigned>(n * size));
    if (!to) return {0, page_room(destination, size) + 1};
    uint64_t value = cpu.reg(0, size);
    switch (size) {
        case 1: std::memset(to, static_cast<uint8_t>(value), n); break;
        case 2: fill<uint16_t>(to, n, value); break;
        case 4: fill<uint32_t>(to, n, value); break;
        default: fill<uint64_t>(to, n, value); break;
    }
    advance(cpu, insn, kDi, n * size);
    return {n, 0};
}

// --- REP drivers ---

using Element = void (*)(Cpu&, const Insn&, unsigned);
using FastRun = Run (*)(Cpu&, const Insn&, unsigned, uint64_t);

// MOVS, STOS, LODS: alone, or repeated rCX times. `fast` (may be null) moves whole runs when
// DF = 0 and no single step is pending.
void repeat(Cpu& cpu, const Insn& insn, Element element, FastRun fast) {
    unsigned size = insn.osize;
    if (!repeated(insn)) {
        element(cpu, insn, size);
        return;
    }
    uint64_t count = cpu.reg(kCx, insn.asize);
    uint64_t elements = element_budget(cpu);
    uint64_t fast_bytes = kMaxFastBytesPerCall;
    bool try_fast = fast && !(cpu.flags.other & (rflags::DF | rflags::TF));
    uint64_t slow_before_retry = 0;
    while (count != 0 && elements != 0) {
        if (try_fast && slow_before_retry == 0) {
            if (fast_bytes < size) break;  // this call's share is done
            Run run = fast(cpu, insn, size, std::min(count, fast_bytes / size));
            if (run.done) {
                count -= run.done;
                fast_bytes -= run.done * size;
                cpu.set_reg(kCx, insn.asize, count);
                continue;
            }
            slow_before_retry = run.slow;
        }
        element(cpu, insn, size);
        --count;
        --elements;
        if (slow_before_retry) --slow_before_retry;
        cpu.set_reg(kCx, insn.asize, count);
    }
    if (count != 0) restart(cpu);
}

// CMPS, SCAS: alone, or repeated while rCX ≠ 0 and ZF = 1 (REPE) or ZF = 0 (REPNE).
void repeat_compare(Cpu& cpu, const Insn& insn, Element element) {
    unsigned size = insn.osize;
    if (!repeated(insn)) {
        element(cpu, insn, size);
        return;
    }
    bool stop_when_equal = (insn.prefixes & prefix::Repne) != 0;
    uint64_t count = cpu.reg(kCx, insn.asize);
    for (uint64_t elements = element_budget(cpu); count != 0 && elements != 0; --elements) {
        element(cpu, insn, size);
        --count;
        cpu.set_reg(kCx, insn.asize, count);
        if (cpu.flags.zf() == stop_when_equal) return;
    }
    if (count != 0) restart(cpu);
}

void movs(Cpu& cpu, const Insn& insn) { repeat(cpu, insn, &movs_element, &movs_run); }
void stos(Cpu& cpu, const Insn& insn) { repeat(cpu, insn, &stos_element, &stos_run); }
void lods(Cpu& cpu, const Insn& insn) { repeat(cpu, insn, &lods_element, nullptr); }
void cmps(Cpu& cpu, const Insn& insn) { repeat_compare(cpu, insn, &cmps_element); }
void scas(Cpu& cpu, const Insn& insn) { repeat_compare(cpu, insn, &scas_element); }

}  // namespace

void bind_string(HandlerTable& table) {
    for (ZydisMnemonic m : {ZYDIS_MNEMONIC_MOVSB, ZYDIS_MNEMONIC_MOVSW, ZYDIS_MNEMONIC_MOVSD, ZYDIS_MNEMONIC_MOVSQ})
        table.bind(m, &movs);
    for (ZydisMnemonic m : {ZYDIS_MNEMONIC_STOSB, ZYDIS_MNEMONIC_STOSW, ZYDIS_MNEMONIC_STOSD, ZYDIS_MNEMONIC_STOSQ})
        table.bind(m, &stos);
    for (ZydisMnemonic m : {ZYDIS_MNEMONIC_LODSB, ZYDIS_MNEMONIC_LODSW, ZYDIS_MNEMONIC_LODSD, ZYDIS_MNEMONIC_LODSQ})
        table.bind(m, &lods);
    for (ZydisMnemonic m : {ZYDIS_MNEMONIC_CMPSB, ZYDIS_MNEMONIC_CMPSW, ZYDIS_MNEMONIC_CMPSD, ZYDIS_MNEMONIC_CMPSQ})
        table.bind(m, &cmps);
    for (ZydisMnemonic m : {ZYDIS_MNEMONIC_SCASB, ZYDIS_MNEMONIC_SCASW, ZYDIS_MNEMONIC_SCASD, ZYDIS_MNEMONIC_SCASQ})
        table.bind(m, &scas);
}

}  // namespace strata::soft
