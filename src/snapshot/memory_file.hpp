// memory.bin: guest RAM as a sparse file, and its check on restore.
//
// Writing skips what is zero: holes of the RAM memfd (pages the guest never touched) are not even
// read, and a page of zeros is not written; what remains is a list of extents, hashed in order
// (XXH3-64). Restoring maps the file copy-on-write (GuestMemory::map_private) and checks it
// through that mapping: the extents' bytes against the hash, and any data the file holds outside
// them for zeros, so that nothing the checksum does not cover reaches the guest.
#pragma once

#include <memory>
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

// What write_memory_file() is made of, shared with the background writer
// (background_memory.hpp).
//
// Builds a MemoryImage from data handed over in file order: touching extents merge, the hash is
// fed. Fails past kMaxExtents runs.
class MemoryImageBuilder {
public:
    explicit MemoryImageBuilder(uint64_t ram_size);
    ~MemoryImageBuilder();
    MemoryImageBuilder(const MemoryImageBuilder&) = delete;
    MemoryImageBuilder& operator=(const MemoryImageBuilder&) = delete;
    // `bytes` (whole pages) are memory.bin's at `offset`, which lies after everything added before.
    [[nodiscard]] Result<void> add(uint64_t offset, std::span<const uint8_t> bytes);
    [[nodiscard]] MemoryImage finish();

private:
    struct Hash;
    MemoryImage image_;
    std::unique_ptr<Hash> hash_;
};
[[nodiscard]] bool zero_page(const uint8_t* page);
// The host view of memory.bin's [offset, offset + length), inside one RAM region; null otherwise.
[[nodiscard]] const uint8_t* host_at(const GuestMemory& memory, uint64_t offset, uint64_t length);
// The ranges of [begin, end) of `fd` that hold data (SEEK_DATA/SEEK_HOLE), in whole pages; all of
// it where the file system cannot tell.
[[nodiscard]] Result<std::vector<MemoryExtent>> data_ranges(int fd, uint64_t begin, uint64_t end);
// pwrite of all of `bytes` at `offset` of memory.bin.
[[nodiscard]] Result<void> write_all(int fd, const uint8_t* bytes, uint64_t length, uint64_t offset);

// The "memory" section: ram_size, then the extents (not the hash, which is the manifest's).
void encode_memory_map(StateWriter& out, const MemoryImage& image);
// Refuses extents that are not whole pages, not sorted and disjoint, or past `ram_size`.
[[nodiscard]] MemoryImage decode_memory_map(StateReader& in);

// Checks RAM mapped from memory.bin (`fd`) against `image`: the hash of its extents, and zeros
// wherever else the file holds data.
[[nodiscard]] Result<void> verify_memory(const GuestMemory& memory, int fd, const MemoryImage& image);

}  // namespace strata::snapshot
