// The soft CPU's way from a linear address to memory: segmentation checks of legacy modes, the
// page walk of 32-bit, PAE and 4-level paging with accessed/dirty bits and every permission rule
// (Intel SDM vol. 3A §4.6), the software TLB it fills, and physical accesses to RAM, the local
// APIC page and the MMIO bus.
//
// TLB rules (SDM vol. 3A §4.10): an entry caches one 4 KiB page for the privilege it was filled
// for (two tables: supervisor and user); a write permission is cached only once the D bit is set
// and only for pages no block was decoded from; pages that are not RAM are never cached, so MMIO
// always reaches the bus. CR3 loads drop non-global entries, INVLPG one page, CR0/CR4 changes all.
// Missing: 5-level paging, protection keys, the PAE PDPTE registers (PDPTEs are read at each walk
// rather than at the CR3 load), MTRR/PAT memory types (all RAM is write-back).
#include <span>

#include "cpu/exit.hpp"
#include "cpu/soft/cpu.hpp"
#include "cpu/soft/mmu/code_pages.hpp"
#include "devices/irqchip/local_apic.hpp"

namespace strata::soft {

namespace {

constexpr uint64_t kP = 1ull << 0, kRW = 1ull << 1, kUS = 1ull << 2, kA = 1ull << 5, kD = 1ull << 6,
                   kPS = 1ull << 7, kG = 1ull << 8, kXD = 1ull << 63;
constexpr unsigned kPhysBits = 40;  // MAXPHYADDR as CPUID 0x80000008 reports it
constexpr uint64_t kAddrMask = ((1ull << kPhysBits) - 1) & ~0xfffull;

struct Walk {
    uint64_t phys = 0;  // the 4 KiB page's guest-physical address
    bool user = true, writable = true, executable = true, dirty = false, global = false;
    bool large = false;  // mapped by a 2 MiB or 4 MiB page
};

}  // namespace

class Mmu {
public:
    // Walks the page tables for `address`, setting A (and D for a write) as hardware does; raises
    // #PF (with CR2) when `access` is not allowed for this privilege.
    static Walk walk(Cpu& cpu, uint64_t address, Access access, bool user_access) {
        Walk w;
        if (!(cpu.cr0 & cr0::PG)) {
            w.phys = address & ~0xfffull;
            return w;
        }
        bool nxe = (cpu.efer & efer::NXE) != 0;
        uint64_t reserved_high = ~((1ull << kPhysBits) - 1) & ~(nxe ? kXD : 0);
        auto fault = [&](uint32_t bits) {
            uint32_t code = bits;
            if (access == Access::Write) code |= pf::W;
            if (user_access) code |= pf::U;
            if (access == Access::Execute && (nxe || (cpu.cr4 & kCr4Smep))) code |= pf::I;
            cpu.cr2 = address;
            raise_fault(vec::PF, code);
        };
        // Reads an entry and sets its accessed bit (atomically: other vCPUs walk the same tables).
        auto entry = [&](uint64_t table_entry_phys, unsigned bytes, bool has_accessed_bit = true) -> uint64_t {
            uint8_t* host = cpu.ram_pointer(table_entry_phys, bytes);
            if (!host) fault(0);  // tables outside RAM: treat as not present
            if (!has_accessed_bit) return __atomic_load_n(reinterpret_cast<uint64_t*>(host), __ATOMIC_RELAXED);
            if (bytes == 4) {
                auto* p = reinterpret_cast<uint32_t*>(host);
                uint32_t e = __atomic_load_n(p, __ATOMIC_RELAXED);
                if ((e & kP) && !(e & kA)) e = __atomic_or_fetch(p, static_cast<uint32_t>(kA), __ATOMIC_RELAXED);
                return e;
            }
            auto* p = reinterpret_cast<uint64_t*>(host);
            uint64_t e = __atomic_load_n(p, __ATOMIC_RELAXED);
            if ((e & kP) && !(e & kA)) e = __atomic_or_fetch(p, kA, __ATOMIC_RELAXED);
            return e;
        };
        auto combine = [&](uint64_t e) {
            w.user = w.user && (e & kUS);
            w.writable = w.writable && (e & kRW);
            if (nxe && (e & kXD)) w.executable = false;
        };
        uint64_t leaf_phys = 0;  // where the leaf entry is, for the D bit
        unsigned leaf_bytes = 8;
        uint64_t leaf = 0;
        if (!(cpu.cr4 & cr4::PAE)) {
            // 32-bit paging (§4.3).
            leaf_bytes = 4;
            uint64_t pde_at = (cpu.cr3 & 0xffff'f000) + ((address >> 22) & 0x3ff) * 4;
            uint64_t pde = entry(pde_at, 4);
            if (!(pde & kP)) fault(0);
            combine(pde);
            if ((pde & kPS) && (cpu.cr4 & kCr4Pse)) {
                w.large = true;
                leaf = pde;
                leaf_phys = pde_at;
                uint64_t base = (pde & 0xffc0'0000) | (((pde >> 13) & 0xff) << 32);
                w.phys = base | (address & 0x3f'f000);
            } else {
                uint64_t pte_at = (pde & 0xffff'f000) + ((address >> 12) & 0x3ff) * 4;
                leaf = entry(pte_at, 4);
                leaf_phys = pte_at;
                if (!(leaf & kP)) fault(0);
                combine(leaf);
                w.phys = leaf & 0xffff'f000;
            }
        } else {
            uint64_t table;
            int level;
            if (cpu.long_mode) {
                table = cpu.cr3 & kAddrMask;
                level = 4;
            } else {
                // PAE (§4.4): four PDPTEs at CR3[31:5]; they carry no permissions.
                uint64_t pdpte = entry((cpu.cr3 & 0xffff'ffe0) + ((address >> 30) & 3) * 8, 8, false);
                if (!(pdpte & kP)) fault(0);
                if (pdpte & (reserved_high | 0x1e6)) fault(pf::P | pf::RSVD);
                table = pdpte & kAddrMask;
                level = 2;
            }
            for (;; --level) {
                unsigned shift = 12 + 9 * static_cast<unsigned>(level - 1);
                uint64_t at = table + ((address >> shift) & 0x1ff) * 8;
                uint64_t e = entry(at, 8);
                if (!(e & kP)) fault(0);
                bool large = (e & kPS) && (level == 2 || level == 3);
                if ((e & reserved_high) || ((e & kPS) && level == 4)) fault(pf::P | pf::RSVD);
                if (large && (e & (((1ull << (shift - 13)) - 1) << 13))) fault(pf::P | pf::RSVD);  // PAT bit 12 is allowed
                combine(e);
                if (level == 1 || large) {
                    w.large = large;
                    leaf = e;
                    leaf_phys = at;
                    uint64_t page_mask = (1ull << shift) - 1;
                    w.phys = ((e & kAddrMask) & ~page_mask) | (address & page_mask & ~0xfffull);
                    break;
                }
                table = e & kAddrMask;
            }
        }
        w.global = (leaf & kG) && (cpu.cr4 & cr4::PGE);
        w.dirty = (leaf & kD) != 0;

        // Permissions (§4.6).
        bool supervisor_may_write = w.writable || !(cpu.cr0 & cr0::WP);
        if (user_access) {
            if (!w.user) fault(pf::P);
            if (access == Access::Write && !w.writable) fault(pf::P);
            if (access == Access::Execute && !w.executable) fault(pf::P);
        } else {
            if (access == Access::Write && !supervisor_may_write) fault(pf::P);
            if (access == Access::Execute) {
                if (!w.executable) fault(pf::P);
                if (w.user && (cpu.cr4 & kCr4Smep)) fault(pf::P);
            } else if (w.user && (cpu.cr4 & kCr4Smap) && !(cpu.flags.other & rflags::AC)) {
                fault(pf::P);
            }
        }
        if (access == Access::Write && !w.dirty) {
            uint8_t* host = cpu.ram_pointer(leaf_phys, leaf_bytes);
            if (leaf_bytes == 4) __atomic_or_fetch(reinterpret_cast<uint32_t*>(host), static_cast<uint32_t>(kD), __ATOMIC_RELAXED);
            else __atomic_or_fetch(reinterpret_cast<uint64_t*>(host), kD, __ATOMIC_RELAXED);
            w.dirty = true;
        }
        if (!user_access) w.writable = supervisor_may_write;
        return w;
    }

    // Translates one access within a page, filling the TLB entry; returns the physical address
    // and the host pointer (nullptr when the page is not RAM).
    static std::pair<uint64_t, uint8_t*> translate(Cpu& cpu, uint64_t address, Access access, bool supervisor) {
        bool user_access = cpu.cpl == 3 && !supervisor;
        Walk w = walk(cpu, address, access, user_access);
        uint64_t page = address & ~0xfffull;
        uint8_t* host = cpu.ram_pointer(w.phys, 0x1000);
        TlbEntry& e = cpu.tlb_[user_access ? 1 : 0][Cpu::tlb_slot(address)];
        e = TlbEntry{};
        if (w.large) cpu.large_pages_cached_ = true;
        if (host) {
            // SMAP makes supervisor data accesses to user pages depend on RFLAGS.AC: not cached.
            bool cache_data = user_access || !w.user || !(cpu.cr4 & kCr4Smap);
            e.addend = reinterpret_cast<uintptr_t>(host) - page;
            e.phys = w.phys;
            e.global = w.global;
            if (cache_data) e.read_tag = page;
            if (cache_data && w.writable && w.dirty && !cpu.code_pages->is_code(w.phys)) e.write_tag = page;
            if (w.executable && !(w.user && !user_access && (cpu.cr4 & kCr4Smep))) e.exec_tag = page;
        }
        uint64_t offset = address & 0xfff;
        return {w.phys | offset, host ? host + offset : nullptr};
    }

    static constexpr uint64_t kCr4Pse = 1u << 4, kCr4Smep = 1u << 20, kCr4Smap = 1u << 21;
};

// A write reached RAM page `phys` through the slow path. If blocks were decoded from it they are
// stale now, and the block running may be one of them: it ends after this instruction, so that
// self-modifying code takes effect at the next one.
void Cpu::code_written(uint64_t phys) {
    if (auto* page = code_pages->word(phys); page && (page->load(std::memory_order_relaxed) & 1)) {
        code_pages->written(*page);
        end_block = true;
    }
}

uint8_t* Cpu::ram_pointer(uint64_t phys, uint64_t length) const {
    for (const RamRegion& r : memory->regions())
        if (phys >= r.gpa && phys - r.gpa < r.size && length <= r.size - (phys - r.gpa)) return r.host + (phys - r.gpa);
    return nullptr;
}

void Cpu::phys_read(uint64_t phys, void* out, unsigned size) {
    auto* bytes = static_cast<uint8_t*>(out);
    if (uint8_t* host = ram_pointer(phys, size)) {
        std::memcpy(bytes, host, size);
        return;
    }
    if (lapic && lapic->decodes_mmio() && (phys & ~0xfffull) == lapic->mmio_base()) {
        lapic->read(phys & 0xfff, std::span(bytes, size));
        return;
    }
    MmioExit exit{.address = phys, .write = false, .data = std::span(bytes, size)};
    dispatch(*platform, exit);
}

void Cpu::phys_write(uint64_t phys, const void* in, unsigned size) {
    uint8_t bytes[16];
    std::memcpy(bytes, in, size);
    if (uint8_t* host = ram_pointer(phys, size)) {
        code_written(phys);
        if ((phys & 0xfff) + size > 0x1000) code_written(phys + size - 1);
        std::memcpy(host, bytes, size);
        return;
    }
    if (lapic && lapic->decodes_mmio() && (phys & ~0xfffull) == lapic->mmio_base()) {
        lapic->write(phys & 0xfff, std::span<const uint8_t>(bytes, size));
        return;
    }
    MmioExit exit{.address = phys, .write = true, .data = std::span(bytes, size)};
    dispatch(*platform, exit);
}

void Cpu::slow_read(uint64_t address, void* out, unsigned size, bool supervisor) {
    auto* bytes = static_cast<uint8_t*>(out);
    unsigned first = std::min<unsigned>(size, 0x1000 - static_cast<unsigned>(address & 0xfff));
    // Both pages are translated before anything is read (a fault leaves nothing half done).
    auto [phys0, host0] = Mmu::translate(*this, address, Access::Read, supervisor);
    uint64_t phys1 = 0;
    uint8_t* host1 = nullptr;
    if (first < size) std::tie(phys1, host1) = Mmu::translate(*this, address + first, Access::Read, supervisor);
    if (host0) std::memcpy(bytes, host0, first);
    else phys_read(phys0, bytes, first);
    if (first < size) {
        if (host1) std::memcpy(bytes + first, host1, size - first);
        else phys_read(phys1, bytes + first, size - first);
    }
}

void Cpu::slow_write(uint64_t address, const void* in, unsigned size, bool supervisor) {
    const auto* bytes = static_cast<const uint8_t*>(in);
    unsigned first = std::min<unsigned>(size, 0x1000 - static_cast<unsigned>(address & 0xfff));
    auto [phys0, host0] = Mmu::translate(*this, address, Access::Write, supervisor);
    uint64_t phys1 = 0;
    uint8_t* host1 = nullptr;
    if (first < size) std::tie(phys1, host1) = Mmu::translate(*this, address + first, Access::Write, supervisor);
    auto put = [&](uint64_t phys, uint8_t* host, const uint8_t* from, unsigned n) {
        if (host) {
            code_written(phys);
            std::memcpy(host, from, n);
        } else {
            phys_write(phys, from, n);
        }
    };
    put(phys0, host0, bytes, first);
    if (first < size) put(phys1, host1, bytes + first, size - first);
}

uint8_t* Cpu::rmw_pointer(uint64_t address, unsigned size) {
    if ((address & 0xfff) + size > 0x1000) return nullptr;
    // A cached write permission is a dirty RAM page no block was decoded from: nothing to walk.
    if (void* host = cached_write(address, size, false)) return static_cast<uint8_t*>(host);
    auto [phys, host] = Mmu::translate(*this, address, Access::Write, false);
    if (host) code_written(phys);
    return host;
}

const uint8_t* Cpu::read_pointer(uint64_t address, unsigned size) {
    if ((address & 0xfff) + size > 0x1000) return nullptr;
    if (const void* host = cached_read(address, size, false)) return static_cast<const uint8_t*>(host);
    return Mmu::translate(*this, address, Access::Read, false).second;
}

Cpu::Fetch Cpu::translate_fetch(uint64_t address) {
    const TlbEntry& e = tlb_[user_index(false)][tlb_slot(address)];
    if (e.exec_tag == (address & ~0xfffull))
        return {e.phys | (address & 0xfff), reinterpret_cast<const uint8_t*>(address + e.addend), e.global};
    auto [phys, host] = Mmu::translate(*this, address, Access::Execute, false);
    return {phys, host, false};
}

void Cpu::flush_tlb(bool including_global) {
    ++tlb_generation_;
    if (including_global) ++global_tlb_generation_;
    for (auto& table : tlb_)
        for (TlbEntry& e : table)
            if (including_global || !e.global) e = TlbEntry{};
    if (including_global) large_pages_cached_ = false;
}

// INVLPG drops every translation of the page that holds `address` (SDM vol. 3A §4.10.4.1): for
// a large page that is every 4 KiB piece of it the TLB cached, so while large pages may be cached
// the whole 4 MiB-aligned region around the address is dropped (it covers 2 and 4 MiB pages).
void Cpu::flush_tlb_page(uint64_t address) {
    ++tlb_generation_;
    ++global_tlb_generation_;
    auto drop = [&](uint64_t page) {
        for (auto& table : tlb_) {
            TlbEntry& e = table[tlb_slot(page)];
            if (e.read_tag == page || e.write_tag == page || e.exec_tag == page) e = TlbEntry{};
        }
    };
    if (!large_pages_cached_) {
        drop(address & ~0xfffull);
        return;
    }
    uint64_t region = address & ~0x3f'ffffull;
    for (uint64_t page = region; page < region + 0x40'0000; page += 0x1000) drop(page);
}

void Cpu::flush_tlb_writes() {
    for (auto& table : tlb_)
        for (TlbEntry& e : table) e.write_tag = TlbEntry::kInvalidTag;
}

// Segmentation outside 64-bit mode (SDM vol. 3A §5.3, §5.4): the null selector, the type
// (read-only data and execute-only code) and the limit (expand-up or expand-down).
uint64_t Cpu::legacy_linear(unsigned s, uint64_t offset, unsigned size, Access access) const {
    const SegmentState& sg = seg[s];
    auto fail = [s]() { s == SS ? raise_ss() : raise_gp(); };
    if (protected_mode && !v86) {
        if (sg.unusable) fail();
        bool code = (sg.type & 8) != 0;
        if (access == Access::Write && (code || !(sg.type & 2))) fail();
        if (access == Access::Read && code && !(sg.type & 2)) fail();
    }
    uint64_t last = offset + size - 1;
    if (!(sg.type & 8) && (sg.type & 4)) {
        // Expand-down: valid offsets are limit + 1 up to 0xffff or 0xffffffff.
        uint64_t upper = sg.db ? 0xffff'ffffull : 0xffffull;
        if (offset <= sg.limit || last > upper) fail();
    } else if (last > sg.limit) {
        fail();
    }
    return (sg.base + offset) & 0xffff'ffffull;
}

uint64_t Cpu::port_in(uint16_t port, unsigned size) {
    uint8_t data[4] = {};
    PortIoExit exit{.port = port, .size = static_cast<uint8_t>(size), .count = 1, .write = false,
                    .data = std::span(data, size)};
    dispatch(*platform, exit);
    uint32_t value = 0;
    std::memcpy(&value, data, size);
    return value;
}

void Cpu::port_out(uint16_t port, unsigned size, uint64_t value) {
    uint8_t data[4];
    auto v = static_cast<uint32_t>(value);
    std::memcpy(data, &v, 4);
    PortIoExit exit{.port = port, .size = static_cast<uint8_t>(size), .count = 1, .write = true,
                    .data = std::span(data, size)};
    dispatch(*platform, exit);
}

}  // namespace strata::soft
