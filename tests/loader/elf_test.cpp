#include "loader/elf.hpp"

#include <gtest/gtest.h>

#include "base/checked.hpp"
#include "loader/test_images.hpp"

namespace strata {
namespace {

using test::make_elf;
using test::pattern;
using test::put_le;

std::string error_of(const Result<ElfImage>& r) { return r ? std::string("(success)") : r.error().message; }

std::vector<uint8_t> two_segment_elf64() {
    return make_elf(true, 62, 0x20'0000,
                    {{.paddr = 0x20'0000, .vaddr = 0xffff'ffff'8020'0000, .data = pattern(0x100, 1), .mem_size = 0x100},
                     {.paddr = 0x30'0000, .vaddr = 0x30'0000, .data = pattern(0x40, 2), .mem_size = 0x2000}});
}

TEST(Elf, ParsesElf64LoadSegments) {
    auto image = two_segment_elf64();
    auto elf = parse_elf(image);
    ASSERT_TRUE(elf) << elf.error().message;
    EXPECT_EQ(elf->elf_class, ElfClass::Elf64);
    EXPECT_EQ(elf->machine, ElfMachine::X86_64);
    EXPECT_EQ(elf->entry, 0x20'0000u);
    ASSERT_EQ(elf->segments.size(), 2u);
    EXPECT_EQ(elf->segments[0].vaddr, 0xffff'ffff'8020'0000u);
    EXPECT_EQ(elf->segments[1].file_size, 0x40u);
    EXPECT_EQ(elf->segments[1].mem_size, 0x2000u);
    EXPECT_EQ(elf->load_start, 0x20'0000u);
    EXPECT_EQ(elf->load_end, 0x30'2000u);
}

TEST(Elf, ParsesElf32AndSkipsNonLoadHeaders) {
    auto image = make_elf(false, 3, 0x40'0000,
                          {{.paddr = 0, .vaddr = 0, .data = {}, .mem_size = 0x10, .type = 4 /* PT_NOTE */},
                           {.paddr = 0x40'0000, .vaddr = 0x40'0000, .data = pattern(0x80, 3), .mem_size = 0x80}});
    auto elf = parse_elf(image);
    ASSERT_TRUE(elf) << elf.error().message;
    EXPECT_EQ(elf->elf_class, ElfClass::Elf32);
    EXPECT_EQ(elf->machine, ElfMachine::I386);
    ASSERT_EQ(elf->segments.size(), 1u);
    EXPECT_EQ(elf->segments[0].index, 1u);
    EXPECT_EQ(elf->segments[0].paddr, 0x40'0000u);
}

TEST(Elf, LoadCopiesFileBytesAndZeroesBss) {
    auto memory = GuestMemory::create(8 * MiB);
    ASSERT_TRUE(memory);
    auto dirty = std::vector<uint8_t>(0x3000, 0xaa);
    ASSERT_TRUE(memory->write(0x30'0000, dirty));
    auto image = two_segment_elf64();
    auto elf = parse_elf(image);
    ASSERT_TRUE(elf);
    ASSERT_TRUE(load_elf_segments(*memory, image, *elf));
    std::vector<uint8_t> got(0x100);
    ASSERT_TRUE(memory->read(0x20'0000, got));
    EXPECT_EQ(got, pattern(0x100, 1));
    std::vector<uint8_t> second(0x2000);
    ASSERT_TRUE(memory->read(0x30'0000, second));
    EXPECT_TRUE(std::equal(second.begin(), second.begin() + 0x40, pattern(0x40, 2).begin()));
    EXPECT_TRUE(std::all_of(second.begin() + 0x40, second.end(), [](uint8_t b) { return b == 0; }));
    uint8_t after = 0;
    ASSERT_TRUE(memory->read(0x30'2000, std::span(&after, 1)));
    EXPECT_EQ(after, 0xaa) << "bytes past p_memsz must stay untouched";
}

TEST(Elf, EveryTruncationFailsCleanly) {
    auto image = two_segment_elf64();
    for (size_t size = 0; size < image.size(); ++size) {
        auto r = parse_elf(std::span(image).first(size));
        EXPECT_FALSE(r) << "prefix of " << size << " bytes parsed";
    }
}

TEST(Elf, RejectsBadIdentification) {
    auto image = two_segment_elf64();
    auto bad = image;
    bad[1] = 'X';
    EXPECT_NE(error_of(parse_elf(bad)).find("magic"), std::string::npos);
    bad = image;
    bad[4] = 3;
    EXPECT_NE(error_of(parse_elf(bad)).find("class 3"), std::string::npos);
    bad = image;
    bad[5] = 2;
    EXPECT_NE(error_of(parse_elf(bad)).find("little-endian"), std::string::npos);
    bad = image;
    put_le(bad, 16, 3, 2);  // ET_DYN
    EXPECT_NE(error_of(parse_elf(bad)).find("type 3"), std::string::npos);
    bad = image;
    put_le(bad, 18, 183, 2);  // EM_AARCH64
    EXPECT_NE(error_of(parse_elf(bad)).find("machine 183"), std::string::npos);
}

TEST(Elf, RejectsProgramHeaderTableOutsideImage) {
    auto image = two_segment_elf64();
    put_le(image, test::kElf64Phoff, 0xffff'ffff'ffff'ff00, 8);
    EXPECT_NE(error_of(parse_elf(image)).find("program header table"), std::string::npos);
    image = two_segment_elf64();
    put_le(image, test::kElf64Phentsize, 16, 2);
    EXPECT_NE(error_of(parse_elf(image)).find("e_phentsize"), std::string::npos);
    image = two_segment_elf64();
    put_le(image, test::kElf64Phnum, 0xffff, 2);
    EXPECT_NE(error_of(parse_elf(image)).find("extended"), std::string::npos);
}

TEST(Elf, RejectsOverflowingSegmentFields) {
    size_t ph1 = test::kElf64HeaderSize + test::kElf64PhdrSize;
    auto image = two_segment_elf64();
    put_le(image, ph1 + test::kPhdr64Offset, 0xffff'ffff'ffff'fff0, 8);  // p_offset + p_filesz wraps
    auto error = error_of(parse_elf(image));
    EXPECT_NE(error.find("program header 1"), std::string::npos) << error;
    EXPECT_NE(error.find("outside"), std::string::npos) << error;

    image = two_segment_elf64();
    put_le(image, ph1 + test::kPhdr64Filesz, 0x3000, 8);  // p_filesz > p_memsz
    EXPECT_NE(error_of(parse_elf(image)).find("exceeds p_memsz"), std::string::npos);

    image = two_segment_elf64();
    put_le(image, ph1 + test::kPhdr64Paddr, 0xffff'ffff'ffff'f000, 8);  // paddr + memsz wraps
    EXPECT_NE(error_of(parse_elf(image)).find("wraps"), std::string::npos);
}

TEST(Elf, RejectsImageWithoutLoadSegments) {
    auto image = make_elf(true, 62, 0, {{.paddr = 0, .vaddr = 0, .data = {}, .mem_size = 0x10, .type = 4}});
    EXPECT_NE(error_of(parse_elf(image)).find("PT_LOAD"), std::string::npos);
}

TEST(Elf, LoadNamesSegmentOutsideRam) {
    auto memory = GuestMemory::create(3 * MiB);
    ASSERT_TRUE(memory);
    auto image = two_segment_elf64();  // second segment at 3 MiB, the first fits
    auto elf = parse_elf(image);
    ASSERT_TRUE(elf);
    auto r = load_elf_segments(*memory, image, *elf);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("program header 1 [0x300000, 0x302000) lies outside guest RAM"),
              std::string::npos)
        << r.error().message;
}

}  // namespace
}  // namespace strata
