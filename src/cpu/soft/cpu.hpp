// One soft vCPU's architectural state and its way to memory: what every instruction family reads
// and writes. Decoding (decode/), instruction semantics (exec/), the page walk and software TLB
// (mmu/) and the block cache are kept apart; this header is the meeting point.
//
// State:    GPRs, RIP, lazy RFLAGS, segment registers with their descriptor caches (the engine-neutral
//           SegmentState), GDTR/IDTR/LDTR/TR, CR0-CR4/CR8, EFER, XCR0, DR0-DR7, the MSRs Linux uses,
//           x87 (host long double is the x87 80-bit format) and SSE registers, the mode cache
//           (CPL, 16/32/64-bit code), and the TLB.
// Memory:   read<T>/write<T> take a segment and an offset, apply segmentation (SDM vol. 3A §3.4,
//           §5.3) and then paging through the TLB (§4); a TLB hit is an index, a compare and a
//           host load. Misses, MMIO, page-crossing and code-page writes take the slow path (mmu/).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>

#include "cpu/cpu_state.hpp"
#include "cpu/cpuid.hpp"
#include "cpu/engine.hpp"
#include "cpu/soft/fault.hpp"
#include "cpu/soft/flags.hpp"

namespace strata {
class LocalApic;
class MachineClock;
}  // namespace strata

namespace strata::soft {

// Segment registers in their hardware encoding (ModRM reg field, SDM vol. 2 §3.1.1.1 "Sreg").
enum Seg : unsigned { ES = 0, CS = 1, SS = 2, DS = 3, FS = 4, GS = 5 };

enum class Access : uint8_t { Read, Write, Execute };

class CodePages;
class Interpreter;
class SoftVcpu;
struct Insn;

// One TLB entry: a linear page whose translation is cached for reading, writing and fetching by
// the privilege it was filled for. A tag is the page's linear address, or kInvalidTag.
struct TlbEntry {
    static constexpr uint64_t kInvalidTag = 1;  // never page aligned
    uint64_t read_tag = kInvalidTag;
    uint64_t write_tag = kInvalidTag;
    uint64_t exec_tag = kInvalidTag;
    bool global = false;   // survives a CR3 load (CR4.PGE, the G bit)
    uintptr_t addend = 0;  // host address = linear address + addend
    uint64_t phys = 0;     // guest-physical address of the page
};

struct X87State {
    long double st[8] = {};  // physical registers R0-R7; ST(i) is R[(top + i) % 8]
    uint16_t fcw = 0x37f;
    uint16_t fsw = 0;        // TOP in bits 11-13
    uint16_t ftw = 0xffff;   // two bits per physical register: 11 = empty
    uint16_t fop = 0;
    uint64_t fip = 0, fdp = 0;
    uint16_t fcs = 0, fds = 0;
};

class Cpu {
public:
    static constexpr unsigned kTlbEntries = 1024;

    // --- Registers ---
    // RAX..R15 by number, then kNoRegister: always 0, what an absent base or index register of
    // a memory operand reads (exec/exec.hpp effective_address adds both without a test).
    static constexpr unsigned kNoRegister = 16;
    std::array<uint64_t, 17> gpr{};
    uint64_t rip = 0xfff0;
    LazyFlags flags;
    std::array<SegmentState, 6> seg{};
    SegmentState ldtr, tr;
    TableState gdtr, idtr;
    uint64_t cr0 = 0x6000'0010, cr2 = 0, cr3 = 0, cr4 = 0;
    uint64_t efer = 0, xcr0 = 1;
    std::array<uint64_t, 4> dr{};
    uint64_t dr6 = 0xffff'0ff0, dr7 = 0x400;

