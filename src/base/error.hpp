// Error handling for paths that can fail for reasons outside the program: files, guest input,
// host calls. The message names the thing and the cause; callers add context as it travels up.
#pragma once

#include <cerrno>
#include <cstring>
#include <expected>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace strata {

struct Error {
    std::string message;
};

template <class T = void>
using Result = std::expected<T, Error>;

// `return fail("kernel {}: bad magic {:#x}", path, magic);`
template <class... Args>
[[nodiscard]] std::unexpected<Error> fail(fmt::format_string<Args...> format, Args&&... args) {
    return std::unexpected(Error{fmt::format(format, std::forward<Args>(args)...)});
}

// `return fail_errno("open {}", path);` appends strerror(errno).
template <class... Args>
[[nodiscard]] std::unexpected<Error> fail_errno(fmt::format_string<Args...> format, Args&&... args) {
    int saved = errno;
    return std::unexpected(Error{fmt::format("{}: {}", fmt::format(format, std::forward<Args>(args)...),
                                             std::strerror(saved))});
}

// Prefixes an error with the context it passed through: `return context(r.error(), "initrd")`.
[[nodiscard]] inline std::unexpected<Error> context(const Error& error, std::string_view where) {
    return std::unexpected(Error{fmt::format("{}: {}", where, error.message)});
}

// A broken invariant of Strata's own: abort loudly with context.
[[noreturn]] void panic(std::string_view message, const char* file = __builtin_FILE(),
                        int line = __builtin_LINE());

}  // namespace strata
