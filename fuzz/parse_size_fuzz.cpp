// Fuzzes parse_size(), the parser of --memory: a decimal number and an optional unit suffix.
//
// Input: the whole input is the text.
// Invariants beyond "no crash, no UB, no leak":
//   - it succeeds exactly when the text is one or more digits and then nothing or one of
//     K k KiB M m MiB G g GiB T t TiB, and number * unit fits 64 bits (worked out here with
//     128-bit arithmetic); the result is then number * unit (a bare number is MiB);
//   - a failure's message quotes the text;
//   - format_size() of a whole number of KiB reads back: parse_size("512MiB") of "512 MiB".
#include <optional>
#include <string>
#include <string_view>

#include "base/units.hpp"
#include "fuzz_support.hpp"

using namespace strata;

namespace {

__extension__ using Uint128 = unsigned __int128;  // the reference sums and products cannot wrap

// The specification of parse_size, independent of its implementation.
std::optional<uint64_t> expected_size(std::string_view text) {
    size_t digits = 0;
    Uint128 number = 0;
    for (; digits < text.size() && text[digits] >= '0' && text[digits] <= '9'; ++digits) {
        number = number * 10 + static_cast<unsigned>(text[digits] - '0');
        if (number > UINT64_MAX) number = Uint128{UINT64_MAX} + 1;  // too large, and stays so
    }
    if (digits == 0) return std::nullopt;
    std::string_view suffix = text.substr(digits);
    uint64_t unit = 0;
    if (suffix == "K" || suffix == "k" || suffix == "KiB") unit = KiB;
    else if (suffix.empty() || suffix == "M" || suffix == "m" || suffix == "MiB") unit = MiB;
    else if (suffix == "G" || suffix == "g" || suffix == "GiB") unit = GiB;
    else if (suffix == "T" || suffix == "t" || suffix == "TiB") unit = TiB;
    else return std::nullopt;
    Uint128 bytes = number * unit;
    if (bytes > UINT64_MAX) return std::nullopt;
    return static_cast<uint64_t>(bytes);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto parsed = parse_size(text);
    auto expected = expected_size(text);
    FUZZ_CHECK(parsed.has_value() == expected.has_value(), "parse_size(\"{}\") {}, expected {}", text,
               parsed ? fmt::format("= {}", *parsed) : "failed: " + parsed.error().message,
               expected ? fmt::format("{}", *expected) : "failure");
    if (!parsed) {
        FUZZ_CHECK(parsed.error().message.find(text) != std::string::npos, "message \"{}\" does not quote the text",
                   parsed.error().message);
        return 0;
    }
    FUZZ_CHECK(*parsed == *expected, "parse_size(\"{}\") = {}, expected {}", text, *parsed, *expected);
    if (*parsed != 0 && *parsed % KiB == 0) {
        std::string formatted = format_size(*parsed);
        std::string compact = formatted;
        std::erase(compact, ' ');
        auto again = parse_size(compact);
        FUZZ_CHECK(again && *again == *parsed, "format_size({}) = \"{}\" does not read back", *parsed, formatted);
    }
    return 0;
}
