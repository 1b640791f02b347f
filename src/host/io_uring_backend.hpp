// The io_uring back end of a disk (liburing): reads and writes go to the kernel as IORING_OP_READV /
// WRITEV on the guest's own buffers, submitted in batches from the device's loop thread, and
// complete in any order; the ring signals an eventfd (io_uring_register_eventfd) that the loop
// watches. FLUSH is IORING_OP_FSYNC with IORING_FSYNC_DATASYNC and IOSQE_IO_DRAIN, so it starts
// only once every operation submitted before it has completed. Discard and write-zeroes are
// fallocate calls done at once on the loop thread (metadata operations, short; and their
// write-of-zeros fallback needs no ring). A read or write the kernel completes short (a signal, a
// file system that splits it) is submitted again for the rest, as often as it makes progress; the
// completion reports the whole, or the error, or -EIO when the file ends first (as the
// synchronous back end does).
//
// Missing:  registered buffers and files (guest memory could be registered once), SQPOLL.
#pragma once

#include <liburing.h>

#include <memory>
#include <optional>
#include <vector>

#include "host/block_backend.hpp"

namespace strata {

class IoUringBlockBackend final : public BlockBackend {
public:
    // Fails, with the reason, where the host has no usable io_uring (ENOSYS on old kernels or
    // under seccomp, EPERM with kernel.io_uring_disabled...). `fd` stays owned by the caller.
    [[nodiscard]] static Result<std::unique_ptr<IoUringBlockBackend>> create(int fd, unsigned max_in_flight);
    ~IoUringBlockBackend() override;
    IoUringBlockBackend(const IoUringBlockBackend&) = delete;
    IoUringBlockBackend& operator=(const IoUringBlockBackend&) = delete;

    [[nodiscard]] std::string_view name() const override { return "io_uring"; }
    void read(uint32_t tag, uint64_t offset, std::span<const iovec> iov) override;
    void write(uint32_t tag, uint64_t offset, std::span<const iovec> iov, bool durable) override;
    void flush(uint32_t tag) override;
    void discard(uint32_t tag, std::span<const ByteRange> ranges) override;
    void write_zeroes(uint32_t tag, std::span<const ByteRange> ranges, bool may_unmap) override;
    [[nodiscard]] Result<void> submit() override;
    [[nodiscard]] int completion_fd() const override { return event_.get(); }
    [[nodiscard]] size_t reap(std::span<BlockCompletion> out) override;
    void drain() override;

private:
    IoUringBlockBackend(int fd, unsigned max_in_flight);
    // A read or write in flight, kept so that a short completion can go on where it stopped.
    struct Transfer {
        bool active = false;     // the tag's operation in flight is this read or write
        bool write = false;
        bool durable = false;
        uint64_t offset = 0;
        uint64_t done = 0;       // bytes completed so far
        uint64_t total = 0;
        std::vector<iovec> iov;  // the caller's, advanced past `done` (capacity reserved)
        size_t first = 0;        // the first iovec with bytes left
    };

    // The next submission entry, submitting what is queued when the ring is full.
    io_uring_sqe* next_sqe();
    void start(uint32_t tag, bool write, uint64_t offset, std::span<const iovec> iov, bool durable);
    void submit_rest(uint32_t tag);
    // What a completion of `tag` with `result` reports, or nothing when it went on.
    [[nodiscard]] std::optional<int64_t> completed(uint32_t tag, int32_t result);

    int fd_;
    io_uring ring_{};
    bool ring_ready_ = false;
    Fd event_;
    unsigned in_flight_ = 0;              // operations given to the ring and not reaped
    std::vector<BlockCompletion> ready_;  // completions of the operations done at once
    std::vector<Transfer> transfers_;     // by tag: reads and writes (a flush leaves its tag's inactive)
};

}  // namespace strata
