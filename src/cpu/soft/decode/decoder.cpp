#include "cpu/soft/decode/decoder.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <cstdio>
#include <mutex>
#include <set>

#include "cpu/soft/cpu.hpp"
#include "cpu/soft/fault.hpp"

namespace strata::soft {

namespace {

ZydisMachineMode machine_mode(CodeMode mode) {
    switch (mode) {
        case CodeMode::Real16: return ZYDIS_MACHINE_MODE_REAL_16;
        case CodeMode::Legacy16: return ZYDIS_MACHINE_MODE_LEGACY_16;
        case CodeMode::Legacy32: return ZYDIS_MACHINE_MODE_LEGACY_32;
        case CodeMode::Compat16: return ZYDIS_MACHINE_MODE_LONG_COMPAT_16;
        case CodeMode::Compat32: return ZYDIS_MACHINE_MODE_LONG_COMPAT_32;
        case CodeMode::Long64: return ZYDIS_MACHINE_MODE_LONG_64;
    }
    return ZYDIS_MACHINE_MODE_LONG_64;
}

unsigned stack_index(unsigned stack_bits) { return stack_bits == 16 ? 0 : stack_bits == 32 ? 1 : 2; }

// A general-purpose, segment, control, debug, vector or x87 register as an operand.
bool map_register(ZydisRegister reg, Operand& op) {
    if (reg >= ZYDIS_REGISTER_AL && reg <= ZYDIS_REGISTER_R15B) {
        op.kind = OpKind::Gpr;
        unsigned i = reg - ZYDIS_REGISTER_AL;
        if (i >= 4 && i < 8) {  // AH, CH, DH, BH
            op.reg = static_cast<uint8_t>(i - 4);
            op.high8 = 1;
        } else {
            op.reg = static_cast<uint8_t>(i < 4 ? i : i - 4);
        }
        return true;
    }
    auto range = [&](ZydisRegister first, unsigned count, OpKind kind) {
        if (reg >= first && reg < first + count) {
            op.kind = kind;
            op.reg = static_cast<uint8_t>(reg - first);
            return true;
        }
        return false;
    };
    return range(ZYDIS_REGISTER_AX, 16, OpKind::Gpr) || range(ZYDIS_REGISTER_EAX, 16, OpKind::Gpr) ||
           range(ZYDIS_REGISTER_RAX, 16, OpKind::Gpr) || range(ZYDIS_REGISTER_ES, 6, OpKind::Seg) ||
           range(ZYDIS_REGISTER_CR0, 16, OpKind::Cr) || range(ZYDIS_REGISTER_DR0, 16, OpKind::Dr) ||
           range(ZYDIS_REGISTER_XMM0, 16, OpKind::Xmm) || range(ZYDIS_REGISTER_MM0, 8, OpKind::Mmx) ||
           range(ZYDIS_REGISTER_ST0, 8, OpKind::St);
}

// A base or index register of a memory operand: 0-15, kRip, or kNone.
uint8_t address_register(ZydisRegister reg) {
    if (reg == ZYDIS_REGISTER_NONE) return MemOperand::kNone;
    if (reg == ZYDIS_REGISTER_RIP || reg == ZYDIS_REGISTER_EIP || reg == ZYDIS_REGISTER_IP) return MemOperand::kRip;
    Operand op;
    if (map_register(reg, op) && op.kind == OpKind::Gpr) return op.reg;
    return MemOperand::kNone;
}

// Instructions after which the next one may decode differently or must see new state at once.
bool changes_decoding(const ZydisDecodedInstruction& in) {
    switch (in.meta.category) {
        case ZYDIS_CATEGORY_COND_BR:
        case ZYDIS_CATEGORY_UNCOND_BR:
        case ZYDIS_CATEGORY_CALL:
        case ZYDIS_CATEGORY_RET:
        case ZYDIS_CATEGORY_INTERRUPT:
        case ZYDIS_CATEGORY_SYSCALL:
        case ZYDIS_CATEGORY_SYSRET:
        case ZYDIS_CATEGORY_SYSTEM:
        case ZYDIS_CATEGORY_IO:
        case ZYDIS_CATEGORY_IOSTRINGOP:
        case ZYDIS_CATEGORY_SEGOP: return true;
        default: break;
    }
    switch (in.mnemonic) {
        case ZYDIS_MNEMONIC_POPF:
        case ZYDIS_MNEMONIC_POPFD:
        case ZYDIS_MNEMONIC_POPFQ:
        case ZYDIS_MNEMONIC_STI:
        case ZYDIS_MNEMONIC_CLI:
        case ZYDIS_MNEMONIC_HLT:
        case ZYDIS_MNEMONIC_CPUID:
        case ZYDIS_MNEMONIC_XSETBV:
        case ZYDIS_MNEMONIC_XRSTOR:
        case ZYDIS_MNEMONIC_XRSTORS:
        case ZYDIS_MNEMONIC_FXRSTOR:
        case ZYDIS_MNEMONIC_FXRSTOR64:
        case ZYDIS_MNEMONIC_PAUSE:
        case ZYDIS_MNEMONIC_MFENCE:
        case ZYDIS_MNEMONIC_WBINVD:
        case ZYDIS_MNEMONIC_INVD: return true;
        default: break;
    }
    // MOV to CR/DR and the other privileged instructions; handlers of the rest (MOV to a segment
    // register, POP SS) end the block themselves through Cpu::end_block.
    return (in.attributes & ZYDIS_ATTRIB_IS_PRIVILEGED) != 0;
}

// Jcc (SDM vol. 2A "Jcc"): the 16 conditions, not JrCXZ or LOOP.
bool conditional_jump(ZydisMnemonic mnemonic) {
    return std::ranges::find(kConditionalJumps, mnemonic) != kConditionalJumps.end();
}

// Which family's form of a shared mnemonic this is (see HandlerForm).
HandlerForm decode_form(const ZydisDecodedInstruction& in, const Insn& out) {
    switch (in.mnemonic) {
        case ZYDIS_MNEMONIC_MOV:
            for (unsigned i = 0; i < out.nops; ++i) {
                if (out.op[i].kind == OpKind::Seg) return HandlerForm::SegmentRegister;
                if (out.op[i].kind == OpKind::Cr) return HandlerForm::ControlRegister;
                if (out.op[i].kind == OpKind::Dr) return HandlerForm::DebugRegister;
            }
            return HandlerForm::Default;
        case ZYDIS_MNEMONIC_PUSH:
        case ZYDIS_MNEMONIC_POP:
            return out.op[0].kind == OpKind::Seg ? HandlerForm::SegmentRegister : HandlerForm::Default;
        case ZYDIS_MNEMONIC_JMP:
        case ZYDIS_MNEMONIC_CALL:
        case ZYDIS_MNEMONIC_RET:
            return in.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR ? HandlerForm::Far : HandlerForm::Default;
        case ZYDIS_MNEMONIC_MOVSD:
        case ZYDIS_MNEMONIC_CMPSD:
            return in.meta.category == ZYDIS_CATEGORY_STRINGOP ? HandlerForm::Default : HandlerForm::Vector;
        default: return HandlerForm::Default;
    }
}

}  // namespace

HandlerTable::HandlerTable() {
    handlers_.fill({});
    specializers_.fill(nullptr);
    threads_.fill({});
}

Decoder::Decoder() {
    static constexpr CodeMode kModes[] = {CodeMode::Real16,   CodeMode::Legacy16, CodeMode::Legacy32,
                                          CodeMode::Compat16, CodeMode::Compat32, CodeMode::Long64};
    static constexpr ZydisStackWidth kStacks[] = {ZYDIS_STACK_WIDTH_16, ZYDIS_STACK_WIDTH_32, ZYDIS_STACK_WIDTH_64};
    for (unsigned m = 0; m < 6; ++m)
        for (unsigned s = 0; s < 3; ++s) {
            ZydisStackWidth width = kModes[m] == CodeMode::Long64 ? ZYDIS_STACK_WIDTH_64 : kStacks[s];
            if (width == ZYDIS_STACK_WIDTH_64 && kModes[m] != CodeMode::Long64) width = ZYDIS_STACK_WIDTH_32;
            ZydisDecoderInit(&decoders_[m * 3 + s], machine_mode(kModes[m]), width);
        }
}

DecodeResult Decoder::decode(CodeMode mode, unsigned stack_bits, std::span<const uint8_t> bytes, Insn& out) const {
    const ZydisDecoder& decoder = decoders_[static_cast<unsigned>(mode) * 3 + stack_index(stack_bits)];
    ZydisDecodedInstruction in;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    ZyanStatus status = ZydisDecoderDecodeFull(&decoder, bytes.data(), bytes.size(), &in, ops);
    if (status == ZYDIS_STATUS_NO_MORE_DATA && bytes.size() < ZYDIS_MAX_INSTRUCTION_LENGTH)
        return {DecodeStatus::NeedMoreBytes, false};
    out = Insn{};
    if (!ZYAN_SUCCESS(status)) {
        out.exec = [](Cpu&, const Insn&) { raise_ud(); };
        out.thread = &threaded_indirect;
        out.thread_no_rip = &threaded_indirect_no_rip;
        out.length = 1;
        return {DecodeStatus::Invalid, true};
    }
    out.mnemonic = static_cast<uint16_t>(in.mnemonic);
    out.length = in.length;
    out.osize = static_cast<uint8_t>(in.operand_width / 8);
    out.asize = static_cast<uint8_t>(in.address_width / 8);
    out.opcode = in.opcode;
    out.opcode_map = static_cast<uint8_t>(in.opcode_map);
    out.modrm_reg = in.raw.modrm.reg;
    out.modrm = static_cast<uint8_t>((in.raw.modrm.mod << 6) | (in.raw.modrm.reg << 3) | in.raw.modrm.rm);
    if (in.attributes & ZYDIS_ATTRIB_HAS_LOCK) out.prefixes |= prefix::Lock;
    if (in.attributes & (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE)) out.prefixes |= prefix::Rep;
    if (in.attributes & ZYDIS_ATTRIB_HAS_REPNE) out.prefixes |= prefix::Repne;
    if (in.attributes & ZYDIS_ATTRIB_HAS_OPERANDSIZE) out.prefixes |= prefix::OperandSize;
    if (in.attributes & ZYDIS_ATTRIB_HAS_REX) out.prefixes |= prefix::Rex;
    if (in.attributes & (ZYDIS_ATTRIB_HAS_VEX | ZYDIS_ATTRIB_HAS_EVEX | ZYDIS_ATTRIB_HAS_XOP)) out.prefixes |= prefix::Vex;
    if (in.attributes & ZYDIS_ATTRIB_HAS_SEGMENT) out.prefixes |= prefix::Segment;

    bool have_imm = false;
    for (unsigned i = 0; i < in.operand_count_visible && i < 4; ++i) {
        const ZydisDecodedOperand& z = ops[i];
        Operand& op = out.op[i];
        op.size = static_cast<uint16_t>(z.size / 8);
        switch (z.type) {
            case ZYDIS_OPERAND_TYPE_REGISTER:
                if (!map_register(z.reg.value, op)) op.kind = OpKind::None;
                break;
            case ZYDIS_OPERAND_TYPE_MEMORY:
                op.kind = OpKind::Mem;
                out.mem.seg = static_cast<uint8_t>(z.mem.segment >= ZYDIS_REGISTER_ES && z.mem.segment <= ZYDIS_REGISTER_GS
                                                       ? z.mem.segment - ZYDIS_REGISTER_ES
                                                       : 3);
                out.mem.base = address_register(z.mem.base);
                out.mem.index = address_register(z.mem.index);
                out.mem.scale = z.mem.scale ? z.mem.scale : 1;
                out.mem.disp = z.mem.disp.has_displacement ? z.mem.disp.value : 0;
                break;
            case ZYDIS_OPERAND_TYPE_IMMEDIATE:
                op.kind = OpKind::Imm;
                if (!have_imm) {
                    out.imm = z.imm.value.u;
                    have_imm = true;
                } else {
                    out.imm2 = z.imm.value.u;
                }
                break;
            case ZYDIS_OPERAND_TYPE_POINTER:
                op.kind = OpKind::Ptr;
                out.imm = z.ptr.offset;
                out.imm2 = z.ptr.segment;
                break;
            default: op.kind = OpKind::None; break;
        }
        out.nops = static_cast<uint8_t>(i + 1);
    }
    // String instructions and XLAT address memory only implicitly, through rSI or rBX; their
    // segment (DS, or the override prefix's) is what their handlers find in Insn::mem.seg.
    for (unsigned i = in.operand_count_visible; i < in.operand_count; ++i) {
        const ZydisDecodedOperand& z = ops[i];
        if (z.type != ZYDIS_OPERAND_TYPE_MEMORY) continue;
        uint8_t base = address_register(z.mem.base);
        if ((base == 6 || base == 3) && z.mem.segment >= ZYDIS_REGISTER_ES && z.mem.segment <= ZYDIS_REGISTER_GS)
            out.mem.seg = static_cast<uint8_t>(z.mem.segment - ZYDIS_REGISTER_ES);
    }

    HandlerPair found = handler_table().find(in.mnemonic, decode_form(in, out), out);
    Handler handler = found.exec;
    if (!handler) {
        // VEX/EVEX/XOP encodings are not advertised: plain #UD. Anything else we should run: it
        // is reported when it runs (a block decodes past conditional jumps into code that may
        // never run).
        if (out.prefixes & prefix::Vex) handler = [](Cpu&, const Insn&) { raise_ud(); };
        else handler = &handle_unimplemented;
    }
    out.exec = handler;
    out.thread = found.exec ? found.thread : &threaded_indirect;
    out.thread_no_rip = found.exec ? found.thread_no_rip : &threaded_indirect_no_rip;
    out.rip_free = found.exec && found.rip_free;
    return {DecodeStatus::Ok, changes_decoding(in), conditional_jump(in.mnemonic)};
}

void report_unimplemented(uint16_t mnemonic, std::span<const uint8_t> bytes, uint64_t rip) {
    static std::mutex mutex;
    static std::set<uint16_t> reported;
    std::lock_guard lock(mutex);
    if (!reported.insert(mnemonic).second) return;
    std::string hex;
    for (uint8_t b : bytes) hex += fmt::format("{:02x} ", b);
    if (!hex.empty()) hex.pop_back();
    fmt::print(stderr, "strata: soft engine: instruction {} ({}){} is not implemented; the guest gets #UD\n",
               ZydisMnemonicGetString(static_cast<ZydisMnemonic>(mnemonic)), hex,
               rip ? fmt::format(" at {:#x}", rip) : std::string());
}

void handle_unimplemented(Cpu& cpu, const Insn& insn) {
    // The instruction's bytes as fetched: up to its length, within its page.
    uint8_t bytes[ZYDIS_MAX_INSTRUCTION_LENGTH] = {};
    size_t length = 0;
    uint64_t linear = cpu.code64 ? cpu.rip : (cpu.seg[CS].base + cpu.rip) & 0xffff'ffffull;
    Cpu::Fetch fetch = cpu.translate_fetch(linear);
    if (fetch.host) {
        length = std::min<size_t>(insn.length, 0x1000 - (linear & 0xfff));
        std::memcpy(bytes, fetch.host, length);
    }
    report_unimplemented(insn.mnemonic, std::span<const uint8_t>(bytes, length), cpu.rip);
    raise_ud();
}

}  // namespace strata::soft
