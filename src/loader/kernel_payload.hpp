// The compressed kernel inside a bzImage (its payload, boot.rst "payload_offset"), unpacked on
// the host so that the guest need not run its own decompressor: under the soft engine that saves
// the second or more a guest spends inflating tens of MiB instruction by instruction.
//
// Features: LZ4 legacy frames, the format of Debian 12's cloud kernels: magic 02 21 4c 18, then
//           chunks of a 4-byte little-endian length and an LZ4 block of at most 8 MiB output,
//           and, as the kernel's build appends it (scripts/Makefile.lib, size_append), the 4-byte
//           uncompressed size, which must match. The result is the ELF vmlinux (plus, for a
//           relocatable kernel, its relocation table after the ELF, which a kernel run at its
//           link address does not need).
// Missing: gzip, xz, zstd, bzip2, lzma and lzo payloads (the guest's decompressor handles them:
//          payload_format names them so the loader can say so).
// Spec: LZ4 legacy frame (lz4/doc/lz4_Frame_format.md, "Legacy frame"); Linux
//       lib/decompress_unlz4.c, arch/x86/boot/compressed/Makefile.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/error.hpp"

namespace strata {

enum class PayloadFormat { Lz4Legacy, Gzip, Xz, Zstd, Bzip2, Lzma, Lzo, Unknown };

// The compression of a bzImage payload, by its magic bytes.
[[nodiscard]] PayloadFormat payload_format(std::span<const uint8_t> payload);
[[nodiscard]] std::string_view payload_format_name(PayloadFormat format);

// Unpacks an LZ4 legacy payload into at most `max_size` bytes; every chunk length is checked
// against what is left of the payload and the output limit. Fails naming the chunk and the cause.
[[nodiscard]] Result<std::vector<uint8_t>> unpack_lz4_legacy(std::span<const uint8_t> payload, uint64_t max_size);

}  // namespace strata
