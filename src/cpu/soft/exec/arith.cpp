// Integer arithmetic: ADD, ADC, SUB, SBB, CMP, NEG, INC, DEC (Intel SDM vol. 2A/2B, each
// instruction's "Operation" and "Flags Affected"; flags through LazyFlags' Add/Sub/Inc/Dec kinds),
// and the decimal adjustments of legacy modes DAA, DAS, AAA, AAS, AAM, AAD (vol. 2A §3.2; in
// 64-bit mode their opcodes are invalid and the decoder gives #UD).
//
// LOCK (vol. 2A "LOCK"): ADD, ADC, SUB, SBB, NEG, INC, DEC with a memory destination update it
// atomically (alu.hpp); CMP never takes LOCK (the decoder refuses it).
//
// Undefined flags of the decimal adjustments are those of the AMD EPYC host the differential
// tests run on (measured in compatibility mode, every AL with each CF/AF and random AH): DAA/DAS
// set OF as the 8-bit add/subtract of the adjustment would; AAA/AAS set OF, SF, ZF and PF as the
// 16-bit add/subtract of 0x106 (or 0) to AX would; AAM clears OF, AF and CF; AAD sets them as the
// 8-bit add AL + AH*imm8 would.
#include "cpu/soft/exec/forms.hpp"

