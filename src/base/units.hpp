// Parsing of user-given sizes such as "512M" or "2G".
#pragma once

#include <cstdint>
#include <string_view>

#include "base/error.hpp"

namespace strata {

// Accepts a decimal number with an optional K, M, G or T suffix (binary units; a bare number is
// MiB, as QEMU's -m). Rejects empty strings, junk and overflow with a message naming the text.
Result<uint64_t> parse_size(std::string_view text);

}  // namespace strata
