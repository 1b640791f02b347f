// Operand shapes compiled in. Most integer instructions a guest runs have two operands of one
// of five shapes — register or memory destination; register, immediate or memory source — at a
// width fixed by the encoding. A family's generic handler reads its operands through
// read_operand/write_operand, which switch on kind and width at every execution; for the common
// shapes a family also registers a specializer (HandlerTable::specialize) that, once at decode
// time, picks a handler instantiated for the instruction's shape and width. The semantics stay
// in one place: the family's operation type (an `Op` with compute() and flags()) serves both.
//
// Covered (two-operand forms): operand 0 a general register other than AH-BH or the memory operand; operand 1 a
// general register other than AH-BH, an immediate, or the memory operand under a register
// destination; 1, 2, 4 or 8 bytes; no LOCK prefix (locked forms keep the generic handler, which
// does the atomic update or the #UD).
#pragma once

#include <cstring>
#include <optional>

#include "cpu/soft/exec/alu.hpp"

namespace strata::soft {

enum class Shape : uint8_t { RegReg, RegImm, RegMem, MemReg, MemImm };

inline bool plain_gpr(const Operand& op) { return op.kind == OpKind::Gpr && !op.high8; }

// The shape of operands 0 and 1, when the templates cover it (see the top of this file).
inline std::optional<Shape> binary_shape(const Insn& insn) {
    if (insn.nops < 2 || (insn.prefixes & prefix::Lock)) return std::nullopt;
    const Operand& dst = insn.op[0];
    const Operand& src = insn.op[1];
    if (dst.size != 1 && dst.size != 2 && dst.size != 4 && dst.size != 8) return std::nullopt;
    bool dst_reg = plain_gpr(dst);
    if (!dst_reg && dst.kind != OpKind::Mem) return std::nullopt;
    if (src.kind == OpKind::Imm) return dst_reg ? Shape::RegImm : Shape::MemImm;
    if (plain_gpr(src) && src.size == dst.size) return dst_reg ? Shape::RegReg : Shape::MemReg;
    if (src.kind == OpKind::Mem && dst_reg && src.size == dst.size) return Shape::RegMem;
    return std::nullopt;
}

constexpr bool memory_destination(Shape s) { return s == Shape::MemReg || s == Shape::MemImm; }

template <class T>
T gpr(const Cpu& cpu, unsigned r) {
    return static_cast<T>(cpu.gpr[r]);
}

// A register write as hardware does it: 32-bit values zero-extend, 8- and 16-bit ones merge.
template <class T>
void set_gpr(Cpu& cpu, unsigned r, T value) {
    if constexpr (sizeof(T) >= 4) {
        cpu.gpr[r] = value;
    } else {
        constexpr uint64_t kMask = LazyFlags::mask(sizeof(T));
        cpu.gpr[r] = (cpu.gpr[r] & ~kMask) | value;
    }
}

// Operand 1 of shape S at width T (immediates come sign-extended from Zydis: truncate).
template <class T, Shape S>
[[gnu::always_inline]] inline T source(Cpu& cpu, const Insn& insn) {
    if constexpr (S == Shape::RegReg || S == Shape::MemReg) return gpr<T>(cpu, insn.op[1].reg);
    else if constexpr (S == Shape::RegImm || S == Shape::MemImm) return static_cast<T>(insn.imm);
    else return cpu.read<T>(insn.mem.seg, effective_address(cpu, insn));
}

// The handler Form<T, S>::run (and its threaded form) for the instruction's shape and operand-0
// width, or none.
template <template <class, Shape> class Form, class T>
HandlerPair form_for_shape(Shape s) {
    switch (s) {
        case Shape::RegReg: return compiled_register_only<&Form<T, Shape::RegReg>::run>();
        case Shape::RegImm: return compiled_register_only<&Form<T, Shape::RegImm>::run>();
        case Shape::RegMem: return compiled_fast<&Form<T, Shape::RegMem>::run, &Form<T, Shape::RegMem>::run_cached>();
        case Shape::MemReg: return compiled_fast<&Form<T, Shape::MemReg>::run, &Form<T, Shape::MemReg>::run_cached>();
        case Shape::MemImm: return compiled_fast<&Form<T, Shape::MemImm>::run, &Form<T, Shape::MemImm>::run_cached>();
    }
    return {};
}

template <template <class, Shape> class Form>
HandlerPair select_form(const Insn& insn) {
    std::optional<Shape> shape = binary_shape(insn);
    if (!shape) return {};
    switch (insn.op[0].size) {
        case 1: return form_for_shape<Form, uint8_t>(*shape);
        case 2: return form_for_shape<Form, uint16_t>(*shape);
        case 4: return form_for_shape<Form, uint32_t>(*shape);
        default: return form_for_shape<Form, uint64_t>(*shape);
    }
}

// A two-operand ALU instruction: dst = Op::compute(dst, src) (written back when Op::kWrites),
// then Op::flags(cpu, size, result, dst, src). The generic handler and the compiled forms.
template <class Op>
void binary_handler(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size;
    uint64_t src = operand_at_width(cpu, insn, 1, size);
    uint64_t mask = LazyFlags::mask(size);
    uint64_t dst;
    if constexpr (Op::kWrites) dst = modify_operand(cpu, insn, 0, [src](uint64_t d) { return Op::compute(d, src); });
    else dst = read_operand(cpu, insn, 0);
    Op::flags(cpu, size, Op::compute(dst, src) & mask, dst, src);
}

template <class Op>
struct Binary {
    template <class T, Shape S>
    struct Form {
        [[gnu::always_inline]] static void run(Cpu& cpu, const Insn& insn) {
            T src = source<T, S>(cpu, insn);
            T dst, result;
            if constexpr (memory_destination(S)) {
                uint64_t address = cpu.linear(insn.mem.seg, effective_address(cpu, insn), sizeof(T),
                                              Op::kWrites ? Access::Write : Access::Read);
                if constexpr (Op::kWrites) {
                    dst = static_cast<T>(detail::read_for_write(cpu, address, sizeof(T)));
                    result = static_cast<T>(Op::compute(dst, src));
                    cpu.write_linear<T>(address, result);
                } else {
                    dst = cpu.read_linear<T>(address);
                    result = static_cast<T>(Op::compute(dst, src));
                }
            } else {
                dst = gpr<T>(cpu, insn.op[0].reg);
                result = static_cast<T>(Op::compute(dst, src));
                if constexpr (Op::kWrites) set_gpr<T>(cpu, insn.op[0].reg, result);
            }
            Op::flags(cpu, sizeof(T), result, dst, src);
        }
        // The memory shapes when the access hits the TLB (exec/exec.hpp threaded_fast).
        [[gnu::always_inline]] static bool run_cached(Cpu& cpu, const Insn& insn) {
            T src, dst, result;
            if constexpr (S == Shape::RegMem) {
                if (!cpu.read_if_cached<T>(insn.mem.seg, effective_address(cpu, insn), src)) return false;
                dst = gpr<T>(cpu, insn.op[0].reg);
                result = static_cast<T>(Op::compute(dst, src));
                if constexpr (Op::kWrites) set_gpr<T>(cpu, insn.op[0].reg, result);
            } else if constexpr (Op::kWrites) {
                void* host = cpu.write_pointer_if_cached<T>(insn.mem.seg, effective_address(cpu, insn));
                if (!host) return false;
                src = source<T, S>(cpu, insn);
                std::memcpy(&dst, host, sizeof(T));
                result = static_cast<T>(Op::compute(dst, src));
                std::memcpy(host, &result, sizeof(T));
            } else {
                if (!cpu.read_if_cached<T>(insn.mem.seg, effective_address(cpu, insn), dst)) return false;
                src = source<T, S>(cpu, insn);
                result = static_cast<T>(Op::compute(dst, src));
            }
            Op::flags(cpu, sizeof(T), result, dst, src);
            return true;
        }
    };
    static HandlerPair specialize(const Insn& insn) { return select_form<Form>(insn); }
};

// A one-operand instruction on a register (INC, DEC, NEG, NOT): reg = Op::compute(reg), then
// Op::flags(cpu, size, result, old); generic() is the form for everything else.
template <class Op>
struct Unary {
    template <class T>
    [[gnu::always_inline]] static void run(Cpu& cpu, const Insn& insn) {
        T old = gpr<T>(cpu, insn.op[0].reg);
        auto result = static_cast<T>(Op::compute(old));
        set_gpr<T>(cpu, insn.op[0].reg, result);
        Op::flags(cpu, sizeof(T), result, old);
    }
    // The generic form (memory, locked, high-byte registers).
    static void generic(Cpu& cpu, const Insn& insn) {
        unsigned size = insn.op[0].size;
        uint64_t old = modify_operand(cpu, insn, 0, [](uint64_t d) { return Op::compute(d); });
        Op::flags(cpu, size, Op::compute(old) & LazyFlags::mask(size), old);
    }
    static HandlerPair specialize(const Insn& insn) {
        if (insn.nops < 1 || !plain_gpr(insn.op[0]) || (insn.prefixes & prefix::Lock)) return {};
        switch (insn.op[0].size) {
            case 1: return compiled_register_only<&run<uint8_t>>();
            case 2: return compiled_register_only<&run<uint16_t>>();
            case 4: return compiled_register_only<&run<uint32_t>>();
            case 8: return compiled_register_only<&run<uint64_t>>();
            default: return {};
        }
    }
};

}  // namespace strata::soft
