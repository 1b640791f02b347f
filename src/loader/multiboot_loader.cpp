#include "loader/multiboot_loader.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <optional>

#include "base/bytes.hpp"
#include "base/checked.hpp"
#include "loader/boot_cpu.hpp"
#include "loader/elf.hpp"
#include "memory/e820.hpp"
#include "memory/pc_layout.hpp"

namespace strata {

namespace {

constexpr size_t kSearchLimit = 8192;  // §3.1.1: the header lies within the first 8192 bytes
constexpr uint64_t kPageSize = 4 * KiB;
constexpr uint64_t k4GiB = 4 * GiB;

// §3.1.2 header layout; the address fields are valid when flags bit 16 is set.
struct [[gnu::packed]] Header {
    uint32_t magic, flags, checksum;
    uint32_t header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr;
};
static_assert(sizeof(Header) == 32 && offsetof(Header, entry_addr) == 28);
constexpr size_t kHeaderRequiredBytes = 12;  // magic, flags, checksum

namespace header_flags {
constexpr uint32_t PageAlignModules = 1u << 0, MemoryInfo = 1u << 1, VideoMode = 1u << 2, AddressFields = 1u << 16;
constexpr uint32_t Required = 0xffff;  // bits 0-15: the loader must fail when it cannot honour one
constexpr uint32_t Honoured = PageAlignModules | MemoryInfo;
}  // namespace header_flags

// §3.3 boot information, up to and including the framebuffer fields.
struct [[gnu::packed]] Info {
    uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
    uint32_t syms[4];
    uint32_t mmap_length, mmap_addr, drives_length, drives_addr, config_table, boot_loader_name, apm_table;
    uint32_t vbe_control_info, vbe_mode_info;
    uint16_t vbe_mode, vbe_interface_seg, vbe_interface_off, vbe_interface_len;
    uint64_t framebuffer_addr;
    uint32_t framebuffer_pitch, framebuffer_width, framebuffer_height;
    uint8_t framebuffer_bpp, framebuffer_type, color_info[6];
};
static_assert(sizeof(Info) == 116 && offsetof(Info, mmap_length) == 44 && offsetof(Info, boot_loader_name) == 64 &&
              offsetof(Info, framebuffer_addr) == 88);

namespace info_flags {
constexpr uint32_t Memory = 1u << 0, Cmdline = 1u << 2, Modules = 1u << 3, MemoryMap = 1u << 6, LoaderName = 1u << 9;
}

struct [[gnu::packed]] Module {
    uint32_t mod_start, mod_end, string, reserved;
};
static_assert(sizeof(Module) == 16);

// §3.3 "mmap": `size` counts the bytes after itself, so the next entry is at +size+4.
struct [[gnu::packed]] MmapEntry {
    uint32_t size;
    uint64_t base_addr, length;
    uint32_t type;
};
static_assert(sizeof(MmapEntry) == 24);

struct Found {
    size_t offset;
    Header header;  // the address fields are zero when the image ends before them
};

std::optional<Found> find_header(std::span<const uint8_t> image) {
    size_t limit = std::min(image.size(), kSearchLimit);
    for (size_t offset = 0; offset + kHeaderRequiredBytes <= limit; offset += 4) {
        uint32_t magic = static_cast<uint32_t>(load_le(image.subspan(offset, 4)));
        if (magic != kMultibootHeaderMagic) continue;
        uint32_t flags = static_cast<uint32_t>(load_le(image.subspan(offset + 4, 4)));
        uint32_t checksum = static_cast<uint32_t>(load_le(image.subspan(offset + 8, 4)));
        if (static_cast<uint32_t>(magic + flags + checksum) != 0) continue;
        Found found{offset, {}};
        std::array<uint8_t, sizeof(Header)> raw{};
        size_t available = std::min(sizeof(Header), image.size() - offset);
        std::copy_n(image.begin() + static_cast<ptrdiff_t>(offset), available, raw.begin());
        found.header = load_struct<Header>(raw);
        return found;
    }
    return std::nullopt;
}

// Where the kernel went: its entry point and the end of everything it occupies.
struct Loaded {
    uint32_t entry;
    uint64_t end;
};

// What Strata itself occupies below 1 MiB for a multiboot boot. The kernel may use the rest of
// low memory: kvm-unit-tests' realmode test, for one, is linked at 0x8000.
struct LowRange {
    uint64_t start, end;
    const char* what;
};
constexpr LowRange kStrataLowRanges[] = {
    {pc::kBootGdt, pc::kBootTablesEnd, "the boot GDT and IDT"},
    {pc::kMultibootInfo, pc::kMultibootInfoEnd, "the multiboot information"},
    {pc::kCmdline, pc::kCmdline + pc::kCmdlineMax, "the command line"},
    {pc::kMpTable, pc::kKernelLoad, "the EBDA, VGA hole and BIOS area (MP and ACPI tables)"},
};

Result<void> check_placement(uint64_t start, uint64_t end, std::string_view what) {
    for (const auto& range : kStrataLowRanges)
        if (start < range.end && end > range.start)
            return fail("{} [{:#x}, {:#x}) overlaps {} at [{:#x}, {:#x})", what, start, end, range.what, range.start,
                        range.end);
    if (end > k4GiB) return fail("{} [{:#x}, {:#x}) reaches above 4 GiB, beyond a 32-bit entry", what, start, end);
    return {};
}

// §3.1.3 address fields (the "a.out kludge"): the file from header_offset - (header_addr - load_addr)
// is loaded at load_addr up to load_end_addr, then zeroed up to bss_end_addr.
Result<Loaded> load_with_address_fields(const GuestMemory& memory, std::span<const uint8_t> image, const Found& found) {
    const Header& h = found.header;
    if (found.offset + sizeof(Header) > image.size())
        return fail("header at {:#x} sets flags bit 16 but the image ends before its address fields", found.offset);
    if (h.load_addr > h.header_addr || h.header_addr - h.load_addr > found.offset)
        return fail("load_addr {:#x} and header_addr {:#x} put the image start before the file's start (header at "
                    "offset {:#x})", h.load_addr, h.header_addr, found.offset);
    uint64_t file_start = found.offset - (h.header_addr - h.load_addr);
    uint64_t load_size = image.size() - file_start;
    if (h.load_end_addr != 0) {
        if (h.load_end_addr < h.load_addr)
            return fail("load_end_addr {:#x} is below load_addr {:#x}", h.load_end_addr, h.load_addr);
        if (h.load_end_addr - h.load_addr > load_size)
            return fail("load_end_addr {:#x} asks for {:#x} bytes but the file holds {:#x} from offset {:#x}",
                        h.load_end_addr, h.load_end_addr - h.load_addr, load_size, file_start);
        load_size = h.load_end_addr - h.load_addr;
    }
    uint64_t data_end = uint64_t{h.load_addr} + load_size;
    uint64_t end = data_end;
    if (h.bss_end_addr != 0) {
        if (h.bss_end_addr < data_end)
            return fail("bss_end_addr {:#x} is below the end of the loaded data {:#x}", h.bss_end_addr, data_end);
        end = h.bss_end_addr;
    }
    if (auto r = check_placement(h.load_addr, end, "image"); !r) return std::unexpected(r.error());
    if (h.entry_addr < h.load_addr || h.entry_addr >= data_end)
        return fail("entry_addr {:#x} lies outside the loaded image [{:#x}, {:#x})", h.entry_addr, h.load_addr, data_end);
    auto target = memory.translate(h.load_addr, end - h.load_addr);
    if (!target) return fail("image [{:#x}, {:#x}) lies outside guest RAM", h.load_addr, end);
    std::ranges::copy(image.subspan(file_start, load_size), target->begin());
    std::ranges::fill(target->subspan(load_size), uint8_t{0});
    return Loaded{h.entry_addr, end};
}

Result<Loaded> load_elf(const GuestMemory& memory, std::span<const uint8_t> image) {
    auto elf = parse_elf(image);
    if (!elf) return std::unexpected(elf.error());
    for (const auto& s : elf->segments)
        if (auto r = check_placement(s.paddr, s.paddr + s.mem_size, fmt::format("ELF program header {}", s.index)); !r)
            return std::unexpected(r.error());
    if (auto r = load_elf_segments(memory, image, *elf); !r) return std::unexpected(r.error());
    // e_entry is normally physical; a kernel linked high may give a virtual one inside a segment.
    std::optional<uint64_t> entry;
    for (const auto& s : elf->segments) {
        if (elf->entry >= s.paddr && elf->entry - s.paddr < s.file_size) entry = elf->entry;
        else if (!entry && elf->entry >= s.vaddr && elf->entry - s.vaddr < s.file_size) entry = s.paddr + (elf->entry - s.vaddr);
    }
    if (!entry) return fail("ELF entry point {:#x} is outside every loaded segment", elf->entry);
    return Loaded{static_cast<uint32_t>(*entry), elf->load_end};
}

// A bump allocator over [pc::kMultibootInfo, pc::kMultibootInfoEnd).
class InfoArea {
public:
    explicit InfoArea(const GuestMemory& memory) : memory_(memory) {}

