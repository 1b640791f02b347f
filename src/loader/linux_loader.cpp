#include "loader/linux_loader.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "base/bytes.hpp"
#include "base/checked.hpp"
#include "loader/boot_cpu.hpp"
#include "loader/boot_params.hpp"
#include "loader/elf.hpp"
#include "loader/kernel_payload.hpp"
#include "memory/e820.hpp"
#include "memory/pc_layout.hpp"

namespace strata {

namespace {

using namespace linux_boot;

constexpr uint64_t kPageSize = 4 * KiB;
constexpr size_t kSectorSize = 512;
constexpr size_t kHeaderEndBase = 0x202;       // the header ends at 0x202 + the byte at 0x201
constexpr size_t kHeaderFields212 = 0x268;     // the header of protocol 2.12 reaches this far
constexpr uint16_t kMinimumVersion = 0x020c;   // 2.12: xloadflags, the 64-bit entry
constexpr uint16_t kVmlinuxVersion = 0x020f;   // what a synthesized header claims
constexpr uint64_t kEntry64Offset = 0x200;     // 64-bit entry: load address + 0x200 (boot.rst)
constexpr uint16_t kHeapEnd = 0xfe00;          // end of the setup heap relative to the real-mode code
constexpr uint64_t kKernelVirtualBase = 0xffff'ffff'8000'0000;  // __START_KERNEL_map

uint64_t low_ram_end(const GuestMemory& memory) {
    return memory.regions().empty() ? 0 : memory.regions()[0].gpa + memory.regions()[0].size;
}

std::string mib(uint64_t bytes) { return fmt::format("{} bytes ({} MiB)", bytes, align_up(bytes, MiB) / MiB); }

// Writes the command line to pc::kCmdline; `limit` is the kernel's cmdline_size (without NUL).
Result<void> place_cmdline(const GuestMemory& memory, BootParams& params, std::string_view cmdline, uint64_t limit) {
    if (cmdline.find('\0') != std::string_view::npos)
        return fail("kernel command line contains a NUL byte at position {}", cmdline.find('\0'));
    limit = std::min(limit, pc::kCmdlineMax - 1);
    if (cmdline.size() > limit)
        return fail("kernel command line of {} bytes is longer than the {} bytes the kernel accepts (cmdline_size)",
                    cmdline.size(), limit);
    std::vector<uint8_t> bytes(cmdline.begin(), cmdline.end());
    bytes.push_back(0);
    if (auto r = memory.write(pc::kCmdline, bytes); !r) return context(r.error(), "kernel command line");
    params.hdr.cmd_line_ptr = static_cast<uint32_t>(pc::kCmdline);
    params.ext_cmd_line_ptr = static_cast<uint32_t>(pc::kCmdline >> 32);
    return {};
}

// Puts the initrd page-aligned as high as possible below `limit` (exclusive) and at or above
// `kernel_end`, as boot.rst recommends (the kernel unpacks it in place and frees it later).
Result<void> place_initrd(const GuestMemory& memory, BootParams& params, std::span<const uint8_t> initrd,
                          uint64_t kernel_end, uint64_t limit) {
    if (initrd.empty()) return {};
    uint64_t size = initrd.size();
    if (size > limit || align_up(kernel_end, kPageSize) > ((limit - size) & ~(kPageSize - 1)))
        return fail("initrd of {} does not fit between the kernel's end {:#x} and {:#x}", mib(size), kernel_end,
                    limit);
    uint64_t addr = (limit - size) & ~(kPageSize - 1);
    if (auto r = memory.write(addr, initrd); !r) return context(r.error(), "initrd");
    params.hdr.ramdisk_image = static_cast<uint32_t>(addr);
    params.hdr.ramdisk_size = static_cast<uint32_t>(size);
    params.ext_ramdisk_image = static_cast<uint32_t>(addr >> 32);
    params.ext_ramdisk_size = static_cast<uint32_t>(size >> 32);
    return {};
}

// What both image formats share: loader identity, command line, initrd, memory map, RSDP, and the
// 64-bit entry state.
Result<CpuState> finish(GuestMemory& memory, BootParams& params, std::span<const uint8_t> initrd,
                        std::string_view cmdline, uint64_t kernel_end, uint64_t entry, uint64_t acpi_rsdp_addr) {
    // The fields boot.rst marks "write" are the boot loader's: whatever the image carries in them
    // is not the kernel's to see (a stale ramdisk or a setup_data pointer into garbage).
    params.hdr.type_of_loader = kTypeOfLoaderUndefined;
    params.hdr.ext_loader_ver = 0;
    params.hdr.ext_loader_type = 0;
    params.hdr.ramdisk_image = params.hdr.ramdisk_size = 0;
    params.ext_ramdisk_image = params.ext_ramdisk_size = 0;
    params.hdr.setup_data = 0;
    // CAN_USE_HEAP with heap_end_ptr: harmless for the 64-bit entry and expected by setup code.
    params.hdr.loadflags = static_cast<uint8_t>(params.hdr.loadflags | loadflags::CanUseHeap);
    params.hdr.heap_end_ptr = kHeapEnd;
    if (auto r = place_cmdline(memory, params, cmdline, params.hdr.cmdline_size); !r) return std::unexpected(r.error());

    uint64_t initrd_limit = std::min(uint64_t{params.hdr.initrd_addr_max} + 1, low_ram_end(memory));
    if (auto r = place_initrd(memory, params, initrd, kernel_end, initrd_limit); !r) return std::unexpected(r.error());

    auto map = build_e820(memory);
    if (map.size() > kE820MaxEntries) return fail("e820 map of {} entries exceeds the zero page's {}", map.size(), kE820MaxEntries);
    for (size_t i = 0; i < map.size(); ++i)
        params.e820_table[i] = {map[i].addr, map[i].size, static_cast<uint32_t>(map[i].type)};
    params.e820_entries = static_cast<uint8_t>(map.size());
    params.acpi_rsdp_addr = acpi_rsdp_addr;

    if (auto r = memory.write_obj(pc::kZeroPage, params); !r) return context(r.error(), "zero page");
    return long_mode_entry(memory, entry, pc::kZeroPage);
}

Result<CpuState> load_vmlinux(GuestMemory& memory, std::span<const uint8_t> image, std::span<const uint8_t> initrd,
                              std::string_view cmdline, uint64_t acpi_rsdp_addr, const BootParams* header);

Result<CpuState> load_bzimage(GuestMemory& memory, std::span<const uint8_t> image, std::span<const uint8_t> initrd,
                              std::string_view cmdline, uint64_t acpi_rsdp_addr, KernelUnpack unpack) {
    if (image.size() < kHeaderEndBase + 4)
        return fail("image of {} bytes ends before the setup header magic at 0x202", image.size());
    uint32_t magic = static_cast<uint32_t>(load_le(image.subspan(kHeaderEndBase, 4)));
    if (magic != kHeaderMagic) return fail("setup header magic is {:#010x} not HdrS ({:#010x})", magic, kHeaderMagic);

    // The header's length is in the jump instruction at 0x200 (boot.rst "Details of header fields").
    size_t header_end = kHeaderEndBase + image[0x201];
    if (image.size() < header_end)
        return fail("setup header ends at {:#x} but the image has only {} bytes", header_end, image.size());
    std::array<uint8_t, sizeof(BootParams)> raw{};
    size_t copy_end = std::min(header_end, kSetupHeaderOffset + sizeof(SetupHeader));
    std::copy(image.begin() + kSetupHeaderOffset, image.begin() + static_cast<ptrdiff_t>(copy_end),
              raw.begin() + kSetupHeaderOffset);
    auto params = load_struct<BootParams>(raw);
    const SetupHeader& hdr = params.hdr;

    if (hdr.version < kMinimumVersion)
        return fail("boot protocol {}.{:02} is older than 2.12, which the 64-bit entry needs", hdr.version >> 8,
                    hdr.version & 0xff);
    if (header_end < kHeaderFields212)
        return fail("setup header ends at {:#x}, before the protocol 2.12 fields end at {:#x}", header_end,
                    kHeaderFields212);
    if (!(hdr.xloadflags & xloadflags::Kernel64)) return fail("xloadflags {:#x} lacks XLF_KERNEL_64: no 64-bit entry", hdr.xloadflags);
    if (!(hdr.loadflags & loadflags::LoadedHigh))
        return fail("loadflags {:#x} lacks LOADED_HIGH: a zImage for 0x10000 is not supported", hdr.loadflags);

    // The image is the setup sectors, then the protected-mode kernel of syssize paragraphs
    // (arch/x86/boot/tools/build.c pads it to exactly that); anything after it (a signature) is not
    // the kernel's. Every size the header states must fit the file.
    uint64_t setup_sects = hdr.setup_sects == 0 ? 4 : hdr.setup_sects;
    uint64_t setup_size = (setup_sects + 1) * kSectorSize;
    if (setup_size >= image.size())
        return fail("{} setup sectors ({} bytes) leave no protected-mode kernel in the {}-byte image", setup_sects,
                    setup_size, image.size());
    uint64_t kernel_size = uint64_t{hdr.syssize} * 16;
    if (kernel_size <= kEntry64Offset)
        return fail("syssize states a {}-byte protected-mode kernel, which ends before its 64-bit entry at offset {:#x}",
                    kernel_size, kEntry64Offset);
    if (kernel_size > image.size() - setup_size)
        return fail("syssize states a {}-byte protected-mode kernel after {} setup bytes, but the image has only {} "
                    "bytes after them (truncated?)",
                    kernel_size, setup_size, image.size() - setup_size);
    auto kernel = image.subspan(setup_size, kernel_size);
    if (!range_within(hdr.payload_offset, hdr.payload_length, kernel_size))
        return fail("payload of {} bytes at offset {:#x} lies outside the {}-byte protected-mode kernel",
                    hdr.payload_length, hdr.payload_offset, kernel_size);
    if (hdr.init_size < kernel_size)
        return fail("init_size {:#x} is smaller than the {:#x}-byte protected-mode kernel it must hold", hdr.init_size,
                    kernel_size);
    auto payload = kernel.subspan(hdr.payload_offset, hdr.payload_length);
    if (unpack == KernelUnpack::Host && payload_format(payload) == PayloadFormat::Lz4Legacy) {
        auto vmlinux = unpack_lz4_legacy(payload, low_ram_end(memory));
        if (!vmlinux) return std::unexpected(vmlinux.error());
        auto state = load_vmlinux(memory, *vmlinux, initrd, cmdline, acpi_rsdp_addr, &params);
        return state ? state : context(state.error(), "unpacked payload");
    }

    // A relocatable kernel may sit anywhere suitably aligned; its decompressor then runs from
    // max(align_up(load, kernel_alignment), pref_address) (= LOAD_PHYSICAL_ADDR) and needs init_size
    // bytes there (arch/x86/boot/compressed/head_64.S). A fixed one must be at pref_address.
    uint64_t load = pc::kKernelLoad;
    uint64_t runtime = hdr.pref_address;
    if (hdr.relocatable_kernel) {
        uint64_t align = hdr.kernel_alignment;
        if (align == 0 || (align & (align - 1)) != 0)
            return fail("kernel_alignment {:#x} is not a power of two", align);
        runtime = std::max(align_up(load, align), hdr.pref_address);
    } else {
        if (hdr.pref_address < pc::kKernelLoad)
            return fail("non-relocatable kernel wants pref_address {:#x}, below Strata's boot area end {:#x}",
                        hdr.pref_address, pc::kKernelLoad);
        load = hdr.pref_address;
        runtime = load;
    }
    auto load_end = checked_add(load, kernel.size());
    auto runtime_end = checked_add(runtime, hdr.init_size);
    if (!load_end || !runtime_end || !memory.contains(load, kernel.size()) || !memory.contains(runtime, hdr.init_size))
        return fail("kernel needs {:#x} bytes at {:#x} and init_size {:#x} bytes at {:#x}, but guest RAM ends at {:#x}",
                    kernel.size(), load, hdr.init_size, runtime, low_ram_end(memory));
    if (auto r = memory.write(load, kernel); !r) return context(r.error(), "protected-mode kernel");
    params.hdr.code32_start = static_cast<uint32_t>(load);

    return finish(memory, params, initrd, cmdline, std::max(*load_end, *runtime_end), load + kEntry64Offset,
                  acpi_rsdp_addr);
}

// `header`: the setup header of the bzImage this vmlinux was unpacked from, if it was.
Result<CpuState> load_vmlinux(GuestMemory& memory, std::span<const uint8_t> image, std::span<const uint8_t> initrd,
                              std::string_view cmdline, uint64_t acpi_rsdp_addr, const BootParams* header) {
    auto elf = parse_elf(image);
    if (!elf) return std::unexpected(elf.error());
    if (elf->elf_class != ElfClass::Elf64 || elf->machine != ElfMachine::X86_64)
        return fail("ELF image is not ELF64 x86-64 (a 32-bit multiboot kernel needs the multiboot loader)");
    for (const auto& segment : elf->segments)
        if (segment.paddr < pc::kKernelLoad)
            return fail("ELF program header {} [{:#x}, {:#x}) overlaps Strata's boot structures below {:#x}",
                        segment.index, segment.paddr, segment.paddr + segment.mem_size, pc::kKernelLoad);
    if (auto r = load_elf_segments(memory, image, *elf); !r) return std::unexpected(r.error());

    // x86-64 vmlinux has a physical e_entry (phys_startup_64); accept a virtual one too.
    uint64_t entry = elf->entry >= kKernelVirtualBase ? elf->entry - kKernelVirtualBase : elf->entry;
    bool inside = std::ranges::any_of(elf->segments, [&](const ElfSegment& s) {
        return entry >= s.paddr && entry - s.paddr < s.file_size;
    });
    if (!inside) return fail("entry point {:#x} (e_entry {:#x}) is outside every loaded segment", entry, elf->entry);

    if (header) {
        // The bzImage's own header, as its decompressor would have handed it on; the kernel's
        // room is init_size from where it runs, as on the guest path.
        BootParams params = *header;
        params.hdr.code32_start = static_cast<uint32_t>(elf->load_start);
        uint64_t end = std::max(elf->load_end, elf->load_start + params.hdr.init_size);
        return finish(memory, params, initrd, cmdline, end, entry, acpi_rsdp_addr);
    }
    // No setup code to copy a header from: synthesize the fields the kernel reads (boot.rst).
    BootParams params{};
    params.hdr.boot_flag = kBootFlag;
    params.hdr.header = kHeaderMagic;
    params.hdr.version = kVmlinuxVersion;
    params.hdr.loadflags = loadflags::LoadedHigh;
    params.hdr.cmdline_size = static_cast<uint32_t>(pc::kCmdlineMax - 1);
    params.hdr.initrd_addr_max = 0xffff'ffff;  // the 32-bit ramdisk fields are the limit
    params.hdr.kernel_alignment = 2 * MiB;
    params.hdr.code32_start = static_cast<uint32_t>(elf->load_start);
    return finish(memory, params, initrd, cmdline, elf->load_end, entry, acpi_rsdp_addr);
}

}  // namespace

bool is_bzimage(std::span<const uint8_t> kernel) {
    if (kernel.size() >= kHeaderEndBase + 4 && load_le(kernel.subspan(kHeaderEndBase, 4)) == kHeaderMagic) return true;
    return kernel.size() >= 0x200 && load_le(kernel.subspan(0x1fe, 2)) == kBootFlag;
}

Result<CpuState> load_linux(GuestMemory& memory, std::span<const uint8_t> kernel, std::span<const uint8_t> initrd,
                            std::string_view cmdline, uint64_t acpi_rsdp_addr, KernelUnpack unpack) {
    if (is_elf(kernel)) {
        auto state = load_vmlinux(memory, kernel, initrd, cmdline, acpi_rsdp_addr, nullptr);
        return state ? state : context(state.error(), "vmlinux");
    }
    if (is_bzimage(kernel)) {
        auto state = load_bzimage(memory, kernel, initrd, cmdline, acpi_rsdp_addr, unpack);
        return state ? state : context(state.error(), "bzImage");
    }
    return fail("kernel: image of {} bytes is neither a bzImage (no \"HdrS\" at 0x202, no 0xAA55 at 0x1fe) nor an "
                "ELF vmlinux (no \\x7fELF magic)",
                kernel.size());
}

}  // namespace strata
