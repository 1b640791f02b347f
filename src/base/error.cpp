#include "base/error.hpp"

#include <cstdio>
#include <cstdlib>

namespace strata {

void panic(std::string_view message, const char* file, int line) {
    fmt::print(stderr, "strata: internal error at {}:{}: {}\n", file, line, message);
    std::fflush(stderr);
    std::abort();
}

}  // namespace strata
