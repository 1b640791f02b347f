// Data movement: MOV between general registers, memory and immediates (moffs and 64-bit
// immediate forms included), MOVZX, MOVSX, MOVSXD, LEA, XCHG, CMPXCHG, CMPXCHG8B, CMPXCHG16B,
// XADD, BSWAP, MOVBE, MOVNTI, CMOVcc, SETcc, CBW/CWDE/CDQE, CWD/CDQ/CQO, XLAT, LAHF/SAHF, the NOPs
// (multi-byte NOP, ENDBR32/64, PAUSE), PREFETCHh/PREFETCHW, CLFLUSH/CLFLUSHOPT/CLWB and the fences.
//
// Atomicity: XCHG with memory is always locked; CMPXCHG, CMPXCHG8B/16B and XADD are locked with
// LOCK (SDM vol. 3A §8.1.2.2). Their memory forms on RAM within one page are one host atomic
// instruction on the guest's memory, with or without LOCK (an unlocked one may be atomic too), so
// a locked one is atomic against every other vCPU and device; across a page boundary or on MMIO
// they are a read and a write (hardware's split locks and locked MMIO cycles have no such host
// counterpart). Their loads are writes from the start: a #PF reports W=1.
// Missing: the MOV forms with segment, control and debug registers (segment and system
// families); MOVDIRI/MOVDIR64B (not advertised).
// Spec: Intel SDM vol. 2A-2B, each instruction's "Operation"; vol. 3A §8.1.2 (locked operations).
#include <Zydis/Zydis.h>

#include <type_traits>

#include "cpu/soft/exec/forms.hpp"

