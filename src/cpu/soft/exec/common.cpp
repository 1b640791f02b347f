// Helpers every family uses: the stack, near jumps, and the table that binds every family.
#include <Zydis/Zydis.h>
#include <fmt/format.h>

#include "base/error.hpp"
#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

void panic_operand(const Insn& insn, unsigned n) {
    panic(fmt::format("soft engine: {} got an operand {} of kind {} it does not handle",
                      ZydisMnemonicGetString(static_cast<ZydisMnemonic>(insn.mnemonic)), n,
                      static_cast<unsigned>(insn.op[n].kind)));
}

void threaded_indirect(Cpu& cpu, const Insn& insn) {
    insn.exec(cpu, insn);
    continue_block(cpu, insn);
}
void threaded_indirect_no_rip(Cpu& cpu, const Insn& insn) {
    insn.exec(cpu, insn);
    continue_block<true, false>(cpu, insn);
}

void end_of_block(Cpu& cpu, const Insn& insn) {
    cpu.block_done = insn.index;  // the sentinel's index is the block's instruction count
    chain_block(cpu);
}

void jump_near(Cpu& cpu, uint64_t target, unsigned osize) {
    if (cpu.code64) {
        if (osize != 8) target &= LazyFlags::mask(osize);  // 16-bit operand size: IP wraps
        if (!Cpu::canonical(target)) raise_gp();
    } else {
        target &= LazyFlags::mask(osize);
        if (target > cpu.seg[CS].limit) raise_gp();
    }
    cpu.next_rip = target;
    cpu.end_block = true;  // the block's next instruction is not the next one any more
}

const HandlerTable& handler_table() {
    static const HandlerTable table = [] {
        HandlerTable t;
        bind_data_movement(t);
        bind_arith(t);
        bind_logic(t);
        bind_shift(t);
        bind_bit(t);
        bind_muldiv(t);
        bind_control(t);
        bind_stack(t);
        bind_string(t);
        bind_flagops(t);
        bind_io(t);
        bind_system(t);
        bind_segment(t);
        bind_x87(t);
        bind_sse(t);
        return t;
    }();
    return table;
}

}  // namespace strata::soft
