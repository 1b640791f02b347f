// The x87 FPU, data transfer: FLD/FST/FSTP (m32, m64, m80, ST(i)), FILD/FIST/FISTP/FISTTP
// (m16, m32, m64), FBLD/FBSTP, the constants (FLD1, FLDZ, FLDPI, FLDL2E, FLDL2T, FLDLG2, FLDLN2),
// FXCH, FCMOVcc, FCHS and FABS. Arithmetic, comparisons and the transcendental instructions are in
// x87_arith.cpp, the control instructions (FINIT, FLDCW, FSTENV, FSAVE, ...) in x87_control.cpp.
//
// State:   X87State in cpu.hpp (physical registers as host long double = the x87 80-bit format);
//          the register stack and tags in x87_stack.hpp.
// Design:  conversions that round or may raise an exception run on the host's x87 under the
//          guest's control word (x87_host.hpp); exact ones (80-bit moves, integer loads, FCHS)
//          are done here on the bits.
// Spec:    Intel SDM vol. 1 §8.3.3 (data transfer), §8.5 (exceptions, masked responses), §4.7
//          (BCD), vol. 2 (each instruction's Operation and FPU Flags Affected).
#include <cstring>

#include "cpu/soft/exec/x87_ops.hpp"

namespace strata::soft {

namespace {

using namespace x87;
using x87host::Op;

void clear_c1(X87State& s) { s.fsw = static_cast<uint16_t>(s.fsw & ~fsw::C1); }

long double from_m80(const std::array<uint8_t, 10>& bytes) {
    long double value = 0;
    std::memcpy(&value, bytes.data(), 10);
    return value;
}

std::array<uint8_t, 10> to_m80(long double value) {
    std::array<uint8_t, 10> bytes{};
    std::memcpy(bytes.data(), &value, 10);
    return bytes;
}

// Pushes a value a host operation produced (a converted memory operand or a constant).
void push_host_result(Cpu& cpu, const Insn& insn, const x87host::Result& r) {
    X87State& s = cpu.x87;
    note_instruction(cpu, insn);
    if (!push_room(s)) return;
    bool done = completes(s, r.status, false);
    if (done) push(s, r.st0);
    take_status(s, r.status, fsw::C1, done);
}

// FLD m32fp/m64fp/m80fp, FLD ST(i) (§8.3.3): push. Converting m32/m64 raises #IA for an SNaN and #D
// for a denormal; an 80-bit value loads unchanged.
void fld(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    X87State& s = cpu.x87;
    if (has_memory_operand(insn)) {
        switch (insn.op[0].size) {
            case 4: push_host_result(cpu, insn, run_host(cpu, Op::LoadF32, 0, read_memory<4>(cpu, insn))); return;
            case 8: push_host_result(cpu, insn, run_host(cpu, Op::LoadF64, 0, read_memory<8>(cpu, insn))); return;
            default: {
                long double value = from_m80(read_memory<10>(cpu, insn));
                note_instruction(cpu, insn);
                if (!push_room(s)) return;
                push(s, value);
                clear_c1(s);
                return;
            }
        }
    }
    unsigned i = insn.op[0].reg;
    note_instruction(cpu, insn);
    if (!push_room(s)) return;
    if (empty(s, i)) {
        stack_fault(s, false);
        if (invalid_masked(s)) push(s, indefinite());
        return;
    }
    push(s, st(s, i));
    clear_c1(s);
}

// FST/FSTP to memory or ST(i) (§8.3.3): m32/m64 round by FCW (#O, #U, #P, #IA for an SNaN); an
// empty ST(0) stores the indefinite when #IS is masked.
void store_real(Cpu& cpu, const Insn& insn, bool pops) {
    fpu::x87_prologue(cpu);
    X87State& s = cpu.x87;
    bool underflowed = empty(s, 0);
    if (underflowed && !invalid_masked(s)) {
        note_instruction(cpu, insn);
        stack_fault(s, false);
        return;
    }
    long double value = underflowed ? indefinite() : st(s, 0);
    if (!has_memory_operand(insn)) {
        set_st(s, insn.op[0].reg, value);
        note_instruction(cpu, insn);
        clear_c1(s);
        if (underflowed) stack_fault(s, false);
        if (pops) pop(s);
        return;
    }
    if (insn.op[0].size == 10) {
        write_memory(cpu, insn, to_m80(value));
        note_instruction(cpu, insn);
        clear_c1(s);
        if (underflowed) stack_fault(s, false);
        if (pops) pop(s);
        return;
    }
    bool single = insn.op[0].size == 4;
    x87host::Result r = run_host(cpu, single ? Op::StoreF32 : Op::StoreF64, value);
    bool done = completes(s, r.status, true);
    if (done) {
        if (single) write_memory(cpu, insn, first_bytes<4>(r.memory));
        else write_memory(cpu, insn, first_bytes<8>(r.memory));
    }
    note_instruction(cpu, insn);
    take_status(s, r.status, fsw::C1, done);
    if (underflowed) stack_fault(s, false);
    if (done && pops) pop(s);
}

void fst(Cpu& cpu, const Insn& insn) { store_real(cpu, insn, false); }
void fstp(Cpu& cpu, const Insn& insn) { store_real(cpu, insn, true); }

// FILD m16/m32/m64int: every integer is exact in the 64-bit significand.
void fild(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    unsigned size = insn.op[0].size;
    int64_t value = static_cast<int64_t>(sign_extend(read_operand(cpu, insn, 0), size));
    X87State& s = cpu.x87;
    note_instruction(cpu, insn);
    if (!push_room(s)) return;
    push(s, static_cast<long double>(value));
    clear_c1(s);
}

// FIST/FISTP/FISTTP and FBSTP: ST(0) to an integer or BCD in memory. Out of range or NaN is #IA,
// whose masked response stores the integer (or BCD) indefinite — so does an empty ST(0).
void store_integer(Cpu& cpu, const Insn& insn, Op op, unsigned size, bool pops) {
    fpu::x87_prologue(cpu);
    X87State& s = cpu.x87;
    bool underflowed = empty(s, 0);
    if (underflowed && !invalid_masked(s)) {
        note_instruction(cpu, insn);
        stack_fault(s, false);
        return;
    }
    x87host::Result r = run_host(cpu, op, underflowed ? indefinite() : st(s, 0));
    bool done = completes(s, r.status, true);
    if (done) {
        switch (size) {
            case 2: write_memory(cpu, insn, first_bytes<2>(r.memory)); break;
            case 4: write_memory(cpu, insn, first_bytes<4>(r.memory)); break;
            case 8: write_memory(cpu, insn, first_bytes<8>(r.memory)); break;
            default: write_memory(cpu, insn, first_bytes<10>(r.memory)); break;
        }
    }
    note_instruction(cpu, insn);
    take_status(s, r.status, fsw::C1, done);
    if (underflowed) stack_fault(s, false);
    if (done && pops) pop(s);
}

Op integer_store_op(unsigned size, bool truncate) {
    switch (size) {
        case 2: return truncate ? Op::StoreTruncI16 : Op::StoreI16;
        case 4: return truncate ? Op::StoreTruncI32 : Op::StoreI32;
        default: return truncate ? Op::StoreTruncI64 : Op::StoreI64;
    }
}

void fist(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size;
    store_integer(cpu, insn, integer_store_op(size, false), size, false);
}
void fistp(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size;
    store_integer(cpu, insn, integer_store_op(size, false), size, true);
}
// FISTTP (SSE3): truncates whatever FCW.RC says.
void fisttp(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size;
    store_integer(cpu, insn, integer_store_op(size, true), size, true);
}
void fbstp(Cpu& cpu, const Insn& insn) { store_integer(cpu, insn, Op::StoreBcd, 10, true); }

// FBLD m80bcd: 18 packed BCD digits and a sign; invalid digits give an undefined value, as the
// host's FBLD makes it.
void fbld(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    push_host_result(cpu, insn, run_host(cpu, Op::LoadBcd, 0, read_memory<10>(cpu, insn)));
}

// FLD1 and FLDZ are exact; the others are rounded by FCW.RC from the unit's internal 66-bit
// constants (§8.3.8), as the host's own instructions round them.
template <Op kOp>
void load_constant(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    push_host_result(cpu, insn, run_host(cpu, kOp, 0));
}

template <bool kOne>
void load_exact_constant(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    X87State& s = cpu.x87;
    note_instruction(cpu, insn);
    if (!push_room(s)) return;
    push(s, kOne ? 1.0L : 0.0L);
    clear_c1(s);
}

// FXCH ST(i): a masked underflow exchanges the indefinite for each empty register.
void fxch(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    X87State& s = cpu.x87;
    unsigned i = insn.nops ? insn.op[insn.nops - 1].reg : 1;
    note_instruction(cpu, insn);
    bool empty0 = empty(s, 0), empty_i = empty(s, i);
    if (empty0 || empty_i) {
        stack_fault(s, false);
        if (!invalid_masked(s)) return;
    } else {
        clear_c1(s);
    }
    long double a = empty0 ? indefinite() : st(s, 0);
    long double b = empty_i ? indefinite() : st(s, i);
    set_st(s, 0, b);
    set_st(s, i, a);
}

// FCMOVcc ST(0), ST(i) (P6): the condition is of EFLAGS as Jcc reads it.
enum class FcmovCondition { B, E, BE, U };

template <FcmovCondition kCondition, bool kNegate>
void fcmov(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    X87State& s = cpu.x87;
    unsigned i = insn.op[1].reg;
    note_instruction(cpu, insn);
    if (empty(s, 0) || empty(s, i)) {
        underflow(s, 0, false);
        return;
    }
    bool condition = false;
    switch (kCondition) {
        case FcmovCondition::B: condition = cpu.flags.cf(); break;
        case FcmovCondition::E: condition = cpu.flags.zf(); break;
        case FcmovCondition::BE: condition = cpu.flags.cf() || cpu.flags.zf(); break;
        case FcmovCondition::U: condition = cpu.flags.pf(); break;
    }
    if (condition != kNegate) set_st(s, 0, st(s, i));
}

// FCHS and FABS change the sign bit only: no exception even for a signaling NaN.
template <bool kAbsolute>
void sign_op(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    X87State& s = cpu.x87;
    note_instruction(cpu, insn);
    if (empty(s, 0)) {
        underflow(s, 0, false);
        return;
    }
    Bits b = bits_of(st(s, 0));
    uint16_t sign_exponent = kAbsolute ? static_cast<uint16_t>(b.sign_exponent & 0x7fff)
                                       : static_cast<uint16_t>(b.sign_exponent ^ 0x8000);
    set_st(s, 0, from_bits(b.significand, sign_exponent));
    clear_c1(s);
}

}  // namespace

void bind_x87(HandlerTable& table) {
    table.bind(ZYDIS_MNEMONIC_FLD, &fld);
    table.bind(ZYDIS_MNEMONIC_FST, &fst);
    table.bind(ZYDIS_MNEMONIC_FSTP, &fstp);
    table.bind(ZYDIS_MNEMONIC_FSTPNCE, &fstp);  // D9 D8+i: FSTP ST(i)'s alias
    table.bind(ZYDIS_MNEMONIC_FILD, &fild);
    table.bind(ZYDIS_MNEMONIC_FIST, &fist);
    table.bind(ZYDIS_MNEMONIC_FISTP, &fistp);
    table.bind(ZYDIS_MNEMONIC_FISTTP, &fisttp);
    table.bind(ZYDIS_MNEMONIC_FBLD, &fbld);
    table.bind(ZYDIS_MNEMONIC_FBSTP, &fbstp);
    table.bind(ZYDIS_MNEMONIC_FLD1, &load_exact_constant<true>);
    table.bind(ZYDIS_MNEMONIC_FLDZ, &load_exact_constant<false>);
    table.bind(ZYDIS_MNEMONIC_FLDPI, &load_constant<Op::LoadPi>);
    table.bind(ZYDIS_MNEMONIC_FLDL2E, &load_constant<Op::LoadL2e>);
    table.bind(ZYDIS_MNEMONIC_FLDL2T, &load_constant<Op::LoadL2t>);
    table.bind(ZYDIS_MNEMONIC_FLDLG2, &load_constant<Op::LoadLg2>);
    table.bind(ZYDIS_MNEMONIC_FLDLN2, &load_constant<Op::LoadLn2>);
    table.bind(ZYDIS_MNEMONIC_FXCH, &fxch);
    table.bind(ZYDIS_MNEMONIC_FCMOVB, &fcmov<FcmovCondition::B, false>);
    table.bind(ZYDIS_MNEMONIC_FCMOVE, &fcmov<FcmovCondition::E, false>);
    table.bind(ZYDIS_MNEMONIC_FCMOVBE, &fcmov<FcmovCondition::BE, false>);
    table.bind(ZYDIS_MNEMONIC_FCMOVU, &fcmov<FcmovCondition::U, false>);
    table.bind(ZYDIS_MNEMONIC_FCMOVNB, &fcmov<FcmovCondition::B, true>);
    table.bind(ZYDIS_MNEMONIC_FCMOVNE, &fcmov<FcmovCondition::E, true>);
    table.bind(ZYDIS_MNEMONIC_FCMOVNBE, &fcmov<FcmovCondition::BE, true>);
    table.bind(ZYDIS_MNEMONIC_FCMOVNU, &fcmov<FcmovCondition::U, true>);
    table.bind(ZYDIS_MNEMONIC_FCHS, &sign_op<false>);
    table.bind(ZYDIS_MNEMONIC_FABS, &sign_op<true>);
    x87::bind_x87_arith(table);
    x87::bind_x87_control(table);
}

}  // namespace strata::soft