    // MSRs (SDM vol. 4): those Linux and the boot paths use.
    struct Msrs {
        uint64_t star = 0, lstar = 0, cstar = 0, sfmask = 0, kernel_gs_base = 0;
        uint64_t sysenter_cs = 0, sysenter_esp = 0, sysenter_eip = 0;
        uint64_t tsc_aux = 0, pat = 0x0007'0406'0007'0406ull, misc_enable = 1;  // fast strings
        // MTRRs enabled, default type write-back, as firmware leaves them (the kvm engine's 0xc06).
        uint64_t mtrr_def_type = 0xc06, mtrr_fixed[11] = {}, mtrr_var[16] = {};
        uint64_t apic_base = 0xfee0'0000 | (1u << 11);
        uint64_t tsc_deadline = 0;
        int64_t tsc_offset = 0;  // guest TSC = guest ns + tsc_offset (a 1 GHz TSC)
    } msr;

    X87State x87;
    alignas(16) std::array<std::array<uint8_t, 16>, 16> xmm{};
    uint32_t mxcsr = 0x1f80;

    // --- Mode cache, refreshed by refresh_mode() after CS, SS, CR0, CR4 or EFER change ---
    unsigned cpl = 0;
    bool long_mode = false;   // EFER.LMA
    bool code64 = false;      // 64-bit mode: LMA and CS.L
    bool protected_mode = false;
    bool v86 = false;
    unsigned code_bits = 16;  // 16, 32 or 64
    unsigned stack_bits = 16; // SS.B (64 in 64-bit mode)
    uint64_t ip_mask = 0xffff;  // IP, EIP or RIP: where instruction addresses wrap
    // Everything the decoding and the fetch permission of a block depend on besides its bytes,
    // in 10 bits, never 0: the modes above and whether CPL is 3 (the interpreter's jump cache
    // keeps it beside the linear address).
    uint32_t exec_key = 0;

    // --- Per-instruction scratch the run loop and handlers share ---
    uint64_t next_rip = 0;   // where execution continues; branches set it
    uint64_t block_rip = 0;  // where the running block was entered: its instructions' RIPs are offsets from it
    bool end_block = false;  // the instruction changed something decoding depends on, or jumped out of the block
    // How many of the block's instructions ran when it ended (at its sentinel, or after an
    // instruction that set end_block): set where it ends, from what is known there, so that
    // counting reads no instruction.
    unsigned block_done = 0;
    // A block that jumps back to its own start loops inside its threaded code (exec/control.cpp
    // loop_back) up to loop_budget more times; loop_instructions counts what those loops ran.
    unsigned loop_budget = 0;
    uint64_t loop_instructions = 0;
    // A block that ends goes on to its successor without returning to the run loop (block
    // chaining: Interpreter::chain) up to chain_budget more times, while nothing needs the run
    // loop; 0 outside the run loop's slices. `chainer` is the executor that does it.
    unsigned chain_budget = 0;
    Interpreter* chainer = nullptr;
    // The code-page epoch (CodePages::epoch) this vCPU's cached write permissions were checked
    // against: when another vCPU makes a page code, it changes, and they are dropped.
    uint64_t code_epoch = ~0ull;
    uint8_t interrupt_shadow = 0;  // 1: STI, 2: MOV SS / POP SS — blocks interrupts for one instruction
    bool nmi_masked = false;
    bool halted = false;

    // --- What the vCPU reaches outside itself ---
    const Platform* platform = nullptr;
    const GuestMemory* memory = nullptr;
    CodePages* code_pages = nullptr;
    LocalApic* lapic = nullptr;  // this vCPU's local APIC: its MMIO page, MSRs (APIC base, x2APIC, TSC deadline), CR8
    const MachineClock* clock = nullptr;  // guest time: the TSC counts its nanoseconds (a 1 GHz TSC)
    SoftVcpu* vcpu = nullptr;
    unsigned index = 0;  // vCPU number
    const CpuidTable* cpuid = nullptr;  // what CPUID answers (soft_cpuid.hpp); the engine owns it

