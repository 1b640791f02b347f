// The host side of a virtual disk: a raw image (a regular file or a block device) and the back
// end that does the I/O on it for a device, asynchronously from the device's point of view.
//
// State:    the image's descriptor (owned by DiskImage), the operations in flight, completions
//           not yet reaped.
// Features: read/write with iovecs that point straight into guest memory (zero-copy: no bounce
//           buffer), FLUSH as fdatasync ordered after every operation started before it, discard
//           (fallocate PUNCH_HOLE, a hint: ignored where unsupported) and write-zeroes (fallocate
//           ZERO_RANGE, or PUNCH_HOLE when the driver allows unmapping, and a write of zeros where
//           fallocate cannot). Every operation ends in exactly one completion with its tag.
//           Two implementations: io_uring (host/io_uring_backend.hpp) and SyncBlockBackend below,
//           which does each operation at once with preadv2/pwritev2/fdatasync on the calling
//           (the device's loop) thread, for hosts where io_uring is unavailable (seccomp,
//           io_uring_disabled, old kernels) and for tests.
// Missing:  O_DIRECT (the host page cache is used: FLUSH is what makes writes durable); BLKDISCARD
//           for block devices whose kernel lacks fallocate on them (discard is then a no-op).
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "base/fd.hpp"

namespace strata {

// An open raw disk image: a regular file or a block device whose size is a multiple of 512.
struct DiskImage {
    Fd fd;
    uint64_t size = 0;  // bytes
    bool read_only = false;
    bool block_device = false;
};

// Opens `path` for a disk. Fails naming the file for: missing, not a regular file or block device,
// not readable, not writable while `read_only` is false (the message suggests readonly=on), a size
// that is not a multiple of 512 bytes (refused rather than rounded: the tail would be invisible to
// the guest and silently lost), empty, or locked by another user (it takes an OFD lock: shared
// when `read_only`, exclusive otherwise).
[[nodiscard]] Result<DiskImage> open_disk_image(const std::string& path, bool read_only);

// A byte range of the image, for discard and write-zeroes.
struct ByteRange {
    uint64_t offset = 0;
    uint64_t length = 0;
};

// The end of one operation: its tag and its result, the bytes transferred (read, write) or 0, or
// -errno.
struct BlockCompletion {
    uint32_t tag = 0;
    int64_t result = 0;
};

class BlockBackend {
public:
    virtual ~BlockBackend() = default;
    [[nodiscard]] virtual std::string_view name() const = 0;

    // Queue an operation; it starts at the latest at the next submit(). The iovecs (and the memory
    // they point at) stay valid until the operation's completion has been reaped. `durable`: the
    // write is on stable storage when it completes (RWF_DSYNC), for a driver that did not
    // negotiate FLUSH. A tag is below the `max_in_flight` the back end was made for and names one
    // operation in flight at a time.
    virtual void read(uint32_t tag, uint64_t offset, std::span<const iovec> iov) = 0;
    virtual void write(uint32_t tag, uint64_t offset, std::span<const iovec> iov, bool durable) = 0;
    // fdatasync, started only once every operation queued before it has completed.
    virtual void flush(uint32_t tag) = 0;
    virtual void discard(uint32_t tag, std::span<const ByteRange> ranges) = 0;
    virtual void write_zeroes(uint32_t tag, std::span<const ByteRange> ranges, bool may_unmap) = 0;
    [[nodiscard]] virtual Result<void> submit() = 0;

    // Readable (an eventfd) when completions may be waiting, or -1 when every operation has
    // completed by the time submit() returns.
    [[nodiscard]] virtual int completion_fd() const = 0;
    // Takes up to out.size() completions without blocking; returns how many.
    [[nodiscard]] virtual size_t reap(std::span<BlockCompletion> out) = 0;
    // Blocks until no operation is in flight any more, then forgets every completion: after it,
    // nothing writes the memory the iovecs pointed at (a device reset).
    virtual void drain() = 0;
};

// Does every operation at once on the calling thread.
class SyncBlockBackend final : public BlockBackend {
public:
    // `fd` stays owned by the caller and open while the back end lives.
    explicit SyncBlockBackend(int fd, size_t max_in_flight);
    [[nodiscard]] std::string_view name() const override { return "sync"; }
    void read(uint32_t tag, uint64_t offset, std::span<const iovec> iov) override;
    void write(uint32_t tag, uint64_t offset, std::span<const iovec> iov, bool durable) override;
    void flush(uint32_t tag) override;
    void discard(uint32_t tag, std::span<const ByteRange> ranges) override;
    void write_zeroes(uint32_t tag, std::span<const ByteRange> ranges, bool may_unmap) override;
    [[nodiscard]] Result<void> submit() override { return {}; }
    [[nodiscard]] int completion_fd() const override { return -1; }
    [[nodiscard]] size_t reap(std::span<BlockCompletion> out) override;
    void drain() override { ready_.clear(); }

private:
    int fd_;
    std::vector<iovec> scratch_;  // what is left of a partial transfer
    std::vector<BlockCompletion> ready_;
};

// The synchronous operations both back ends share: -errno or the bytes moved / 0.
namespace block_io {
// Steps past `bytes` already transferred: the iovecs from `first` on are shortened in place and
// `first` moves to the first one with bytes left (or to the end).
void consume(std::span<iovec> iov, size_t& first, uint64_t bytes);
// Moves all of the iovecs' bytes, going on after a partial transfer; `scratch` is reused.
[[nodiscard]] int64_t transfer(int fd, bool write, uint64_t offset, std::span<const iovec> iov, bool durable,
                               std::vector<iovec>& scratch);
[[nodiscard]] int64_t discard(int fd, std::span<const ByteRange> ranges);
[[nodiscard]] int64_t write_zeroes(int fd, std::span<const ByteRange> ranges, bool may_unmap);
}  // namespace block_io

enum class BlockBackendKind {
    Auto,     // io_uring where the host allows it, else sync (saying so on stderr once)
    IoUring,  // io_uring or an error
    Sync,
};

// The back end for `fd`, able to hold `max_in_flight` operations at once.
[[nodiscard]] Result<std::unique_ptr<BlockBackend>> make_block_backend(BlockBackendKind kind, int fd,
                                                                       unsigned max_in_flight,
                                                                       std::string_view what);

}  // namespace strata
