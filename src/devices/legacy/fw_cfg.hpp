// QEMU's fw_cfg, legacy I/O interface: how kvm-unit-tests (and firmware) learn the RAM size and
// the CPU count.
//
// State:    the items (key → bytes), the selected key and the read position in it; state() and
//           set_state() for snapshots (the items come from the machine's configuration).
// Features: selector (offset 0, 16-bit write; a byte write sets the low byte) and data (offset 1,
//           each byte read returns the next byte of the item, then zeros). Items: 0x00 "QEMU",
//           0x01 interface ID (u32 1: traditional interface only), 0x03 RAM size (u64),
//           0x05 number of CPUs (u16), 0x0f maximum CPUs (u16), and whatever add_item() adds.
//           Unknown keys read as zeros. Values are little-endian, as QEMU stores them on x86.
// Missing:  the DMA interface and the file directory (key 0x19); data writes are ignored.
// Spec:     QEMU docs/specs/fw_cfg.rst (facts only).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "base/state_stream.hpp"
#include "bus/bus_device.hpp"

namespace strata {

class FwCfg final : public BusDevice {
public:
    static constexpr uint64_t kWindowSize = 2;  // selector 0x510, data 0x511

    enum class Key : uint16_t {
        Signature = 0x00,
        Id = 0x01,
        RamSize = 0x03,
        NbCpus = 0x05,
        MaxCpus = 0x0f,
    };

    FwCfg(uint64_t ram_size, uint16_t cpus);

    // Adds or replaces an item.
    void add_item(uint16_t key, std::vector<uint8_t> data);

    struct State {
        uint16_t selector = 0;
        uint64_t position = 0;  // past the item's end reads zeros, as any position may
        void encode(StateWriter& out) const {
            out.u16(selector);
            out.u64(position);
        }
        static State decode(StateReader& in) { return {.selector = in.u16("selector"), .position = in.u64("position")}; }
    };
    [[nodiscard]] State state() const;
    Result<void> set_state(const State& state);

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    enum class Reg : uint8_t { Selector = 0, Data = 1 };

    mutable std::mutex mutex_;
    std::map<uint16_t, std::vector<uint8_t>> items_;
    uint16_t selector_ = 0;
    size_t position_ = 0;
};

}  // namespace strata
