// The accesses a vCPU leaves guest code for, as both engines report them, and their one dispatch
// to the machine's buses: the kvm engine turns KVM_EXIT_IO/KVM_EXIT_MMIO into these, and the soft
// engine's IN/OUT/INS/OUTS and MMIO accesses will be the same.
#pragma once

#include <cstdint>
#include <span>

#include "cpu/engine.hpp"

namespace strata {

// IN/OUT, or `count` elements of INS/OUTS: element i is data[i * size, (i + 1) * size).
struct PortIoExit {
    uint16_t port = 0;
    uint8_t size = 1;    // 1, 2 or 4 bytes
    uint32_t count = 1;  // string I/O: one access per element
    bool write = false;  // OUT/OUTS
    std::span<uint8_t> data;
};

struct MmioExit {
    uint64_t address = 0;
    bool write = false;
    std::span<uint8_t> data;  // 1 to 8 bytes
};

// Performs the access on the platform's port bus, element by element and in order (devices see
// string I/O as the separate accesses real hardware makes). `data` must hold size * count bytes.
void dispatch(const Platform& platform, const PortIoExit& exit);
void dispatch(const Platform& platform, const MmioExit& exit);

}  // namespace strata
