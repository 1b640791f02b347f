#include "loader/multiboot_loader.hpp"

#include <gtest/gtest.h>

#include "base/checked.hpp"
#include "loader/kernel_format.hpp"
#include "loader/test_images.hpp"
#include "memory/e820.hpp"
#include "memory/pc_layout.hpp"

namespace strata {
namespace {

using test::make_elf;
using test::pattern;
using test::put_le;
using test::put_multiboot_header;

constexpr uint32_t kAddressFields = 1u << 16;

uint64_t guest_le(const GuestMemory& memory, uint64_t gpa, size_t size) {
    std::vector<uint8_t> bytes(size);
    EXPECT_TRUE(memory.read(gpa, bytes));
    return test::get_le(bytes, 0, size);
}

std::vector<uint8_t> read_guest(const GuestMemory& memory, uint64_t gpa, size_t size) {
    std::vector<uint8_t> out(size);
    EXPECT_TRUE(memory.read(gpa, out));
    return out;
}

std::string guest_string(const GuestMemory& memory, uint64_t gpa) {
    std::string out;
    for (char c = 0; (c = static_cast<char>(guest_le(memory, gpa + out.size(), 1))) != 0;) out += c;
    return out;
}

std::string error_of(const Result<CpuState>& r) { return r ? std::string("(success)") : r.error().message; }

// Like a kvm-unit-tests .flat: ELF32, linked at 4 MiB, multiboot flags 0 (ELF headers rule).
std::vector<uint8_t> make_flat(uint32_t flags = 0) {
    auto image = make_elf(false, 3, 0x40'0010,
                          {{.paddr = 0x40'0000, .vaddr = 0x40'0000, .data = pattern(0x1800, 7), .mem_size = 0x3000}},
                          16);
    put_multiboot_header(image, test::kElf32HeaderSize + test::kElf32PhdrSize, flags);
    return image;
}

// An a.out-kludge image: the file is loaded at 2 MiB, the header at file offset 0x40.
std::vector<uint8_t> make_aout(uint32_t load_end = 0, uint32_t bss_end = 0x20'3000, uint32_t entry = 0x20'0080) {
    auto image = pattern(0x1000, 8);
    put_multiboot_header(image, 0x40, kAddressFields | 0x3, 0x20'0040, 0x20'0000, load_end, bss_end, entry);
    return image;
}

class Multiboot : public ::testing::Test {
protected:
    void SetUp() override {
        auto created = GuestMemory::create(128 * MiB);
        ASSERT_TRUE(created);
        memory = std::make_unique<GuestMemory>(std::move(*created));
    }
    std::unique_ptr<GuestMemory> memory;
};

TEST_F(Multiboot, ElfKernelLikeKvmUnitTests) {
    auto image = make_flat();
    ASSERT_TRUE(is_multiboot(image));
    std::vector<MultibootModule> modules{{pattern(0x1234, 1), "NR_CPUS=1"}, {pattern(0x10, 2), "second"}};
    auto state = load_multiboot(*memory, image, "arg1 arg2", modules);
    ASSERT_TRUE(state) << state.error().message;

    // §3.2 machine state.
    EXPECT_EQ(state->rip, 0x40'0010u);
    EXPECT_EQ((*state)[Gpr::Rax], 0x2badb002u);
    EXPECT_EQ((*state)[Gpr::Rbx], pc::kMultibootInfo);
    EXPECT_TRUE(state->cs.db);
    EXPECT_FALSE(state->cs.l);
    EXPECT_EQ(state->cs.limit, 0xffff'ffffu);
    EXPECT_EQ(state->cs.selector, 0x10);
    EXPECT_EQ(state->ds.selector, 0x18);
    EXPECT_TRUE(state->cr0 & cr0::PE);
    EXPECT_FALSE(state->cr0 & cr0::PG);
    EXPECT_EQ(state->efer, 0u);
    EXPECT_EQ(state->rflags, 0x2u);
    EXPECT_EQ(guest_le(*memory, pc::kBootGdt + 0x10, 8), 0x00cf'9b00'0000'ffffu) << "flat 32-bit code at 0x10";
    EXPECT_EQ(guest_le(*memory, pc::kBootGdt + 0x18, 8), 0x00cf'9300'0000'ffffu) << "flat data at 0x18";

    // The kernel with its bss zeroed.
    EXPECT_EQ(read_guest(*memory, 0x40'0000, 0x1800), pattern(0x1800, 7));
    EXPECT_EQ(read_guest(*memory, 0x40'1800, 0x1800), std::vector<uint8_t>(0x1800, 0));

    // §3.3 boot information.
    uint64_t info = pc::kMultibootInfo;
    uint32_t flags = static_cast<uint32_t>(guest_le(*memory, info, 4));
    EXPECT_EQ(flags, (1u << 0) | (1u << 2) | (1u << 3) | (1u << 6) | (1u << 9));
    EXPECT_EQ(guest_le(*memory, info + 4, 4), 639u);
    EXPECT_EQ(guest_le(*memory, info + 8, 4), (128 - 1) * 1024u);
    EXPECT_EQ(guest_string(*memory, guest_le(*memory, info + 16, 4)), "arg1 arg2");
    EXPECT_EQ(guest_string(*memory, guest_le(*memory, info + 64, 4)), "strata");

    ASSERT_EQ(guest_le(*memory, info + 20, 4), 2u);
    uint64_t mods = guest_le(*memory, info + 24, 4);
    EXPECT_GE(mods, pc::kMultibootInfo);
    EXPECT_LT(mods, pc::kMultibootInfoEnd);
    uint64_t start0 = guest_le(*memory, mods, 4), end0 = guest_le(*memory, mods + 4, 4);
    EXPECT_EQ(start0, 0x40'3000u) << "page-aligned right after the kernel's bss";
    EXPECT_EQ(end0 - start0, 0x1234u);
    EXPECT_EQ(read_guest(*memory, start0, 0x1234), pattern(0x1234, 1));
    EXPECT_EQ(guest_string(*memory, guest_le(*memory, mods + 8, 4)), "NR_CPUS=1");
    uint64_t start1 = guest_le(*memory, mods + 16, 4);
    EXPECT_EQ(start1, 0x40'5000u);
    EXPECT_EQ(guest_string(*memory, guest_le(*memory, mods + 24, 4)), "second");

    auto map = build_e820(*memory);
    EXPECT_EQ(guest_le(*memory, info + 44, 4), map.size() * 24);
    uint64_t mmap = guest_le(*memory, info + 48, 4);
    for (const auto& entry : map) {
        EXPECT_EQ(guest_le(*memory, mmap, 4), 20u);
        EXPECT_EQ(guest_le(*memory, mmap + 4, 8), entry.addr);
        EXPECT_EQ(guest_le(*memory, mmap + 12, 8), entry.size);
        EXPECT_EQ(guest_le(*memory, mmap + 20, 4), static_cast<uint32_t>(entry.type));
        mmap += guest_le(*memory, mmap, 4) + 4;
    }
}

TEST_F(Multiboot, AoutKludgeUsesTheAddressFields) {
    auto image = make_aout();
    std::vector<uint8_t> dirty(0x3000, 0xcc);
    ASSERT_TRUE(memory->write(0x20'0000, dirty));
    auto state = load_multiboot(*memory, image, "", {{pattern(8, 3), "m"}});
    ASSERT_TRUE(state) << state.error().message;
    EXPECT_EQ(state->rip, 0x20'0080u);
    EXPECT_EQ(read_guest(*memory, 0x20'0000, 0x1000), image);
    EXPECT_EQ(read_guest(*memory, 0x20'1000, 0x2000), std::vector<uint8_t>(0x2000, 0)) << "bss up to bss_end_addr";
    uint64_t mods = guest_le(*memory, pc::kMultibootInfo + 24, 4);
    EXPECT_EQ(guest_le(*memory, mods, 4), 0x20'3000u);
}

TEST_F(Multiboot, AoutLoadEndLimitsTheCopy) {
    auto image = make_aout(0x20'0800, 0);
    auto state = load_multiboot(*memory, image, "", {});
    ASSERT_TRUE(state) << state.error().message;
    EXPECT_EQ(read_guest(*memory, 0x20'0000, 0x800), std::vector<uint8_t>(image.begin(), image.begin() + 0x800));
    EXPECT_EQ(guest_le(*memory, 0x20'0800, 1), 0u);
}

TEST_F(Multiboot, HeaderMustBeAlignedChecksummedAndEarly) {
    std::vector<uint8_t> image(0x3000, 0);
    put_multiboot_header(image, 0x2000, 0);  // past the first 8 KiB
    EXPECT_FALSE(is_multiboot(image));
    std::vector<uint8_t> unaligned(0x100, 0);
    put_multiboot_header(unaligned, 0x42, 0);
    EXPECT_FALSE(is_multiboot(unaligned));
    auto bad_sum = make_flat();
    bad_sum[test::kElf32HeaderSize + test::kElf32PhdrSize + 8] ^= 1;
    EXPECT_FALSE(is_multiboot(bad_sum));
    auto r = load_multiboot(*memory, bad_sum, "", {});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("no header with magic 0x1badb002"), std::string::npos) << r.error().message;
    EXPECT_FALSE(is_multiboot(std::span(image).first(5)));
}

TEST_F(Multiboot, RequiredFlagsItCannotHonourAreRejected) {
    auto video = error_of(load_multiboot(*memory, make_flat(1u << 2), "", {}));
    EXPECT_NE(video.find("video mode"), std::string::npos) << video;
    auto unknown = error_of(load_multiboot(*memory, make_flat(1u << 5), "", {}));
    EXPECT_NE(unknown.find("bits 0x20"), std::string::npos) << unknown;
    EXPECT_TRUE(load_multiboot(*memory, make_flat(0x3 | (1u << 20)), "", {})) << "optional high bits are ignored";
}

TEST_F(Multiboot, InconsistentAddressFieldsFail) {
    auto image = pattern(0x1000, 8);
    put_multiboot_header(image, 0x40, kAddressFields, 0x20'0040, 0x20'0100, 0, 0, 0x20'0100);  // load > header
    EXPECT_NE(error_of(load_multiboot(*memory, image, "", {})).find("before the file's start"), std::string::npos);

    auto beyond = error_of(load_multiboot(*memory, make_aout(0x20'2000, 0), "", {}));
    EXPECT_NE(beyond.find("load_end_addr 0x202000"), std::string::npos) << beyond;

    auto entry = error_of(load_multiboot(*memory, make_aout(0, 0, 0x30'0000), "", {}));
    EXPECT_NE(entry.find("entry_addr 0x300000"), std::string::npos) << entry;

    auto bss = error_of(load_multiboot(*memory, make_aout(0, 0x20'0010), "", {}));
    EXPECT_NE(bss.find("bss_end_addr"), std::string::npos) << bss;

    image = pattern(0x1000, 8);
    put_multiboot_header(image, 0x40, kAddressFields, 0x1'0040, 0x1'0000, 0, 0, 0x1'0080);
    auto overlap = error_of(load_multiboot(*memory, image, "", {}));
    EXPECT_NE(overlap.find("overlaps the multiboot information"), std::string::npos) << overlap;

    image = pattern(0x1000, 8);
    put_multiboot_header(image, 0x40, kAddressFields, 0xf'0040, 0xf'0000, 0, 0, 0xf'0080);
    overlap = error_of(load_multiboot(*memory, image, "", {}));
    EXPECT_NE(overlap.find("BIOS area"), std::string::npos) << overlap;

    image = pattern(0x1000, 8);
    put_multiboot_header(image, 0x40, kAddressFields, 0x2000'0040, 0x2000'0000, 0, 0, 0x2000'0080);
    EXPECT_NE(error_of(load_multiboot(*memory, image, "", {})).find("outside guest RAM"), std::string::npos);

    std::vector<uint8_t> cut(0x50, 0);
    put_multiboot_header(cut, 0x40, kAddressFields);
    cut.resize(0x50);
    EXPECT_NE(error_of(load_multiboot(*memory, cut, "", {})).find("ends before its address fields"), std::string::npos);
}

TEST_F(Multiboot, ModuleThatDoesNotFitIsNamed) {
    std::vector<MultibootModule> modules{{std::vector<uint8_t>(125 * MiB), "env"}};
    auto r = load_multiboot(*memory, make_flat(), "", modules);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("module 0 (env)"), std::string::npos) << r.error().message;
}

// A kernel in low memory: its module goes after the kernel but clear of Strata's multiboot
// information and command line, which would otherwise overwrite it (found by fuzzing).
TEST_F(Multiboot, ModulesOfALowKernelSkipStrataStructures) {
    auto image = pattern(0x1000, 8);
    put_multiboot_header(image, 0x40, kAddressFields | 0x3, 0x1040, 0x1000, 0, 0x2000, 0x1080);
    auto module = pattern(0x10000, 5);
    auto state = load_multiboot(*memory, image, "", {{module, "big"}});
    ASSERT_TRUE(state) << state.error().message;
    uint64_t mods = guest_le(*memory, pc::kMultibootInfo + 24, 4);
    uint64_t start = guest_le(*memory, mods, 4);
    EXPECT_GE(start, pc::kCmdline + pc::kCmdlineMax) << "after the information and the command line";
    EXPECT_EQ(guest_le(*memory, mods + 4, 4), start + module.size());
    EXPECT_EQ(read_guest(*memory, start, module.size()), module) << "intact";
}

// Strata's boot GDT and IDT at 0x500 are as much its own as the multiboot information.
TEST_F(Multiboot, KernelOverTheBootGdtIsRefused) {
    auto image = pattern(0x200, 8);
    put_multiboot_header(image, 0x40, kAddressFields | 0x3, 0x340, 0x300, 0, 0x600, 0x380);
    auto r = error_of(load_multiboot(*memory, image, "", {}));
    EXPECT_NE(r.find("image [0x300, 0x600) overlaps the boot GDT and IDT at [0x500, 0x530)"), std::string::npos) << r;
}

TEST_F(Multiboot, TooManyModuleStringsOverflowTheInfoArea) {
    std::vector<MultibootModule> modules(40, {pattern(1, 1), std::string(2000, 'm')});
    auto r = load_multiboot(*memory, make_flat(), "", modules);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("overflows"), std::string::npos) << r.error().message;
}

TEST_F(Multiboot, OverlongCommandLineFails) {
    auto r = load_multiboot(*memory, make_flat(), std::string(pc::kCmdlineMax, 'x'), {});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("command line"), std::string::npos);
}

TEST(KernelFormat, TellsImagesApartByMagic) {
    EXPECT_EQ(detect_kernel_format(make_flat()), KernelFormat::Multiboot);
    EXPECT_EQ(detect_kernel_format(test::make_bzimage()), KernelFormat::BzImage);
    auto vmlinux = make_elf(true, 62, 0x100'0000, {{.paddr = 0x100'0000, .vaddr = 0, .data = pattern(8, 1), .mem_size = 8}});
    EXPECT_EQ(detect_kernel_format(vmlinux), KernelFormat::ElfVmlinux);
    auto none = detect_kernel_format(std::vector<uint8_t>(100, 0));
    ASSERT_FALSE(none);
    EXPECT_NE(none.error().message.find("neither"), std::string::npos);
}

}  // namespace
}  // namespace strata
