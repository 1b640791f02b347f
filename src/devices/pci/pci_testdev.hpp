// QEMU's pci-testdev (1b36:0005), as kvm-unit-tests' lib/pci-testdev.c drives it.
//
// State:    the selected test (or none) and its write count (in snapshots too).
// Features: BAR0 memory (4 KiB) and BAR1 I/O (256 bytes), both showing the selected test's
//           header: u8 test, u8 width, u16 pad, u32 offset, u8 data, 3 pad, u32 count, name. A
//           byte n < 3 written at offset 0 selects test n of that BAR's kind (mmio 0-2, portio
//           3-5: "no-eventfd", "wildcard-eventfd", "datamatch-eventfd") and zeroes its count; any
//           other value deselects. A byte written at the test's offset (2048 + t in memory,
//           128 + t in I/O) counts when the test is the wildcard one or the byte equals its data
//           (0xfa); reads return the header bytes, zeros past the name, zeros with no test
//           selected. Accesses are taken byte by byte, as QEMU does (max access size 1).
// Missing:  eventfds: writes are simply counted, which is what the guest can observe.
// Spec:     QEMU hw/misc/pci-testdev.c; kvm-unit-tests lib/pci-testdev.c (facts only).
#pragma once

#include <memory>

#include "devices/pci/pci_device.hpp"

namespace strata {

class PciTestDev final : public PciDevice {
public:
    static constexpr uint16_t kVendorRedHat = 0x1b36;
    static constexpr uint16_t kDeviceTest = 0x0005;
    static constexpr uint64_t kMemoryBarSize = 4096;
    static constexpr uint64_t kIoBarSize = 256;

    PciTestDev();

    [[nodiscard]] std::shared_ptr<BusDevice> bar_device(unsigned index) const override;
    // The PCI function's state, then the selected test and its count.
    void save_state(StateWriter& out) const override;
    [[nodiscard]] std::function<Result<void>()> load_state(StateReader& in) override;

private:
    struct Tests;  // defined in pci_testdev.cpp; shared by both BAR regions

    std::shared_ptr<Tests> tests_;
    std::shared_ptr<BusDevice> memory_region_;
    std::shared_ptr<BusDevice> io_region_;
};

}  // namespace strata
