// SSE4.2 packed string compares: PCMPESTRI, PCMPESTRM (explicit lengths in rAX and rDX),
// PCMPISTRI, PCMPISTRM (implicit lengths: up to the first zero element). glibc's strlen, strchr,
// strcmp, strstr and friends are made of these, so every imm8 mode is implemented as the SDM
// describes it:
//   imm8[1:0]  element format: unsigned bytes, unsigned words, signed bytes, signed words
//   imm8[3:2]  aggregation: equal any, ranges, equal each, equal ordered
//   imm8[5:4]  polarity: positive, negative, masked positive, masked negative (negate only the
//              bits of valid source-2 elements)
//   imm8[6]    index: least or most significant set bit (I); mask: bits or expanded elements (M)
// The first operand (XMM register) is string 1 — the set, ranges or needle — and the second
// (XMM register or unaligned m128) string 2, the text searched.
// Flags: CF = result not zero, ZF = string 2 shorter than a full register, SF = the same for
// string 1, OF = result bit 0, AF = PF = 0.
//
// Spec: Intel SDM vol. 2 §4.1 "Imm8 Control Byte Operation for PCMPESTRI / PCMPESTRM /
//       PCMPISTRI / PCMPISTRM" (tables 4-3 to 4-9, "Overriding Results for Invalid Elements").
#include <bit>

#include "cpu/soft/exec/simd.hpp"

