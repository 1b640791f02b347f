#include "devices/irqchip/irqchip_state.hpp"

namespace strata {

// The field codecs of the three interrupt-controller models, in the order docs/snapshot-format.md lists.
namespace {

void encode_chip(StateWriter& out, const Pic8259Pair::ChipState& c) {
    for (uint8_t b : {c.irr, c.isr, c.imr, c.input_levels, c.elcr, c.vector_base, c.cascade, c.highest_priority_ir,
                      c.init_step, c.buffered_mode})
        out.u8(b);
    for (bool b : {c.level_triggered, c.single, c.icw4_needed, c.mode_8086, c.auto_eoi, c.special_fully_nested,
                   c.rotate_on_auto_eoi, c.read_isr, c.poll, c.special_mask})
        out.boolean(b);
}

Pic8259Pair::ChipState decode_chip(StateReader& in) {
    Pic8259Pair::ChipState c;
    for (uint8_t* b : {&c.irr, &c.isr, &c.imr, &c.input_levels, &c.elcr, &c.vector_base, &c.cascade,
                       &c.highest_priority_ir, &c.init_step, &c.buffered_mode})
        *b = in.u8("8259 register");
    for (bool* b : {&c.level_triggered, &c.single, &c.icw4_needed, &c.mode_8086, &c.auto_eoi, &c.special_fully_nested,
                    &c.rotate_on_auto_eoi, &c.read_isr, &c.poll, &c.special_mask})
        *b = in.boolean("8259 mode bit");
    return c;
}

void encode_counter(StateWriter& out, const Pit8254::CounterState& c) {
    out.u8(c.mode);
    out.u8(c.mode_bits);
    out.u8(static_cast<uint8_t>(c.access));
    out.boolean(c.bcd);
    out.u32(c.count);
    out.boolean(c.count_written);
    out.i64(c.null_count_until);
    out.boolean(c.write_high_next);
    out.u8(c.written_low);
    out.boolean(c.read_high_next);
    out.boolean(c.count_latched);
    out.u16(c.latched_count);
    out.boolean(c.status_latched);
    out.u8(c.latched_status);
    out.boolean(c.gate);
    out.boolean(c.counting);
    out.i64(c.run_start);
    out.u32(c.run_count);
    out.boolean(c.suspended);
    out.i64(c.suspended_elapsed);
    out.u16(c.idle_value);
    out.boolean(c.idle_out);
    out.boolean(c.switch_pending);
    out.i64(c.switch_tick);
    out.i64(c.switch_start);
}

Pit8254::CounterState decode_counter(StateReader& in) {
    Pit8254::CounterState c;
    c.mode = in.u8("PIT mode");
    c.mode_bits = in.u8("PIT mode bits");
    c.access = static_cast<Pit8254::Access>(in.u8_at_most(3, "PIT access"));
    c.bcd = in.boolean("PIT BCD");
    c.count = in.u32("PIT count");
    c.count_written = in.boolean("PIT count written");
    c.null_count_until = in.i64("PIT null count");
    c.write_high_next = in.boolean("PIT write flip-flop");
    c.written_low = in.u8("PIT written LSB");
    c.read_high_next = in.boolean("PIT read flip-flop");
    c.count_latched = in.boolean("PIT count latched");
    c.latched_count = in.u16("PIT latched count");
    c.status_latched = in.boolean("PIT status latched");
    c.latched_status = in.u8("PIT latched status");
    c.gate = in.boolean("PIT gate");
    c.counting = in.boolean("PIT counting");
    c.run_start = in.i64("PIT run start");
    c.run_count = in.u32("PIT run count");
    c.suspended = in.boolean("PIT suspended");
    c.suspended_elapsed = in.i64("PIT suspended elapsed");
    c.idle_value = in.u16("PIT idle value");
    c.idle_out = in.boolean("PIT idle OUT");
    c.switch_pending = in.boolean("PIT switch pending");
    c.switch_tick = in.i64("PIT switch tick");
    c.switch_start = in.i64("PIT switch start");
    return c;
}

}  // namespace

void IrqchipState::encode(StateWriter& out) const {
    encode_chip(out, pic.master);
    encode_chip(out, pic.slave);
    out.u8(ioapic.id);
    out.u8(ioapic.register_select);
    for (uint64_t r : ioapic.redirection) out.u64(r);
    out.u32(ioapic.input_levels);
    for (const auto& c : pit.counters) encode_counter(out, c);
    out.u8(pit.port_b);
    out.boolean(pit.refresh_toggle);
    out.i64(pit.irq_signalled_through);
    out.boolean(pit.irq_sent);
    out.i64(pit.last_irq_ns);
}

IrqchipState IrqchipState::decode(StateReader& in) {
    IrqchipState s;
    s.pic.master = decode_chip(in);
    s.pic.slave = decode_chip(in);
    s.ioapic.id = in.u8("IOAPIC ID");
    s.ioapic.register_select = in.u8("IOAPIC register select");
    for (uint64_t& r : s.ioapic.redirection) r = in.u64("IOAPIC redirection entry");
    s.ioapic.input_levels = in.u32("IOAPIC input levels");
    for (auto& c : s.pit.counters) c = decode_counter(in);
    s.pit.port_b = in.u8("PIT port B");
    s.pit.refresh_toggle = in.boolean("PIT refresh toggle");
    s.pit.irq_signalled_through = in.i64("PIT IRQ0 signalled through");
    s.pit.irq_sent = in.boolean("PIT IRQ0 sent");
    s.pit.last_irq_ns = in.i64("PIT last IRQ0");
    return s;
}

}  // namespace strata