    // --- Registers by width ---
    [[nodiscard]] uint64_t reg(unsigned r, unsigned bytes) const { return gpr[r] & LazyFlags::mask(bytes); }
    // Writes as hardware does: 32-bit results zero-extend, 8- and 16-bit results merge.
    void set_reg(unsigned r, unsigned bytes, uint64_t value) {
        switch (bytes) {
            case 1: gpr[r] = (gpr[r] & ~0xffull) | (value & 0xff); break;
            case 2: gpr[r] = (gpr[r] & ~0xffffull) | (value & 0xffff); break;
            case 4: gpr[r] = value & 0xffff'ffff; break;
            default: gpr[r] = value; break;
        }
    }
    // AH, CH, DH, BH: bits 8-15 of RAX..RBX (legacy byte registers 4-7 without REX).
    [[nodiscard]] uint8_t reg8_high(unsigned r) const { return static_cast<uint8_t>(gpr[r] >> 8); }
    void set_reg8_high(unsigned r, uint64_t value) { gpr[r] = (gpr[r] & ~0xff00ull) | ((value & 0xff) << 8); }

    [[nodiscard]] uint64_t rflags() const { return flags.value(); }
    void set_rflags(uint64_t value) { flags.assign(value); }
    [[nodiscard]] bool user_mode() const { return cpl == 3; }

    // --- Memory through segmentation and paging ---
    // The linear address of `size` bytes at `offset` in segment `s`, after the segment's checks
    // (limit, type, null selector, canonical form); raises #GP/#SS otherwise.
    [[nodiscard]] uint64_t linear(unsigned s, uint64_t offset, unsigned size, Access access) const {
        if (code64) {
            uint64_t address = offset + (s >= FS ? seg[s].base : 0);
            check_canonical(s, address, size);
            return address;
        }
        return legacy_linear(s, offset, size, access);
    }
    // 64-bit mode: #SS(0) for a stack access, else #GP(0), unless all `size` bytes at `address`
    // are canonical.
    static void check_canonical(unsigned s, uint64_t address, unsigned size) {
        if (!canonical(address) || !canonical(address + size - 1)) [[unlikely]]
            s == SS ? raise_ss() : raise_gp();
    }

    // In 64-bit mode a TLB hit proves the address canonical (only canonical pages are ever
    // filled, and a hit does not cross the page), so the canonical check runs on a miss only.
    template <class T>
    [[nodiscard, gnu::always_inline]] T read(unsigned s, uint64_t offset) {
        if (!code64) return read_linear<T>(legacy_linear(s, offset, sizeof(T), Access::Read));
        uint64_t address = offset + (s >= FS ? seg[s].base : 0);
        T value;
        if (read_hit(address, value, false)) [[likely]] return value;
        check_canonical(s, address, sizeof(T));
        slow_read(address, &value, sizeof(T), false);
        return value;
    }
    template <class T>
    [[gnu::always_inline]] void write(unsigned s, uint64_t offset, T value) {
        if (!code64) return write_linear<T>(legacy_linear(s, offset, sizeof(T), Access::Write), value);
        uint64_t address = offset + (s >= FS ? seg[s].base : 0);
        if (write_hit(address, value, false)) [[likely]] return;
        check_canonical(s, address, sizeof(T));
        slow_write(address, &value, sizeof(T), false);
    }
    // The accesses of the compiled forms' fast paths (exec/exec.hpp threaded_fast): in 64-bit
    // mode, when the access hits the TLB, the value read / the host address to write (a write
    // permission is only cached for a dirty, writable RAM page no block was decoded from, which
    // is readable too); otherwise false / nullptr, and nothing has happened.
    template <class T>
    [[nodiscard, gnu::always_inline]] bool read_if_cached(unsigned s, uint64_t offset, T& value) const {
        return code64 && read_hit(offset + (s >= FS ? seg[s].base : 0), value, false);
    }
    template <class T>
    [[nodiscard, gnu::always_inline]] void* write_pointer_if_cached(unsigned s, uint64_t offset) const {
        return code64 ? cached_write(offset + (s >= FS ? seg[s].base : 0), sizeof(T), false) : nullptr;
    }
    // Reads/writes 1, 2, 4 or 8 bytes, zero-extended.
    [[nodiscard]] uint64_t read_sized(unsigned s, uint64_t offset, unsigned bytes) {
        switch (bytes) {
            case 1: return read<uint8_t>(s, offset);
            case 2: return read<uint16_t>(s, offset);
            case 4: return read<uint32_t>(s, offset);
            default: return read<uint64_t>(s, offset);
        }
    }
    void write_sized(unsigned s, uint64_t offset, unsigned bytes, uint64_t value) {
        switch (bytes) {
            case 1: write<uint8_t>(s, offset, static_cast<uint8_t>(value)); break;
            case 2: write<uint16_t>(s, offset, static_cast<uint16_t>(value)); break;
            case 4: write<uint32_t>(s, offset, static_cast<uint32_t>(value)); break;
            default: write<uint64_t>(s, offset, value); break;
        }
    }

