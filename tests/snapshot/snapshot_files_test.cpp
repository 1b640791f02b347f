// The snapshot directory as a restore sees it: what write_snapshot() wrote opens and maps back to
// the same RAM; a truncated, corrupt, wrong-version or foreign file is refused with one message
// naming it, before any VM could be built from it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "base/units.hpp"
#include "snapshot/snapshot_dir.hpp"
#include "snapshot/state_file.hpp"

namespace strata::snapshot {
namespace {

namespace fs = std::filesystem;

struct SnapshotFiles : ::testing::Test {
    fs::path root = fs::temp_directory_path() / fmt::format("strata-snapshot-test-{}", getpid());
    fs::path dir = root / "snap";
    GuestMemory memory = std::move(*GuestMemory::create(8 * MiB));

    void SetUp() override {
        fs::remove_all(root);
        fs::create_directories(root);
        // Three runs of data (four pages: one run crosses a page boundary), the rest zero (holes or written zeros).
        ASSERT_TRUE(memory.write(0x1000, std::vector<uint8_t>(100, 0xaa)));
        ASSERT_TRUE(memory.write(0x5ff0, std::vector<uint8_t>(32, 0xbb)));
        ASSERT_TRUE(memory.write(0x7f0000, std::vector<uint8_t>(4096, 0xcc)));
        ASSERT_TRUE(memory.write(0x20000, std::vector<uint8_t>(4096, 0)));  // touched, but zero
    }
    void TearDown() override { fs::remove_all(root); }

    SnapshotContent content() {
        SnapshotContent c;
        c.engine = "soft";
        c.machine_time_ns = 123456789;
        c.machine = {{"cpus", 1}};
        c.notes = {"a note"};
        c.sections = {{"vcpu/0", {1, 2, 3}}, {"com1", {}}};
        return c;
    }

    void write() { ASSERT_TRUE(write_snapshot(dir.string(), content(), memory)); }

    std::string refusal() {
        auto opened = open_snapshot(dir.string());
        if (opened) {
            auto mapped = GuestMemory::map_private(opened->memory_file.release(), opened->memory.ram_size);
            if (!mapped) return mapped.error().message;
            auto checked = verify_memory(*mapped, opened->memory_file.get(), opened->memory);
            // memory_file was released into the mapping: reopen for the hole scan.
            Fd fd(open((dir / "memory.bin").c_str(), O_RDONLY));
            checked = verify_memory(*mapped, fd.get(), opened->memory);
            return checked ? "" : checked.error().message;
        }
        return opened.error().message;
    }

