#include "host/io_uring_backend.hpp"

#include <sys/eventfd.h>

#include <algorithm>
#include <cerrno>

namespace strata {

Result<std::unique_ptr<IoUringBlockBackend>> IoUringBlockBackend::create(int fd, unsigned max_in_flight) {
    std::unique_ptr<IoUringBlockBackend> backend(new IoUringBlockBackend(fd, max_in_flight));
    // Twice as many completion entries as submission ones (liburing's default); the device never
    // has more operations in flight than max_in_flight, so the completion ring cannot overflow.
    if (int r = ::io_uring_queue_init(std::max(max_in_flight, 1u), &backend->ring_, 0); r < 0) {
        errno = -r;
        return fail_errno("io_uring_queue_init");
    }
    backend->ring_ready_ = true;
    backend->event_ = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!backend->event_.valid()) return fail_errno("eventfd for io_uring");
    if (int r = ::io_uring_register_eventfd(&backend->ring_, backend->event_.get()); r < 0) {
        errno = -r;
        return fail_errno("io_uring_register_eventfd");
    }
    return backend;
}

IoUringBlockBackend::IoUringBlockBackend(int fd, unsigned max_in_flight)
    : fd_(fd), transfers_(max_in_flight) {
    ready_.reserve(max_in_flight);
    for (Transfer& transfer : transfers_) transfer.iov.reserve(max_in_flight);
}

IoUringBlockBackend::~IoUringBlockBackend() {
    if (!ring_ready_) return;
    drain();  // the kernel must be done with every buffer before the memory can go
    ::io_uring_queue_exit(&ring_);
}

