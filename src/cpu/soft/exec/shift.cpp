// Shifts and rotates: SHL/SAL, SHR, SAR, ROL, ROR, RCL, RCR, SHLD, SHRD (Intel SDM vol. 2B
// "SAL/SAR/SHL/SHR", "RCL/RCR/ROL/ROR", "SHLD", "SHRD": Operation and Flags Affected).
//
// Counts: masked to 5 bits, 6 with 64-bit operands. A masked count of 0 changes no flags, but the
// destination is still written (a 32-bit register is zero-extended, a read-only page faults:
// both as the host does). RCL/RCR of 8- and 16-bit operands rotate through CF modulo 9 and 17;
// ROL/ROR modulo the width, though a masked count that is a multiple of it still sets CF and OF.
//
// Flags the SDM defines: CF (last bit out), and for shifts SF, ZF, PF by the result; OF for a
// count of 1. Flags it leaves undefined follow the AMD EPYC host the differential tests compare
// against (measured over every count and size), as each costs one expression:
//   - shifts (SHL/SHR/SAR/SHLD/SHRD) with a nonzero count set AF;
//   - OF for counts above 1: SHL's rule of count 1 (MSB(result) XOR CF), SHR's OF is 0, SAR's 0;
//     rotates apply their count-1 rule to the result; SHLD/SHRD like SHL/ROR, except a 16-bit
//     SHLD by exactly 16, whose OF is CF;
//   - SHL/SHR by more than the width (8/16-bit operands): CF is 0;
//   - 16-bit SHLD/SHRD by 17-31 (destination undefined): the source rotated by count-16, CF 0,
//     OF 0 for SHLD and the ROR rule for SHRD.
// Shift flags are computed eagerly; a rotate overrides CF and OF over the lazy state before it.
#include <bit>
#include <type_traits>

#include "cpu/soft/exec/forms.hpp"

