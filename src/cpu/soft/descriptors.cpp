#include "cpu/soft/descriptors.hpp"

#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

namespace {

// Linear addresses outside IA-32e mode are 32 bits wide (SDM vol. 3A §3.4).
uint64_t table_linear(const Cpu& cpu, uint64_t address) { return cpu.long_mode ? address : address & 0xffff'ffffu; }

// Sets `bit` of the descriptor's byte 5 (type, S, DPL, P). Hardware does this as a locked
// supervisor write; the byte is written only when the bit is clear, so that tables on read-only
// pages (Linux's fixmap GDT, whose entries it creates accessed) are never written.
void set_type_bit(Cpu& cpu, uint16_t selector, Descriptor& descriptor, uint32_t bit) {
    if (descriptor.high & bit) return;
    auto address = descriptor_address(cpu, selector);
    if (!address) return;
    uint64_t byte5 = table_linear(cpu, *address + 5);
    auto value = cpu.read_linear<uint8_t>(byte5, true);
    cpu.write_linear<uint8_t>(byte5, static_cast<uint8_t>(value | (bit >> 8)), true);
    descriptor.high |= bit;
}

}  // namespace

std::optional<uint64_t> descriptor_address(const Cpu& cpu, uint16_t selector, unsigned bytes) {
    uint64_t base = cpu.gdtr.base;
    uint64_t limit = cpu.gdtr.limit;
    if (selector & 4) {  // TI: the LDT
        if (cpu.ldtr.unusable) return std::nullopt;
        base = cpu.ldtr.base;
        limit = cpu.ldtr.limit;
    }
    uint64_t offset = selector & 0xfff8u;
    if (offset + bytes - 1 > limit) return std::nullopt;
    return table_linear(cpu, base + offset);
}

std::optional<Descriptor> read_descriptor(Cpu& cpu, uint16_t selector, unsigned bytes) {
    auto address = descriptor_address(cpu, selector, bytes);
    if (!address) return std::nullopt;
    Descriptor d;
    auto first = cpu.read_linear<uint64_t>(*address, true);
    d.low = static_cast<uint32_t>(first);
    d.high = static_cast<uint32_t>(first >> 32);
    if (bytes == 16) {
        auto second = cpu.read_linear<uint64_t>(table_linear(cpu, *address + 8), true);
        d.high2 = static_cast<uint32_t>(second);
        d.high3 = static_cast<uint32_t>(second >> 32);
    }
    return d;
}

void mark_accessed(Cpu& cpu, uint16_t selector, Descriptor& descriptor) {
    set_type_bit(cpu, selector, descriptor, uint32_t{seg_type::Accessed} << 8);
}

void mark_tss_busy(Cpu& cpu, uint16_t selector, Descriptor& descriptor) {
    set_type_bit(cpu, selector, descriptor, 2u << 8);  // type 9 → 0xb (SDM §7.2.2)
}

SegmentState segment_from(uint16_t selector, const Descriptor& d) {
    SegmentState s;
    s.base = d.base32();
    s.limit = d.limit();
    s.selector = selector;
    s.type = d.type();
    s.present = d.present();
    s.dpl = static_cast<uint8_t>(d.dpl());
    s.db = d.db();
    s.s = d.code_or_data();
    s.l = d.l();
    s.g = d.g();
    s.avl = (d.high >> 20) & 1;
    s.unusable = false;
    return s;
}

SegmentState null_segment(uint16_t selector) {
    SegmentState s;
    s.base = 0;
    s.limit = 0;
    s.selector = selector;
    s.type = 0;
    s.present = false;
    s.dpl = static_cast<uint8_t>(rpl(selector));
    s.unusable = true;
    return s;
}

void load_real_mode_segment(Cpu& cpu, unsigned sreg, uint16_t selector) {
    SegmentState& s = cpu.seg[sreg];
    s.selector = selector;
    s.base = uint64_t{selector} << 4;
    s.unusable = false;
    if (cpu.v86) {
        // SDM vol. 3A §20.1.1: every segment is a 64 KiB read/write segment at privilege 3.
        s.limit = 0xffff;
        s.type = sreg == CS ? 0xb : 0x3;
        s.present = true;
        s.dpl = 3;
        s.db = false;
        s.s = true;
        s.l = false;
        s.g = false;
    }
}

void load_segment_register(Cpu& cpu, unsigned sreg, uint16_t selector) {
    cpu.end_block = true;
    if (!cpu.protected_mode || cpu.v86) {
        load_real_mode_segment(cpu, sreg, selector);
        if (sreg == SS) cpu.refresh_mode();
        return;
    }
    uint32_t error = selector_error(selector);
    if (sreg == SS) {
        if (null_selector(selector)) {
            // 64-bit mode allows a null SS below CPL 3 when RPL = CPL (SDM vol. 2 MOV, 64-bit mode).
            if (!cpu.code64 || cpu.cpl == 3 || rpl(selector) != cpu.cpl) raise_gp(0);
            cpu.seg[SS] = null_segment(selector);
            cpu.refresh_mode();
            return;
        }
        auto d = read_descriptor(cpu, selector);
        if (!d) raise_gp(error);
        if (rpl(selector) != cpu.cpl || !d->writable_data() || d->dpl() != cpu.cpl) raise_gp(error);
        if (!d->present()) raise_ss(error);
        mark_accessed(cpu, selector, *d);
        cpu.seg[SS] = segment_from(selector, *d);
        cpu.refresh_mode();
        return;
    }
    if (null_selector(selector)) {
        cpu.seg[sreg] = null_segment(selector);
        return;
    }
    auto d = read_descriptor(cpu, selector);
    if (!d || !d->readable()) raise_gp(error);
    if (!d->conforming_code() && (rpl(selector) > d->dpl() || cpu.cpl > d->dpl())) raise_gp(error);
    if (!d->present()) raise_fault(vec::NP, error);
    mark_accessed(cpu, selector, *d);
    cpu.seg[sreg] = segment_from(selector, *d);
}

void check_code_segment(const Cpu& cpu, const Descriptor& d, uint32_t error) {
    if (!d.code()) raise_gp(error);
    // L = 1 with D = 1 is reserved in IA-32e mode (SDM vol. 3A §5.2.1).
    if (cpu.long_mode && d.l() && d.db()) raise_gp(error);
    if (!d.present()) raise_fault(vec::NP, error);
}

void check_direct_code_target(const Cpu& cpu, uint16_t selector, const Descriptor& d) {
    uint32_t error = selector_error(selector);
    if (!d.code()) raise_gp(error);
    if (d.conforming_code()) {
        if (d.dpl() > cpu.cpl) raise_gp(error);
    } else if (rpl(selector) > cpu.cpl || d.dpl() != cpu.cpl) {
        raise_gp(error);
    }
    check_code_segment(cpu, d, error);
}

InnerStack legacy_tss_stack(Cpu& cpu, unsigned dpl, bool external) {
    const SegmentState& tr = cpu.tr;
    uint32_t error = selector_error(tr.selector, external);
    InnerStack stack;
    if (tr.type & 8) {  // 32-bit TSS: ESPn at 4 + 8n, SSn at 8 + 8n
        uint64_t offset = 4 + 8u * dpl;
        if (offset + 5 > tr.limit) raise_fault(vec::TS, error);
        stack.sp = cpu.read_linear<uint32_t>(table_linear(cpu, tr.base + offset), true);
        stack.ss = cpu.read_linear<uint16_t>(table_linear(cpu, tr.base + offset + 4), true);
    } else {  // 16-bit TSS: SPn at 2 + 4n, SSn at 4 + 4n
        uint64_t offset = 2 + 4u * dpl;
        if (offset + 3 > tr.limit) raise_fault(vec::TS, error);
        stack.sp = cpu.read_linear<uint16_t>(table_linear(cpu, tr.base + offset), true);
        stack.ss = cpu.read_linear<uint16_t>(table_linear(cpu, tr.base + offset + 2), true);
    }
    return stack;
}

uint64_t long_tss_stack(Cpu& cpu, unsigned dpl, unsigned ist, bool external) {
    const SegmentState& tr = cpu.tr;
    uint64_t offset = ist ? 0x24 + 8u * (ist - 1) : 4 + 8u * dpl;
    if (offset + 7 > tr.limit) raise_fault(vec::TS, selector_error(tr.selector, external));
    return cpu.read_linear<uint64_t>(tr.base + offset, true);
}

SegmentState check_inner_stack(Cpu& cpu, uint16_t selector, unsigned dpl, bool external) {
    uint32_t error = selector_error(selector, external);
    if (null_selector(selector)) raise_fault(vec::TS, external ? 1u : 0u);
    auto d = read_descriptor(cpu, selector);
    if (!d) raise_fault(vec::TS, error);
    if (rpl(selector) != dpl || !d->writable_data() || d->dpl() != dpl) raise_fault(vec::TS, error);
    if (!d->present()) raise_ss(error);
    mark_accessed(cpu, selector, *d);
    return segment_from(selector, *d);
}

uint64_t stack_linear(const SegmentState& ss, uint64_t offset, unsigned bytes, unsigned width, uint32_t fault_error) {
    if (width == 64) {
        if (!Cpu::canonical(offset) || !Cpu::canonical(offset + bytes - 1)) raise_ss(fault_error);
        return offset;
    }
    if (ss.unusable) raise_ss(fault_error);
    uint64_t last = offset + bytes - 1;
    if (!(ss.type & seg_type::Code) && (ss.type & seg_type::ExpandDown)) {
        uint64_t upper = ss.db ? 0xffff'ffffull : 0xffffull;
        if (offset <= ss.limit || last > upper) raise_ss(fault_error);
    } else if (last > ss.limit) {
        raise_ss(fault_error);
    }
    return (ss.base + offset) & 0xffff'ffffull;
}

uint64_t StackFrame::slot(unsigned bytes) {
    rsp_ = (rsp_ - bytes) & LazyFlags::mask(width_ / 8);
    return stack_linear(ss_, rsp_, bytes, width_, fault_error_);
}

void StackFrame::push(unsigned bytes, uint64_t value) {
    uint64_t address = slot(bytes);
    switch (bytes) {
        case 2: cpu_.write_linear<uint16_t>(address, static_cast<uint16_t>(value), supervisor_); break;
        case 4: cpu_.write_linear<uint32_t>(address, static_cast<uint32_t>(value), supervisor_); break;
        default: cpu_.write_linear<uint64_t>(address, value, supervisor_); break;
    }
}

void StackFrame::push_selector(unsigned bytes, uint16_t selector) {
    uint64_t address = slot(bytes);
    cpu_.write_linear<uint16_t>(address, selector, supervisor_);
}

uint64_t StackFrame::merged_rsp(uint64_t old_rsp) const {
    uint64_t mask = LazyFlags::mask(width_ / 8);
    return (old_rsp & ~mask) | rsp_;
}

void invalidate_inaccessible_segments(Cpu& cpu, unsigned new_cpl) {
    for (unsigned s : {ES, DS, FS, GS}) {
        SegmentState& sg = cpu.seg[s];
        if (sg.unusable || !sg.s) continue;
        bool conforming_code = (sg.type & seg_type::Code) && (sg.type & seg_type::Conforming);
        if (!conforming_code && sg.dpl < new_cpl) {
            // The selector becomes null; the base stays (FS/GS bases of 64-bit code live on).
            sg.selector = 0;
            sg.unusable = true;
        }
    }
}

}  // namespace strata::soft
