// Lazy condition codes (QEMU's cc_op, Bochs's lazy flags): an arithmetic instruction records what
// it did — the kind of operation, its width, operands and result — and CF, PF, AF, ZF, SF and OF
// are computed only when something reads them. Most results are overwritten unread.
//
// The other RFLAGS bits (TF, IF, DF, IOPL, NT, RF, VM, AC, VIF, VIP, ID) live in `other`; the six
// arithmetic bits of `other` are meaningless while `op` is not CcOp::Materialized.
// Spec: Intel SDM vol. 1 §3.4.3 (EFLAGS), vol. 2 (each instruction's "Flags Affected").
#pragma once

#include <cstdint>

namespace strata::soft {

namespace rflags {
constexpr uint64_t CF = 1u << 0, FIXED1 = 1u << 1, PF = 1u << 2, AF = 1u << 4, ZF = 1u << 6, SF = 1u << 7,
                   TF = 1u << 8, IF = 1u << 9, DF = 1u << 10, OF = 1u << 11, IOPL = 3u << 12, NT = 1u << 14,
                   RF = 1u << 16, VM = 1u << 17, AC = 1u << 18, VIF = 1u << 19, VIP = 1u << 20, ID = 1u << 21;
constexpr uint64_t kArith = CF | PF | AF | ZF | SF | OF;
// Bits software can ever see set (the rest read as 0, bit 1 as 1).
constexpr uint64_t kDefined = kArith | FIXED1 | TF | IF | DF | IOPL | NT | RF | VM | AC | VIF | VIP | ID;
}  // namespace rflags

enum class CcOp : uint8_t {
    Materialized,  // the arithmetic flags are the bits of `other`
    Add,           // dst = src1 + src2 (+ carry_in for ADC)
    Sub,           // dst = src1 - src2 (- carry_in for SBB); CMP, NEG (src1 = 0)
    Logic,         // AND, OR, XOR, TEST: CF = OF = 0, AF = 0
    Inc,           // dst = src1 + 1, CF kept in carry_in
    Dec,           // dst = src1 - 1, CF kept in carry_in
};

struct LazyFlags {
    uint64_t other = rflags::FIXED1;
    uint64_t dst = 0, src1 = 0, src2 = 0;
    // Arithmetic bits set by an instruction that changes only some of them (rotates: CF and OF)
    // over the lazy state of the instruction before: `overridden` says which, `overrides` their
    // values. Cleared by set() and assign().
    uint64_t overridden = 0, overrides = 0;
    CcOp op = CcOp::Materialized;
    uint8_t size = 8;      // operand width in bytes: 1, 2, 4, 8
    uint8_t carry_in = 0;  // ADC/SBB carry in; INC/DEC: the CF they keep

    static constexpr uint64_t mask(unsigned bytes) { return bytes >= 8 ? ~0ull : (1ull << (bytes * 8)) - 1; }
    static constexpr uint64_t sign(unsigned bytes) { return 1ull << (bytes * 8 - 1); }

    void set(CcOp kind, unsigned bytes, uint64_t result, uint64_t a, uint64_t b, uint8_t carry = 0) {
        op = kind;
        size = static_cast<uint8_t>(bytes);
        dst = result;
        src1 = a;
        src2 = b;
        carry_in = carry;
        overridden = 0;
    }
    // The logic kind needs its result only (CF = OF = AF = 0): src1, src2 and carry_in are left
    // as they are, unread while op is Logic.
    void set_logic(unsigned bytes, uint64_t result) {
        op = CcOp::Logic;
        size = static_cast<uint8_t>(bytes);
        dst = result;
        overridden = 0;
    }
    // Sets the arithmetic flags in `which` to those of `bits` and keeps the others as they are,
    // without computing them.
    void override(uint64_t which, uint64_t bits) {
        overridden |= which;
        overrides = (overrides & ~which) | (bits & which);
    }

    [[nodiscard]] bool cf() const {
        if (overridden & rflags::CF) [[unlikely]] return (overrides & rflags::CF) != 0;
        return lazy_cf();
    }
    [[nodiscard]] bool zf() const {
        if (overridden & rflags::ZF) [[unlikely]] return (overrides & rflags::ZF) != 0;
        return op == CcOp::Materialized ? (other & rflags::ZF) != 0 : (dst & mask(size)) == 0;
    }
    [[nodiscard]] bool sf() const {
        if (overridden & rflags::SF) [[unlikely]] return (overrides & rflags::SF) != 0;
        return op == CcOp::Materialized ? (other & rflags::SF) != 0 : (dst & sign(size)) != 0;
    }
    [[nodiscard]] bool of() const {
        if (overridden & rflags::OF) [[unlikely]] return (overrides & rflags::OF) != 0;
        return lazy_of();
    }
    [[nodiscard]] bool pf() const;
    [[nodiscard]] bool af() const;

    // The whole RFLAGS value, and setting it (the arithmetic bits become materialized).
    [[nodiscard]] uint64_t value() const;
    void assign(uint64_t value) {
        other = (value & rflags::kDefined) | rflags::FIXED1;
        op = CcOp::Materialized;
        overridden = 0;
    }
    // Computes the arithmetic flags into `other` (before an instruction changes only some of them).
    void materialize() {
        if (op != CcOp::Materialized || overridden) assign(value());
    }
    // Sets or clears arithmetic bits after materialize().
    void put(uint64_t bits, bool on) { other = on ? (other | bits) : (other & ~bits); }

    // The condition of Jcc/SETcc/CMOVcc for the low four bits of the opcode (SDM vol. 1 app. B).
    [[nodiscard]] bool condition(unsigned cc) const;
    // The same for a condition known at compile time (the handlers of Jcc, SETcc, CMOVcc are
    // one per condition): after CMP/SUB and the logic instructions, straight from the operands.
    template <unsigned kCc>
    [[nodiscard]] bool condition() const {
        constexpr unsigned kTest = (kCc >> 1) & 7;
        constexpr bool kNegate = (kCc & 1) != 0;
        if (!overridden) {
            if (op == CcOp::Sub && !carry_in && (kTest == 1 || kTest == 2 || kTest == 3 || kTest == 6 || kTest == 7)) {
                uint64_t m = mask(size), a = src1 & m, b = src2 & m;
                unsigned shift = 64 - size * 8u;
                int64_t sa = static_cast<int64_t>(a << shift), sb = static_cast<int64_t>(b << shift);
                bool result = kTest == 1 ? a < b : kTest == 2 ? a == b : kTest == 3 ? a <= b : kTest == 6 ? sa < sb : sa <= sb;
                return result != kNegate;
            }
            if (op == CcOp::Logic && kTest != 5) {  // CF = OF = 0
                bool zero = (dst & mask(size)) == 0, negative = (dst & sign(size)) != 0;
                bool result = kTest == 0 || kTest == 1 ? false
                              : kTest == 2 || kTest == 3 ? zero
                              : kTest == 4 || kTest == 6 ? negative
                                                         : zero || negative;
                return result != kNegate;
            }
        }
        return condition(kCc);
    }

private:
    [[nodiscard]] bool lazy_cf() const;
    [[nodiscard]] bool lazy_of() const;
};

}  // namespace strata::soft