namespace strata::soft {

namespace {

unsigned width_bits(unsigned size) { return size * 8; }

// The masked count of the instruction's count operand (imm8, CL, or the implicit 1 that Zydis
// shows as an immediate).
unsigned shift_count(Cpu& cpu, const Insn& insn, unsigned n, unsigned size) {
    uint64_t count = read_operand(cpu, insn, n);
    return static_cast<unsigned>(count & (size == 8 ? 0x3f : 0x1f));
}

bool bit_at(uint64_t value, unsigned bit) { return ((value >> bit) & 1) != 0; }

// Flags of a shift by a nonzero count: SF, ZF, PF by the result, AF set (AMD), CF and OF given.
void set_shift_flags(Cpu& cpu, unsigned size, uint64_t result, bool carry, bool overflow) {
    uint64_t bits = sign_zero_parity(result, size) | rflags::AF;
    if (carry) bits |= rflags::CF;
    if (overflow) bits |= rflags::OF;
    set_status_flags(cpu, bits);
}

// Flags of a rotate by a nonzero count: only CF and OF change.
void set_rotate_flags(Cpu& cpu, bool carry, bool overflow) {
    cpu.flags.override(rflags::CF | rflags::OF, (carry ? rflags::CF : 0) | (overflow ? rflags::OF : 0));
}

// --- SHL/SAL, SHR, SAR ---

void shl_handler(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size, bits = width_bits(size);
    unsigned count = shift_count(cpu, insn, 1, size);
    uint64_t mask = LazyFlags::mask(size);
    uint64_t dst = modify_operand(cpu, insn, 0, [count, bits](uint64_t d) { return count < bits ? d << count : 0; });
    if (count == 0) return;
    uint64_t result = count < bits ? (dst << count) & mask : 0;
    bool carry = count <= bits && bit_at(dst, bits - count);
    set_shift_flags(cpu, size, result, carry, most_significant_bit(result, size) != carry);
}

void shr_handler(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size, bits = width_bits(size);
    unsigned count = shift_count(cpu, insn, 1, size);
    uint64_t dst = modify_operand(cpu, insn, 0, [count, bits](uint64_t d) { return count < bits ? d >> count : 0; });
    if (count == 0) return;
    uint64_t result = count < bits ? dst >> count : 0;
    bool carry = count <= bits && bit_at(dst, count - 1);
    set_shift_flags(cpu, size, result, carry, count == 1 && most_significant_bit(dst, size));
}

void sar_handler(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size;
    unsigned count = shift_count(cpu, insn, 1, size);
    uint64_t mask = LazyFlags::mask(size);
    // Counts reach 31 for 8/16-bit operands: beyond the width every bit is the sign.
    auto shifted = [size, mask](uint64_t d, unsigned by) {
        return static_cast<uint64_t>(static_cast<int64_t>(sign_extend(d, size)) >> by) & mask;
    };
    uint64_t dst = modify_operand(cpu, insn, 0, [&shifted, count](uint64_t d) { return shifted(d, count); });
    if (count == 0) return;
    bool carry = (shifted(dst, count - 1) & 1) != 0;
    set_shift_flags(cpu, size, shifted(dst, count), carry, false);
}

// --- ROL, ROR, RCL, RCR ---

uint64_t rotate_left(uint64_t value, unsigned by, unsigned bits) {
    uint64_t mask = LazyFlags::mask(bits / 8);
    return by == 0 ? value : ((value << by) | (value >> (bits - by))) & mask;
}
uint64_t rotate_right(uint64_t value, unsigned by, unsigned bits) {
    uint64_t mask = LazyFlags::mask(bits / 8);
    return by == 0 ? value : ((value >> by) | (value << (bits - by))) & mask;
}

// OF of ROR/RCR by 1: MSB(result) XOR the bit below it.
bool rotate_right_overflow(uint64_t result, unsigned size) {
    unsigned bits = width_bits(size);
    return bit_at(result, bits - 1) != bit_at(result, bits - 2);
}

void rol_handler(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size, bits = width_bits(size);
    unsigned count = shift_count(cpu, insn, 1, size);
    unsigned by = count % bits;
    uint64_t dst = modify_operand(cpu, insn, 0, [by, bits](uint64_t d) { return rotate_left(d, by, bits); });
    if (count == 0) return;
    uint64_t result = rotate_left(dst, by, bits);
    bool carry = (result & 1) != 0;
    set_rotate_flags(cpu, carry, most_significant_bit(result, size) != carry);
}

void ror_handler(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size, bits = width_bits(size);
    unsigned count = shift_count(cpu, insn, 1, size);
    unsigned by = count % bits;
    uint64_t dst = modify_operand(cpu, insn, 0, [by, bits](uint64_t d) { return rotate_right(d, by, bits); });
    if (count == 0) return;
    uint64_t result = rotate_right(dst, by, bits);
    set_rotate_flags(cpu, most_significant_bit(result, size), rotate_right_overflow(result, size));
}

// RCL/RCR rotate the (width+1)-bit value CF:DEST; 65 bits for 64-bit operands.
__extension__ using u128 = unsigned __int128;

unsigned through_carry_count(unsigned count, unsigned size) {
    if (size == 1) return count % 9;
    if (size == 2) return count % 17;
    return count;  // at most 63 < 65
}

u128 rotate_wide_left(u128 value, unsigned by, unsigned bits) {
    u128 mask = (u128{1} << bits) - 1;
    return by == 0 ? value : ((value << by) | (value >> (bits - by))) & mask;
}
u128 rotate_wide_right(u128 value, unsigned by, unsigned bits) {
    u128 mask = (u128{1} << bits) - 1;
    return by == 0 ? value : ((value >> by) | (value << (bits - by))) & mask;
}

template <bool kLeft>
void rotate_through_carry(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size, bits = width_bits(size);
    unsigned count = shift_count(cpu, insn, 1, size);
    unsigned by = through_carry_count(count, size);
    u128 carry_in = cpu.flags.cf() ? 1 : 0;
    auto rotate = [carry_in, by, bits](uint64_t d) {
        u128 wide = (carry_in << bits) | d;
        return kLeft ? rotate_wide_left(wide, by, bits + 1) : rotate_wide_right(wide, by, bits + 1);
    };
    uint64_t dst = modify_operand(cpu, insn, 0, [&rotate](uint64_t d) { return static_cast<uint64_t>(rotate(d)); });
    if (count == 0) return;
    u128 wide = rotate(dst);
    uint64_t result = static_cast<uint64_t>(wide) & LazyFlags::mask(size);
    bool carry = static_cast<bool>((wide >> bits) & 1);
    bool overflow = kLeft ? most_significant_bit(result, size) != carry : rotate_right_overflow(result, size);
    set_rotate_flags(cpu, carry, overflow);
}

void rcl_handler(Cpu& cpu, const Insn& insn) { rotate_through_carry<true>(cpu, insn); }
void rcr_handler(Cpu& cpu, const Insn& insn) { rotate_through_carry<false>(cpu, insn); }

// --- SHLD, SHRD: DEST shifted with bits of SRC coming in ---

struct DoubleShift {
    uint64_t result;
    bool carry, overflow;
};

DoubleShift shift_left_double(uint64_t dst, uint64_t src, unsigned count, unsigned size) {
    unsigned bits = width_bits(size);
    uint64_t mask = LazyFlags::mask(size);
    if (count > bits)  // 16-bit operands, counts 17-31 (undefined): AMD rotates the source
        return {rotate_left(src, count - bits, bits), false, false};
    uint64_t result = ((dst << count) | (src >> (bits - count))) & mask;
    bool carry = bit_at(dst, bits - count);
    bool overflow = count == bits ? carry : most_significant_bit(result, size) != carry;
    return {result, carry, overflow};
}

DoubleShift shift_right_double(uint64_t dst, uint64_t src, unsigned count, unsigned size) {
    unsigned bits = width_bits(size);
    uint64_t mask = LazyFlags::mask(size);
    if (count > bits) {
        uint64_t result = rotate_right(src, count - bits, bits);
        return {result, false, rotate_right_overflow(result, size)};
    }
    uint64_t result = count == bits ? src : ((dst >> count) | (src << (bits - count))) & mask;
    return {result, bit_at(dst, count - 1), rotate_right_overflow(result, size)};
}

template <bool kLeft>
void shift_double(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size;
    uint64_t src = read_operand(cpu, insn, 1);
    unsigned count = shift_count(cpu, insn, 2, size);
    auto shift = [src, count, size](uint64_t d) {
        if (count == 0) return DoubleShift{d, false, false};
        return kLeft ? shift_left_double(d, src, count, size) : shift_right_double(d, src, count, size);
    };
    uint64_t dst = modify_operand(cpu, insn, 0, [&shift](uint64_t d) { return shift(d).result; });
    if (count == 0) return;
    DoubleShift done = shift(dst);
    set_shift_flags(cpu, size, done.result, done.carry, done.overflow);
}

void shld_handler(Cpu& cpu, const Insn& insn) { shift_double<true>(cpu, insn); }
void shrd_handler(Cpu& cpu, const Insn& insn) { shift_double<false>(cpu, insn); }

// --- Compiled forms: a 32- or 64-bit register shifted or rotated by an immediate or CL ---
// The same rules as the handlers above, for the widths where the masked count never exceeds
// the width (so SHL/SHR never shift everything out and ROL/ROR need no modulo).

enum class ShiftKind { Shl, Shr, Sar, Rol, Ror };

template <ShiftKind kKind, class T, bool kByCl>
void shift_form(Cpu& cpu, const Insn& insn) {
    constexpr unsigned kBits = sizeof(T) * 8;
    unsigned count = static_cast<unsigned>((kByCl ? cpu.gpr[1] : insn.imm) & (kBits - 1));
    unsigned r = insn.op[0].reg;
    T d = gpr<T>(cpu, r);
    if (count == 0) {
        set_gpr<T>(cpu, r, d);  // still written: a 32-bit register is zero-extended
        return;
    }
    constexpr T kSign = T{1} << (kBits - 1);
    T result;
    bool carry, overflow;
    if constexpr (kKind == ShiftKind::Shl) {
        result = static_cast<T>(d << count);
        carry = (d >> (kBits - count)) & 1;
        overflow = ((result & kSign) != 0) != carry;
    } else if constexpr (kKind == ShiftKind::Shr) {
        result = static_cast<T>(d >> count);
        carry = (d >> (count - 1)) & 1;
        overflow = count == 1 && (d & kSign);
    } else if constexpr (kKind == ShiftKind::Sar) {
        using Signed = std::make_signed_t<T>;
        result = static_cast<T>(static_cast<Signed>(d) >> count);
        carry = (static_cast<Signed>(d) >> (count - 1)) & 1;
        overflow = false;
    } else if constexpr (kKind == ShiftKind::Rol) {
        result = std::rotl(d, static_cast<int>(count));
        carry = result & 1;
        overflow = ((result & kSign) != 0) != carry;
    } else {
        result = std::rotr(d, static_cast<int>(count));
        carry = (result & kSign) != 0;
        overflow = carry != (((result >> (kBits - 2)) & 1) != 0);
    }
    set_gpr<T>(cpu, r, result);
    uint64_t bits = (carry ? rflags::CF : 0) | (overflow ? rflags::OF : 0);
    if constexpr (kKind == ShiftKind::Rol || kKind == ShiftKind::Ror) {
        cpu.flags.override(rflags::CF | rflags::OF, bits);
    } else {
        // SF, ZF, PF by the result; AF set as this host sets it; CF and OF as computed.
        cpu.flags.set_logic(sizeof(T), result);
        cpu.flags.override(rflags::CF | rflags::OF | rflags::AF, bits | rflags::AF);
    }
}

template <ShiftKind kKind>
HandlerPair specialize_shift(const Insn& insn) {
    const Operand& dst = insn.op[0];
    const Operand& count = insn.op[1];
    if (!plain_gpr(dst) || (dst.size != 4 && dst.size != 8)) return {};
    bool by_cl = count.kind == OpKind::Gpr && count.reg == 1 && !count.high8 && count.size == 1;
    if (!by_cl && count.kind != OpKind::Imm) return {};
    if (dst.size == 4)
        return by_cl ? compiled_register_only<&shift_form<kKind, uint32_t, true>>()
                     : compiled_register_only<&shift_form<kKind, uint32_t, false>>();
    return by_cl ? compiled_register_only<&shift_form<kKind, uint64_t, true>>()
                 : compiled_register_only<&shift_form<kKind, uint64_t, false>>();
}

}  // namespace

void bind_shift(HandlerTable& table) {
    // Zydis decodes SAL (also /6) as SHL.
    table.bind(ZYDIS_MNEMONIC_SHL, &shl_handler, &specialize_shift<ShiftKind::Shl>);
    table.bind(ZYDIS_MNEMONIC_SHR, &shr_handler, &specialize_shift<ShiftKind::Shr>);
    table.bind(ZYDIS_MNEMONIC_SAR, &sar_handler, &specialize_shift<ShiftKind::Sar>);
    table.bind(ZYDIS_MNEMONIC_ROL, &rol_handler, &specialize_shift<ShiftKind::Rol>);
    table.bind(ZYDIS_MNEMONIC_ROR, &ror_handler, &specialize_shift<ShiftKind::Ror>);
    table.bind(ZYDIS_MNEMONIC_RCL, &rcl_handler);
    table.bind(ZYDIS_MNEMONIC_RCR, &rcr_handler);
    table.bind(ZYDIS_MNEMONIC_SHLD, &shld_handler);
    table.bind(ZYDIS_MNEMONIC_SHRD, &shrd_handler);
}

}  // namespace strata::soft
