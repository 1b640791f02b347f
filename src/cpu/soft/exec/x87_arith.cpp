// The x87 FPU, computation: FADD/FSUB/FSUBR/FMUL/FDIV/FDIVR with their P and FI forms; FCOM,
// FCOMP, FCOMPP, FUCOM*, FICOM*, FTST, FXAM; FCOMI/FCOMIP/FUCOMI/FUCOMIP (EFLAGS); FSQRT, FRNDINT,
// FSCALE, FPREM, FPREM1, FXTRACT; F2XM1, FYL2X, FYL2XP1, FPTAN, FPATAN, FSIN, FCOS, FSINCOS.
//
// Each runs the host's own instruction under the guest's FCW (x87_host.hpp), so precision and
// rounding control, the exception flags, C0-C3 and the transcendental results are the hardware's.
// This file keeps what the host cannot know: the guest's register stack, its tags and stack
// faults, and which destination an operation writes.
// Spec: Intel SDM vol. 1 §8.3.5-§8.3.10, §8.5; vol. 2 (each instruction's Operation, FPU Flags
//       Affected and Floating-Point Exceptions).
#include "cpu/soft/exec/x87_ops.hpp"

namespace strata::soft::x87 {

namespace {

using x87host::Op;

constexpr uint16_t kAllConditions = fsw::C0 | fsw::C1 | fsw::C2 | fsw::C3;

enum class Arith : uint8_t { Add, Sub, Subr, Mul, Div, Divr };
enum class Source : uint8_t { Register, F32, F64, I16, I32 };

// x87host::Op lists each arithmetic operation for each source in the same order.
Op arith_op(Arith kind, Source source) {
    return static_cast<Op>(static_cast<unsigned>(source) * 6 + static_cast<unsigned>(kind));
}

Source memory_source(const Insn& insn, bool integer) {
    if (integer) return insn.op[0].size == 2 ? Source::I16 : Source::I32;
    return insn.op[0].size == 4 ? Source::F32 : Source::F64;
}

// FADD m32fp/m64fp, FIADD m16int/m32int: ST(0) = ST(0) op [mem]. FADD ST(0), ST(i) and
// FADD ST(i), ST(0): dest = dest op src; the P forms pop afterwards.
template <Arith kKind, bool kInteger, bool kPop>
void arith(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    X87State& s = cpu.x87;
    x87host::Result r;
    unsigned dest = 0;
    if (has_memory_operand(insn)) {
        Source source = memory_source(insn, kInteger);
        unsigned size = insn.op[0].size;
        std::array<uint8_t, 8> memory{};
        if (size == 8) memory = read_memory<8>(cpu, insn);
        else if (size == 4) std::copy_n(read_memory<4>(cpu, insn).begin(), 4, memory.begin());
        else std::copy_n(read_memory<2>(cpu, insn).begin(), 2, memory.begin());
        note_instruction(cpu, insn);
        if (empty(s, 0)) {
            underflow(s, 0, false);
            return;
        }
        r = run_host(cpu, arith_op(kKind, source), st(s, 0), memory);
    } else {
        // Two ST operands (Zydis shows FADDP's implicit ST(1), ST(0) too).
        dest = insn.nops >= 2 ? insn.op[0].reg : 1;
        unsigned src = insn.nops >= 2 ? insn.op[1].reg : 0;
        note_instruction(cpu, insn);
        if (empty(s, dest) || empty(s, src)) {
            underflow(s, dest, kPop);
            return;
        }
        r = run_host(cpu, arith_op(kKind, Source::Register), st(s, dest), st(s, src));
    }
    bool done = completes(s, r.status, false);
    if (done) set_st(s, dest, r.st0);
    take_status(s, r.status, fsw::C1, done);
    if (done && kPop) pop(s);
}

// C3, C2, C0 after a comparison (table 8-6): 111 for unordered.
void set_unordered(X87State& s) {
    s.fsw = static_cast<uint16_t>((s.fsw & ~kAllConditions) | fsw::C0 | fsw::C2 | fsw::C3);
}

// FCOM/FCOMP/FCOMPP, FUCOM/FUCOMP/FUCOMPP (quiet: only an SNaN is invalid), FICOM/FICOMP.
template <bool kQuiet, unsigned kPops, bool kInteger>
void compare(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    X87State& s = cpu.x87;
    x87host::Result r;
    if (has_memory_operand(insn)) {
        Source source = memory_source(insn, kInteger);
        std::array<uint8_t, 8> memory{};
        if (insn.op[0].size == 8) memory = read_memory<8>(cpu, insn);
        else if (insn.op[0].size == 4) std::copy_n(read_memory<4>(cpu, insn).begin(), 4, memory.begin());
        else std::copy_n(read_memory<2>(cpu, insn).begin(), 2, memory.begin());
        note_instruction(cpu, insn);
        if (empty(s, 0)) {
            stack_fault(s, false);
            if (!invalid_masked(s)) return;
            set_unordered(s);
            for (unsigned i = 0; i < kPops; ++i) pop(s);
            return;
        }
        Op op = source == Source::F32 ? Op::ComF32 : source == Source::F64 ? Op::ComF64
              : source == Source::I16 ? Op::ComI16 : Op::ComI32;
        r = run_host(cpu, op, st(s, 0), memory);
    } else {
        unsigned src = insn.nops ? insn.op[insn.nops - 1].reg : 1;
        note_instruction(cpu, insn);
        if (empty(s, 0) || empty(s, src)) {
            stack_fault(s, false);
            if (!invalid_masked(s)) return;
            set_unordered(s);
            for (unsigned i = 0; i < kPops; ++i) pop(s);
            return;
        }
        r = run_host(cpu, kQuiet ? Op::Ucom : Op::Com, st(s, 0), st(s, src));
    }
    bool done = completes(s, r.status, false);
    take_status(s, r.status, kAllConditions, done);
    if (done)
        for (unsigned i = 0; i < kPops; ++i) pop(s);
}

// FCOMI/FCOMIP/FUCOMI/FUCOMIP ST(0), ST(i) (P6): ZF, PF, CF as C3, C2, C0 would be; OF, SF, AF
// cleared; C1 cleared in FSW, whose C0, C2, C3 stay.
template <bool kQuiet, bool kPop>
void compare_eflags(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    X87State& s = cpu.x87;
    unsigned src = insn.op[insn.nops - 1].reg;
    note_instruction(cpu, insn);
    auto set_eflags = [&](bool zf, bool pf, bool cf) {
        cpu.flags.materialize();
        cpu.flags.put(rflags::OF | rflags::SF | rflags::AF, false);
        cpu.flags.put(rflags::ZF, zf);
        cpu.flags.put(rflags::PF, pf);
        cpu.flags.put(rflags::CF, cf);
    };
    if (empty(s, 0) || empty(s, src)) {
        stack_fault(s, false);
        if (!invalid_masked(s)) return;
        set_eflags(true, true, true);
        if (kPop) pop(s);
        return;
    }
    x87host::Result r = run_host(cpu, kQuiet ? Op::Ucom : Op::Com, st(s, 0), st(s, src));
    bool done = completes(s, r.status, false);
    take_status(s, r.status, fsw::C1, done);
    if (!done) return;
    set_eflags((r.status & fsw::C3) != 0, (r.status & fsw::C2) != 0, (r.status & fsw::C0) != 0);
    if (kPop) pop(s);
}

// FTST: ST(0) against +0.0.
void ftst(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    X87State& s = cpu.x87;
    note_instruction(cpu, insn);
    if (empty(s, 0)) {
        stack_fault(s, false);
        if (invalid_masked(s)) set_unordered(s);
        return;
    }
    x87host::Result r = run_host(cpu, Op::Tst, st(s, 0));
    take_status(s, r.status, kAllConditions, completes(s, r.status, false));
}

// FXAM classifies ST(0) (table 8-7); an empty register is C3=1, C2=0, C0=1, and C1 is the sign in
// every case. It raises nothing.
void fxam(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    X87State& s = cpu.x87;
    note_instruction(cpu, insn);
    if (empty(s, 0)) {
        bool negative = (bits_of(st(s, 0)).sign_exponent & 0x8000) != 0;
        s.fsw = static_cast<uint16_t>((s.fsw & ~kAllConditions) | fsw::C3 | fsw::C0 | (negative ? fsw::C1 : 0));
        return;
    }
    x87host::Result r = run_host(cpu, Op::Xam, st(s, 0));
    take_status(s, r.status, kAllConditions, true);
}

// ST(0) = f(ST(0)) or f(ST(0), ST(1)): FSQRT, FRNDINT, F2XM1, FSIN, FCOS (C2 = 1 and ST(0) unchanged
// when |x| >= 2^63), FSCALE, FPREM and FPREM1 (C0, C3, C1 = quotient bits, C2 = incomplete).
template <Op kOp, bool kBinary, uint16_t kConditions>
void unary(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    X87State& s = cpu.x87;
    note_instruction(cpu, insn);
    if (empty(s, 0) || (kBinary && empty(s, 1))) {
        underflow(s, 0, false);
        return;
    }
    x87host::Result r = run_host(cpu, kOp, st(s, 0), kBinary ? st(s, 1) : 0.0L);
    bool done = completes(s, r.status, false);
    if (done) set_st(s, 0, r.st0);
    take_status(s, r.status, kConditions, done);
}

// ST(1) = f(ST(1), ST(0)) and pop: FPATAN, FYL2X, FYL2XP1.
template <Op kOp>
void binary_pop(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    X87State& s = cpu.x87;
    note_instruction(cpu, insn);
    if (empty(s, 0) || empty(s, 1)) {
        underflow(s, 1, true);
        return;
    }
    x87host::Result r = run_host(cpu, kOp, st(s, 0), st(s, 1));
    bool done = completes(s, r.status, false);
    take_status(s, r.status, fsw::C1, done);
    if (!done) return;
    set_st(s, 1, r.st0);
    pop(s);
}

// Replace ST(0) and push: FPTAN (tan, then 1.0), FXTRACT (exponent, then significand), FSINCOS
// (sine, then cosine). The masked response to a stack fault leaves the indefinite in both.
template <Op kOp, uint16_t kConditions>
void replace_and_push(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    X87State& s = cpu.x87;
    note_instruction(cpu, insn);
    if (empty(s, 0) || !empty(s, 7)) {
        stack_fault(s, !empty(s, 0));
        if (invalid_masked(s)) {
            set_st(s, 0, indefinite());
            push(s, indefinite());
        }
        return;
    }
    x87host::Result r = run_host(cpu, kOp, st(s, 0));
    bool done = completes(s, r.status, false);
    take_status(s, r.status, kConditions, done);
    if (!done || (kConditions & fsw::C2 & r.status)) return;  // out of range: nothing pushed
    set_st(s, 0, r.st1);
    push(s, r.st0);
}

}  // namespace

void bind_x87_arith(HandlerTable& table) {
    table.bind(ZYDIS_MNEMONIC_FADD, &arith<Arith::Add, false, false>);
    table.bind(ZYDIS_MNEMONIC_FADDP, &arith<Arith::Add, false, true>);
    table.bind(ZYDIS_MNEMONIC_FIADD, &arith<Arith::Add, true, false>);
    table.bind(ZYDIS_MNEMONIC_FSUB, &arith<Arith::Sub, false, false>);
    table.bind(ZYDIS_MNEMONIC_FSUBP, &arith<Arith::Sub, false, true>);
    table.bind(ZYDIS_MNEMONIC_FISUB, &arith<Arith::Sub, true, false>);
    table.bind(ZYDIS_MNEMONIC_FSUBR, &arith<Arith::Subr, false, false>);
    table.bind(ZYDIS_MNEMONIC_FSUBRP, &arith<Arith::Subr, false, true>);
    table.bind(ZYDIS_MNEMONIC_FISUBR, &arith<Arith::Subr, true, false>);
    table.bind(ZYDIS_MNEMONIC_FMUL, &arith<Arith::Mul, false, false>);
    table.bind(ZYDIS_MNEMONIC_FMULP, &arith<Arith::Mul, false, true>);
    table.bind(ZYDIS_MNEMONIC_FIMUL, &arith<Arith::Mul, true, false>);
    table.bind(ZYDIS_MNEMONIC_FDIV, &arith<Arith::Div, false, false>);
    table.bind(ZYDIS_MNEMONIC_FDIVP, &arith<Arith::Div, false, true>);
    table.bind(ZYDIS_MNEMONIC_FIDIV, &arith<Arith::Div, true, false>);
    table.bind(ZYDIS_MNEMONIC_FDIVR, &arith<Arith::Divr, false, false>);
    table.bind(ZYDIS_MNEMONIC_FDIVRP, &arith<Arith::Divr, false, true>);
    table.bind(ZYDIS_MNEMONIC_FIDIVR, &arith<Arith::Divr, true, false>);

    table.bind(ZYDIS_MNEMONIC_FCOM, &compare<false, 0, false>);
    table.bind(ZYDIS_MNEMONIC_FCOMP, &compare<false, 1, false>);
    table.bind(ZYDIS_MNEMONIC_FCOMPP, &compare<false, 2, false>);
    table.bind(ZYDIS_MNEMONIC_FUCOM, &compare<true, 0, false>);
    table.bind(ZYDIS_MNEMONIC_FUCOMP, &compare<true, 1, false>);
    table.bind(ZYDIS_MNEMONIC_FUCOMPP, &compare<true, 2, false>);
    table.bind(ZYDIS_MNEMONIC_FICOM, &compare<false, 0, true>);
    table.bind(ZYDIS_MNEMONIC_FICOMP, &compare<false, 1, true>);
    table.bind(ZYDIS_MNEMONIC_FCOMI, &compare_eflags<false, false>);
    table.bind(ZYDIS_MNEMONIC_FCOMIP, &compare_eflags<false, true>);
    table.bind(ZYDIS_MNEMONIC_FUCOMI, &compare_eflags<true, false>);
    table.bind(ZYDIS_MNEMONIC_FUCOMIP, &compare_eflags<true, true>);
    table.bind(ZYDIS_MNEMONIC_FTST, &ftst);
    table.bind(ZYDIS_MNEMONIC_FXAM, &fxam);

    table.bind(ZYDIS_MNEMONIC_FSQRT, &unary<Op::Sqrt, false, fsw::C1>);
    table.bind(ZYDIS_MNEMONIC_FRNDINT, &unary<Op::Rndint, false, fsw::C1>);
    table.bind(ZYDIS_MNEMONIC_F2XM1, &unary<Op::F2xm1, false, fsw::C1>);
    table.bind(ZYDIS_MNEMONIC_FSIN, &unary<Op::Sin, false, fsw::C1 | fsw::C2>);
    table.bind(ZYDIS_MNEMONIC_FCOS, &unary<Op::Cos, false, fsw::C1 | fsw::C2>);
    table.bind(ZYDIS_MNEMONIC_FSCALE, &unary<Op::Scale, true, fsw::C1>);
    table.bind(ZYDIS_MNEMONIC_FPREM, &unary<Op::Prem, true, kAllConditions>);
    table.bind(ZYDIS_MNEMONIC_FPREM1, &unary<Op::Prem1, true, kAllConditions>);
    table.bind(ZYDIS_MNEMONIC_FPATAN, &binary_pop<Op::Patan>);
    table.bind(ZYDIS_MNEMONIC_FYL2X, &binary_pop<Op::Yl2x>);
    table.bind(ZYDIS_MNEMONIC_FYL2XP1, &binary_pop<Op::Yl2xp1>);
    table.bind(ZYDIS_MNEMONIC_FPTAN, &replace_and_push<Op::Ptan, fsw::C1 | fsw::C2>);
    table.bind(ZYDIS_MNEMONIC_FXTRACT, &replace_and_push<Op::Xtract, fsw::C1>);
    table.bind(ZYDIS_MNEMONIC_FSINCOS, &replace_and_push<Op::Sincos, fsw::C1 | fsw::C2>);
}

}  // namespace strata::soft::x87
