// Zydis 4 (Debian's libzydis-dev) decodes; this file turns its result into the soft engine's
// predecoded Insn and binds the handler of exec/ that implements the mnemonic. It is the only
// place that sees raw instruction bytes. Zydis was chosen because it decodes every x86-64
// instruction in every mode with full operand information, is maintained and packaged in
// Debian 12, and costs nothing at steady state since each block is decoded once.
#pragma once

#include <Zydis/Zydis.h>

#include <array>
#include <cstdint>
#include <span>

#include "cpu/soft/decode/insn.hpp"

namespace strata::soft {

// The execution mode decoding depends on (SDM vol. 3A §2.2): a block is valid only in the mode it
// was decoded for.
enum class CodeMode : uint8_t { Real16, Legacy16, Legacy32, Compat16, Compat32, Long64 };

// The forms of one mnemonic that different families implement: Zydis names MOV alike whether it
// moves general, segment, control or debug registers, JMP/CALL/RET alike near and far, and
// MOVSD/CMPSD alike as string and as SSE instructions. A family binds its form; the decoder
// finds each instruction's form (decode_form in decoder.cpp), Default for everything else.
enum class HandlerForm : uint8_t { Default, SegmentRegister, ControlRegister, DebugRegister, Far, Vector };
inline constexpr unsigned kHandlerForms = 6;

// An instruction's handler and its threaded forms (exec/exec.hpp: the handler, then a tail call
// to the next instruction's threaded form, storing that one's RIP or, when it is RIP-free, not).
struct HandlerPair {
    Handler exec = nullptr;
    Handler thread = nullptr;
    Handler thread_no_rip = nullptr;
    bool rip_free = false;  // Insn::rip_free
};

// The threaded forms of any handler: call insn.exec, then go on (exec/common.cpp).
void threaded_indirect(Cpu& cpu, const Insn& insn);
void threaded_indirect_no_rip(Cpu& cpu, const Insn& insn);

// A faster handler with the same semantics for a decoded instruction's operand shape, or
// {nullptr, nullptr} to keep the generic one (exec/forms.hpp).
using Specializer = HandlerPair (*)(const Insn& insn);

// Which handler implements each mnemonic (and form). Each family file of exec/ adds its own.
class HandlerTable {
public:
    HandlerTable();
    void bind(ZydisMnemonic mnemonic, Handler handler) { bind(mnemonic, HandlerForm::Default, handler); }
    // A handler with a threaded form of its own (exec/exec.hpp compiled<H>()).
    void bind(ZydisMnemonic mnemonic, HandlerPair pair) {
        bind(mnemonic, pair.exec);
        threads_[mnemonic] = pair;
    }
    void bind(ZydisMnemonic mnemonic, HandlerForm form, Handler handler) {
        handlers_[mnemonic][static_cast<unsigned>(form)] = handler;
    }
    // Binds `handler` and, for the operand shapes `specializer` covers, the handlers it picks.
    void bind(ZydisMnemonic mnemonic, Handler handler, Specializer specializer) {
        bind(mnemonic, handler);
        specializers_[mnemonic] = specializer;
    }
    // nullptr when no family implements this form of the mnemonic.
    [[nodiscard]] Handler find(ZydisMnemonic mnemonic, HandlerForm form = HandlerForm::Default) const {
        return handlers_[mnemonic][static_cast<unsigned>(form)];
    }
    // The handlers for this decoded instruction: specialized for its operands where possible;
    // exec is nullptr when no family implements it.
    [[nodiscard]] HandlerPair find(ZydisMnemonic mnemonic, HandlerForm form, const Insn& insn) const {
        if (form == HandlerForm::Default) {
            if (specializers_[mnemonic])
                if (HandlerPair pair = specializers_[mnemonic](insn); pair.exec) return pair;
            if (HandlerPair pair = threads_[mnemonic]; pair.thread) {
                pair.exec = find(mnemonic, form);
                return pair;
            }
        }
        return {find(mnemonic, form), &threaded_indirect, &threaded_indirect_no_rip};
    }

private:
    std::array<std::array<Handler, kHandlerForms>, ZYDIS_MNEMONIC_MAX_VALUE + 1> handlers_{};
    std::array<Specializer, ZYDIS_MNEMONIC_MAX_VALUE + 1> specializers_{};
    std::array<HandlerPair, ZYDIS_MNEMONIC_MAX_VALUE + 1> threads_{};  // Default form only
};

// The table with every family bound (exec/families.cpp).
const HandlerTable& handler_table();

// Jcc by condition code 0-15 (O, NO, B, NB, Z, NZ, BE, NBE, S, NS, P, NP, L, NL, LE, NLE: SDM
// vol. 1 app. B): the decoder lets blocks run on past them, exec/control.cpp binds one handler
// per condition.
inline constexpr std::array<ZydisMnemonic, 16> kConditionalJumps = {
    ZYDIS_MNEMONIC_JO, ZYDIS_MNEMONIC_JNO, ZYDIS_MNEMONIC_JB,  ZYDIS_MNEMONIC_JNB, ZYDIS_MNEMONIC_JZ,  ZYDIS_MNEMONIC_JNZ,
    ZYDIS_MNEMONIC_JBE, ZYDIS_MNEMONIC_JNBE, ZYDIS_MNEMONIC_JS, ZYDIS_MNEMONIC_JNS, ZYDIS_MNEMONIC_JP, ZYDIS_MNEMONIC_JNP,
    ZYDIS_MNEMONIC_JL, ZYDIS_MNEMONIC_JNL, ZYDIS_MNEMONIC_JLE, ZYDIS_MNEMONIC_JNLE};

enum class DecodeStatus { Ok, Invalid, NeedMoreBytes };

struct DecodeResult {
    DecodeStatus status = DecodeStatus::Ok;
    bool ends_block = false;  // a branch, or an instruction after which decoding may change
    // A conditional jump (Jcc): the block may go on past it, since its handler ends the block
    // (Cpu::end_block) only when it jumps.
    bool conditional_jump = false;
};

class Decoder {
public:
    Decoder();
    // Decodes the instruction at the start of `bytes` in `mode` with stack width `stack_bits`.
    DecodeResult decode(CodeMode mode, unsigned stack_bits, std::span<const uint8_t> bytes, Insn& out) const;

private:
    std::array<ZydisDecoder, 6 * 3> decoders_{};
};

// #UD for an instruction the soft CPU does not implement: said once per mnemonic on stderr with
// the instruction bytes (exec/ binds it; the decoder binds it for unbound mnemonics).
void handle_unimplemented(Cpu& cpu, const Insn& insn);
void report_unimplemented(uint16_t mnemonic, std::span<const uint8_t> bytes, uint64_t rip);

}  // namespace strata::soft
