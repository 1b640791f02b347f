#include "devices/test/debug_exit.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "base/bytes.hpp"

namespace strata {

void DebugExit::read(uint64_t /*offset*/, std::span<uint8_t> data) { std::ranges::fill(data, uint8_t{0}); }

void DebugExit::write(uint64_t offset, std::span<const uint8_t> data) {
    // QEMU takes the value as written, whatever the width; an access that starts inside the
    // window (outb to port+1) still counts, with the bytes the guest wrote.
    if (offset >= kWindowSize || data.empty()) return;
    auto value = static_cast<uint32_t>(load_le(data.first(std::min<size_t>(data.size(), 4))));
    control_.request_stop({StopKind::DebugExit, value, fmt::format("debug-exit port written with {:#x}", value)});
}

}  // namespace strata
