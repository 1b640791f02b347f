// Data movement of MMX and SSE-SSE3: MOVAPS/MOVUPS/MOVAPD/MOVUPD/MOVDQA/MOVDQU/LDDQU, the
// non-temporal MOVNTPS/MOVNTPD/MOVNTDQ/MOVNTDQA/MOVNTQ, MOVSS/MOVSD, MOVLPS/MOVHPS/MOVLPD/
// MOVHPD/MOVHLPS/MOVLHPS, MOVD/MOVQ (general registers, memory, MMX and XMM), MOVQ2DQ/MOVDQ2Q,
// MOVMSKPS/MOVMSKPD/PMOVMSKB, MASKMOVQ/MASKMOVDQU, PEXTRW/PINSRW, SHUFPS/SHUFPD,
// MOVDDUP/MOVSHDUP/MOVSLDUP. Non-temporal hints change nothing a guest can see here.
//
// Spec: Intel SDM vol. 1 §9.4.1, §10.4.1, §11.4.1, §12.3.x; vol. 2 (each instruction).
// Missing:  MASKMOVQ/MASKMOVDQU always write through DS (a segment override prefix is not seen:
//           the decoder keeps no implicit operand's segment for rDI).
#include "cpu/soft/exec/simd.hpp"

namespace strata::soft::simd {

namespace {

bool has_mmx_operand(const Insn& insn) {
    for (unsigned i = 0; i < insn.nops; ++i)
        if (insn.op[i].kind == OpKind::Mmx) return true;
    return false;
}

// 128-bit moves; the A forms (and the non-temporal ones) #GP on a misaligned memory operand.
template <bool kAligned>
void move128(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    if (insn.op[0].kind == OpKind::Xmm) cpu.xmm[insn.op[0].reg] = read_xmm_source(cpu, insn, 1, kAligned);
    else write_memory(cpu, insn, cpu.xmm[insn.op[1].reg], 16, kAligned);
}

// MOVSS/MOVSD (SSE2 form): register to register moves the low element only; a load from memory
// zeroes the rest; a store writes the low element.
template <unsigned kBytes>
void move_scalar(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    if (insn.op[0].kind == OpKind::Mem) {
        write_memory(cpu, insn, cpu.xmm[insn.op[1].reg], kBytes);
        return;
    }
    Xmm& d = cpu.xmm[insn.op[0].reg];
    if (insn.op[1].kind == OpKind::Mem) {
        d = read_xmm_source(cpu, insn, 1);
        return;
    }
    std::memcpy(d.data(), cpu.xmm[insn.op[1].reg].data(), kBytes);
}

// MOVLPS/MOVLPD (low quadword) and MOVHPS/MOVHPD (high quadword) to or from m64; the register
// forms of the same opcodes are MOVHLPS and MOVLHPS.
template <bool kHigh>
void move_half(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    if (insn.op[0].kind == OpKind::Mem) {
        Xmm x = xmm_from(lane<uint64_t>(cpu.xmm[insn.op[1].reg], kHigh ? 1 : 0));
        write_memory(cpu, insn, x, 8);
        return;
    }
    uint64_t value = lane<uint64_t>(read_xmm_source(cpu, insn, 1), 0);
    set_lane<uint64_t>(cpu.xmm[insn.op[0].reg], kHigh ? 1 : 0, value);
}

void movhlps(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    set_lane<uint64_t>(cpu.xmm[insn.op[0].reg], 0, lane<uint64_t>(cpu.xmm[insn.op[1].reg], 1));
}

void movlhps(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    set_lane<uint64_t>(cpu.xmm[insn.op[0].reg], 1, lane<uint64_t>(cpu.xmm[insn.op[1].reg], 0));
}

// MOVD/MOVQ in every combination: into an XMM register the value is zero-extended to 128 bits,
// into an MMX register to 64; out of a vector register the low 32 or 64 bits go to a general
// register or memory. MMX register operands put the x87 in MMX mode.
void movd_movq(Cpu& cpu, const Insn& insn) {
    bool mmx = has_mmx_operand(insn);
    if (mmx) fpu::mmx_prologue(cpu);
    else fpu::sse_prologue(cpu);
    const Operand& dst = insn.op[0];
    const Operand& src = insn.op[1];
    uint64_t value = 0;
    switch (src.kind) {
        case OpKind::Xmm: value = lane<uint64_t>(cpu.xmm[src.reg], 0); break;
        case OpKind::Mmx: value = lane<uint64_t>(fpu::read_mmx(cpu, src.reg), 0); break;
        default: value = read_operand(cpu, insn, 1); break;
    }
    unsigned bytes = (dst.kind == OpKind::Xmm || dst.kind == OpKind::Mmx) ? src.size : dst.size;
    if (bytes < 8) value &= LazyFlags::mask(bytes);
    switch (dst.kind) {
        case OpKind::Xmm: cpu.xmm[dst.reg] = xmm_from(value); break;
        case OpKind::Mmx: {
            Mm m{};
            set_lane<uint64_t>(m, 0, value);
            fpu::write_mmx(cpu, dst.reg, m);
            break;
        }
        default: write_operand(cpu, insn, 0, value); break;
    }
    if (mmx) fpu::mmx_transition(cpu);
}

// MOVQ2DQ xmm, mm and MOVDQ2Q mm, xmm (SSE2): both transition to MMX mode.
void movq2dq(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    fpu::x87_check_pending(cpu);
    cpu.xmm[insn.op[0].reg] = xmm_from(lane<uint64_t>(fpu::read_mmx(cpu, insn.op[1].reg), 0));
    fpu::mmx_transition(cpu);
}

void movdq2q(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    fpu::x87_check_pending(cpu);
    Mm m;
    std::memcpy(m.data(), cpu.xmm[insn.op[1].reg].data(), 8);
    fpu::write_mmx(cpu, insn.op[0].reg, m);
    fpu::mmx_transition(cpu);
}

// MOVNTQ m64, mm.
void movntq(Cpu& cpu, const Insn& insn) {
    fpu::mmx_prologue(cpu);
    cpu.write<uint64_t>(insn.mem.seg, effective_address(cpu, insn), lane<uint64_t>(fpu::read_mmx(cpu, insn.op[1].reg), 0));
    fpu::mmx_transition(cpu);
}

// MOVMSKPS/MOVMSKPD r32/r64, xmm: the sign bits of the elements; PMOVMSKB: of every byte.
template <class T>
void move_mask(Cpu& cpu, const Insn& insn) {
    const Operand& src = insn.op[1];
    Xmm v{};
    size_t bytes = 16;
    if (src.kind == OpKind::Mmx) {
        fpu::mmx_prologue(cpu);
        std::memcpy(v.data(), fpu::read_mmx(cpu, src.reg).data(), 8);
        bytes = 8;
    } else {
        fpu::sse_prologue(cpu);
        v = cpu.xmm[src.reg];
    }
    uint64_t mask = 0;
    for (size_t i = 0; i < bytes / sizeof(T); ++i)
        if (lane<T>(v, i) >> (8 * sizeof(T) - 1)) mask |= 1ull << i;
    write_operand(cpu, insn, 0, mask);
    if (src.kind == OpKind::Mmx) fpu::mmx_transition(cpu);
}

// PEXTRW r32/r64 or m16 (SSE4.1 form), mm/xmm, imm8: the word imm8 selects, zero-extended.
void pextrw(Cpu& cpu, const Insn& insn) {
    const Operand& src = insn.op[1];
    uint16_t word = 0;
    if (src.kind == OpKind::Mmx) {
        fpu::mmx_prologue(cpu);
        word = lane<uint16_t>(fpu::read_mmx(cpu, src.reg), insn.imm & 3);
    } else {
        fpu::sse_prologue(cpu);
        word = lane<uint16_t>(cpu.xmm[src.reg], insn.imm & 7);
    }
    write_operand(cpu, insn, 0, word);
    if (src.kind == OpKind::Mmx) fpu::mmx_transition(cpu);
}

// PINSRW mm/xmm, r32/m16, imm8.
void pinsrw(Cpu& cpu, const Insn& insn) {
    const Operand& dst = insn.op[0];
    if (dst.kind == OpKind::Mmx) {
        fpu::mmx_prologue(cpu);
        uint16_t word = static_cast<uint16_t>(read_operand(cpu, insn, 1));
        Mm m = fpu::read_mmx(cpu, dst.reg);
        set_lane<uint16_t>(m, insn.imm & 3, word);
        fpu::write_mmx(cpu, dst.reg, m);
        fpu::mmx_transition(cpu);
        return;
    }
    fpu::sse_prologue(cpu);
    uint16_t word = static_cast<uint16_t>(read_operand(cpu, insn, 1));
    set_lane<uint16_t>(cpu.xmm[dst.reg], insn.imm & 7, word);
}

// SHUFPS: two elements of the destination, then two of the source, chosen by imm8's fields.
void shufps(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    Xmm b = read_xmm_source(cpu, insn, 1);
    Xmm& d = cpu.xmm[insn.op[0].reg];
    Xmm a = d;
    unsigned imm = static_cast<unsigned>(insn.imm);
    set_lane<uint32_t>(d, 0, lane<uint32_t>(a, imm & 3));
    set_lane<uint32_t>(d, 1, lane<uint32_t>(a, (imm >> 2) & 3));
    set_lane<uint32_t>(d, 2, lane<uint32_t>(b, (imm >> 4) & 3));
    set_lane<uint32_t>(d, 3, lane<uint32_t>(b, (imm >> 6) & 3));
}

void shufpd(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    Xmm b = read_xmm_source(cpu, insn, 1);
    Xmm& d = cpu.xmm[insn.op[0].reg];
    Xmm a = d;
    set_lane<uint64_t>(d, 0, lane<uint64_t>(a, insn.imm & 1));
    set_lane<uint64_t>(d, 1, lane<uint64_t>(b, (insn.imm >> 1) & 1));
}

// MOVDDUP (low quadword twice), MOVSLDUP (even doublewords twice), MOVSHDUP (odd ones).
void movddup(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    uint64_t low = lane<uint64_t>(read_xmm_source(cpu, insn, 1), 0);
    cpu.xmm[insn.op[0].reg] = xmm_from(low, low);
}

template <unsigned kOdd>
void move_duplicate(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    Xmm b = read_xmm_source(cpu, insn, 1);
    Xmm& d = cpu.xmm[insn.op[0].reg];
    for (unsigned i = 0; i < 4; i += 2) {
        uint32_t x = lane<uint32_t>(b, i + kOdd);
        set_lane<uint32_t>(d, i, x);
        set_lane<uint32_t>(d, i + 1, x);
    }
}

// MASKMOVQ mm1, mm2 / MASKMOVDQU xmm1, xmm2: the bytes of the first operand whose mask byte (the
// second operand) has its top bit set are stored at DS:rDI; the others are not written.
void mask_move(Cpu& cpu, const Insn& insn) {
    Xmm data{}, mask{};
    unsigned bytes = 16;
    bool mmx = insn.op[0].kind == OpKind::Mmx;
    if (mmx) {
        fpu::mmx_prologue(cpu);
        std::memcpy(data.data(), fpu::read_mmx(cpu, insn.op[0].reg).data(), 8);
        std::memcpy(mask.data(), fpu::read_mmx(cpu, insn.op[1].reg).data(), 8);
        bytes = 8;
    } else {
        fpu::sse_prologue(cpu);
        data = cpu.xmm[insn.op[0].reg];
        mask = cpu.xmm[insn.op[1].reg];
    }
    uint64_t address_mask = LazyFlags::mask(insn.asize);
    uint64_t base = cpu.gpr[7] & address_mask;
    for (unsigned i = 0; i < bytes; ++i)
        if (mask[i] & 0x80) cpu.write<uint8_t>(DS, (base + i) & address_mask, data[i]);
    if (mmx) fpu::mmx_transition(cpu);
}

}  // namespace

void bind_sse_moves(HandlerTable& table) {
    for (auto m : {ZYDIS_MNEMONIC_MOVAPS, ZYDIS_MNEMONIC_MOVAPD, ZYDIS_MNEMONIC_MOVDQA, ZYDIS_MNEMONIC_MOVNTPS,
                   ZYDIS_MNEMONIC_MOVNTPD, ZYDIS_MNEMONIC_MOVNTDQ, ZYDIS_MNEMONIC_MOVNTDQA})
        table.bind(m, &move128<true>);
    for (auto m : {ZYDIS_MNEMONIC_MOVUPS, ZYDIS_MNEMONIC_MOVUPD, ZYDIS_MNEMONIC_MOVDQU, ZYDIS_MNEMONIC_LDDQU})
        table.bind(m, &move128<false>);
    table.bind(ZYDIS_MNEMONIC_MOVSS, &move_scalar<4>);
    table.bind(ZYDIS_MNEMONIC_MOVLPS, &move_half<false>);
    table.bind(ZYDIS_MNEMONIC_MOVLPD, &move_half<false>);
    table.bind(ZYDIS_MNEMONIC_MOVHPS, &move_half<true>);
    table.bind(ZYDIS_MNEMONIC_MOVHPD, &move_half<true>);
    table.bind(ZYDIS_MNEMONIC_MOVHLPS, &movhlps);
    table.bind(ZYDIS_MNEMONIC_MOVLHPS, &movlhps);
    table.bind(ZYDIS_MNEMONIC_MOVD, &movd_movq);
    table.bind(ZYDIS_MNEMONIC_MOVQ, &movd_movq);
    table.bind(ZYDIS_MNEMONIC_MOVQ2DQ, &movq2dq);
    table.bind(ZYDIS_MNEMONIC_MOVDQ2Q, &movdq2q);
    table.bind(ZYDIS_MNEMONIC_MOVNTQ, &movntq);
    table.bind(ZYDIS_MNEMONIC_MOVMSKPS, &move_mask<uint32_t>);
    table.bind(ZYDIS_MNEMONIC_MOVMSKPD, &move_mask<uint64_t>);
    table.bind(ZYDIS_MNEMONIC_PMOVMSKB, &move_mask<uint8_t>);
    table.bind(ZYDIS_MNEMONIC_PEXTRW, &pextrw);
    table.bind(ZYDIS_MNEMONIC_PINSRW, &pinsrw);
    table.bind(ZYDIS_MNEMONIC_SHUFPS, &shufps);
    table.bind(ZYDIS_MNEMONIC_SHUFPD, &shufpd);
    table.bind(ZYDIS_MNEMONIC_MOVDDUP, &movddup);
    table.bind(ZYDIS_MNEMONIC_MOVSLDUP, &move_duplicate<0>);
    table.bind(ZYDIS_MNEMONIC_MOVSHDUP, &move_duplicate<1>);
    table.bind(ZYDIS_MNEMONIC_MASKMOVQ, &mask_move);
    table.bind(ZYDIS_MNEMONIC_MASKMOVDQU, &mask_move);
}

// MOVSD's SSE2 form (its mnemonic is also the string instruction's).
void movsd_xmm(Cpu& cpu, const Insn& insn) { move_scalar<8>(cpu, insn); }

}  // namespace strata::soft::simd
