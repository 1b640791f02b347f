#include "cpu/exit.hpp"

namespace strata {

void dispatch(const Platform& platform, const PortIoExit& exit) {
    for (uint32_t i = 0; i < exit.count; ++i) {
        auto element = exit.data.subspan(size_t{i} * exit.size, exit.size);
        if (exit.write) platform.pio.write(exit.port, element);
        else platform.pio.read(exit.port, element);
    }
}

void dispatch(const Platform& platform, const MmioExit& exit) {
    if (exit.write) platform.mmio.write(exit.address, exit.data);
    else platform.mmio.read(exit.address, exit.data);
}

}  // namespace strata
