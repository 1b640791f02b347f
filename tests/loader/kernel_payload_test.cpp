#include "loader/kernel_payload.hpp"

#include <gtest/gtest.h>
#include <lz4.h>

#include <random>

namespace strata {
namespace {

constexpr size_t kChunk = 8 * 1024 * 1024;

void append_le32(std::vector<uint8_t>& out, uint32_t value) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

// An LZ4 legacy payload as the kernel's build makes it: magic, 8 MiB chunks, the size.
std::vector<uint8_t> pack(const std::vector<uint8_t>& data, bool with_size = true) {
    std::vector<uint8_t> out{0x02, 0x21, 0x4c, 0x18};
    for (size_t at = 0; at < data.size(); at += kChunk) {
        int length = static_cast<int>(std::min(kChunk, data.size() - at));
        std::vector<char> block(static_cast<size_t>(LZ4_compressBound(length)));
        int n = LZ4_compress_default(reinterpret_cast<const char*>(data.data() + at), block.data(), length,
                                     static_cast<int>(block.size()));
        append_le32(out, static_cast<uint32_t>(n));
        out.insert(out.end(), block.begin(), block.begin() + n);
    }
    if (with_size) append_le32(out, static_cast<uint32_t>(data.size()));
    return out;
}

// Text-like data that compresses, over more than one chunk.
std::vector<uint8_t> kernel_like(size_t size) {
    std::vector<uint8_t> data(size);
    std::mt19937 random(11);
    for (size_t i = 0; i < size; ++i) data[i] = static_cast<uint8_t>((i % 251) ^ (random() % 4 == 0 ? random() : 0));
    return data;
}

std::string error_of(const std::vector<uint8_t>& payload, uint64_t limit = 64 * 1024 * 1024) {
    auto r = unpack_lz4_legacy(payload, limit);
    return r ? "" : r.error().message;
}

TEST(KernelPayload, FormatsAreToldByTheirMagic) {
    EXPECT_EQ(payload_format(std::vector<uint8_t>{0x02, 0x21, 0x4c, 0x18, 0}), PayloadFormat::Lz4Legacy);
    EXPECT_EQ(payload_format(std::vector<uint8_t>{0x1f, 0x8b, 8}), PayloadFormat::Gzip);
    EXPECT_EQ(payload_format(std::vector<uint8_t>{0xfd, '7', 'z', 'X', 'Z', 0}), PayloadFormat::Xz);
    EXPECT_EQ(payload_format(std::vector<uint8_t>{0x28, 0xb5, 0x2f, 0xfd}), PayloadFormat::Zstd);
    EXPECT_EQ(payload_format(std::vector<uint8_t>{0x02, 0x21}), PayloadFormat::Unknown);
    EXPECT_EQ(payload_format_name(PayloadFormat::Zstd), "zstd");
}

TEST(KernelPayload, UnpacksChunksToTheSizeAfterThem) {
    auto data = kernel_like(kChunk + 12345);
    auto r = unpack_lz4_legacy(pack(data), 64 * 1024 * 1024);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r, data);
    auto without_size = unpack_lz4_legacy(pack(data, false), 64 * 1024 * 1024);
    ASSERT_TRUE(without_size) << without_size.error().message;
    EXPECT_EQ(*without_size, data);
}

TEST(KernelPayload, MalformedPayloadsAreRefusedNamingTheProblem) {
    auto data = kernel_like(100'000);
    auto good = pack(data);

    auto wrong_size = good;
    wrong_size.back() ^= 1;
    EXPECT_NE(error_of(wrong_size).find("the size after the last chunk says"), std::string::npos) << error_of(wrong_size);

    auto truncated = std::vector<uint8_t>(good.begin(), good.end() - 100);
    EXPECT_NE(error_of(truncated).find("claims"), std::string::npos) << error_of(truncated);

    auto corrupt = good;
    for (size_t i = 8; i < 40; ++i) corrupt[i] = 0xff;
    EXPECT_NE(error_of(corrupt).find("corrupt"), std::string::npos) << error_of(corrupt);

    EXPECT_NE(error_of({0x02, 0x21, 0x4c, 0x18, 1, 2}).find("stray"), std::string::npos);
    EXPECT_NE(error_of({0x02, 0x21, 0x4c, 0x18}).find("no data"), std::string::npos);
    EXPECT_NE(error_of({0x1f, 0x8b, 8, 0}).find("not an LZ4"), std::string::npos);
    EXPECT_NE(error_of(good, 50'000).find("more than 50000 bytes"), std::string::npos) << error_of(good, 50'000);
}

}  // namespace
}  // namespace strata