namespace strata::soft {

namespace {

// Calls fn with a value of the unsigned type `size` bytes wide (1, 2, 4 or 8).
template <class Fn>
uint64_t by_width(unsigned size, Fn fn) {
    switch (size) {
        case 1: return fn(uint8_t{});
        case 2: return fn(uint16_t{});
        case 4: return fn(uint32_t{});
        default: return fn(uint64_t{});
    }
}

// The load of a read-modify-write outside RAM or across a page end: it is a write from the start,
// so its page faults report W=1, as hardware's do.
uint64_t read_for_write(Cpu& cpu, uint64_t linear, unsigned size) {
    try {
        return by_width(size, [&](auto zero) -> uint64_t { return cpu.read_linear<decltype(zero)>(linear); });
    } catch (GuestFault& fault) {
        if (fault.vector == vec::PF) fault.error_code |= pf::W;
        throw;
    }
}

void write_linear_sized(Cpu& cpu, uint64_t linear, unsigned size, uint64_t value) {
    by_width(size, [&](auto zero) -> uint64_t {
        using T = decltype(zero);
        cpu.write_linear<T>(linear, static_cast<T>(value));
        return 0;
    });
}

// The memory operand of a read-modify-write: its linear address after the segment's write checks
// (a writable data segment is also readable), and a host pointer when it lies in one RAM page
// (after the write's page walk), for a host atomic; nullptr for MMIO or across a page end. The
// exchanges use host atomics with or without LOCK: an unlocked one may be atomic too.
struct RmwTarget {
    uint64_t linear;
    uint8_t* host;
};
RmwTarget rmw_target(Cpu& cpu, const Insn& insn, unsigned size) {
    uint64_t linear = cpu.linear(insn.mem.seg, effective_address(cpu, insn), size, Access::Write);
    return {linear, cpu.rmw_pointer(linear, size)};
}

// Host atomics on guest RAM. The pointer may be misaligned (x86 allows locked misaligned
// accesses within a page; the host executes them as split locks).
uint64_t atomic_exchange(uint8_t* host, unsigned size, uint64_t value) {
    return by_width(size, [&](auto zero) -> uint64_t {
        using T = decltype(zero);
        return __atomic_exchange_n(reinterpret_cast<T*>(host), static_cast<T>(value), __ATOMIC_SEQ_CST);
    });
}

uint64_t atomic_fetch_add(uint8_t* host, unsigned size, uint64_t value) {
    return by_width(size, [&](auto zero) -> uint64_t {
        using T = decltype(zero);
        return __atomic_fetch_add(reinterpret_cast<T*>(host), static_cast<T>(value), __ATOMIC_SEQ_CST);
    });
}

// Compare-exchange; returns the value memory held (equal to `expected` when it stored `desired`).
uint64_t atomic_compare_exchange(uint8_t* host, unsigned size, uint64_t expected, uint64_t desired) {
    return by_width(size, [&](auto zero) -> uint64_t {
        using T = decltype(zero);
        auto seen = static_cast<T>(expected);
        __atomic_compare_exchange_n(reinterpret_cast<T*>(host), &seen, static_cast<T>(desired), false,
                                    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
        return seen;
    });
}

// The host's own CMPXCHG16B on 16 aligned bytes of guest RAM (every x86-64-v2 host has it; GCC
// would otherwise route a 16-byte __atomic through libatomic's locks).
struct alignas(16) Octword {
    uint64_t low, high;
};
bool host_cmpxchg16b(uint8_t* host, uint64_t& low, uint64_t& high, uint64_t new_low, uint64_t new_high) {
    bool equal;
    asm volatile("lock cmpxchg16b %1"
                 : "=@ccz"(equal), "+m"(*reinterpret_cast<Octword*>(host)), "+a"(low), "+d"(high)
                 : "b"(new_low), "c"(new_high)
                 : "memory");
    return equal;
}

// --- MOV and its extending forms ---

// MOV r/m, r/m/imm: the immediate is already sign-extended to 64 bits where the encoding says so
// (MOV r/m64, imm32), and the write truncates it to the destination.
void mov(Cpu& cpu, const Insn& insn) {
    uint64_t value = insn.op[1].kind == OpKind::Imm ? insn.imm : read_operand(cpu, insn, 1);
    write_operand(cpu, insn, 0, value);
}

template <class T, Shape S>
struct MovForm {
    [[gnu::always_inline]] static void run(Cpu& cpu, const Insn& insn) {
        T value = source<T, S>(cpu, insn);
        if constexpr (memory_destination(S)) cpu.write<T>(insn.mem.seg, effective_address(cpu, insn), value);
        else set_gpr<T>(cpu, insn.op[0].reg, value);
    }
    [[gnu::always_inline]] static bool run_cached(Cpu& cpu, const Insn& insn) {
        T value;
        if constexpr (memory_destination(S)) {
            void* host = cpu.write_pointer_if_cached<T>(insn.mem.seg, effective_address(cpu, insn));
            if (!host) return false;
            value = source<T, S>(cpu, insn);
            std::memcpy(host, &value, sizeof(T));
        } else {
            if (!cpu.read_if_cached<T>(insn.mem.seg, effective_address(cpu, insn), value)) return false;
            set_gpr<T>(cpu, insn.op[0].reg, value);
        }
        return true;
    }
};
HandlerPair specialize_mov(const Insn& insn) { return select_form<MovForm>(insn); }

void movzx(Cpu& cpu, const Insn& insn) { write_operand(cpu, insn, 0, read_operand(cpu, insn, 1)); }

// MOVSX and MOVSXD (which, without REX.W, is a plain 16- or 32-bit move).
void movsx(Cpu& cpu, const Insn& insn) {
    write_operand(cpu, insn, 0, sign_extend(read_operand(cpu, insn, 1), insn.op[1].size));
}

// LEA: the effective address wrapped to the address size, then truncated or zero-extended to the
// operand size (SDM LEA, table 3-54). No memory is accessed, so no segment check either.
void lea(Cpu& cpu, const Insn& insn) { write_operand(cpu, insn, 0, effective_address(cpu, insn)); }

// MOVZX, MOVSX, MOVSXD and LEA into a 32- or 64-bit register, compiled for their widths.
template <class Dst, class Src, bool kSigned>
void set_extended(Cpu& cpu, const Insn& insn, Src value) {
    using Wide = std::conditional_t<kSigned, std::make_signed_t<Src>, Src>;
    set_gpr<Dst>(cpu, insn.op[0].reg, static_cast<Dst>(static_cast<Wide>(value)));
}
template <class Dst, class Src, bool kSigned, bool kMemory>
[[gnu::always_inline]] inline void extend_form(Cpu& cpu, const Insn& insn) {
    Src value = kMemory ? cpu.read<Src>(insn.mem.seg, effective_address(cpu, insn)) : gpr<Src>(cpu, insn.op[1].reg);
    set_extended<Dst, Src, kSigned>(cpu, insn, value);
}

// Its fast path (exec/exec.hpp threaded_fast).
template <class Dst, class Src, bool kSigned>
[[gnu::always_inline]] inline bool extend_cached(Cpu& cpu, const Insn& insn) {
    Src value;
    if (!cpu.read_if_cached<Src>(insn.mem.seg, effective_address(cpu, insn), value)) return false;
    set_extended<Dst, Src, kSigned>(cpu, insn, value);
    return true;
}

template <class Dst, class Src, bool kSigned, bool kMemory>
constexpr HandlerPair extend_pair() {
    if constexpr (kMemory)
        return compiled_fast<&extend_form<Dst, Src, kSigned, true>, &extend_cached<Dst, Src, kSigned>>();
    else
        return compiled_register_only<&extend_form<Dst, Src, kSigned, false>>();
}

template <bool kSigned, class Dst, bool kMemory>
HandlerPair extend_for_source(unsigned size) {
    switch (size) {
        case 1: return extend_pair<Dst, uint8_t, kSigned, kMemory>();
        case 2: return extend_pair<Dst, uint16_t, kSigned, kMemory>();
        case 4: return extend_pair<Dst, uint32_t, kSigned, kMemory>();
        default: return {};
    }
}

template <bool kSigned>
HandlerPair specialize_extend(const Insn& insn) {
    const Operand& dst = insn.op[0];
    const Operand& src = insn.op[1];
    if (!plain_gpr(dst) || (dst.size != 4 && dst.size != 8) || src.size >= dst.size) return {};
    bool memory = src.kind == OpKind::Mem;
    if (!memory && !plain_gpr(src)) return {};
    if (dst.size == 4)
        return memory ? extend_for_source<kSigned, uint32_t, true>(src.size) : extend_for_source<kSigned, uint32_t, false>(src.size);
    return memory ? extend_for_source<kSigned, uint64_t, true>(src.size) : extend_for_source<kSigned, uint64_t, false>(src.size);
}

template <class T>
void lea_form(Cpu& cpu, const Insn& insn) {
    set_gpr<T>(cpu, insn.op[0].reg, static_cast<T>(effective_address(cpu, insn)));
}

HandlerPair specialize_lea(const Insn& insn) {
    if (!plain_gpr(insn.op[0]) || (insn.op[0].size != 4 && insn.op[0].size != 8)) return {};
    HandlerPair pair = insn.op[0].size == 8 ? compiled_register_only<&lea_form<uint64_t>>()
                                            : compiled_register_only<&lea_form<uint32_t>>();
    pair.rip_free = insn.mem.base != MemOperand::kRip;  // a RIP-relative address reads next RIP
    return pair;
}

// MOVNTI: a store; the non-temporal hint means nothing to an interpreter.
void movnti(Cpu& cpu, const Insn& insn) { write_operand(cpu, insn, 0, read_operand(cpu, insn, 1)); }

// MOVBE: a load or store with the bytes reversed.
uint64_t byte_swap(uint64_t value, unsigned size) {
    switch (size) {
        case 2: return __builtin_bswap16(static_cast<uint16_t>(value));
        case 4: return __builtin_bswap32(static_cast<uint32_t>(value));
        default: return __builtin_bswap64(value);
    }
}
void movbe(Cpu& cpu, const Insn& insn) {
    write_operand(cpu, insn, 0, byte_swap(read_operand(cpu, insn, 1), insn.op[0].size));
}

// BSWAP r32/r64. With a 16-bit operand the SDM leaves the result undefined; Intel and AMD
// processors both leave 0 in the low word (the differential test checks it on the host).
void bswap(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size;
    uint64_t value = size == 2 ? 0 : byte_swap(read_operand(cpu, insn, 0), size);
    write_operand(cpu, insn, 0, value);
}

// --- Exchanges ---

// XCHG: with a memory operand the exchange is locked whether or not LOCK is given.
void xchg(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size;
    if (insn.op[0].kind != OpKind::Mem && insn.op[1].kind != OpKind::Mem) {
        uint64_t first = read_operand(cpu, insn, 0), second = read_operand(cpu, insn, 1);
        write_operand(cpu, insn, 0, second);
        write_operand(cpu, insn, 1, first);
        return;
    }
    unsigned reg = insn.op[0].kind == OpKind::Mem ? 1 : 0;
    uint64_t value = read_operand(cpu, insn, reg);
    RmwTarget target = rmw_target(cpu, insn, size);
    uint64_t old;
    if (target.host) {
        old = atomic_exchange(target.host, size, value);
    } else {
        old = read_for_write(cpu, target.linear, size);
        write_linear_sized(cpu, target.linear, size, value);
    }
    write_operand(cpu, insn, reg, old);
}

// XADD: TEMP ← SRC + DEST; SRC ← DEST; DEST ← TEMP; flags as ADD.
void xadd(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size;
    uint64_t source = read_operand(cpu, insn, 1);
    uint64_t old;
    if (insn.op[0].kind == OpKind::Mem) {
        RmwTarget target = rmw_target(cpu, insn, size);
        if (target.host) {
            old = atomic_fetch_add(target.host, size, source);
        } else {
            old = read_for_write(cpu, target.linear, size);
            write_linear_sized(cpu, target.linear, size, old + source);
        }
        write_operand(cpu, insn, 1, old);
    } else {
        old = read_operand(cpu, insn, 0);
        // SRC first: with the same register as both operands the sum is what remains.
        write_operand(cpu, insn, 1, old);
        write_operand(cpu, insn, 0, old + source);
    }
    cpu.flags.set(CcOp::Add, size, old + source, old, source);
}

// CMPXCHG r/m, r: compares the accumulator with DEST (flags as CMP accumulator, DEST). Equal:
// DEST ← SRC. Not equal: the accumulator ← DEST. A memory DEST is written either way (with its
// own value when not equal); a register DEST is not written when not equal, so a 32-bit one is
// then not zero-extended, and the accumulator is written (zero-extended) only when not equal.
void cmpxchg(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.op[0].size;
    uint64_t accumulator = cpu.reg(0, size);
    uint64_t source = read_operand(cpu, insn, 1);
    uint64_t old;
    if (insn.op[0].kind == OpKind::Mem) {
        RmwTarget target = rmw_target(cpu, insn, size);
        if (target.host) {
            old = atomic_compare_exchange(target.host, size, accumulator, source);
        } else {
            old = read_for_write(cpu, target.linear, size);
            write_linear_sized(cpu, target.linear, size, old == accumulator ? source : old);
        }
    } else {
        old = read_operand(cpu, insn, 0);
        if (old == accumulator) write_operand(cpu, insn, 0, source);
    }
    cpu.flags.set(CcOp::Sub, size, accumulator - old, accumulator, old);
    if (old != accumulator) cpu.set_reg(0, size, old);
}

// CMPXCHG8B m64: EDX:EAX against the quadword; equal: it ← ECX:EBX, else EDX:EAX ← it. Only ZF.
void cmpxchg8b(Cpu& cpu, const Insn& insn) {
    RmwTarget target = rmw_target(cpu, insn, 8);
    uint64_t expected = (cpu.reg(2, 4) << 32) | cpu.reg(0, 4);
    uint64_t desired = (cpu.reg(1, 4) << 32) | cpu.reg(3, 4);
    uint64_t old;
    if (target.host) {
        old = atomic_compare_exchange(target.host, 8, expected, desired);
    } else {
        old = read_for_write(cpu, target.linear, 8);
        write_linear_sized(cpu, target.linear, 8, old == expected ? desired : old);
    }
    cpu.flags.materialize();
    cpu.flags.put(rflags::ZF, old == expected);
    if (old != expected) {
        cpu.set_reg(0, 4, old);
        cpu.set_reg(2, 4, old >> 32);
    }
}

// CMPXCHG16B m128: RDX:RAX against the octword, RCX:RBX stored when equal; #GP(0) unless the
// operand is 16-byte aligned.
void cmpxchg16b(Cpu& cpu, const Insn& insn) {
    uint64_t linear = cpu.linear(insn.mem.seg, effective_address(cpu, insn), 16, Access::Write);
    if (linear & 15) raise_gp();
    uint64_t low = cpu.gpr[0], high = cpu.gpr[2];
    bool equal;
    if (uint8_t* host = cpu.rmw_pointer(linear, 16)) {
        equal = host_cmpxchg16b(host, low, high, cpu.gpr[3], cpu.gpr[1]);
    } else {
        uint64_t old_low = read_for_write(cpu, linear, 8), old_high = read_for_write(cpu, linear + 8, 8);
        equal = old_low == low && old_high == high;
        cpu.write_linear<uint64_t>(linear, equal ? cpu.gpr[3] : old_low);
        cpu.write_linear<uint64_t>(linear + 8, equal ? cpu.gpr[1] : old_high);
        low = old_low;
        high = old_high;
    }
    cpu.flags.materialize();
    cpu.flags.put(rflags::ZF, equal);
    if (!equal) {
        cpu.gpr[0] = low;
        cpu.gpr[2] = high;
    }
}

// --- Conditional moves and sets (the condition is the opcode's low four bits) ---

// CMOVcc reads its source whatever the condition (a memory source may fault); a 32-bit
// destination is zero-extended even when the condition is false (SDM CMOVcc, 64-bit mode).
template <unsigned kCc>
struct Cmovcc {
    static void run(Cpu& cpu, const Insn& insn) {
        uint64_t source = read_operand(cpu, insn, 1);
        if (cpu.flags.condition<kCc>()) write_operand(cpu, insn, 0, source);
        else if (insn.op[0].size == 4) write_operand(cpu, insn, 0, read_operand(cpu, insn, 0));
    }
};

template <unsigned kCc>
struct Setcc {
    static void run(Cpu& cpu, const Insn& insn) { write_operand(cpu, insn, 0, cpu.flags.condition<kCc>() ? 1 : 0); }
};

// --- Accumulator conversions ---

// CBW / CWDE / CDQE: the accumulator's low half sign-extended into all of it.
void convert_accumulator(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.osize;
    cpu.set_reg(0, size, sign_extend(cpu.reg(0, size / 2), size / 2));
}

// CWD / CDQ / CQO: rDX ← all ones or all zeros by the accumulator's sign.
void convert_to_double(Cpu& cpu, const Insn& insn) {
    unsigned size = insn.osize;
    bool negative = (cpu.reg(0, size) & LazyFlags::sign(size)) != 0;
    cpu.set_reg(2, size, negative ? ~0ull : 0);
}

// XLAT: AL ← [seg:rBX + AL], the sum wrapped to the address size.
void xlat(Cpu& cpu, const Insn& insn) {
    uint64_t offset = (cpu.gpr[3] + (cpu.gpr[0] & 0xff)) & LazyFlags::mask(insn.asize);
    cpu.set_reg(0, 1, cpu.read<uint8_t>(insn.mem.seg, offset));
}

// --- Flags through AH ---

// LAHF: AH ← SF:ZF:0:AF:0:PF:1:CF.
void lahf(Cpu& cpu, const Insn&) {
    cpu.set_reg8_high(0, (cpu.flags.value() & (rflags::SF | rflags::ZF | rflags::AF | rflags::PF | rflags::CF)) |
                             rflags::FIXED1);
}

// SAHF: SF, ZF, AF, PF and CF from AH; OF is kept.
void sahf(Cpu& cpu, const Insn&) {
    constexpr uint64_t kFromAh = rflags::SF | rflags::ZF | rflags::AF | rflags::PF | rflags::CF;
    cpu.flags.materialize();
    cpu.flags.other = (cpu.flags.other & ~kFromAh) | (cpu.reg8_high(0) & kFromAh);
}

// --- Hints, cache control and ordering ---

// NOP in every length (0F 1F /0 names a memory operand it never accesses), ENDBR32/64 (CET is not
// advertised: they are NOPs), and the prefetches, which never fault.
void nop(Cpu&, const Insn&) {}

void pause(Cpu&, const Insn&) { __builtin_ia32_pause(); }

// CLFLUSH, CLFLUSHOPT, CLWB: guest RAM is host memory, coherent with everything that reads it, so
// there is nothing to flush; the address is checked as a one-byte read is (segment, paging),
// which is how the SDM describes their faults.
void cache_line_flush(Cpu& cpu, const Insn& insn) {
    uint64_t linear = cpu.linear(insn.mem.seg, effective_address(cpu, insn), 1, Access::Read);
    (void)cpu.read_pointer(linear, 1);
}

void lfence(Cpu&, const Insn&) { __builtin_ia32_lfence(); }
void sfence(Cpu&, const Insn&) { __builtin_ia32_sfence(); }
void mfence(Cpu&, const Insn&) { __builtin_ia32_mfence(); }

}  // namespace

void bind_data_movement(HandlerTable& table) {
    table.bind(ZYDIS_MNEMONIC_MOV, &mov, &specialize_mov);
    table.bind(ZYDIS_MNEMONIC_MOVZX, &movzx, &specialize_extend<false>);
    table.bind(ZYDIS_MNEMONIC_MOVSX, &movsx, &specialize_extend<true>);
    table.bind(ZYDIS_MNEMONIC_MOVSXD, &movsx, &specialize_extend<true>);
    table.bind(ZYDIS_MNEMONIC_LEA, &lea, &specialize_lea);
    table.bind(ZYDIS_MNEMONIC_MOVNTI, &movnti);
    table.bind(ZYDIS_MNEMONIC_MOVBE, &movbe);
    table.bind(ZYDIS_MNEMONIC_BSWAP, compiled<&bswap>());
    table.bind(ZYDIS_MNEMONIC_XCHG, compiled<&xchg>());
    table.bind(ZYDIS_MNEMONIC_XADD, compiled<&xadd>());
    table.bind(ZYDIS_MNEMONIC_CMPXCHG, compiled<&cmpxchg>());
    table.bind(ZYDIS_MNEMONIC_CMPXCHG8B, &cmpxchg8b);
    table.bind(ZYDIS_MNEMONIC_CMPXCHG16B, &cmpxchg16b);
    bind_by_condition<Cmovcc>(table, {ZYDIS_MNEMONIC_CMOVO, ZYDIS_MNEMONIC_CMOVNO, ZYDIS_MNEMONIC_CMOVB,
                                      ZYDIS_MNEMONIC_CMOVNB, ZYDIS_MNEMONIC_CMOVZ, ZYDIS_MNEMONIC_CMOVNZ,
                                      ZYDIS_MNEMONIC_CMOVBE, ZYDIS_MNEMONIC_CMOVNBE, ZYDIS_MNEMONIC_CMOVS,
                                      ZYDIS_MNEMONIC_CMOVNS, ZYDIS_MNEMONIC_CMOVP, ZYDIS_MNEMONIC_CMOVNP,
                                      ZYDIS_MNEMONIC_CMOVL, ZYDIS_MNEMONIC_CMOVNL, ZYDIS_MNEMONIC_CMOVLE,
                                      ZYDIS_MNEMONIC_CMOVNLE});
    bind_by_condition<Setcc>(table, {ZYDIS_MNEMONIC_SETO, ZYDIS_MNEMONIC_SETNO, ZYDIS_MNEMONIC_SETB, ZYDIS_MNEMONIC_SETNB,
                                     ZYDIS_MNEMONIC_SETZ, ZYDIS_MNEMONIC_SETNZ, ZYDIS_MNEMONIC_SETBE,
                                     ZYDIS_MNEMONIC_SETNBE, ZYDIS_MNEMONIC_SETS, ZYDIS_MNEMONIC_SETNS,
                                     ZYDIS_MNEMONIC_SETP, ZYDIS_MNEMONIC_SETNP, ZYDIS_MNEMONIC_SETL,
                                     ZYDIS_MNEMONIC_SETNL, ZYDIS_MNEMONIC_SETLE, ZYDIS_MNEMONIC_SETNLE});
    table.bind(ZYDIS_MNEMONIC_CBW, &convert_accumulator);
    table.bind(ZYDIS_MNEMONIC_CWDE, &convert_accumulator);
    table.bind(ZYDIS_MNEMONIC_CDQE, compiled<&convert_accumulator>());
    table.bind(ZYDIS_MNEMONIC_CWD, &convert_to_double);
    table.bind(ZYDIS_MNEMONIC_CDQ, compiled<&convert_to_double>());
    table.bind(ZYDIS_MNEMONIC_CQO, compiled<&convert_to_double>());
    table.bind(ZYDIS_MNEMONIC_XLAT, &xlat);
    table.bind(ZYDIS_MNEMONIC_LAHF, &lahf);
    table.bind(ZYDIS_MNEMONIC_SAHF, &sahf);
    for (ZydisMnemonic m : {ZYDIS_MNEMONIC_NOP, ZYDIS_MNEMONIC_ENDBR32, ZYDIS_MNEMONIC_ENDBR64, ZYDIS_MNEMONIC_PREFETCH,
                            ZYDIS_MNEMONIC_PREFETCHNTA, ZYDIS_MNEMONIC_PREFETCHT0, ZYDIS_MNEMONIC_PREFETCHT1,
                            ZYDIS_MNEMONIC_PREFETCHT2, ZYDIS_MNEMONIC_PREFETCHW, ZYDIS_MNEMONIC_PREFETCHWT1})
        table.bind(m, &nop);
    table.bind(ZYDIS_MNEMONIC_PAUSE, &pause);
    table.bind(ZYDIS_MNEMONIC_CLFLUSH, &cache_line_flush);
    table.bind(ZYDIS_MNEMONIC_CLFLUSHOPT, &cache_line_flush);
    table.bind(ZYDIS_MNEMONIC_CLWB, &cache_line_flush);
    table.bind(ZYDIS_MNEMONIC_LFENCE, &lfence);
    table.bind(ZYDIS_MNEMONIC_SFENCE, &sfence);
    table.bind(ZYDIS_MNEMONIC_MFENCE, &mfence);
}

}  // namespace strata::soft
