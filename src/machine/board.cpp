#include "machine/board.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <array>

#include "devices/irqchip/gsi_router.hpp"
#include "devices/irqchip/ioapic.hpp"
#include "devices/irqchip/pic8259.hpp"
#include "devices/irqchip/pit8254.hpp"
#include "devices/legacy/acpi_pm.hpp"
#include "devices/legacy/cmos_rtc.hpp"
#include "devices/legacy/fw_cfg.hpp"
#include "devices/legacy/hpet.hpp"
#include "devices/legacy/i8042.hpp"
#include "devices/legacy/uart16550.hpp"
#include "devices/pci/pci_host.hpp"
#include "devices/pci/pci_testdev.hpp"
#include "devices/test/debug_exit.hpp"
#include "devices/test/pc_testdev.hpp"
#include "devices/virtio/virtio_blk.hpp"
#include "devices/virtio/virtio_console.hpp"
#include "devices/virtio/virtio_net.hpp"
#include "devices/virtio/virtio_vsock.hpp"
#include "devices/virtio/virtio_pci.hpp"
#include "devices/virtio/virtio_rng.hpp"
#include "host/tap_backend.hpp"
#include "memory/pc_layout.hpp"

namespace strata {

namespace {

// Writes all of `bytes` to `fd`; the console is best effort once its reader is gone.
void write_all(int fd, std::span<const uint8_t> bytes) {
    while (!bytes.empty()) {
        ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        bytes = bytes.subspan(static_cast<size_t>(n));
    }
}

// The terminal's size for the virtio-console's configuration (VIRTIO_CONSOLE_F_SIZE); 80x24
// when the console is not a terminal.
VirtioConsole::Size terminal_size(int fd) {
    winsize size{};
    if (::ioctl(fd, TIOCGWINSZ, &size) == 0 && size.ws_col > 0 && size.ws_row > 0)
        return {.cols = size.ws_col, .rows = size.ws_row};
    return {};
}

// The MAC of the network interface at `index` without mac=: QEMU's locally administered
// 52:54:00:12:34:56, counted up in its last three bytes.
MacAddress default_mac(size_t index) {
    MacAddress mac = VirtioNet::kDefaultMac;
    uint32_t low = (uint32_t{mac[3]} << 16 | uint32_t{mac[4]} << 8 | mac[5]) + static_cast<uint32_t>(index);
    mac[3] = static_cast<uint8_t>(low >> 16);
    mac[4] = static_cast<uint8_t>(low >> 8);
    mac[5] = static_cast<uint8_t>(low);
    return mac;
}

Result<std::unique_ptr<NetBackend>> open_net_backend(const NetConfig& net) {
    if (net.mode == NetConfig::Mode::Tap) {
        auto tap = TapBackend::open(net.ifname);
        if (!tap) return std::unexpected(tap.error());
        return std::unique_ptr<NetBackend>(std::move(*tap));
    }
    auto slirp = SlirpBackend::create(net.forwards, net.mtu);
    if (!slirp) return std::unexpected(slirp.error());
    return std::unique_ptr<NetBackend>(std::move(*slirp));
}

}  // namespace

// IRQ 8 as the RTC drives it, also reported to the ACPI PM block: an RTC interrupt sets RTC_STS
// and is the wake event that ends S3 (ACPI 6.5 §4.8.3.1.1, PM1 status RTC_STS).
class Board::RtcWakeLine final : public IrqLine {
public:
    RtcWakeLine(IrqLine& irq, AcpiPm& pm) : irq_(irq), pm_(pm) {}
    void set_level(bool asserted) override {
        irq_.set_level(asserted);
        if (asserted) pm_.rtc_alarm();
    }

private:
    IrqLine& irq_;
    AcpiPm& pm_;
};

Board::~Board() = default;

Result<std::unique_ptr<Board>> Board::build(CpuEngine& engine, MachineControl& control, TimerService& timers,
                                            const GuestMemory& memory, const MachineConfig& config) {
    std::unique_ptr<Board> board(new Board());
    // Placement stops at the first conflict; the error names both devices.
    Result<void> placed;
    auto place = [&placed](Bus& bus, uint64_t base, uint64_t size, std::shared_ptr<BusDevice> device, std::string name) {
        if (placed) placed = bus.add(base, size, std::move(device), std::move(name));
    };

    // The interrupt topology. An engine with in-kernel controllers (KVM) brings the 8259 pair,
    // the IOAPIC and the PIT and gives one line per GSI; otherwise the board places Strata's own
    // and wires them to the engine's local APICs: the 8259s' INT to every LINT0 (virtual wire),
    // the IOAPIC's messages onto the APIC bus, the PIT on IRQ0.
    if (LocalApicSet* lapics = engine.local_apics()) {
        board->pic_ = std::make_unique<Pic8259Pair>(lapics->lint0());
        board->ioapic_ = std::make_shared<IoApic>(*lapics);
        board->gsi_ = std::make_unique<GsiRouter>(*board->pic_, *board->ioapic_);
        lapics->connect(*board->pic_, *board->ioapic_);
        place(board->pio_, pc::kPortPic1, 2, board->pic_->master_port(), "8259A master");
        place(board->pio_, pc::kPortPic2, 2, board->pic_->slave_port(), "8259A slave");
        place(board->pio_, pc::kPortElcr, 2, board->pic_->elcr_port(), "8259A ELCR");
        place(board->mmio_, pc::kIoApic, IoApic::kWindowSize, board->ioapic_, "IOAPIC");
    }
    auto line = [&](unsigned gsi) -> IrqLine& {
        if (gsi >= board->gsi_lines_.size()) board->gsi_lines_.resize(gsi + 1);
        if (auto& counted = board->gsi_lines_[gsi]) return *counted;
        IrqLine* irq = board->gsi_ ? board->gsi_->line(gsi) : engine.irq_line(gsi);
        if (!irq) panic(fmt::format("the {} engine has no GSI {}", engine.name(), gsi));
        board->gsi_lines_[gsi] = std::make_unique<CountingIrqLine>(*irq);
        return *board->gsi_lines_[gsi];
    };
    board->msi_ = std::make_unique<CountingMsi>(engine.msi());

    // override says) and IRQ8; its other routes are GSIs 20-23 (no ISA device, no PCI INTx). The
    // override says) and IRQ8; its other routes are the IOAPIC inputs no ISA device uses. The
    // PIT's and RTC's interrupts pass through it, which cuts them off in LegacyReplacement mode.
    Hpet::Wiring hpet_wiring;
    hpet_wiring.irq0 = &line(pc::kIrqPit);
    hpet_wiring.irq8 = &line(pc::kIrqRtc);
    for (unsigned gsi = pc::kFirstHpetGsi; gsi < pc::kIoApicPins; ++gsi) hpet_wiring.ioapic[gsi] = &line(gsi);
    board->hpet_ = std::make_shared<Hpet>(timers, hpet_wiring);
    place(board->mmio_, pc::kHpet, Hpet::kWindowSize, board->hpet_, "HPET");

    if (board->gsi_) {
        board->pit_ = std::make_shared<Pit8254>(board->hpet_->pit_input(), timers);
        place(board->pio_, pc::kPortPit, 4, board->pit_->counters(), "8254 PIT");
        place(board->pio_, pc::kPortSystemControlB, 1, board->pit_->system_control(), "port 0x61 (PIT gate, speaker)");
    }

    // The terminal shows COM1 with either --console: with virtio, the kernel's early messages
    // (console=ttyS0, earlyprintk) are on COM1 until the hvc driver is loaded.
    int console_out = config.console_out;
    auto to_terminal = [console_out](std::span<const uint8_t> bytes) { write_all(console_out, bytes); };
    board->com1_ = std::make_shared<Uart16550>(line(pc::kIrqCom1), to_terminal);
    board->console_ = board->com1_.get();
    place(board->pio_, pc::kPortCom1, Uart16550::kWindowSize, board->com1_, "COM1 (16550A)");

    auto i8042 = std::make_shared<I8042>(line(pc::kIrqKeyboard), line(pc::kIrqMouse), control);
    place(board->pio_, pc::kPortI8042, I8042::kDataWindowSize, i8042->data_port(), "i8042 data");
    place(board->pio_, pc::kPortI8042 + 4, I8042::kCommandWindowSize, i8042->command_port(), "i8042 command");


    auto fw_cfg = std::make_shared<FwCfg>(memory.ram_size(), static_cast<uint16_t>(config.cpus));
    place(board->pio_, pc::kPortFwCfg, FwCfg::kWindowSize, fw_cfg, "fw_cfg");

    // The PM timer runs on the machine clock, so it stops while the VM is paused and a restore
    // continues it from the snapshot's time.
    MachineClock& clock = timers.clock();
    auto acpi_pm = std::make_shared<AcpiPm>(line(pc::kIrqAcpiSci), control, [&clock] { return clock.now_ns(); });
    place(board->pio_, pc::kPortAcpiPm, AcpiPm::kWindowSize, acpi_pm, "ACPI PM");
    board->acpi_pm_ = acpi_pm;

    board->rtc_irq_ = std::make_unique<RtcWakeLine>(board->hpet_->rtc_input(), *acpi_pm);
    auto rtc = std::make_shared<CmosRtc>(*board->rtc_irq_, timers);
    uint64_t below_4g = std::min<uint64_t>(memory.ram_size(), GuestMemory::kLowRamLimit);
    rtc->set_memory_size(below_4g, memory.ram_size() - below_4g);
    place(board->pio_, pc::kPortRtc, CmosRtc::kWindowSize, rtc, "CMOS/RTC");

    // The legacy devices' snapshot sections (docs/snapshot-format.md). The RTC goes before the
    // ACPI PM block: re-driving a raised RTC line sets RTC_STS, which the PM block's own state
    // then overrides.
    board->keep_state("hpet", "the HPET", board->hpet_);
    board->keep_state("com1", "COM1", board->com1_);
    board->keep_state("i8042", "the i8042 keyboard controller", i8042);
    board->keep_state("fw-cfg", "fw_cfg", fw_cfg);
    board->keep_state("rtc", "the CMOS RTC", rtc);
    board->keep_state("acpi-pm", "the ACPI PM block", acpi_pm);

    auto pci = std::make_shared<PciHost>(control);
    place(board->pio_, pc::kPortPciConfig, PciHost::kWindowSize, pci, "PCI host (config mechanism #1)");

    if (config.test_devices) {
        auto debug_exit = std::make_shared<DebugExit>(control);
        place(board->pio_, pc::kPortDebugExit, DebugExit::kWindowSize, debug_exit, "isa-debug-exit");

        std::array<IrqLine*, 24> lines{};
        for (unsigned gsi = 0; gsi < lines.size(); ++gsi) lines[gsi] = &line(gsi);
        auto testdev = std::make_shared<PcTestDev>(memory, lines);
        place(board->pio_, pc::kPortTestDev, PcTestDev::kPortsWindowSize, testdev->ports(), "pc-testdev");
        place(board->pio_, pc::kPortTestDevIrq, PcTestDev::kIrqPortsWindowSize, testdev->irq_ports(), "pc-testdev IRQ lines");
        place(board->mmio_, pc::kTestDevMmio, PcTestDev::kMmioWindowSize, testdev->mmio(), "pc-testdev memory");

        board->keep_state("pc-testdev", "pc-testdev", testdev);

        auto pci_testdev = std::make_shared<PciTestDev>();
        if (auto r = pci->add_device(1, pci_testdev); !r) return std::unexpected(r.error());
    }

    // Paravirtual devices: virtio-pci functions from slot 2 on, each with its own event loop,
    // reaching guest memory through the board's GuestDma.
    board->dma_ = std::make_unique<GuestDma>(memory);
    if (MemoryWriteObserver* observer = engine.dma_observer()) board->dma_->add_observer(*observer);
    uint8_t next_slot = 2;
    auto add_virtio = [&](std::unique_ptr<VirtioDevice> device) -> Result<void> {
        auto pci_function = VirtioPci::create(std::move(device), *board->dma_, *board->msi_, engine.io_events());
        if (!pci_function) return std::unexpected(pci_function.error());
        return pci->add_device(next_slot++, *pci_function);
    };
    if (auto r = add_virtio(std::make_unique<VirtioRng>()); !r) return std::unexpected(r.error());
    // Every guest has /dev/hvc0; it is the terminal with --console virtio, and its output goes
    // nowhere otherwise (the terminal is COM1's).
    bool virtio_console = config.console == ConsoleDevice::Virtio;
    auto console = std::make_unique<VirtioConsole>(virtio_console ? VirtioConsole::Output(to_terminal)
                                                                  : VirtioConsole::Output(),
                                                   terminal_size(config.console_out));
    if (virtio_console) board->console_ = console.get();
    if (auto r = add_virtio(std::move(console)); !r) return std::unexpected(r.error());
    // Disks in the order given, so the guest's probe order makes them vda, vdb, ...
    for (const DiskConfig& disk : config.disks) {
        auto blk = VirtioBlk::open(disk.path, {.read_only = disk.read_only, .serial = disk.serial});
        if (!blk) return context(blk.error(), "--disk");
        if (auto r = add_virtio(std::move(*blk)); !r) return context(r.error(), fmt::format("--disk {}", disk.path));
    }
    // Network interfaces in the order given, after the disks: the guest's eth0, eth1, ... Their
    // back ends are opened here, before the VM runs, so that a forward that cannot listen or a
    // TAP that cannot be had stops the start with its reason.
    std::vector<MacAddress> macs;
    for (size_t i = 0; i < config.nets.size(); ++i) {
        const NetConfig& net = config.nets[i];
        MacAddress mac = net.mac.value_or(default_mac(i));
        if (std::ranges::find(macs, mac) != macs.end())
            return fail("--net {}: MAC {} is an earlier interface's already; give each its own mac=", net.text,
                        format_mac(mac));
        macs.push_back(mac);
        auto backend = open_net_backend(net);
        if (!backend) return context(backend.error(), "--net");
        if (auto r = add_virtio(std::make_unique<VirtioNet>(std::move(*backend), mac)); !r)
            return context(r.error(), "--net");
    }
    // The vsock device last: its listener is bound here, so a path in use fails the build.
    if (config.vsock) {
        auto vsock = VirtioVsock::create({.guest_cid = config.vsock->cid, .socket_path = config.vsock->socket_path});
        if (!vsock) return context(vsock.error(), "--vsock");
        if (auto r = add_virtio(std::move(*vsock)); !r) return context(r.error(), "--vsock");
    }

    // No firmware assigns BARs, so the board does, from the windows the ACPI tables describe; the
    // PCI host decodes them wherever the guest moves them later, for what no fixed device claims.
    pc::AddressWindow mmio64 = pc::pci_mmio64_window(memory.end());
    PciHost::Windows windows{.io_start = pc::kPciIoStart,
                             .io_end = pc::kPciIoEnd,
                             .mmio_start = pc::kPciMmioStart,
                             .mmio_end = pc::kPciMmioEnd,
                             .mmio64_start = mmio64.base,
                             .mmio64_end = mmio64.base + mmio64.size};
    for (unsigned i = 0; i < pc::kPciIntxGsis; ++i)
        board->pci_intx_.push_back(std::make_unique<WiredOrLine>(line(pc::kFirstPciGsi + i)));
    auto intx = [&board](unsigned slot, unsigned pin) -> IrqLine& {
        return board->pci_intx_[pc::pci_intx_gsi(slot, pin) - pc::kFirstPciGsi]->add_input();
    };
    if (auto r = pci->assign_resources(windows, intx); !r) return std::unexpected(r.error());
    // The PCI functions' snapshot sections, then the host's, whose restore recomputes where the
    // BARs decode from the functions' restored registers.
    for (unsigned slot = 0; slot < PciHost::kSlots; ++slot)
        if (auto device = pci->device(static_cast<uint8_t>(slot))) board->keep_pci_state(slot, std::move(device));
    board->keep_state("pci-host", "the PCI host", pci);
    board->pio_.set_fallback(pci->io_space());
    board->mmio_.set_fallback(pci->memory_space());
    if (!placed) return std::unexpected(placed.error());
    return board;
}

size_t Board::console_input(std::span<const uint8_t> bytes) { return console_->receive(bytes); }

void Board::on_console_room(std::function<void()> notify) { console_->set_room_notifier(std::move(notify)); }

void Board::press_power_button() { acpi_pm_->press_power_button(); }

Board::InterruptCounts Board::interrupt_counts() const {
    InterruptCounts counts;
    for (unsigned gsi = 0; gsi < gsi_lines_.size(); ++gsi)
        if (gsi_lines_[gsi] && gsi_lines_[gsi]->raised()) counts.gsi.emplace_back(gsi, gsi_lines_[gsi]->raised());
    counts.msi = msi_->sent();
    return counts;
}

}  // namespace strata
