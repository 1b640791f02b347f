// A device that carries the host terminal's input into the guest: COM1 or the virtio-console.
// The board gives the machine's console loop the one that --console chose, and the loop feeds it
// without knowing which: input is offered, the device takes what it has room for, and it calls the
// room notifier once it can take more (the loop then offers the rest; nothing is dropped).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

namespace strata {

class ConsoleInput {
public:
    virtual ~ConsoleInput() = default;
    // From the console thread: takes as many of `bytes` as there is room for and returns that
    // count; after taking fewer than offered, the device calls the room notifier when it has room.
    virtual size_t receive(std::span<const uint8_t> bytes) = 0;
    // The notifier is called without the device's locks, from one of its threads (a vCPU's for
    // COM1, the device loop's for virtio-console), so it only signals the console thread.
    virtual void set_room_notifier(std::function<void()> notifier) = 0;
};

}  // namespace strata