    Result<uint32_t> put(std::span<const uint8_t> bytes, std::string_view what) {
        uint64_t addr = align_up(next_, 4);
        if (!range_within(addr - pc::kMultibootInfo, bytes.size(), pc::kMultibootInfoEnd - pc::kMultibootInfo))
            return fail("multiboot information overflows its {} KiB at {:#x} while adding the {}",
                        (pc::kMultibootInfoEnd - pc::kMultibootInfo) / KiB, pc::kMultibootInfo, what);
        if (auto r = memory_.write(addr, bytes); !r) return context(r.error(), what);
        next_ = addr + bytes.size();
        return static_cast<uint32_t>(addr);
    }
    Result<uint32_t> put_string(std::string_view text, std::string_view what) {
        std::vector<uint8_t> bytes(text.begin(), text.end());
        bytes.push_back(0);
        return put(bytes, what);
    }
    template <class T>
    Result<uint32_t> put_objects(const std::vector<T>& objects, std::string_view what) {
        return put(std::span(reinterpret_cast<const uint8_t*>(objects.data()), objects.size() * sizeof(T)), what);
    }

private:
    const GuestMemory& memory_;
    uint64_t next_ = pc::kMultibootInfo + sizeof(Info);  // the Info itself is written last, at the start
};

}  // namespace

bool is_multiboot(std::span<const uint8_t> kernel) { return find_header(kernel).has_value(); }

Result<CpuState> load_multiboot(GuestMemory& memory, std::span<const uint8_t> kernel, std::string_view cmdline,
                                const std::vector<MultibootModule>& modules) {
    auto found = find_header(kernel);
    if (!found)
        return fail("multiboot: no header with magic {:#x} and a valid checksum in the first {} bytes",
                    kMultibootHeaderMagic, kSearchLimit);
    uint32_t flags = found->header.flags;
    uint32_t unsupported = flags & header_flags::Required & ~header_flags::Honoured;
    if (unsupported != 0)
        return fail("multiboot: header flags {:#x} require features Strata cannot provide (bits {:#x}{})", flags,
                    unsupported, unsupported & header_flags::VideoMode ? ", video mode information" : "");

    auto loaded = flags & header_flags::AddressFields ? load_with_address_fields(memory, kernel, *found)
                                                     : load_elf(memory, kernel);
    if (!loaded) return context(loaded.error(), "multiboot");

    Info info{};
    InfoArea area(memory);

    // Memory: §3.3 mem_lower counts KiB from 0 (at most 640), mem_upper KiB from 1 MiB to the first hole.
    uint64_t low_end = memory.regions()[0].gpa + memory.regions()[0].size;
    info.flags |= info_flags::Memory;
    info.mem_lower = static_cast<uint32_t>(kEbdaStart / KiB);
    info.mem_upper = static_cast<uint32_t>((low_end - pc::kKernelLoad) / KiB);

    if (cmdline.find('\0') != std::string_view::npos)
        return fail("multiboot: command line contains a NUL byte at position {}", cmdline.find('\0'));
    if (cmdline.size() >= pc::kCmdlineMax)
        return fail("multiboot: command line of {} bytes is longer than {}", cmdline.size(), pc::kCmdlineMax - 1);
    std::vector<uint8_t> cmdline_bytes(cmdline.begin(), cmdline.end());
    cmdline_bytes.push_back(0);
    if (auto r = memory.write(pc::kCmdline, cmdline_bytes); !r) return context(r.error(), "multiboot: command line");
    info.flags |= info_flags::Cmdline;
    info.cmdline = static_cast<uint32_t>(pc::kCmdline);

    // Modules: page-aligned (flags bit 0) one after another, after the kernel, and clear of
    // Strata's own structures where a kernel in low memory puts them next to those.
    std::vector<Module> list;
    uint64_t cursor = loaded->end;
    for (size_t i = 0; i < modules.size(); ++i) {
        const auto& module = modules[i];
        uint64_t start = align_up(cursor, kPageSize);
        for (const auto& range : kStrataLowRanges)
            if (start < range.end && start + module.data.size() > range.start) start = align_up(range.end, kPageSize);
        auto end = checked_add(start, module.data.size());
        if (!end || *end > k4GiB || !memory.contains(start, module.data.size()))
            return fail("multiboot: module {} ({}) of {} bytes does not fit in guest RAM below 4 GiB at {:#x}", i,
                        module.cmdline, module.data.size(), start);
        if (auto r = memory.write(start, module.data); !r) return context(r.error(), "multiboot: module");
        auto string = area.put_string(module.cmdline, fmt::format("string of module {}", i));
        if (!string) return context(string.error(), "multiboot");
        list.push_back({static_cast<uint32_t>(start), static_cast<uint32_t>(*end), *string, 0});
        cursor = *end;
    }
    info.flags |= info_flags::Modules;
    info.mods_count = static_cast<uint32_t>(list.size());
    if (!list.empty()) {
        auto addr = area.put_objects(list, "module list");
        if (!addr) return context(addr.error(), "multiboot");
        info.mods_addr = *addr;
    }

    std::vector<MmapEntry> mmap;
    for (const auto& entry : build_e820(memory))
        mmap.push_back({sizeof(MmapEntry) - sizeof(uint32_t), entry.addr, entry.size, static_cast<uint32_t>(entry.type)});
    auto mmap_addr = area.put_objects(mmap, "memory map");
    if (!mmap_addr) return context(mmap_addr.error(), "multiboot");
    info.flags |= info_flags::MemoryMap;
    info.mmap_addr = *mmap_addr;
    info.mmap_length = static_cast<uint32_t>(mmap.size() * sizeof(MmapEntry));

    auto name = area.put_string("strata", "boot loader name");
    if (!name) return context(name.error(), "multiboot");
    info.flags |= info_flags::LoaderName;
    info.boot_loader_name = *name;

    if (auto r = memory.write_obj(pc::kMultibootInfo, info); !r) return context(r.error(), "multiboot: information");

    auto state = protected_mode_entry(memory, loaded->entry);
    if (!state) return context(state.error(), "multiboot");
    (*state)[Gpr::Rax] = kMultibootBootloaderMagic;
    (*state)[Gpr::Rbx] = pc::kMultibootInfo;
    return state;
}

}  // namespace strata
