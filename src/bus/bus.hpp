// A port-I/O or MMIO bus: a map from address ranges to devices that rejects overlaps
// (Firecracker's habit). The board fills it before any vCPU runs; afterwards it is read-only and
// lookups need no lock. What no range claims goes to the fallback device, when there is one, at
// its absolute address: on a PC that is the PCI host, whose BARs the guest moves at run time (the
// subtractive decode of a PC's chipset, where what no fixed device claims goes to PCI).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "base/error.hpp"
#include "bus/bus_device.hpp"

namespace strata {

class Bus {
public:
    explicit Bus(std::string name) : name_(std::move(name)) {}

    // Places `device` at [base, base + size). Fails, naming both devices, when the range
    // overlaps one already placed, and when it is empty or wraps.
    [[nodiscard]] Result<void> add(uint64_t base, uint64_t size, std::shared_ptr<BusDevice> device,
                                   std::string device_name);

    // Where unclaimed accesses go (offset = the address itself); before any vCPU runs.
    void set_fallback(std::shared_ptr<BusDevice> device) { fallback_ = std::move(device); }

    // Dispatches an access. An access must lie wholly inside one device's range; otherwise it goes
    // to the fallback device, or without one it is unclaimed: reads return all ones (as a PC's
    // floating bus does) and writes are dropped. Returns whether a range claimed it.
    bool read(uint64_t address, std::span<uint8_t> data) const;
    bool write(uint64_t address, std::span<const uint8_t> data) const;

    // Accesses counted for the control API's metrics (relaxed: counts, not ordering).
    struct AccessCount {
        std::atomic<uint64_t> reads{0};
        std::atomic<uint64_t> writes{0};
    };
    struct Range {
        uint64_t base;
        uint64_t size;
        std::shared_ptr<BusDevice> device;
        std::string name;
        std::shared_ptr<AccessCount> count = std::make_shared<AccessCount>();
    };
    // The device whose range holds [address, address + length), or nullptr.
    [[nodiscard]] const Range* find(uint64_t address, uint64_t length) const;

    [[nodiscard]] const std::string& name() const { return name_; }
    [[nodiscard]] const std::map<uint64_t, Range>& ranges() const { return ranges_; }
    // Accesses no range claimed: those the fallback device took, or that went nowhere.
    [[nodiscard]] const AccessCount& unclaimed() const { return unclaimed_; }
    [[nodiscard]] bool has_fallback() const { return fallback_ != nullptr; }

private:
    std::string name_;
    std::map<uint64_t, Range> ranges_;  // keyed by base
    std::shared_ptr<BusDevice> fallback_;
    mutable AccessCount unclaimed_;
};

}  // namespace strata
