#include "host/block_backend.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "host/io_uring_backend.hpp"

namespace strata {

Result<DiskImage> open_disk_image(const std::string& path, bool read_only) {
    // O_NONBLOCK until the type is known: opening a FIFO must not wait for a writer.
    int flags = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    Fd fd(::open(path.c_str(), flags));
    if (!fd.valid()) {
        int saved = errno;
        if (saved == ENOENT) return fail("disk image '{}' does not exist", path);
        if (saved == EISDIR) return fail("disk image '{}' is a directory, neither a regular file nor a block device", path);
        if (!read_only && (saved == EACCES || saved == EROFS || saved == EPERM) &&
            ::access(path.c_str(), R_OK) == 0)
            return fail("disk image '{}' cannot be opened for writing: {}; use readonly=on to give it to the guest "
                        "read-only",
                        path, std::strerror(saved));
        errno = saved;
        return fail_errno("disk image '{}' cannot be opened", path);
    }
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0) return fail_errno("disk image '{}' cannot be examined", path);
    DiskImage image;
    image.read_only = read_only;
    image.block_device = S_ISBLK(st.st_mode);
    if (S_ISREG(st.st_mode)) {
        image.size = static_cast<uint64_t>(st.st_size);
    } else if (image.block_device) {
        if (::ioctl(fd.get(), BLKGETSIZE64, &image.size) != 0)
            return fail_errno("disk image '{}': the block device's size", path);
    } else {
        return fail("disk image '{}' is neither a regular file nor a block device", path);
    }
    int status = ::fcntl(fd.get(), F_GETFL);
    if (status < 0 || ::fcntl(fd.get(), F_SETFL, status & ~O_NONBLOCK) != 0)
        return fail_errno("disk image '{}': fcntl", path);
    if (image.size == 0) return fail("disk image '{}' is empty", path);
    if (image.size % 512 != 0)
        return fail("disk image '{}' has {} bytes, not a whole number of 512-byte sectors", path, image.size);
    // An open-file-description lock over the whole image, as QEMU takes one: a writer excludes
    // every other user, a reader only writers, so that no two VMs (or two --disk flags) write the
    // same image. Advisory: programs that take no lock are not stopped.
    struct flock lock{};
    lock.l_type = read_only ? F_RDLCK : F_WRLCK;
    lock.l_whence = SEEK_SET;
    if (::fcntl(fd.get(), F_OFD_SETLK, &lock) != 0) {
        if (errno == EAGAIN || errno == EACCES)
            return fail("disk image '{}' is in use ({}); two users writing one image would corrupt it", path,
                        read_only ? "another process writes it" : "another process or disk has it open");
        if (errno != EINVAL && errno != ENOLCK) return fail_errno("disk image '{}': locking it", path);
    }
    image.fd = std::move(fd);
    return image;
}

