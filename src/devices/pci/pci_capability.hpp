// One entry of a PCI function's capability list (PCI Local Bus Specification 3.0 §6.7) as the
// function's configuration space reaches it: the list itself (the ID and next-pointer bytes, the
// status register's Capabilities List bit, the pointer at 0x34) belongs to PciDevice; a
// capability sees accesses to its body only, at offsets counted from the capability's start (so
// its first body byte is offset 2), and keeps its registers' semantics to itself (MSI, MSI-X,
// virtio's structure locations). A capability with registers the guest writes saves them for
// snapshots.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "base/state_stream.hpp"

namespace strata {

enum class PciCapabilityId : uint8_t {
    Msi = 0x05,
    VendorSpecific = 0x09,
    MsiX = 0x11,
};

class PciCapability {
public:
    virtual ~PciCapability() = default;
    [[nodiscard]] virtual PciCapabilityId id() const = 0;
    // Bytes, the two header bytes included; at most 192 (what fits between 0x40 and 0x100).
    [[nodiscard]] virtual uint8_t size() const = 0;
    // `offset` >= 2 and the access lies inside size(). Any width, any alignment.
    virtual void read(uint8_t offset, std::span<uint8_t> data) = 0;
    virtual void write(uint8_t offset, std::span<const uint8_t> data) = 0;

    // Snapshots: the registers the guest wrote (nothing for a capability whose fields are
    // constant). load_state() reads them back, refusing (through `in`) what the registers cannot
    // hold, and returns the change that sets them, made only once everything has been read.
    virtual void save_state(StateWriter& /*out*/) const {}
    [[nodiscard]] virtual std::function<void()> load_state(StateReader& /*in*/) {
        return [] {};
    }
};

}  // namespace strata
