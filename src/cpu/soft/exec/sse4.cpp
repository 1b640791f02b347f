// SSE4.1 and SSE4.2 instructions that are neither plain lane-wise integer operations
// (simd_integer.cpp) nor floating point (sse_float.cpp) nor string compares (sse_string.cpp):
// PMOVSX/PMOVZX, PINSRB/PINSRD/PINSRQ, PEXTRB/PEXTRD/PEXTRQ, EXTRACTPS, INSERTPS, PTEST, PBLENDW,
// BLENDPS/BLENDPD, PBLENDVB/BLENDVPS/BLENDVPD, MPSADBW, PHMINPOSUW, and SSE4.2's CRC32.
//
// Spec: Intel SDM vol. 1 §12.10 (SSE4.1), §12.12 (SSE4.2); vol. 2 (each instruction's Operation).
#include <array>

#include "cpu/soft/exec/simd.hpp"

namespace strata::soft::simd {

namespace {

// PMOVSXBW ... PMOVZXDQ: the low elements of the source widened (sign or zero extension).
template <class From, class To>
void widen(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    Xmm b = read_xmm_source(cpu, insn, 1);
    Xmm r{};
    for (size_t i = 0; i < 16 / sizeof(To); ++i) set_lane<To>(r, i, static_cast<To>(lane<From>(b, i)));
    cpu.xmm[insn.op[0].reg] = r;
}

// PINSRB/PINSRD/PINSRQ xmm, r/m, imm8: one element replaced.
template <class T>
void insert(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    T value = static_cast<T>(read_operand(cpu, insn, 1));
    set_lane<T>(cpu.xmm[insn.op[0].reg], insn.imm & (16 / sizeof(T) - 1), value);
}

// PEXTRB/PEXTRD/PEXTRQ and EXTRACTPS r/m, xmm, imm8: one element, zero-extended into a register.
template <class T>
void extract(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    T value = lane<T>(cpu.xmm[insn.op[1].reg], insn.imm & (16 / sizeof(T) - 1));
    write_operand(cpu, insn, 0, value);
}

// INSERTPS xmm1, xmm2/m32, imm8: element imm8[7:6] of a register source (a memory source is the
// element) into element imm8[5:4], then the elements imm8[3:0] selects zeroed.
void insertps(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    unsigned imm = static_cast<unsigned>(insn.imm);
    Xmm b = read_xmm_source(cpu, insn, 1);
    uint32_t element = lane<uint32_t>(b, insn.op[1].kind == OpKind::Mem ? 0 : (imm >> 6) & 3);
    Xmm& d = cpu.xmm[insn.op[0].reg];
    set_lane<uint32_t>(d, (imm >> 4) & 3, element);
    for (unsigned i = 0; i < 4; ++i)
        if ((imm >> i) & 1) set_lane<uint32_t>(d, i, 0u);
}

// PTEST: ZF = (dest AND src) is zero, CF = (NOT dest AND src) is zero; AF, OF, PF, SF cleared.
void ptest(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    Xmm b = read_xmm_source(cpu, insn, 1);
    const Xmm& a = cpu.xmm[insn.op[0].reg];
    uint64_t and_bits = 0, andn_bits = 0;
    for (size_t i = 0; i < 2; ++i) {
        and_bits |= lane<uint64_t>(a, i) & lane<uint64_t>(b, i);
        andn_bits |= ~lane<uint64_t>(a, i) & lane<uint64_t>(b, i);
    }
    cpu.flags.materialize();
    cpu.flags.put(rflags::AF | rflags::OF | rflags::PF | rflags::SF, false);
    cpu.flags.put(rflags::ZF, and_bits == 0);
    cpu.flags.put(rflags::CF, andn_bits == 0);
}

// PBLENDW, BLENDPS, BLENDPD xmm, xmm/m128, imm8: element i from the source where imm8 bit i is set.
template <class T>
void blend_immediate(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    Xmm b = read_xmm_source(cpu, insn, 1);
    Xmm& d = cpu.xmm[insn.op[0].reg];
    for (size_t i = 0; i < 16 / sizeof(T); ++i)
        if ((insn.imm >> i) & 1) set_lane<T>(d, i, lane<T>(b, i));
}

// PBLENDVB, BLENDVPS, BLENDVPD xmm, xmm/m128, <XMM0>: by the top bit of XMM0's elements.
template <class T>
void blend_variable(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    Xmm b = read_xmm_source(cpu, insn, 1);
    Xmm mask = cpu.xmm[0];
    Xmm& d = cpu.xmm[insn.op[0].reg];
    for (size_t i = 0; i < 16 / sizeof(T); ++i)
        if (lane<T>(mask, i) >> (8 * sizeof(T) - 1)) set_lane<T>(d, i, lane<T>(b, i));
}

// MPSADBW xmm, xmm/m128, imm8: eight sums of absolute differences between the source's four-byte
// block imm8[1:0] and the eight overlapping four-byte windows of the destination from
// byte 4 * imm8[2].
void mpsadbw(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    Xmm b = read_xmm_source(cpu, insn, 1);
    Xmm a = cpu.xmm[insn.op[0].reg];
    unsigned src_offset = static_cast<unsigned>(insn.imm & 3) * 4;
    unsigned dest_offset = static_cast<unsigned>((insn.imm >> 2) & 1) * 4;
    Xmm r{};
    for (unsigned i = 0; i < 8; ++i) {
        unsigned sum = 0;
        for (unsigned k = 0; k < 4; ++k) {
            int x = a[dest_offset + i + k], y = b[src_offset + k];
            sum += static_cast<unsigned>(x > y ? x - y : y - x);
        }
        set_lane<uint16_t>(r, i, static_cast<uint16_t>(sum));
    }
    cpu.xmm[insn.op[0].reg] = r;
}

// PHMINPOSUW: the smallest unsigned word of the source (the lowest index among equals) and its
// index in the low two words; the rest zero.
void phminposuw(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    Xmm b = read_xmm_source(cpu, insn, 1);
    unsigned index = 0;
    uint16_t minimum = lane<uint16_t>(b, 0);
    for (unsigned i = 1; i < 8; ++i)
        if (lane<uint16_t>(b, i) < minimum) {
            minimum = lane<uint16_t>(b, i);
            index = i;
        }
    Xmm r{};
    set_lane<uint16_t>(r, 0, minimum);
    set_lane<uint16_t>(r, 1, static_cast<uint16_t>(index));
    cpu.xmm[insn.op[0].reg] = r;
}

// CRC32 r32/r64, r/m8/16/32/64 (SSE4.2): CRC-32C (Castagnoli, polynomial 11EDC6F41H) in its
// bit-reflected form, over the source's bytes lowest first, starting from the destination's low
// 32 bits; the result zero-extends into a 64-bit destination. An integer instruction: no CR0 or
// CR4 checks apply.
constexpr std::array<uint32_t, 256> make_crc32c_table() {
    std::array<uint32_t, 256> table{};
    for (uint32_t i = 0; i < 256; ++i) {
        uint32_t crc = i;
        for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) ? 0x82f6'3b78u : 0u);
        table[i] = crc;
    }
    return table;
}

constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

void crc32(Cpu& cpu, const Insn& insn) {
    if (insn.prefixes & prefix::Lock) raise_ud();
    uint64_t source = read_operand(cpu, insn, 1);
    uint32_t crc = static_cast<uint32_t>(cpu.gpr[insn.op[0].reg]);
    for (unsigned i = 0; i < insn.op[1].size; ++i)
        crc = (crc >> 8) ^ kCrc32cTable[(crc ^ static_cast<uint32_t>(source >> (8 * i))) & 0xff];
    write_operand(cpu, insn, 0, crc);
}

}  // namespace

