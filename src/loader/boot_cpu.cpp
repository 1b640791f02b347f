#include "loader/boot_cpu.hpp"

#include <array>

#include "base/checked.hpp"
#include "memory/pc_layout.hpp"

namespace strata {

namespace {

constexpr uint64_t kPageSize = 4 * KiB;
constexpr uint64_t kLargePage = 2 * MiB;
constexpr unsigned kPageDirectoryCount = 4;  // 4 x 1 GiB: the 32-bit address space
constexpr unsigned kEntriesPerTable = 512;

// Page-table entry bits (SDM vol. 3A §4.5, tables 4-15 to 4-18).
constexpr uint64_t kPresent = 1ull << 0, kWritable = 1ull << 1, kLargePageBit = 1ull << 7;

// The boot GDT: null, unused, code (0x10), data (0x18); it ends where the IDT starts.
constexpr unsigned kGdtEntries = 4;
static_assert(pc::kBootGdt + kGdtEntries * 8 <= pc::kBootIdt);
constexpr uint64_t kIdtBytes = 16;  // one zeroed 64-bit gate; the IDTR limit is 0 anyway
static_assert(pc::kBootIdt + kIdtBytes <= pc::kBootTablesEnd);

Result<void> write_tables(const GuestMemory& memory, const SegmentState& code, const SegmentState& data) {
    std::array<uint64_t, kGdtEntries> gdt{0, 0, gdt_descriptor(code), gdt_descriptor(data)};
    if (auto r = memory.write_obj(pc::kBootGdt, gdt); !r) return context(r.error(), "boot GDT");
    if (auto r = memory.write_obj(pc::kBootIdt, std::array<uint8_t, kIdtBytes>{}); !r)
        return context(r.error(), "boot IDT");
    return {};
}

// Identity-maps [0, 4 GiB) with 2 MiB pages: PML4[0] -> PDPT, PDPT[0..3] -> the page directories.
Result<void> write_identity_map(const GuestMemory& memory) {
    std::array<uint64_t, kEntriesPerTable> table{};
    table[0] = pc::kPdpt | kPresent | kWritable;
    if (auto r = memory.write_obj(pc::kPml4, table); !r) return context(r.error(), "boot PML4");
    table = {};
    for (unsigned i = 0; i < kPageDirectoryCount; ++i)
        table[i] = (pc::kPageDirectories + i * kPageSize) | kPresent | kWritable;
    if (auto r = memory.write_obj(pc::kPdpt, table); !r) return context(r.error(), "boot PDPT");
    for (unsigned dir = 0; dir < kPageDirectoryCount; ++dir) {
        for (unsigned i = 0; i < kEntriesPerTable; ++i)
            table[i] = (uint64_t{dir} * kEntriesPerTable + i) * kLargePage | kPresent | kWritable | kLargePageBit;
        if (auto r = memory.write_obj(pc::kPageDirectories + dir * kPageSize, table); !r)
            return context(r.error(), "boot page directory");
    }
    return {};
}

// What both entry states share: flat segments, the boot GDT, an IDT that takes no vector, and a
// TR/LDT whose hidden parts pass VM-entry checks (SDM vol. 3C §26.3.1.2: TR must be a busy TSS).
CpuState flat_state(const SegmentState& code) {
    CpuState state;
    state.cs = code;
    state.ds = state.es = state.fs = state.gs = state.ss = flat_data(kBootDataSelector);
    state.tr = {.base = 0, .limit = 0x67, .selector = 0, .type = 0xb, .present = true, .s = false};
    state.ldt = {.base = 0, .limit = 0, .selector = 0, .type = 0x2, .present = false, .s = false, .unusable = true};
    state.gdt = {.base = pc::kBootGdt, .limit = kGdtEntries * 8 - 1};
    state.idt = {.base = pc::kBootIdt, .limit = 0};
    state.rflags = 0x2;  // reserved bit 1 only: IF clear
    state[Gpr::Rsp] = pc::kBootStack;
    return state;
}

}  // namespace

uint64_t gdt_descriptor(const SegmentState& segment) {
    uint64_t access = uint64_t{segment.type} | (segment.s ? 1u << 4 : 0) | uint64_t{segment.dpl & 3u} << 5 |
                      (segment.present ? 1u << 7 : 0);
    uint64_t flags = (segment.avl ? 1u : 0) | (segment.l ? 2u : 0) | (segment.db ? 4u : 0) | (segment.g ? 8u : 0);
    // With G set the descriptor holds the limit in 4 KiB units; the hidden limit is in bytes.
    uint64_t limit = segment.g ? segment.limit >> 12 : segment.limit;
    return (limit & 0xffff) | (segment.base & 0xff'ffff) << 16 | access << 40 | ((limit >> 16) & 0xf) << 48 |
           flags << 52 | ((segment.base >> 24) & 0xff) << 56;
}

Result<CpuState> long_mode_entry(const GuestMemory& memory, uint64_t rip, uint64_t rsi) {
    SegmentState code = flat_code64();
    if (auto r = write_tables(memory, code, flat_data(kBootDataSelector)); !r) return std::unexpected(r.error());
    if (auto r = write_identity_map(memory); !r) return std::unexpected(r.error());
    CpuState state = flat_state(code);
    state.rip = rip;
    state[Gpr::Rsi] = rsi;
    state.cr0 = cr0::PE | cr0::ET | cr0::NE | cr0::PG;
    state.cr3 = pc::kPml4;
    state.cr4 = cr4::PAE;
    state.efer = efer::LME | efer::LMA;
    return state;
}

Result<CpuState> protected_mode_entry(const GuestMemory& memory, uint32_t eip) {
    SegmentState code = flat_code32();
    if (auto r = write_tables(memory, code, flat_data(kBootDataSelector)); !r) return std::unexpected(r.error());
    CpuState state = flat_state(code);
    state.rip = eip;
    state.cr0 = cr0::PE | cr0::ET;  // multiboot §3.2: PE set, PG clear, the rest undefined
    state.cr3 = 0;
    state.cr4 = 0;
    state.efer = 0;
    return state;
}

}  // namespace strata
