// The board's part of a snapshot: one section per device that holds state, named for the device
// the board placed (docs/snapshot-format.md lists them), and the interrupt controllers when they
// are Strata's own.
#include <algorithm>
#include <functional>

#include "base/state_stream.hpp"
#include "devices/irqchip/ioapic.hpp"
#include "devices/irqchip/pic8259.hpp"
#include "devices/irqchip/pit8254.hpp"
#include "devices/pci/pci_device.hpp"
#include "machine/board.hpp"

namespace strata {

IrqchipState Board::irqchip_state() const {
    if (!pic_) panic("Board::irqchip_state without Strata's own interrupt controllers");
    return {.pic = pic_->state(), .ioapic = ioapic_->state(), .pit = pit_->state()};
}

Result<void> Board::set_irqchip_state(const IrqchipState& state) {
    if (!pic_) panic("Board::set_irqchip_state without Strata's own interrupt controllers");
    // The PIT refuses what no guest could have made; nothing changes before it has said yes.
    if (auto r = pit_->set_state(state.pit); !r) return r;
    pic_->set_state(state.pic);
    ioapic_->set_state(state.ioapic);
    return {};
}

void Board::keep_pci_state(unsigned slot, std::shared_ptr<PciDevice> device) {
    std::string label = fmt::format("the PCI function in slot {} ({:04x}:{:04x})", slot, device->vendor_id(),
                                    device->device_id());
    stateful_.push_back({fmt::format("pci/{:02x}", slot), std::move(label),
                         [device](StateWriter& out) -> Result<void> {
                             device->save_state(out);
                             return {};
                         },
                         [device](StateReader& in) -> Result<std::function<Result<void>()>> {
                             return device->load_state(in);
                         },
                         [device](bool hold) { device->quiesce(hold); }});
}

void Board::quiesce() {
    for (const Stateful& device : stateful_)
        if (device.quiesce) device.quiesce(true);
}

void Board::unquiesce() {
    for (const Stateful& device : stateful_)
        if (device.quiesce) device.quiesce(false);
}

Result<void> Board::save_state(std::vector<snapshot::Section>& sections) const {
    for (const Stateful& device : stateful_) {
        StateWriter out;
        if (auto r = device.save(out); !r) return context(r.error(), device.name);
        sections.push_back({device.name, out.take()});
    }
    return {};
}

Result<void> Board::restore_state(std::span<const snapshot::Section> sections) {
    // Every section decodes and is checked first; then the devices change, all of them.
    std::vector<std::function<Result<void>()>> changes;
    std::vector<bool> used(sections.size());
    for (const Stateful& device : stateful_) {
        auto it = std::ranges::find(sections, device.name, &snapshot::Section::name);
        if (it == sections.end()) return fail("no state for {} (section \"{}\")", device.label, device.name);
        used[static_cast<size_t>(it - sections.begin())] = true;
        StateReader in(it->bytes, device.name);
        auto change = device.load(in);
        if (auto r = in.finish(); !r) return std::unexpected(r.error());
        if (!change) return context(change.error(), device.name);
        changes.push_back(std::move(*change));
    }
    for (size_t i = 0; i < sections.size(); ++i)
        if (!used[i]) return fail("section \"{}\" is for a device this machine does not have", sections[i].name);
    for (size_t i = 0; i < changes.size(); ++i)
        if (auto r = changes[i](); !r) return context(r.error(), stateful_[i].name);
    return {};
}

}  // namespace strata
