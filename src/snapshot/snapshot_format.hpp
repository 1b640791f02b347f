// A snapshot on disk: a directory of three files (docs/snapshot-format.md is the reference).
//
//   snapshot.json  the manifest: format name and version, the engine it was taken under, the VM's
//                  configuration, each file's size and XXH3-64 checksum, and notes on what the
//                  snapshot could not carry;
//   state.bin      every vCPU's and device's state, as named sections (state_file.hpp);
//   memory.bin     guest RAM, laid out as the RAM memfd is (RAM below 3 GiB, then the rest), a
//                  sparse file: zero pages are holes, never written. Its checksum covers the bytes
//                  of the extents that state.bin's "memory" section lists, in order.
//
// Everything read from a snapshot directory is untrusted: sizes are bounded before anything is
// allocated and every part is checked before a VM is built from it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace strata::snapshot {

inline constexpr std::string_view kFormat = "strata-snapshot";
inline constexpr unsigned kVersion = 1;
inline constexpr std::string_view kManifestFile = "snapshot.json";
inline constexpr std::string_view kStateFile = "state.bin";
inline constexpr std::string_view kMemoryFile = "memory.bin";

inline constexpr uint64_t kMaxManifestBytes = 1 << 20;
inline constexpr uint64_t kMaxStateBytes = 64ull << 20;
inline constexpr uint32_t kMaxSections = 4096;
inline constexpr uint32_t kMaxSectionNameBytes = 64;
inline constexpr uint64_t kPageSize = 4096;

// One part of state.bin: "vcpu/0", "irqchip", "COM1", ...
struct Section {
    std::string name;
    std::vector<uint8_t> bytes;
    bool operator==(const Section&) const = default;
};

// A run of RAM that holds data, as byte offsets into memory.bin (= the RAM memfd).
struct MemoryExtent {
    uint64_t offset = 0;
    uint64_t length = 0;
    bool operator==(const MemoryExtent&) const = default;
};

}  // namespace strata::snapshot
