// What the integer ALU families (arith, logic, shift, bit) share: the source operand at the
// destination's width, the read-modify-write of a destination operand — atomic under LOCK — and
// the eager flag helpers of instructions whose flags no lazy kind of LazyFlags describes.
//
// Read-modify-write destinations (SDM vol. 2 §3.2 per instruction; vol. 3A §8.1.2.2 "Software
// controlled bus locking"): the access is a write from the start, so segmentation checks it for
// writing and a page fault on its load reports W=1 (what this AMD host and Intel CPUs report for
// ADD/NOT/BTS... on an unmapped page). With LOCK the update is one compare-exchange on the host
// RAM behind the operand, so that other vCPUs' locked and unlocked accesses see it whole; an
// operand in MMIO or across a page boundary has no host pointer and is read and written plainly.
// An unaligned locked operand within a page is a host split lock: still atomic, only slow.
#pragma once

#include <bit>
#include <cstdint>

#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

// Operand n's value at `size` bytes. Zydis gives immediates sign-extended to 64 bits when the
// encoding sign-extends them (imm8 of ADD r/m32, imm32 of ADD r/m64), with the immediate's own
// size in Operand::size, so read_operand's mask would cut `add eax, -1` to 0xff: mask to the
// destination's width instead.
inline uint64_t operand_at_width(Cpu& cpu, const Insn& insn, unsigned n, unsigned size) {
    if (insn.op[n].kind == OpKind::Imm) return insn.imm & LazyFlags::mask(size);
    return read_operand(cpu, insn, n);
}

namespace detail {

template <class T, class Compute>
uint64_t locked_update(uint8_t* host, Compute& compute) {
    T* p = reinterpret_cast<T*>(host);
    T old = __atomic_load_n(p, __ATOMIC_RELAXED);
    // A failed exchange reloads `old`; compute is pure, so running it again is harmless.
    while (!__atomic_compare_exchange_n(p, &old, static_cast<T>(compute(old)), false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED)) {
    }
    return old;
}

// The load of a read-modify-write: its page faults are write faults.
inline uint64_t read_for_write(Cpu& cpu, uint64_t address, unsigned size) {
    try {
        switch (size) {
            case 1: return cpu.read_linear<uint8_t>(address);
            case 2: return cpu.read_linear<uint16_t>(address);
            case 4: return cpu.read_linear<uint32_t>(address);
            default: return cpu.read_linear<uint64_t>(address);
        }
    } catch (GuestFault& fault) {
        if (fault.vector == vec::PF) fault.error_code |= pf::W;
        throw;
    }
}

inline void write_linear_sized(Cpu& cpu, uint64_t address, unsigned size, uint64_t value) {
    switch (size) {
        case 1: cpu.write_linear<uint8_t>(address, static_cast<uint8_t>(value)); break;
        case 2: cpu.write_linear<uint16_t>(address, static_cast<uint16_t>(value)); break;
        case 4: cpu.write_linear<uint32_t>(address, static_cast<uint32_t>(value)); break;
        default: cpu.write_linear<uint64_t>(address, value); break;
    }
}

}  // namespace detail

// Replaces the `size`-byte value at `offset` in segment `seg` by compute(old) and returns the old
// value (zero-extended). `compute` must be pure: under LOCK it runs again when another vCPU wrote
// the operand in between.
template <class Compute>
uint64_t modify_memory(Cpu& cpu, const Insn& insn, unsigned seg, uint64_t offset, unsigned size, Compute compute) {
    uint64_t address = cpu.linear(seg, offset, size, Access::Write);
    if (insn.prefixes & prefix::Lock) [[unlikely]] {
        if (uint8_t* host = cpu.rmw_pointer(address, size)) {
            switch (size) {
                case 1: return detail::locked_update<uint8_t>(host, compute);
                case 2: return detail::locked_update<uint16_t>(host, compute);
                case 4: return detail::locked_update<uint32_t>(host, compute);
                default: return detail::locked_update<uint64_t>(host, compute);
            }
        }
    }
    uint64_t old = detail::read_for_write(cpu, address, size);
    detail::write_linear_sized(cpu, address, size, compute(old));
    return old;
}

// The same for operand n, a register or the instruction's memory operand. LOCK on a register
// destination is #UD (SDM vol. 2 "LOCK"); the decoder already refuses it, this keeps it so.
template <class Compute>
uint64_t modify_operand(Cpu& cpu, const Insn& insn, unsigned n, Compute compute) {
    const Operand& op = insn.op[n];
    if (op.kind == OpKind::Mem) return modify_memory(cpu, insn, insn.mem.seg, effective_address(cpu, insn), op.size, compute);
    if (insn.prefixes & prefix::Lock) raise_ud();
    uint64_t old = read_operand(cpu, insn, n);
    write_operand(cpu, insn, n, compute(old));
    return old;
}

// --- Eager flags ---

inline bool even_parity(uint64_t value) { return (std::popcount(static_cast<uint8_t>(value)) & 1) == 0; }
inline bool most_significant_bit(uint64_t value, unsigned size) { return (value & LazyFlags::sign(size)) != 0; }

// SF, ZF and PF of a `size`-byte result.
inline uint64_t sign_zero_parity(uint64_t result, unsigned size) {
    uint64_t bits = 0;
    if ((result & LazyFlags::mask(size)) == 0) bits |= rflags::ZF;
    if (most_significant_bit(result, size)) bits |= rflags::SF;
    if (even_parity(result)) bits |= rflags::PF;
    return bits;
}

// Sets all six arithmetic flags to `bits` at once (no need to materialize the old ones first).
inline void set_status_flags(Cpu& cpu, uint64_t bits) {
    cpu.flags.assign((cpu.flags.other & ~rflags::kArith) | (bits & rflags::kArith));
}

// Sets the arithmetic flags in `which` to those of `bits`, keeping the others.
inline void update_status_flags(Cpu& cpu, uint64_t which, uint64_t bits) { cpu.flags.override(which, bits); }

}  // namespace strata::soft
