// Fuzzes unpack_lz4_legacy(), which unpacks a bzImage's LZ4 payload on the host.
//
// Input: the first byte picks the mode, the rest is the data.
//   - even: the data is a payload as a bzImage would carry it (magic, chunks, trailing size);
//   - odd: the data is what a kernel would be; the target packs it into a legacy frame (chunks of
//     up to 8 MiB compressed with LZ4_compress_default, then the size) and unpacks that.
// Invariants beyond "no crash, no UB, no leak":
//   - success needs the legacy magic, and gives 1 to kLimit bytes;
//   - a failure names the payload ("LZ4 payload") and a success is deterministic;
//   - a payload packed from data unpacks to exactly that data.
#include <lz4.h>

#include <vector>

#include "fuzz_support.hpp"
#include "loader/kernel_payload.hpp"

using namespace strata;

namespace {

constexpr uint64_t kLimit = 64 * 1024 * 1024;

void append_le32(std::vector<uint8_t>& out, uint32_t value) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

std::vector<uint8_t> pack(std::span<const uint8_t> data) {
    std::vector<uint8_t> out{0x02, 0x21, 0x4c, 0x18};
    std::vector<char> block(static_cast<size_t>(LZ4_compressBound(static_cast<int>(data.size()))));
    int n = LZ4_compress_default(reinterpret_cast<const char*>(data.data()), block.data(), static_cast<int>(data.size()),
                                 static_cast<int>(block.size()));
    FUZZ_CHECK(n > 0, "LZ4_compress_default failed on {} bytes", data.size());
    append_le32(out, static_cast<uint32_t>(n));
    out.insert(out.end(), block.begin(), block.begin() + n);
    append_le32(out, static_cast<uint32_t>(data.size()));
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
    if (size == 0) return -1;
    std::span<const uint8_t> data(bytes + 1, size - 1);
    if (bytes[0] & 1) {
        if (data.empty()) return -1;
        auto unpacked = unpack_lz4_legacy(pack(data), kLimit);
        FUZZ_CHECK(unpacked.has_value(), "a packed payload of {} bytes was refused: {}", data.size(),
                   unpacked ? "" : unpacked.error().message);
        FUZZ_CHECK(std::ranges::equal(*unpacked, data), "{} bytes packed unpacked to {} other bytes", data.size(),
                   unpacked->size());
        return 0;
    }
    auto unpacked = unpack_lz4_legacy(data, kLimit);
    if (!unpacked) {
        FUZZ_CHECK(unpacked.error().message.find("LZ4 payload") != std::string::npos ||
                       unpacked.error().message.find("LZ4 legacy") != std::string::npos,
                   "message does not name the payload: {}", unpacked.error().message);
        return 0;
    }
    FUZZ_CHECK(payload_format(data) == PayloadFormat::Lz4Legacy, "unpacked a payload without the LZ4 legacy magic");
    FUZZ_CHECK(!unpacked->empty() && unpacked->size() <= kLimit, "unpacked {} bytes (limit {})", unpacked->size(), kLimit);
    auto again = unpack_lz4_legacy(data, kLimit);
    FUZZ_CHECK(again && *again == *unpacked, "a second unpack of the same payload differs");
    return 0;
}
