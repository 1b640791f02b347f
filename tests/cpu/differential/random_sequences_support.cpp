// The random sequence generator of random_sequences.hpp: one emitter per instruction family, each
// saying which flags its instruction reads, defines and leaves undefined.
#include "cpu/differential/random_sequences.hpp"

#include <cpuid.h>
#include <fmt/format.h>

#include <random>
#include <string>

namespace strata::differential {

HostFeatures HostFeatures::probe() {
    HostFeatures f;
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid(1, &eax, &ebx, &ecx, &edx)) f.popcnt = (ecx >> 23) & 1;
    if (__get_cpuid(0x8000'0001, &eax, &ebx, &ecx, &edx)) f.lzcnt = (ecx >> 5) & 1;
    if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) f.bmi1 = (ebx >> 3) & 1;
    return f;
}

namespace {

using flag::AF;
using flag::CF;
using flag::OF;
using flag::PF;
using flag::SF;
using flag::ZF;
constexpr uint64_t kAll = flag::kStatus;

constexpr const char* kNames64[16] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                      "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
constexpr const char* kNames32[16] = {"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi",
                                      "r8d", "r9d", "r10d", "r11d", "r12d", "r13d", "r14d", "r15d"};
constexpr const char* kNames16[16] = {"ax", "cx", "dx", "bx", "sp", "bp", "si", "di",
                                      "r8w", "r9w", "r10w", "r11w", "r12w", "r13w", "r14w", "r15w"};
constexpr const char* kNames8[16] = {"al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil",
                                     "r8b", "r9b", "r10b", "r11b", "r12b", "r13b", "r14b", "r15b"};
constexpr const char* kHigh8[4] = {"ah", "ch", "dh", "bh"};
constexpr unsigned kRsp = 4;

// The condition codes in opcode order and the flags each reads (SDM vol. 1 app. B).
struct Condition {
    const char* suffix;
    uint64_t reads;
};
constexpr Condition kConditions[16] = {
    {"o", OF},  {"no", OF},  {"b", CF},       {"nb", CF},       {"z", ZF},       {"nz", ZF},
    {"be", CF | ZF}, {"nbe", CF | ZF}, {"s", SF}, {"ns", SF}, {"p", PF}, {"np", PF},
    {"l", SF | OF}, {"nl", SF | OF}, {"le", ZF | SF | OF}, {"nle", ZF | SF | OF}};

// A general register at one width; `high` is AH, CH, DH or BH (index 0-3).
struct Reg {
    unsigned index = 0;
    unsigned width = 64;
    bool high = false;
    [[nodiscard]] std::string name() const {
        if (high) return kHigh8[index];
        switch (width) {
            case 8: return kNames8[index];
            case 16: return kNames16[index];
            case 32: return kNames32[index];
            default: return kNames64[index];
        }
    }
};

const char* ptr(unsigned width) {
    switch (width) {
        case 8: return "byte ptr";
        case 16: return "word ptr";
        case 32: return "dword ptr";
        default: return "qword ptr";
    }
}

// Where string operations and the base+index operands point: inside the first 1 KiB of the
// data area, which holds random bytes.
constexpr uint64_t kRandomDataSize = 0x400;

class Generator {
public:
    Generator(uint64_t seed, HostFeatures features) : random_(seed), features_(features) {}

    Case sequence(size_t index, size_t length) {
        code_.clear();
        undefined_ = 0;
        depth_ = 0;
        for (size_t i = 0; i < length; ++i) instruction();
        Case c;
        c.name = fmt::format("random #{}", index);
        c.code = code_;
        for (unsigned r = 0; r < 16; ++r)
            if (r != kRsp) c.regs.push_back({static_cast<Gpr>(r), value()});
        c.flags = random_() & (kAll | flag::DF);
        c.data.resize(kRandomDataSize);
        for (size_t i = 0; i < c.data.size(); i += 8) {
            uint64_t v = value();
            for (unsigned b = 0; b < 8; ++b) c.data[i + b] = static_cast<uint8_t>(v >> (8 * b));
        }
        c.undefined_flags = undefined_;
        return c;
    }

private:
    uint64_t below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(random_); }
    bool chance(unsigned percent) { return below(100) < percent; }
    template <class T, size_t N>
    const T& pick(const T (&items)[N]) { return items[below(N)]; }