    // Linear accesses with the current privilege (`supervisor` forces a system access, as
    // descriptor-table, IDT and TSS accesses are, SDM vol. 3A §4.6.1).
    template <class T>
    [[nodiscard]] T read_linear(uint64_t address, bool supervisor = false) {
        T value;
        if (read_hit(address, value, supervisor)) [[likely]] return value;
        slow_read(address, &value, sizeof(T), supervisor);
        return value;
    }
    template <class T>
    void write_linear(uint64_t address, T value, bool supervisor = false) {
        if (write_hit(address, value, supervisor)) [[likely]] return;
        slow_write(address, &value, sizeof(T), supervisor);
    }
    // A host pointer to `size` bytes at `address` for an atomic read-modify-write (LOCK, XCHG),
    // after the page walk and the A/D bits of a write; nullptr when they are not all in one RAM
    // page (MMIO, page-crossing): the caller then reads and writes without atomicity.
    [[nodiscard]] uint8_t* rmw_pointer(uint64_t address, unsigned size);
    // A host pointer to `size` bytes at `address` for reading them in place (the string
    // instructions' page-sized runs, CLFLUSH's address check), after the page walk of a read
    // (its #PF); nullptr when they are not all in one RAM page.
    [[nodiscard]] const uint8_t* read_pointer(uint64_t address, unsigned size);

    // The guest-physical address of an instruction fetch at linear `address` (page walk with
    // execute permission; #PF as hardware raises it) and the host bytes there, if RAM.
    struct Fetch {
        uint64_t phys = 0;
        const uint8_t* host = nullptr;  // nullptr: not RAM (MMIO or unbacked)
        bool global = false;            // the translation came from a global page (survives CR3 loads)
    };
    [[nodiscard]] Fetch translate_fetch(uint64_t address);

    // Physical memory, as page walks and devices' DMA see it. RAM or, elsewhere, the LAPIC page
    // and the MMIO bus.
    [[nodiscard]] uint8_t* ram_pointer(uint64_t phys, uint64_t length) const;
    void phys_read(uint64_t phys, void* out, unsigned size);
    void phys_write(uint64_t phys, const void* in, unsigned size);

    // A write reached guest-physical `phys` in RAM: invalidates the blocks decoded from its page
    // and ends the running block if there were any (every write path calls it; code pages are
    // never writable through the TLB).
    void code_written(uint64_t phys);

    // --- TLB maintenance (SDM vol. 3A §4.10.4) ---
    void flush_tlb(bool including_global);
    void flush_tlb_page(uint64_t address);
    // Drops every cached write permission (a page became a code page somewhere).
    void flush_tlb_writes();
    // Counts the flushes above that can change a translation or a fetch permission: what the
    // interpreter's jump cache (linear address -> block) was filled under is still true while
    // it is unchanged — for a global page, while the count of flushes that drop global
    // translations (CR4/CR0 changes, INVLPG) is.
    [[nodiscard]] uint64_t tlb_generation() const { return tlb_generation_; }
    [[nodiscard]] uint64_t global_tlb_generation() const { return global_tlb_generation_; }

