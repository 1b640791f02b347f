#include "loader/kernel_payload.hpp"

#include <lz4.h>

#include <algorithm>

#include "base/bytes.hpp"

namespace strata {

namespace {

constexpr uint32_t kLz4LegacyMagic = 0x184c2102;
constexpr uint64_t kLz4LegacyChunk = 8 * 1024 * 1024;  // a legacy block's largest output

bool starts_with(std::span<const uint8_t> data, std::initializer_list<uint8_t> magic) {
    return data.size() >= magic.size() && std::equal(magic.begin(), magic.end(), data.begin());
}

}  // namespace

PayloadFormat payload_format(std::span<const uint8_t> payload) {
    if (starts_with(payload, {0x02, 0x21, 0x4c, 0x18})) return PayloadFormat::Lz4Legacy;
    if (starts_with(payload, {0x1f, 0x8b})) return PayloadFormat::Gzip;
    if (starts_with(payload, {0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00})) return PayloadFormat::Xz;
    if (starts_with(payload, {0x28, 0xb5, 0x2f, 0xfd})) return PayloadFormat::Zstd;
    if (starts_with(payload, {0x42, 0x5a, 0x68})) return PayloadFormat::Bzip2;
    if (starts_with(payload, {0x5d, 0x00, 0x00})) return PayloadFormat::Lzma;
    if (starts_with(payload, {0x89, 0x4c, 0x5a, 0x4f})) return PayloadFormat::Lzo;
    return PayloadFormat::Unknown;
}

std::string_view payload_format_name(PayloadFormat format) {
    switch (format) {
        case PayloadFormat::Lz4Legacy: return "LZ4";
        case PayloadFormat::Gzip: return "gzip";
        case PayloadFormat::Xz: return "xz";
        case PayloadFormat::Zstd: return "zstd";
        case PayloadFormat::Bzip2: return "bzip2";
        case PayloadFormat::Lzma: return "lzma";
        case PayloadFormat::Lzo: return "lzo";
        case PayloadFormat::Unknown: break;
    }
    return "unknown";
}

Result<std::vector<uint8_t>> unpack_lz4_legacy(std::span<const uint8_t> payload, uint64_t max_size) {
    if (payload_format(payload) != PayloadFormat::Lz4Legacy) return fail("payload is not an LZ4 legacy frame");
    std::vector<uint8_t> out;
    size_t at = 4;
    for (unsigned chunk = 0;; ++chunk) {
        size_t left = payload.size() - at;
        if (left == 0) break;
        if (left < 4) return fail("LZ4 payload: {} stray bytes after chunk {}", left, chunk);
        auto length = static_cast<uint32_t>(load_le(payload.subspan(at, 4)));
        at += 4;
        if (length == kLz4LegacyMagic) continue;  // another frame follows
        if (left == 4) {
            // The kernel's build appends the uncompressed size.
            if (length != out.size())
                return fail("LZ4 payload: the size after the last chunk says {} bytes, the chunks hold {}", length,
                            out.size());
            break;
        }
        if (length == 0 || length > left - 4 || length > static_cast<uint32_t>(LZ4_compressBound(kLz4LegacyChunk)))
            return fail("LZ4 payload: chunk {} at offset {:#x} claims {} bytes, {} are left", chunk, at - 4, length,
                        left - 4);
        // LZ4 makes at most 255 bytes of output of each input byte: no chunk needs more room.
        uint64_t allowed = max_size - std::min<uint64_t>(out.size(), max_size);
        uint64_t room = std::min({kLz4LegacyChunk, uint64_t{length} * 255 + 16, allowed});
        if (room == 0) return fail("LZ4 payload unpacks to more than {} bytes", max_size);
        size_t start = out.size();
        out.resize(start + room);
        int n = LZ4_decompress_safe(reinterpret_cast<const char*>(payload.data() + at),
                                    reinterpret_cast<char*>(out.data() + start), static_cast<int>(length),
                                    static_cast<int>(room));
        if (n < 0 && room == allowed) return fail("LZ4 payload unpacks to more than {} bytes", max_size);
        if (n < 0) return fail("LZ4 payload: chunk {} at offset {:#x} is corrupt", chunk, at - 4);
        out.resize(start + static_cast<size_t>(n));
        at += length;
    }
    if (out.empty()) return fail("LZ4 payload holds no data");
    return out;
}

}  // namespace strata
