#include "loader/linux_loader.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "base/checked.hpp"
#include "loader/acpi_tables.hpp"
#include "loader/boot_cpu.hpp"
#include "loader/kernel_payload.hpp"
#include "loader/test_images.hpp"
#include "memory/e820.hpp"
#include "memory/pc_layout.hpp"

namespace strata {
namespace {

using test::BzOptions;
using test::make_bzimage;
using test::make_elf;
using test::pattern;
using test::put_le;
namespace bz = test::bz;

std::vector<uint8_t> read_guest(const GuestMemory& memory, uint64_t gpa, size_t size) {
    std::vector<uint8_t> out(size);
    EXPECT_TRUE(memory.read(gpa, out));
    return out;
}

uint64_t guest_le(const GuestMemory& memory, uint64_t gpa, size_t size) {
    return test::get_le(read_guest(memory, gpa, size), 0, size);
}

std::string guest_string(const GuestMemory& memory, uint64_t gpa) {
    std::string out;
    for (char c = 0; (c = static_cast<char>(guest_le(memory, gpa + out.size(), 1))) != 0;) out += c;
    return out;
}

std::string error_of(const Result<CpuState>& r) { return r ? std::string("(success)") : r.error().message; }

class LinuxLoader : public ::testing::Test {
protected:
    void SetUp() override {
        auto created = GuestMemory::create(64 * MiB);
        ASSERT_TRUE(created);
        memory = std::make_unique<GuestMemory>(std::move(*created));
    }
    std::unique_ptr<GuestMemory> memory;
};

void expect_64bit_entry(const CpuState& state) {
    EXPECT_TRUE(state.cs.l);
    EXPECT_FALSE(state.cs.db);
    EXPECT_EQ(state.cs.selector, 0x10);
    EXPECT_EQ(state.ds.selector, 0x18);
    EXPECT_EQ(state.ss.selector, 0x18);
    EXPECT_EQ(state.es.selector, 0x18);
    EXPECT_EQ(state[Gpr::Rsi], pc::kZeroPage);
    EXPECT_EQ(state[Gpr::Rsp], pc::kBootStack);
    EXPECT_EQ(state.rflags, 0x2u) << "interrupts must be off";
    EXPECT_TRUE(state.cr0 & cr0::PE);
    EXPECT_TRUE(state.cr0 & cr0::PG);
    EXPECT_TRUE(state.cr4 & cr4::PAE);
    EXPECT_TRUE(state.efer & efer::LME);
    EXPECT_TRUE(state.efer & efer::LMA);
    EXPECT_EQ(state.cr3, pc::kPml4);
    EXPECT_EQ(state.gdt.base, pc::kBootGdt);
    EXPECT_EQ(state.gdt.limit, 0x1f);
}

TEST_F(LinuxLoader, BzImageLandsAtOneMiBWithA64BitEntry) {
    auto image = make_bzimage();
    auto initrd = pattern(0x5000, 9);
    auto state = load_linux(*memory, image, initrd, "console=ttyS0 root=/dev/vda", kAcpiRsdpAddress);
    ASSERT_TRUE(state) << state.error().message;
    expect_64bit_entry(*state);
    EXPECT_EQ(state->rip, 0x100200u);
    // The protected-mode part (after 2 x 512 bytes of setup) is at 1 MiB.
    EXPECT_EQ(read_guest(*memory, pc::kKernelLoad, 0x3000), std::vector<uint8_t>(image.begin() + 1024, image.end()));

    // The zero page: the image's setup header plus what the loader fills in.
    EXPECT_EQ(guest_le(*memory, pc::kZeroPage + bz::BootFlag, 2), 0xaa55u);
    EXPECT_EQ(guest_le(*memory, pc::kZeroPage + bz::Header, 4), 0x53726448u);
    EXPECT_EQ(guest_le(*memory, pc::kZeroPage + bz::Version, 2), 0x020fu);
    EXPECT_EQ(guest_le(*memory, pc::kZeroPage + bz::TypeOfLoader, 1), 0xffu);
    EXPECT_EQ(guest_le(*memory, pc::kZeroPage + bz::LoadFlags, 1), 0x81u) << "LOADED_HIGH | CAN_USE_HEAP";
    EXPECT_EQ(guest_le(*memory, pc::kZeroPage + bz::HeapEndPtr, 2), 0xfe00u);
    EXPECT_EQ(guest_le(*memory, pc::kZeroPage + bz::CmdLinePtr, 4), pc::kCmdline);
    EXPECT_EQ(guest_string(*memory, pc::kCmdline), "console=ttyS0 root=/dev/vda");
    EXPECT_EQ(guest_le(*memory, pc::kZeroPage + bz::AcpiRsdpAddr, 8), kAcpiRsdpAddress);

    // The initrd: page-aligned, as high as the 64 MiB of RAM allow, intact.
    uint64_t initrd_addr = guest_le(*memory, pc::kZeroPage + bz::RamdiskImage, 4);
    EXPECT_EQ(guest_le(*memory, pc::kZeroPage + bz::RamdiskSize, 4), initrd.size());
    EXPECT_EQ(initrd_addr % 4096, 0u);
    EXPECT_LE(initrd_addr + initrd.size(), 64 * MiB);
    EXPECT_GT(initrd_addr + initrd.size() + 4096, 64 * MiB);
    EXPECT_EQ(read_guest(*memory, initrd_addr, initrd.size()), initrd);
    EXPECT_EQ(guest_le(*memory, pc::kZeroPage + bz::ExtRamdiskImage, 4), 0u);

    // The e820 map is build_e820's.
    auto map = build_e820(*memory);
    ASSERT_EQ(guest_le(*memory, pc::kZeroPage + bz::E820Entries, 1), map.size());
    for (size_t i = 0; i < map.size(); ++i) {
        uint64_t entry = pc::kZeroPage + bz::E820Table + i * 20;
        EXPECT_EQ(guest_le(*memory, entry, 8), map[i].addr);
        EXPECT_EQ(guest_le(*memory, entry + 8, 8), map[i].size);
        EXPECT_EQ(guest_le(*memory, entry + 16, 4), static_cast<uint32_t>(map[i].type));
    }
}

TEST_F(LinuxLoader, EntryStateHasGdtAndIdentityPaging) {
    auto state = load_linux(*memory, make_bzimage(), {}, "");
    ASSERT_TRUE(state) << state.error().message;
    EXPECT_EQ(guest_le(*memory, pc::kBootGdt + 0x10, 8), gdt_descriptor(state->cs));
    EXPECT_EQ(guest_le(*memory, pc::kBootGdt + 0x18, 8), gdt_descriptor(state->ds));
    EXPECT_EQ(gdt_descriptor(flat_code64()), 0x00af'9b00'0000'ffffu);  // the classic 64-bit code descriptor
    EXPECT_EQ(gdt_descriptor(flat_data(0x18)), 0x00cf'9300'0000'ffffu);
    EXPECT_EQ(guest_le(*memory, pc::kPml4, 8), pc::kPdpt | 3);
    EXPECT_EQ(guest_le(*memory, pc::kPdpt + 3 * 8, 8), (pc::kPageDirectories + 3 * 4096) | 3);
    // The 2 MiB page at 3 GiB + 2 MiB: directory 3, entry 1.
    EXPECT_EQ(guest_le(*memory, pc::kPageDirectories + 3 * 4096 + 8, 8), (3 * GiB + 2 * MiB) | 0x83);
    EXPECT_EQ(guest_string(*memory, pc::kCmdline), "");
    EXPECT_EQ(guest_le(*memory, pc::kZeroPage + bz::RamdiskImage, 4), 0u) << "no initrd, no ramdisk fields";
}

TEST_F(LinuxLoader, NonRelocatableKernelGoesToPrefAddress) {
    auto state = load_linux(*memory, make_bzimage({.relocatable = false, .pref_address = 0x200'0000}), {}, "");
    ASSERT_TRUE(state) << state.error().message;
    EXPECT_EQ(state->rip, 0x200'0200u);
    EXPECT_EQ(guest_le(*memory, 0x200'0000, 1), 0x11u);
    EXPECT_EQ(guest_le(*memory, pc::kZeroPage + bz::Code32Start, 4), 0x200'0000u);
}

TEST_F(LinuxLoader, SetupSectsZeroMeansFour) {
    auto state = load_linux(*memory, make_bzimage({.setup_sects = 0}), {}, "");
    ASSERT_TRUE(state) << state.error().message;
    EXPECT_EQ(guest_le(*memory, pc::kKernelLoad, 1), 0x11u) << "payload starts after 5 sectors";
}

TEST_F(LinuxLoader, InitrdStaysBelowInitrdAddrMax) {
    auto initrd = pattern(0x1800, 4);
    auto state = load_linux(*memory, make_bzimage({.initrd_addr_max = 0x1ff'ffff}), initrd, "");
    ASSERT_TRUE(state) << state.error().message;
    uint64_t addr = guest_le(*memory, pc::kZeroPage + bz::RamdiskImage, 4);
    EXPECT_EQ(addr, 0x200'0000u - 0x2000);
}

TEST_F(LinuxLoader, RejectsBadBzImages) {
    auto image = make_bzimage();
    put_le(image, bz::Header, 0x12345678, 4);
    EXPECT_NE(error_of(load_linux(*memory, image, {}, "")).find("bzImage: setup header magic is 0x12345678 not HdrS"),
              std::string::npos);

    auto old = error_of(load_linux(*memory, make_bzimage({.version = 0x020b}), {}, ""));
    EXPECT_NE(old.find("boot protocol 2.11 is older than 2.12"), std::string::npos) << old;

    auto no64 = error_of(load_linux(*memory, make_bzimage({.xloadflags = 0}), {}, ""));
    EXPECT_NE(no64.find("XLF_KERNEL_64"), std::string::npos) << no64;

    image = make_bzimage();
    image[bz::LoadFlags] = 0;
    EXPECT_NE(error_of(load_linux(*memory, image, {}, "")).find("LOADED_HIGH"), std::string::npos);

    image = make_bzimage();
    put_le(image, bz::KernelAlignment, 0x30'0000, 4);
    EXPECT_NE(error_of(load_linux(*memory, image, {}, "")).find("power of two"), std::string::npos);

    auto low = error_of(load_linux(*memory, make_bzimage({.relocatable = false, .pref_address = 0x8000}), {}, ""));
    EXPECT_NE(low.find("below"), std::string::npos) << low;
}

TEST_F(LinuxLoader, TruncatedBzImagesFailNamingThePart) {
    auto image = make_bzimage();
    for (size_t size : {size_t{0x1ff}, size_t{0x200}, size_t{0x204}, size_t{0x26b}, size_t{1024}}) {
        auto r = load_linux(*memory, std::span(image).first(size), {}, "");
        ASSERT_FALSE(r) << "truncated at " << size;
        EXPECT_NE(r.error().message.find(size < 0x200 ? "neither" : "bzImage"), std::string::npos)
            << size << ": " << r.error().message;
    }
    image[0x201] = 0x10;  // header claims to end at 0x212, before the 2.12 fields
    EXPECT_NE(error_of(load_linux(*memory, image, {}, "")).find("before the protocol 2.12 fields"), std::string::npos);
}

// Every size the header states is checked against the file (syssize, payload, init_size).
TEST_F(LinuxLoader, HeaderSizesMustFitTheFile) {
    auto image = make_bzimage();
    ASSERT_TRUE(load_linux(*memory, image, {}, ""));

    auto short_by_one_paragraph = std::span(image).first(image.size() - 16);
    auto truncated = error_of(load_linux(*memory, short_by_one_paragraph, {}, ""));
    EXPECT_NE(truncated.find("syssize states a 12288-byte protected-mode kernel"), std::string::npos) << truncated;
    EXPECT_NE(truncated.find("truncated"), std::string::npos) << truncated;

    auto zero = image;
    put_le(zero, bz::SysSize, 0, 4);
    EXPECT_NE(error_of(load_linux(*memory, zero, {}, "")).find("0-byte protected-mode kernel, which ends before"),
              std::string::npos);
    auto tiny = image;
    put_le(tiny, bz::SysSize, 0x20, 4);  // 512 bytes: the 64-bit entry at +0x200 lies beyond it
    EXPECT_NE(error_of(load_linux(*memory, tiny, {}, "")).find("512-byte protected-mode kernel, which ends before its "
                                                               "64-bit entry"),
              std::string::npos);

    auto huge = image;
    put_le(huge, bz::SysSize, 0xffff'ffff, 4);  // 64 GiB: no wrap in the size arithmetic
    EXPECT_NE(error_of(load_linux(*memory, huge, {}, "")).find("68719476720-byte"), std::string::npos);

    auto payload = image;
    put_le(payload, bz::PayloadOffset, 0xffff'ff00, 4);
    put_le(payload, bz::PayloadLength, 0x200, 4);
    auto outside = error_of(load_linux(*memory, payload, {}, ""));
    EXPECT_NE(outside.find("payload of 512 bytes at offset 0xffffff00 lies outside"), std::string::npos) << outside;

    auto small_init = error_of(load_linux(*memory, make_bzimage({.init_size = 0x1000}), {}, ""));
    EXPECT_NE(small_init.find("init_size 0x1000 is smaller"), std::string::npos) << small_init;

    // Bytes after the syssize kernel (a signature) are not loaded.
    auto signed_image = image;
    signed_image.resize(image.size() + 0x800, 0xee);
    ASSERT_TRUE(load_linux(*memory, signed_image, {}, ""));
    EXPECT_EQ(read_guest(*memory, pc::kKernelLoad + 0x3000, 16), std::vector<uint8_t>(16, 0));
}

// What the image carries in the loader's own fields does not reach the kernel (found by fuzzing):
// no initrd means no ramdisk, and setup_data is 0 since Strata passes none.
TEST_F(LinuxLoader, LoaderFieldsOfTheImageAreNotPassedOn) {
    auto image = make_bzimage();
    put_le(image, bz::RamdiskImage, 0x1234'5000, 4);
    put_le(image, bz::RamdiskSize, 0xffff'0000, 4);
    put_le(image, 0x250, 0x1234'5000, 8);  // setup_data
    ASSERT_TRUE(load_linux(*memory, image, {}, ""));
    auto zero_page = read_guest(*memory, pc::kZeroPage, 4096);
    EXPECT_EQ(test::get_le(zero_page, bz::RamdiskImage, 4), 0u);
    EXPECT_EQ(test::get_le(zero_page, bz::RamdiskSize, 4), 0u);
    EXPECT_EQ(test::get_le(zero_page, 0x250, 8), 0u);
}

// A pref_address near 2^64: the message states sizes and addresses, never a wrapped range.
TEST_F(LinuxLoader, AddressesNearTheTopAreReportedUnwrapped) {
    auto r = error_of(load_linux(*memory, make_bzimage({.pref_address = 0xffff'ffff'ffff'f000}), {}, ""));
    EXPECT_NE(r.find("init_size 0x400000 bytes at 0xfffffffffffff000"), std::string::npos) << r;
}

TEST_F(LinuxLoader, KernelThatNeedsMoreThanRamFails) {
    auto r = load_linux(*memory, make_bzimage({.init_size = 0x800'0000}), {}, "");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("init_size"), std::string::npos) << r.error().message;
}

TEST_F(LinuxLoader, CommandLineLongerThanCmdlineSizeFails) {
    std::string ok(255, 'x');
    EXPECT_TRUE(load_linux(*memory, make_bzimage(), {}, ok));
    auto r = load_linux(*memory, make_bzimage(), {}, ok + "y");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("command line of 256 bytes"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("cmdline_size"), std::string::npos);
    EXPECT_FALSE(load_linux(*memory, make_bzimage(), {}, std::string_view("a\0b", 3)));
}

TEST_F(LinuxLoader, InitrdTooLargeFails) {
    std::vector<uint8_t> initrd(62 * MiB);
    auto r = load_linux(*memory, make_bzimage(), initrd, "");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("initrd of 65011712 bytes (62 MiB) does not fit"), std::string::npos)
        << r.error().message;
}

TEST_F(LinuxLoader, UnknownFormatIsNamed) {
    std::vector<uint8_t> junk(4096, 0x90);
    auto r = load_linux(*memory, junk, {}, "");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("neither a bzImage"), std::string::npos) << r.error().message;
}

std::vector<uint8_t> make_vmlinux(uint64_t entry) {
    return make_elf(true, 62, entry,
                    {{.paddr = 0x100'0000, .vaddr = 0xffff'ffff'8100'0000, .data = pattern(0x2000, 5), .mem_size = 0x3000}});
}

TEST_F(LinuxLoader, VmlinuxLoadsAtPhysicalAddressesWithSynthesizedHeader) {
    auto initrd = pattern(0x1000, 6);
    auto state = load_linux(*memory, make_vmlinux(0x100'0000), initrd, "quiet");
    ASSERT_TRUE(state) << state.error().message;
    expect_64bit_entry(*state);
    EXPECT_EQ(state->rip, 0x100'0000u);
    EXPECT_EQ(read_guest(*memory, 0x100'0000, 0x2000), pattern(0x2000, 5));
    EXPECT_EQ(guest_le(*memory, pc::kZeroPage + bz::BootFlag, 2), 0xaa55u);
    EXPECT_EQ(guest_le(*memory, pc::kZeroPage + bz::Header, 4), 0x53726448u);
    EXPECT_EQ(guest_le(*memory, pc::kZeroPage + bz::Version, 2), 0x020fu);
    EXPECT_EQ(guest_le(*memory, pc::kZeroPage + bz::TypeOfLoader, 1), 0xffu);
    EXPECT_EQ(guest_string(*memory, guest_le(*memory, pc::kZeroPage + bz::CmdLinePtr, 4)), "quiet");
    uint64_t initrd_addr = guest_le(*memory, pc::kZeroPage + bz::RamdiskImage, 4);
    EXPECT_GE(initrd_addr, 0x100'3000u);
    EXPECT_EQ(read_guest(*memory, initrd_addr, initrd.size()), initrd);
}

TEST_F(LinuxLoader, VmlinuxVirtualEntryIsConvertedToPhysical) {
    auto state = load_linux(*memory, make_vmlinux(0xffff'ffff'8100'0040), {}, "");
    ASSERT_TRUE(state) << state.error().message;
    EXPECT_EQ(state->rip, 0x100'0040u);
}

TEST_F(LinuxLoader, RejectsBadVmlinux) {
    auto outside = error_of(load_linux(*memory, make_vmlinux(0x200'0000), {}, ""));
    EXPECT_NE(outside.find("vmlinux: entry point 0x2000000"), std::string::npos) << outside;

    auto elf32 = make_elf(false, 3, 0x100'0000, {{.paddr = 0x100'0000, .vaddr = 0x100'0000, .data = pattern(16, 1), .mem_size = 16}});
    EXPECT_NE(error_of(load_linux(*memory, elf32, {}, "")).find("not ELF64 x86-64"), std::string::npos);

    auto low = make_elf(true, 62, 0x1000, {{.paddr = 0x1000, .vaddr = 0x1000, .data = pattern(16, 1), .mem_size = 16}});
    EXPECT_NE(error_of(load_linux(*memory, low, {}, "")).find("boot structures"), std::string::npos);

    auto high = make_elf(true, 62, 0x1000'0000,
                         {{.paddr = 0x1000'0000, .vaddr = 0x1000'0000, .data = pattern(16, 1), .mem_size = 16}});
    auto r = error_of(load_linux(*memory, high, {}, ""));
    EXPECT_NE(r.find("vmlinux: ELF program header 0 [0x10000000, 0x10000010) lies outside guest RAM"), std::string::npos)
        << r;
}

// A real kernel, when the machine has one: STRATA_TEST_KERNEL or /boot/vmlinuz-*.
TEST(LinuxLoaderRealKernel, LoadsAHostKernel) {
    std::string path;
    if (const char* env = std::getenv("STRATA_TEST_KERNEL")) path = env;
    std::error_code ec;
    if (path.empty() && std::filesystem::is_directory("/boot", ec))
        for (const auto& entry : std::filesystem::directory_iterator("/boot", ec))
            if (entry.path().filename().string().starts_with("vmlinuz-")) path = entry.path();
    if (path.empty()) GTEST_SKIP() << "no kernel: set STRATA_TEST_KERNEL or install one in /boot";
    std::ifstream file(path, std::ios::binary);
    std::vector<uint8_t> kernel((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    if (kernel.empty()) GTEST_SKIP() << path << " is not readable";
    auto memory = GuestMemory::create(512 * MiB);
    ASSERT_TRUE(memory);
    auto state = load_linux(*memory, kernel, pattern(1 * MiB, 3), "console=ttyS0");
    ASSERT_TRUE(state) << path << ": " << state.error().message;
    EXPECT_TRUE(state->efer & efer::LMA);
    EXPECT_GE(state->rip, pc::kKernelLoad);

    // Its LZ4 payload unpacked on the host: the ELF vmlinux runs from its physical entry
    // (startup_64 at LOAD_PHYSICAL_ADDR) instead of the decompressor at code32_start + 0x200.
    uint32_t payload_offset = static_cast<uint32_t>(test::get_le(kernel, 0x248, 4));
    size_t setup_size = ((kernel[0x1f1] == 0 ? 4u : kernel[0x1f1]) + 1u) * 512u;
    if (setup_size + payload_offset + 4 <= kernel.size() &&
        payload_format(std::span(kernel).subspan(setup_size + payload_offset)) == PayloadFormat::Lz4Legacy) {
        auto unpacked = load_linux(*memory, kernel, pattern(1 * MiB, 3), "console=ttyS0", 0, KernelUnpack::Host);
        ASSERT_TRUE(unpacked) << path << ": " << unpacked.error().message;
        EXPECT_EQ(unpacked->rip, guest_le(*memory, pc::kZeroPage + 0x214, 4)) << "code32_start is the ELF's start";
        EXPECT_EQ(unpacked->rip % (2 * MiB), 0u) << "startup_64 sits at the start of the 2 MiB-aligned kernel";
        EXPECT_NE(unpacked->rip, state->rip);
        EXPECT_EQ(guest_le(*memory, pc::kZeroPage + 0x202, 4), 0x53726448u) << "the bzImage's header is passed on";
    }

    // Its first 100,000 bytes are a truncated kernel, refused before anything runs.
    auto truncated = load_linux(*memory, std::span(kernel).first(100'000), {}, "console=ttyS0");
    ASSERT_FALSE(truncated);
    EXPECT_NE(truncated.error().message.find("truncated"), std::string::npos) << truncated.error().message;
}

}  // namespace
}  // namespace strata
