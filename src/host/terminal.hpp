// The user's terminal while a guest owns the console: raw mode in, restored on every way out.
//
// Raw mode passes every key (Ctrl-C included) to the guest; the user leaves with the escape
// sequence (EscapeFilter). The saved settings are also restored by an atexit hook and by
// handlers for fatal signals, so a crash of the VMM does not leave the shell unusable.
#pragma once

#include <termios.h>

#include <memory>

#include "base/error.hpp"

namespace strata {

class RawTerminal {
public:
    // Puts `fd` in raw mode when it is a terminal; returns nullptr (no error) when it is not.
    static Result<std::unique_ptr<RawTerminal>> enter(int fd);
    ~RawTerminal();
    RawTerminal(const RawTerminal&) = delete;
    RawTerminal& operator=(const RawTerminal&) = delete;

private:
    explicit RawTerminal(int fd) : fd_(fd) {}
    int fd_;
};

// Restores the saved terminal settings, if any; async-signal-safe.
void restore_terminal();

}  // namespace strata
