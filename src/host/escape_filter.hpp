// The console escape sequence, as QEMU's -nographic multiplexer has it: Ctrl-A x quits,
// Ctrl-A Ctrl-A sends one Ctrl-A, Ctrl-A h prints help; Ctrl-A followed by anything else sends both.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace strata {

class EscapeFilter {
public:
    static constexpr uint8_t kEscape = 0x01;  // Ctrl-A

    enum class Command { None, Quit, Help };

    // Appends to `to_guest` what `input` sends to the guest and returns the command it ended with
    // (input after a Quit is dropped).
    Command feed(std::span<const uint8_t> input, std::vector<uint8_t>& to_guest);

    static constexpr const char* kHelp =
        "\r\nC-a x    exit Strata\r\nC-a h    print this help\r\nC-a C-a  send C-a to the guest\r\n";

private:
    bool pending_escape_ = false;
};

}  // namespace strata
