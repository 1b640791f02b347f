// Bit instructions: BT, BTS, BTR, BTC, BSF, BSR, TZCNT, LZCNT, POPCNT (Intel SDM vol. 2A "BT",
// "BTS", "BTR", "BTC", "BSF", "BSR", "LZCNT", "POPCNT"; vol. 2B "TZCNT").
//
// BT*: the bit offset of an immediate, or of a register with a register bit base, is taken modulo
// the operand width. A register offset with a memory bit base is a signed number of bits from the
// operand's address (SDM BT, "Operation" and table 3-2): the operand-sized word at
// address + size * (offset SAR log2(width)) is accessed, its bit offset MOD width selected, so
// offsets reach 2^31 bytes either way (2^60 with 64-bit operands). CF gets the bit; the other
// flags are undefined and left unchanged, as this AMD host leaves them (ZF is unaffected by spec).
// LOCK BTS/BTR/BTC with a memory base update the word atomically (alu.hpp).
//
// BSF/BSR of a zero source leave the destination unchanged (all 64 bits, with 32-bit operands too)
// and set ZF, as AMD documents and Intel CPUs do; CF, OF, SF, AF, PF are undefined and left
// unchanged, as one AMD model leaves them (a later one computes them; no software may rely on
// either). TZCNT/LZCNT set CF for a zero source and ZF for a zero result; of their undefined flags
// AMD's hosts here clear SF, AF and PF and keep OF. POPCNT clears all but ZF.
// TZCNT and LZCNT are decoded as such whatever CPUID says (F3 0F BC/BD are REP BSF/BSR on CPUs
// without BMI1/ABM); the guest's CPUID is expected to advertise them.
#include "cpu/soft/exec/alu.hpp"

namespace strata::soft {

namespace {

enum class BitAction { Test, Set, Reset, Complement };

uint64_t apply(BitAction action, uint64_t value, uint64_t bit_mask) {
    switch (action) {
        case BitAction::Test: return value;
        case BitAction::Set: return value | bit_mask;
        case BitAction::Reset: return value & ~bit_mask;
        case BitAction::Complement: return value ^ bit_mask;
    }
    return value;
}

template <BitAction kAction>
void bit_test(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size, bits = size * 8;
    uint64_t offset = read_operand(cpu, insn, 1);
    uint64_t word_offset = 0;  // memory base, register offset: the operand-sized word selected
    if (insn.op[0].kind == OpKind::Mem && insn.op[1].kind == OpKind::Gpr) {
        auto signed_offset = static_cast<int64_t>(sign_extend(offset, size));
        word_offset = static_cast<uint64_t>(signed_offset >> std::countr_zero(bits)) * size;
    }
    uint64_t bit_mask = 1ull << (offset & (bits - 1));
    uint64_t old = 0;
    if (insn.op[0].kind != OpKind::Mem) {
        if constexpr (kAction == BitAction::Test) old = read_operand(cpu, insn, 0);
        else old = modify_operand(cpu, insn, 0, [bit_mask](uint64_t d) { return apply(kAction, d, bit_mask); });
    } else {
        uint64_t address = (effective_address(cpu, insn) + word_offset) & LazyFlags::mask(insn.asize);
        if constexpr (kAction == BitAction::Test) old = cpu.read_sized(insn.mem.seg, address, size);
        else
            old = modify_memory(cpu, insn, insn.mem.seg, address, size,
                                [bit_mask](uint64_t d) { return apply(kAction, d, bit_mask); });
    }
    update_status_flags(cpu, rflags::CF, (old & bit_mask) ? rflags::CF : 0);
}

void bt_handler(Cpu& cpu, const Insn& insn) { bit_test<BitAction::Test>(cpu, insn); }
void bts_handler(Cpu& cpu, const Insn& insn) { bit_test<BitAction::Set>(cpu, insn); }
void btr_handler(Cpu& cpu, const Insn& insn) { bit_test<BitAction::Reset>(cpu, insn); }
void btc_handler(Cpu& cpu, const Insn& insn) { bit_test<BitAction::Complement>(cpu, insn); }

// --- Bit scans and counts ---

template <bool kForward>
void bit_scan(Cpu& cpu, const Insn& insn) {
    uint64_t src = read_operand(cpu, insn, 1);
    if (src == 0) {
        update_status_flags(cpu, rflags::ZF, rflags::ZF);
        return;
    }
    unsigned index = kForward ? static_cast<unsigned>(std::countr_zero(src)) : 63u - static_cast<unsigned>(std::countl_zero(src));
    write_operand(cpu, insn, 0, index);
    update_status_flags(cpu, rflags::ZF, 0);
}

void bsf_handler(Cpu& cpu, const Insn& insn) { bit_scan<true>(cpu, insn); }
void bsr_handler(Cpu& cpu, const Insn& insn) { bit_scan<false>(cpu, insn); }

template <bool kTrailing>
void zero_count(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size, bits = size * 8;
    uint64_t src = read_operand(cpu, insn, 1);
    unsigned count = bits;
    if (src != 0)
        count = kTrailing ? static_cast<unsigned>(std::countr_zero(src))
                          : static_cast<unsigned>(std::countl_zero(src)) - (64 - bits);
    write_operand(cpu, insn, 0, count);
    uint64_t set = (src == 0 ? rflags::CF : 0) | (count == 0 ? rflags::ZF : 0);
    update_status_flags(cpu, rflags::CF | rflags::ZF | rflags::SF | rflags::AF | rflags::PF, set);
}

void tzcnt_handler(Cpu& cpu, const Insn& insn) { zero_count<true>(cpu, insn); }
void lzcnt_handler(Cpu& cpu, const Insn& insn) { zero_count<false>(cpu, insn); }

void popcnt_handler(Cpu& cpu, const Insn& insn) {
    uint64_t src = read_operand(cpu, insn, 1);
    write_operand(cpu, insn, 0, static_cast<uint64_t>(std::popcount(src)));
    set_status_flags(cpu, src == 0 ? rflags::ZF : 0);
}

}  // namespace

void bind_bit(HandlerTable& table) {
    table.bind(ZYDIS_MNEMONIC_BT, compiled<&bt_handler>());
    table.bind(ZYDIS_MNEMONIC_BTS, compiled<&bts_handler>());
    table.bind(ZYDIS_MNEMONIC_BTR, compiled<&btr_handler>());
    table.bind(ZYDIS_MNEMONIC_BTC, &btc_handler);
    table.bind(ZYDIS_MNEMONIC_BSF, compiled<&bsf_handler>());
    table.bind(ZYDIS_MNEMONIC_BSR, compiled<&bsr_handler>());
    table.bind(ZYDIS_MNEMONIC_TZCNT, compiled<&tzcnt_handler>());
    table.bind(ZYDIS_MNEMONIC_LZCNT, compiled<&lzcnt_handler>());
    table.bind(ZYDIS_MNEMONIC_POPCNT, compiled<&popcnt_handler>());
}

}  // namespace strata::soft
