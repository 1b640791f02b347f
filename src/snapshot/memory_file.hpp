// memory.bin: guest RAM as a sparse file, and its check on restore.
//
// Writing skips what is zero: holes of the RAM memfd (pages the guest never touched) are not even
// read, and a page of zeros is not written; what remains is a list of extents, hashed in order
// (XXH3-64). Restoring maps the file copy-on-write (GuestMemory::map_private) and checks it
// through that mapping: the extents' bytes against the hash, and any data the file holds outside
// them for zeros, so that nothing the checksum does not cover reaches the guest.
#pragma once

#include <span>

#include "base/error.hpp"
#include "base/state_stream.hpp"
#include "memory/guest_memory.hpp"
#include "snapshot/snapshot_format.hpp"

namespace strata::snapshot {

struct MemoryImage {
    uint64_t ram_size = 0;
    std::vector<MemoryExtent> extents;  // sorted, disjoint, not touching, whole pages
    uint64_t hash = 0;                  // XXH3-64 of the extents' bytes in order
    [[nodiscard]] uint64_t data_bytes() const;
    bool operator==(const MemoryImage&) const = default;
};

// Writes all of `memory` to `fd` (an empty regular file), sparse.
[[nodiscard]] Result<MemoryImage> write_memory_file(int fd, const GuestMemory& memory);

// The "memory" section: ram_size, then the extents (not the hash, which is the manifest's).
void encode_memory_map(StateWriter& out, const MemoryImage& image);
// Refuses extents that are not whole pages, not sorted and disjoint, or past `ram_size`.
[[nodiscard]] MemoryImage decode_memory_map(StateReader& in);

// Checks RAM mapped from memory.bin (`fd`) against `image`: the hash of its extents, and zeros
// wherever else the file holds data.
[[nodiscard]] Result<void> verify_memory(const GuestMemory& memory, int fd, const MemoryImage& image);

}  // namespace strata::snapshot
