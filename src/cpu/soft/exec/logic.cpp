// Bitwise logic: AND, OR, XOR, NOT, TEST (Intel SDM vol. 2A/2B, each instruction's "Operation"
// and "Flags Affected"). AND, OR, XOR and TEST clear OF and CF and set SF, ZF, PF by the result
// (LazyFlags' Logic kind); AF is undefined and the Logic kind clears it, as this AMD host does.
// NOT changes no flags. LOCK (vol. 2A "LOCK"): AND, OR, XOR, NOT with a memory destination update
// it atomically (alu.hpp); TEST never takes LOCK (the decoder refuses it).
#include "cpu/soft/exec/alu.hpp"

namespace strata::soft {

namespace {

void and_handler(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size;
    uint64_t src = operand_at_width(cpu, insn, 1, size);
    uint64_t dst = modify_operand(cpu, insn, 0, [src](uint64_t d) { return d & src; });
    cpu.flags.set_logic(size, dst & src);
}

void or_handler(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size;
    uint64_t src = operand_at_width(cpu, insn, 1, size);
    uint64_t dst = modify_operand(cpu, insn, 0, [src](uint64_t d) { return d | src; });
    cpu.flags.set_logic(size, dst | src);
}

void xor_handler(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size;
    uint64_t src = operand_at_width(cpu, insn, 1, size);
    uint64_t dst = modify_operand(cpu, insn, 0, [src](uint64_t d) { return d ^ src; });
    cpu.flags.set_logic(size, dst ^ src);
}

void not_handler(Cpu& cpu, const Insn& insn) {
    modify_operand(cpu, insn, 0, [](uint64_t d) { return ~d; });
}

// TEST: AND without writing the result.
void test_handler(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size;
    uint64_t dst = read_operand(cpu, insn, 0);
    uint64_t src = operand_at_width(cpu, insn, 1, size);
    cpu.flags.set_logic(size, dst & src);
}

}  // namespace

void bind_logic(HandlerTable& table) {
    table.bind(ZYDIS_MNEMONIC_AND, &and_handler);
    table.bind(ZYDIS_MNEMONIC_OR, &or_handler);
    table.bind(ZYDIS_MNEMONIC_XOR, &xor_handler);
    table.bind(ZYDIS_MNEMONIC_NOT, &not_handler);
    table.bind(ZYDIS_MNEMONIC_TEST, &test_handler);
}

}  // namespace strata::soft
