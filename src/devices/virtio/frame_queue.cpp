#include "devices/virtio/frame_queue.hpp"

#include <algorithm>

#include "base/error.hpp"

namespace strata {

FrameQueue::FrameQueue(size_t max_frames, size_t max_bytes) : bytes_(max_bytes), entries_(max_frames) {}

bool FrameQueue::push(std::span<const uint8_t> frame) {
    size_t length = frame.size();
    if (length == 0 || count_ == entries_.size() || length > bytes_.size()) return false;
    size_t at = 0;
    if (count_ > 0) {
        size_t oldest = entries_[first_].offset;
        if (next_byte_ > oldest) {
            // In use: [oldest, next_byte_). Room after it to the end, or else before it.
            if (length <= bytes_.size() - next_byte_) at = next_byte_;
            else if (length <= oldest) at = 0;
            else return false;
        } else {
            // Wrapped: in use are [oldest, the end of the last frame before the wrap) and
            // [0, next_byte_); the room is between them.
            if (length > oldest - next_byte_) return false;
            at = next_byte_;
        }
    }
    std::ranges::copy(frame, bytes_.begin() + static_cast<std::ptrdiff_t>(at));
    entries_[(first_ + count_) % entries_.size()] = {at, length};
    ++count_;
    next_byte_ = at + length;
    return true;
}

std::span<const uint8_t> FrameQueue::front() const {
    if (count_ == 0) panic("FrameQueue::front() of an empty queue");
    const Entry& entry = entries_[first_];
    return std::span<const uint8_t>(bytes_).subspan(entry.offset, entry.length);
}

void FrameQueue::pop() {
    if (count_ == 0) panic("FrameQueue::pop() of an empty queue");
    first_ = (first_ + 1) % entries_.size();
    if (--count_ == 0) clear();
}

void FrameQueue::clear() {
    first_ = 0;
    count_ = 0;
    next_byte_ = 0;
}

}  // namespace strata