    // --- Port I/O through the platform's bus (no permission check: exec/ does that) ---
    [[nodiscard]] uint64_t port_in(uint16_t port, unsigned size);
    void port_out(uint16_t port, unsigned size, uint64_t value);

    // Recomputes the mode cache; after CS, SS, CR0, CR4, EFER or RFLAGS.VM change. CPL is
    // SS.DPL in protected mode: code that changes privilege loads SS accordingly.
    void refresh_mode();

    // --- State exchange with the engine-neutral CpuState ---
    [[nodiscard]] CpuState state() const;
    void set_state(const CpuState& state);

    // The TLB's layout, for the translator's inline lookup (jit/translator.cpp): entry 0 of
    // the supervisor TLB (the user TLB follows it), and the index of the TLB of the current
    // privilege (0 or 1).
    [[nodiscard]] const TlbEntry* tlb_base() const { return &tlb_[0][0]; }
    [[nodiscard]] const unsigned* user_tlb_index() const { return &user_tlb_; }

    [[nodiscard]] static bool canonical(uint64_t address) {
        return static_cast<uint64_t>(static_cast<int64_t>(address << 16) >> 16) == address;
    }

private:
    // The TLB of an access: 1 for user accesses (CPL 3, not a system access), else 0.
    [[nodiscard]] unsigned user_index(bool supervisor) const { return supervisor ? 0 : user_tlb_; }
    static unsigned tlb_slot(uint64_t address) { return static_cast<unsigned>(address >> 12) & (kTlbEntries - 1); }
    // The page of an access's last byte. The TLB slot is chosen by its first byte's page, and a
    // slot only ever holds a tag of a page that maps to it, which the next page never does: so
    // comparing this with the slot's tag is both the hit test and the page-crossing test.
    static uint64_t last_page(uint64_t address, unsigned size) { return (address + size - 1) & ~0xfffull; }
    // The TLB's fast path: the host address of `size` bytes at `address` when their page is
    // cached for the access and they do not cross it, else nullptr.
    [[nodiscard, gnu::always_inline]] const void* cached_read(uint64_t address, unsigned size, bool supervisor) const {
        const TlbEntry& e = tlb_[user_index(supervisor)][tlb_slot(address)];
        return e.read_tag == last_page(address, size) ? reinterpret_cast<const void*>(address + e.addend) : nullptr;
    }
    [[nodiscard, gnu::always_inline]] void* cached_write(uint64_t address, unsigned size, bool supervisor) const {
        const TlbEntry& e = tlb_[user_index(supervisor)][tlb_slot(address)];
        return e.write_tag == last_page(address, size) ? reinterpret_cast<void*>(address + e.addend) : nullptr;
    }
    // The access through it; false sends it to slow_read/slow_write.
    template <class T>
    [[gnu::always_inline]] bool read_hit(uint64_t address, T& value, bool supervisor) const {
        const void* host = cached_read(address, sizeof(T), supervisor);
        if (!host) return false;
        std::memcpy(&value, host, sizeof(T));
        return true;
    }
    template <class T>
    [[gnu::always_inline]] bool write_hit(uint64_t address, T value, bool supervisor) {
        void* host = cached_write(address, sizeof(T), supervisor);
        if (!host) return false;
        std::memcpy(host, &value, sizeof(T));
        return true;
    }
    [[nodiscard]] uint64_t legacy_linear(unsigned s, uint64_t offset, unsigned size, Access access) const;
    void slow_read(uint64_t address, void* out, unsigned size, bool supervisor);
    void slow_write(uint64_t address, const void* in, unsigned size, bool supervisor);

    friend class Mmu;
    TlbEntry tlb_[2][kTlbEntries];
    unsigned user_tlb_ = 0;  // cpl == 3, kept by refresh_mode(): one load on the TLB hit path
    bool large_pages_cached_ = false;
    uint64_t tlb_generation_ = 0;
    uint64_t global_tlb_generation_ = 0;  // some entry came from a 2/4 MiB page (INVLPG must drop all of it)
};

}  // namespace strata::soft
