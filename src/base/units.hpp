// Parsing of user-given numbers: sizes such as "512M" or "2G", and counts such as "4".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/checked.hpp"
#include "base/error.hpp"

namespace strata {

// Accepts a decimal number with an optional K, M, G or T suffix (binary units; a bare number is
// MiB, as QEMU's -m). Rejects empty strings, junk and overflow with a message naming the text.
Result<uint64_t> parse_size(std::string_view text);

// Accepts a plain decimal number in [min, max]: no sign, no prefix, no suffix, no spaces. The
// message says whether the text is not a number or is out of range, and names the range.
Result<uint64_t> parse_count(std::string_view text, uint64_t min, uint64_t max);

// A size for messages, always exact: in the largest unit that divides it ("512 MiB", "1 TiB",
// "1048577 MiB", "4097 bytes").
std::string format_size(uint64_t bytes);

}  // namespace strata