namespace block_io {

void consume(std::span<iovec> iov, size_t& first, uint64_t bytes) {
    while (bytes > 0 && first < iov.size()) {
        size_t piece = static_cast<size_t>(std::min<uint64_t>(bytes, iov[first].iov_len));
        iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + piece;
        iov[first].iov_len -= piece;
        bytes -= piece;
        if (iov[first].iov_len == 0) ++first;
    }
    while (first < iov.size() && iov[first].iov_len == 0) ++first;
}

int64_t transfer(int fd, bool write, uint64_t offset, std::span<const iovec> iov, bool durable,
                 std::vector<iovec>& scratch) {
    scratch.assign(iov.begin(), iov.end());  // capacity reserved by the owner: no allocation
    uint64_t total = 0;
    size_t first = 0;
    while (first < scratch.size()) {
        auto count = static_cast<int>(std::min<size_t>(scratch.size() - first, IOV_MAX));
        auto at = static_cast<off_t>(offset + total);
        ssize_t done = write ? ::pwritev2(fd, &scratch[first], count, at, durable ? RWF_DSYNC : 0)
                             : ::preadv2(fd, &scratch[first], count, at, 0);
        if (done < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (done == 0) return -EIO;  // past the end of a file that shrank under us
        total += static_cast<uint64_t>(done);
        consume(scratch, first, static_cast<uint64_t>(done));
    }
    return static_cast<int64_t>(total);
}

int64_t discard(int fd, std::span<const ByteRange> ranges) {
    for (const ByteRange& range : ranges) {
        int r = ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(range.offset),
                            static_cast<off_t>(range.length));
        // A discard is a hint (virtio 1.2 §5.2.6.2: the contents afterwards are unspecified): where
        // the file system cannot punch holes, doing nothing is a correct discard.
        if (r != 0 && errno != EOPNOTSUPP && errno != ENOSYS) return -errno;
    }
    return 0;
}

namespace {

int64_t write_zero_bytes(int fd, ByteRange range) {
    static constexpr std::array<uint8_t, 64 * 1024> kZeros{};
    while (range.length > 0) {
        size_t piece = std::min<uint64_t>(range.length, kZeros.size());
        ssize_t done = ::pwrite(fd, kZeros.data(), piece, static_cast<off_t>(range.offset));
        if (done < 0 && errno == EINTR) continue;
        if (done < 0) return -errno;
        if (done == 0) return -EIO;
        range.offset += static_cast<uint64_t>(done);
        range.length -= static_cast<uint64_t>(done);
    }
    return 0;
}

}  // namespace

int64_t write_zeroes(int fd, std::span<const ByteRange> ranges, bool may_unmap) {
    // PUNCH_HOLE reads back as zeros on files and block devices alike; ZERO_RANGE keeps the blocks
    // allocated, as the driver asked when it did not allow unmapping.
    int mode = (may_unmap ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) | FALLOC_FL_KEEP_SIZE;
    for (const ByteRange& range : ranges) {
        if (::fallocate(fd, mode, static_cast<off_t>(range.offset), static_cast<off_t>(range.length)) == 0) continue;
        if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL) return -errno;
        if (int64_t r = write_zero_bytes(fd, range); r < 0) return r;
    }
    return 0;
}

}  // namespace block_io

SyncBlockBackend::SyncBlockBackend(int fd, size_t max_in_flight) : fd_(fd) {
    scratch_.reserve(1024);
    ready_.reserve(max_in_flight);
}

void SyncBlockBackend::read(uint32_t tag, uint64_t offset, std::span<const iovec> iov) {
    ready_.push_back({tag, block_io::transfer(fd_, false, offset, iov, false, scratch_)});
}

void SyncBlockBackend::write(uint32_t tag, uint64_t offset, std::span<const iovec> iov, bool durable) {
    ready_.push_back({tag, block_io::transfer(fd_, true, offset, iov, durable, scratch_)});
}

void SyncBlockBackend::flush(uint32_t tag) {
    // Every earlier operation has completed already: they ran before this call returned.
    int r = ::fdatasync(fd_);
    ready_.push_back({tag, r == 0 ? 0 : -int64_t{errno}});
}

void SyncBlockBackend::discard(uint32_t tag, std::span<const ByteRange> ranges) {
    ready_.push_back({tag, block_io::discard(fd_, ranges)});
}

void SyncBlockBackend::write_zeroes(uint32_t tag, std::span<const ByteRange> ranges, bool may_unmap) {
    ready_.push_back({tag, block_io::write_zeroes(fd_, ranges, may_unmap)});
}

size_t SyncBlockBackend::reap(std::span<BlockCompletion> out) {
    size_t n = std::min(out.size(), ready_.size());
    std::copy_n(ready_.begin(), n, out.begin());
    ready_.erase(ready_.begin(), ready_.begin() + static_cast<ptrdiff_t>(n));
    return n;
}

Result<std::unique_ptr<BlockBackend>> make_block_backend(BlockBackendKind kind, int fd, unsigned max_in_flight,
                                                         std::string_view what) {
    if (kind == BlockBackendKind::Sync) return std::make_unique<SyncBlockBackend>(fd, max_in_flight);
    auto uring = IoUringBlockBackend::create(fd, max_in_flight);
    if (uring) return std::unique_ptr<BlockBackend>(std::move(*uring));
    if (kind == BlockBackendKind::IoUring) return context(uring.error(), what);
    fmt::print(stderr, "strata: {}: {}; synchronous I/O on the device's thread instead\n", what,
               uring.error().message);
    return std::make_unique<SyncBlockBackend>(fd, max_in_flight);
}

}  // namespace strata