namespace strata::soft {

namespace {

constexpr unsigned kRax = 0;

// --- ADD, ADC, SUB, SBB, CMP ---

struct Add {
    static constexpr bool kWrites = true;
    static uint64_t compute(uint64_t d, uint64_t s) { return d + s; }
    static void flags(Cpu& cpu, unsigned size, uint64_t r, uint64_t d, uint64_t s) { cpu.flags.set(CcOp::Add, size, r, d, s); }
};
struct Sub {
    static constexpr bool kWrites = true;
    static uint64_t compute(uint64_t d, uint64_t s) { return d - s; }
    static void flags(Cpu& cpu, unsigned size, uint64_t r, uint64_t d, uint64_t s) { cpu.flags.set(CcOp::Sub, size, r, d, s); }
};
// CMP: SUB without writing the result.
struct Cmp : Sub {
    static constexpr bool kWrites = false;
};

void adc_handler(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size;
    uint64_t src = operand_at_width(cpu, insn, 1, size);
    uint8_t carry = cpu.flags.cf() ? 1 : 0;
    uint64_t dst = modify_operand(cpu, insn, 0, [src, carry](uint64_t d) { return d + src + carry; });
    cpu.flags.set(CcOp::Add, size, (dst + src + carry) & LazyFlags::mask(size), dst, src, carry);
}


void sbb_handler(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size;
    uint64_t src = operand_at_width(cpu, insn, 1, size);
    uint8_t borrow = cpu.flags.cf() ? 1 : 0;
    uint64_t dst = modify_operand(cpu, insn, 0, [src, borrow](uint64_t d) { return d - src - borrow; });
    cpu.flags.set(CcOp::Sub, size, (dst - src - borrow) & LazyFlags::mask(size), dst, src, borrow);
}


// --- NEG, INC, DEC ---

// NEG: 0 - DEST; CF is set unless the operand was 0 (the Sub kind's borrow).
struct Neg {
    static uint64_t compute(uint64_t d) { return 0 - d; }
    static void flags(Cpu& cpu, unsigned size, uint64_t r, uint64_t d) { cpu.flags.set(CcOp::Sub, size, r, 0, d); }
};
// INC and DEC keep CF (the Inc/Dec kinds carry it in carry_in).
struct Inc {
    static uint64_t compute(uint64_t d) { return d + 1; }
    static void flags(Cpu& cpu, unsigned size, uint64_t r, uint64_t d) {
        cpu.flags.set(CcOp::Inc, size, r, d, 1, cpu.flags.cf() ? 1 : 0);
    }
};
struct Dec {
    static uint64_t compute(uint64_t d) { return d - 1; }
    static void flags(Cpu& cpu, unsigned size, uint64_t r, uint64_t d) {
        cpu.flags.set(CcOp::Dec, size, r, d, 1, cpu.flags.cf() ? 1 : 0);
    }
};

// --- Decimal adjustments (legacy modes only) ---

void require_legacy_mode(const Cpu& cpu) {
    if (cpu.code64) raise_ud();
}

// OF of the 8-bit a + b = r and a - b = r.
bool add_overflows8(unsigned a, unsigned b, unsigned r) { return ((a ^ r) & (b ^ r) & 0x80) != 0; }
bool sub_overflows8(unsigned a, unsigned b, unsigned r) { return ((a ^ b) & (a ^ r) & 0x80) != 0; }

// DAA: adjusts AL after adding two packed BCD bytes (SDM "DAA", Operation).
void daa_handler(Cpu& cpu, const Insn&) {
    require_legacy_mode(cpu);
    unsigned old_al = cpu.gpr[kRax] & 0xff;
    bool old_cf = cpu.flags.cf();
    bool af = cpu.flags.af();
    bool cf = false;
    unsigned al = old_al;
    if ((al & 0xf) > 9 || af) {
        cf = old_cf || al + 6 > 0xff;
        al = (al + 6) & 0xff;
        af = true;
    } else {
        af = false;
    }
    if (old_al > 0x99 || old_cf) {
        al = (al + 0x60) & 0xff;
        cf = true;
    } else {
        cf = false;
    }
    cpu.set_reg(kRax, 1, al);
    uint64_t bits = sign_zero_parity(al, 1);
    if (cf) bits |= rflags::CF;
    if (af) bits |= rflags::AF;
    if (add_overflows8(old_al, (al - old_al) & 0xff, al)) bits |= rflags::OF;  // undefined: as AMD
    set_status_flags(cpu, bits);
}

// DAS: adjusts AL after subtracting two packed BCD bytes (SDM "DAS", Operation: unlike DAA, the
// second step has no ELSE, so the borrow of the first step survives).
void das_handler(Cpu& cpu, const Insn&) {
    require_legacy_mode(cpu);
    unsigned old_al = cpu.gpr[kRax] & 0xff;
    bool old_cf = cpu.flags.cf();
    bool af = cpu.flags.af();
    bool cf = false;
    unsigned al = old_al;
    if ((al & 0xf) > 9 || af) {
        cf = old_cf || al < 6;
        al = (al - 6) & 0xff;
        af = true;
    } else {
        af = false;
    }
    if (old_al > 0x99 || old_cf) {
        al = (al - 0x60) & 0xff;
        cf = true;
    }
    cpu.set_reg(kRax, 1, al);
    uint64_t bits = sign_zero_parity(al, 1);
    if (cf) bits |= rflags::CF;
    if (af) bits |= rflags::AF;
    if (sub_overflows8(old_al, (old_al - al) & 0xff, al)) bits |= rflags::OF;  // undefined: as AMD
    set_status_flags(cpu, bits);
}

// AAA / AAS: adjust AX after an unpacked BCD add/subtract (SDM "AAA", "AAS": AX ± 106H, then
// AL AND 0FH). CF = AF = whether an adjustment was made.
void ascii_adjust(Cpu& cpu, bool subtract) {
    require_legacy_mode(cpu);
    unsigned ax = cpu.gpr[kRax] & 0xffff;
    bool adjust = (ax & 0xf) > 9 || cpu.flags.af();
    unsigned delta = adjust ? 0x106 : 0;
    unsigned sum = (subtract ? ax - delta : ax + delta) & 0xffff;
    cpu.set_reg(kRax, 2, sum & 0xff0f);
    // OF, SF, ZF, PF are undefined: those of the 16-bit add/subtract, as AMD sets them.
    uint64_t bits = sign_zero_parity(sum, 2);
    bool overflow = subtract ? ((ax ^ delta) & (ax ^ sum) & 0x8000) != 0 : ((ax ^ sum) & (delta ^ sum) & 0x8000) != 0;
    if (overflow) bits |= rflags::OF;
    if (adjust) bits |= rflags::CF | rflags::AF;
    set_status_flags(cpu, bits);
}

void aaa_handler(Cpu& cpu, const Insn&) { ascii_adjust(cpu, false); }
void aas_handler(Cpu& cpu, const Insn&) { ascii_adjust(cpu, true); }

// AAM imm8: AH = AL / imm8, AL = AL MOD imm8; #DE for imm8 = 0 (SDM "AAM"). SF, ZF, PF from AL;
// OF, AF, CF undefined (cleared, as AMD does: the Logic kind).
void aam_handler(Cpu& cpu, const Insn& insn) {
    require_legacy_mode(cpu);
    unsigned base = insn.imm & 0xff;
    if (base == 0) raise_de();
    unsigned al = cpu.gpr[kRax] & 0xff;
    unsigned quotient = al / base, remainder = al % base;
    cpu.set_reg(kRax, 2, (quotient << 8) | remainder);
    cpu.flags.set_logic(1, remainder);
}

// AAD imm8: AL = (AL + AH * imm8) AND FFH, AH = 0 (SDM "AAD"). SF, ZF, PF from AL; OF, AF, CF
// undefined: those of the 8-bit add, as AMD sets them.
void aad_handler(Cpu& cpu, const Insn& insn) {
    require_legacy_mode(cpu);
    unsigned base = insn.imm & 0xff;
    unsigned al = cpu.gpr[kRax] & 0xff, ah = (cpu.gpr[kRax] >> 8) & 0xff;
    unsigned product = (ah * base) & 0xff;
    unsigned result = (al + product) & 0xff;
    cpu.set_reg(kRax, 2, result);
    cpu.flags.set(CcOp::Add, 1, result, al, product);
}

}  // namespace

void bind_arith(HandlerTable& table) {
    table.bind(ZYDIS_MNEMONIC_ADD, &binary_handler<Add>, &Binary<Add>::specialize);
    table.bind(ZYDIS_MNEMONIC_ADC, compiled<&adc_handler>());
    table.bind(ZYDIS_MNEMONIC_SUB, &binary_handler<Sub>, &Binary<Sub>::specialize);
    table.bind(ZYDIS_MNEMONIC_SBB, compiled<&sbb_handler>());
    table.bind(ZYDIS_MNEMONIC_CMP, &binary_handler<Cmp>, &Binary<Cmp>::specialize);
    table.bind(ZYDIS_MNEMONIC_NEG, &Unary<Neg>::generic, &Unary<Neg>::specialize);
    table.bind(ZYDIS_MNEMONIC_INC, &Unary<Inc>::generic, &Unary<Inc>::specialize);
    table.bind(ZYDIS_MNEMONIC_DEC, &Unary<Dec>::generic, &Unary<Dec>::specialize);
    table.bind(ZYDIS_MNEMONIC_DAA, &daa_handler);
    table.bind(ZYDIS_MNEMONIC_DAS, &das_handler);
    table.bind(ZYDIS_MNEMONIC_AAA, &aaa_handler);
    table.bind(ZYDIS_MNEMONIC_AAS, &aas_handler);
    table.bind(ZYDIS_MNEMONIC_AAM, &aam_handler);
    table.bind(ZYDIS_MNEMONIC_AAD, &aad_handler);
}

}  // namespace strata::soft
