// A bounded first-in first-out queue of network frames in one preallocated byte ring: where a
// network device holds frames for the guest while the guest has no receive buffer, up to a number
// of frames and of bytes, without allocating per frame.
//
// State:    the bytes (capacity fixed at construction), the frames' offsets and lengths in a ring of
//           entries, the first entry and the count, the next free byte.
// Features: push() copies a frame in when both limits allow it, contiguously (a frame that does not
//           fit before the end of the bytes goes to their start, leaving the tail unused until the
//           queue wraps); front() is a view of the oldest frame; pop() forgets it.
// Threads:  none of its own: one thread uses it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace strata {

class FrameQueue {
public:
    FrameQueue(size_t max_frames, size_t max_bytes);

    // Copies `frame` in: false (nothing changed) when it holds max_frames already or the bytes have
    // no contiguous room for it. An empty frame is refused too.
    [[nodiscard]] bool push(std::span<const uint8_t> frame);
    [[nodiscard]] std::span<const uint8_t> front() const;  // !empty()
    void pop();                                            // !empty()
    void clear();
    [[nodiscard]] bool empty() const { return count_ == 0; }
    [[nodiscard]] size_t size() const { return count_; }

private:
    struct Entry {
        size_t offset = 0;
        size_t length = 0;
    };
    std::vector<uint8_t> bytes_;
    std::vector<Entry> entries_;  // a ring of max_frames
    size_t first_ = 0;            // entries_ index of the oldest frame
    size_t count_ = 0;
    size_t next_byte_ = 0;        // where the newest frame ends
};

}  // namespace strata
