// A write the engine turns into an eventfd signal without leaving the kernel (KVM_IOEVENTFD):
// a virtio queue notification then costs the guest one exit into KVM and no trip to the VMM, and
// the device's loop wakes on the eventfd exactly as when the VMM writes it. Engines without such
// a path (the soft engine, whose writes reach the device on the vCPU thread anyway) have none.
#pragma once

#include <cstdint>

#include "base/error.hpp"

namespace strata {

struct IoEvent {
    bool io = false;       // port I/O (else MMIO)
    uint64_t address = 0;
    uint32_t length = 0;   // the access width that matches: 1, 2, 4 or 8
    int fd = -1;           // the eventfd signalled
    friend bool operator==(const IoEvent&, const IoEvent&) = default;
};

class IoEventRegistry {
public:
    virtual ~IoEventRegistry() = default;
    [[nodiscard]] virtual Result<void> add(const IoEvent& event) = 0;
    virtual void remove(const IoEvent& event) = 0;
};

}  // namespace strata
