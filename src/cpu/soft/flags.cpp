#include "cpu/soft/flags.hpp"

#include <bit>

namespace strata::soft {

bool LazyFlags::lazy_cf() const {
    uint64_t m = mask(size);
    uint64_t a = src1 & m, b = src2 & m, r = dst & m;
    switch (op) {
        case CcOp::Materialized: return (other & rflags::CF) != 0;
        case CcOp::Add: return carry_in ? r <= a : r < a;
        case CcOp::Sub: return carry_in ? a <= b : a < b;
        case CcOp::Logic: return false;
        case CcOp::Inc:
        case CcOp::Dec: return carry_in != 0;
    }
    return false;
}

bool LazyFlags::lazy_of() const {
    uint64_t s = sign(size);
    switch (op) {
        case CcOp::Materialized: return (other & rflags::OF) != 0;
        case CcOp::Add: return ((src1 ^ dst) & (src2 ^ dst) & s) != 0;
        case CcOp::Sub: return ((src1 ^ src2) & (src1 ^ dst) & s) != 0;
        case CcOp::Logic: return false;
        case CcOp::Inc: return (dst & mask(size)) == s;
        case CcOp::Dec: return (dst & mask(size)) == s - 1;
    }
    return false;
}

bool LazyFlags::pf() const {
    if (overridden & rflags::PF) [[unlikely]] return (overrides & rflags::PF) != 0;
    if (op == CcOp::Materialized) return (other & rflags::PF) != 0;
    return (std::popcount(static_cast<uint8_t>(dst)) & 1) == 0;
}

bool LazyFlags::af() const {
    if (overridden & rflags::AF) [[unlikely]] return (overrides & rflags::AF) != 0;
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
    uint64_t v = other;
    if (op != CcOp::Materialized) {
        uint64_t m = mask(size), s = sign(size), r = dst & m;
        v &= ~rflags::kArith;
        if (r == 0) v |= rflags::ZF;
        if (r & s) v |= rflags::SF;
        if ((std::popcount(static_cast<uint8_t>(r)) & 1) == 0) v |= rflags::PF;
        switch (op) {
            case CcOp::Add:
            case CcOp::Sub:
                if (lazy_cf()) v |= rflags::CF;
                if (lazy_of()) v |= rflags::OF;
                if ((src1 ^ src2 ^ dst) & 0x10) v |= rflags::AF;
                break;
            case CcOp::Inc:
                if (carry_in) v |= rflags::CF;
                if (r == s) v |= rflags::OF;
                if ((dst & 0xf) == 0) v |= rflags::AF;
                break;
            case CcOp::Dec:
                if (carry_in) v |= rflags::CF;
                if (r == s - 1) v |= rflags::OF;
                if ((dst & 0xf) == 0xf) v |= rflags::AF;
                break;
            default: break;
        }
    }
    return (v & ~overridden) | (overrides & overridden);
}

bool LazyFlags::condition(unsigned cc) const {
    bool result = false;
    // After CMP/SUB (most conditional branches) the unsigned and signed relations of the
    // operands are the conditions themselves.
    if (op == CcOp::Sub && !overridden && !carry_in) {
        uint64_t m = mask(size), a = src1 & m, b = src2 & m;
        unsigned shift = 64 - size * 8u;
        auto signed_of = [shift](uint64_t v) { return static_cast<int64_t>(v << shift); };
        switch ((cc >> 1) & 7) {
            case 1: result = a < b; return (cc & 1) ? !result : result;
            case 2: result = a == b; return (cc & 1) ? !result : result;
            case 3: result = a <= b; return (cc & 1) ? !result : result;
            case 6: result = signed_of(a) < signed_of(b); return (cc & 1) ? !result : result;
            case 7: result = signed_of(a) <= signed_of(b); return (cc & 1) ? !result : result;
            default: break;
        }
    }
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