io_uring_sqe* IoUringBlockBackend::next_sqe() {
    io_uring_sqe* sqe = ::io_uring_get_sqe(&ring_);
    while (!sqe) {
        // Submitting frees the submission ring; the entries' operations stay in flight.
        if (int r = ::io_uring_submit(&ring_); r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
            panic(fmt::format("io_uring_submit: {}", std::strerror(-r)));
        sqe = ::io_uring_get_sqe(&ring_);
    }
    ++in_flight_;
    return sqe;
}

void IoUringBlockBackend::read(uint32_t tag, uint64_t offset, std::span<const iovec> iov) {
    start(tag, false, offset, iov, false);
}

void IoUringBlockBackend::write(uint32_t tag, uint64_t offset, std::span<const iovec> iov, bool durable) {
    start(tag, true, offset, iov, durable);
}

void IoUringBlockBackend::start(uint32_t tag, bool write, uint64_t offset, std::span<const iovec> iov, bool durable) {
    if (tag >= transfers_.size()) panic(fmt::format("io_uring back end: tag {} of {}", tag, transfers_.size()));
    Transfer& transfer = transfers_[tag];
    transfer.write = write;
    transfer.durable = durable;
    transfer.offset = offset;
    transfer.done = 0;
    transfer.total = 0;
    for (const iovec& piece : iov) transfer.total += piece.iov_len;
    transfer.iov.assign(iov.begin(), iov.end());  // within the reserved capacity: no allocation
    transfer.first = 0;
    transfer.active = true;
    submit_rest(tag);
}

void IoUringBlockBackend::submit_rest(uint32_t tag) {
    Transfer& transfer = transfers_[tag];
    io_uring_sqe* sqe = next_sqe();
    const iovec* rest = transfer.iov.data() + transfer.first;
    auto count = static_cast<unsigned>(transfer.iov.size() - transfer.first);
    uint64_t at = transfer.offset + transfer.done;
    if (transfer.write)
        ::io_uring_prep_writev2(sqe, fd_, rest, count, at, transfer.durable ? RWF_DSYNC : 0);
    else
        ::io_uring_prep_readv(sqe, fd_, rest, count, at);
    ::io_uring_sqe_set_data64(sqe, tag);
}

std::optional<int64_t> IoUringBlockBackend::completed(uint32_t tag, int32_t result) {
    if (tag >= transfers_.size() || !transfers_[tag].active) return result;
    Transfer& transfer = transfers_[tag];
    if (result < 0) {
        transfer.active = false;
        return result;
    }
    if (result == 0 && transfer.done < transfer.total) {
        transfer.active = false;
        return -EIO;  // the file ended first (it shrank under us)
    }
    transfer.done += static_cast<uint64_t>(result);
    if (transfer.done >= transfer.total) {
        transfer.active = false;
        return static_cast<int64_t>(transfer.done);
    }
    block_io::consume(transfer.iov, transfer.first, static_cast<uint64_t>(result));
    submit_rest(tag);
    return std::nullopt;
}

void IoUringBlockBackend::flush(uint32_t tag) {
    if (tag < transfers_.size()) transfers_[tag].active = false;
    io_uring_sqe* sqe = next_sqe();
    ::io_uring_prep_fsync(sqe, fd_, IORING_FSYNC_DATASYNC);
    // IO_DRAIN: not started before every earlier submission has completed (io_uring_enter(2)).
    ::io_uring_sqe_set_flags(sqe, IOSQE_IO_DRAIN);
    ::io_uring_sqe_set_data64(sqe, tag);
}

void IoUringBlockBackend::discard(uint32_t tag, std::span<const ByteRange> ranges) {
    ready_.push_back({tag, block_io::discard(fd_, ranges)});
}

void IoUringBlockBackend::write_zeroes(uint32_t tag, std::span<const ByteRange> ranges, bool may_unmap) {
    ready_.push_back({tag, block_io::write_zeroes(fd_, ranges, may_unmap)});
}

Result<void> IoUringBlockBackend::submit() {
    for (;;) {
        int r = ::io_uring_submit(&ring_);
        if (r >= 0) return {};
        if (r != -EINTR && r != -EAGAIN) {
            errno = -r;
            return fail_errno("io_uring_submit");
        }
    }
}

size_t IoUringBlockBackend::reap(std::span<BlockCompletion> out) {
    uint64_t count = 0;
    [[maybe_unused]] ssize_t n = ::read(event_.get(), &count, sizeof(count));  // cleared before the ring is read
    size_t taken = std::min(out.size(), ready_.size());
    std::copy_n(ready_.begin(), taken, out.begin());
    ready_.erase(ready_.begin(), ready_.begin() + static_cast<ptrdiff_t>(taken));
    io_uring_cqe* cqe = nullptr;
    unsigned head = 0;
    unsigned seen = 0;
    bool resubmitted = false;
    io_uring_for_each_cqe(&ring_, head, cqe) {
        if (taken == out.size()) break;
        auto tag = static_cast<uint32_t>(::io_uring_cqe_get_data64(cqe));
        ++seen;
        if (auto result = completed(tag, cqe->res))
            out[taken++] = {tag, *result};
        else
            resubmitted = true;
    }
    ::io_uring_cq_advance(&ring_, seen);
    in_flight_ -= seen;  // a resubmission counted itself in again
    if (resubmitted) (void)submit();  // if this fails the entries stay queued for the next submit()
    if (seen > 0 && taken == out.size()) {
        // Completions may be left: make sure the loop comes back for them.
        uint64_t one = 1;
        [[maybe_unused]] ssize_t w = ::write(event_.get(), &one, sizeof(one));
    }
    return taken;
}

void IoUringBlockBackend::drain() {
    if (in_flight_ > 0) (void)submit();
    while (in_flight_ > 0) {
        io_uring_cqe* cqe = nullptr;
        int r = ::io_uring_wait_cqe(&ring_, &cqe);
        if (r == -EINTR) continue;
        if (r < 0) panic(fmt::format("io_uring_wait_cqe with {} operations in flight: {}", in_flight_, std::strerror(-r)));
        ::io_uring_cqe_seen(&ring_, cqe);
        --in_flight_;
    }
    uint64_t count = 0;
    [[maybe_unused]] ssize_t n = ::read(event_.get(), &count, sizeof(count));
    ready_.clear();
    for (Transfer& transfer : transfers_) transfer.active = false;
}

}  // namespace strata