void bind_sse4(HandlerTable& table) {
    table.bind(ZYDIS_MNEMONIC_PMOVSXBW, &widen<int8_t, int16_t>);
    table.bind(ZYDIS_MNEMONIC_PMOVSXBD, &widen<int8_t, int32_t>);
    table.bind(ZYDIS_MNEMONIC_PMOVSXBQ, &widen<int8_t, int64_t>);
    table.bind(ZYDIS_MNEMONIC_PMOVSXWD, &widen<int16_t, int32_t>);
    table.bind(ZYDIS_MNEMONIC_PMOVSXWQ, &widen<int16_t, int64_t>);
    table.bind(ZYDIS_MNEMONIC_PMOVSXDQ, &widen<int32_t, int64_t>);
    table.bind(ZYDIS_MNEMONIC_PMOVZXBW, &widen<uint8_t, uint16_t>);
    table.bind(ZYDIS_MNEMONIC_PMOVZXBD, &widen<uint8_t, uint32_t>);
    table.bind(ZYDIS_MNEMONIC_PMOVZXBQ, &widen<uint8_t, uint64_t>);
    table.bind(ZYDIS_MNEMONIC_PMOVZXWD, &widen<uint16_t, uint32_t>);
    table.bind(ZYDIS_MNEMONIC_PMOVZXWQ, &widen<uint16_t, uint64_t>);
    table.bind(ZYDIS_MNEMONIC_PMOVZXDQ, &widen<uint32_t, uint64_t>);
    table.bind(ZYDIS_MNEMONIC_PINSRB, &insert<uint8_t>);
    table.bind(ZYDIS_MNEMONIC_PINSRD, &insert<uint32_t>);
    table.bind(ZYDIS_MNEMONIC_PINSRQ, &insert<uint64_t>);
    table.bind(ZYDIS_MNEMONIC_PEXTRB, &extract<uint8_t>);
    table.bind(ZYDIS_MNEMONIC_PEXTRD, &extract<uint32_t>);
    table.bind(ZYDIS_MNEMONIC_PEXTRQ, &extract<uint64_t>);
    table.bind(ZYDIS_MNEMONIC_EXTRACTPS, &extract<uint32_t>);
    table.bind(ZYDIS_MNEMONIC_INSERTPS, &insertps);
    table.bind(ZYDIS_MNEMONIC_PTEST, &ptest);
    table.bind(ZYDIS_MNEMONIC_PBLENDW, &blend_immediate<uint16_t>);
    table.bind(ZYDIS_MNEMONIC_BLENDPS, &blend_immediate<uint32_t>);
    table.bind(ZYDIS_MNEMONIC_BLENDPD, &blend_immediate<uint64_t>);
    table.bind(ZYDIS_MNEMONIC_PBLENDVB, &blend_variable<uint8_t>);
    table.bind(ZYDIS_MNEMONIC_BLENDVPS, &blend_variable<uint32_t>);
    table.bind(ZYDIS_MNEMONIC_BLENDVPD, &blend_variable<uint64_t>);
    table.bind(ZYDIS_MNEMONIC_MPSADBW, &mpsadbw);
    table.bind(ZYDIS_MNEMONIC_PHMINPOSUW, &phminposuw);
    table.bind(ZYDIS_MNEMONIC_CRC32, &crc32);
}

}  // namespace strata::soft::simd
