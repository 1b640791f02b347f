// Fuzzes parse_count(), the parser of counts such as --cpus: a plain decimal number in [min, max].
//
// Input: min and max as 8 little-endian bytes each (missing bytes are zero), then the text.
// Invariants beyond "no crash, no UB, no leak":
//   - it succeeds exactly when the text is one or more digits (no sign, prefix, suffix or space)
//     whose value fits 64 bits and lies in [min, max] (worked out here with 128-bit arithmetic);
//     the result is then that value, so within [min, max];
//   - a failure's message quotes the text and names the range ("min to max").
#include <optional>
#include <string>
#include <string_view>

#include "base/units.hpp"
#include "fuzz_support.hpp"

using namespace strata;

namespace {

__extension__ using Uint128 = unsigned __int128;  // the reference sums and products cannot wrap

// The specification of parse_count, independent of its implementation.
std::optional<uint64_t> expected_count(std::string_view text, uint64_t min, uint64_t max) {
    if (text.empty()) return std::nullopt;
    Uint128 number = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        number = number * 10 + static_cast<unsigned>(c - '0');
        if (number > UINT64_MAX) number = Uint128{UINT64_MAX} + 1;  // too large, and stays so
    }
    if (number < min || number > max) return std::nullopt;
    return static_cast<uint64_t>(number);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::span<const uint8_t> input(data, size);
    uint64_t min = load_le(input.first(std::min<size_t>(size, 8)));
    uint64_t max = size > 8 ? load_le(input.subspan(8, std::min<size_t>(size - 8, 8))) : 0;
    std::span<const uint8_t> text_bytes = size > 16 ? input.subspan(16) : std::span<const uint8_t>{};
    std::string_view text(reinterpret_cast<const char*>(text_bytes.data()), text_bytes.size());

    auto parsed = parse_count(text, min, max);
    auto expected = expected_count(text, min, max);
    FUZZ_CHECK(parsed.has_value() == expected.has_value(), "parse_count(\"{}\", {}, {}) {}, expected {}", text, min,
               max, parsed ? fmt::format("= {}", *parsed) : "failed: " + parsed.error().message,
               expected ? fmt::format("{}", *expected) : "failure");
    if (!parsed) {
        const std::string& message = parsed.error().message;
        FUZZ_CHECK(message.find(text) != std::string::npos, "message \"{}\" does not quote the text", message);
        FUZZ_CHECK(message.find(fmt::format("{} to {}", min, max)) != std::string::npos,
                   "message \"{}\" does not name the range", message);
        return 0;
    }
    FUZZ_CHECK(*parsed == *expected && min <= *parsed && *parsed <= max, "parse_count(\"{}\", {}, {}) = {}, expected {}",
               text, min, max, *parsed, *expected);
    return 0;
}
