#include "snapshot/background_memory.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

namespace strata::snapshot {

namespace {

// Pages copied between two looks at the faults: a write waits at most for one such run.
constexpr uint64_t kChunkPages = 64;
// Runs of data closer than this are protected as one range: fewer calls, a few zero pages more.
constexpr uint64_t kMergeGapPages = 16;

// A userfaultfd that takes kernel-mode faults too: the system call where the caller may make one,
// else /dev/userfaultfd (Linux 6.1), which access to the device node grants.
Result<Fd> open_userfaultfd() {
    long fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0) return Fd(static_cast<int>(fd));
    int call_errno = errno;
    Fd device(open("/dev/userfaultfd", O_RDWR | O_CLOEXEC));
    if (device.valid()) {
        int made = ioctl(device.get(), USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
        if (made >= 0) return Fd(made);
    }
    errno = call_errno;
    if (call_errno == EPERM)
        return fail("userfaultfd: not permitted for this user (vm.unprivileged_userfaultfd is 0 and /dev/userfaultfd "
                    "is not open to it)");
    return fail_errno("userfaultfd");
}

}  // namespace

BackgroundMemoryWriter::BackgroundMemoryWriter(const GuestMemory& memory, int fd, Fd uffd)
    : memory_(memory),
      fd_(fd),
      uffd_(std::move(uffd)),
      pages_(memory.ram_size() / kPageSize),
      maybe_data_((pages_ + 63) / 64),
      touched_((pages_ + 63) / 64),
      saved_((pages_ + 63) / 64),
      data_((pages_ + 63) / 64) {}

Result<std::unique_ptr<BackgroundMemoryWriter>> BackgroundMemoryWriter::start(const GuestMemory& memory, int fd) {
    if (memory.fd() < 0)
        return fail("guest RAM is a private mapping of the snapshot it was restored from, which cannot be "
                    "write-protected");
    auto uffd = open_userfaultfd();
    if (!uffd) return std::unexpected(uffd.error());
    uffdio_api api{.api = UFFD_API, .features = UFFD_FEATURE_WP_HUGETLBFS_SHMEM, .ioctls = 0};
    if (ioctl(uffd->get(), UFFDIO_API, &api) != 0)
        return fail_errno("userfaultfd: this kernel cannot write-protect shared memory (Linux 5.19 can)");
    if (ftruncate(fd, static_cast<off_t>(memory.ram_size())) != 0) return fail_errno("sizing {}", kMemoryFile);
    std::unique_ptr<BackgroundMemoryWriter> writer(new BackgroundMemoryWriter(memory, fd, std::move(*uffd)));
    writer->stop_ = Fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!writer->stop_.valid()) return fail_errno("eventfd");

    for (const RamRegion& region : memory.regions()) {
        uffdio_register reg{.range = {reinterpret_cast<uint64_t>(region.host), region.size},
                            .mode = UFFDIO_REGISTER_MODE_WP,
                            .ioctls = 0};
        if (ioctl(writer->uffd_.get(), UFFDIO_REGISTER, &reg) != 0)
            return fail_errno("userfaultfd: registering guest RAM for write protection");
        writer->registered_ = true;
    }
    // Only what holds data needs protecting: a hole is zeros, and freeze() finds what became data
    // in the holes since.
    for (const RamRegion& region : memory.regions()) {
        auto ranges = data_ranges(memory.fd(), region.file_offset, region.file_offset + region.size);
        if (!ranges) return std::unexpected(ranges.error());
        for (const MemoryExtent& range : *ranges) {
            uint64_t first = range.offset / kPageSize;
            uint64_t end = (range.offset + range.length) / kPageSize;
            for (uint64_t page = first; page < end; ++page) set(writer->maybe_data_, page);
            std::vector<PageRange>& spans = writer->protected_ranges_;
            if (!spans.empty() && spans.back().end + kMergeGapPages >= first &&
                spans.back().end > region.file_offset / kPageSize)
                spans.back().end = end;
            else
                spans.push_back({first, end});
        }
    }
    for (const PageRange& range : writer->protected_ranges_)
        if (auto r = writer->protect(range.first, range.end - range.first); !r) return std::unexpected(r.error());
    writer->server_ = std::thread([w = writer.get()] { w->serve_until_frozen(); });
    return writer;
}

BackgroundMemoryWriter::~BackgroundMemoryWriter() {
    if (server_.joinable()) {
        uint64_t one = 1;
        (void)!::write(stop_.get(), &one, sizeof one);
        server_.join();
    }
    (void)release_all();
}

