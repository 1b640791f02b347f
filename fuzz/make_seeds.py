#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets to fuzz/corpus/<target>/.

Usage: python3 fuzz/make_seeds.py

The seeds are committed; run this again only when a loader's idea of a valid image changes. Each
seed is small (a few KiB at most) and valid or nearly so, so that the fuzzer starts from inputs that
get past the magic numbers. The images follow the layouts of tests/loader/test_images.hpp; the
option bytes at the end of the loader and virtqueue seeds are described in each target's header
comment.
"""
import os
import shutil
import struct

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def pattern(size, seed):
    return bytes((seed + i * 7) & 0xFF for i in range(size))


def put(image, offset, fmt, value):
    size = struct.calcsize(fmt)
    if len(image) < offset + size:
        image.extend(bytes(offset + size - len(image)))
    image[offset:offset + size] = struct.pack(fmt, value)


# --- ELF (gABI): header, program headers, `gap` spare bytes, then each segment's file bytes ---

def elf(elf64, machine, entry, segments, gap=0):
    """segments: (type, paddr, vaddr, data, mem_size)"""
    header_size, phdr_size = (64, 56) if elf64 else (52, 32)
    image = bytearray(header_size + phdr_size * len(segments) + gap)
    image[0:7] = b"\x7fELF" + bytes([2 if elf64 else 1, 1, 1])
    put(image, 16, "<H", 2)  # ET_EXEC
    put(image, 18, "<H", machine)
    put(image, 20, "<I", 1)
    if elf64:
        put(image, 24, "<Q", entry)
        put(image, 32, "<Q", header_size)
        put(image, 52, "<H", header_size)
        put(image, 54, "<H", phdr_size)
        put(image, 56, "<H", len(segments))
    else:
        put(image, 24, "<I", entry)
        put(image, 28, "<I", header_size)
        put(image, 40, "<H", header_size)
        put(image, 42, "<H", phdr_size)
        put(image, 44, "<H", len(segments))
    for i, (ptype, paddr, vaddr, data, mem_size) in enumerate(segments):
        ph = header_size + i * phdr_size
        offset = len(image)
        image.extend(data)
        if elf64:
            image[ph:ph + 56] = struct.pack("<IIQQQQQQ", ptype, 5, offset, vaddr, paddr, len(data), mem_size, 0x1000)
        else:
            image[ph:ph + 32] = struct.pack("<IIIIIIII", ptype, offset, vaddr, paddr, len(data), mem_size, 5, 0x1000)
    return image


EM_386, EM_X86_64, PT_LOAD, PT_NOTE = 3, 62, 1, 4


# --- bzImage (Linux Documentation/arch/x86/boot.rst, "The real-mode kernel header") ---

def bzimage(version=0x020F, setup_sects=1, relocatable=True, pref_address=0x40_0000, init_size=0x10_0000,
            cmdline_size=255, initrd_addr_max=0x7FFF_FFFF, xloadflags=1, payload_size=0x400, payload_offset=0x100,
            payload_length=0x2FC, boot_flag=True, header_end=0x26C):
    setup_size = ((setup_sects or 4) + 1) * 512
    image = bytearray(setup_size)
    image[0x1F1] = setup_sects
    if boot_flag:
        put(image, 0x1FE, "<H", 0xAA55)
    image[0x200] = 0xEB
    image[0x201] = header_end - 0x202
    put(image, 0x202, "<I", 0x53726448)  # "HdrS"
    put(image, 0x206, "<H", version)
    image[0x211] = 0x01  # LOADED_HIGH
    put(image, 0x214, "<I", 0x100000)
    put(image, 0x22C, "<I", initrd_addr_max)
    put(image, 0x230, "<I", 0x20_0000)
    image[0x234] = 1 if relocatable else 0
    put(image, 0x236, "<H", xloadflags)
    put(image, 0x238, "<I", cmdline_size)
    put(image, 0x258, "<Q", pref_address)
    put(image, 0x260, "<I", init_size)
    paragraphs = (payload_size + 15) // 16
    put(image, 0x1F4, "<I", paragraphs)  # syssize
    put(image, 0x248, "<I", payload_offset)
    put(image, 0x24C, "<I", payload_length)
    image.extend(pattern(paragraphs * 16, 0x11))
    return image


def linux_options(initrd_size=0, cmdline_length=0, longer=False, nul=False, rsdp=False):
    """linux_boot_checks.hpp: initrd size / 16, command line length, flags."""
    return struct.pack("<HHB", initrd_size // 16, cmdline_length, longer | nul << 1 | rsdp << 2)


# --- multiboot v1 (Multiboot Specification 0.6.96 §3.1) ---

def multiboot_header(image, offset, flags, header_addr=0, load_addr=0, load_end=0, bss_end=0, entry=0):
    put(image, offset, "<I", 0x1BADB002)
    put(image, offset + 4, "<I", flags)
    put(image, offset + 8, "<I", (-(0x1BADB002 + flags)) & 0xFFFFFFFF)
    if flags & (1 << 16):
        image[offset + 12:offset + 32] = struct.pack("<IIIII", header_addr, load_addr, load_end, bss_end, entry)


def multiboot_options(cmdline_length=0, module_size=0, module_string=0, modules=0, longer=False, nul=False):
    """multiboot_fuzz.cpp: command line length, module size, module string length, count, flags."""
    return struct.pack("<HHHBB", cmdline_length, module_size, module_string, modules, longer | nul << 1)


def flat(flags=0, paddr=0x40_0000, elf64=False):
    """Like a kvm-unit-tests .flat: ELF32 (or ELF64) with a multiboot header after the program header."""
    image = elf(elf64, EM_X86_64 if elf64 else EM_386, paddr + 0x10,
                [(PT_LOAD, paddr, paddr, pattern(0x300, 7), 0x1000)], gap=16)
    multiboot_header(image, (64 + 56) if elf64 else (52 + 32), flags)
    return image


def aout(load_end=0, bss_end=0x20_3000, entry=0x20_0080, header_offset=0x40, size=0x600):
    image = bytearray(pattern(size, 8))
    multiboot_header(image, header_offset, 0x10003, 0x20_0000 + header_offset, 0x20_0000, load_end, bss_end, entry)
    return image


# --- virtio-pci transport: guest page 0 (a ring), then 12-byte register operations of
# virtio_pci_fuzz.cpp (kind, width code, offset, value) ---
def virtio_pci_ops(ops):
    return b"".join(struct.pack("<BBHQ", kind, width, offset, value) for kind, width, offset, value in ops)


def virtio_pci_driver():
    page = bytearray(4096)
    # One device-writable 64-byte descriptor at 0x000, avail ring at 0x100 (idx 1), used at 0x200.
    page[0x000:0x010] = struct.pack("<QIHH", 0x800, 64, 2, 0)
    page[0x100:0x106] = struct.pack("<HHH", 0, 1, 0)
    BYTE, WORD, DWORD, QWORD = 0, 1, 2, 3  # width codes
    ops = [(0, BYTE, 0x14, 1), (0, BYTE, 0x14, 3), (0, DWORD, 0x08, 1), (0, DWORD, 0x0c, 1),
           (0, BYTE, 0x14, 11), (0, WORD, 0x16, 0), (0, WORD, 0x18, 8), (0, QWORD, 0x20, 0x000),
           (0, QWORD, 0x28, 0x100), (0, QWORD, 0x30, 0x200), (0, WORD, 0x1c, 1), (0, BYTE, 0x14, 15),
           (0, WORD, 0x3000, 0), (1, BYTE, 0x1000, 0)]
    return bytes(page) + virtio_pci_ops(ops)


# --- split virtqueue (virtio 1.2 §2.7): rings, descriptors and tables in the guest's first bytes,
# then the 36 option bytes of virtqueue_fuzz.cpp ---

VQ_DESC, VQ_AVAIL, VQ_USED, VQ_TABLE, VQ_BUFFERS = 0x0, 0x400, 0x800, 0xC00, 0x1000
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4


def virtqueue(descs, heads, size=8, tables=(), avail_flags=0, used_event=0, event_idx=False, indirect=False,
              raw_size=None, desc_addr=VQ_DESC, avail_addr=VQ_AVAIL, used_addr=VQ_USED, avail_idx=None, capacity=0,
              max_bytes=0, more=0):
    """descs: {index: (addr, len, flags, next)}; heads: the available ring's entries; tables:
    [(address, {index: descriptor})] for indirect tables."""
    image = bytearray(VQ_BUFFERS)

    def descriptor(at, value):
        if at + 16 <= len(image):
            image[at:at + 16] = struct.pack("<QIHH", *value)

    for index, value in descs.items():
        descriptor(desc_addr + 16 * index, value)
    for address, entries in tables:
        for index, value in entries.items():
            descriptor(address + 16 * index, value)
    ring_size = raw_size if raw_size is not None else size
    if avail_addr + 6 + 2 * len(heads) <= len(image):
        put(image, avail_addr, "<H", avail_flags)
        for i, head in enumerate(heads):
            put(image, avail_addr + 4 + 2 * (i % max(ring_size, 1)), "<H", head)
        if avail_addr + 6 + 2 * ring_size <= len(image):
            put(image, avail_addr + 4 + 2 * ring_size, "<H", used_event)
    mode = (size.bit_length() - 1) | event_idx << 4 | indirect << 5 | (raw_size is not None) << 6
    options = struct.pack("<BHQQQHBIH", mode, raw_size or 0, desc_addr, avail_addr, used_addr,
                          len(heads) if avail_idx is None else avail_idx, capacity, max_bytes, more)
    return bytes(image) + options


def buffer(n):
    return VQ_BUFFERS + 0x100 * n


# --- virtio-net (virtio_net_fuzz.cpp): guest [0, 0x2000) with both rings, a features byte, then
# 3-byte operations (kind, u16 argument) ---
NET_RX, NET_TX, NET_DATA = 0x000, 0x800, 0x1000
NOTIFY_TX, NOTIFY_RX, INJECT, RESTART = 0, 1, 2, 3


def virtio_net(tx_chains=(), rx_buffers=(), features=0, ops=(), tables=()):
    """tx_chains: [[(addr, len, flags)]] made available on transmitq; rx_buffers: [(addr, len)] on
    receiveq; tables: [(address, [(addr, len, flags)])] for indirect ones; data: {addr: bytes}."""
    image = bytearray(0x2000)

    def chain(ring, descriptors, first):
        for i, (addr, length, flags) in enumerate(descriptors):
            more = F_NEXT if i + 1 < len(descriptors) and not flags & F_INDIRECT else 0
            image[ring + 16 * (first + i):ring + 16 * (first + i) + 16] = struct.pack(
                "<QIHH", addr, length, flags | more, first + i + 1)
        return first

    def make_available(ring, heads):
        put(image, ring + 0x200 + 2, "<H", len(heads))
        for i, head in enumerate(heads):
            put(image, ring + 0x200 + 4 + 2 * i, "<H", head)

    heads, next_descriptor = [], 0
    for descriptors in tx_chains:
        heads.append(chain(NET_TX, descriptors, next_descriptor))
        next_descriptor += len(descriptors)
    make_available(NET_TX, heads)
    for address, entries in tables:
        for i, (addr, length, flags) in enumerate(entries):
            more = F_NEXT if i + 1 < len(entries) else 0
            image[address + 16 * i:address + 16 * i + 16] = struct.pack("<QIHH", addr, length, flags | more, i + 1)
    make_available(NET_RX, [chain(NET_RX, [(addr, length, F_WRITE)], i) for i, (addr, length) in enumerate(rx_buffers)])
    return bytes(image), bytes([features]) + b"".join(struct.pack("<BH", kind, arg) for kind, arg in ops)


def net_header(flags=0, gso=0, csum_start=0, csum_offset=0):
    return struct.pack("<BBHHHHH", flags, gso, 0, 0, csum_start, csum_offset, 0)


def net_frame(length):
    return b"\xff" * 6 + b"\x52\x54\x00\x12\x34\x56" + b"\x08\x00" + pattern(length - 14, 3)


def net_seed(image_and_options, data):
    image, options = image_and_options
    image = bytearray(image)
    for address, contents in data.items():
        image[address:address + len(contents)] = contents
    return bytes(image) + options


# --- virtio_blk_fuzz.cpp: an option byte, then guest pages 0-1 with a 16-entry queue (table 0x0,
# available ring 0x100, used ring 0x200) and requests from 0x1000 ---

BLK_HEADERS, BLK_DATA, BLK_STATUS = 0x1000, 0x1400, 0x1F00


def virtio_blk(requests, options=0b0110):
    """requests: [(type, sector, [(length, device_writable)])]: each a chain of header, data
    segments and a status byte, one after the other in the table."""
    page = bytearray(8192)
    index = 0
    data = BLK_DATA
    heads = []
    for number, (rtype, sector, segments) in enumerate(requests):
        header = BLK_HEADERS + 16 * number
        page[header:header + 16] = struct.pack("<IIQ", rtype, 0, sector)
        parts = [(header, 16, False)]
        for length, writable in segments:
            parts.append((data, length, writable))
            if not writable:
                page[data:data + length] = pattern(length, number)[:max(0, len(page) - data)]
            data += length
        parts.append((BLK_STATUS + number, 1, True))
        heads.append(index)
        for i, (address, length, writable) in enumerate(parts):
            last = i == len(parts) - 1
            flags = (0 if last else F_NEXT) | (F_WRITE if writable else 0)
            page[16 * index:16 * index + 16] = struct.pack("<QIHH", address, length, flags, 0 if last else index + 1)
            index += 1
    put(page, 0x100 + 2, "<H", len(heads))
    for i, head in enumerate(heads):
        put(page, 0x100 + 4 + 2 * i, "<H", head)
    return bytes([options]) + bytes(page)


# --- vsock_muxer_fuzz.cpp: operations (kind byte, operands) ---
VS_REQUEST, VS_RESPONSE, VS_RST, VS_SHUTDOWN, VS_RW, VS_CREDIT_UPDATE, VS_CREDIT_REQUEST = range(1, 8)


def vs_packet(op, guest_port=0, host_port=0, data=b"", buf_alloc=0x4000, fwd_cnt=0, flags=0, shape=0, length=None):
    length = len(data) if length is None else length
    return (struct.pack("<BBBBBHHIIB", 0, shape, op, guest_port, host_port, length, len(data), buf_alloc, fwd_cnt,
                        flags) + data)


def vs_rx(room=4096):
    return struct.pack("<BH", 1, room)


def vs_connect(line):
    return struct.pack("<BB", 2, len(line)) + line


def vs_write(socket, data):
    return struct.pack("<BBB", 3, socket, len(data)) + data


def vs_read(socket, what=0):
    return struct.pack("<BBB", 4, socket, what)


VS_DISPATCH = bytes([5])
VS_FIRST_HOST_PORT = 2  # host port code of the first host-initiated connection (2^30)


def seeds():
    kernel = 0x20_0000  # everything fits the targets' 16 MiB of guest RAM (fuzz_support.hpp)
    yield "bzimage", {
        "relocatable": bzimage() + linux_options(initrd_size=0x1000, cmdline_length=24),
        "fixed-address": bzimage(relocatable=False, pref_address=0x20_0000) + linux_options(cmdline_length=8),
        "setup-sects-0": bzimage(setup_sects=0, version=0x020C) + linux_options(initrd_size=0x100, rsdp=True),
        "hdrs-only": bzimage(boot_flag=False, init_size=0x1000) + linux_options(),
        "cmdline-too-long": bzimage(cmdline_size=16) + linux_options(cmdline_length=17),
        "initrd-no-room": bzimage(initrd_addr_max=0x10_0000) + linux_options(initrd_size=0x2000),
        "old-protocol": bzimage(version=0x020B) + linux_options(),
        # The 64-bit entry is at 0x200 into the protected-mode kernel; this one is just long enough.
        "small-kernel": bzimage(payload_size=0x210, payload_offset=0x10, payload_length=0x100) + linux_options(),
    }
    yield "vmlinux", {
        "one-segment": elf(True, EM_X86_64, kernel, [(PT_LOAD, kernel, kernel, pattern(0x200, 1), 0x1000)])
        + linux_options(initrd_size=0x800, cmdline_length=32),
        "virtual-entry": elf(True, EM_X86_64, 0xFFFF_FFFF_8000_0000 + kernel + 0x40,
                             [(PT_LOAD, kernel, 0xFFFF_FFFF_8000_0000 + kernel, pattern(0x100, 2), 0x100),
                              (PT_NOTE, 0, 0, pattern(0x20, 3), 0x20),
                              (PT_LOAD, kernel + 0x20_0000, 0xFFFF_FFFF_8000_0000 + kernel + 0x20_0000,
                               pattern(0x80, 4), 0x2000)])
        + linux_options(cmdline_length=0x100, rsdp=True),
        "below-1mib": elf(True, EM_X86_64, 0x8_0000, [(PT_LOAD, 0x8_0000, 0x8_0000, pattern(0x40, 5), 0x40)])
        + linux_options(),
        "elf32": elf(False, EM_386, kernel, [(PT_LOAD, kernel, kernel, pattern(0x40, 6), 0x40)]) + linux_options(),
    }
    yield "elf", {
        "elf64": elf(True, EM_X86_64, kernel, [(PT_LOAD, kernel, kernel, pattern(0x200, 1), 0x1000)]),
        "elf32-bss": elf(False, EM_386, 0x40_0010, [(PT_LOAD, 0x40_0000, 0x40_0000, pattern(0x180, 2), 0x3000),
                                                   (PT_LOAD, 0x40_4000, 0x40_4000, pattern(0x40, 3), 0x40)]),
        "note-and-empty": elf(True, EM_X86_64, kernel, [(PT_NOTE, 0, 0, pattern(0x10, 4), 0x10),
                                                       (PT_LOAD, 0x80_0000, 0x80_0000, b"", 0),
                                                       (PT_LOAD, kernel, kernel, pattern(0x20, 5), 0x20)]),
        "outside-ram": elf(True, EM_X86_64, 0x1_0000_0000,
                           [(PT_LOAD, 0x1_0000_0000, 0x1_0000_0000, pattern(0x20, 6), 0x20)]),
    }
    yield "multiboot", {
        "elf32-flat": flat() + multiboot_options(cmdline_length=9, module_size=0x123, module_string=9, modules=2),
        "elf32-flags3": flat(flags=3) + multiboot_options(cmdline_length=0x40),
        "elf32-low": flat(paddr=0x8000) + multiboot_options(module_size=0x10, modules=1),
        "elf64": flat(elf64=True) + multiboot_options(cmdline_length=4, module_size=0x20, module_string=4, modules=1),
        "video-mode": flat(flags=4) + multiboot_options(),
        "aout-kludge": aout() + multiboot_options(cmdline_length=12, module_size=0x80, module_string=6, modules=3),
        "aout-load-end": aout(load_end=0x20_0400, bss_end=0) + multiboot_options(cmdline_length=1),
    }
    yield "virtqueue", {
        "single": virtqueue({0: (buffer(0), 64, 0, 0)}, [0]),
        "read-write-chain": virtqueue({3: (buffer(0), 16, F_NEXT, 7), 7: (buffer(1), 512, F_NEXT | F_WRITE, 1),
                                       1: (buffer(3), 1, F_WRITE, 0), 2: (buffer(4), 8, F_WRITE, 0)}, [3, 2]),
        "indirect": virtqueue({2: (VQ_TABLE, 48, F_INDIRECT | F_WRITE, 0)}, [2], indirect=True,
                              tables=[(VQ_TABLE, {0: (buffer(0), 16, F_NEXT, 2), 2: (buffer(1), 256, F_NEXT | F_WRITE, 1),
                                                  1: (buffer(4), 1, F_WRITE, 0)})]),
        "direct-then-indirect": virtqueue({0: (buffer(0), 16, F_NEXT, 4), 4: (VQ_TABLE, 32, F_INDIRECT, 0)}, [0],
                                          indirect=True, tables=[(VQ_TABLE, {0: (buffer(1), 64, F_NEXT, 1),
                                                                             1: (buffer(2), 8, F_WRITE, 0)})]),
        "event-idx": virtqueue({i: (buffer(i), 32, F_WRITE, 0) for i in range(4)}, [0, 1, 2, 3], event_idx=True,
                               used_event=1, more=2),
        "no-interrupt": virtqueue({0: (buffer(0), 8, F_WRITE, 0), 1: (buffer(1), 8, 0, 0)}, [0, 1], avail_flags=1),
        "full-ring": virtqueue({i: (buffer(i), 16, F_WRITE if i % 2 else 0, 0) for i in range(8)}, list(range(8)),
                               more=4),
        "zero-length": virtqueue({0: (0xDEAD_0000_0000, 0, F_NEXT, 1), 1: (buffer(0), 8, F_WRITE, 0)}, [0]),
        "limits": virtqueue({0: (buffer(0), 100, F_NEXT, 1), 1: (buffer(1), 100, F_NEXT | F_WRITE, 2),
                             2: (buffer(2), 100, F_WRITE, 0)}, [0], capacity=2, max_bytes=250),
        "big-queue": virtqueue({0: (buffer(0), 16, 0, 0)}, [0], size=32, used_addr=0x900),
        "self-loop": virtqueue({0: (buffer(0), 8, F_NEXT, 0)}, [0]),
        "two-cycle": virtqueue({0: (buffer(0), 8, F_NEXT, 1), 1: (buffer(1), 8, F_NEXT, 0)}, [1]),
        "indirect-loop": virtqueue({0: (VQ_TABLE, 64, F_INDIRECT, 0)}, [0], indirect=True,
                                   tables=[(VQ_TABLE, {0: (buffer(0), 8, F_NEXT, 1), 1: (buffer(1), 8, F_NEXT, 2),
                                                       2: (buffer(2), 8, F_NEXT, 1)})]),
        "nested-indirect": virtqueue({0: (VQ_TABLE, 32, F_INDIRECT, 0)}, [0], indirect=True,
                                     tables=[(VQ_TABLE, {0: (buffer(0), 8, F_NEXT, 1),
                                                         1: (VQ_TABLE + 0x100, 16, F_INDIRECT, 0)})]),
        "indirect-bad-length": virtqueue({0: (VQ_TABLE, 20, F_INDIRECT, 0)}, [0], indirect=True),
        "next-out-of-range": virtqueue({5: (buffer(0), 8, F_NEXT, 300)}, [5]),
        "head-out-of-range": virtqueue({}, [8]),
        "readable-after-writable": virtqueue({0: (buffer(0), 8, F_NEXT | F_WRITE, 1), 1: (buffer(1), 8, 0, 0)}, [0]),
        "outside-ram": virtqueue({0: (0xFFFF_FFFF_FFFF_FFF0, 0x20, F_NEXT, 1), 1: (0x100_0000 - 4, 8, 0, 0)}, [0]),
        "idx-too-far": virtqueue({i: (buffer(i), 8, 0, 0) for i in range(8)}, list(range(8)), avail_idx=9),
        "bad-size": virtqueue({0: (buffer(0), 8, 0, 0)}, [0], raw_size=3),
        "unaligned-used": virtqueue({0: (buffer(0), 8, 0, 0)}, [0], used_addr=VQ_USED + 2),
    }
    yield "virtio_pci", {
        "driver-ok-and-notify": virtio_pci_driver(),
        "registers-only": bytes(4096) + virtio_pci_ops([(2, 2, 0x04, 0x6), (0, 1, 0x14, 1), (1, 3, 0x00, 0),
                                                        (0, 2, 0x16, 5), (0, 2, 0x1a, 7), (3, 2, 0x40, 0)]),
    }
    frame = net_frame(60)
    rx = [(0x4000 + 0x800 * i, 1526) for i in range(4)]
    yield "virtio_net", {
        "transmit-and-receive": net_seed(virtio_net(
            [[(NET_DATA, 12, 0), (NET_DATA + 12, 60, 0)]], rx,
            ops=[(NOTIFY_TX, 0), (INJECT, 100), (NOTIFY_RX, 0), (INJECT, 60)]),
            {NET_DATA: net_header() + frame}),
        "checksum": net_seed(virtio_net([[(NET_DATA, 72, 0)]], rx, features=1, ops=[(NOTIFY_TX, 0)]),
                             {NET_DATA: net_header(1, 0, 34, 6) + frame}),
        "indirect-and-event-idx": net_seed(virtio_net(
            [[(0x1800, 32, F_INDIRECT)]], rx, features=6,
            ops=[(NOTIFY_TX, 0), (INJECT, 1514), (NOTIFY_RX, 0)],
            tables=[(0x1800, [(NET_DATA, 12, 0), (NET_DATA + 12, 60, 0)])]),
            {NET_DATA: net_header() + frame}),
        "backlog-and-restart": net_seed(virtio_net(
            [[(NET_DATA, 72, 0)], [(NET_DATA, 8, 0)]], rx[:1],
            ops=[(INJECT, 60)] * 5 + [(NOTIFY_RX, 0), (NOTIFY_TX, 0), (RESTART, 0), (INJECT, 60), (NOTIFY_RX, 0)]),
            {NET_DATA: net_header(0, 1) + frame}),
        "mergeable-buffers": net_seed(virtio_net(
            [], [(0x4000 + 0x800 * i, 600) for i in range(4)], features=8 | 16,
            ops=[(INJECT, 1514), (INJECT, 1000), (NOTIFY_RX, 0), (INJECT, 60)]), {}),
    }
    yield "parse_net_option", {name: text.encode() for name, text in {
        "user": "user", "forward": "user,hostfwd=tcp::8080-:80",
        "forwards-and-mac": "user,hostfwd=udp:0.0.0.0:5353-10.0.2.20:53,hostfwd=::2222-:22,mac=52:54:00:ab:cd:01",
        "tap": "tap,ifname=tap0", "tap-mac": "tap,ifname=strata%d,mac=02:00:00:00:00:01",
        "bad-port": "user,hostfwd=tcp::65536-:80", "bad-address": "user,hostfwd=tcp:1.2.3.04:1-:1",
        "multicast": "user,mac=33:33:00:00:00:01", "comma": "tap,ifname=a,,b", "ipv4": "192.168.100.255",
        "user-mtu": "user,mtu=9000,hostfwd=tcp::80-:80",
    }.items()}
    # api_request: a method byte (0 GET, 1 PUT, 2 POST, 3 DELETE; 0xff: the first line is the method),
    # then path, Content-Type and body, a line each.
    yield "api_request", {name: bytes([method]) + text.encode() for name, (method, text) in {
        "info": (0, "/v1/vm\n\n"), "pause": (1, "/v1/vm/pause\n\n"), "resume": (1, "/v1/vm/resume\napplication/json\n{}"),
        "stop": (1, "/v1/vm/stop\napplication/json\n{\"timeout_ms\": 500}"), "kill": (1, "/v1/vm/kill\n\n"),
        "bad-json": (1, "/v1/vm/stop\napplication/json\n{\"timeout_ms\": "),
        "unknown-member": (1, "/v1/vm/pause\napplication/json\n{\"now\": [1, {\"a\": null}]}"),
        "wrong-method": (2, "/v1/vm\n\n"), "own-method": (0xff, "PATCH\n/v1/vm/kill\ntext/plain\nx"),
    }.items()}
    yield "virtio_blk", {
        "read-write-flush": virtio_blk([(0, 0, [(1024, True)]), (1, 2, [(512, False)]), (4, 0, [])]),
        "get-id": virtio_blk([(8, 0, [(20, True)])]),
        "discard-and-zeroes": virtio_blk([(11, 0, [(16, False)]), (13, 0, [(32, False)])]),
        "read-only-write": virtio_blk([(1, 0, [(512, False)]), (13, 0, [(16, False)])], options=0b0111),
        "past-the-end": virtio_blk([(0, 127, [(1024, True)]), (1, 2**63, [(512, False)])]),
        "unknown-type": virtio_blk([(99, 0, [(512, True)])]),
    }
    yield "vsock_muxer", {
        "guest-connect": vs_packet(VS_REQUEST) + VS_DISPATCH + vs_rx() + vs_packet(VS_RW, data=b"hello")
        + VS_DISPATCH + vs_read(0) + vs_write(0, b"world") + VS_DISPATCH + vs_rx() + vs_rx()
        + vs_packet(VS_SHUTDOWN, flags=3) + vs_rx(),
        "host-connect": vs_connect(b"CONNECT 1000\n") + VS_DISPATCH + vs_rx()
        + vs_packet(VS_RESPONSE, host_port=VS_FIRST_HOST_PORT) + VS_DISPATCH + vs_read(0) + vs_write(0, b"data")
        + VS_DISPATCH + vs_rx() + vs_packet(VS_RW, host_port=VS_FIRST_HOST_PORT, data=b"back") + VS_DISPATCH
        + vs_read(0, 2) + VS_DISPATCH + vs_rx() + vs_rx(),
        "credit": vs_packet(VS_REQUEST, buf_alloc=10) + VS_DISPATCH + vs_rx() + vs_write(0, bytes(100))
        + VS_DISPATCH + vs_rx() + vs_rx() + vs_packet(VS_CREDIT_UPDATE, buf_alloc=10, fwd_cnt=10) + VS_DISPATCH
        + vs_rx() + vs_packet(VS_CREDIT_REQUEST) + vs_rx(),
        "refused": vs_packet(VS_REQUEST, host_port=1) + vs_rx() + vs_packet(VS_RW, 2, 2, b"x") + vs_rx(),
        "bad-packets": vs_packet(VS_RW, length=0xFFFF) + vs_packet(VS_REQUEST, shape=1) + vs_packet(99, shape=8)
        + vs_packet(VS_REQUEST, shape=4) + vs_rx() + vs_rx() + vs_rx(),
        # Data waiting and an rx buffer with no room for it: to_guest() must come back empty.
        "no-room": vs_packet(VS_REQUEST) + VS_DISPATCH + vs_rx() + vs_write(0, b"data") + VS_DISPATCH + vs_rx(0)
        + vs_rx(0) + vs_rx(),
        "bad-line": vs_connect(b"HELLO\n") + vs_connect(b"CONNECT 99999999999\n") + VS_DISPATCH + vs_rx(),
    }
    yield "parse_size", {name: text.encode() for name, text in {
        "512M": "512M", "2G": "2G", "bare": "1", "zero": "0", "64KiB": "64KiB", "3T": "3T", "1g": "1g",
        "max": "18446744073709551615", "max-t": "16777215T", "overflow-t": "16777216T", "junk": "1x",
        "empty": "", "minus": "-1", "space": " 1M", "hex": "0x10",
    }.items()}
    yield "parse_count", {name: struct.pack("<QQ", low, high) + text.encode() for name, (low, high, text) in {
        "cpus": (1, 254, "4"), "above": (1, 254, "255"), "below": (1, 254, "0"), "plus": (1, 254, "+4"),
        "leading-zero": (1, 254, "04"), "max": (0, 2**64 - 1, "18446744073709551615"),
        "overflow": (0, 2**64 - 1, "18446744073709551616"), "empty-range": (5, 1, "3"), "space": (0, 9, "1 "),
    }.items()}


def main():
    for target, files in seeds():
        directory = os.path.join(CORPUS, target)
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
        for name, data in files.items():
            with open(os.path.join(directory, name), "wb") as out:
                out.write(data)
        print(f"{directory}: {len(files)} seeds, largest {max(len(d) for d in files.values())} bytes")


if __name__ == "__main__":
    main()
