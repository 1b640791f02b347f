// FXSAVE/FXSAVE64, FXRSTOR/FXRSTOR64, LDMXCSR and STMXCSR, and the FXSAVE image of
// fxsave_image.hpp.
//
// FXSAVE checks CR0.EM/TS (#NM) but no pending x87 exception, requires a 16-byte aligned operand
// (#GP(0)), and converts the tag word to its abridged form (one "not empty" bit per physical
// register); FXRSTOR converts it back by classifying each non-empty register's contents, and
// raises #GP(0) for an MXCSR with bits outside MXCSR_MASK, as LDMXCSR does.
// Spec: Intel SDM vol. 1 §10.5.1 (tables 10-2, 10-3), §10.2.3.1 (MXCSR_MASK), §11.6.6; vol. 2
//       FXSAVE, FXRSTOR, LDMXCSR, STMXCSR.
#include <array>
#include <cstring>

#include "cpu/soft/exec/fxsave_image.hpp"
#include "cpu/soft/exec/simd.hpp"
#include "cpu/soft/exec/x87_stack.hpp"

namespace strata::soft {

namespace fpu {

namespace {

template <class T>
void put(uint8_t* image, unsigned offset, T value) {
    std::memcpy(image + offset, &value, sizeof(T));
}

template <class T>
T get(const uint8_t* image, unsigned offset) {
    T value;
    std::memcpy(&value, image + offset, sizeof(T));
    return value;
}

}  // namespace

void save_x87_image(const Cpu& cpu, uint8_t* image, bool wide_pointers) {
    const X87State& s = cpu.x87;
    std::memset(image, 0, 24);
    std::memset(image + 32, 0, 128);
    put<uint16_t>(image, 0, s.fcw);
    put<uint16_t>(image, 2, s.fsw);
    uint8_t abridged = 0;
    for (unsigned r = 0; r < 8; ++r)
        if (x87::tag(s, r) != x87::kEmpty) abridged = static_cast<uint8_t>(abridged | (1u << r));
    image[4] = abridged;
    put<uint16_t>(image, 6, static_cast<uint16_t>(s.fop & 0x7ff));
    if (wide_pointers) {
        put<uint64_t>(image, 8, s.fip);
        put<uint64_t>(image, 16, s.fdp);
    } else {
        put<uint32_t>(image, 8, static_cast<uint32_t>(s.fip));
        put<uint16_t>(image, 12, s.fcs);
        put<uint32_t>(image, 16, static_cast<uint32_t>(s.fdp));
        put<uint16_t>(image, 20, s.fds);
    }
    for (unsigned i = 0; i < 8; ++i) std::memcpy(image + 32 + 16 * i, &s.st[x87::physical(s, i)], 10);
}

void save_sse_image(const Cpu& cpu, uint8_t* image, unsigned xmm_count) {
    put<uint32_t>(image, 24, cpu.mxcsr);
    put<uint32_t>(image, 28, mxcsr::kSupported);
    for (unsigned i = 0; i < xmm_count && i < 16; ++i) std::memcpy(image + 160 + 16 * i, cpu.xmm[i].data(), 16);
}

void load_x87_image(Cpu& cpu, const uint8_t* image, bool wide_pointers) {
    X87State& s = cpu.x87;
    s.fcw = static_cast<uint16_t>((get<uint16_t>(image, 0) & fcw::kWritable) | fcw::kReserved1);
    s.fsw = get<uint16_t>(image, 2);
    uint8_t abridged = image[4];
    s.fop = static_cast<uint16_t>(get<uint16_t>(image, 6) & 0x7ff);
    if (wide_pointers) {
        s.fip = get<uint64_t>(image, 8);
        s.fdp = get<uint64_t>(image, 16);
        s.fcs = s.fds = 0;
    } else {
        s.fip = get<uint32_t>(image, 8);
        s.fcs = get<uint16_t>(image, 12);
        s.fdp = get<uint32_t>(image, 16);
        s.fds = get<uint16_t>(image, 20);
    }
    for (unsigned i = 0; i < 8; ++i) std::memcpy(&s.st[x87::physical(s, i)], image + 32 + 16 * i, 10);
    s.ftw = 0;
    for (unsigned r = 0; r < 8; ++r)
        x87::set_tag(s, r, (abridged >> r) & 1 ? x87::tag_of(s.st[r]) : x87::kEmpty);
    update_summary(s);
}

bool load_sse_image(Cpu& cpu, const uint8_t* image, unsigned xmm_count) {
    uint32_t value = get<uint32_t>(image, 24);
    if (value & ~mxcsr::kSupported) return false;
    cpu.mxcsr = value;
    for (unsigned i = 0; i < xmm_count && i < 16; ++i) std::memcpy(cpu.xmm[i].data(), image + 160 + 16 * i, 16);
    return true;
}

}  // namespace fpu

namespace simd {

namespace {

using Image = std::array<uint8_t, fpu::kFxsaveSize>;

uint64_t aligned_linear(Cpu& cpu, const Insn& insn, Access access) {
    uint64_t linear = cpu.linear(insn.mem.seg, effective_address(cpu, insn), fpu::kFxsaveSize, access);
    if (linear & 15) raise_gp(0);
    return linear;
}

unsigned xmm_count(const Cpu& cpu) { return cpu.code64 ? 16 : 8; }

template <size_t N>
std::array<uint8_t, N> head(const Image& image) {
    std::array<uint8_t, N> out;
    std::memcpy(out.data(), image.data(), N);
    return out;
}

// FXSAVE/FXSAVE64 write bytes 0-415 (0-287 outside 64-bit mode, without XMM8-15); 416-511 are
// the software's. One write: both pages are translated before anything is stored.
void fxsave(Cpu& cpu, const Insn& insn) {
    fpu::x87_check_available(cpu);
    uint64_t linear = aligned_linear(cpu, insn, Access::Write);
    Image image{};
    fpu::save_x87_image(cpu, image.data(), insn.mnemonic == ZYDIS_MNEMONIC_FXSAVE64);
    fpu::save_sse_image(cpu, image.data(), xmm_count(cpu));
    if (xmm_count(cpu) == 16) cpu.write_linear(linear, head<160 + 16 * 16>(image));
    else cpu.write_linear(linear, head<160 + 16 * 8>(image));
}

void fxrstor(Cpu& cpu, const Insn& insn) {
    fpu::x87_check_available(cpu);
    uint64_t linear = aligned_linear(cpu, insn, Access::Read);
    Image image = cpu.read_linear<Image>(linear);
    if (!fpu::load_sse_image(cpu, image.data(), xmm_count(cpu))) raise_gp(0);
    fpu::load_x87_image(cpu, image.data(), insn.mnemonic == ZYDIS_MNEMONIC_FXRSTOR64);
}

void ldmxcsr(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    uint32_t value = static_cast<uint32_t>(read_operand(cpu, insn, 0));
    if (value & ~fpu::mxcsr::kSupported) raise_gp(0);
    cpu.mxcsr = value;
}

void stmxcsr(Cpu& cpu, const Insn& insn) {
    fpu::sse_prologue(cpu);
    write_operand(cpu, insn, 0, cpu.mxcsr);
}

}  // namespace

void bind_sse_state(HandlerTable& table) {
    table.bind(ZYDIS_MNEMONIC_FXSAVE, &fxsave);
    table.bind(ZYDIS_MNEMONIC_FXSAVE64, &fxsave);
    table.bind(ZYDIS_MNEMONIC_FXRSTOR, &fxrstor);
    table.bind(ZYDIS_MNEMONIC_FXRSTOR64, &fxrstor);
    table.bind(ZYDIS_MNEMONIC_LDMXCSR, &ldmxcsr);
    table.bind(ZYDIS_MNEMONIC_STMXCSR, &stmxcsr);
}

}  // namespace simd

}  // namespace strata::soft
