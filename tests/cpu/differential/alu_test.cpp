// Differential cases of the integer ALU families (src/cpu/soft/exec/arith, logic, shift, bit,
// muldiv): hand-picked edges per instruction and operand size — carry and overflow boundaries,
// shift counts 0/1/width-1/width/masked, zero operands, AH..BH, memory operands (BT with offsets far
// outside the operand, LOCK forms) and the exceptions (#DE, #PF with W for read-modify-write).
//
// Registers start with garbage above the operand (kUpper), so that 8/16-bit writes are seen to
// merge and 32-bit writes to zero-extend. Each case names the flags the SDM leaves undefined. The
// soft engine reproduces this AMD host's values for those (see the family files), so on an AMD
// reference they are compared too; elsewhere they are masked, and the few cases whose *results*
// the SDM leaves undefined (16-bit SHLD/SHRD by more than 16) run only on AMD. BSF/BSR's undefined
// flags differ between AMD models (an EPYC of one generation left them unchanged, a later one
// clears CF, OF, SF and AF and sets PF from the result), so they are never compared.
#include <gtest/gtest.h>


#include <cstring>
#include <string>
#include <vector>

#include "cpu/differential/harness.hpp"

namespace strata::differential {
namespace {

using enum Gpr;
using namespace flag;

constexpr uint64_t kUpper = 0x1122'3344'5566'7788;
constexpr unsigned kSizes[] = {1, 2, 4, 8};

uint64_t mask_of(unsigned size) { return size == 8 ? ~0ull : (1ull << (size * 8)) - 1; }
uint64_t sign_of(unsigned size) { return 1ull << (size * 8 - 1); }
// `value` in the operand's bits, kUpper's bits above them.
uint64_t with_upper(uint64_t value, unsigned size) { return (kUpper & ~mask_of(size)) | (value & mask_of(size)); }

// The register of RAX..RBX (a, b, c, d) at `size` bytes.
std::string reg(char which, unsigned size) {
    std::string base(1, which);
    switch (size) {
        case 1: return base + "l";
        case 2: return base + "x";
        case 4: return "e" + base + "x";
        default: return "r" + base + "x";
    }
}
std::string ptr(unsigned size) {
    switch (size) {
        case 1: return "byte ptr";
        case 2: return "word ptr";
        case 4: return "dword ptr";
        default: return "qword ptr";
    }
}
std::string hex(uint64_t v) {
    char text[24];
    std::snprintf(text, sizeof text, "%#llx", static_cast<unsigned long long>(v));
    return text;
}

// On an AMD reference every flag is compared but a case's model_flags; elsewhere the SDM's undefined
// ones are not.
std::vector<Case> for_this_host(std::vector<Case> cases) {
    if (host_is_amd()) for (Case& c : cases) c.undefined_flags = 0;
    return cases;
}

// --- ADD, ADC, SUB, SBB, CMP, NEG, INC, DEC, and the decimal adjustments' #UD ---

std::vector<Case> arith_cases() {
    std::vector<Case> cases;
    // The register-register grid of ADD/ADC/SUB/SBB/CMP/NEG/INC/DEC over boundary operands is
    // integer_arith_test.cpp's; these are the other forms.
    for (unsigned size : kSizes) {
        std::string a = reg('a', size);
        // Immediates: sign-extended imm8 and, for 64-bit operands, imm32.
        cases.push_back({.name = "add " + a + ", -1", .code = "add " + a + ", -1", .regs = {{Rax, with_upper(1, size)}}});
        cases.push_back({.name = "sub " + a + ", 0x7f", .code = "sub " + a + ", 0x7f", .regs = {{Rax, with_upper(0x7e, size)}}});
        cases.push_back({.name = "cmp " + a + ", -128", .code = "cmp " + a + ", -128", .regs = {{Rax, with_upper(0x80, size)}}});
    }
    cases.push_back({.name = "add rax, imm32 sign-extended", .code = "add rax, -0x80000000", .regs = {{Rax, 0x8000'0000}}});
    cases.push_back({.name = "adc eax, imm32", .code = "adc eax, 0x7fffffff", .regs = {{Rax, kUpper}}, .flags = CF});
    cases.push_back({.name = "and rax, imm32 sign-extended", .code = "and rax, -2", .regs = {{Rax, kUpper | 1}}});
    // AF: carries out of bit 3 in each direction.
    cases.push_back({.name = "add AF", .code = "add al, bl", .regs = {{Rax, 0x0f}, {Rbx, 0x01}}});
    cases.push_back({.name = "sub AF", .code = "sub al, bl", .regs = {{Rax, 0x10}, {Rbx, 0x01}}});
    cases.push_back({.name = "adc AF by carry", .code = "adc al, bl", .regs = {{Rax, 0x0f}, {Rbx, 0}}, .flags = CF});
    cases.push_back({.name = "sbb AF by borrow", .code = "sbb al, bl", .regs = {{Rax, 0x10}, {Rbx, 0}}, .flags = CF});
    cases.push_back({.name = "inc AF", .code = "inc bl", .regs = {{Rbx, 0x2f}}});
    cases.push_back({.name = "dec AF", .code = "dec bl", .regs = {{Rbx, 0x30}}});
    // High byte registers.
    cases.push_back({.name = "add ah, bh", .code = "add ah, bh", .regs = {{Rax, 0x1234'80ff}, {Rbx, 0x5678'80ee}}});
    cases.push_back({.name = "sub ch, dl", .code = "sub ch, dl", .regs = {{Rcx, 0x1234'01ff}, {Rdx, 0x5678'8002}}});
    cases.push_back({.name = "adc dh, ah", .code = "adc dh, ah", .regs = {{Rdx, 0xff00}, {Rax, 0x0000}}, .flags = CF});
    cases.push_back({.name = "neg bh", .code = "neg bh", .regs = {{Rbx, 0x8000}}});
    cases.push_back({.name = "inc ah", .code = "inc ah", .regs = {{Rax, 0x7f00}}});
    cases.push_back({.name = "dec ch keeps CF", .code = "dec ch", .regs = {{Rcx, 0x8000}}, .flags = CF});
    cases.push_back({.name = "cmp bh, 1", .code = "cmp bh, 1", .regs = {{Rbx, 0x0000}}});
    // REX byte registers.
    cases.push_back({.name = "add sil, dil", .code = "add sil, dil", .regs = {{Rsi, 0x80}, {Rdi, 0x80}}});
    cases.push_back({.name = "sub r9b, r10b", .code = "sub r9b, r10b", .regs = {{R9, 0}, {R10, 1}}});
    // Memory operands, both directions, and LOCK.
    cases.push_back({.name = "add mem, reg", .code = "add qword ptr [DATA + 8], rax", .regs = {{Rax, ~0ull}}, .data = qwords({0, 1})});
    cases.push_back({.name = "add reg, mem", .code = "add eax, dword ptr [DATA + 8]", .regs = {{Rax, kUpper}}, .data = qwords({0, 0xffff'ffff})});
    cases.push_back({.name = "sub mem8, imm", .code = "sub byte ptr [DATA + 3], 0x81", .data = qwords({0x7f00'0000})});
    cases.push_back({.name = "cmp mem16, reg", .code = "cmp word ptr [DATA], bx", .regs = {{Rbx, 0x8000}}, .data = qwords({0x7fff})});
    cases.push_back({.name = "lock add mem", .code = "lock add dword ptr [DATA + 4], ebx", .regs = {{Rbx, 0x8000'0000}}, .data = qwords({0x8000'0000'0000'0000})});
    cases.push_back({.name = "lock adc mem8", .code = "lock adc byte ptr [DATA], 0x7f", .flags = CF, .data = qwords({0})});
    cases.push_back({.name = "lock sub mem64", .code = "lock sub qword ptr [DATA], rax", .regs = {{Rax, 1}}, .data = qwords({0})});
    cases.push_back({.name = "lock sbb mem16", .code = "lock sbb word ptr [DATA + 2], 1", .flags = CF, .data = qwords({0x0001'0000})});
    cases.push_back({.name = "lock neg mem", .code = "lock neg dword ptr [DATA]", .data = qwords({0x8000'0000})});
    cases.push_back({.name = "lock inc mem", .code = "lock inc qword ptr [DATA]", .flags = CF, .data = qwords({0x7fff'ffff'ffff'ffff})});
    cases.push_back({.name = "lock dec mem", .code = "lock dec word ptr [DATA]", .data = qwords({0})});
    cases.push_back({.name = "inc mem unaligned across pages is not atomic but correct",
                     .code = "inc dword ptr [DATA + 0xffe]", .data = std::vector<uint8_t>(0x1002, 0xff)});
    // LOCK needs a memory destination that the instruction writes; otherwise #UD.
    cases.push_back({.name = "lock add reg is #UD", .code = ".byte 0xf0, 0x01, 0xd8"});  // lock add eax, ebx
    cases.push_back({.name = "lock cmp mem is #UD", .code = ".byte 0xf0, 0x39, 0x04, 0x25; .long DATA"});
    // A read-modify-write faults as a write, even where a read would not.
    cases.push_back({.name = "add to read-only page", .code = "add dword ptr [READONLY], eax", .regs = {{Rax, 1}}});
    cases.push_back({.name = "add to unmapped page", .code = "add dword ptr [UNMAPPED], eax"});
    cases.push_back({.name = "lock inc unmapped page", .code = "lock inc dword ptr [UNMAPPED]"});
    cases.push_back({.name = "inc supervisor page", .code = "inc byte ptr [SUPERVISOR]"});
    cases.push_back({.name = "cmp unmapped page reads", .code = "cmp dword ptr [UNMAPPED], eax"});
    cases.push_back({.name = "cmp read-only page", .code = "cmp dword ptr [READONLY], eax"});
    // Legacy-only decimal adjustments are invalid in 64-bit mode.
    for (const char* op : {".byte 0x27", ".byte 0x2f", ".byte 0x37", ".byte 0x3f", ".byte 0xd4, 10", ".byte 0xd5, 10"})
        cases.push_back({.name = std::string("64-bit #UD ") + op, .code = op});
    return cases;
}

// --- AND, OR, XOR, NOT, TEST ---

std::vector<Case> logic_cases() {
    std::vector<Case> cases;
    for (unsigned size : kSizes) {
        std::string a = reg('a', size), b = reg('b', size);
        uint64_t pattern = 0x5a5a'5a5a'5a5a'5a5a & mask_of(size);
        for (auto [x, y] : {std::pair{uint64_t{0}, mask_of(size)}, {mask_of(size), mask_of(size)},
                            {sign_of(size), sign_of(size)}, {pattern, ~pattern & mask_of(size)}, {pattern, 1}}) {
            auto regs = std::vector<std::pair<Gpr, uint64_t>>{{Rax, with_upper(x, size)}, {Rbx, with_upper(y, size)}};
            for (const char* op : {"and", "or", "xor", "test"})
                cases.push_back({.name = std::string(op) + " " + a + " " + hex(x) + ", " + hex(y),
                                 .code = std::string(op) + " " + a + ", " + b, .regs = regs, .flags = kStatus,
                                 .undefined_flags = AF});
        }
        cases.push_back({.name = "not " + a, .code = "not " + a, .regs = {{Rax, with_upper(0x5a, size)}}, .flags = CF | OF});
        cases.push_back({.name = "xor " + a + " self", .code = "xor " + a + ", " + a, .regs = {{Rax, kUpper}}, .undefined_flags = AF});
    }
    cases.push_back({.name = "test ah, imm", .code = "test ah, 0x80", .regs = {{Rax, 0x8000}}, .undefined_flags = AF});
    cases.push_back({.name = "and bh, ch", .code = "and bh, ch", .regs = {{Rbx, 0xf0ff}, {Rcx, 0x3c00}}, .undefined_flags = AF});
    cases.push_back({.name = "or mem, imm32 sign-extended", .code = "or qword ptr [DATA], -16", .data = qwords({5}), .undefined_flags = AF});
    cases.push_back({.name = "test mem, reg", .code = "test dword ptr [DATA], eax", .regs = {{Rax, 0x8000'0000}}, .data = qwords({0xffff'ffff}), .undefined_flags = AF});
    cases.push_back({.name = "lock and mem", .code = "lock and dword ptr [DATA], ebx", .regs = {{Rbx, 0xff00ff}}, .data = qwords({0x12345678}), .undefined_flags = AF});
    cases.push_back({.name = "lock or mem8", .code = "lock or byte ptr [DATA + 7], 0x80", .data = qwords({0}), .undefined_flags = AF});
    cases.push_back({.name = "lock xor mem16", .code = "lock xor word ptr [DATA], ax", .regs = {{Rax, 0xffff}}, .data = qwords({0xffff}), .undefined_flags = AF});
    cases.push_back({.name = "lock not mem", .code = "lock not qword ptr [DATA]", .data = qwords({0x0f0f})});
    cases.push_back({.name = "not read-only page", .code = "not dword ptr [READONLY]"});
    cases.push_back({.name = "lock test is #UD", .code = ".byte 0xf0, 0x85, 0x04, 0x25; .long DATA"});
    return cases;
}

// --- Shifts and rotates ---

std::vector<Case> shift_cases() {
    std::vector<Case> cases;
    for (unsigned size : kSizes) {
        unsigned bits = size * 8;
        std::string a = reg('a', size);
        uint64_t values[] = {(sign_of(size) | 1), 0x5a5a'5a5a'c3c3'a5a5 & mask_of(size)};
        std::vector<unsigned> counts = {0, 1, 2, bits - 1, bits, bits + 1, 31, 32, 33, 63, 64, 65};
        for (const char* op : {"shl", "shr", "sar", "rol", "ror", "rcl", "rcr"}) {
            bool through_carry = op[1] == 'c';
            bool rotate = op[0] == 'r';
            for (unsigned count : counts)
                for (uint64_t v : values)
                    for (uint64_t carry : through_carry ? std::vector<uint64_t>{0, CF} : std::vector<uint64_t>{CF}) {
                        unsigned masked = count & (size == 8 ? 63 : 31);
                        uint64_t undefined = 0;
                        if (masked != 0) {
                            if (masked != 1) undefined |= OF;
                            if (!rotate) undefined |= AF;
                            if (op[1] == 'h' && masked >= bits) undefined |= CF;  // SHL/SHR by the width or more
                        }
                        cases.push_back({.name = std::string(op) + " " + a + " " + hex(v) + " by " + std::to_string(count) +
                                                 " CF=" + std::to_string(carry),
                                         .code = std::string(op) + " " + a + ", cl",
                                         .regs = {{Rax, with_upper(v, size)}, {Rcx, count}},
                                         .flags = carry | (rotate ? ZF | SF | PF | AF : OF),
                                         .undefined_flags = undefined});
                    }
        }
        // The by-1 and by-imm8 encodings.
        for (const char* op : {"shl", "shr", "sar", "rol", "ror", "rcl", "rcr"}) {
            cases.push_back({.name = std::string(op) + " " + a + ", 1", .code = std::string(op) + " " + a + ", 1",
                             .regs = {{Rax, with_upper(sign_of(size) | 0x40, size)}}, .flags = CF,
                             .undefined_flags = op[0] == 'r' ? 0 : AF});
            cases.push_back({.name = std::string(op) + " " + a + ", 5", .code = std::string(op) + " " + a + ", 5",
                             .regs = {{Rax, with_upper(0x5a5a'5a5a'5a5a'5a5a, size)}},
                             .undefined_flags = (op[0] == 'r' ? 0 : AF) | OF});
        }
    }
    // High byte register, memory, and a zero count on a read-only page (the write still happens).
    cases.push_back({.name = "shl ah, cl", .code = "shl ah, cl", .regs = {{Rax, 0x4100}, {Rcx, 2}}, .undefined_flags = AF | OF});
    cases.push_back({.name = "rcr bh, 1", .code = "rcr bh, 1", .regs = {{Rbx, 0x0100}}, .flags = CF});
    cases.push_back({.name = "sar mem, cl", .code = "sar dword ptr [DATA], cl", .regs = {{Rcx, 4}}, .data = qwords({0x8000'0010}), .undefined_flags = AF | OF});
    cases.push_back({.name = "rol mem16, 4", .code = "rol word ptr [DATA + 2], 4", .data = qwords({0xabcd'0000}), .undefined_flags = OF});
    cases.push_back({.name = "shl read-only by 0", .code = "shl dword ptr [READONLY], cl"});
    cases.push_back({.name = "shl eax by 0 zero-extends", .code = "shl eax, cl", .regs = {{Rax, kUpper}}, .flags = kStatus});
    cases.push_back({.name = "rcl eax by 0 zero-extends", .code = "rcl eax, cl", .regs = {{Rax, kUpper}}, .flags = kStatus});

    // SHLD / SHRD.
    for (unsigned size : {2u, 4u, 8u}) {
        unsigned bits = size * 8;
        std::string a = reg('a', size), b = reg('b', size);
        std::vector<unsigned> counts = {0, 1, 2, bits - 1, 31, 32, 33, 63, 64};
        if (size == 2) counts.push_back(16);
        for (const char* op : {"shld", "shrd"})
            for (unsigned count : counts) {
                unsigned masked = count & (size == 8 ? 63 : 31);
                if (masked > bits) continue;  // result undefined: in the AMD-only cases below
                uint64_t undefined = masked == 0 ? 0 : (AF | (masked == 1 ? 0 : OF));
                cases.push_back({.name = std::string(op) + " " + a + " by " + std::to_string(count),
                                 .code = std::string(op) + " " + a + ", " + b + ", cl",
                                 .regs = {{Rax, with_upper(0x8765'4321'0fed'cba9, size)},
                                          {Rbx, with_upper(0xa5a5'5a5a'c3c3'3c3c, size)},
                                          {Rcx, count}},
                                 .flags = count == 0 ? kStatus : 0,
                                 .undefined_flags = undefined});
            }
        cases.push_back({.name = "shld " + a + ", imm", .code = "shld " + a + ", " + b + ", 3",
                         .regs = {{Rax, with_upper(0x6000'0000'0000'6000, size)}, {Rbx, ~0ull}}, .undefined_flags = AF | OF});
        cases.push_back({.name = "shrd " + a + ", 1", .code = "shrd " + a + ", " + b + ", 1",
                         .regs = {{Rax, with_upper(1, size)}, {Rbx, 1}}, .undefined_flags = AF});
    }
    cases.push_back({.name = "shld mem", .code = "shld qword ptr [DATA], rbx, 8", .regs = {{Rbx, 0xff00'0000'0000'0000}},
                     .data = qwords({0x0011'2233'4455'6677}), .undefined_flags = AF | OF});
    cases.push_back({.name = "shrd mem16 by cl", .code = "shrd word ptr [DATA], bx, cl", .regs = {{Rbx, 0x00ff}, {Rcx, 4}},
                     .data = qwords({0x1234}), .undefined_flags = AF | OF});
    return cases;
}

// 16-bit SHLD/SHRD by 17-31: the SDM leaves the destination undefined; the soft engine gives what
// AMD gives.
std::vector<Case> amd_double_shift_cases() {
    std::vector<Case> cases;
    for (const char* op : {"shld", "shrd"})
        for (unsigned count : {17u, 18u, 24u, 31u})
            cases.push_back({.name = std::string(op) + " ax by " + std::to_string(count),
                             .code = std::string(op) + " ax, bx, cl",
                             .regs = {{Rax, with_upper(0x8421, 2)}, {Rbx, with_upper(0xc3a5, 2)}, {Rcx, count}}});
    return cases;
}

// --- BT, BTS, BTR, BTC, BSF, BSR, TZCNT, LZCNT, POPCNT ---

std::vector<Case> bit_cases() {
    std::vector<Case> cases;
    constexpr uint64_t kStatusButCf = kStatus & ~CF;
    for (unsigned size : {2u, 4u, 8u}) {
        unsigned bits = size * 8;
        std::string a = reg('a', size), b = reg('b', size);
        for (const char* op : {"bt", "bts", "btr", "btc"}) {
            // Register base: the offset is taken modulo the width.
            for (uint64_t offset : {uint64_t{0}, uint64_t{bits - 1}, uint64_t{bits}, uint64_t{bits + 5}, mask_of(size)})
                cases.push_back({.name = std::string(op) + " " + a + ", " + b + " offset " + hex(offset),
                                 .code = std::string(op) + " " + a + ", " + b,
                                 .regs = {{Rax, with_upper(0x8000'0000'0000'0001 | sign_of(size), size)}, {Rbx, with_upper(offset, size)}},
                                 .flags = kStatusButCf, .undefined_flags = OF | SF | AF | PF});
            cases.push_back({.name = std::string(op) + " " + a + ", imm past the width",
                             .code = std::string(op) + " " + a + ", " + std::to_string(bits + 3),
                             .regs = {{Rax, with_upper(0x18, size)}}, .undefined_flags = OF | SF | AF | PF});
            // Memory base, register offset: signed, reaching far outside the operand.
            for (int64_t offset : {int64_t{0}, int64_t{bits - 1}, int64_t{bits}, int64_t{1000}, int64_t{0x7fff}, int64_t{-1},
                                   int64_t{-int64_t(bits)}, int64_t{-1001}, int64_t{-0x8000}})
                cases.push_back({.name = std::string(op) + " mem" + std::to_string(bits) + ", " + b + " offset " + std::to_string(offset),
                                 .code = std::string(op) + " " + ptr(size) + " [DATA + 0x1000], " + b,
                                 .regs = {{Rbx, with_upper(static_cast<uint64_t>(offset), size)}},
                                 .flags = ZF, .data = std::vector<uint8_t>(0x2000, 0x96),
                                 .undefined_flags = OF | SF | AF | PF});
            cases.push_back({.name = std::string(op) + " mem, imm past the width",
                             .code = std::string(op) + " " + ptr(size) + " [DATA + 0x10], " + std::to_string(bits + 1),
                             .data = qwords({0x0202'0202'0202'0202, 0x0202'0202'0202'0202, ~0ull}), .undefined_flags = OF | SF | AF | PF});
        }
        // BSF/BSR/TZCNT/LZCNT/POPCNT: sources 0 (destination unchanged for BSF/BSR), 1, the sign bit, a pattern.
        for (uint64_t src : {uint64_t{0}, uint64_t{1}, sign_of(size), 0x0f00'0000'0100'0ff0 & mask_of(size)})
            for (const char* op : {"bsf", "bsr", "tzcnt", "lzcnt", "popcnt"}) {
                bool scan = op[0] == 'b';
                bool count = op[0] != 'p' && !scan;
                cases.push_back({.name = std::string(op) + " " + a + ", " + hex(src),
                                 .code = std::string(op) + " " + a + ", " + b,
                                 .regs = {{Rax, kUpper}, {Rbx, with_upper(src, size)}},
                                 .flags = size == 4 ? kStatus : 0,
                                 .undefined_flags = scan ? CF | OF | SF | AF | PF : count ? OF | SF | AF | PF : 0,
                                 .model_flags = scan ? CF | OF | SF | AF | PF : 0});
            }
    }
    // Bit offsets beyond 2^31 with 64-bit operands, and a BT/BTS read fault vs write fault.
    cases.push_back({.name = "bt mem64 offset -2^40", .code = "bt qword ptr [rdi], rbx",
                     .regs = {{Rdi, layout::kData + (1ull << 37) + 8}, {Rbx, ~((1ull << 40) - 1) | 3}},
                     .data = qwords({0, 8}), .undefined_flags = OF | SF | AF | PF});
    cases.push_back({.name = "bt unmapped reads", .code = "bt dword ptr [UNMAPPED], eax"});
    cases.push_back({.name = "bts read-only writes", .code = "bts dword ptr [READONLY], eax"});
    cases.push_back({.name = "bt read-only", .code = "bt dword ptr [READONLY], eax", .undefined_flags = OF | SF | AF | PF});
    cases.push_back({.name = "bts offset into unmapped page", .code = "bts dword ptr [READONLY - 4], eax", .regs = {{Rax, 0x1000 * 8 + 4 * 8}}});
    cases.push_back({.name = "lock bts mem", .code = "lock bts qword ptr [DATA + 0x100], rax", .regs = {{Rax, 64 * 3 + 63}},
                     .undefined_flags = OF | SF | AF | PF});
    cases.push_back({.name = "lock btr mem negative", .code = "lock btr dword ptr [DATA + 0x100], eax", .regs = {{Rax, static_cast<uint32_t>(-33)}},
                     .data = std::vector<uint8_t>(0x200, 0xff), .undefined_flags = OF | SF | AF | PF});
    cases.push_back({.name = "lock btc mem imm", .code = "lock btc word ptr [DATA], 17", .data = qwords({3}),
                     .undefined_flags = OF | SF | AF | PF});
    cases.push_back({.name = "lock bt is #UD", .code = ".byte 0xf0, 0x0f, 0xa3, 0x04, 0x25; .long DATA"});
    cases.push_back({.name = "lock bts reg is #UD", .code = ".byte 0xf0, 0x0f, 0xab, 0xc3"});
    cases.push_back({.name = "bsf mem", .code = "bsf rax, qword ptr [DATA]", .data = qwords({1ull << 40}),
                     .undefined_flags = CF | OF | SF | AF | PF, .model_flags = CF | OF | SF | AF | PF});
    cases.push_back({.name = "popcnt mem16", .code = "popcnt ax, word ptr [DATA]", .regs = {{Rax, kUpper}}, .flags = kStatus, .data = qwords({0xf0f1})});
    return cases;
}

// --- MUL, IMUL, DIV, IDIV ---

std::vector<Case> muldiv_cases() {
    std::vector<Case> cases;
    constexpr uint64_t kMulUndefined = SF | ZF | AF | PF;
    constexpr uint64_t kDivUndefined = kStatus;
    for (unsigned size : kSizes) {
        std::string a = reg('a', size), b = reg('b', size);
        uint64_t m = mask_of(size), s = sign_of(size);
        for (auto [x, y] : {std::pair{uint64_t{0}, m}, {m, m}, {m, uint64_t{1}}, {s, uint64_t{2}}, {s - 1, uint64_t{2}},
                            {s, m}, {s - 1, s - 1}, {uint64_t{3}, uint64_t{5}}}) {
            auto regs = std::vector<std::pair<Gpr, uint64_t>>{{Rax, with_upper(x, size)}, {Rbx, with_upper(y, size)}, {Rdx, kUpper}};
            for (const char* op : {"mul", "imul"})
                cases.push_back({.name = std::string(op) + " " + b + " " + hex(x) + " * " + hex(y),
                                 .code = std::string(op) + " " + b, .regs = regs, .flags = kStatus,
                                 .undefined_flags = kMulUndefined});
            if (size > 1) {
                cases.push_back({.name = "imul " + a + ", " + b + " " + hex(x) + " * " + hex(y),
                                 .code = "imul " + a + ", " + b, .regs = regs, .undefined_flags = kMulUndefined});
                cases.push_back({.name = "imul " + a + ", " + b + ", -3 " + hex(y),
                                 .code = "imul " + a + ", " + b + ", -3", .regs = regs, .flags = kStatus,
                                 .undefined_flags = kMulUndefined});
            }
        }
        std::string d = size == 1 ? "ah" : reg('d', size);
        // Dividends as (high, low) halves; divisors; which raise #DE is what is compared.
        struct Division {
            uint64_t high, low, divisor;
        };
        uint64_t half = size == 1 ? 0xff : m;
        for (Division div : {Division{0, 100, 7}, {0, m, 1}, {0, 5, 0}, {1, 0, 1}, {1, 0, 2}, {half - 1, m, half},
                             {0, s, m}, {half, s, m}, {half, m, m}, {0, s - 1, m}, {half, 0, 2}, {half, 1, m}}) {
            std::vector<std::pair<Gpr, uint64_t>> regs;
            if (size == 1) {
                regs = {{Rax, (kUpper & ~0xffffull) | ((div.high & 0xff) << 8) | (div.low & 0xff)}};
            } else {
                regs = {{Rax, with_upper(div.low, size)}, {Rdx, with_upper(div.high, size)}};
            }
            regs.push_back({Rbx, with_upper(div.divisor, size)});
            for (const char* op : {"div", "idiv"})
                cases.push_back({.name = std::string(op) + " " + b + " (" + d + "=" + hex(div.high) + ", low=" + hex(div.low) +
                                         ") / " + hex(div.divisor),
                                 .code = std::string(op) + " " + b, .regs = regs, .flags = CF | OF | ZF,
                                 .undefined_flags = kDivUndefined});
        }
        // The most negative dividend by -1: the quotient does not fit.
        std::vector<std::pair<Gpr, uint64_t>> regs;
        if (size == 1) regs = {{Rax, 0x8000}};
        else regs = {{Rax, 0}, {Rdx, with_upper(s, size)}};
        regs.push_back({Rbx, with_upper(m, size)});
        cases.push_back({.name = "idiv " + b + " INT_MIN / -1", .code = "idiv " + b, .regs = regs, .undefined_flags = kDivUndefined});
    }
    cases.push_back({.name = "mul bh", .code = "mul bh", .regs = {{Rax, 0xffff'00ff}, {Rbx, 0xff00}}, .undefined_flags = kMulUndefined});
    cases.push_back({.name = "imul mem", .code = "imul rcx, qword ptr [DATA], 0x7fffffff", .data = qwords({~0ull - 2}), .undefined_flags = kMulUndefined});
    cases.push_back({.name = "div mem", .code = "div dword ptr [DATA]", .regs = {{Rax, 1000}, {Rdx, 0}}, .data = qwords({7}), .undefined_flags = kDivUndefined});
    cases.push_back({.name = "idiv mem8 negative", .code = "idiv byte ptr [DATA]", .regs = {{Rax, 0xff9c}}, .data = qwords({7}), .undefined_flags = kDivUndefined});
    cases.push_back({.name = "div unmapped", .code = "div dword ptr [UNMAPPED]"});
    return cases;
}

TEST(DifferentialAlu, Arith) { compare(EngineKind::Kvm, EngineKind::Soft, for_this_host(arith_cases())); }
TEST(DifferentialAlu, Logic) { compare(EngineKind::Kvm, EngineKind::Soft, for_this_host(logic_cases())); }
TEST(DifferentialAlu, Shift) { compare(EngineKind::Kvm, EngineKind::Soft, for_this_host(shift_cases())); }
TEST(DifferentialAlu, ShiftDoubleBeyondWidthAsAmd) {
    if (!host_is_amd()) GTEST_SKIP() << "the soft engine models AMD's results here; the reference is not AMD";
    compare(EngineKind::Kvm, EngineKind::Soft, amd_double_shift_cases());
}
TEST(DifferentialAlu, Bit) { compare(EngineKind::Kvm, EngineKind::Soft, for_this_host(bit_cases())); }
TEST(DifferentialAlu, MulDiv) { compare(EngineKind::Kvm, EngineKind::Soft, for_this_host(muldiv_cases())); }

}  // namespace
}  // namespace strata::differential
