// Fuzzes what `strata restore` reads from a snapshot directory before it builds anything: the
// manifest (snapshot.json) with the machine configuration in it, and state.bin's sections with
// the decoders of the vCPU state, the memory map, the interrupt controllers and the devices.
//
// Input: the first byte picks the part: even, the rest is snapshot.json; odd, the rest is
// state.bin, and every section of it is given to the decoder its name selects.
// Invariants beyond "no crash, no UB, no leak":
//   - what a decoder accepts (finish() succeeds) encodes back to exactly the bytes it read: the
//     encoding is canonical, so nothing in a snapshot is ignored or silently changed;
//   - a state file that decodes encodes back to the same bytes;
//   - an accepted memory map's extents are whole pages, sorted, disjoint and inside RAM;
//   - a "pci/SS" section is offered to a PCI function of each kind the board places (virtio-rng,
//     virtio-console, pci-testdev): one that accepts it and is not left running by it saves
//     the same bytes back.
#include <memory>
#include <string>

#include "cpu/cpu_state_codec.hpp"
#include "devices/irqchip/irqchip_state.hpp"
#include "devices/legacy/acpi_pm.hpp"
#include "devices/legacy/cmos_rtc.hpp"
#include "devices/legacy/fw_cfg.hpp"
#include "devices/legacy/hpet.hpp"
#include "devices/legacy/i8042.hpp"
#include "devices/legacy/uart16550.hpp"
#include "devices/pci/pci_host.hpp"
#include "devices/pci/pci_testdev.hpp"
#include "devices/virtio/virtio_console.hpp"
#include "devices/virtio/virtio_pci.hpp"
#include "devices/virtio/virtio_rng.hpp"
#include "devices/test/pc_testdev.hpp"
#include "fuzz_support.hpp"
#include "machine/snapshot_config.hpp"
#include "snapshot/memory_file.hpp"
#include "snapshot/snapshot_dir.hpp"
#include "snapshot/state_file.hpp"

using namespace strata;

namespace {

template <class Decode, class Encode>
void round_trip(const snapshot::Section& section, Decode decode, Encode encode) {
    StateReader in(section.bytes, section.name);
    auto value = decode(in);
    if (!in.finish()) return;
    StateWriter out;
    encode(out, value);
    FUZZ_CHECK(std::ranges::equal(out.view(), section.bytes), "section '{}' does not encode back to its {} bytes",
               section.name, section.bytes.size());
}

// A device's State, whose encode and decode are its members.
template <class Device>
void device_round_trip(const snapshot::Section& section) {
    round_trip(section, Device::State::decode,
               [](StateWriter& out, const typename Device::State& s) { s.encode(out); });
}

// PCI functions to restore "pci/SS" sections into, made once: a function refuses the state of any
// other kind, so each input reaches the one it fits.
struct PciFunctions {
    struct NoMsi final : MsiController {
        void send(uint64_t, uint32_t) override {}
    };
    GuestMemory memory = std::move(*GuestMemory::create(2 << 20));
    GuestDma dma{memory};
    NoMsi msi;
    std::vector<std::shared_ptr<PciDevice>> functions;

    PciFunctions() {
        functions.push_back(*VirtioPci::create(std::make_unique<VirtioRng>(), dma, msi));
        functions.push_back(*VirtioPci::create(std::make_unique<VirtioConsole>(VirtioConsole::Output()), dma, msi));
        functions.push_back(std::make_shared<PciTestDev>());
    }
};

void pci_function_round_trip(const snapshot::Section& section) {
    static PciFunctions pci;
    for (const std::shared_ptr<PciDevice>& function : pci.functions) {
        StateReader in(section.bytes, section.name);
        auto change = function->load_state(in);
        if (!in.finish()) continue;
        if (!change()) return;
        auto* virtio = dynamic_cast<VirtioPci*>(function.get());
        // A device the state leaves running goes on working (on rings in zeroed RAM).
        if (virtio && (virtio->status() & virtio::kStatusDriverOk)) return;
        function->quiesce(true);
        StateWriter out;
        function->save_state(out);
        function->quiesce(false);
        FUZZ_CHECK(std::ranges::equal(out.view(), section.bytes), "section '{}' does not save back to its {} bytes",
                   section.name, section.bytes.size());
        return;
    }
}

void check_section(const snapshot::Section& section) {
    if (section.name == "memory") {
        StateReader in(section.bytes, section.name);
        snapshot::MemoryImage image = snapshot::decode_memory_map(in);
        if (!in.finish()) return;
        uint64_t end = 0;
        for (const snapshot::MemoryExtent& e : image.extents) {
            FUZZ_CHECK(e.offset % snapshot::kPageSize == 0 && e.length % snapshot::kPageSize == 0 && e.length > 0,
                       "an accepted extent {:#x}+{:#x} is not whole pages", e.offset, e.length);
            FUZZ_CHECK(e.offset >= end && e.offset + e.length <= image.ram_size, "an accepted extent is out of order or past RAM");
            end = e.offset + e.length;
        }
        round_trip(section, snapshot::decode_memory_map, snapshot::encode_memory_map);
    } else if (section.name.starts_with("vcpu/")) {
        round_trip(section, decode_cpu_state, encode_cpu_state);
    } else if (section.name == "irqchip") {
        round_trip(section, IrqchipState::decode, [](StateWriter& out, const IrqchipState& s) { s.encode(out); });
    } else if (section.name == "com1") {
        device_round_trip<Uart16550>(section);
    } else if (section.name == "rtc") {
        device_round_trip<CmosRtc>(section);
    } else if (section.name == "hpet") {
        device_round_trip<Hpet>(section);
    } else if (section.name == "acpi-pm") {
        device_round_trip<AcpiPm>(section);
    } else if (section.name == "i8042") {
        device_round_trip<I8042>(section);
    } else if (section.name == "fw-cfg") {
        device_round_trip<FwCfg>(section);
    } else if (section.name == "pc-testdev") {
        device_round_trip<PcTestDev>(section);
    } else if (section.name == "pci-host") {
        device_round_trip<PciHost>(section);
    } else if (section.name.starts_with("pci/")) {
        pci_function_round_trip(section);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    std::span<const uint8_t> rest(data + 1, size - 1);
    if (data[0] % 2 == 0) {
        auto manifest = snapshot::parse_manifest(rest);
        if (manifest) (void)config_from_snapshot(manifest->content.machine);
        return 0;
    }
    auto sections = snapshot::decode_state_file(rest);
    if (!sections) return 0;
    auto again = snapshot::encode_state_file(*sections);
    FUZZ_CHECK(std::ranges::equal(again, rest), "a state file does not encode back to its {} bytes", rest.size());
    for (const snapshot::Section& section : *sections) check_section(section);
    return 0;
}
