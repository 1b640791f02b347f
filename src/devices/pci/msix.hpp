// The MSI-X capability of a PCI function: a table of message vectors and their pending bits in
// the function's BARs, and the interrupts the function raises through them.
//
// State:    Message Control's MSI-X Enable and Function Mask, each vector's address, data and
//           mask bit, the pending bits.
// Features: the 12-byte capability (table size, Function Mask and Enable writable; table and
//           PBA offset/BIR read-only); the table (16 bytes a vector: address low with bits 1:0
//           reading zero, address high, data, vector control with its mask bit; vectors start
//           masked) and the PBA, at any access width inside them; notify(): while MSI-X is
//           enabled, sends the vector's message unless the vector or the function is masked,
//           in which case the vector's pending bit is set and the message goes out when it is
//           unmasked (§6.8.3.5). Each vector is an MsiRoute of the platform's MsiController,
//           reprogrammed when the guest changes its entry (the kvm engine's irqfd routes).
// Missing:  nothing the guest can observe; a table access wider than 8 bytes is taken whole.
// Spec:     PCI Local Bus Specification 3.0 §6.8.2 (MSI-X capability and table structure).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "bus/msi.hpp"
#include "devices/pci/pci_capability.hpp"

namespace strata {

class MsixCapability final : public PciCapability {
public:
    static constexpr unsigned kMaxVectors = 2048;
    static constexpr uint64_t kEntrySize = 16;

    // `vectors` table entries at `table_offset` of BAR `table_bar`, the PBA at `pba_offset` of
    // BAR `pba_bar` (both 8-byte aligned; the device places them in its BAR regions and hands
    // their accesses to table_read/table_write and pba_read).
    MsixCapability(unsigned vectors, uint8_t table_bar, uint32_t table_offset, uint8_t pba_bar, uint32_t pba_offset,
                   MsiController& controller);

    [[nodiscard]] PciCapabilityId id() const override { return PciCapabilityId::MsiX; }
    [[nodiscard]] uint8_t size() const override { return 12; }
    void read(uint8_t offset, std::span<uint8_t> data) override;
    void write(uint8_t offset, std::span<const uint8_t> data) override;
    // Enable, Function Mask, and each vector's entry and pending bit; a restore reprograms every
    // vector's route and sends what is pending and no longer masked.
    void save_state(StateWriter& out) const override;
    [[nodiscard]] std::function<void()> load_state(StateReader& in) override;

    [[nodiscard]] unsigned vectors() const { return static_cast<unsigned>(entries_.size()); }
    [[nodiscard]] uint64_t table_size() const { return entries_.size() * kEntrySize; }
    [[nodiscard]] uint64_t pba_size() const { return (entries_.size() + 63) / 64 * 8; }
    // Offsets are from the start of the table / the PBA; accesses outside read zero and are dropped.
    void table_read(uint64_t offset, std::span<uint8_t> data);
    void table_write(uint64_t offset, std::span<const uint8_t> data);
    void pba_read(uint64_t offset, std::span<uint8_t> data);

    // MSI-X Enable is set (the function then uses no INTx, §6.8.2.3).
    [[nodiscard]] bool enabled() const;
    // Raises vector `vector` (out of range: ignored). Any thread.
    void notify(unsigned vector);
    // Function reset: disabled, unmasked function, every vector masked and zeroed, nothing pending.
    void reset();

private:
    struct Entry {
        uint32_t address_low = 0, address_high = 0, data = 0, control = 1;  // masked at reset
        bool pending = false;
        std::unique_ptr<MsiRoute> route;
        [[nodiscard]] bool masked() const { return control & 1; }
    };
    // Sends what is pending and no longer masked; with mutex_ held.
    void deliver_unmasked();

    mutable std::mutex mutex_;
    std::vector<Entry> entries_;
    uint32_t table_location_ = 0;  // offset | BIR
    uint32_t pba_location_ = 0;
    bool enabled_ = false;
    bool function_masked_ = false;
};

}  // namespace strata
