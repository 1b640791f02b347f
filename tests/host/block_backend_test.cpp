#include "host/block_backend.hpp"
#include "host/io_uring_backend.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

namespace strata {
namespace {

struct BlockBackendTest : ::testing::TestWithParam<BlockBackendKind> {
    std::string path = ::testing::TempDir() + "strata-backend-XXXXXX";
    Fd fd;
    std::unique_ptr<BlockBackend> backend;

    void SetUp() override {
        fd = Fd(::mkstemp(path.data()));
        ASSERT_TRUE(fd.valid());
        ASSERT_EQ(::ftruncate(fd.get(), 1 << 20), 0);
        auto made = make_block_backend(GetParam(), fd.get(), 64, "test image");
        ASSERT_TRUE(made) << made.error().message;
        backend = std::move(*made);
    }
    void TearDown() override {
        backend.reset();
        ::unlink(path.c_str());
    }
    // Every completion of `count` operations, in the order they were reaped.
    std::vector<BlockCompletion> reap_all(size_t count) {
        std::vector<BlockCompletion> all;
        std::array<BlockCompletion, 64> batch{};
        while (all.size() < count) {
            if (backend->completion_fd() >= 0) {
                pollfd p{.fd = backend->completion_fd(), .events = POLLIN, .revents = 0};
                if (::poll(&p, 1, 5000) != 1) break;
            }
            size_t n = backend->reap(batch);
            if (n == 0 && backend->completion_fd() < 0) break;
            all.insert(all.end(), batch.begin(), batch.begin() + static_cast<ptrdiff_t>(n));
        }
        return all;
    }
};

// FLUSH is fdatasync issued once every write before it has completed: its completion is the last,
// and the data is in the file.
TEST_P(BlockBackendTest, FlushCompletesAfterEveryEarlierWrite) {
    constexpr uint32_t kWrites = 32;
    std::vector<std::vector<uint8_t>> data(kWrites);
    std::vector<iovec> iov(kWrites);
    for (uint32_t i = 0; i < kWrites; ++i) {
        data[i].assign(16384, static_cast<uint8_t>(i + 1));
        iov[i] = {data[i].data(), data[i].size()};
        backend->write(i, 16384 * uint64_t{i}, std::span(&iov[i], 1), false);
    }
    backend->flush(kWrites);
    ASSERT_TRUE(backend->submit());
    auto done = reap_all(kWrites + 1);
    ASSERT_EQ(done.size(), kWrites + 1);
    EXPECT_EQ(done.back().tag, kWrites) << "the flush completes last";
    for (const BlockCompletion& completion : done)
        EXPECT_EQ(completion.result, completion.tag == kWrites ? 0 : 16384) << completion.tag;
    std::vector<uint8_t> back(16384);
    ASSERT_EQ(::pread(fd.get(), back.data(), back.size(), 16384 * 7), 16384);
    EXPECT_EQ(back, data[7]);
}

TEST_P(BlockBackendTest, ReadsScatterIntoSeveralBuffersAndDrainForgets) {
    std::vector<uint8_t> pattern(8192);
    for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<uint8_t>(i % 253);
    ASSERT_EQ(::pwrite(fd.get(), pattern.data(), pattern.size(), 4096), 8192);
    std::vector<uint8_t> a(1000), b(7192);
    std::array<iovec, 2> iov{{{a.data(), a.size()}, {b.data(), b.size()}}};
    backend->read(5, 4096, iov);
    ASSERT_TRUE(backend->submit());
    auto done = reap_all(1);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].tag, 5u);
    EXPECT_EQ(done[0].result, 8192);
    a.insert(a.end(), b.begin(), b.end());
    EXPECT_EQ(a, pattern);
    // A drain with reads in flight returns once they are done, and leaves nothing to reap.
    for (uint32_t i = 0; i < 16; ++i) backend->read(i, 0, iov);
    ASSERT_TRUE(backend->submit());
    backend->drain();
    std::array<BlockCompletion, 64> batch{};
    EXPECT_EQ(backend->reap(batch), 0u);
}

// A read the kernel ends short (here: the file ends inside it) goes on for the rest; one that can
// go no further is -EIO, never a short count the device might take for the whole. The tag and
// its buffers are then free for a whole read.
TEST_P(BlockBackendTest, AReadThatEndsShortGoesOnAndIsAnErrorAtTheEnd) {
    std::vector<uint8_t> tail(4096, 0x7e);
    ASSERT_EQ(::pwrite(fd.get(), tail.data(), tail.size(), (1 << 20) - 4096), 4096);
    std::vector<uint8_t> a(3000), b(3000);
    std::array<iovec, 2> iov{{{a.data(), a.size()}, {b.data(), b.size()}}};
    backend->read(9, (1 << 20) - 4096, iov);
    ASSERT_TRUE(backend->submit());
    auto done = reap_all(1);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].tag, 9u);
    EXPECT_EQ(done[0].result, -EIO);
    EXPECT_EQ(a, std::vector<uint8_t>(3000, 0x7e));
    EXPECT_EQ(std::vector<uint8_t>(b.begin(), b.begin() + 1096), std::vector<uint8_t>(1096, 0x7e));

    backend->read(9, (1 << 20) - 6000, iov);
    ASSERT_TRUE(backend->submit());
    done = reap_all(1);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].result, 6000);
    EXPECT_EQ(b, std::vector<uint8_t>(3000, 0x7e));
}

TEST_P(BlockBackendTest, WriteZeroesAndDiscardKeepTheSize) {
    std::vector<uint8_t> ones(65536, 1);
    ASSERT_EQ(::pwrite(fd.get(), ones.data(), ones.size(), 0), 65536);
    std::array<ByteRange, 2> ranges{{{0, 4096}, {8192, 512}}};
    backend->write_zeroes(1, ranges, false);
    std::array<ByteRange, 1> discard{{{16384, 16384}}};
    backend->discard(2, discard);
    ASSERT_TRUE(backend->submit());
    std::array<BlockCompletion, 4> batch{};
    ASSERT_EQ(backend->reap(batch), 2u) << "both are done at once";
    EXPECT_EQ(batch[0].result, 0);
    EXPECT_EQ(batch[1].result, 0);
    std::vector<uint8_t> back(65536);
    ASSERT_EQ(::pread(fd.get(), back.data(), back.size(), 0), 65536);
    EXPECT_EQ(std::vector<uint8_t>(back.begin(), back.begin() + 4096), std::vector<uint8_t>(4096, 0));
    EXPECT_EQ(back[4096], 1);
    EXPECT_EQ(back[8192], 0);
    EXPECT_EQ(back[8192 + 512], 1);
    EXPECT_EQ(::lseek(fd.get(), 0, SEEK_END), 1 << 20);
}

INSTANTIATE_TEST_SUITE_P(Backends, BlockBackendTest, ::testing::Values(BlockBackendKind::Sync, BlockBackendKind::IoUring),
                         [](const auto& param_info) {
                             return param_info.param == BlockBackendKind::Sync ? "Sync" : "IoUring";
                         });

}  // namespace
}  // namespace strata
