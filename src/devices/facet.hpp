// One face of a device that the board places on a bus by itself. Some devices answer at several
// unrelated addresses (the i8042 at 0x60 and 0x64 with the PIT's 0x61 between them, pc-testdev's
// ports, IRQ ports and MMIO scratch). Each such device keeps its state in a shared core object and
// hands the board one Facet per window; a facet owns a reference to the core, so the board may
// keep only the facets and the state still lives as long as any window is placed.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <utility>

#include "bus/bus_device.hpp"

namespace strata {

template <class Core>
class Facet final : public BusDevice {
public:
    using ReadFn = void (Core::*)(uint64_t, std::span<uint8_t>);
    using WriteFn = void (Core::*)(uint64_t, std::span<const uint8_t>);

    Facet(std::shared_ptr<Core> core, ReadFn read_fn, WriteFn write_fn)
        : core_(std::move(core)), read_(read_fn), write_(write_fn) {}

    void read(uint64_t offset, std::span<uint8_t> data) override { ((*core_).*read_)(offset, data); }
    void write(uint64_t offset, std::span<const uint8_t> data) override { ((*core_).*write_)(offset, data); }

private:
    std::shared_ptr<Core> core_;
    ReadFn read_;
    WriteFn write_;
};

}  // namespace strata
