// RAM written while the "guest" writes on (BackgroundMemoryWriter): the file holds RAM as it was
// at freeze(), with what was written between start() and freeze() and nothing written after —
// by user-mode stores ahead of and behind the copy, into holes, and by the kernel (a read(2) into
// guest memory, as a device's I/O does) — and every write lands in RAM too; a writer given up
// leaves RAM writable. Needs a userfaultfd that takes kernel faults (root
// or /dev/userfaultfd); skipped where the host has none, saying why.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <atomic>
#include <filesystem>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "base/units.hpp"
#include "snapshot/background_memory.hpp"

namespace strata::snapshot {
namespace {

namespace fs = std::filesystem;

struct BackgroundMemory : ::testing::Test {
    fs::path file = fs::temp_directory_path() / fmt::format("strata-background-memory-{}.bin", getpid());
    GuestMemory memory = std::move(*GuestMemory::create(32 * MiB));
    Fd fd;

    void SetUp() override {
        fd = Fd(open(file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        ASSERT_TRUE(fd.valid());
        // Data in runs and single pages, a page of zeros in the middle of data, holes elsewhere.
        for (uint64_t page = 0; page < 8192; page += (page % 512 < 300 ? 1 : 7)) {
            uint8_t value = static_cast<uint8_t>(page * 31 + 1);
            ASSERT_TRUE(memory.write(page * 4096, std::vector<uint8_t>(4096, value)));
        }
        ASSERT_TRUE(memory.write(100 * 4096, std::vector<uint8_t>(4096, 0)));
    }
    void TearDown() override { fs::remove(file); }

    // Writes a byte at `gpa` from another thread; a write still waiting after 10 s ends the test
    // process (the waiting thread cannot be joined).
    void write_without_waiting(uint64_t gpa, const char* when) {
        std::atomic<bool> written{false};
        std::thread guest([&] {
            (*memory.translate(0, memory.ram_size()))[gpa] = 0x99;
            written = true;
        });
        for (int i = 0; i < 1000 && !written; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (!written) {
            ADD_FAILURE() << "a write to guest RAM still waits " << when;
            std::_Exit(1);
        }
        guest.join();
    }

    std::vector<uint8_t> ram() const {
        std::vector<uint8_t> bytes(memory.ram_size());
        EXPECT_TRUE(memory.read(0, bytes));
        return bytes;
    }
    // RAM as memory.bin and `image` give it back, checked as a restore checks it.
    std::vector<uint8_t> restored(const MemoryImage& image) const {
        auto mapped = GuestMemory::map_private(dup(fd.get()), image.ram_size);
        EXPECT_TRUE(mapped);
        if (!mapped) return {};
        auto checked = verify_memory(*mapped, fd.get(), image);
        EXPECT_TRUE(checked) << checked.error().message;
        std::vector<uint8_t> bytes(image.ram_size);
        EXPECT_TRUE(mapped->read(0, bytes));
        return bytes;
    }
};

#define START_OR_SKIP(writer)                                                                 \
    auto writer = BackgroundMemoryWriter::start(memory, fd.get());                            \
    if (!writer) GTEST_SKIP() << "no background snapshot here: " << writer.error().message;

TEST_F(BackgroundMemory, TheFileHoldsRamAsItWasAtTheFreezeWhateverIsWrittenBeforeAndAfter) {
    START_OR_SKIP(writer);
    // Between start() and freeze(): writes into data, into a hole inside a protected range and
    // far from any data, and by the kernel; they go through at once and are in the snapshot.
    int pipe_fds[2];
    ASSERT_EQ(pipe(pipe_fds), 0);
    auto span = *memory.translate(0, memory.ram_size());
    std::thread before_freeze([&] {
        span[5 * 4096 + 1] = 0x11;
        span[301 * 4096 + 2] = 0x22;   // a hole between two runs of data
        span[7000 * 4096 + 3] = 0x33;  // a hole, no data near (and another in the high half)
        span[8190 * 4096] = 0x44;
        ASSERT_EQ(write(pipe_fds[1], "before the freeze", 17), 17);
        ASSERT_EQ(read(pipe_fds[0], span.data() + 40 * 4096 + 100, 17), 17);
    });
    before_freeze.join();
    std::vector<uint8_t> at_freeze = ram();
    ASSERT_TRUE((*writer)->freeze());

    // After it: writes ahead of the copy (last pages first), into holes and data, some twice, and
    // one by the kernel; each waits until its page is saved, none reaches the file.
    ASSERT_EQ(write(pipe_fds[1], "written by the kernel", 21), 21);
    std::atomic<unsigned> writes{0};
    std::thread guest([&] {
        for (int64_t page = 8191; page >= 0; page -= 97) {
            span[static_cast<uint64_t>(page) * 4096 + 17] = 0x5a;
            span[static_cast<uint64_t>(page) * 4096 + 18] = 0xa5;
            ++writes;
        }
        span[5 * 4096 + 1] = 0x66;
        span[7000 * 4096 + 3] = 0x77;
        ssize_t n = read(pipe_fds[0], span.data() + 300 * 4096 + 100, 21);
        EXPECT_EQ(n, 21);
        span[100 * 4096] = 1;  // the page of zeros
        ++writes;
    });
    auto image = (*writer)->run();
    guest.join();
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    ASSERT_TRUE(image) << image.error().message;
    EXPECT_EQ(writes.load(), 8191 / 97 + 2);

    std::vector<uint8_t> after = restored(*image);
    ASSERT_EQ(after.size(), at_freeze.size());
    EXPECT_TRUE(after == at_freeze) << "memory.bin differs from RAM at the freeze";
    EXPECT_EQ(after[301 * 4096 + 2], 0x22);
    EXPECT_EQ(after[7000 * 4096 + 3], 0x33);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(&after[40 * 4096 + 100]), 17), "before the freeze");
    // And RAM has every write.
    std::vector<uint8_t> now = ram();
    EXPECT_EQ(now[8191 * 4096 + 17], 0x5a);
    EXPECT_EQ(now[(8191 - 97 * 50) * 4096 + 18], 0xa5);
    EXPECT_EQ(now[5 * 4096 + 1], 0x66);
    EXPECT_EQ(now[7000 * 4096 + 3], 0x77);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(&now[300 * 4096 + 100]), 21), "written by the kernel");
    EXPECT_EQ(now[100 * 4096], 1);
    // Exactly the pages that held data were written: not the zero page, not the holes.
    uint64_t data_pages = 0;
    for (uint64_t page = 0; page < at_freeze.size() / 4096; ++page)
        data_pages += std::any_of(&at_freeze[page * 4096], &at_freeze[page * 4096] + 4096, [](uint8_t b) { return b != 0; });
    EXPECT_EQ(image->data_bytes(), data_pages * 4096);
    RecordProperty("early_pages", std::to_string((*writer)->early_pages()));
}

TEST_F(BackgroundMemory, WithNoWritesTheFileIsWhatWriteMemoryFileWrites) {
    Fd other(open((file.string() + ".2").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    ASSERT_TRUE(other.valid());
    auto paused = write_memory_file(other.get(), memory);
    fs::remove(file.string() + ".2");
    ASSERT_TRUE(paused);
    START_OR_SKIP(writer);
    ASSERT_TRUE((*writer)->freeze());
    auto image = (*writer)->run();
    ASSERT_TRUE(image) << image.error().message;
    EXPECT_EQ(*image, *paused);
    EXPECT_EQ((*writer)->early_pages(), 0u);
}

TEST_F(BackgroundMemory, AWriterGivenUpLeavesRamWritable) {
    for (bool frozen : {false, true}) {
        {
            START_OR_SKIP(writer);
            if (frozen) {
                ASSERT_TRUE((*writer)->freeze());
                auto refused = (*writer)->freeze();
                ASSERT_FALSE(refused);
                EXPECT_EQ(refused.error().message, "the background snapshot was frozen already");
            }
        }
        // No thread serves faults any more: a write to a page that was protected must not wait.
        write_without_waiting(3 * 4096, frozen ? "after the frozen writer was destroyed" : "after the writer was destroyed");
    }
}

TEST_F(BackgroundMemory, AFailedWriteIsReportedAndLeavesRamWritable) {
    START_OR_SKIP(writer);
    ASSERT_TRUE((*writer)->freeze());
    // The file may not grow past 64 KiB: the first run of data past it fails with EFBIG.
    struct rlimit saved{};
    ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
    auto old_handler = signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = saved;
    small.rlim_cur = 64 * 1024;
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
    auto image = (*writer)->run();
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, old_handler);
    ASSERT_FALSE(image);
    EXPECT_NE(image.error().message.find("writing memory.bin at offset"), std::string::npos) << image.error().message;
    // Every page is writable again: a write to one the copy never reached does not wait.
    write_without_waiting(8000 * 4096, "after the failed copy");
}

TEST_F(BackgroundMemory, RamMappedFromASnapshotIsRefusedWithTheReason) {
    auto image = write_memory_file(fd.get(), memory);
    ASSERT_TRUE(image);
    auto mapped = GuestMemory::map_private(dup(fd.get()), memory.ram_size());
    ASSERT_TRUE(mapped);
    Fd out(open((file.string() + ".3").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    auto writer = BackgroundMemoryWriter::start(*mapped, out.get());
    fs::remove(file.string() + ".3");
    ASSERT_FALSE(writer);
    EXPECT_NE(writer.error().message.find("private mapping"), std::string::npos) << writer.error().message;
}

}  // namespace
}  // namespace strata::snapshot
