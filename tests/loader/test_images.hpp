// Synthetic kernel images for the loader tests: ELF32/ELF64 executables, bzImages and multiboot
// headers, with the field offsets the tests patch to make them malformed.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "memory/guest_memory.hpp"

namespace strata::test {

inline void put_le(std::vector<uint8_t>& image, size_t offset, uint64_t value, size_t size) {
    if (image.size() < offset + size) image.resize(offset + size);
    for (size_t i = 0; i < size; ++i) image[offset + i] = static_cast<uint8_t>(value >> (8 * i));
}

inline uint64_t get_le(const std::vector<uint8_t>& image, size_t offset, size_t size) {
    uint64_t value = 0;
    for (size_t i = 0; i < size; ++i) value |= uint64_t{image[offset + i]} << (8 * i);
    return value;
}

struct TestSegment {
    uint64_t paddr = 0;
    uint64_t vaddr = 0;
    std::vector<uint8_t> data;
    uint64_t mem_size = 0;  // >= data.size(); the rest is bss
    uint32_t type = 1;      // PT_LOAD
};

// Offsets of the fields tests patch.
constexpr size_t kElf64Phoff = 32, kElf64Phnum = 56, kElf64Phentsize = 54, kElf64HeaderSize = 64, kElf64PhdrSize = 56;
constexpr size_t kElf32HeaderSize = 52, kElf32PhdrSize = 32;
// Within a program header.
constexpr size_t kPhdr64Offset = 8, kPhdr64Paddr = 24, kPhdr64Filesz = 32, kPhdr64Memsz = 40;

// An ET_EXEC image: header, program headers, `gap` spare bytes (room for a multiboot header), then
// each segment's file bytes.
inline std::vector<uint8_t> make_elf(bool elf64, uint16_t machine, uint64_t entry,
                                     const std::vector<TestSegment>& segments, size_t gap = 0) {
    size_t header_size = elf64 ? kElf64HeaderSize : kElf32HeaderSize;
    size_t phdr_size = elf64 ? kElf64PhdrSize : kElf32PhdrSize;
    std::vector<uint8_t> image(header_size + phdr_size * segments.size() + gap);
    image[0] = 0x7f, image[1] = 'E', image[2] = 'L', image[3] = 'F';
    image[4] = elf64 ? 2 : 1;  // class
    image[5] = 1;              // little-endian
    image[6] = 1;              // version
    put_le(image, 16, 2, 2);   // ET_EXEC
    put_le(image, 18, machine, 2);
    put_le(image, 20, 1, 4);
    if (elf64) {
        put_le(image, 24, entry, 8);
        put_le(image, 32, header_size, 8);
        put_le(image, 52, header_size, 2);
        put_le(image, 54, phdr_size, 2);
        put_le(image, 56, segments.size(), 2);
    } else {
        put_le(image, 24, entry, 4);
        put_le(image, 28, header_size, 4);
        put_le(image, 40, header_size, 2);
        put_le(image, 42, phdr_size, 2);
        put_le(image, 44, segments.size(), 2);
    }
    for (size_t i = 0; i < segments.size(); ++i) {
        const auto& s = segments[i];
        size_t ph = header_size + i * phdr_size;
        size_t offset = image.size();
        image.insert(image.end(), s.data.begin(), s.data.end());
        if (elf64) {
            put_le(image, ph + 0, s.type, 4);
            put_le(image, ph + 4, 5, 4);  // R+X
            put_le(image, ph + 8, offset, 8);
            put_le(image, ph + 16, s.vaddr, 8);
            put_le(image, ph + 24, s.paddr, 8);
            put_le(image, ph + 32, s.data.size(), 8);
            put_le(image, ph + 40, s.mem_size, 8);
            put_le(image, ph + 48, 0x1000, 8);
        } else {
            put_le(image, ph + 0, s.type, 4);
            put_le(image, ph + 4, offset, 4);
            put_le(image, ph + 8, s.vaddr, 4);
            put_le(image, ph + 12, s.paddr, 4);
            put_le(image, ph + 16, s.data.size(), 4);
            put_le(image, ph + 20, s.mem_size, 4);
            put_le(image, ph + 24, 5, 4);
            put_le(image, ph + 28, 0x1000, 4);
        }
    }
    return image;
}

inline std::vector<uint8_t> pattern(size_t size, uint8_t seed) {
    std::vector<uint8_t> bytes(size);
    for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(seed + i * 7);
    return bytes;
}

// bzImage setup header offsets (boot.rst).
namespace bz {
constexpr size_t SetupSects = 0x1f1, SysSize = 0x1f4, BootFlag = 0x1fe, Jump = 0x200, Header = 0x202, Version = 0x206,
                 TypeOfLoader = 0x210, LoadFlags = 0x211, Code32Start = 0x214, RamdiskImage = 0x218,
                 RamdiskSize = 0x21c, HeapEndPtr = 0x224, CmdLinePtr = 0x228, InitrdAddrMax = 0x22c,
                 KernelAlignment = 0x230, Relocatable = 0x234, XLoadFlags = 0x236, CmdlineSize = 0x238,
                 PayloadOffset = 0x248, PayloadLength = 0x24c, PrefAddress = 0x258, InitSize = 0x260,
                 HeaderEnd = 0x26c;
// Zero page only.
constexpr size_t AcpiRsdpAddr = 0x070, ExtRamdiskImage = 0x0c0, E820Entries = 0x1e8, E820Table = 0x2d0;
}  // namespace bz

struct BzOptions {
    uint16_t version = 0x020f;
    uint8_t setup_sects = 1;
    bool relocatable = true;
    uint64_t pref_address = 0x100'0000;
    uint32_t init_size = 0x40'0000;
    uint32_t cmdline_size = 255;
    uint32_t initrd_addr_max = 0x7fff'ffff;
    uint16_t xloadflags = 0x1;
    size_t payload_size = 0x3000;
};

// A bzImage: boot sector + `setup_sects` setup sectors, then the protected-mode payload.
inline std::vector<uint8_t> make_bzimage(const BzOptions& o = {}) {
    size_t setup_size = (size_t{o.setup_sects == 0 ? 4u : o.setup_sects} + 1) * 512;
    std::vector<uint8_t> image(setup_size);
    image[bz::SetupSects] = o.setup_sects;
    put_le(image, bz::BootFlag, 0xaa55, 2);
    image[bz::Jump] = 0xeb;
    image[bz::Jump + 1] = static_cast<uint8_t>(bz::HeaderEnd - 0x202);
    put_le(image, bz::Header, 0x53726448, 4);
    put_le(image, bz::Version, o.version, 2);
    image[bz::LoadFlags] = 0x01;  // LOADED_HIGH
    put_le(image, bz::Code32Start, 0x100000, 4);
    put_le(image, bz::InitrdAddrMax, o.initrd_addr_max, 4);
    put_le(image, bz::KernelAlignment, 0x20'0000, 4);
    image[bz::Relocatable] = o.relocatable ? 1 : 0;
    put_le(image, bz::XLoadFlags, o.xloadflags, 2);
    put_le(image, bz::CmdlineSize, o.cmdline_size, 4);
    put_le(image, bz::PrefAddress, o.pref_address, 8);
    put_le(image, bz::InitSize, o.init_size, 4);
    put_le(image, bz::SysSize, static_cast<uint32_t>((o.payload_size + 15) / 16), 4);
    put_le(image, bz::PayloadOffset, 0x100, 4);
    put_le(image, bz::PayloadLength, static_cast<uint32_t>(o.payload_size - 0x100 - 4), 4);
    auto payload = pattern(o.payload_size, 0x11);
    payload.resize((o.payload_size + 15) / 16 * 16);  // build.c pads to whole paragraphs
    image.insert(image.end(), payload.begin(), payload.end());
    return image;
}

// Writes a multiboot header at `offset` (flags bit 16 adds the address fields).
inline void put_multiboot_header(std::vector<uint8_t>& image, size_t offset, uint32_t flags, uint32_t header_addr = 0,
                                 uint32_t load_addr = 0, uint32_t load_end = 0, uint32_t bss_end = 0,
                                 uint32_t entry = 0) {
    put_le(image, offset, 0x1badb002, 4);
    put_le(image, offset + 4, flags, 4);
    put_le(image, offset + 8, static_cast<uint32_t>(0u - 0x1badb002u - flags), 4);
    if (flags & (1u << 16)) {
        put_le(image, offset + 12, header_addr, 4);
        put_le(image, offset + 16, load_addr, 4);
        put_le(image, offset + 20, load_end, 4);
        put_le(image, offset + 24, bss_end, 4);
        put_le(image, offset + 28, entry, 4);
    }
}

// `size` bytes of guest memory at `gpa` (a failed read fails the test).
inline std::vector<uint8_t> read_guest(const GuestMemory& memory, uint64_t gpa, size_t size) {
    std::vector<uint8_t> out(size);
    EXPECT_TRUE(memory.read(gpa, out));
    return out;
}

// The 8-bit sum firmware tables must make zero.
inline uint8_t byte_sum(const std::vector<uint8_t>& bytes) {
    return static_cast<uint8_t>(std::accumulate(bytes.begin(), bytes.end(), 0u));
}

}  // namespace strata::test
