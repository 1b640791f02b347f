// What the virtio fuzz targets share: the outside world a virtio-pci function needs (an MSI
// controller and an INTx line that go nowhere) and their small guest RAM.
#pragma once

#include "bus/irq_line.hpp"
#include "bus/msi.hpp"
#include "fuzz_support.hpp"

namespace strata::fuzz {

class NullMsi final : public MsiController {
public:
    void send(uint64_t, uint32_t) override {}
};

class NullLine final : public IrqLine {
public:
    void set_level(bool) override {}
};

// 1 MiB of guest RAM, made once per process; each target clears what its runs use.
inline GuestMemory& virtio_guest_memory() {
    static GuestMemory ram = [] {
        auto created = GuestMemory::create(1 * MiB);
        if (!created) invariant_failed(created.error().message, __FILE__, __LINE__);
        return std::move(*created);
    }();
    return ram;
}

}  // namespace strata::fuzz
