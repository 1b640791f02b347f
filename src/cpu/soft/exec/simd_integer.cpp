// Integer SIMD on MMX (64-bit) and XMM (128-bit) registers, one implementation for both widths:
// PADD/PSUB (wrapping and saturating, B/W/D/Q), PMULLW/PMULHW/PMULHUW/PMULHRSW/PMULUDQ/PMULLD/
// PMULDQ, PMADDWD/PMADDUBSW, PAVGB/W, PMIN/PMAX (all widths, signed and unsigned), PSADBW,
// PCMPEQ/PCMPGT (B/W/D/Q), PAND/PANDN/POR/PXOR and the PS/PD logic (ANDPS ... XORPD), PABS,
// PSIGN, PHADD/PHSUB (W, D, SW), PSHUFB, PALIGNR, PSHUFW/PSHUFD/PSHUFHW/PSHUFLW, PUNPCK*, PACK*,
// the shifts PSLL/PSRL/PSRA (by register, memory or immediate) and PSLLDQ/PSRLDQ, EMMS.
//
// Each operation is a function object over Vec<8> and Vec<16>; simd.hpp's skeletons read the
// operands of the MMX or XMM form, run it and write the result (an MMX form also puts the x87 in
// MMX mode). Spec: Intel SDM vol. 1 ch. 9 (MMX), §10.4.x, §11.4.x, §12.x (the integer
// instructions of SSE-SSE4.2); vol. 2 (each instruction's Operation).
#include <cstdlib>

#include "cpu/soft/exec/simd.hpp"

namespace strata::soft::simd {

namespace {

template <class T>
struct Add {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        return map2<T>(a, b, [](T x, T y) { return x + y; });
    }
};

template <class T>
struct Sub {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        return map2<T>(a, b, [](T x, T y) { return x - y; });
    }
};

template <class T>
struct AddSaturate {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        return map2<T>(a, b, [](T x, T y) { return saturate<T>(int64_t{x} + int64_t{y}); });
    }
};

template <class T>
struct SubSaturate {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        return map2<T>(a, b, [](T x, T y) { return saturate<T>(int64_t{x} - int64_t{y}); });
    }
};

// PMULLW (uint16_t), PMULLD (uint32_t): the low half of each product.
template <class T>
struct MulLow {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        return map2<T>(a, b, [](T x, T y) { return static_cast<uint64_t>(x) * y; });
    }
};

// PMULHW (int16_t), PMULHUW (uint16_t): the high 16 bits of each 32-bit product.
template <class T>
struct MulHigh {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        // 32-bit products (exact for 16-bit lanes). g++ 12 -O2 miscompiles the same idiom with
        // 64-bit products (its multiply-high pattern recognition), which the native SSE test caught.
        using Wide = std::conditional_t<std::is_signed_v<T>, int32_t, uint32_t>;
        return map2<T>(a, b, [](T x, T y) { return static_cast<Wide>(static_cast<Wide>(x) * static_cast<Wide>(y)) >> 16; });
    }
};

// PMULHRSW: (x * y >> 14) + 1 >> 1, the rounded high half of a Q15 product.
struct MulHighRoundScale {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        return map2<int16_t>(a, b, [](int16_t x, int16_t y) { return (((int32_t{x} * int32_t{y}) >> 14) + 1) >> 1; });
    }
};

// PMULUDQ (uint32_t), PMULDQ (int32_t): the even doublewords multiplied into quadwords.
template <class T>
struct MulEven {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        Vec<W> r{};
        for (size_t i = 0; i < W / 8; ++i) {
            using Wide = std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>;
            Wide product = static_cast<Wide>(lane<T>(a, 2 * i)) * static_cast<Wide>(lane<T>(b, 2 * i));
            set_lane<uint64_t>(r, i, static_cast<uint64_t>(product));
        }
        return r;
    }
};

// PMADDWD: adjacent signed word products summed into doublewords (0x8000 * 0x8000 * 2 wraps).
struct MultiplyAddWords {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        Vec<W> r{};
        for (size_t i = 0; i < W / 4; ++i) {
            int64_t sum = int64_t{lane<int16_t>(a, 2 * i)} * lane<int16_t>(b, 2 * i) +
                          int64_t{lane<int16_t>(a, 2 * i + 1)} * lane<int16_t>(b, 2 * i + 1);
            set_lane<uint32_t>(r, i, static_cast<uint32_t>(sum));
        }
        return r;
    }
};

