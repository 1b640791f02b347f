// What the MMX and SSE handlers (sse_*.cpp, simd_*.cpp) share: vectors as byte arrays with typed
// lanes, operands read and written as MMX registers, XMM registers or memory (16-byte memory
// operands of legacy SSE instructions must be aligned, SDM vol. 1 §10.4.1.1, §11.6.8 — #GP(0)
// otherwise — except for the instructions that say so), the handler skeletons that dispatch an
// instruction's MMX and XMM forms to one operation, and the SIMD floating-point exception rules.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "cpu/soft/exec/exec.hpp"
#include "cpu/soft/exec/fpu_common.hpp"
#include "cpu/soft/exec/sse_host.hpp"

namespace strata::soft::simd {

using Xmm = std::array<uint8_t, 16>;
using Mm = fpu::Mm;
template <size_t W>
using Vec = std::array<uint8_t, W>;

template <class V>
constexpr size_t width_of = std::tuple_size_v<std::remove_cvref_t<V>>;

// --- Lanes ---

// Lanes past the vector read as 0 and are not written: generic code over both widths has
// branches for the wider one that the narrower never takes (and g++ -O2 checks them).
template <class T, size_t W>
T lane(const Vec<W>& v, size_t i) {
    T x{};
    if ((i + 1) * sizeof(T) > W) return x;
    std::memcpy(&x, v.data() + i * sizeof(T), sizeof(T));
    return x;
}

template <class T, size_t W>
void set_lane(Vec<W>& v, size_t i, T x) {
    if ((i + 1) * sizeof(T) > W) return;
    std::memcpy(v.data() + i * sizeof(T), &x, sizeof(T));
}

template <class T, size_t W>
constexpr size_t lanes(const Vec<W>&) {
    return W / sizeof(T);
}

// r[i] = f(a[i], b[i]) on lanes of type T; f's result is converted back to T (wrapping).
template <class T, size_t W, class F>
Vec<W> map2(const Vec<W>& a, const Vec<W>& b, F f) {
    Vec<W> r{};
    for (size_t i = 0; i < W / sizeof(T); ++i) set_lane<T>(r, i, static_cast<T>(f(lane<T>(a, i), lane<T>(b, i))));
    return r;
}

template <class T, size_t W, class F>
Vec<W> map1(const Vec<W>& a, F f) {
    Vec<W> r{};
    for (size_t i = 0; i < W / sizeof(T); ++i) set_lane<T>(r, i, static_cast<T>(f(lane<T>(a, i))));
    return r;
}

// Clamps to T's range (the saturating arithmetic of §9.2.5 / §11.4.x).
template <class T>
T saturate(int64_t x) {
    if (x < static_cast<int64_t>(std::numeric_limits<T>::min())) return std::numeric_limits<T>::min();
    if (x > static_cast<int64_t>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return static_cast<T>(x);
}

inline Xmm xmm_from(uint64_t low, uint64_t high = 0) {
    Xmm x;
    std::memcpy(x.data(), &low, 8);
    std::memcpy(x.data() + 8, &high, 8);
    return x;
}

// --- Operands ---

// The linear address of the memory operand, `size` bytes; #GP(0) for a misaligned 16-byte operand
// of an instruction that requires alignment.
inline uint64_t memory_linear(Cpu& cpu, const Insn& insn, unsigned size, Access access, bool aligned) {
    uint64_t linear = cpu.linear(insn.mem.seg, effective_address(cpu, insn), size, access);
    if (aligned && size == 16 && (linear & 15)) raise_gp(0);
    return linear;
}

// Operand n as 16 bytes: an XMM register, or `op.size` bytes of memory zero-extended.
inline Xmm read_xmm_source(Cpu& cpu, const Insn& insn, unsigned n, bool aligned = true) {
    const Operand& op = insn.op[n];
    if (op.kind == OpKind::Xmm) return cpu.xmm[op.reg];
    if (op.kind == OpKind::Mmx) return xmm_from(lane<uint64_t>(fpu::read_mmx(cpu, op.reg), 0));
    if (op.kind != OpKind::Mem) panic_operand(insn, n);
    unsigned size = op.size;
    if (size == 16) return cpu.read_linear<Xmm>(memory_linear(cpu, insn, 16, Access::Read, aligned));
    return xmm_from(cpu.read_sized(insn.mem.seg, effective_address(cpu, insn), size));
}

// Operand n as 8 bytes: an MMX register, the low quadword of an XMM register, or memory.
inline Mm read_mm_source(Cpu& cpu, const Insn& insn, unsigned n) {
    const Operand& op = insn.op[n];
    if (op.kind == OpKind::Mmx) return fpu::read_mmx(cpu, op.reg);
    Mm r{};
    if (op.kind == OpKind::Xmm) {
        std::memcpy(r.data(), cpu.xmm[op.reg].data(), 8);
        return r;
    }
    if (op.kind != OpKind::Mem) panic_operand(insn, n);
    set_lane<uint64_t>(r, 0, cpu.read_sized(insn.mem.seg, effective_address(cpu, insn), op.size));
    return r;
}

// Writes the low `size` bytes of `value` to the memory operand.
inline void write_memory(Cpu& cpu, const Insn& insn, const Xmm& value, unsigned size, bool aligned = true) {
    if (size == 16) {
        cpu.write_linear<Xmm>(memory_linear(cpu, insn, 16, Access::Write, aligned), value);
        return;
    }
    cpu.write_sized(insn.mem.seg, effective_address(cpu, insn), size, lane<uint64_t>(value, 0));
}

// --- Handler skeletons: one operation, its MMX and its XMM forms ---

// dest = op(dest, src) for MMX (64-bit) and XMM (128-bit) registers; `op` is a generic callable
// on Vec<8> and Vec<16>.
template <class Op>
void packed_binary(Cpu& cpu, const Insn& insn) {
    if (insn.op[0].kind == OpKind::Mmx) {
        fpu::mmx_prologue(cpu);
        Mm b = read_mm_source(cpu, insn, 1);
        unsigned d = insn.op[0].reg;
        fpu::write_mmx(cpu, d, Op{}(fpu::read_mmx(cpu, d), b));
        fpu::mmx_transition(cpu);
        return;
    }
    fpu::sse_prologue(cpu);
    Xmm b = read_xmm_source(cpu, insn, 1);
    Xmm a = cpu.xmm[insn.op[0].reg];
    cpu.xmm[insn.op[0].reg] = Op{}(a, b);
}

// The same with the instruction's immediate as a third argument.
template <class Op>
void packed_binary_imm(Cpu& cpu, const Insn& insn) {
    uint8_t imm = static_cast<uint8_t>(insn.imm);
    if (insn.op[0].kind == OpKind::Mmx) {
        fpu::mmx_prologue(cpu);
        Mm b = read_mm_source(cpu, insn, 1);
        unsigned d = insn.op[0].reg;
        fpu::write_mmx(cpu, d, Op{}(fpu::read_mmx(cpu, d), b, imm));
        fpu::mmx_transition(cpu);
        return;
    }
    fpu::sse_prologue(cpu);
    Xmm b = read_xmm_source(cpu, insn, 1);
    Xmm a = cpu.xmm[insn.op[0].reg];
    cpu.xmm[insn.op[0].reg] = Op{}(a, b, imm);
}

// --- SIMD floating-point exceptions (§11.5.2, §11.5.3) ---

// The host MXCSR an operation runs under: the guest's RC, DAZ and FTZ, everything masked.
inline uint32_t host_csr(uint32_t guest) {
    return (guest & (fpu::mxcsr::RC | fpu::mxcsr::DAZ | fpu::mxcsr::FTZ)) | fpu::mxcsr::kMasks;
}

// Runs `run(csr, result)` (which returns the flags it raised) and applies the exception rules:
// with every raised exception masked the flags are ORed into MXCSR and the result stands; an
// unmasked one leaves the destination alone and raises #XM (#UD without CR4.OSXMMEXCPT) — with
// only the pre-computation flags set (invalid, denormal, divide-by-zero) if one of those is
// unmasked, else with all. An unmasked underflow also counts tiny exact results, which masked
// hardware does not flag: a second run with FTZ finds them.
template <class Result, class Run>
Result sse_compute(Cpu& cpu, Run run) {
    namespace mx = fpu::mxcsr;
    uint32_t guest = cpu.mxcsr;
    uint32_t csr = host_csr(guest);
    Result result{};
    uint32_t raised = run(csr, result);
    uint32_t unmasked_bits = ~(guest >> mx::kMaskBitsShift) & mx::kFlags;
    if ((unmasked_bits & mx::UE) && !(guest & mx::FTZ) && !(raised & mx::UE)) {
        Result scratch{};
        if (run(csr | mx::FTZ, scratch) & mx::UE) raised |= mx::UE;
    }
    uint32_t unmasked = raised & unmasked_bits;
    if (unmasked) {
        constexpr uint32_t kPre = mx::IE | mx::DE | mx::ZE;
        cpu.mxcsr |= (unmasked & kPre) ? (raised & kPre) : raised;
        fpu::raise_simd_fp(cpu);
    }
    cpu.mxcsr |= raised;
    return result;
}

// The families of sse.cpp's bind_sse(), one per file.
void bind_sse_moves(HandlerTable& table);
void bind_sse_float(HandlerTable& table);
void bind_simd_integer(HandlerTable& table);
void bind_sse4(HandlerTable& table);
void bind_sse_string(HandlerTable& table);
void bind_sse_state(HandlerTable& table);
// The SSE2 forms of MOVSD and CMPSD, whose mnemonics the string instructions share.
void movsd_xmm(Cpu& cpu, const Insn& insn);
void cmpsd_xmm(Cpu& cpu, const Insn& insn);

}  // namespace strata::soft::simd
