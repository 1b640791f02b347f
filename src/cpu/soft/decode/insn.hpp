// A predecoded instruction: what the decoder (decode/decoder.cpp, the only code that sees raw
// instruction bytes) leaves for the instruction's handler in exec/. Decoded once per block and
// kept in the block cache, so it is compact and holds everything a handler needs.
#pragma once

#include <cstdint>

namespace strata::soft {

class Cpu;
struct Insn;

// An instruction's semantics. Called with cpu.next_rip already pointing past the instruction;
// branches change next_rip; faults throw GuestFault before changing state.
using Handler = void (*)(Cpu& cpu, const Insn& insn);

enum class OpKind : uint8_t {
    None,
    Gpr,       // reg = 0-15; with size 1 and high8, AH/CH/DH/BH (reg = 0-3)
    Mem,       // the instruction's memory operand (Insn::mem), `size` bytes
    Imm,       // Insn::imm (sign- or zero-extended as the encoding says)
    Seg,       // ES, CS, SS, DS, FS, GS
    Cr,        // CR0-CR15
    Dr,        // DR0-DR15
    Xmm,       // XMM0-15
    Mmx,       // MM0-7
    St,        // ST(0)-ST(7)
    Ptr,       // far pointer immediate: Insn::imm (offset) and Insn::imm2 (selector)
};

struct Operand {
    OpKind kind = OpKind::None;
    uint8_t reg = 0;
    uint8_t high8 = 0;  // AH, CH, DH, BH
    uint16_t size = 0;  // bytes (up to 64 for vector operands; 10 for x87 extended, 0 for LEA's address)
};

struct MemOperand {
    static constexpr uint8_t kNone = 16;  // Cpu::kNoRegister: reads as 0
    static constexpr uint8_t kRip = 17;
    uint8_t seg = 3;            // DS by default
    uint8_t base = kNone;       // 0-15, kRip, or kNone
    uint8_t index = kNone;
    uint8_t scale = 1;
    int64_t disp = 0;
};

// Prefix and decode attributes handlers ask about.
namespace prefix {
constexpr uint8_t Lock = 1 << 0, Rep = 1 << 1, Repne = 1 << 2, OperandSize = 1 << 3, Rex = 1 << 4,
                  Vex = 1 << 5, Segment = 1 << 6;
}

struct Insn {
    Handler exec = nullptr;    // the instruction's semantics
    Handler thread = nullptr;  // exec, then on to the block's next instruction (threaded code, exec/exec.hpp)
    Handler thread_no_rip = nullptr;  // the same, for a next instruction that needs no RIP (see rip_free)
    uint16_t mnemonic = 0;   // ZydisMnemonic
    uint8_t length = 0;      // bytes
    uint8_t osize = 4;       // operand size in bytes (2, 4, 8), as the prefixes and mode make it
    uint8_t asize = 8;       // address size in bytes (2, 4, 8)
    uint8_t prefixes = 0;
    uint8_t opcode = 0;      // the last opcode byte (e.g. the condition of Jcc/SETcc/CMOVcc)
    uint8_t modrm_reg = 0;   // ModRM.reg (group opcodes), when there is a ModRM byte
    uint8_t modrm = 0;       // the whole ModRM byte (the x87's last-opcode register FOP keeps it)
    uint8_t nops = 0;        // explicit operands
    uint8_t opcode_map = 0;  // ZydisOpcodeMap
    uint8_t index = 0;       // in a block: its position (Block::kMaxInstructions is below 256)
    uint16_t offset = 0;     // in a block: bytes from the block's first instruction to this one
    uint16_t end = 0;        // offset + length
    // Its handler neither reads RIP nor faults nor ends the block (a register-only form): the
    // instruction before it need not store RIP for it (exec/exec.hpp continue_block).
    bool rip_free = false;
    Operand op[4];
    MemOperand mem;
    uint64_t imm = 0;        // first immediate, or a branch target relative to next RIP
    uint64_t imm2 = 0;       // second immediate (ENTER, far pointer selector)
};

}  // namespace strata::soft
