// Bitwise logic: AND, OR, XOR, NOT, TEST (Intel SDM vol. 2A/2B, each instruction's "Operation"
// and "Flags Affected"). AND, OR, XOR and TEST clear OF and CF and set SF, ZF, PF by the result
// (LazyFlags' Logic kind); AF is undefined and the Logic kind clears it, as this AMD host does.
// NOT changes no flags. LOCK (vol. 2A "LOCK"): AND, OR, XOR, NOT with a memory destination update
// it atomically (alu.hpp); TEST never takes LOCK (the decoder refuses it).
#include "cpu/soft/exec/forms.hpp"

namespace strata::soft {

namespace {

// dst OP src; CF = OF = AF = 0, SF/ZF/PF by the result.
struct LogicFlags {
    static void flags(Cpu& cpu, unsigned size, uint64_t result, uint64_t, uint64_t) { cpu.flags.set_logic(size, result); }
};
struct And : LogicFlags {
    static constexpr bool kWrites = true;
    static uint64_t compute(uint64_t d, uint64_t s) { return d & s; }
};
struct Or : LogicFlags {
    static constexpr bool kWrites = true;
    static uint64_t compute(uint64_t d, uint64_t s) { return d | s; }
};
struct Xor : LogicFlags {
    static constexpr bool kWrites = true;
    static uint64_t compute(uint64_t d, uint64_t s) { return d ^ s; }
};
// TEST: AND without writing the result.
struct Test : And {
    static constexpr bool kWrites = false;
};

// NOT changes no flags.
struct Not {
    static uint64_t compute(uint64_t d) { return ~d; }
    static void flags(Cpu&, unsigned, uint64_t, uint64_t) {}
};


}  // namespace

void bind_logic(HandlerTable& table) {
    table.bind(ZYDIS_MNEMONIC_AND, &binary_handler<And>, &Binary<And>::specialize);
    table.bind(ZYDIS_MNEMONIC_OR, &binary_handler<Or>, &Binary<Or>::specialize);
    table.bind(ZYDIS_MNEMONIC_XOR, &binary_handler<Xor>, &Binary<Xor>::specialize);
    table.bind(ZYDIS_MNEMONIC_NOT, &Unary<Not>::generic, &Unary<Not>::specialize);
    table.bind(ZYDIS_MNEMONIC_TEST, &binary_handler<Test>, &Binary<Test>::specialize);
}

}  // namespace strata::soft
