// A small ELF parser for the loaders: validates an ELF32 or ELF64 little-endian x86 executable
// against the size of its image and yields its PT_LOAD segments.
//
// State: none; parse_elf() returns a description that refers to the caller's image by offsets.
// Features: ELF32 and ELF64, ET_EXEC, EM_386 and EM_X86_64; every offset and size is checked with
//           overflow-safe arithmetic, so a hostile image yields an error, never an out-of-bounds read.
// Missing: section headers and symbols (multiboot's ELF-symbols flag), ET_DYN (PIE) images,
//          extended program header numbering (e_phnum == PN_XNUM), big-endian images.
// Spec: System V ABI, "ELF header" and "Program header" (gABI 4.1); x86-64 psABI for EM_X86_64.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "memory/guest_memory.hpp"

namespace strata {

enum class ElfClass : uint8_t { Elf32 = 1, Elf64 = 2 };

enum class ElfMachine : uint16_t { I386 = 3, X86_64 = 62 };

// One PT_LOAD program header, already checked against the image.
struct ElfSegment {
    unsigned index = 0;        // position in the program header table, for error messages
    uint64_t file_offset = 0;  // p_offset
    uint64_t file_size = 0;    // p_filesz (<= mem_size)
    uint64_t mem_size = 0;     // p_memsz; the bytes after file_size are bss and read as zero
    uint64_t paddr = 0;        // p_paddr: where a loader without paging puts it
    uint64_t vaddr = 0;        // p_vaddr
    uint32_t flags = 0;        // p_flags (PF_X = 1, PF_W = 2, PF_R = 4)
};

struct ElfImage {
    ElfClass elf_class = ElfClass::Elf64;
    ElfMachine machine = ElfMachine::X86_64;
    uint64_t entry = 0;                 // e_entry
    std::vector<ElfSegment> segments;   // PT_LOAD segments with mem_size > 0, in table order
    uint64_t load_start = 0;            // lowest paddr of the segments
    uint64_t load_end = 0;              // one past the highest paddr + mem_size
};

// True when `image` starts with the ELF magic "\x7fELF".
[[nodiscard]] bool is_elf(std::span<const uint8_t> image);

// Validates the ELF header and program header table and collects the PT_LOAD segments.
// Fails, naming the header field, for truncated images, bad magic, foreign class/endianness/
// machine/type, program headers outside the image, p_filesz > p_memsz, segments that wrap.
[[nodiscard]] Result<ElfImage> parse_elf(std::span<const uint8_t> image);

// Copies every segment of `elf` (parsed from `image`) to guest-physical paddr and zeroes its bss.
// Fails naming the segment when it does not lie inside guest RAM.
[[nodiscard]] Result<void> load_elf_segments(const GuestMemory& memory, std::span<const uint8_t> image,
                                             const ElfImage& elf);

}  // namespace strata
