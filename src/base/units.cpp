#include "base/units.hpp"

#include <charconv>

namespace strata {

namespace {

// How many decimal digits `text` starts with. Counted by hand: from_chars stops at the first
// non-digit, so "0x10" would read as 0 followed by junk.
size_t leading_digits(std::string_view text) {
    size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
    return digits;
}

}  // namespace

Result<uint64_t> parse_size(std::string_view text) {
    auto not_a_size = [&] {
        return fail("'{}' is not a size (expected a decimal number with an optional K, M, G or T suffix, such as 512M)",
                    text);
    };
    size_t digits = leading_digits(text);
    if (digits == 0) return not_a_size();
    uint64_t number = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + digits, number);
    if (ec != std::errc{}) return fail("'{}' is too large", text);
    std::string_view suffix = text.substr(digits);
    uint64_t unit = MiB;
    if (suffix == "K" || suffix == "k" || suffix == "KiB") unit = KiB;
    else if (suffix == "M" || suffix == "m" || suffix == "MiB" || suffix.empty()) unit = MiB;
    else if (suffix == "G" || suffix == "g" || suffix == "GiB") unit = GiB;
    else if (suffix == "T" || suffix == "t" || suffix == "TiB") unit = TiB;
    else return not_a_size();
    auto bytes = checked_mul(number, unit);
    if (!bytes) return fail("'{}' is too large", text);
    return *bytes;
}

Result<uint64_t> parse_count(std::string_view text, uint64_t min, uint64_t max) {
    if (text.empty() || leading_digits(text) != text.size()) return fail("'{}' is not a number (expected {} to {})", text, min, max);
    uint64_t number = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (ec != std::errc{} || number < min || number > max)
        return fail("'{}' is out of range (expected {} to {})", text, min, max);
    return number;
}

std::string format_size(uint64_t bytes) {
    struct Unit {
        uint64_t size;
        const char* name;
    };
    constexpr Unit kUnits[] = {{TiB, "TiB"}, {GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}};
    for (const Unit& unit : kUnits)
        if (bytes >= unit.size && bytes % unit.size == 0) return fmt::format("{} {}", bytes / unit.size, unit.name);
    return fmt::format("{} bytes", bytes);
}

}  // namespace strata