Result<void> BackgroundMemoryWriter::protect(uint64_t first_page, uint64_t pages) {
    uffdio_writeprotect wp{.range = {reinterpret_cast<uint64_t>(host(first_page)), pages * kPageSize},
                           .mode = UFFDIO_WRITEPROTECT_MODE_WP};
    protected_ = true;
    if (ioctl(uffd_.get(), UFFDIO_WRITEPROTECT, &wp) != 0)
        return fail_errno("userfaultfd: write-protecting guest RAM at {:#x}", first_page * kPageSize);
    return {};
}

Result<void> BackgroundMemoryWriter::release_all() {
    Result<void> released;
    if (protected_)
        for (const PageRange& range : protected_ranges_)
            if (auto r = release(range.first, range.end - range.first); !r && released) released = r;
    protected_ = false;
    if (registered_)
        for (const RamRegion& region : memory_.regions()) {
            uffdio_range range{reinterpret_cast<uint64_t>(region.host), region.size};
            ioctl(uffd_.get(), UFFDIO_UNREGISTER, &range);
        }
    registered_ = false;
    // Closing the userfaultfd wakes any thread still waiting on it.
    uffd_.reset();
    return released;
}

template <class OnPage>
Result<void> BackgroundMemoryWriter::take_faults(OnPage on_page) {
    std::array<uffd_msg, 16> messages;
    for (;;) {
        ssize_t n = read(uffd_.get(), messages.data(), sizeof messages);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return {};
        if (n <= 0) return fail_errno("userfaultfd: reading faults");
        for (size_t i = 0; i < static_cast<size_t>(n) / sizeof(uffd_msg); ++i) {
            if (messages[i].event != UFFD_EVENT_PAGEFAULT) continue;
            if (auto page = page_of(messages[i].arg.pagefault.address))
                if (auto r = on_page(*page); !r) return r;
        }
    }
}

void BackgroundMemoryWriter::serve_until_frozen() {
    for (;;) {
        std::array<pollfd, 2> fds{{{uffd_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}}};
        if (poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) continue;
            server_error_ = fail_errno("userfaultfd: waiting for faults").error();
            break;
        }
        if (fds[1].revents) return;
        auto served = take_faults([this](uint64_t page) {
            set(touched_, page);
            return release(page, 1);
        });
        if (!served) {
            server_error_ = served.error();
            break;
        }
    }
    // Nothing serves the faults any more: let every write through; freeze() reports the error.
    for (const PageRange& range : protected_ranges_) (void)release(range.first, range.end - range.first);
    protected_ = false;
}

Result<void> BackgroundMemoryWriter::freeze() {
    if (frozen_ || !server_.joinable()) return fail("the background snapshot was frozen already");
    uint64_t one = 1;
    if (::write(stop_.get(), &one, sizeof one) != sizeof one) return fail_errno("eventfd");
    server_.join();
    if (server_error_) return std::unexpected(*server_error_);

    // What was written since start() is protected again, and counts as data: it may have been a
    // hole inside a protected range.
    std::vector<PageRange> again;
    for (uint64_t word = 0; word < touched_.size(); ++word) {
        if (!touched_[word]) continue;
        for (uint64_t page = word * 64; page < std::min(pages_, word * 64 + 64); ++page) {
            if (!test(touched_, page)) continue;
            set(maybe_data_, page);
            if (!again.empty() && again.back().end == page && host(page) == host(page - 1) + kPageSize)
                again.back().end = page + 1;
            else
                again.push_back({page, page + 1});
        }
    }
    // Holes that became data since start(): SEEK_DATA skips holes, so this costs what it finds.
    std::vector<PageRange> found;
    for (const RamRegion& region : memory_.regions()) {
        uint64_t at = region.file_offset / kPageSize;
        uint64_t region_end = (region.file_offset + region.size) / kPageSize;
        auto next = std::lower_bound(protected_ranges_.begin(), protected_ranges_.end(), at,
                                     [](const PageRange& range, uint64_t page) { return range.end <= page; });
        while (at < region_end) {
            uint64_t gap_end = next != protected_ranges_.end() && next->first < region_end ? next->first : region_end;
            if (gap_end > at) {
                auto ranges = data_ranges(memory_.fd(), at * kPageSize, gap_end * kPageSize);
                if (!ranges) return std::unexpected(ranges.error());
                for (const MemoryExtent& range : *ranges) {
                    PageRange pages{range.offset / kPageSize, (range.offset + range.length) / kPageSize};
                    for (uint64_t page = pages.first; page < pages.end; ++page) set(maybe_data_, page);
                    found.push_back(pages);
                }
            }
            if (gap_end >= region_end) break;
            at = next->end;
            ++next;
        }
    }
    for (const std::vector<PageRange>* list : {&again, &found})
        for (const PageRange& range : *list)
            if (auto r = protect(range.first, range.end - range.first); !r) return r;
    if (!found.empty()) {
        protected_ranges_.insert(protected_ranges_.end(), found.begin(), found.end());
        std::sort(protected_ranges_.begin(), protected_ranges_.end(),
                  [](const PageRange& a, const PageRange& b) { return a.first < b.first; });
    }
    frozen_ = true;
    return {};
}

