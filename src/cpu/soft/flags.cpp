#include "cpu/soft/flags.hpp"

#include <bit>

namespace strata::soft {

bool LazyFlags::cf() const {
    uint64_t m = mask(size);
    uint64_t a = src1 & m, b = src2 & m, r = dst & m;
    switch (op) {
        case CcOp::Materialized: return (other & rflags::CF) != 0;
        case CcOp::Add: return carry_in ? r <= a : r < a;
        case CcOp::Sub: return carry_in ? a <= b : a < b;
        case CcOp::Logic: return false;
        case CcOp::Inc:
        case CcOp::Dec: return carry_in != 0;
        case CcOp::Shl: return ((a >> (size * 8 - b)) & 1) != 0;
        case CcOp::Shr: return ((a >> (b - 1)) & 1) != 0;
        case CcOp::Sar: {
            unsigned bits = size * 8u;
            int64_t s = static_cast<int64_t>(a << (64 - bits)) >> (64 - bits);
            return ((static_cast<uint64_t>(s >> (b - 1))) & 1) != 0;
        }
        case CcOp::Mul: return src1 != 0;
    }
    return false;
}

bool LazyFlags::of() const {
    uint64_t s = sign(size);
    switch (op) {
        case CcOp::Materialized: return (other & rflags::OF) != 0;
        case CcOp::Add: return ((src1 ^ dst) & (src2 ^ dst) & s) != 0;
        case CcOp::Sub: return ((src1 ^ src2) & (src1 ^ dst) & s) != 0;
        case CcOp::Logic: return false;
        case CcOp::Inc: return (dst & mask(size)) == s;
        case CcOp::Dec: return (dst & mask(size)) == s - 1;
        // Defined for 1-bit shifts only; other counts give what Intel's CPUs give (the same rule).
        case CcOp::Shl: return ((dst & s) != 0) != cf();
        case CcOp::Shr: return (src1 & s) != 0;
        case CcOp::Sar: return false;
        case CcOp::Mul: return src1 != 0;
    }
    return false;
}

bool LazyFlags::pf() const {
    if (op == CcOp::Materialized) return (other & rflags::PF) != 0;
    return (std::popcount(static_cast<uint8_t>(dst)) & 1) == 0;
}

bool LazyFlags::af() const {
    switch (op) {
        case CcOp::Materialized: return (other & rflags::AF) != 0;
        case CcOp::Add:
        case CcOp::Sub: return ((src1 ^ src2 ^ dst) & 0x10) != 0;
        case CcOp::Inc: return (dst & 0xf) == 0;
        case CcOp::Dec: return (dst & 0xf) == 0xf;
        default: return false;
    }
}

uint64_t LazyFlags::value() const {
    if (op == CcOp::Materialized) return other;
    uint64_t v = other & ~rflags::kArith;
    if (cf()) v |= rflags::CF;
    if (pf()) v |= rflags::PF;
    if (af()) v |= rflags::AF;
    if (zf()) v |= rflags::ZF;
    if (sf()) v |= rflags::SF;
    if (of()) v |= rflags::OF;
    return v;
}

bool LazyFlags::condition(unsigned cc) const {
    bool result = false;
    switch ((cc >> 1) & 7) {
        case 0: result = of(); break;                 // O
        case 1: result = cf(); break;                 // B/C/NAE
        case 2: result = zf(); break;                 // E/Z
        case 3: result = cf() || zf(); break;         // BE/NA
        case 4: result = sf(); break;                 // S
        case 5: result = pf(); break;                 // P/PE
        case 6: result = sf() != of(); break;         // L/NGE
        case 7: result = zf() || sf() != of(); break; // LE/NG
    }
    return (cc & 1) ? !result : result;
}

}  // namespace strata::soft
