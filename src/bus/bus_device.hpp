// What a device looks like from a bus: reads and writes at an offset into its own window.
// A device never learns where it sits (port, address); the board decides that.
//
// Concurrency: buses call devices from every vCPU thread, and host threads (the console reader,
// timers) call into them too, so each device serializes its own state.
#pragma once

#include <cstdint>
#include <span>

namespace strata {

class BusDevice {
public:
    virtual ~BusDevice() = default;
    // Fills `data` (1, 2, 4 or 8 bytes; more for string I/O) with what the device returns at `offset`.
    virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
    virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

}  // namespace strata