    void patch(const char* file, uint64_t offset, uint8_t value) {
        int fd = open((dir / file).c_str(), O_WRONLY);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(pwrite(fd, &value, 1, static_cast<off_t>(offset)), 1);
        close(fd);
    }
    std::string manifest() {
        std::ifstream in(dir / "snapshot.json");
        return {std::istreambuf_iterator<char>(in), {}};
    }
    void set_manifest(const std::string& text) { std::ofstream(dir / "snapshot.json", std::ios::trunc) << text; }
};

TEST_F(SnapshotFiles, WhatIsWrittenOpensAndMapsBackToTheSameRam) {
    auto written = write_snapshot(dir.string(), content(), memory);
    ASSERT_TRUE(written) << written.error().message;
    EXPECT_EQ(written->ram_size, 8 * MiB);
    EXPECT_EQ(written->memory_data_bytes, 4 * 4096u) << "four pages hold data: the zero page and untouched RAM are not written";
    EXPECT_FALSE(fs::exists(root / "snap.partial"));

    struct stat st{};
    ASSERT_EQ(stat((dir / "memory.bin").c_str(), &st), 0);
    EXPECT_EQ(static_cast<uint64_t>(st.st_size), 8 * MiB);
    EXPECT_LE(static_cast<uint64_t>(st.st_blocks) * 512, 64 * 1024u) << "memory.bin is sparse";

    auto opened = open_snapshot(dir.string());
    ASSERT_TRUE(opened) << opened.error().message;
    EXPECT_EQ(opened->content.engine, "soft");
    EXPECT_EQ(opened->content.machine_time_ns, 123456789);
    EXPECT_EQ(opened->content.machine["cpus"], 1);
    EXPECT_EQ(opened->content.notes, std::vector<std::string>{"a note"});
    EXPECT_EQ(opened->content.sections, content().sections) << "the memory section is the reader's own";
    int fd = dup(opened->memory_file.get());
    auto mapped = GuestMemory::map_private(fd, opened->memory.ram_size);
    ASSERT_TRUE(mapped) << mapped.error().message;
    EXPECT_TRUE(verify_memory(*mapped, opened->memory_file.get(), opened->memory));
    auto original = memory.translate(0, 8 * MiB);
    auto restored = mapped->translate(0, 8 * MiB);
    EXPECT_TRUE(std::equal(original->begin(), original->end(), restored->begin()));

    // Copy-on-write: the restored guest's writes never reach the snapshot.
    ASSERT_TRUE(mapped->write(0x1000, std::vector<uint8_t>(8, 0x11)));
    EXPECT_EQ(refusal(), "") << "the snapshot is still whole";
}

TEST_F(SnapshotFiles, ADirectoryThatExistsIsNotWrittenInto) {
    fs::create_directories(dir);
    auto written = write_snapshot(dir.string(), content(), memory);
    ASSERT_FALSE(written);
    EXPECT_NE(written.error().message.find("exists already"), std::string::npos);
}

TEST_F(SnapshotFiles, CorruptStateIsRefused) {
    write();
    patch("state.bin", 20, 0xff);
    EXPECT_NE(refusal().find("state.bin: checksum mismatch"), std::string::npos) << refusal();
}

TEST_F(SnapshotFiles, CorruptRamIsRefused) {
    write();
    patch("memory.bin", 0x1010, 0x00);
    EXPECT_NE(refusal().find("memory.bin: checksum mismatch"), std::string::npos) << refusal();
}

TEST_F(SnapshotFiles, DataOutsideTheListedExtentsIsRefused) {
    write();
    patch("memory.bin", 0x300000, 0x42);  // a hole gets a byte no checksum covers
    EXPECT_NE(refusal().find("does not list"), std::string::npos) << refusal();
}

TEST_F(SnapshotFiles, TruncatedFilesAreRefused) {
    write();
    fs::resize_file(dir / "state.bin", fs::file_size(dir / "state.bin") - 1);
    EXPECT_NE(refusal().find("truncated"), std::string::npos) << refusal();
    fs::remove_all(dir);
    write();
    fs::resize_file(dir / "memory.bin", 4 * MiB);
    EXPECT_NE(refusal().find("memory.bin has 4194304 bytes"), std::string::npos) << refusal();
}

TEST_F(SnapshotFiles, AnotherVersionIsRefused) {
    write();
    std::string text = manifest();
    text.replace(text.find("\"version\": 1"), 12, "\"version\": 2");
    set_manifest(text);
    EXPECT_NE(refusal().find("format version 2 (this Strata restores version 1)"), std::string::npos) << refusal();
}

TEST_F(SnapshotFiles, AForeignOrBrokenManifestIsRefused) {
    write();
    set_manifest("{\"format\": \"qemu\"}");
    EXPECT_NE(refusal().find("is not a Strata snapshot's manifest"), std::string::npos) << refusal();
    set_manifest("not json");
    EXPECT_NE(refusal().find("is not a JSON object"), std::string::npos) << refusal();
    fs::remove(dir / "snapshot.json");
    EXPECT_NE(refusal().find("snapshot.json: No such file"), std::string::npos) << refusal();
}

TEST(StateFile, SectionsRoundTripAndBadOnesAreRefused) {
    std::vector<Section> sections{{"vcpu/0", {1, 2}}, {"irqchip", {3}}};
    auto bytes = encode_state_file(sections);
    auto decoded = decode_state_file(bytes);
    ASSERT_TRUE(decoded);
    EXPECT_EQ(*decoded, sections);
    for (size_t cut = 0; cut < bytes.size(); ++cut)
        EXPECT_FALSE(decode_state_file(std::span(bytes).first(cut))) << "cut at " << cut;

    auto twice = encode_state_file(std::vector<Section>{{"a", {}}, {"b", {}}});
    twice[twice.size() - 9] = 'a';  // the second name becomes "a"
    auto refused = decode_state_file(twice);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("'a' appears twice"), std::string::npos) << refused.error().message;
}

TEST(MemoryMap, ExtentsMustBeSortedPagesInsideRam) {
    auto decode = [](std::vector<MemoryExtent> extents) {
        StateWriter out;
        out.u64(MiB);
        out.u32(static_cast<uint32_t>(extents.size()));
        for (auto e : extents) {
            out.u64(e.offset);
            out.u64(e.length);
        }
        StateReader in(out.view(), "memory");
        (void)decode_memory_map(in);
        auto done = in.finish();
        return done ? std::string() : done.error().message;
    };
    EXPECT_EQ(decode({{0, 4096}, {8192, 4096}}), "");
    EXPECT_NE(decode({{0, 100}}).find("not whole pages"), std::string::npos);
    EXPECT_NE(decode({{8192, 4096}, {0, 4096}}).find("not after"), std::string::npos);
    EXPECT_NE(decode({{MiB - 4096, 8192}}).find("past the end of RAM"), std::string::npos);
    EXPECT_NE(decode({{~0ull & ~4095ull, 4096}}).find("past the end of RAM"), std::string::npos);
}

}  // namespace
}  // namespace strata::snapshot
