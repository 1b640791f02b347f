#include "snapshot/memory_file.hpp"

#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace strata::snapshot {

namespace {

constexpr uint32_t kMaxExtents = 1u << 22;  // 64 MiB of extent list: the state file's bound

struct HashState {
    std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state{XXH3_createState(), &XXH3_freeState};
    HashState() {
        if (!state) panic("XXH3_createState: out of memory");
        XXH3_64bits_reset(state.get());
    }
    void add(const uint8_t* bytes, uint64_t length) { XXH3_64bits_update(state.get(), bytes, length); }
    [[nodiscard]] uint64_t digest() const { return XXH3_64bits_digest(state.get()); }
};

}  // namespace

const uint8_t* host_at(const GuestMemory& memory, uint64_t offset, uint64_t length) {
    for (const RamRegion& region : memory.regions())
        if (offset >= region.file_offset && offset - region.file_offset + length <= region.size)
            return region.host + (offset - region.file_offset);
    return nullptr;
}

bool zero_page(const uint8_t* page) {
    static const std::array<uint8_t, kPageSize> zeros{};
    return std::memcmp(page, zeros.data(), kPageSize) == 0;
}

Result<std::vector<MemoryExtent>> data_ranges(int fd, uint64_t begin, uint64_t end) {
    std::vector<MemoryExtent> ranges;
    uint64_t at = begin;
    while (at < end) {
        off_t data = lseek(fd, static_cast<off_t>(at), SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO) break;  // no data after `at`
            if (errno == EINVAL) return std::vector<MemoryExtent>{{begin, end - begin}};
            return fail_errno("looking for data in guest RAM");
        }
        if (static_cast<uint64_t>(data) >= end) break;
        off_t hole = lseek(fd, data, SEEK_HOLE);
        if (hole < 0) return fail_errno("looking for holes in guest RAM");
        uint64_t from = static_cast<uint64_t>(data) & ~(kPageSize - 1);
        uint64_t to = std::min<uint64_t>(end, (static_cast<uint64_t>(hole) + kPageSize - 1) & ~(kPageSize - 1));
        ranges.push_back({from, to - from});
        at = to;
    }
    return ranges;
}

