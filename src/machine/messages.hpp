// The lines the machine prints on stderr besides a stop reason, each with the prefix every line
// of Strata's has.
#pragma once

#include <cstdio>
#include <string_view>

#include <fmt/format.h>

namespace strata {

inline void warn(std::string_view message) { fmt::print(stderr, "strata: warning: {}\n", message); }
inline void note(std::string_view message) { fmt::print(stderr, "strata: {}\n", message); }

}  // namespace strata
