// Guest RAM written into a snapshot's memory.bin while the VM runs on, the way QEMU's
// background-snapshot does it, through userfaultfd's write protection, in three steps:
//
//   start()   while the VM runs: write-protects the RAM that holds data; a thread lets each write
//             through at once and notes its page. (Done before the pause: on a Linux guest with
//             67 MiB of data, finding and protecting it takes 2 ms.)
//   freeze()  with every vCPU stopped and the devices quiesced — the snapshot's instant: protects
//             the noted pages again and what became data in the holes meanwhile. From here the
//             file will hold RAM as it is now.
//   run()     while the VM runs again: copies RAM in order; a page that a vCPU or a device writes
//             before its turn is copied first and only then handed back to the writer.
//
// Needs: RAM in its memfd (a restored VM's RAM is a private mapping of its snapshot, which the
// kernel cannot write-protect this way), write protection of shared memory (Linux 5.19), and a
// userfaultfd that takes the faults the kernel takes as well as user mode's — KVM and the
// devices' system calls write guest memory from the kernel (root, CAP_SYS_PTRACE,
// vm.unprivileged_userfaultfd=1, or read-write access to /dev/userfaultfd). start() says which is
// missing; the caller then writes RAM with the VM paused (write_memory_file).
//
// Threads: between start() and freeze() a thread of the writer's serves the faults; from
// freeze() on, run()'s caller does, between the pieces it copies. A faulting thread waits in the
// kernel until its page is let through. The memory must outlive the writer, and nothing but the
// writer may change protection or unmap RAM meanwhile.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "memory/guest_memory.hpp"
#include "snapshot/memory_file.hpp"

namespace strata::snapshot {

class BackgroundMemoryWriter {
public:
    // Protects the RAM of `memory` that holds data; `fd` is the empty memory.bin to fill.
    [[nodiscard]] static Result<std::unique_ptr<BackgroundMemoryWriter>> start(const GuestMemory& memory, int fd);
    // Releases whatever is still protected.
    ~BackgroundMemoryWriter();
    BackgroundMemoryWriter(const BackgroundMemoryWriter&) = delete;
    BackgroundMemoryWriter& operator=(const BackgroundMemoryWriter&) = delete;

    // The snapshot's instant: nothing may write guest memory during the call.
    [[nodiscard]] Result<void> freeze();
    // After freeze(): copies RAM as it was then into the file, sparse (holes and zero pages not
    // written), and returns its image; every page is writable again when it returns, also on failure.
    [[nodiscard]] Result<MemoryImage> run();
    // Pages that were copied ahead of their turn because something wrote them.
    [[nodiscard]] uint64_t early_pages() const { return early_pages_; }

private:
    struct PageRange {
        uint64_t first = 0;
        uint64_t end = 0;
    };

    BackgroundMemoryWriter(const GuestMemory& memory, int fd, Fd uffd);
    [[nodiscard]] Result<void> protect(uint64_t first_page, uint64_t pages);
    [[nodiscard]] Result<void> release(uint64_t first_page, uint64_t pages);
    [[nodiscard]] Result<void> release_all();
    // Until stop_ is signalled: lets each write through and notes its page in touched_.
    void serve_until_frozen();
    // Copies memory.bin's page `page` into it unless that is done.
    [[nodiscard]] Result<void> save(uint64_t page);
    // Reads the faults waiting (none: returns at once) and hands each one's page to `on_page`.
    template <class OnPage>
    [[nodiscard]] Result<void> take_faults(OnPage on_page);
    // Saves and releases every page a write is waiting for.
    [[nodiscard]] Result<void> serve_faults();
    [[nodiscard]] Result<void> copy_all(MemoryImageBuilder& image);
    [[nodiscard]] const uint8_t* host(uint64_t page) const { return host_at(memory_, page * kPageSize, kPageSize); }
    [[nodiscard]] std::optional<uint64_t> page_of(uint64_t address) const;

    static bool test(const std::vector<uint64_t>& bits, uint64_t page) { return bits[page / 64] >> (page % 64) & 1; }
    static void set(std::vector<uint64_t>& bits, uint64_t page) { bits[page / 64] |= uint64_t{1} << (page % 64); }

    const GuestMemory& memory_;
    int fd_;
    Fd uffd_;
    uint64_t pages_;
    std::vector<PageRange> protected_ranges_;  // sorted, each within one region
    std::vector<uint64_t> maybe_data_;  // data in the memfd by freeze(): the rest was zeros
    std::vector<uint64_t> touched_;     // written between start() and freeze() (the thread's, until joined)
    std::vector<uint64_t> saved_;       // copied (or known to be zeros) and writable again
    std::vector<uint64_t> data_;        // saved and not zeros: in memory.bin
    bool registered_ = false;
    bool protected_ = false;  // some of RAM may still be write-protected
    bool frozen_ = false;
    uint64_t early_pages_ = 0;
    Fd stop_;  // eventfd: the thread's signal to end
    std::thread server_;
    std::optional<Error> server_error_;  // the thread's, read once it is joined
};

}  // namespace strata::snapshot