Result<void> write_all(int fd, const uint8_t* bytes, uint64_t length, uint64_t offset) {
    // In pieces of kWritePiece: one pwrite of many MiB into the page cache took ten times as long
    // as the same bytes in 256 KiB writes (67 MiB: 210 ms against 20; ext4, Linux 6.18).
    constexpr uint64_t kWritePiece = 256 * 1024;
    while (length > 0) {
        ssize_t n = pwrite(fd, bytes, std::min(length, kWritePiece), static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail_errno("writing {} at offset {:#x}", kMemoryFile, offset);
        bytes += n;
        length -= static_cast<uint64_t>(n);
        offset += static_cast<uint64_t>(n);
    }
    return {};
}

struct MemoryImageBuilder::Hash : HashState {};

MemoryImageBuilder::MemoryImageBuilder(uint64_t ram_size)
    : image_{.ram_size = ram_size, .extents = {}, .hash = 0}, hash_(std::make_unique<Hash>()) {}

MemoryImageBuilder::~MemoryImageBuilder() = default;

Result<void> MemoryImageBuilder::add(uint64_t offset, std::span<const uint8_t> bytes) {
    hash_->add(bytes.data(), bytes.size());
    if (!image_.extents.empty() && image_.extents.back().offset + image_.extents.back().length == offset)
        image_.extents.back().length += bytes.size();
    else
        image_.extents.push_back({offset, bytes.size()});
    if (image_.extents.size() > kMaxExtents) return fail("guest RAM has more than {} runs of data", kMaxExtents);
    return {};
}

MemoryImage MemoryImageBuilder::finish() {
    image_.hash = hash_->digest();
    return std::move(image_);
}

uint64_t MemoryImage::data_bytes() const {
    uint64_t total = 0;
    for (const MemoryExtent& e : extents) total += e.length;
    return total;
}

Result<MemoryImage> write_memory_file(int fd, const GuestMemory& memory) {
    if (ftruncate(fd, static_cast<off_t>(memory.ram_size())) != 0) return fail_errno("sizing {}", kMemoryFile);
    MemoryImageBuilder image(memory.ram_size());
    for (const RamRegion& region : memory.regions()) {
        std::vector<MemoryExtent> candidates{{region.file_offset, region.size}};
        if (memory.fd() >= 0) {
            auto ranges = data_ranges(memory.fd(), region.file_offset, region.file_offset + region.size);
            if (!ranges) return std::unexpected(ranges.error());
            candidates = std::move(*ranges);
        }
        for (const MemoryExtent& candidate : candidates) {
            const uint8_t* base = region.host + (candidate.offset - region.file_offset);
            uint64_t page = 0;
            while (page < candidate.length) {
                if (zero_page(base + page)) {
                    page += kPageSize;
                    continue;
                }
                uint64_t run = page;
                while (run < candidate.length && !zero_page(base + run)) run += kPageSize;
                if (auto r = write_all(fd, base + page, run - page, candidate.offset + page); !r) return std::unexpected(r.error());
                if (auto r = image.add(candidate.offset + page, {base + page, run - page}); !r) return std::unexpected(r.error());
                page = run;
            }
        }
    }
    return image.finish();
}

void encode_memory_map(StateWriter& out, const MemoryImage& image) {
    out.u64(image.ram_size);
    out.u32(static_cast<uint32_t>(image.extents.size()));
    for (const MemoryExtent& e : image.extents) {
        out.u64(e.offset);
        out.u64(e.length);
    }
}

MemoryImage decode_memory_map(StateReader& in) {
    MemoryImage image;
    image.ram_size = in.u64("RAM size");
    in.check(GuestMemory::valid_size(image.ram_size), "the RAM size is not one a VM can have");
    uint32_t count = in.count(kMaxExtents, "extent count");
    uint64_t end = 0;
    for (uint32_t i = 0; i < count && in.ok(); ++i) {
        MemoryExtent e{.offset = in.u64("extent offset"), .length = in.u64("extent length")};
        if (!in.ok()) break;
        if (e.offset % kPageSize != 0 || e.length % kPageSize != 0 || e.length == 0)
            in.fail(fmt::format("extent {} ({:#x}+{:#x}) is not whole pages", i, e.offset, e.length));
        else if (i > 0 && e.offset <= end)
            in.fail(fmt::format("extent {} at {:#x} is not after the one before it", i, e.offset));
        else if (e.offset > image.ram_size || e.length > image.ram_size - e.offset)
            in.fail(fmt::format("extent {} ({:#x}+{:#x}) lies past the end of RAM", i, e.offset, e.length));
        end = e.offset + e.length;
        image.extents.push_back(e);
    }
    return image;
}

Result<void> verify_memory(const GuestMemory& memory, int fd, const MemoryImage& image) {
    if (memory.ram_size() != image.ram_size)
        return fail("{}: {} bytes of RAM mapped, the snapshot has {}", kMemoryFile, memory.ram_size(), image.ram_size);
    HashState hash;
    for (const MemoryExtent& e : image.extents) {
        // An extent may span the end of the low region: hash it region by region.
        uint64_t at = e.offset;
        while (at < e.offset + e.length) {
            const RamRegion* region = nullptr;
            for (const RamRegion& r : memory.regions())
                if (at >= r.file_offset && at < r.file_offset + r.size) region = &r;
            if (!region) return fail("{}: extent {:#x}+{:#x} is outside RAM", kMemoryFile, e.offset, e.length);
            uint64_t length = std::min(e.offset + e.length, region->file_offset + region->size) - at;
            hash.add(region->host + (at - region->file_offset), length);
            at += length;
        }
    }
    if (hash.digest() != image.hash)
        return fail("{}: checksum mismatch (XXH3-64 {:016x}, the manifest says {:016x}): the file is corrupt",
                    kMemoryFile, hash.digest(), image.hash);

    // Data outside the extents must be zeros: the checksum does not cover it.
    auto ranges = data_ranges(fd, 0, image.ram_size);
    if (!ranges) return std::unexpected(ranges.error());
    size_t next = 0;
    for (const MemoryExtent& range : *ranges) {
        uint64_t at = range.offset;
        uint64_t end = range.offset + range.length;
        while (at < end) {
            while (next < image.extents.size() && image.extents[next].offset + image.extents[next].length <= at) ++next;
            uint64_t stop = end;
            if (next < image.extents.size()) {
                const MemoryExtent& e = image.extents[next];
                if (e.offset <= at) {
                    at = std::min(end, e.offset + e.length);
                    continue;
                }
                stop = std::min(end, e.offset);
            }
            // [at, stop) holds data no extent lists; within one region, page by page.
            for (uint64_t page = at; page < stop; page += kPageSize) {
                const uint8_t* host = host_at(memory, page, kPageSize);
                if (host && !zero_page(host))
                    return fail("{}: data at offset {:#x} that the snapshot does not list: the file is corrupt",
                                kMemoryFile, page);
            }
            at = stop;
        }
    }
    return {};
}

}  // namespace strata::snapshot
