// The x87 register stack as the guest sees it: ST(i) is physical register R[(TOP + i) mod 8], each
// register has a two-bit tag (valid, zero, special, empty), and pushing onto a full stack or
// reading an empty register is a stack fault (SDM vol. 1 §8.1.2, §8.1.7, §8.5.1.1).
#pragma once

#include <cstdint>
#include <cstring>

#include "cpu/soft/exec/fpu_common.hpp"

namespace strata::soft::x87 {

enum Tag : unsigned { kValid = 0, kZero = 1, kSpecial = 2, kEmpty = 3 };

// The raw 80-bit fields of an extended-precision value (§4.2.2, figure 4-3).
struct Bits {
    uint64_t significand = 0;
    uint16_t sign_exponent = 0;
};

inline Bits bits_of(const long double& value) {
    Bits b;
    std::memcpy(&b.significand, &value, 8);
    std::memcpy(&b.sign_exponent, reinterpret_cast<const uint8_t*>(&value) + 8, 2);
    return b;
}

inline long double from_bits(uint64_t significand, uint16_t sign_exponent) {
    long double value = 0;
    auto* bytes = reinterpret_cast<uint8_t*>(&value);
    std::memcpy(bytes, &significand, 8);
    std::memcpy(bytes + 8, &sign_exponent, 2);
    return value;
}

// The QNaN floating-point indefinite, the masked response to an invalid operation (§4.8.3.7).
inline long double indefinite() { return from_bits(0xc000'0000'0000'0000ull, 0xffff); }

// The tag FSTENV/FSAVE/FXRSTOR compute from a register's contents (§8.1.7): zero, a normal
// number with its integer bit, or special (denormals, infinities, NaNs, unsupported formats).
inline Tag tag_of(const long double& value) {
    Bits b = bits_of(value);
    unsigned exponent = b.sign_exponent & 0x7fff;
    if (exponent == 0) return b.significand == 0 ? kZero : kSpecial;
    if (exponent == 0x7fff || !(b.significand >> 63)) return kSpecial;
    return kValid;
}

inline unsigned top(const X87State& s) { return (s.fsw >> 11) & 7; }
inline void set_top(X87State& s, unsigned value) {
    s.fsw = static_cast<uint16_t>((s.fsw & ~fpu::fsw::TOP) | ((value & 7) << 11));
}
inline unsigned physical(const X87State& s, unsigned i) { return (top(s) + i) & 7; }

inline Tag tag(const X87State& s, unsigned physical_reg) { return static_cast<Tag>((s.ftw >> (2 * physical_reg)) & 3); }
inline void set_tag(X87State& s, unsigned physical_reg, Tag t) {
    unsigned shift = 2 * (physical_reg & 7);
    s.ftw = static_cast<uint16_t>((s.ftw & ~(3u << shift)) | (static_cast<unsigned>(t) << shift));
}

inline bool empty(const X87State& s, unsigned i) { return tag(s, physical(s, i)) == kEmpty; }
inline long double st(const X87State& s, unsigned i) { return s.st[physical(s, i)]; }

// Writes ST(i) and tags it by its contents.
inline void set_st(X87State& s, unsigned i, long double value) {
    unsigned r = physical(s, i);
    s.st[r] = value;
    set_tag(s, r, tag_of(value));
}

inline void push(X87State& s, long double value) {
    set_top(s, top(s) - 1);
    set_st(s, 0, value);
}

inline void pop(X87State& s) {
    set_tag(s, physical(s, 0), kEmpty);
    set_top(s, top(s) + 1);
}

// The condition codes an instruction changes and the exception flags it raised, merged into FSW.
inline void merge_status(X87State& s, uint16_t conditions_mask, uint16_t conditions, uint16_t exceptions) {
    s.fsw = static_cast<uint16_t>((s.fsw & ~conditions_mask) | (conditions & conditions_mask) |
                                  (exceptions & fpu::fsw::kExceptions));
    fpu::update_summary(s);
}

inline bool invalid_masked(const X87State& s) { return (s.fcw & fpu::fsw::IE) != 0; }

// A stack fault (§8.5.1.1): IE and SF, C1 = 1 for overflow and 0 for underflow. The caller gives the
// masked response (a QNaN indefinite in the destination) only when invalid_masked().
inline void stack_fault(X87State& s, bool overflow) {
    s.fsw = static_cast<uint16_t>((s.fsw & ~fpu::fsw::C1) | fpu::fsw::IE | fpu::fsw::SF | (overflow ? fpu::fsw::C1 : 0));
    fpu::update_summary(s);
}

}  // namespace strata::soft::x87
