// The x87 FPU, control: FNINIT, FNCLEX, FLDCW, FNSTCW, FNSTSW (AX and m16), FLDENV, FNSTENV,
// FNSAVE, FRSTOR, FFREE, FFREEP, FINCSTP, FDECSTP, FNOP, FWAIT, and the 8087/287 leftovers
// (FENI, FDISI, FSETPM: no operation since the 387). The waiting forms FINIT, FCLEX, FSTCW, FSTSW,
// FSTENV and FSAVE are FWAIT followed by these, two instructions to the decoder.
//
// The environment image (FSTENV/FLDENV, the first part of FSAVE/FRSTOR) has four layouts: 14 or
// 28 bytes by operand size, and in real and virtual-8086 mode the instruction and data pointers
// as 20-bit linear addresses split around FOP (SDM vol. 1 §8.1.10, figures 8-9 to 8-12).
// Spec: Intel SDM vol. 1 §8.1.10, §8.3.12, §8.6; vol. 2 (FINIT, FSTENV, FSAVE, FRSTOR, FWAIT).
#include <array>

#include "cpu/soft/exec/x87_ops.hpp"

namespace strata::soft::x87 {

namespace {

constexpr size_t kRegistersSize = 80;  // eight 10-byte registers in stack order

// FNINIT (and FNSAVE after saving): the state FINIT's Operation section lists.
void initialize(X87State& s) {
    s.fcw = 0x37f;
    s.fsw = 0;
    s.ftw = 0xffff;
    s.fip = s.fdp = 0;
    s.fop = 0;
    s.fcs = s.fds = 0;
}

// The tag word as FSTENV and FSAVE store it: empty stays empty, the others are computed from the
// register contents (§8.1.7).
uint16_t stored_tag_word(const X87State& s) {
    uint16_t word = 0;
    for (unsigned r = 0; r < 8; ++r) {
        Tag t = tag(s, r) == kEmpty ? kEmpty : tag_of(s.st[r]);
        word = static_cast<uint16_t>(word | (static_cast<unsigned>(t) << (2 * r)));
    }
    return word;
}

// After FLDENV/FRSTOR load a tag word: only "empty" is taken from it, the rest from the contents.
void retag(X87State& s, uint16_t loaded) {
    s.ftw = 0;
    for (unsigned r = 0; r < 8; ++r)
        set_tag(s, r, ((loaded >> (2 * r)) & 3) == kEmpty ? kEmpty : tag_of(s.st[r]));
}

bool real_address_layout(const Cpu& cpu) { return !cpu.protected_mode || cpu.v86; }
size_t environment_size(const Insn& insn) { return insn.osize == 2 ? 14 : 28; }

void put16(uint8_t* at, uint32_t value) {
    at[0] = static_cast<uint8_t>(value);
    at[1] = static_cast<uint8_t>(value >> 8);
}
void put32(uint8_t* at, uint32_t value) {
    put16(at, value);
    put16(at + 2, value >> 16);
}
uint32_t get16(const uint8_t* at) { return at[0] | (static_cast<uint32_t>(at[1]) << 8); }
uint32_t get32(const uint8_t* at) { return get16(at) | (get16(at + 2) << 16); }

// Writes the environment into `out` (14 or 28 bytes).
void store_environment(const Cpu& cpu, const Insn& insn, uint8_t* out) {
    const X87State& s = cpu.x87;
    uint16_t tags = stored_tag_word(s);
    bool wide = environment_size(insn) == 28;
    if (!real_address_layout(cpu)) {
        if (wide) {
            put32(out + 0, 0xffff'0000u | s.fcw);
            put32(out + 4, 0xffff'0000u | s.fsw);
            put32(out + 8, 0xffff'0000u | tags);
            put32(out + 12, static_cast<uint32_t>(s.fip));
            put32(out + 16, s.fcs | (static_cast<uint32_t>(s.fop & 0x7ff) << 16));
            put32(out + 20, static_cast<uint32_t>(s.fdp));
            put32(out + 24, 0xffff'0000u | s.fds);
        } else {
            put16(out + 0, s.fcw);
            put16(out + 2, s.fsw);
            put16(out + 4, tags);
            put16(out + 6, static_cast<uint32_t>(s.fip));
            put16(out + 8, s.fcs);
            put16(out + 10, static_cast<uint32_t>(s.fdp));
            put16(out + 12, s.fds);
        }
        return;
    }
    // Real-address layouts hold 20-bit linear pointers (CS/DS base + offset).
    uint32_t ip = static_cast<uint32_t>((static_cast<uint64_t>(s.fcs) << 4) + s.fip);
    uint32_t dp = static_cast<uint32_t>((static_cast<uint64_t>(s.fds) << 4) + s.fdp);
    if (wide) {
        put32(out + 0, 0xffff'0000u | s.fcw);
        put32(out + 4, 0xffff'0000u | s.fsw);
        put32(out + 8, 0xffff'0000u | tags);
        put32(out + 12, 0xffff'0000u | (ip & 0xffff));
        put32(out + 16, ((ip & 0xffff'0000u) >> 4) | (s.fop & 0x7ffu));
        put32(out + 20, 0xffff'0000u | (dp & 0xffff));
        put32(out + 24, (dp & 0xffff'0000u) >> 4);
    } else {
        put16(out + 0, s.fcw);
        put16(out + 2, s.fsw);
        put16(out + 4, tags);
        put16(out + 6, ip & 0xffff);
        put16(out + 8, ((ip & 0xf'0000u) >> 4) | (s.fop & 0x7ffu));
        put16(out + 10, dp & 0xffff);
        put16(out + 12, (dp & 0xf'0000u) >> 4);
    }
}

// Loads the environment from `in`; returns the tag word it held (applied by the caller once the
// registers are in place).
uint16_t load_environment(Cpu& cpu, const Insn& insn, const uint8_t* in) {
    X87State& s = cpu.x87;
    bool wide = environment_size(insn) == 28;
    uint16_t tags = 0;
    if (wide) {
        s.fcw = static_cast<uint16_t>(get16(in + 0));
        s.fsw = static_cast<uint16_t>(get16(in + 4));
        tags = static_cast<uint16_t>(get16(in + 8));
    } else {
        s.fcw = static_cast<uint16_t>(get16(in + 0));
        s.fsw = static_cast<uint16_t>(get16(in + 2));
        tags = static_cast<uint16_t>(get16(in + 4));
    }
    s.fcw = static_cast<uint16_t>((s.fcw & fpu::fcw::kWritable) | fpu::fcw::kReserved1);
    if (!real_address_layout(cpu)) {
        if (wide) {
            s.fip = get32(in + 12);
            uint32_t selector_opcode = get32(in + 16);
            s.fcs = static_cast<uint16_t>(selector_opcode);
            s.fop = static_cast<uint16_t>((selector_opcode >> 16) & 0x7ff);
            s.fdp = get32(in + 20);
            s.fds = static_cast<uint16_t>(get32(in + 24));
        } else {
            s.fip = get16(in + 6);
            s.fcs = static_cast<uint16_t>(get16(in + 8));
            s.fdp = get16(in + 10);
            s.fds = static_cast<uint16_t>(get16(in + 12));
            s.fop = 0;
        }
    } else if (wide) {
        s.fip = (get32(in + 12) & 0xffff) | ((get32(in + 16) & 0x0fff'f000u) << 4);
        s.fop = static_cast<uint16_t>(get32(in + 16) & 0x7ff);
        s.fdp = (get32(in + 20) & 0xffff) | ((get32(in + 24) & 0x0fff'f000u) << 4);
        s.fcs = s.fds = 0;
    } else {
        s.fip = get16(in + 6) | ((get16(in + 8) & 0xf000u) << 4);
        s.fop = static_cast<uint16_t>(get16(in + 8) & 0x7ff);
        s.fdp = get16(in + 10) | ((get16(in + 12) & 0xf000u) << 4);
        s.fcs = s.fds = 0;
    }
    fpu::update_summary(s);
    return tags;
}

void fninit(Cpu& cpu, const Insn&) {
    fpu::x87_check_available(cpu);
    initialize(cpu.x87);
}

void fnclex(Cpu& cpu, const Insn&) {
    fpu::x87_check_available(cpu);
    cpu.x87.fsw = static_cast<uint16_t>(cpu.x87.fsw & ~(fsw::kExceptions | fsw::SF | fsw::ES | fsw::B));
}

// FLDCW: unmasking a flagged exception makes it pending for the next waiting instruction.
void fldcw(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    uint16_t value = static_cast<uint16_t>(read_operand(cpu, insn, 0));
    cpu.x87.fcw = static_cast<uint16_t>((value & fpu::fcw::kWritable) | fpu::fcw::kReserved1);
    fpu::update_summary(cpu.x87);
}

void fnstcw(Cpu& cpu, const Insn& insn) {
    fpu::x87_check_available(cpu);
    write_operand(cpu, insn, 0, cpu.x87.fcw);
}

void fnstsw(Cpu& cpu, const Insn& insn) {
    fpu::x87_check_available(cpu);
    write_operand(cpu, insn, 0, cpu.x87.fsw);
}

// FNSTENV: store the environment, then mask every exception (vol. 2 FSTENV Operation).
void fnstenv(Cpu& cpu, const Insn& insn) {
    fpu::x87_check_available(cpu);
    std::array<uint8_t, 28> image{};
    store_environment(cpu, insn, image.data());
    if (environment_size(insn) == 14) write_memory(cpu, insn, first_bytes<14>(image));
    else write_memory(cpu, insn, image);
    cpu.x87.fcw = static_cast<uint16_t>(cpu.x87.fcw | fpu::fcw::kMasks);
    fpu::update_summary(cpu.x87);
}

void fldenv(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    std::array<uint8_t, 28> image{};
    if (environment_size(insn) == 14) {
        auto bytes = read_memory<14>(cpu, insn);
        std::copy(bytes.begin(), bytes.end(), image.begin());
    } else {
        image = read_memory<28>(cpu, insn);
    }
    retag(cpu.x87, load_environment(cpu, insn, image.data()));
}

// FNSAVE: environment and the eight registers in stack order, then FNINIT.
void fnsave(Cpu& cpu, const Insn& insn) {
    fpu::x87_check_available(cpu);
    const X87State& s = cpu.x87;
    std::array<uint8_t, 28 + kRegistersSize> image{};
    size_t env = environment_size(insn);
    store_environment(cpu, insn, image.data());
    for (unsigned i = 0; i < 8; ++i) std::memcpy(image.data() + env + 10 * i, &s.st[physical(s, i)], 10);
    if (env == 14) {
        write_memory(cpu, insn, first_bytes<14 + kRegistersSize>(image));
    } else {
        write_memory(cpu, insn, image);
    }
    initialize(cpu.x87);
}

void frstor(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    std::array<uint8_t, 28 + kRegistersSize> image{};
    size_t env = environment_size(insn);
    if (env == 14) {
        auto bytes = read_memory<14 + kRegistersSize>(cpu, insn);
        std::copy(bytes.begin(), bytes.end(), image.begin());
    } else {
        image = read_memory<28 + kRegistersSize>(cpu, insn);
    }
    X87State& s = cpu.x87;
    uint16_t tags = load_environment(cpu, insn, image.data());
    for (unsigned i = 0; i < 8; ++i) std::memcpy(&s.st[physical(s, i)], image.data() + env + 10 * i, 10);
    retag(s, tags);
}

// FFREE ST(i): tag empty, TOP unchanged; FFREEP (DF C0+i) also pops. C0-C3 are undefined; C1
// comes out clear, as on the hardware the differential tests run on.
template <bool kPop>
void ffree(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    X87State& s = cpu.x87;
    note_instruction(cpu, insn);
    set_tag(s, physical(s, insn.op[0].reg), kEmpty);
    if (kPop) set_top(s, top(s) + 1);
    s.fsw = static_cast<uint16_t>(s.fsw & ~fsw::C1);
}

// FINCSTP/FDECSTP move TOP without touching tags or contents; C1 cleared.
template <int kDelta>
void move_top(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    X87State& s = cpu.x87;
    note_instruction(cpu, insn);
    set_top(s, static_cast<unsigned>(static_cast<int>(top(s)) + kDelta));
    s.fsw = static_cast<uint16_t>(s.fsw & ~fsw::C1);
}

void fnop(Cpu& cpu, const Insn& insn) {
    fpu::x87_prologue(cpu);
    note_instruction(cpu, insn);
}

// FWAIT: #NM only when both CR0.MP and CR0.TS are set (table 2-2), then pending exceptions.
void fwait(Cpu& cpu, const Insn&) {
    if ((cpu.cr0 & (fpu::kCr0Mp | fpu::kCr0Ts)) == (fpu::kCr0Mp | fpu::kCr0Ts)) raise_nm();
    fpu::x87_check_pending(cpu);
}

// FENI, FDISI (8087) and FSETPM (287): no operation on the 387 and later, not even a pending check.
void legacy_nop(Cpu& cpu, const Insn&) { fpu::x87_check_available(cpu); }

}  // namespace

void bind_x87_control(HandlerTable& table) {
    table.bind(ZYDIS_MNEMONIC_FNINIT, &fninit);
    table.bind(ZYDIS_MNEMONIC_FNCLEX, &fnclex);
    table.bind(ZYDIS_MNEMONIC_FLDCW, &fldcw);
    table.bind(ZYDIS_MNEMONIC_FNSTCW, &fnstcw);
    table.bind(ZYDIS_MNEMONIC_FNSTSW, &fnstsw);
    table.bind(ZYDIS_MNEMONIC_FNSTENV, &fnstenv);
    table.bind(ZYDIS_MNEMONIC_FLDENV, &fldenv);
    table.bind(ZYDIS_MNEMONIC_FNSAVE, &fnsave);
    table.bind(ZYDIS_MNEMONIC_FRSTOR, &frstor);
    table.bind(ZYDIS_MNEMONIC_FFREE, &ffree<false>);
    table.bind(ZYDIS_MNEMONIC_FFREEP, &ffree<true>);
    table.bind(ZYDIS_MNEMONIC_FINCSTP, &move_top<1>);
    table.bind(ZYDIS_MNEMONIC_FDECSTP, &move_top<-1>);
    table.bind(ZYDIS_MNEMONIC_FNOP, &fnop);
    table.bind(ZYDIS_MNEMONIC_FWAIT, &fwait);
    table.bind(ZYDIS_MNEMONIC_FENI8087_NOP, &legacy_nop);
    table.bind(ZYDIS_MNEMONIC_FDISI8087_NOP, &legacy_nop);
    table.bind(ZYDIS_MNEMONIC_FSETPM287_NOP, &legacy_nop);
}

}  // namespace strata::soft::x87