std::optional<uint64_t> BackgroundMemoryWriter::page_of(uint64_t address) const {
    for (const RamRegion& region : memory_.regions()) {
        auto base = reinterpret_cast<uint64_t>(region.host);
        if (address >= base && address - base < region.size) return (region.file_offset + (address - base)) / kPageSize;
    }
    return std::nullopt;
}

// Releases [first_page, first_page + pages), which lies in one region; wakes what waits there.
Result<void> BackgroundMemoryWriter::release(uint64_t first_page, uint64_t pages) {
    uffdio_writeprotect wp{.range = {reinterpret_cast<uint64_t>(host(first_page)), pages * kPageSize}, .mode = 0};
    if (ioctl(uffd_.get(), UFFDIO_WRITEPROTECT, &wp) != 0)
        return fail_errno("userfaultfd: releasing guest RAM at {:#x}", first_page * kPageSize);
    return {};
}

Result<void> BackgroundMemoryWriter::save(uint64_t page) {
    if (test(saved_, page)) return {};
    const uint8_t* bytes = host(page);
    if (test(maybe_data_, page) && !zero_page(bytes)) {
        if (auto r = write_all(fd_, bytes, kPageSize, page * kPageSize); !r) return r;
        set(data_, page);
    }
    set(saved_, page);
    return {};
}

Result<void> BackgroundMemoryWriter::serve_faults() {
    return take_faults([this](uint64_t page) -> Result<void> {
        if (!test(saved_, page)) ++early_pages_;
        if (auto r = save(page); !r) return r;
        // Also when the page was released already: that wakes a write that raced the release.
        return release(page, 1);
    });
}

Result<void> BackgroundMemoryWriter::copy_all(MemoryImageBuilder& image) {
    std::vector<uint8_t> early(kChunkPages * kPageSize);
    for (const PageRange& range : protected_ranges_) {
        uint64_t page = range.first;
        while (page < range.end) {
            if (auto r = serve_faults(); !r) return r;
            uint64_t stop = std::min(range.end, page + kChunkPages);
            // This chunk's pages not yet saved hold what they held at freeze(): write its runs of
            // data. Pages saved early are in the file already.
            for (uint64_t at = page; at < stop; ++at)
                if (!test(saved_, at) && test(maybe_data_, at) && !zero_page(host(at))) set(data_, at);
            uint64_t at = page;
            while (at < stop) {
                if (test(saved_, at) || !test(data_, at)) {
                    ++at;
                    continue;
                }
                uint64_t run = at;
                while (run < stop && !test(saved_, run) && test(data_, run)) ++run;
                if (auto r = write_all(fd_, host(at), (run - at) * kPageSize, at * kPageSize); !r) return r;
                at = run;
            }
            // The checksum runs over the data in file order: saved pages come back from the file.
            at = page;
            while (at < stop) {
                if (!test(data_, at)) {
                    ++at;
                    continue;
                }
                uint64_t run = at;
                while (run < stop && test(data_, run) && test(saved_, run) == test(saved_, at)) ++run;
                uint64_t length = (run - at) * kPageSize;
                if (!test(saved_, at)) {
                    if (auto r = image.add(at * kPageSize, {host(at), length}); !r) return r;
                } else {
                    uint64_t done = 0;
                    while (done < length) {
                        ssize_t n = pread(fd_, early.data() + done, length - done, static_cast<off_t>(at * kPageSize + done));
                        if (n < 0 && errno == EINTR) continue;
                        if (n <= 0) return fail_errno("reading back {} at offset {:#x}", kMemoryFile, at * kPageSize);
                        done += static_cast<uint64_t>(n);
                    }
                    if (auto r = image.add(at * kPageSize, {early.data(), length}); !r) return r;
                }
                at = run;
            }
            for (uint64_t p = page; p < stop; ++p) set(saved_, p);
            if (auto r = release(page, stop - page); !r) return r;
            page = stop;
        }
    }
    return serve_faults();
}

Result<MemoryImage> BackgroundMemoryWriter::run() {
    if (!frozen_) return fail("the background snapshot was not frozen");
    MemoryImageBuilder image(memory_.ram_size());
    auto copied = copy_all(image);
    auto released = release_all();
    if (!copied) return std::unexpected(copied.error());
    if (!released) return std::unexpected(released.error());
    return image.finish();
}

}  // namespace strata::snapshot
