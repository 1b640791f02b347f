// The I/O family: IN and OUT (imm8 or DX port; 1, 2 or 4 bytes) and the string forms INS and
// OUTS, alone or with REP, through Cpu::port_in/port_out to the platform's port bus.
//
// Permission (SDM vol. 1 §19.5): in protected mode with CPL > IOPL, and always in virtual-8086
// mode, every port the access touches must have a clear bit in the TSS's I/O permission bitmap
// (a 32- or 64-bit TSS; its map base at offset 0x66; bits beyond the TSS limit count as set),
// else #GP(0). Real mode and CPL ≤ IOPL need nothing.
// INS writes ES:rDI (no override), OUTS reads seg:rSI (DS unless overridden, from Insn::mem.seg);
// rSI/rDI step by the element size, down when DF = 1, at the address size. The destination of
// INS is translated for writing before the port is read, so a #PF does not lose the device's data.
// REP: at most kMaxElementsPerCall elements per call (one with TF set); if rCX is not yet zero the
// instruction restarts (RIP stays on it, the block ends), so interrupts and stop requests are
// seen between runs; rCX/rSI/rDI reflect every element done, as the string family does.
// Spec: Intel SDM vol. 1 §19 (I/O), vol. 2 IN, OUT, INS/INSB/INSW/INSD, OUTS/OUTSB/OUTSW/OUTSD, REP.
#include <Zydis/Zydis.h>

#include <cstring>

#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

namespace {

constexpr uint64_t kMaxElementsPerCall = 4096;
constexpr unsigned kCx = 1, kDx = 2, kSi = 6, kDi = 7;
constexpr uint64_t kTssIoMapBase = 0x66;  // offset of the I/O map base in a 32/64-bit TSS (§7.2.1)

// The TSS I/O permission bitmap check for `size` ports from `port`.
void check_io_bitmap(Cpu& cpu, uint16_t port, unsigned size) {
    const SegmentState& tr = cpu.tr;
    bool tss32 = !tr.unusable && !tr.s && (tr.type == 9 || tr.type == 0xb);  // 16-bit TSSs have no map
    if (!tss32 || tr.limit < kTssIoMapBase + 1) raise_gp(0);
    auto linear = [&](uint64_t offset) { return cpu.long_mode ? tr.base + offset : (tr.base + offset) & 0xffff'ffffu; };
    uint64_t map = cpu.read_linear<uint16_t>(linear(kTssIoMapBase), true);
    // The processor reads the two bytes holding the first port's bit (§19.5.2).
    uint64_t first = map + port / 8;
    if (first + 1 > tr.limit) raise_gp(0);
    auto bits = cpu.read_linear<uint16_t>(linear(first), true);
    uint32_t wanted = ((1u << size) - 1) << (port & 7);
    if (bits & wanted) raise_gp(0);
}

void check_io(Cpu& cpu, uint16_t port, unsigned size) {
    if (!cpu.protected_mode) return;
    auto iopl = static_cast<unsigned>((cpu.rflags() >> 12) & 3);
    if (cpu.v86 || cpu.cpl > iopl) check_io_bitmap(cpu, port, size);
}

uint16_t port_operand(const Cpu& cpu, const Insn& insn, unsigned n) {
    return insn.op[n].kind == OpKind::Imm ? static_cast<uint16_t>(insn.imm & 0xff) : static_cast<uint16_t>(cpu.gpr[kDx]);
}

// IN AL/AX/EAX, imm8/DX (a 32-bit result zero-extends RAX).
void in(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size;
    uint16_t port = port_operand(cpu, insn, 1);
    check_io(cpu, port, size);
    write_operand(cpu, insn, 0, cpu.port_in(port, size));
}

// OUT imm8/DX, AL/AX/EAX.
void out(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[1].size;
    uint16_t port = port_operand(cpu, insn, 0);
    check_io(cpu, port, size);
    cpu.port_out(port, size, read_operand(cpu, insn, 1));
}

uint64_t element_step(const Cpu& cpu, unsigned size) {
    return (cpu.flags.other & rflags::DF) ? 0 - static_cast<uint64_t>(size) : size;
}

void advance(Cpu& cpu, const Insn& insn, unsigned r, unsigned size) {
    cpu.set_reg(r, insn.asize, cpu.gpr[r] + element_step(cpu, size));
}

void write_element(Cpu& cpu, uint64_t linear, unsigned size, uint64_t value) {
    switch (size) {
        case 1: cpu.write_linear<uint8_t>(linear, static_cast<uint8_t>(value)); break;
        case 2: cpu.write_linear<uint16_t>(linear, static_cast<uint16_t>(value)); break;
        default: cpu.write_linear<uint32_t>(linear, static_cast<uint32_t>(value)); break;
    }
}

void ins_element(Cpu& cpu, const Insn& insn, uint16_t port, unsigned size) {
    uint64_t linear = cpu.linear(ES, cpu.reg(kDi, insn.asize), size, Access::Write);
    // The page walk for the write first (it may fault); the port is read only then.
    uint8_t* host = cpu.rmw_pointer(linear, size);
    uint64_t value = cpu.port_in(port, size);
    if (host) std::memcpy(host, &value, size);
    else write_element(cpu, linear, size, value);
    advance(cpu, insn, kDi, size);
}

void outs_element(Cpu& cpu, const Insn& insn, uint16_t port, unsigned size) {
    uint64_t value = cpu.read_sized(insn.mem.seg, cpu.reg(kSi, insn.asize), size);
    cpu.port_out(port, size, value);
    advance(cpu, insn, kSi, size);
}

using Element = void (*)(Cpu&, const Insn&, uint16_t, unsigned);

void string_io(Cpu& cpu, const Insn& insn, Element element) {
    unsigned size = insn.osize;
    auto port = static_cast<uint16_t>(cpu.gpr[kDx]);
    check_io(cpu, port, size);
    if (!(insn.prefixes & (prefix::Rep | prefix::Repne))) {
        element(cpu, insn, port, size);
        return;
    }
    uint64_t count = cpu.reg(kCx, insn.asize);
    uint64_t budget = (cpu.flags.other & rflags::TF) ? 1 : kMaxElementsPerCall;
    for (; count != 0 && budget != 0; --budget) {
        element(cpu, insn, port, size);
        --count;
        cpu.set_reg(kCx, insn.asize, count);
    }
    if (count != 0) {
        cpu.next_rip = cpu.rip;  // not done: run the instruction again after events
        cpu.end_block = true;
    }
}

void ins(Cpu& cpu, const Insn& insn) { string_io(cpu, insn, &ins_element); }
void outs(Cpu& cpu, const Insn& insn) { string_io(cpu, insn, &outs_element); }

}  // namespace

void bind_io(HandlerTable& table) {
    table.bind(ZYDIS_MNEMONIC_IN, &in);
    table.bind(ZYDIS_MNEMONIC_OUT, &out);
    for (ZydisMnemonic m : {ZYDIS_MNEMONIC_INSB, ZYDIS_MNEMONIC_INSW, ZYDIS_MNEMONIC_INSD}) table.bind(m, &ins);
    for (ZydisMnemonic m : {ZYDIS_MNEMONIC_OUTSB, ZYDIS_MNEMONIC_OUTSW, ZYDIS_MNEMONIC_OUTSD}) table.bind(m, &outs);
}

}  // namespace strata::soft
