// Multiplication and division: MUL, IMUL (one, two and three operands), DIV, IDIV (Intel SDM
// vol. 2A "MUL", "IMUL", "DIV", "IDIV": Operation and Flags Affected). The implicit operands are
// AL/AX/EAX/RAX and AH/DX/EDX/RDX by the operand size; 64-bit operands use unsigned __int128.
//
// MUL/IMUL set CF = OF = whether the high half is significant (not zero / not the sign extension
// of the low half); SF, ZF, AF, PF are undefined and this AMD host keeps them.
// DIV/IDIV raise #DE for a zero divisor and for a quotient that does not fit (including the most
// negative dividend divided by -1), before changing anything; all six flags are undefined, and
// this AMD host keeps CF and OF, clears SF, ZF and PF and sets AF.
#include <type_traits>

#include "cpu/soft/exec/forms.hpp"

namespace strata::soft {

namespace {

__extension__ using u128 = unsigned __int128;
__extension__ using i128 = __int128;

constexpr unsigned kRax = 0, kRdx = 2;

int64_t signed_value(uint64_t value, unsigned size) { return static_cast<int64_t>(sign_extend(value, size)); }

// The double-width result of MUL/IMUL to AX, DX:AX, EDX:EAX or RDX:RAX.
void write_product(Cpu& cpu, unsigned size, uint64_t low, uint64_t high) {
    if (size == 1) {
        cpu.set_reg(kRax, 2, (high << 8) | low);
        return;
    }
    cpu.set_reg(kRax, size, low);
    cpu.set_reg(kRdx, size, high);
}

void set_multiply_flags(Cpu& cpu, bool significant_high) {
    update_status_flags(cpu, rflags::CF | rflags::OF, significant_high ? rflags::CF | rflags::OF : 0);
}

void mul_handler(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size, bits = size * 8;
    uint64_t mask = LazyFlags::mask(size);
    u128 product = u128{cpu.gpr[kRax] & mask} * read_operand(cpu, insn, 0);
    uint64_t low = static_cast<uint64_t>(product) & mask;
    uint64_t high = static_cast<uint64_t>(product >> bits) & mask;
    write_product(cpu, size, low, high);
    set_multiply_flags(cpu, high != 0);
}

// The signed product of a and b (each `size` bytes): its low half, and whether the full product
// differs from the low half sign-extended.
struct SignedProduct {
    uint64_t low, high;
    bool overflow;
};

SignedProduct signed_multiply(uint64_t a, uint64_t b, unsigned size) {
    unsigned bits = size * 8;
    uint64_t mask = LazyFlags::mask(size);
    i128 product = i128{signed_value(a, size)} * i128{signed_value(b, size)};
    uint64_t low = static_cast<uint64_t>(product) & mask;
    uint64_t high = static_cast<uint64_t>(static_cast<u128>(product) >> bits) & mask;
    return {low, high, product != i128{signed_value(low, size)}};
}

// IMUL r/m: RDX:RAX (or narrower) = RAX * r/m. IMUL r, r/m and IMUL r, r/m, imm: the product
// truncated to the destination.
void imul_handler(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size;
    if (insn.nops == 1) {
        SignedProduct p = signed_multiply(cpu.gpr[kRax], read_operand(cpu, insn, 0), size);
        write_product(cpu, size, p.low, p.high);
        set_multiply_flags(cpu, p.overflow);
        return;
    }
    uint64_t a = insn.nops == 3 ? read_operand(cpu, insn, 1) : read_operand(cpu, insn, 0);
    uint64_t b = operand_at_width(cpu, insn, insn.nops == 3 ? 2 : 1, size);
    SignedProduct p = signed_multiply(a, b, size);
    write_operand(cpu, insn, 0, p.low);
    set_multiply_flags(cpu, p.overflow);
}

// IMUL r, r/m and IMUL r, r/m, imm with 32- or 64-bit registers, compiled for their shape.
template <class T, bool kMemory, bool kImmediate>
void imul_form(Cpu& cpu, const Insn& insn) {
    using Signed = std::make_signed_t<T>;
    auto source = [&cpu, &insn] {
        return kMemory ? cpu.read<T>(insn.mem.seg, effective_address(cpu, insn)) : gpr<T>(cpu, insn.op[1].reg);
    };
    T a = kImmediate ? source() : gpr<T>(cpu, insn.op[0].reg);
    T b = kImmediate ? static_cast<T>(insn.imm) : source();
    Signed product;
    bool overflow = __builtin_mul_overflow(static_cast<Signed>(a), static_cast<Signed>(b), &product);
    set_gpr<T>(cpu, insn.op[0].reg, static_cast<T>(product));
    set_multiply_flags(cpu, overflow);
}

template <class T>
HandlerPair imul_for(bool memory, bool immediate) {
    if (memory) return immediate ? compiled<&imul_form<T, true, true>>() : compiled<&imul_form<T, true, false>>();
    return immediate ? compiled_register_only<&imul_form<T, false, true>>()
                     : compiled_register_only<&imul_form<T, false, false>>();
}

HandlerPair specialize_imul(const Insn& insn) {
    const Operand& dst = insn.op[0];
    const Operand& src = insn.op[1];
    if (insn.nops < 2 || insn.nops > 3 || !plain_gpr(dst) || (dst.size != 4 && dst.size != 8)) return {};
    if (insn.nops == 3 && insn.op[2].kind != OpKind::Imm) return {};
    bool memory = src.kind == OpKind::Mem;
    if (!memory && !(plain_gpr(src) && src.size == dst.size)) return {};
    return dst.size == 4 ? imul_for<uint32_t>(memory, insn.nops == 3) : imul_for<uint64_t>(memory, insn.nops == 3);
}

// --- DIV, IDIV ---

void write_quotient(Cpu& cpu, unsigned size, uint64_t quotient, uint64_t remainder) {
    if (size == 1) {
        cpu.set_reg(kRax, 2, ((remainder & 0xff) << 8) | (quotient & 0xff));
        return;
    }
    cpu.set_reg(kRax, size, quotient);
    cpu.set_reg(kRdx, size, remainder);
}

void set_divide_flags(Cpu& cpu) {
    update_status_flags(cpu, rflags::SF | rflags::ZF | rflags::PF | rflags::AF, rflags::AF);
}

// The dividend's high half: AH for byte division, else DX/EDX/RDX.
uint64_t dividend_high(const Cpu& cpu, unsigned size) {
    return size == 1 ? (cpu.gpr[kRax] >> 8) & 0xff : cpu.reg(kRdx, size);
}

void div_handler(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size, bits = size * 8;
    uint64_t divisor = read_operand(cpu, insn, 0);
    if (divisor == 0) raise_de();
    uint64_t high = dividend_high(cpu, size), low = cpu.reg(kRax, size);
    // The quotient fits exactly when the high half is below the divisor.
    if (high >= divisor) raise_de();
    uint64_t quotient, remainder;
    if (size == 8) {
        u128 dividend = (u128{high} << 64) | low;
        quotient = static_cast<uint64_t>(dividend / divisor);
        remainder = static_cast<uint64_t>(dividend % divisor);
    } else {
        uint64_t dividend = (high << bits) | low;
        quotient = dividend / divisor;
        remainder = dividend % divisor;
    }
    write_quotient(cpu, size, quotient, remainder);
    set_divide_flags(cpu);
}

void idiv_handler(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size, bits = size * 8;
    int64_t divisor = signed_value(read_operand(cpu, insn, 0), size);
    if (divisor == 0) raise_de();
    uint64_t high = dividend_high(cpu, size), low = cpu.reg(kRax, size);
    // The dividend has 2*bits bits: at most 128, so __int128 holds it; its quotient by -1 may not
    // (-2^127 / -1), so that case negates instead of dividing.
    i128 dividend = size == 8 ? static_cast<i128>((u128{high} << 64) | low)
                              : i128{signed_value((high << bits) | low, size * 2)};
    i128 quotient, remainder;
    if (divisor == -1) {
        if (dividend == static_cast<i128>(u128{1} << 127)) raise_de();
        quotient = -dividend;
        remainder = 0;
    } else {
        quotient = dividend / divisor;
        remainder = dividend % divisor;
    }
    i128 most = (i128{1} << (bits - 1)) - 1, least = -most - 1;
    if (quotient > most || quotient < least) raise_de();
    write_quotient(cpu, size, static_cast<uint64_t>(quotient), static_cast<uint64_t>(remainder));
    set_divide_flags(cpu);
}

}  // namespace

void bind_muldiv(HandlerTable& table) {
    table.bind(ZYDIS_MNEMONIC_MUL, compiled<&mul_handler>());
    table.bind(ZYDIS_MNEMONIC_IMUL, &imul_handler, &specialize_imul);
    table.bind(ZYDIS_MNEMONIC_DIV, &div_handler);
    table.bind(ZYDIS_MNEMONIC_IDIV, &idiv_handler);
}

}  // namespace strata::soft
