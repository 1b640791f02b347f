#include "host/escape_filter.hpp"

namespace strata {

EscapeFilter::Command EscapeFilter::feed(std::span<const uint8_t> input, std::vector<uint8_t>& to_guest) {
    Command command = Command::None;
    for (uint8_t byte : input) {
        if (!pending_escape_) {
            if (byte == kEscape) pending_escape_ = true;
            else to_guest.push_back(byte);
            continue;
        }
        pending_escape_ = false;
        switch (byte) {
            case 'x':
            case 'X': return Command::Quit;
            case 'h':
            case 'H': command = Command::Help; break;
            case kEscape: to_guest.push_back(kEscape); break;
            default:
                to_guest.push_back(kEscape);
                to_guest.push_back(byte);
                break;
        }
    }
    return command;
}

}  // namespace strata
