// The MSI capability of a PCI function, one vector: 64-bit message address, per-vector masking.
//
// State:    Message Control's MSI Enable, the address, data, mask and pending bits.
// Features: the 24-byte capability of §6.8.1 (64-bit address capable, per-vector masking
//           capable, one message: Multiple Message Capable 0, Multiple Message Enable kept but
//           only vector 0 used); notify(): while enabled, sends the message unless the vector is
//           masked, which sets its pending bit, and the message goes out when it is unmasked.
// Missing:  multiple messages (a device here needs one, or MSI-X).
// Spec:     PCI Local Bus Specification 3.0 §6.8.1 (MSI capability structure).
#pragma once

#include <cstdint>
#include <mutex>
#include <span>

#include "bus/msi.hpp"
#include "devices/pci/pci_capability.hpp"

namespace strata {

class MsiCapability final : public PciCapability {
public:
    explicit MsiCapability(MsiController& controller) : controller_(controller) {}

    [[nodiscard]] PciCapabilityId id() const override { return PciCapabilityId::Msi; }
    [[nodiscard]] uint8_t size() const override { return 24; }
    void read(uint8_t offset, std::span<uint8_t> data) override;
    void write(uint8_t offset, std::span<const uint8_t> data) override;
    void save_state(StateWriter& out) const override;
    [[nodiscard]] std::function<void()> load_state(StateReader& in) override;

    [[nodiscard]] bool enabled() const;
    void notify();  // any thread
    void reset();

private:
    enum Field : uint8_t {
        kControl = 2,
        kAddressLow = 4,
        kAddressHigh = 8,
        kData = 12,
        kMask = 16,
        kPending = 20,
    };
    void deliver_if_unmasked();  // with mutex_ held

    MsiController& controller_;
    mutable std::mutex mutex_;
    uint16_t control_ = 0;  // the writable bits: Enable (0), Multiple Message Enable (6:4)
    uint32_t address_low_ = 0, address_high_ = 0;
    uint16_t data_ = 0;
    bool masked_ = false;
    bool pending_ = false;
};

}  // namespace strata