// PMADDUBSW: unsigned bytes of the destination times signed bytes of the source, adjacent
// products summed with signed saturation.
struct MultiplyAddBytes {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        Vec<W> r{};
        for (size_t i = 0; i < W / 2; ++i) {
            int64_t sum = int64_t{lane<uint8_t>(a, 2 * i)} * lane<int8_t>(b, 2 * i) +
                          int64_t{lane<uint8_t>(a, 2 * i + 1)} * lane<int8_t>(b, 2 * i + 1);
            set_lane<int16_t>(r, i, saturate<int16_t>(sum));
        }
        return r;
    }
};

template <class T>
struct Average {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        return map2<T>(a, b, [](T x, T y) { return (uint32_t{x} + uint32_t{y} + 1) >> 1; });
    }
};

template <class T>
struct Min {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        return map2<T>(a, b, [](T x, T y) { return x < y ? x : y; });
    }
};

template <class T>
struct Max {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        return map2<T>(a, b, [](T x, T y) { return x > y ? x : y; });
    }
};

// PSADBW: per quadword, the sum of the eight absolute byte differences in its low word.
struct SumAbsoluteDifferences {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        Vec<W> r{};
        for (size_t q = 0; q < W / 8; ++q) {
            uint64_t sum = 0;
            for (size_t i = 0; i < 8; ++i)
                sum += static_cast<uint64_t>(std::abs(int{lane<uint8_t>(a, 8 * q + i)} - int{lane<uint8_t>(b, 8 * q + i)}));
            set_lane<uint64_t>(r, q, sum);
        }
        return r;
    }
};

template <class T>
struct CompareEqual {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        return map2<T>(a, b, [](T x, T y) { return x == y ? ~T{0} : T{0}; });
    }
};

// PCMPGT compares signed elements.
template <class T>
struct CompareGreater {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        return map2<T>(a, b, [](T x, T y) { return x > y ? T(-1) : T{0}; });
    }
};

enum class Logic { And, AndNot, Or, Xor };

template <Logic kOp>
struct Bitwise {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        return map2<uint64_t>(a, b, [](uint64_t x, uint64_t y) {
            switch (kOp) {
                case Logic::And: return x & y;
                case Logic::AndNot: return ~x & y;
                case Logic::Or: return x | y;
                case Logic::Xor: return x ^ y;
            }
            return x;
        });
    }
};

// PABSB/W/D: |src| as an unsigned element (|-128| = 0x80).
template <class T>
struct Absolute {
    template <size_t W>
    Vec<W> operator()(const Vec<W>&, const Vec<W>& b) const {
        using U = std::make_unsigned_t<T>;
        return map1<T>(b, [](T x) { return x < 0 ? static_cast<U>(-static_cast<int64_t>(x)) : static_cast<U>(x); });
    }
};

// PSIGNB/W/D: dest negated, kept or zeroed by the sign of the source element.
template <class T>
struct Sign {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        return map2<T>(a, b, [](T x, T y) { return y < 0 ? -static_cast<int64_t>(x) : y == 0 ? 0 : int64_t{x}; });
    }
};

// PHADD/PHSUB (W, D, SW): pairs of the destination fill the low half, pairs of the source the high.
enum class Horizontal { Add, Sub, AddSaturate, SubSaturate };

template <class T, Horizontal kOp>
struct HorizontalOp {
    static T combine(T x, T y) {
        switch (kOp) {
            case Horizontal::Add: return static_cast<T>(int64_t{x} + y);
            case Horizontal::Sub: return static_cast<T>(int64_t{x} - y);
            case Horizontal::AddSaturate: return saturate<T>(int64_t{x} + y);
            case Horizontal::SubSaturate: return saturate<T>(int64_t{x} - y);
        }
        return x;
    }
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        constexpr size_t half = W / sizeof(T) / 2;
        Vec<W> r{};
        for (size_t i = 0; i < half; ++i) {
            set_lane<T>(r, i, combine(lane<T>(a, 2 * i), lane<T>(a, 2 * i + 1)));
            set_lane<T>(r, half + i, combine(lane<T>(b, 2 * i), lane<T>(b, 2 * i + 1)));
        }
        return r;
    }
};

// PSHUFB: each destination byte picks a byte of itself by the source's index, or zero (bit 7).
struct ShuffleBytes {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        Vec<W> r{};
        for (size_t i = 0; i < W; ++i) r[i] = (b[i] & 0x80) ? 0 : a[b[i] & (W - 1)];
        return r;
    }
};

