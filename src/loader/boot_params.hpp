// Linux's x86 "zero page" (struct boot_params) and the setup header inside it, as far as Strata
// fills them. Field offsets follow Documentation/arch/x86/zero-page.rst and boot.rst ("The real-mode
// kernel header"); every one Strata touches is pinned by a static_assert below.
#pragma once

#include <cstddef>
#include <cstdint>

namespace strata::linux_boot {

// setup_header, at offset 0x1f1 of both the bzImage and the zero page (boot.rst).
struct [[gnu::packed]] SetupHeader {
    uint8_t setup_sects;         // 0x1f1: 512-byte sectors of real-mode setup after the boot sector; 0 means 4
    uint16_t root_flags;         // 0x1f2
    uint32_t syssize;            // 0x1f4: protected-mode code size in 16-byte paragraphs
    uint16_t ram_size;           // 0x1f8
    uint16_t vid_mode;           // 0x1fa
    uint16_t root_dev;           // 0x1fc
    uint16_t boot_flag;          // 0x1fe: 0xAA55
    uint16_t jump;               // 0x200: a short jump; its second byte gives the header's end
    uint32_t header;             // 0x202: "HdrS"
    uint16_t version;            // 0x206: boot protocol version, major << 8 | minor
    uint32_t realmode_swtch;     // 0x208
    uint16_t start_sys_seg;      // 0x20c
    uint16_t kernel_version;     // 0x20e
    uint8_t type_of_loader;      // 0x210
    uint8_t loadflags;           // 0x211
    uint16_t setup_move_size;    // 0x212
    uint32_t code32_start;       // 0x214
    uint32_t ramdisk_image;      // 0x218
    uint32_t ramdisk_size;       // 0x21c
    uint32_t bootsect_kludge;    // 0x220
    uint16_t heap_end_ptr;       // 0x224
    uint8_t ext_loader_ver;      // 0x226
    uint8_t ext_loader_type;     // 0x227
    uint32_t cmd_line_ptr;       // 0x228
    uint32_t initrd_addr_max;    // 0x22c: highest address the initrd's last byte may occupy
    uint32_t kernel_alignment;   // 0x230
    uint8_t relocatable_kernel;  // 0x234
    uint8_t min_alignment;       // 0x235
    uint16_t xloadflags;         // 0x236
    uint32_t cmdline_size;       // 0x238: longest command line, without the NUL
    uint32_t hardware_subarch;   // 0x23c
    uint64_t hardware_subarch_data;  // 0x240
    uint32_t payload_offset;     // 0x248
    uint32_t payload_length;     // 0x24c
    uint64_t setup_data;         // 0x250
    uint64_t pref_address;       // 0x258: where a non-relocatable kernel must be loaded
    uint32_t init_size;          // 0x260: linear memory the kernel needs from its start to run
    uint32_t handover_offset;    // 0x264
    uint32_t kernel_info_offset; // 0x268
};
constexpr size_t kSetupHeaderOffset = 0x1f1;
static_assert(sizeof(SetupHeader) == 0x26c - kSetupHeaderOffset);
static_assert(offsetof(SetupHeader, boot_flag) == 0x1fe - kSetupHeaderOffset);
static_assert(offsetof(SetupHeader, header) == 0x202 - kSetupHeaderOffset);
static_assert(offsetof(SetupHeader, type_of_loader) == 0x210 - kSetupHeaderOffset);
static_assert(offsetof(SetupHeader, ramdisk_image) == 0x218 - kSetupHeaderOffset);
static_assert(offsetof(SetupHeader, heap_end_ptr) == 0x224 - kSetupHeaderOffset);
static_assert(offsetof(SetupHeader, cmd_line_ptr) == 0x228 - kSetupHeaderOffset);
static_assert(offsetof(SetupHeader, xloadflags) == 0x236 - kSetupHeaderOffset);
static_assert(offsetof(SetupHeader, cmdline_size) == 0x238 - kSetupHeaderOffset);
static_assert(offsetof(SetupHeader, pref_address) == 0x258 - kSetupHeaderOffset);
static_assert(offsetof(SetupHeader, init_size) == 0x260 - kSetupHeaderOffset);

struct [[gnu::packed]] E820Record {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
};
static_assert(sizeof(E820Record) == 20);

constexpr unsigned kE820MaxEntries = 128;  // E820_MAX_ENTRIES_ZEROPAGE

// struct boot_params: 4 KiB, mostly fields a BIOS-based loader fills and Strata leaves zero.
struct [[gnu::packed]] BootParams {
    uint8_t screen_info[0x40];            // 0x000
    uint8_t apm_bios_info[0x14];          // 0x040
    uint8_t pad2[4];                      // 0x054
    uint64_t tboot_addr;                  // 0x058
    uint8_t ist_info[0x10];               // 0x060
    uint64_t acpi_rsdp_addr;              // 0x070 (protocol 2.14)
    uint8_t pad3[8];                      // 0x078
    uint8_t hd_info[0x20];                // 0x080
    uint8_t sys_desc_table[0x10];         // 0x0a0
    uint8_t olpc_ofw_header[0x10];        // 0x0b0
    uint32_t ext_ramdisk_image;           // 0x0c0: bits 63:32 of ramdisk_image
    uint32_t ext_ramdisk_size;            // 0x0c4
    uint32_t ext_cmd_line_ptr;            // 0x0c8
    uint8_t pad4[0x1e8 - 0xcc];           // 0x0cc .. EDID, EFI info, alt_mem_k, scratch
    uint8_t e820_entries;                 // 0x1e8
    uint8_t eddbuf_entries;               // 0x1e9
    uint8_t edd_mbr_sig_buf_entries;      // 0x1ea
    uint8_t kbd_status;                   // 0x1eb
    uint8_t secure_boot;                  // 0x1ec
    uint8_t pad5[2];                      // 0x1ed
    uint8_t sentinel;                     // 0x1ef: the kernel clears fields a loader forgot when set
    uint8_t pad6[1];                      // 0x1f0
    SetupHeader hdr;                      // 0x1f1
    uint8_t pad7[0x290 - 0x26c];          // 0x26c
    uint32_t edd_mbr_sig_buffer[16];      // 0x290
    E820Record e820_table[kE820MaxEntries];  // 0x2d0
    uint8_t pad8[0x1000 - 0xcd0];         // 0xcd0 .. EDD buffer
};
static_assert(sizeof(BootParams) == 0x1000);
static_assert(offsetof(BootParams, acpi_rsdp_addr) == 0x070);
static_assert(offsetof(BootParams, ext_ramdisk_image) == 0x0c0);
static_assert(offsetof(BootParams, e820_entries) == 0x1e8);
static_assert(offsetof(BootParams, sentinel) == 0x1ef);
static_assert(offsetof(BootParams, hdr) == kSetupHeaderOffset);
static_assert(offsetof(BootParams, e820_table) == 0x2d0);

constexpr uint16_t kBootFlag = 0xaa55;
constexpr uint32_t kHeaderMagic = 0x53726448;  // "HdrS" read little-endian
constexpr uint8_t kTypeOfLoaderUndefined = 0xff;

// loadflags (boot.rst "loadflags").
namespace loadflags {
constexpr uint8_t LoadedHigh = 0x01, KeepSegments = 0x40, CanUseHeap = 0x80;
}
// xloadflags (boot.rst "xloadflags").
namespace xloadflags {
constexpr uint16_t Kernel64 = 0x01, CanBeLoadedAbove4G = 0x02;
}

}  // namespace strata::linux_boot
