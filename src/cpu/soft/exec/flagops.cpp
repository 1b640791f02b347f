// The flag instructions: CLC, STC, CMC, CLD, STD, CLI, STI, PUSHF/PUSHFD/PUSHFQ and
// POPF/POPFD/POPFQ with the privilege rules for IF, IOPL, VM, RF, VIF/VIP, AC and ID; SALC.
//
// Privilege (SDM vol. 2 CLI/STI tables, POPF "Operation"): CLI and STI change IF in real mode and
// where CPL ≤ IOPL (IOPL = 3 in virtual-8086 mode), and raise #GP(0) elsewhere. POPF changes IOPL
// only at CPL 0, IF only where CPL ≤ IOPL (silently keeping it otherwise), never VM, VIF or VIP,
// and clears RF with a 32- or 64-bit operand; PUSHF/POPF in virtual-8086 mode need IOPL = 3.
// Missing: the virtual interrupt flag of CR4.VME (virtual-8086 mode extensions) and CR4.PVI
// (protected-mode virtual interrupts): with those enabled, the cases above that raise #GP(0)
// should set VIF/VIP instead. Neither is needed by Linux or the boot paths.
// Spec: Intel SDM vol. 2A CLC, STC, CMC, CLD, STD, CLI; vol. 2B STI, PUSHF, POPF. SALC (opcode
// D6) is undocumented (a blank in the SDM's opcode map), but x86 processors run it outside
// 64-bit mode and QEMU implements it.
#include <Zydis/Zydis.h>

#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

namespace {

unsigned iopl(const Cpu& cpu) { return static_cast<unsigned>((cpu.flags.other & rflags::IOPL) >> 12); }

void clc(Cpu& cpu, const Insn&) { cpu.flags.override(rflags::CF, 0); }
void stc(Cpu& cpu, const Insn&) { cpu.flags.override(rflags::CF, rflags::CF); }
void cmc(Cpu& cpu, const Insn&) { cpu.flags.override(rflags::CF, cpu.flags.cf() ? 0 : rflags::CF); }

// SALC: AL ← FFh if CF else 00h, flags unchanged (real-mode code, kvm-unit-tests' realmode).
// The decoder knows it only outside 64-bit mode, where D6 is #UD.
void salc(Cpu& cpu, const Insn&) { cpu.set_reg(0, 1, cpu.flags.cf() ? 0xff : 0); }

// DF is not an arithmetic flag: it is always current in `other`.
void clear_direction(Cpu& cpu, const Insn&) { cpu.flags.other &= ~rflags::DF; }
void set_direction(Cpu& cpu, const Insn&) { cpu.flags.other |= rflags::DF; }

// Whether CLI/STI may change IF; otherwise #GP(0).
void check_interrupt_flag_privilege(const Cpu& cpu) {
    if (!cpu.protected_mode) return;
    if (cpu.v86 ? iopl(cpu) < 3 : cpu.cpl > iopl(cpu)) raise_gp();
}

void cli(Cpu& cpu, const Insn&) {
    check_interrupt_flag_privilege(cpu);
    cpu.flags.other &= ~rflags::IF;
    cpu.end_block = true;
}

// STI: interrupts stay blocked until the next instruction has run (the STI shadow), when IF was
// clear before; the block ends so that the run loop sees the new IF.
void sti(Cpu& cpu, const Insn&) {
    check_interrupt_flag_privilege(cpu);
    if (!(cpu.flags.other & rflags::IF)) {
        cpu.flags.other |= rflags::IF;
        cpu.interrupt_shadow = 1;
    }
    cpu.end_block = true;
}

// PUSHF/PUSHFD/PUSHFQ: the image has VM and RF clear (SDM PUSHF: "AND 00FCFFFFH").
void pushf(Cpu& cpu, const Insn& insn) {
    if (cpu.v86 && iopl(cpu) < 3) raise_gp();
    push(cpu, insn.osize, cpu.rflags() & ~(rflags::VM | rflags::RF));
}

// POPF/POPFD/POPFQ.
void popf(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.osize;
    if (cpu.v86 && iopl(cpu) < 3) raise_gp();
    uint64_t popped = pop(cpu, size);
    uint64_t changeable = rflags::kArith | rflags::TF | rflags::IF | rflags::DF | rflags::IOPL | rflags::NT |
                          rflags::AC | rflags::ID;
    if (size == 2) changeable &= 0xffff;
    if (cpu.protected_mode && cpu.cpl > 0) changeable &= ~rflags::IOPL;
    if (cpu.protected_mode && cpu.cpl > iopl(cpu)) changeable &= ~rflags::IF;
    uint64_t old = cpu.rflags();
    uint64_t value = (old & ~changeable) | (popped & changeable);
    if (size != 2) value &= ~rflags::RF;
    cpu.flags.assign(value);
    cpu.end_block = true;  // IF or TF may have changed
}

}  // namespace

void bind_flagops(HandlerTable& table) {
    table.bind(ZYDIS_MNEMONIC_CLC, &clc);
    table.bind(ZYDIS_MNEMONIC_STC, &stc);
    table.bind(ZYDIS_MNEMONIC_CMC, &cmc);
    table.bind(ZYDIS_MNEMONIC_SALC, &salc);
    table.bind(ZYDIS_MNEMONIC_CLD, &clear_direction);
    table.bind(ZYDIS_MNEMONIC_STD, &set_direction);
    table.bind(ZYDIS_MNEMONIC_CLI, &cli);
    table.bind(ZYDIS_MNEMONIC_STI, &sti);
    table.bind(ZYDIS_MNEMONIC_PUSHF, &pushf);
    table.bind(ZYDIS_MNEMONIC_PUSHFD, &pushf);
    table.bind(ZYDIS_MNEMONIC_PUSHFQ, &pushf);
    table.bind(ZYDIS_MNEMONIC_POPF, &popf);
    table.bind(ZYDIS_MNEMONIC_POPFD, &popf);
    table.bind(ZYDIS_MNEMONIC_POPFQ, &popf);
}

}  // namespace strata::soft
