#include "base/units.hpp"

#include <charconv>

#include "base/checked.hpp"

namespace strata {

Result<uint64_t> parse_size(std::string_view text) {
    uint64_t number = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (ec != std::errc{} || end == text.data())
        return fail("'{}' is not a size (expected a number with an optional K, M, G or T suffix)", text);
    std::string_view suffix(end, static_cast<size_t>(text.data() + text.size() - end));
    uint64_t unit = MiB;
    if (suffix == "K" || suffix == "k" || suffix == "KiB") unit = KiB;
    else if (suffix == "M" || suffix == "m" || suffix == "MiB" || suffix.empty()) unit = MiB;
    else if (suffix == "G" || suffix == "g" || suffix == "GiB") unit = GiB;
    else if (suffix == "T" || suffix == "t" || suffix == "TiB") unit = 1024 * GiB;
    else return fail("'{}' has an unknown size suffix '{}' (use K, M, G or T)", text, suffix);
    auto bytes = checked_mul(number, unit);
    if (!bytes) return fail("'{}' is too large", text);
    return *bytes;
}

}  // namespace strata
