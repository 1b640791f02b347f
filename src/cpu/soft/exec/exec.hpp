// What instruction handlers share: reading and writing an instruction's operands, effective
// addresses, the stack, and the registration of each family's handlers. Each family file
// (arith.cpp, logic.cpp, ...) reads like the SDM's pseudo-code for its instructions.
//
// Conventions: a handler runs with cpu.next_rip past the instruction; it raises guest faults by
// throwing (cpu/soft/fault.hpp) before changing state that a restarted instruction would see
// twice; it sets cpu.end_block after changing anything decoding or the block's assumptions
// depend on (modes, CR0/CR3/CR4, EFER, segment registers, interrupt flag).
#pragma once

#include <array>
#include <cstring>
#include <utility>

#include "cpu/soft/cpu.hpp"
#include "cpu/soft/decode/decoder.hpp"
#include "cpu/soft/decode/insn.hpp"

namespace strata::soft {

// An operand kind a handler does not accept reached it: the decoder bound the wrong handler.
[[noreturn]] void panic_operand(const Insn& insn, unsigned n);

// The offset (within its segment) of the instruction's memory operand, wrapped to the address size.
// An absent base or index is MemOperand::kNone, which reads Cpu::kNoRegister (0).
inline constexpr uint64_t kAddressMasks[9] = {0, 0, 0xffff, 0, 0xffff'ffff, 0, 0, 0, ~0ull};
[[gnu::always_inline]] inline uint64_t effective_address(const Cpu& cpu, const Insn& insn) {
    static_assert(MemOperand::kNone == Cpu::kNoRegister);
    const MemOperand& m = insn.mem;
    uint64_t address = static_cast<uint64_t>(m.disp) + cpu.gpr[m.index] * m.scale;
    if (m.base == MemOperand::kRip) [[unlikely]] address += cpu.next_rip;
    else address += cpu.gpr[m.base];
    return address & kAddressMasks[insn.asize];
}

// Operand n's value, zero-extended (registers, memory, immediates; segment selectors).
inline uint64_t read_operand(Cpu& cpu, const Insn& insn, unsigned n) {
    const Operand& op = insn.op[n];
    switch (op.kind) {
        case OpKind::Gpr: return op.high8 ? cpu.reg8_high(op.reg) : cpu.reg(op.reg, op.size);
        case OpKind::Mem: return cpu.read_sized(insn.mem.seg, effective_address(cpu, insn), op.size);
        case OpKind::Imm: return insn.imm & LazyFlags::mask(op.size);
        case OpKind::Seg: return cpu.seg[op.reg].selector;
        default: panic_operand(insn, n);
    }
}

// Writes operand n as hardware does (32-bit register writes zero-extend; 8/16-bit ones merge).
inline void write_operand(Cpu& cpu, const Insn& insn, unsigned n, uint64_t value) {
    const Operand& op = insn.op[n];
    switch (op.kind) {
        case OpKind::Gpr:
            if (op.high8) cpu.set_reg8_high(op.reg, value);
            else cpu.set_reg(op.reg, op.size, value);
            return;
        case OpKind::Mem: cpu.write_sized(insn.mem.seg, effective_address(cpu, insn), op.size, value); return;
        default: panic_operand(insn, n);
    }
}

// Sign-extends the low `bytes` of value to 64 bits.
inline uint64_t sign_extend(uint64_t value, unsigned bytes) {
    if (bytes >= 8) return value;
    unsigned shift = 64 - bytes * 8;
    return static_cast<uint64_t>(static_cast<int64_t>(value << shift) >> shift);
}

// The stack (SDM vol. 1 §6.2): RSP, ESP or SP by the stack-address size, SS-relative.
inline uint64_t stack_mask(const Cpu& cpu) { return cpu.stack_bits == 64 ? ~0ull : LazyFlags::mask(cpu.stack_bits / 8); }
inline void push(Cpu& cpu, unsigned bytes, uint64_t value) {
    uint64_t mask = stack_mask(cpu);
    uint64_t rsp = (cpu.gpr[4] - bytes) & mask;
    cpu.write_sized(SS, rsp, bytes, value);
    cpu.gpr[4] = (cpu.gpr[4] & ~mask) | rsp;
}
// push() of 8 bytes in 64-bit mode when the stack's TLB entry hits (the fast forms of PUSH and
// CALL); false, with nothing changed, otherwise.
inline bool push64_if_cached(Cpu& cpu, uint64_t value) {
    uint64_t rsp = cpu.gpr[4] - 8;
    void* host = cpu.write_pointer_if_cached<uint64_t>(SS, rsp);
    if (!host) return false;
    std::memcpy(host, &value, sizeof(value));
    cpu.gpr[4] = rsp;
    return true;
}
inline uint64_t pop(Cpu& cpu, unsigned bytes) {
    uint64_t mask = stack_mask(cpu);
    uint64_t rsp = cpu.gpr[4] & mask;
    uint64_t value = cpu.read_sized(SS, rsp, bytes);
    cpu.gpr[4] = (cpu.gpr[4] & ~mask) | ((rsp + bytes) & mask);
    return value;
}
// Reads the value `bytes` wide at the top of the stack plus `offset` without popping.
inline uint64_t peek(Cpu& cpu, unsigned bytes, uint64_t offset = 0) {
    uint64_t mask = stack_mask(cpu);
    return cpu.read_sized(SS, (cpu.gpr[4] + offset) & mask, bytes);
}

// Jumps to `target` (an offset in CS), truncated to the operand size outside 64-bit mode;
// #GP if it is beyond CS's limit or not canonical. The jump ends the block.
void jump_near(Cpu& cpu, uint64_t target, unsigned osize);

// --- Threaded code ---
// A block runs as a chain of tail calls: each instruction's threaded form runs its handler and
// then jumps to the next instruction's threaded form itself, so that every handler has an
// indirect jump of its own, which the host's branch predictor learns far better than the one
// call of a dispatch loop. The chain ends at the block's sentinel (end_of_block) or after an
// instruction that set cpu.end_block, as every one that jumps does. CPU.rip is the running
// instruction's address throughout, as guest faults need it: the next instruction's RIP and
// next RIP come from its offsets within the block, not from the previous instruction's next
// RIP, so that no instruction waits for the one before it to store that.
// kCanEndBlock false: the handler before works on registers only, so it cannot have set
// end_block (nothing else sets it while a block runs) and the check is left out.
// kSetRip false: the next instruction is RIP-free (Insn::rip_free: it cannot fault and reads
// neither RIP nor next RIP), so its RIP is not stored; it stores the one after it, as every
// instruction does for its successor, and the sentinel is never RIP-free, so CPU.rip is right
// again at the block's end and at every instruction that may need it.
// A block that ends (after a jump, or at its sentinel) calls chain_block(), which returns to the
// run loop or goes on to the next block's threaded code itself (interpreter.cpp).
void chain_block(Cpu& cpu);
template <bool kCanEndBlock = true, bool kSetRip = true>
inline void continue_block(Cpu& cpu, const Insn& insn) {
    if constexpr (kCanEndBlock) {
        if (cpu.end_block) [[unlikely]] {
            cpu.rip = cpu.next_rip;
            cpu.block_done = insn.index + 1u;
            return chain_block(cpu);
        }
    }
    // No wrap-around to apply: a block whose IP would wrap does not run as threaded code.
    const Insn& next = (&insn)[1];
    if constexpr (kSetRip) {
        cpu.rip = cpu.block_rip + next.offset;
        cpu.next_rip = cpu.block_rip + next.end;
    }
    next.thread(cpu, next);
}
template <Handler H, bool kCanEndBlock = true, bool kSetRip = true>
void threaded(Cpu& cpu, const Insn& insn) {
    H(cpu, insn);
    continue_block<kCanEndBlock, kSetRip>(cpu, insn);
}
// The handler H with its threaded forms (for the handlers worth them: exec/forms.hpp, Jcc).
template <Handler H>
constexpr HandlerPair compiled() {
    return {H, &threaded<H>, &threaded<H, true, false>, false};
}
// The same for a handler that only reads and writes registers and flags: it never ends a block,
// never faults and, unless its caller says otherwise (RIP-relative LEA), is RIP-free.
template <Handler H>
constexpr HandlerPair compiled_register_only() {
    return {H, &threaded<H, false>, &threaded<H, false, false>, true};
}
// A handler H with a fast form F (exec/forms.hpp): F does the whole instruction when its memory
// access hits the TLB in 64-bit mode (Cpu::read_if_cached, write_pointer_if_cached) and returns
// false before changing anything otherwise; the threaded code then tail-calls H's. F calls
// nothing, so the common path needs no stack frame, and it does not end the block by a write (it
// never writes a code page: those are never writable through the TLB); only the branch forms
// below end it, by jumping.
using FastHandler = bool (*)(Cpu& cpu, const Insn& insn);
template <Handler H, bool kSetRip>
[[gnu::noinline]] void threaded_slow(Cpu& cpu, const Insn& insn) {
    threaded<H, true, kSetRip>(cpu, insn);
}
template <Handler H, FastHandler F, bool kSetRip = true>
void threaded_fast(Cpu& cpu, const Insn& insn) {
    if (!F(cpu, insn)) [[unlikely]] return threaded_slow<H, kSetRip>(cpu, insn);  // out of line: no frame here
    continue_block<false, kSetRip>(cpu, insn);
}
template <Handler H, FastHandler F>
constexpr HandlerPair compiled_fast() {
    return {H, &threaded_fast<H, F>, &threaded_fast<H, F, false>, false};
}
// The same for a branch whose fast form F jumps (CALL, RET): F sets next RIP and end_block as
// jump_near() does, and the block ends after it.
template <Handler H, FastHandler F, bool kSetRip = true>
void threaded_fast_branch(Cpu& cpu, const Insn& insn) {
    if (!F(cpu, insn)) [[unlikely]] return threaded_slow<H, kSetRip>(cpu, insn);
    continue_block<true, kSetRip>(cpu, insn);
}
template <Handler H, FastHandler F>
constexpr HandlerPair compiled_fast_branch() {
    return {H, &threaded_fast_branch<H, F>, &threaded_fast_branch<H, F, false>, false};
}
// The threaded form of a relative JMP or Jcc whose target is its block's first instruction
// (exec/control.cpp), or nullptr for other instructions.
Handler loop_back_form(const Insn& insn);
// The sentinel after a block's last instruction.
void end_of_block(Cpu& cpu, const Insn& insn);

// Binds Form<0>::run ... Form<15>::run to the mnemonics of conditions 0-15 (O, NO, B, NB, Z, NZ,
// BE, NBE, S, NS, P, NP, L, NL, LE, NLE: SDM vol. 1 app. B): one handler per condition.
template <template <unsigned> class Form, unsigned... kCc>
void bind_conditions(HandlerTable& table, const std::array<ZydisMnemonic, 16>& mnemonics,
                     std::integer_sequence<unsigned, kCc...>) {
    (table.bind(mnemonics[kCc], compiled<&Form<kCc>::run>()), ...);
}
template <template <unsigned> class Form>
void bind_by_condition(HandlerTable& table, const std::array<ZydisMnemonic, 16>& mnemonics) {
    bind_conditions<Form>(table, mnemonics, std::make_integer_sequence<unsigned, 16>{});
}

// Family registration (one function per exec/ file).
void bind_data_movement(HandlerTable& table);
void bind_arith(HandlerTable& table);
void bind_logic(HandlerTable& table);
void bind_shift(HandlerTable& table);
void bind_bit(HandlerTable& table);
void bind_muldiv(HandlerTable& table);
void bind_control(HandlerTable& table);
void bind_stack(HandlerTable& table);
void bind_string(HandlerTable& table);
void bind_flagops(HandlerTable& table);
void bind_io(HandlerTable& table);
void bind_system(HandlerTable& table);
void bind_segment(HandlerTable& table);
void bind_x87(HandlerTable& table);
void bind_sse(HandlerTable& table);

}  // namespace strata::soft
