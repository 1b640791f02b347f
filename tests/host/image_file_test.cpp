#include "host/image_file.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace strata {
namespace {

std::string write_file(const std::string& name, size_t size) {
    std::string path = ::testing::TempDir() + name;
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    for (size_t i = 0; i < size; ++i) file.put(static_cast<char>(i * 7));
    return path;
}

TEST(ImageFile, ReadsARegularFileWhole) {
    auto path = write_file("strata-image-ok", 10'000);
    auto bytes = read_image_file(path, "kernel", 1 << 20);
    ASSERT_TRUE(bytes) << bytes.error().message;
    ASSERT_EQ(bytes->size(), 10'000u);
    EXPECT_EQ((*bytes)[9'999], static_cast<uint8_t>(9'999 * 7));
}

TEST(ImageFile, RefusesEmptyMissingAndOversizedFiles) {
    auto empty = write_file("strata-image-empty", 0);
    EXPECT_EQ(read_image_file(empty, "initrd", 100).error().message, "initrd '" + empty + "' is empty");
    auto missing = read_image_file("/nonexistent/strata", "kernel", 100);
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message.find("cannot be opened: No such file"), std::string::npos);
    auto big = write_file("strata-image-big", 4097);
    EXPECT_EQ(read_image_file(big, "kernel", 4096).error().message,
              "kernel '" + big + "' is 4097 bytes, more than the 4 KiB that guest RAM can hold (see --memory)");
}

TEST(ImageFile, RefusesWhatIsNotARegularFile) {
    EXPECT_NE(read_image_file("/", "kernel", 100).error().message.find("is a directory"), std::string::npos);
    EXPECT_NE(read_image_file("/dev/null", "kernel", 100).error().message.find("is a character device"),
              std::string::npos);
}

// The interruption check runs between chunks: a read asked to stop, stops, and says so.
TEST(ImageFile, StopsWhenInterrupted) {
    auto path = write_file("strata-image-chunks", 9 << 20);
    int asked = 0;
    auto r = read_image_file(path, "initrd", 16 << 20, [&] { return ++asked == 2; });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message, "reading initrd '" + path + "' was interrupted");
    EXPECT_EQ(asked, 2);
    std::filesystem::remove(path);
}

}  // namespace
}  // namespace strata