    // Register and memory values: often the boundaries where flags change, otherwise anything.
    uint64_t value() {
        static constexpr uint64_t kInteresting[] = {
            0, 1, 2, ~0ull, ~1ull, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fff'ffff, 0x8000'0000,
            0xffff'ffff, 0x7fff'ffff'ffff'ffff, 0x8000'0000'0000'0000, 0x1'0000'0000, 0xf, 0x10};
        switch (below(4)) {
            case 0: return pick(kInteresting);
            case 1: return below(64);
            case 2: return static_cast<uint64_t>(-static_cast<int64_t>(below(64)));
            default: return random_();
        }
    }
    unsigned width() {
        static constexpr unsigned kWidths[] = {8, 16, 32, 64};
        return pick(kWidths);
    }
    unsigned wide_width() {  // for the forms without an 8-bit encoding
        static constexpr unsigned kWidths[] = {16, 32, 64};
        return pick(kWidths);
    }
    // An immediate that the width's encodings accept (imm32 sign-extended for 64-bit operands).
    int64_t immediate(unsigned w) {
        uint64_t v = value();
        switch (w) {
            case 8: return static_cast<int8_t>(v);
            case 16: return static_cast<int16_t>(v);
            default: return static_cast<int32_t>(v);
        }
    }
    Reg reg(unsigned w, unsigned avoid = kRsp) {
        unsigned index;
        do index = static_cast<unsigned>(below(16));
        while (index == kRsp || index == avoid);
        return {index, w, false};
    }
    // Two 8-bit registers that one instruction can name: both from AL-BL/AH-BH, or both without AH-BH.
    std::pair<Reg, Reg> reg_pair(unsigned w) {
        if (w != 8 || chance(70)) return {reg(w), reg(w)};
        auto legacy = [&] { return Reg{static_cast<unsigned>(below(4)), 8, chance(50)}; };
        return {legacy(), legacy()};
    }
    // A memory operand in the data area. `simple`: an absolute address, naturally aligned (for
    // LOCK and XCHG: no split locks), and no registers set up that the caller may be using.
    // `with_high`: the instruction also names AH-BH, so no REX prefix (no R8-R15 in the address).
    std::string memory(unsigned w, bool simple = false, bool with_high = false) {
        uint64_t size = w / 8;
        if (!simple && chance(25)) {
            // base + index * scale + displacement, with the registers set up first; not RCX,
            // which a shift's count may overwrite after this.
            auto address_reg = [&] {
                Reg r;
                do r = reg(64, 1);
                while (with_high && r.index >= 8);
                return r;
            };
            Reg base = address_reg(), index = address_reg();
            while (index.index == base.index) index = address_reg();
            static constexpr unsigned kScales[] = {1, 2, 4, 8};
            unsigned scale = pick(kScales);
            emit(fmt::format("mov {}, DATA + {:#x}", base.name(), below(0x100)), 0, 0);
            emit(fmt::format("and {}, 63", Reg{index.index, 32}.name()), kAll & ~AF, AF);
            return fmt::format("{} [{} + {}*{} + {}]", ptr(w), base.name(), index.name(), scale, below(64));
        }
        uint64_t offset = below(kRandomDataSize - 8);
        if (simple) offset &= ~(size - 1);
        return fmt::format("{} [DATA + {:#x}]", ptr(w), offset);
    }

    // Appends an instruction that defines `defined` flags and leaves `undefined` undefined.
    void emit(const std::string& text, uint64_t defined, uint64_t undefined) {
        code_ += text;
        code_ += '\n';
        undefined_ = (undefined_ & ~defined) | undefined;
    }
    // Before an instruction that reads `flags`: define them if any is undefined.
    void reads(uint64_t flags) {
        if ((undefined_ & flags) == 0) return;
        auto [a, b] = reg_pair(64);
        emit(fmt::format("cmp {}, {}", a.name(), b.name()), kAll, 0);
    }

    void instruction() {
        switch (below(21)) {
            case 0: case 1: case 2: alu(); break;
            case 3: test(); break;
            case 4: unary(); break;
            case 5: case 6: shift(); break;
            case 7: double_shift(); break;
            case 8: multiply(); break;
            case 9: divide(); break;
            case 10: bit_test(); break;
            case 11: bit_count(); break;
            case 12: lea(); break;
            case 13: extend_move(); break;
            case 14: mov(); break;
            case 15: conditional(); break;
            case 16: stack(); break;
            case 17: string(); break;
            case 18: exchange(); break;
            case 19: misc(); break;
            default: skip_one(); break;
        }
    }

    // ADD OR ADC SBB AND SUB XOR CMP in every form, LOCK with memory destinations.
    void alu() {
        static constexpr const char* kOps[] = {"add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"};
        std::string op = pick(kOps);
        bool logic = op == "or" || op == "and" || op == "xor";
        if (op == "adc" || op == "sbb") reads(CF);
        unsigned w = width();
        auto [a, b] = reg_pair(w);
        std::string text;
        switch (below(5)) {
            case 0: text = fmt::format("{} {}, {}", op, a.name(), b.name()); break;
            case 1: text = fmt::format("{} {}, {}", op, a.name(), immediate(w)); break;
            case 2: text = fmt::format("{} {}, {}", op, a.name(), memory(w, false, a.high)); break;
            case 3: {
                bool locked = op != "cmp" && chance(30);
                text = fmt::format("{}{} {}, {}", locked ? "lock " : "", op, memory(w, locked, b.high), b.name());
                break;
            }
            default: text = fmt::format("{} {}, {}", op, memory(w), immediate(w)); break;
        }
        emit(text, logic ? kAll & ~AF : kAll, logic ? AF : 0);
    }

    void test() {
        unsigned w = width();
        auto [a, b] = reg_pair(w);
        switch (below(3)) {
            case 0: emit(fmt::format("test {}, {}", a.name(), b.name()), kAll & ~AF, AF); break;
            case 1: emit(fmt::format("test {}, {}", a.name(), immediate(w)), kAll & ~AF, AF); break;
            default: emit(fmt::format("test {}, {}", memory(w, false, b.high), b.name()), kAll & ~AF, AF); break;
        }
    }

    // INC DEC (CF kept) NEG NOT, on registers (AH-BH too) and memory.
    void unary() {
        static constexpr const char* kOps[] = {"inc", "dec", "neg", "not"};
        std::string op = pick(kOps);
        unsigned w = width();
        std::string operand = chance(70) ? reg_pair(w).first.name() : memory(w);
        uint64_t defined = op == "not" ? 0 : op == "neg" ? kAll : kAll & ~CF;
        emit(fmt::format("{} {}", op, operand), defined, 0);
    }

    // A shift or rotate count as the instruction sees it (0-255), and its masked value.
    unsigned shift_count(unsigned w) {
        static constexpr unsigned kEdges[] = {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 255};
        return chance(40) ? pick(kEdges) : static_cast<unsigned>(below(w == 64 ? 64 : 32));
    }

    // SHL SHR SAR ROL ROR RCL RCR by 1, an immediate or CL (SDM vol. 2B, SAL/SAR/SHL/SHR and
    // RCL/RCR/ROL/ROR: "Flags Affected").
    void shift() {
        static constexpr const char* kOps[] = {"shl", "shr", "sar", "rol", "ror", "rcl", "rcr"};
        std::string op = pick(kOps);
        unsigned w = width();
        unsigned count = shift_count(w);
        unsigned masked = count & (w == 64 ? 63 : 31);
        bool through_carry = op == "rcl" || op == "rcr";
        // RCL/RCR of 8 and 16 bits rotate by the masked count mod 9 or 17; where that is 0 but the
        // masked count is not, which flags change is the vendor's choice: not generated.
        if (through_carry && w <= 16 && masked != 0 && masked % (w + 1) == 0) masked = count = 1;
        std::string operand = chance(75) ? reg_pair(w).first.name() : memory(w);
        std::string source;
        if (chance(40)) {
            emit(fmt::format("mov cl, {}", count), 0, 0);
            source = "cl";
            // The operand may be CL itself (or RCX): then it holds the count.
        } else {
            source = std::to_string(count);
        }
        if (masked == 0) {
            emit(fmt::format("{} {}, {}", op, operand, source), 0, 0);
            return;
        }
        if (through_carry) reads(CF);
        uint64_t overflow = masked == 1 ? 0 : OF;
        if (op == "rol" || op == "ror" || through_carry) {
            emit(fmt::format("{} {}, {}", op, operand, source), CF | OF, overflow);
            return;
        }
        uint64_t carry = masked >= w ? CF : 0;  // CF is undefined when the count reaches the size
        emit(fmt::format("{} {}, {}", op, operand, source), kAll, AF | overflow | carry);
    }

    // SHLD SHRD by an immediate or CL; 16-bit counts stay below 16, where the result is defined.
    void double_shift() {
        std::string op = chance(50) ? "shld" : "shrd";
        unsigned w = wide_width();
        unsigned masked = static_cast<unsigned>(below(w == 16 ? 16 : w));
        auto [a, b] = reg_pair(w);
        std::string destination = chance(75) ? a.name() : memory(w);
        std::string source;
        if (chance(40)) {
            emit(fmt::format("mov cl, {}", masked + (chance(30) ? (w == 64 ? 64 : 32) : 0)), 0, 0);
            source = "cl";
        } else {
            source = std::to_string(masked);
        }
        uint64_t overflow = masked == 1 ? 0 : OF;
        emit(fmt::format("{} {}, {}, {}", op, destination, b.name(), source), masked == 0 ? 0 : kAll,
             masked == 0 ? 0 : AF | overflow);
    }

    // MUL IMUL (one, two and three operands): CF and OF defined, SF ZF AF PF undefined.
    void multiply() {
        constexpr uint64_t kUndefined = SF | ZF | AF | PF;
        switch (below(4)) {
            case 0:
            case 1: {
                unsigned w = width();
                std::string operand = chance(70) ? reg(w).name() : memory(w);
                emit(fmt::format("{} {}", chance(50) ? "mul" : "imul", operand), CF | OF, kUndefined);
                break;
            }
            case 2: {
                unsigned w = wide_width();
                std::string source = chance(70) ? reg(w).name() : memory(w);
                emit(fmt::format("imul {}, {}", reg(w).name(), source), CF | OF, kUndefined);
                break;
            }
            default: {
                unsigned w = wide_width();
                std::string source = chance(70) ? reg(w).name() : memory(w);
                emit(fmt::format("imul {}, {}, {}", reg(w).name(), source, immediate(w)), CF | OF, kUndefined);
                break;
            }
        }
    }

    // DIV IDIV with a divisor made non-zero and a dividend whose quotient fits (SDM vol. 2A, DIV:
    // #DE "if the quotient is too large for the designated register"): unsigned, the high half
    // below the divisor; signed, a positive divisor and a sign-extended dividend.
    void divide() {
        bool is_signed = chance(50);
        unsigned w = width();
        bool in_memory = chance(30);
        std::string divisor;
        Reg d;
        if (in_memory) {
            divisor = memory(w, true);  // no base or index register: RAX and RDX change below
        } else if (w == 8) {
            static constexpr unsigned kEightBit[] = {1, 2, 3};  // CL DL BL or CH DH BH: not AL/AH
            d = Reg{pick(kEightBit), 8, chance(50)};
            divisor = d.name();
        } else {
            do d = reg(w);
            while (d.index == 0 || d.index == 2);  // not RAX/RDX
            divisor = d.name();
        }
        if (is_signed) {
            emit(fmt::format("shr {}, 1", divisor), kAll, AF | OF);
            emit(fmt::format("or {}, 1", divisor), kAll & ~AF, AF);
            static constexpr const char* kExtend[] = {"cbw", "cwd", "cdq", "cqo"};
            emit(kExtend[w == 8 ? 0 : w == 16 ? 1 : w == 32 ? 2 : 3], 0, 0);
        } else {
            unsigned bit = static_cast<unsigned>(below(w));
            if (w == 8)
                emit(fmt::format("or {}, {}", divisor, 1u << bit), kAll & ~AF, AF);
            else
                emit(fmt::format("bts {}, {}", divisor, bit), CF, OF | SF | AF | PF);
            std::string high = w == 8 ? "ah" : Reg{2, w}.name();
            emit(fmt::format("mov {}, {}", high, divisor), 0, 0);
            unsigned shift = 1 + static_cast<unsigned>(below(w - 1));
            emit(fmt::format("shr {}, {}", high, shift), kAll, AF | (shift == 1 ? 0 : OF));
        }
        emit(fmt::format("{} {}", is_signed ? "idiv" : "div", divisor), 0, kAll);
    }

    // BT BTS BTR BTC: CF defined, ZF kept, OF SF AF PF undefined.
    void bit_test() {
        static constexpr const char* kOps[] = {"bt", "bts", "btr", "btc"};
        std::string op = pick(kOps);
        unsigned w = wide_width();
        auto [a, b] = reg_pair(w);
        constexpr uint64_t kUndefined = OF | SF | AF | PF;
        switch (below(4)) {
            case 0: emit(fmt::format("{} {}, {}", op, a.name(), b.name()), CF, kUndefined); break;
            case 1: emit(fmt::format("{} {}, {}", op, a.name(), below(256)), CF, kUndefined); break;
            case 2: emit(fmt::format("{} {}, {}", op, memory(w), below(256)), CF, kUndefined); break;
            default:
                // A register bit offset reaches beyond the operand (a bit string): keep it small.
                emit(fmt::format("and {}, 255", b.name()), kAll & ~AF, AF);
                emit(fmt::format("{} {}, {}", op, memory(w, true), b.name()), CF, kUndefined);
                break;
        }
    }

    // BSF BSR (ZF defined), and POPCNT LZCNT TZCNT where the host has them.
    void bit_count() {
        unsigned w = wide_width();
        std::string source = chance(70) ? reg(w).name() : memory(w);
        std::string destination = reg(w).name();
        switch (below(4)) {
            case 0:
                if (features_.popcnt) {
                    emit(fmt::format("popcnt {}, {}", destination, source), kAll, 0);
                    return;
                }
                break;
            case 1:
                if (features_.lzcnt) {
                    emit(fmt::format("lzcnt {}, {}", destination, source), CF | ZF, OF | SF | AF | PF);
                    return;
                }
                break;
            case 2:
                if (features_.bmi1) {
                    emit(fmt::format("tzcnt {}, {}", destination, source), CF | ZF, OF | SF | AF | PF);
                    return;
                }
                break;
            default: break;
        }
        emit(fmt::format("{} {}, {}", chance(50) ? "bsf" : "bsr", destination, source), ZF, CF | OF | SF | AF | PF);
    }

    // LEA with 64-, 32- and 16-bit destinations and 64- or 32-bit addresses (no memory access).
    void lea() {
        static constexpr unsigned kScales[] = {1, 2, 4, 8};
        unsigned w = wide_width();
        unsigned address = chance(70) ? 64 : 32;
        Reg base = reg(address), index = reg(address);
        std::string form;
        switch (below(3)) {
            case 0: form = fmt::format("[{} + {}*{} {:+}]", base.name(), index.name(), pick(kScales), immediate(32)); break;
            case 1: form = fmt::format("[{} {:+}]", base.name(), immediate(8)); break;
            default: form = fmt::format("[{}*{} {:+}]", index.name(), pick(kScales), immediate(32)); break;
        }
        emit(fmt::format("lea {}, {}", reg(w).name(), form), 0, 0);
    }

    // MOVZX MOVSX MOVSXD from registers (AH-BH too) and memory.
    void extend_move() {
        std::string op = chance(50) ? "movzx" : "movsx";
        switch (below(4)) {
            case 0: {  // from AH-BH: no REX allowed, so a legacy 16/32-bit destination
                Reg destination{static_cast<unsigned>(below(4)), chance(50) ? 16u : 32u, false};
                emit(fmt::format("{} {}, {}", op, destination.name(), kHigh8[below(4)]), 0, 0);
                break;
            }
            case 1: {
                unsigned w = wide_width();
                emit(fmt::format("{} {}, {}", op, reg(w).name(), reg(8).name()), 0, 0);
                break;
            }
            case 2: {
                unsigned w = chance(50) ? 32 : 64;
                emit(fmt::format("{} {}, {}", op, reg(w).name(), chance(50) ? reg(16).name() : memory(16)), 0, 0);
                break;
            }
            default:
                emit(fmt::format("movsxd {}, {}", reg(64).name(), chance(50) ? reg(32).name() : memory(32)), 0, 0);
                break;
        }
    }

    void mov() {
        unsigned w = width();
        auto [a, b] = reg_pair(w);
        switch (below(5)) {
            case 0: emit(fmt::format("mov {}, {}", a.name(), b.name()), 0, 0); break;
            case 1: emit(fmt::format("mov {}, {}", a.name(), immediate(w)), 0, 0); break;
            case 2: emit(fmt::format("mov {}, {}", a.name(), memory(w, false, a.high)), 0, 0); break;
            case 3: emit(fmt::format("mov {}, {}", memory(w, false, b.high), b.name()), 0, 0); break;
            default: emit(fmt::format("movabs {}, {:#x}", reg(64).name(), value()), 0, 0); break;
        }
    }

    // CMOVcc (a 32-bit CMOV zero-extends even when it does not move) and SETcc.
    void conditional() {
        const Condition& cc = pick(kConditions);
        reads(cc.reads);
        if (chance(50)) {
            unsigned w = wide_width();
            std::string source = chance(70) ? reg(w).name() : memory(w);
            emit(fmt::format("cmov{} {}, {}", cc.suffix, reg(w).name(), source), 0, 0);
        } else {
            std::string operand = chance(70) ? reg_pair(8).first.name() : memory(8);
            emit(fmt::format("set{} {}", cc.suffix, operand), 0, 0);
        }
    }

    // PUSH POP of registers (also 16-bit), immediates and memory, PUSHFQ; the stack stays within
    // its page (the harness starts RSP in the middle).
    void stack() {
        constexpr int kLimit = 120;  // qwords either way, well inside the 2 KiB on each side
        bool push = depth_ < kLimit && (depth_ <= -kLimit || chance(55));
        if (push) {
            switch (below(5)) {
                case 0: emit(fmt::format("push {}", immediate(32)), 0, 0); break;
                case 1: emit(fmt::format("push {}", memory(64)), 0, 0); break;
                case 2:
                    reads(kAll);
                    emit("pushfq", 0, 0);
                    break;
                case 3:
                    emit(fmt::format("push {}", reg(16).name()), 0, 0);
                    emit(fmt::format("push {}", reg(16).name()), 0, 0);
                    emit(fmt::format("push {}", reg(16).name()), 0, 0);
                    emit(fmt::format("push {}", reg(16).name()), 0, 0);
                    break;
                default: emit(fmt::format("push {}", reg(64).name()), 0, 0); break;
            }
            ++depth_;
        } else {
            switch (below(3)) {
                case 0: emit(fmt::format("pop {}", memory(64)), 0, 0); break;
                case 1:
                    emit(fmt::format("pop {}", reg(16).name()), 0, 0);
                    emit(fmt::format("pop {}", reg(16).name()), 0, 0);
                    emit(fmt::format("pop {}", reg(16).name()), 0, 0);
                    emit(fmt::format("pop {}", reg(16).name()), 0, 0);
                    break;
                default: emit(fmt::format("pop {}", reg(64).name()), 0, 0); break;
            }
            --depth_;
        }
    }

    // MOVS STOS LODS CMPS SCAS at each size, with REP/REPE/REPNE and 0-8 elements, either direction.
    void string() {
        static constexpr const char* kOps[] = {"movs", "stos", "lods", "cmps", "scas"};
        static constexpr char kSizes[] = {'b', 'w', 'd', 'q'};
        std::string op = pick(kOps);
        bool compares = op == "cmps" || op == "scas";
        if (chance(50)) emit(chance(50) ? "cld" : "std", 0, 0);
        emit(fmt::format("lea rsi, [DATA + {:#x}]", 0x100 + below(0x40)), 0, 0);
        emit(fmt::format("lea rdi, [DATA + {:#x}]", 0x280 + below(0x40)), 0, 0);
        uint64_t count = below(9);
        std::string prefix;
        if (chance(70)) {
            prefix = compares ? (chance(50) ? "repe " : "repne ") : "rep ";
            emit(fmt::format("mov ecx, {}", count), 0, 0);
        } else {
            count = 1;
        }
        emit(fmt::format("{}{}{}", prefix, op, pick(kSizes)), compares && count ? kAll : 0, 0);
    }

    // XCHG (implicitly locked with memory) CMPXCHG XADD CMPXCHG8B, with and without LOCK.
    void exchange() {
        unsigned w = width();
        auto [a, b] = reg_pair(w);
        Reg accumulator{0, w, false};
        switch (below(5)) {
            case 0:
                if (chance(50))
                    emit(fmt::format("xchg {}, {}", a.name(), b.name()), 0, 0);
                else
                    emit(fmt::format("xchg {}, {}", memory(w, true), b.name()), 0, 0);
                break;
            case 1: {  // CMPXCHG compares with the accumulator: make them equal now and then
                if (chance(50)) {
                    if (chance(40)) emit(fmt::format("mov {}, {}", accumulator.name(), a.name()), 0, 0);
                    emit(fmt::format("cmpxchg {}, {}", a.name(), b.name()), kAll, 0);
                } else {
                    std::string m = memory(w, true);
                    if (chance(40)) emit(fmt::format("mov {}, {}", accumulator.name(), m), 0, 0);
                    emit(fmt::format("{}cmpxchg {}, {}", chance(50) ? "lock " : "", m, b.name()), kAll, 0);
                }
                break;
            }
            case 2:
                if (chance(50))
                    emit(fmt::format("xadd {}, {}", a.name(), b.name()), kAll, 0);
                else
                    emit(fmt::format("{}xadd {}, {}", chance(50) ? "lock " : "", memory(w, true, b.high), b.name()), kAll, 0);
                break;
            case 3: {
                uint64_t offset = below(kRandomDataSize / 8) * 8;
                if (chance(40)) {
                    emit(fmt::format("mov eax, [DATA + {:#x}]", offset), 0, 0);
                    emit(fmt::format("mov edx, [DATA + {:#x}]", offset + 4), 0, 0);
                }
                emit(fmt::format("{}cmpxchg8b qword ptr [DATA + {:#x}]", chance(50) ? "lock " : "", offset), ZF, 0);
                break;
            }
            default: emit(fmt::format("bswap {}", reg(chance(50) ? 32 : 64).name()), 0, 0); break;
        }
    }

    // Sign extensions of the accumulator, CLC STC CMC, LAHF SAHF, XLAT.
    void misc() {
        switch (below(6)) {
            case 0: {
                static constexpr const char* kOps[] = {"cbw", "cwde", "cdqe", "cwd", "cdq", "cqo"};
                emit(pick(kOps), 0, 0);
                break;
            }
            case 1: emit(chance(50) ? "clc" : "stc", CF, 0); break;
            case 2:
                reads(CF);
                emit("cmc", CF, 0);
                break;
            case 3:
                reads(SF | ZF | AF | PF | CF);
                emit("lahf", 0, 0);
                break;
            case 4: emit("sahf", SF | ZF | AF | PF | CF, 0); break;
            default:
                emit(fmt::format("lea rbx, [DATA + {:#x}]", below(0x300)), 0, 0);
                emit("xlatb", 0, 0);
                break;
        }
    }

    // Jcc over one instruction: afterwards a flag is undefined if either path leaves it so.
    void skip_one() {
        const Condition& cc = pick(kConditions);
        reads(cc.reads);
        emit(fmt::format("j{} 1f", cc.suffix), 0, 0);
        uint64_t before = undefined_;
        switch (below(4)) {
            case 0: alu(); break;
            case 1: unary(); break;
            case 2: shift(); break;
            default: mov(); break;
        }
        emit("1:", 0, 0);
        undefined_ |= before;
    }

    std::mt19937_64 random_;
    HostFeatures features_;
    std::string code_;
    uint64_t undefined_ = 0;
    int depth_ = 0;
};

}  // namespace

std::vector<Case> random_integer_sequences(uint64_t seed, size_t count, size_t length, HostFeatures features) {
    Generator generator(seed, features);
    std::vector<Case> cases;
    cases.reserve(count);
    for (size_t i = 0; i < count; ++i) cases.push_back(generator.sequence(i, length));
    return cases;
}

}  // namespace strata::differential
