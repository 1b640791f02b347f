// What the x87 handlers (x87.cpp, x87_arith.cpp, x87_control.cpp) share: the last-instruction
// pointers, memory operands as raw bytes, and how a host operation's status becomes the guest's.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>

#include "cpu/soft/exec/exec.hpp"
#include "cpu/soft/exec/x87_host.hpp"
#include "cpu/soft/exec/x87_stack.hpp"

namespace strata::soft::x87 {

namespace fsw = fpu::fsw;

inline bool has_memory_operand(const Insn& insn) { return insn.nops > 0 && insn.op[0].kind == OpKind::Mem; }

// FIP/FCS and FOP, and FDP/FDS for a memory operand: the last non-control instruction, which an
// exception handler finds through FSTENV/FSAVE/FXSAVE (SDM vol. 1 §8.1.8, §8.1.9). FOP is the low
// three bits of the first opcode byte and the ModR/M byte.
inline void note_instruction(Cpu& cpu, const Insn& insn) {
    X87State& s = cpu.x87;
    s.fip = cpu.next_rip - insn.length;
    s.fcs = cpu.seg[CS].selector;
    s.fop = static_cast<uint16_t>(((insn.opcode & 7u) << 8) | insn.modrm);
    if (has_memory_operand(insn)) {
        s.fdp = effective_address(cpu, insn);
        s.fds = cpu.seg[insn.mem.seg].selector;
    }
}

template <size_t N>
std::array<uint8_t, N> read_memory(Cpu& cpu, const Insn& insn, uint64_t offset = 0) {
    return cpu.read<std::array<uint8_t, N>>(insn.mem.seg, (effective_address(cpu, insn) + offset) & LazyFlags::mask(insn.asize));
}

template <size_t N>
void write_memory(Cpu& cpu, const Insn& insn, const std::array<uint8_t, N>& bytes, uint64_t offset = 0) {
    cpu.write<std::array<uint8_t, N>>(insn.mem.seg, (effective_address(cpu, insn) + offset) & LazyFlags::mask(insn.asize), bytes);
}

// The first N bytes of a larger buffer.
template <size_t N, size_t M>
std::array<uint8_t, N> first_bytes(const std::array<uint8_t, M>& in) {
    static_assert(N <= M);
    std::array<uint8_t, N> out{};
    std::copy_n(in.begin(), N, out.begin());
    return out;
}

// Whether a host operation that raised `status` writes its result: an unmasked invalid-operation,
// denormal or zero-divide exception leaves destination and stack alone, and so does an unmasked
// overflow or underflow of a store to memory; a register destination takes the biased result
// (SDM vol. 1 §8.5, §4.9.2).
inline bool completes(const X87State& s, uint16_t status, bool to_memory) {
    uint16_t unmasked = status & ~s.fcw & fsw::kExceptions;
    if (unmasked & (fsw::IE | fsw::DE | fsw::ZE)) return false;
    return !(to_memory && (unmasked & (fsw::OE | fsw::UE)));
}

// Merges the host's exception flags into FSW, and the condition codes `conditions` the instruction
// defines when it completed; one stopped by an unmasked exception only clears C1 (§8.1.3.3).
inline void take_status(X87State& s, uint16_t status, uint16_t conditions, bool done) {
    if (done) merge_status(s, conditions, status, status);
    else merge_status(s, conditions & fsw::C1, 0, status);
}

inline x87host::Result run_host(const Cpu& cpu, x87host::Op op, long double st0, long double st1 = 0) {
    x87host::Operands in;
    in.st0 = st0;
    in.st1 = st1;
    return x87host::run(op, in, cpu.x87.fcw);
}

template <size_t N>
x87host::Result run_host(const Cpu& cpu, x87host::Op op, long double st0, const std::array<uint8_t, N>& memory) {
    x87host::Operands in;
    in.st0 = st0;
    std::copy(memory.begin(), memory.end(), in.memory.begin());
    return x87host::run(op, in, cpu.x87.fcw);
}

// Stack overflow on a push (ST(7) in use): the masked response pushes the indefinite.
// Returns whether the caller may push its value.
inline bool push_room(X87State& s) {
    if (!empty(s, 7)) {
        stack_fault(s, true);
        if (invalid_masked(s)) push(s, indefinite());
        return false;
    }
    return true;
}

// Stack underflow for an instruction whose destination is ST(dest): the masked response writes the
// indefinite there and pops if the instruction pops.
inline void underflow(X87State& s, unsigned dest, bool pops) {
    stack_fault(s, false);
    if (!invalid_masked(s)) return;
    set_st(s, dest, indefinite());
    if (pops) pop(s);
}

// The x87 handlers of the other files, bound from bind_x87().
void bind_x87_arith(HandlerTable& table);
void bind_x87_control(HandlerTable& table);

}  // namespace strata::soft::x87