// PALIGNR: dest:src shifted right by imm8 bytes, the low half kept.
struct AlignRight {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b, uint8_t imm) const {
        Vec<W> r{};
        for (size_t i = 0; i < W; ++i) {
            size_t k = i + imm;
            r[i] = k < W ? b[k] : k < 2 * W ? a[k - W] : 0;
        }
        return r;
    }
};

// PSHUFW (MMX) and PSHUFD: elements of the source chosen by two-bit fields of imm8.
template <class T>
struct ShuffleElements {
    template <size_t W>
    Vec<W> operator()(const Vec<W>&, const Vec<W>& b, uint8_t imm) const {
        Vec<W> r{};
        for (size_t i = 0; i < 4; ++i) set_lane<T>(r, i, lane<T>(b, (imm >> (2 * i)) & 3));
        return r;
    }
};

// PSHUFLW / PSHUFHW: the four words of one quadword shuffled, the other quadword copied.
template <bool kHigh>
struct ShuffleHalfWords {
    template <size_t W>
    Vec<W> operator()(const Vec<W>&, const Vec<W>& b, uint8_t imm) const {
        Vec<W> r = b;
        size_t base = kHigh ? 4 : 0;
        for (size_t i = 0; i < 4; ++i) set_lane<uint16_t>(r, base + i, lane<uint16_t>(b, base + ((imm >> (2 * i)) & 3)));
        return r;
    }
};

template <class T, bool kHigh>
struct Unpack {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        constexpr size_t half = W / sizeof(T) / 2;
        Vec<W> r{};
        for (size_t i = 0; i < half; ++i) {
            set_lane<T>(r, 2 * i, lane<T>(a, (kHigh ? half : 0) + i));
            set_lane<T>(r, 2 * i + 1, lane<T>(b, (kHigh ? half : 0) + i));
        }
        return r;
    }
};

// PACKSSWB, PACKSSDW, PACKUSWB, PACKUSDW: saturated narrowing, destination elements first.
template <class From, class To>
struct Pack {
    template <size_t W>
    Vec<W> operator()(const Vec<W>& a, const Vec<W>& b) const {
        constexpr size_t n = W / sizeof(From);
        Vec<W> r{};
        for (size_t i = 0; i < n; ++i) {
            set_lane<To>(r, i, saturate<To>(lane<From>(a, i)));
            set_lane<To>(r, n + i, saturate<To>(lane<From>(b, i)));
        }
        return r;
    }
};

// --- Shifts: by an immediate or by the source's low quadword ---

enum class Shift { Left, Right, Arithmetic };

template <class T, Shift kKind, size_t W>
Vec<W> shift(const Vec<W>& a, uint64_t count) {
    constexpr unsigned bits = sizeof(T) * 8;
    using S = std::make_signed_t<T>;
    if (kKind == Shift::Arithmetic) {
        unsigned c = count >= bits ? bits - 1 : static_cast<unsigned>(count);
        return map1<T>(a, [c](T x) { return static_cast<T>(static_cast<S>(x) >> c); });
    }
    if (count >= bits) return Vec<W>{};
    unsigned c = static_cast<unsigned>(count);
    return map1<T>(a, [c](T x) { return kKind == Shift::Left ? static_cast<T>(x << c) : static_cast<T>(x >> c); });
}

template <class T, Shift kKind>
void packed_shift(Cpu& cpu, const Insn& insn) {
    bool immediate = insn.op[1].kind == OpKind::Imm;
    unsigned d = insn.op[0].reg;
    if (insn.op[0].kind == OpKind::Mmx) {
        fpu::mmx_prologue(cpu);
        uint64_t count = immediate ? (insn.imm & 0xff) : lane<uint64_t>(read_mm_source(cpu, insn, 1), 0);
        fpu::write_mmx(cpu, d, shift<T, kKind>(fpu::read_mmx(cpu, d), count));
        fpu::mmx_transition(cpu);
        return;
    }
    fpu::sse_prologue(cpu);
    uint64_t count = immediate ? (insn.imm & 0xff) : lane<uint64_t>(read_xmm_source(cpu, insn, 1), 0);
    cpu.xmm[d] = shift<T, kKind>(cpu.xmm[d], count);
}

