#include "loader/elf.hpp"

#include <algorithm>
#include <bit>
#include <cstddef>

#include "base/bytes.hpp"
#include "base/checked.hpp"

namespace strata {

namespace {

// The on-disk layouts (gABI "ELF Header", "Program Header"). The image is little-endian and so is
// the host, so load_struct() reads the fields directly.
static_assert(std::endian::native == std::endian::little);

struct [[gnu::packed]] Elf32Header {
    uint8_t ident[16];
    uint16_t type, machine;
    uint32_t version, entry, phoff, shoff, flags;
    uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};
static_assert(sizeof(Elf32Header) == 52 && offsetof(Elf32Header, phoff) == 28 && offsetof(Elf32Header, phnum) == 44);

struct [[gnu::packed]] Elf64Header {
    uint8_t ident[16];
    uint16_t type, machine;
    uint32_t version;
    uint64_t entry, phoff, shoff;
    uint32_t flags;
    uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};
static_assert(sizeof(Elf64Header) == 64 && offsetof(Elf64Header, phoff) == 32 && offsetof(Elf64Header, phnum) == 56);

struct [[gnu::packed]] Elf32Phdr {
    uint32_t type, offset, vaddr, paddr, filesz, memsz, flags, align;
};
static_assert(sizeof(Elf32Phdr) == 32 && offsetof(Elf32Phdr, flags) == 24);

struct [[gnu::packed]] Elf64Phdr {
    uint32_t type, flags;
    uint64_t offset, vaddr, paddr, filesz, memsz, align;
};
static_assert(sizeof(Elf64Phdr) == 56 && offsetof(Elf64Phdr, paddr) == 24);

enum class Ident : uint8_t { Class = 4, Data = 5, Version = 6 };
constexpr uint8_t kDataLittleEndian = 1;
constexpr uint16_t kTypeExec = 2;
constexpr uint32_t kPtLoad = 1;
constexpr uint16_t kPnXnum = 0xffff;  // e_phnum escape to section 0's sh_info; not supported

// The fields both classes share, widened to 64 bits.
struct CommonHeader {
    uint16_t type, machine;
    uint64_t entry, phoff;
    uint16_t phentsize, phnum;
};

uint8_t ident(std::span<const uint8_t> image, Ident field) { return image[static_cast<size_t>(field)]; }

Result<CommonHeader> read_header(std::span<const uint8_t> image, ElfClass elf_class) {
    if (elf_class == ElfClass::Elf32) {
        if (image.size() < sizeof(Elf32Header))
            return fail("ELF32 header needs {} bytes but the image has {}", sizeof(Elf32Header), image.size());
        auto h = load_struct<Elf32Header>(image);
        return CommonHeader{h.type, h.machine, h.entry, h.phoff, h.phentsize, h.phnum};
    }
    if (image.size() < sizeof(Elf64Header))
        return fail("ELF64 header needs {} bytes but the image has {}", sizeof(Elf64Header), image.size());
    auto h = load_struct<Elf64Header>(image);
    return CommonHeader{h.type, h.machine, h.entry, h.phoff, h.phentsize, h.phnum};
}

ElfSegment read_segment(std::span<const uint8_t> image, ElfClass elf_class, uint64_t offset, unsigned index,
                        uint32_t& type) {
    if (elf_class == ElfClass::Elf32) {
        auto p = load_struct<Elf32Phdr>(image, offset);
        type = p.type;
        return {index, p.offset, p.filesz, p.memsz, p.paddr, p.vaddr, p.flags};
    }
    auto p = load_struct<Elf64Phdr>(image, offset);
    type = p.type;
    return {index, p.offset, p.filesz, p.memsz, p.paddr, p.vaddr, p.flags};
}

}  // namespace

bool is_elf(std::span<const uint8_t> image) {
    return image.size() >= 4 && image[0] == 0x7f && image[1] == 'E' && image[2] == 'L' && image[3] == 'F';
}

Result<ElfImage> parse_elf(std::span<const uint8_t> image) {
    if (!is_elf(image)) return fail("ELF magic \\x7fELF is missing");
    if (image.size() < 16) return fail("ELF identification is truncated at {} bytes", image.size());

    ElfImage elf;
    uint8_t cls = ident(image, Ident::Class);
    if (cls != 1 && cls != 2) return fail("ELF class {} is neither ELF32 (1) nor ELF64 (2)", cls);
    elf.elf_class = static_cast<ElfClass>(cls);
    if (ident(image, Ident::Data) != kDataLittleEndian)
        return fail("ELF data encoding {} is not little-endian (1)", ident(image, Ident::Data));
    if (ident(image, Ident::Version) != 1) return fail("ELF version {} is not 1", ident(image, Ident::Version));

    auto header = read_header(image, elf.elf_class);
    if (!header) return std::unexpected(header.error());
    if (header->type != kTypeExec) return fail("ELF type {} is not an executable (ET_EXEC = 2)", header->type);
    if (header->machine != static_cast<uint16_t>(ElfMachine::I386) &&
        header->machine != static_cast<uint16_t>(ElfMachine::X86_64))
        return fail("ELF machine {} is not x86 (EM_386 = 3 or EM_X86_64 = 62)", header->machine);
    elf.machine = static_cast<ElfMachine>(header->machine);
    elf.entry = header->entry;

    // The program header table must lie inside the image, entries at least as large as ours.
    size_t phdr_size = elf.elf_class == ElfClass::Elf32 ? sizeof(Elf32Phdr) : sizeof(Elf64Phdr);
    if (header->phnum == 0) return fail("ELF has no program headers (e_phnum is 0)");
    if (header->phnum == kPnXnum) return fail("ELF uses extended program header numbering (e_phnum 0xffff)");
    if (header->phentsize < phdr_size)
        return fail("ELF program header size e_phentsize {} is smaller than {}", header->phentsize, phdr_size);
    auto table_size = checked_mul(header->phnum, header->phentsize);
    if (!table_size || !range_within(header->phoff, *table_size, image.size()))
        return fail("ELF program header table ({} entries of {} bytes at offset {:#x}) lies outside the {}-byte image",
                    header->phnum, header->phentsize, header->phoff, image.size());

    elf.load_start = UINT64_MAX;
    for (unsigned i = 0; i < header->phnum; ++i) {
        uint32_t type = 0;
        ElfSegment segment = read_segment(image, elf.elf_class, header->phoff + uint64_t{i} * header->phentsize, i, type);
        if (type != kPtLoad || segment.mem_size == 0) continue;
        if (segment.file_size > segment.mem_size)
            return fail("ELF program header {}: p_filesz {:#x} exceeds p_memsz {:#x}", i, segment.file_size,
                        segment.mem_size);
        if (!range_within(segment.file_offset, segment.file_size, image.size()))
            return fail("ELF program header {}: file range {:#x}+{:#x} lies outside the {}-byte image", i,
                        segment.file_offset, segment.file_size, image.size());
        auto end = checked_add(segment.paddr, segment.mem_size);
        if (!end) return fail("ELF program header {}: {:#x}+{:#x} wraps around", i, segment.paddr, segment.mem_size);
        elf.load_start = std::min(elf.load_start, segment.paddr);
        elf.load_end = std::max(elf.load_end, *end);
        elf.segments.push_back(segment);
    }
    if (elf.segments.empty()) return fail("ELF has no loadable (PT_LOAD) segment");
    return elf;
}

Result<void> load_elf_segments(const GuestMemory& memory, std::span<const uint8_t> image, const ElfImage& elf) {
    for (const auto& segment : elf.segments) {
        // parse_elf() checked that paddr + mem_size does not wrap and the file range is in the image.
        auto target = memory.translate(segment.paddr, segment.mem_size);
        if (!target)
            return fail("ELF program header {} [{:#x}, {:#x}) lies outside guest RAM", segment.index, segment.paddr,
                        segment.paddr + segment.mem_size);
        auto bytes = image.subspan(segment.file_offset, segment.file_size);
        std::ranges::copy(bytes, target->begin());
        // The bss: memory the segment occupies beyond its file contents reads as zero (gABI "p_memsz").
        std::ranges::fill(target->subspan(segment.file_size), uint8_t{0});
    }
    return {};
}

}  // namespace strata