namespace strata::soft::simd {

namespace {

enum class Aggregation : unsigned { EqualAny = 0, Ranges = 1, EqualEach = 2, EqualOrdered = 3 };

struct Control {
    bool words = false;
    bool is_signed = false;
    Aggregation aggregation = Aggregation::EqualAny;
    unsigned polarity = 0;
    bool most_significant = false;  // imm8[6]
    [[nodiscard]] unsigned elements() const { return words ? 8 : 16; }
};

Control decode_control(uint8_t imm) {
    return {(imm & 1) != 0, (imm & 2) != 0, static_cast<Aggregation>((imm >> 2) & 3), (imm >> 4) & 3u,
            (imm & 0x40) != 0};
}

int element(const Control& c, const Xmm& v, unsigned i) {
    if (c.words) return c.is_signed ? lane<int16_t>(v, i) : lane<uint16_t>(v, i);
    return c.is_signed ? lane<int8_t>(v, i) : lane<uint8_t>(v, i);
}

// The length up to the first zero element (PCMPISTRx).
unsigned implicit_length(const Control& c, const Xmm& v) {
    for (unsigned i = 0; i < c.elements(); ++i)
        if (element(c, v, i) == 0) return i;
    return c.elements();
}

// |rAX| or |rDX| saturated to the element count (PCMPESTRx); REX.W makes it 64 bits wide.
unsigned explicit_length(const Control& c, uint64_t reg, bool wide) {
    int64_t value = wide ? static_cast<int64_t>(reg) : static_cast<int64_t>(static_cast<int32_t>(reg));
    uint64_t magnitude = value < 0 ? 0 - static_cast<uint64_t>(value) : static_cast<uint64_t>(value);
    return magnitude > c.elements() ? c.elements() : static_cast<unsigned>(magnitude);
}

struct Comparison {
    uint32_t result = 0;  // IntRes2, one bit per element
    Control control;
    unsigned length1 = 0, length2 = 0;
};

Comparison compare_strings(const Control& c, const Xmm& s1, unsigned length1, const Xmm& s2, unsigned length2) {
    const unsigned n = c.elements();
    // BoolRes[j][i]: element j of string 2 against element i of string 1, with table 4-7's
    // overrides where either element is past its string's end.
    auto bool_res = [&](unsigned j, unsigned i) {
        bool valid1 = i < length1, valid2 = j < length2;
        if (!valid1 || !valid2) {
            switch (c.aggregation) {
                case Aggregation::EqualAny:
                case Aggregation::Ranges: return false;
                case Aggregation::EqualEach: return !valid1 && !valid2;
                case Aggregation::EqualOrdered: return !valid1;
            }
        }
        int a = element(c, s1, i), b = element(c, s2, j);
        if (c.aggregation == Aggregation::Ranges) return (i & 1) ? b <= a : b >= a;
        return a == b;
    };
    uint32_t int_res1 = 0;
    for (unsigned j = 0; j < n; ++j) {
        bool bit = false;
        switch (c.aggregation) {
            case Aggregation::EqualAny:
                for (unsigned i = 0; i < n && !bit; ++i) bit = bool_res(j, i);
                break;
            case Aggregation::Ranges:
                for (unsigned i = 0; i + 1 < n && !bit; i += 2) bit = bool_res(j, i) && bool_res(j, i + 1);
                break;
            case Aggregation::EqualEach: bit = bool_res(j, j); break;
            case Aggregation::EqualOrdered:
                bit = true;
                for (unsigned k = 0; k < n - j && bit; ++k) bit = bool_res(j + k, k);
                break;
        }
        if (bit) int_res1 |= 1u << j;
    }
    const uint32_t all = (1u << n) - 1;
    uint32_t valid2 = (1u << length2) - 1;
    uint32_t int_res2 = int_res1;
    switch (c.polarity) {
        case 1: int_res2 = ~int_res1 & all; break;
        case 3: int_res2 = int_res1 ^ valid2; break;
        default: break;
    }
    return {int_res2, c, length1, length2};
}

void set_flags(Cpu& cpu, const Comparison& r) {
    unsigned n = r.control.elements();
    cpu.flags.materialize();
    cpu.flags.put(rflags::AF | rflags::PF, false);
    cpu.flags.put(rflags::CF, r.result != 0);
    cpu.flags.put(rflags::ZF, r.length2 < n);
    cpu.flags.put(rflags::SF, r.length1 < n);
    cpu.flags.put(rflags::OF, (r.result & 1) != 0);
}

template <bool kExplicit>
Comparison run(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    Control c = decode_control(static_cast<uint8_t>(insn.imm));
    Xmm s2 = read_xmm_source(cpu, insn, 1, false);
    const Xmm& s1 = cpu.xmm[insn.op[0].reg];
    unsigned length1, length2;
    if (kExplicit) {
        bool wide = insn.osize == 8;
        length1 = explicit_length(c, cpu.gpr[0], wide);
        length2 = explicit_length(c, cpu.gpr[2], wide);
    } else {
        length1 = implicit_length(c, s1);
        length2 = implicit_length(c, s2);
    }
    return compare_strings(c, s1, length1, s2, length2);
}

// PCMPxSTRI: the index of the lowest (or highest) set result bit in ECX, the element count if none.
template <bool kExplicit>
void string_index(Cpu& cpu, const Insn& insn) {
    Comparison r = run<kExplicit>(cpu, insn);
    unsigned n = r.control.elements();
    unsigned index = n;
    if (r.result) index = r.control.most_significant ? 31u - static_cast<unsigned>(std::countl_zero(r.result))
                                                     : static_cast<unsigned>(std::countr_zero(r.result));
    cpu.set_reg(1, 4, index);
    set_flags(cpu, r);
}

// PCMPxSTRM: the result in XMM0 as bits (zero-extended) or as all-ones/all-zeros elements.
template <bool kExplicit>
void string_mask(Cpu& cpu, const Insn& insn) {
    Comparison r = run<kExplicit>(cpu, insn);
    Xmm mask{};
    if (!r.control.most_significant) {
        set_lane<uint32_t>(mask, 0, r.result);
    } else {
        for (unsigned i = 0; i < r.control.elements(); ++i) {
            bool bit = (r.result >> i) & 1;
            if (r.control.words) set_lane<uint16_t>(mask, i, bit ? 0xffff : 0);
            else mask[i] = bit ? 0xff : 0;
        }
    }
    cpu.xmm[0] = mask;
    set_flags(cpu, r);
}

}  // namespace

void bind_sse_string(HandlerTable& table) {
    table.bind(ZYDIS_MNEMONIC_PCMPESTRI, &string_index<true>);
    table.bind(ZYDIS_MNEMONIC_PCMPISTRI, &string_index<false>);
    table.bind(ZYDIS_MNEMONIC_PCMPESTRM, &string_mask<true>);
    table.bind(ZYDIS_MNEMONIC_PCMPISTRM, &string_mask<false>);
}

}  // namespace strata::soft::simd