// PSLLDQ / PSRLDQ xmm, imm8: whole-register byte shifts.
template <bool kLeft>
void byte_shift(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    unsigned count = static_cast<unsigned>(insn.imm & 0xff);
    Xmm a = cpu.xmm[insn.op[0].reg], r{};
    for (unsigned i = 0; i < 16; ++i) {
        if (kLeft) r[i] = i >= count ? a[i - count] : 0;
        else r[i] = i + count < 16 ? a[i + count] : 0;
    }
    cpu.xmm[insn.op[0].reg] = r;
}

// EMMS: every x87 register empty again (§9.6.3).
void emms(Cpu& cpu, const Insn&) {
    fpu::mmx_prologue(cpu);
    cpu.x87.ftw = 0xffff;
}

}  // namespace

void bind_simd_integer(HandlerTable& table) {
    table.bind(ZYDIS_MNEMONIC_PADDB, &packed_binary<Add<uint8_t>>);
    table.bind(ZYDIS_MNEMONIC_PADDW, &packed_binary<Add<uint16_t>>);
    table.bind(ZYDIS_MNEMONIC_PADDD, &packed_binary<Add<uint32_t>>);
    table.bind(ZYDIS_MNEMONIC_PADDQ, &packed_binary<Add<uint64_t>>);
    table.bind(ZYDIS_MNEMONIC_PSUBB, &packed_binary<Sub<uint8_t>>);
    table.bind(ZYDIS_MNEMONIC_PSUBW, &packed_binary<Sub<uint16_t>>);
    table.bind(ZYDIS_MNEMONIC_PSUBD, &packed_binary<Sub<uint32_t>>);
    table.bind(ZYDIS_MNEMONIC_PSUBQ, &packed_binary<Sub<uint64_t>>);
    table.bind(ZYDIS_MNEMONIC_PADDSB, &packed_binary<AddSaturate<int8_t>>);
    table.bind(ZYDIS_MNEMONIC_PADDSW, &packed_binary<AddSaturate<int16_t>>);
    table.bind(ZYDIS_MNEMONIC_PADDUSB, &packed_binary<AddSaturate<uint8_t>>);
    table.bind(ZYDIS_MNEMONIC_PADDUSW, &packed_binary<AddSaturate<uint16_t>>);
    table.bind(ZYDIS_MNEMONIC_PSUBSB, &packed_binary<SubSaturate<int8_t>>);
    table.bind(ZYDIS_MNEMONIC_PSUBSW, &packed_binary<SubSaturate<int16_t>>);
    table.bind(ZYDIS_MNEMONIC_PSUBUSB, &packed_binary<SubSaturate<uint8_t>>);
    table.bind(ZYDIS_MNEMONIC_PSUBUSW, &packed_binary<SubSaturate<uint16_t>>);

    table.bind(ZYDIS_MNEMONIC_PMULLW, &packed_binary<MulLow<uint16_t>>);
    table.bind(ZYDIS_MNEMONIC_PMULLD, &packed_binary<MulLow<uint32_t>>);
    table.bind(ZYDIS_MNEMONIC_PMULHW, &packed_binary<MulHigh<int16_t>>);
    table.bind(ZYDIS_MNEMONIC_PMULHUW, &packed_binary<MulHigh<uint16_t>>);
    table.bind(ZYDIS_MNEMONIC_PMULHRSW, &packed_binary<MulHighRoundScale>);
    table.bind(ZYDIS_MNEMONIC_PMULUDQ, &packed_binary<MulEven<uint32_t>>);
    table.bind(ZYDIS_MNEMONIC_PMULDQ, &packed_binary<MulEven<int32_t>>);
    table.bind(ZYDIS_MNEMONIC_PMADDWD, &packed_binary<MultiplyAddWords>);
    table.bind(ZYDIS_MNEMONIC_PMADDUBSW, &packed_binary<MultiplyAddBytes>);
    table.bind(ZYDIS_MNEMONIC_PAVGB, &packed_binary<Average<uint8_t>>);
    table.bind(ZYDIS_MNEMONIC_PAVGW, &packed_binary<Average<uint16_t>>);
    table.bind(ZYDIS_MNEMONIC_PSADBW, &packed_binary<SumAbsoluteDifferences>);

    table.bind(ZYDIS_MNEMONIC_PMINUB, &packed_binary<Min<uint8_t>>);
    table.bind(ZYDIS_MNEMONIC_PMINUW, &packed_binary<Min<uint16_t>>);
    table.bind(ZYDIS_MNEMONIC_PMINUD, &packed_binary<Min<uint32_t>>);
    table.bind(ZYDIS_MNEMONIC_PMINSB, &packed_binary<Min<int8_t>>);
    table.bind(ZYDIS_MNEMONIC_PMINSW, &packed_binary<Min<int16_t>>);
    table.bind(ZYDIS_MNEMONIC_PMINSD, &packed_binary<Min<int32_t>>);
    table.bind(ZYDIS_MNEMONIC_PMAXUB, &packed_binary<Max<uint8_t>>);
    table.bind(ZYDIS_MNEMONIC_PMAXUW, &packed_binary<Max<uint16_t>>);
    table.bind(ZYDIS_MNEMONIC_PMAXUD, &packed_binary<Max<uint32_t>>);
    table.bind(ZYDIS_MNEMONIC_PMAXSB, &packed_binary<Max<int8_t>>);
    table.bind(ZYDIS_MNEMONIC_PMAXSW, &packed_binary<Max<int16_t>>);
    table.bind(ZYDIS_MNEMONIC_PMAXSD, &packed_binary<Max<int32_t>>);

    table.bind(ZYDIS_MNEMONIC_PCMPEQB, &packed_binary<CompareEqual<uint8_t>>);
    table.bind(ZYDIS_MNEMONIC_PCMPEQW, &packed_binary<CompareEqual<uint16_t>>);
    table.bind(ZYDIS_MNEMONIC_PCMPEQD, &packed_binary<CompareEqual<uint32_t>>);
    table.bind(ZYDIS_MNEMONIC_PCMPEQQ, &packed_binary<CompareEqual<uint64_t>>);
    table.bind(ZYDIS_MNEMONIC_PCMPGTB, &packed_binary<CompareGreater<int8_t>>);
    table.bind(ZYDIS_MNEMONIC_PCMPGTW, &packed_binary<CompareGreater<int16_t>>);
    table.bind(ZYDIS_MNEMONIC_PCMPGTD, &packed_binary<CompareGreater<int32_t>>);
    table.bind(ZYDIS_MNEMONIC_PCMPGTQ, &packed_binary<CompareGreater<int64_t>>);

    // The packed-integer and the PS/PD logic instructions are the same bitwise operations.
    for (auto m : {ZYDIS_MNEMONIC_PAND, ZYDIS_MNEMONIC_ANDPS, ZYDIS_MNEMONIC_ANDPD})
        table.bind(m, &packed_binary<Bitwise<Logic::And>>);
    for (auto m : {ZYDIS_MNEMONIC_PANDN, ZYDIS_MNEMONIC_ANDNPS, ZYDIS_MNEMONIC_ANDNPD})
        table.bind(m, &packed_binary<Bitwise<Logic::AndNot>>);
    for (auto m : {ZYDIS_MNEMONIC_POR, ZYDIS_MNEMONIC_ORPS, ZYDIS_MNEMONIC_ORPD})
        table.bind(m, &packed_binary<Bitwise<Logic::Or>>);
    for (auto m : {ZYDIS_MNEMONIC_PXOR, ZYDIS_MNEMONIC_XORPS, ZYDIS_MNEMONIC_XORPD})
        table.bind(m, &packed_binary<Bitwise<Logic::Xor>>);

    table.bind(ZYDIS_MNEMONIC_PABSB, &packed_binary<Absolute<int8_t>>);
    table.bind(ZYDIS_MNEMONIC_PABSW, &packed_binary<Absolute<int16_t>>);
    table.bind(ZYDIS_MNEMONIC_PABSD, &packed_binary<Absolute<int32_t>>);
    table.bind(ZYDIS_MNEMONIC_PSIGNB, &packed_binary<Sign<int8_t>>);
    table.bind(ZYDIS_MNEMONIC_PSIGNW, &packed_binary<Sign<int16_t>>);
    table.bind(ZYDIS_MNEMONIC_PSIGND, &packed_binary<Sign<int32_t>>);
    table.bind(ZYDIS_MNEMONIC_PHADDW, &packed_binary<HorizontalOp<int16_t, Horizontal::Add>>);
    table.bind(ZYDIS_MNEMONIC_PHADDD, &packed_binary<HorizontalOp<int32_t, Horizontal::Add>>);
    table.bind(ZYDIS_MNEMONIC_PHADDSW, &packed_binary<HorizontalOp<int16_t, Horizontal::AddSaturate>>);
    table.bind(ZYDIS_MNEMONIC_PHSUBW, &packed_binary<HorizontalOp<int16_t, Horizontal::Sub>>);
    table.bind(ZYDIS_MNEMONIC_PHSUBD, &packed_binary<HorizontalOp<int32_t, Horizontal::Sub>>);
    table.bind(ZYDIS_MNEMONIC_PHSUBSW, &packed_binary<HorizontalOp<int16_t, Horizontal::SubSaturate>>);

    table.bind(ZYDIS_MNEMONIC_PSHUFB, &packed_binary<ShuffleBytes>);
    table.bind(ZYDIS_MNEMONIC_PALIGNR, &packed_binary_imm<AlignRight>);
    table.bind(ZYDIS_MNEMONIC_PSHUFW, &packed_binary_imm<ShuffleElements<uint16_t>>);
    table.bind(ZYDIS_MNEMONIC_PSHUFD, &packed_binary_imm<ShuffleElements<uint32_t>>);
    table.bind(ZYDIS_MNEMONIC_PSHUFLW, &packed_binary_imm<ShuffleHalfWords<false>>);
    table.bind(ZYDIS_MNEMONIC_PSHUFHW, &packed_binary_imm<ShuffleHalfWords<true>>);

    table.bind(ZYDIS_MNEMONIC_PUNPCKLBW, &packed_binary<Unpack<uint8_t, false>>);
    table.bind(ZYDIS_MNEMONIC_PUNPCKLWD, &packed_binary<Unpack<uint16_t, false>>);
    table.bind(ZYDIS_MNEMONIC_PUNPCKLDQ, &packed_binary<Unpack<uint32_t, false>>);
    table.bind(ZYDIS_MNEMONIC_PUNPCKLQDQ, &packed_binary<Unpack<uint64_t, false>>);
    table.bind(ZYDIS_MNEMONIC_PUNPCKHBW, &packed_binary<Unpack<uint8_t, true>>);
    table.bind(ZYDIS_MNEMONIC_PUNPCKHWD, &packed_binary<Unpack<uint16_t, true>>);
    table.bind(ZYDIS_MNEMONIC_PUNPCKHDQ, &packed_binary<Unpack<uint32_t, true>>);
    table.bind(ZYDIS_MNEMONIC_PUNPCKHQDQ, &packed_binary<Unpack<uint64_t, true>>);
    table.bind(ZYDIS_MNEMONIC_UNPCKLPS, &packed_binary<Unpack<uint32_t, false>>);
    table.bind(ZYDIS_MNEMONIC_UNPCKHPS, &packed_binary<Unpack<uint32_t, true>>);
    table.bind(ZYDIS_MNEMONIC_UNPCKLPD, &packed_binary<Unpack<uint64_t, false>>);
    table.bind(ZYDIS_MNEMONIC_UNPCKHPD, &packed_binary<Unpack<uint64_t, true>>);
    table.bind(ZYDIS_MNEMONIC_PACKSSWB, &packed_binary<Pack<int16_t, int8_t>>);
    table.bind(ZYDIS_MNEMONIC_PACKSSDW, &packed_binary<Pack<int32_t, int16_t>>);
    table.bind(ZYDIS_MNEMONIC_PACKUSWB, &packed_binary<Pack<int16_t, uint8_t>>);
    table.bind(ZYDIS_MNEMONIC_PACKUSDW, &packed_binary<Pack<int32_t, uint16_t>>);

    table.bind(ZYDIS_MNEMONIC_PSLLW, &packed_shift<uint16_t, Shift::Left>);
    table.bind(ZYDIS_MNEMONIC_PSLLD, &packed_shift<uint32_t, Shift::Left>);
    table.bind(ZYDIS_MNEMONIC_PSLLQ, &packed_shift<uint64_t, Shift::Left>);
    table.bind(ZYDIS_MNEMONIC_PSRLW, &packed_shift<uint16_t, Shift::Right>);
    table.bind(ZYDIS_MNEMONIC_PSRLD, &packed_shift<uint32_t, Shift::Right>);
    table.bind(ZYDIS_MNEMONIC_PSRLQ, &packed_shift<uint64_t, Shift::Right>);
    table.bind(ZYDIS_MNEMONIC_PSRAW, &packed_shift<uint16_t, Shift::Arithmetic>);
    table.bind(ZYDIS_MNEMONIC_PSRAD, &packed_shift<uint32_t, Shift::Arithmetic>);
    table.bind(ZYDIS_MNEMONIC_PSLLDQ, &byte_shift<true>);
    table.bind(ZYDIS_MNEMONIC_PSRLDQ, &byte_shift<false>);
    table.bind(ZYDIS_MNEMONIC_EMMS, &emms);
}

}  // namespace strata::soft::simd
