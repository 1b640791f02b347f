#include "devices/virtio/virtqueue.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <optional>
#include <string>

#include "devices/virtio/virtio_spec.hpp"

namespace strata {
namespace {

// Calls copy(guest address, offset in the host buffer, bytes) for the pieces of `segments`, taken
// one after another, that cover bytes [offset, offset + size) of them; returns the bytes covered,
// fewer than `size` where the segments end first.
template <class Copy>
Result<size_t> for_each_piece(std::span<const ChainSegment> segments, uint64_t offset, size_t size, Copy&& copy) {
    size_t done = 0;
    for (const ChainSegment& segment : segments) {
        if (done == size) break;
        if (offset >= segment.length) {
            offset -= segment.length;
            continue;
        }
        auto piece = static_cast<size_t>(std::min<uint64_t>(segment.length - offset, size - done));
        // segment.gpa + offset stays inside the segment, which pop() found in RAM: no wrap.
        if (auto copied = copy(segment.gpa + offset, done, piece); !copied) return std::unexpected(copied.error());
        done += piece;
        offset = 0;
    }
    return done;
}

std::unexpected<Error> not_enabled(std::string_view what) {
    return fail("{} on a virtqueue that is not enabled", what);
}

}  // namespace

DescriptorChain::DescriptorChain(uint32_t max_segments, uint32_t max_bytes)
    : max_segments_(max_segments), max_bytes_(max_bytes) {
    segments_.reserve(max_segments);
}

void DescriptorChain::start(uint16_t head) {
    segments_.clear();  // keeps the capacity: no allocation on the next pop
    head_ = head;
    readable_count_ = 0;
    seen_writable_ = false;
    readable_bytes_ = 0;
    writable_bytes_ = 0;
}

Result<void> DescriptorChain::add(uint64_t gpa, uint32_t length, bool device_writable) {
    if (!device_writable && seen_writable_)
        return fail("a device-readable buffer after a device-writable one (§2.7.4.2)");
    seen_writable_ = seen_writable_ || device_writable;
    if (length == 0) return {};
    // Three values below 2^32 summed in 64 bits: no wrap.
    if (uint64_t{readable_bytes_} + writable_bytes_ + length > max_bytes_)
        return fail("the chain has more than {} bytes, the most this device takes", max_bytes_);
    if (segments_.size() == max_segments_)
        return fail("the chain has more than {} buffers, the most this device takes", max_segments_);
    segments_.push_back({.gpa = gpa, .length = length, .device_writable = device_writable});
    if (device_writable) {
        writable_bytes_ += length;
    } else {
        readable_bytes_ += length;
        ++readable_count_;
    }
    return {};
}

Result<size_t> DescriptorChain::read(const GuestDma& dma, uint64_t offset, std::span<uint8_t> out) const {
    return for_each_piece(readable(), offset, out.size(), [&](uint64_t gpa, size_t at, size_t bytes) {
        return dma.read(gpa, out.subspan(at, bytes));
    });
}

Result<size_t> DescriptorChain::write(const GuestDma& dma, uint64_t offset, std::span<const uint8_t> in) const {
    return for_each_piece(writable(), offset, in.size(), [&](uint64_t gpa, size_t at, size_t bytes) {
        return dma.write(gpa, in.subspan(at, bytes));
    });
}

Result<void> Virtqueue::enable(const VirtqueueConfig& config) {
    reset();
    if (config.size == 0 || config.size > virtio::kMaxQueueSize || !std::has_single_bit(config.size))
        return fail("queue size {} is not a power of two from 1 to {} (§2.7)", config.size, virtio::kMaxQueueSize);
    struct Area {
        const char* name;
        uint64_t gpa, alignment, size;
    };
    const Area areas[] = {
        {"descriptor table", config.descriptor_table, virtio::kDescriptorTableAlignment,
         virtio::descriptor_table_size(config.size)},
        {"available ring", config.avail_ring, virtio::kAvailRingAlignment, virtio::avail_ring_size(config.size)},
        {"used ring", config.used_ring, virtio::kUsedRingAlignment, virtio::used_ring_size(config.size)},
    };
    for (const Area& area : areas) {
        if (area.gpa % area.alignment != 0)
            return fail("{} at {:#x} is not {}-byte aligned (§2.7)", area.name, area.gpa, area.alignment);
        // One check of the whole area (overflow-safe in translate), so that no ring access later
        // can leave it; the areas may overlap each other, which only harms the driver.
        if (auto view = dma_.view(area.gpa, area.size); !view)
            return context(view.error(), fmt::format("{} of {} bytes", area.name, area.size));
    }
    config_ = config;
    enabled_ = true;
    return {};
}

Result<void> Virtqueue::unpop(uint16_t count) {
    if (!enabled_) return not_enabled("unpop");
    auto in_flight = static_cast<uint16_t>(next_avail_ - used_idx_);
    if (in_flight != count)
        return fail("cannot give back {} chains with {} in flight (all of them must be given back)", count, in_flight);
    next_avail_ = static_cast<uint16_t>(next_avail_ - count);
    return {};
}

Result<void> Virtqueue::restore(const VirtqueueConfig& config, VirtqueuePosition position) {
    if (position.next_avail != position.used_idx)
        return fail("{} chains are in flight (next_avail {}, used idx {}): a snapshot has none",
                    static_cast<uint16_t>(position.next_avail - position.used_idx), position.next_avail,
                    position.used_idx);
    if (auto r = enable(config); !r) return r;
    next_avail_ = position.next_avail;
    used_idx_ = position.used_idx;
    signalled_used_ = position.signalled_used;
    return {};
}

void Virtqueue::reset() {
    config_ = {};
    enabled_ = false;
    next_avail_ = 0;
    used_idx_ = 0;
    signalled_used_ = 0;
}

Result<bool> Virtqueue::pop(DescriptorChain& chain) {
    if (!enabled_) return not_enabled("pop");
    // Acquire: the ring entries and descriptors the driver wrote before raising idx (§2.7.13.3.1)
    // are read after it.
    auto avail_idx = dma_.load_acquire_u16(config_.avail_ring + virtio::kAvailIdxOffset);
    if (!avail_idx) return context(avail_idx.error(), "available ring idx");
    auto pending = static_cast<uint16_t>(*avail_idx - next_avail_);
    if (pending == 0) return false;
    // The ring has `size` entries, so a driver cannot be further ahead than that (§2.7.13).
    if (pending > config_.size)
        return fail("available ring idx {} is {} entries ahead of the device's {}, more than the queue size {}",
                    *avail_idx, pending, next_avail_, config_.size);
    uint32_t slot = next_avail_ & (config_.size - 1);
    auto head = dma_.read_obj<uint16_t>(config_.avail_ring + virtio::kAvailRingOffset + 2 * uint64_t{slot});
    if (!head) return context(head.error(), fmt::format("available ring entry {}", slot));
    if (*head >= config_.size)
        return fail("available ring entry {}: head index {} is past the queue size {}", slot, *head, config_.size);
    if (auto walked = walk_chain(*head, chain); !walked) return std::unexpected(walked.error());
    ++next_avail_;
    return true;
}

Result<void> Virtqueue::walk_chain(uint16_t head, DescriptorChain& chain) const {
    chain.start(head);
    uint64_t table = config_.descriptor_table;
    uint32_t table_size = config_.size;     // descriptors in `table`
    uint32_t index = head;                  // always < table_size
    std::optional<uint32_t> indirect_from;  // the queue's descriptor that points at `table`, if indirect
    uint32_t read_in_table = 0;
    uint32_t buffers = 0;
    auto name = [&] {
        return indirect_from ? fmt::format("indirect descriptor {} (table of descriptor {})", index, *indirect_from)
                             : fmt::format("descriptor {}", index);
    };
    for (;;) {
        // A chain that visits more descriptors than its table has visits one twice: a loop.
        if (++read_in_table > table_size) {
            if (indirect_from)
                return fail("indirect table of descriptor {}: the chain is longer than its {} descriptors (a loop?)",
                            *indirect_from, table_size);
            return fail("descriptor chain from head {} is longer than the queue size {} (a loop?)", head, table_size);
        }
        // Read once: the copy is what is checked and used, whatever the driver writes meanwhile.
        auto read = dma_.read_obj<virtio::Descriptor>(table + sizeof(virtio::Descriptor) * uint64_t{index});
        if (!read) return context(read.error(), name());
        const virtio::Descriptor descriptor = *read;

        if ((descriptor.flags & virtio::kDescriptorIndirect) != 0) {
            if (indirect_from) return fail("{}: INDIRECT inside an indirect table (§2.7.5.3.1)", name());
            if (!config_.indirect_descriptors)
                return fail("{}: INDIRECT, but VIRTIO_F_INDIRECT_DESC was not negotiated", name());
            if ((descriptor.flags & virtio::kDescriptorNext) != 0)
                return fail("{}: INDIRECT together with NEXT (§2.7.5.3.1)", name());
            if (descriptor.len == 0 || descriptor.len % sizeof(virtio::Descriptor) != 0)
                return fail("{}: indirect table length {} is not a non-zero multiple of 16", name(), descriptor.len);
            if (auto view = dma_.view(descriptor.addr, descriptor.len); !view)
                return context(view.error(), name() + ": indirect table");
            // Its WRITE flag means nothing (§2.7.5.3.2); the chain goes on in the table, from 0.
            table = descriptor.addr;
            table_size = static_cast<uint32_t>(descriptor.len / sizeof(virtio::Descriptor));
            indirect_from = index;
            index = 0;
            read_in_table = 0;
            continue;
        }

        // §2.7.5.3.1: no chain longer than the queue size, indirect descriptors included.
        if (++buffers > config_.size)
            return fail("descriptor chain from head {} has more than {} buffers, the queue size (§2.7.5.3.1)", head,
                        config_.size);
        bool writable = (descriptor.flags & virtio::kDescriptorWrite) != 0;
        if (descriptor.len != 0) {
            if (auto view = dma_.view(descriptor.addr, descriptor.len); !view)
                return context(view.error(), name() + ": buffer");
        }
        if (auto added = chain.add(descriptor.addr, descriptor.len, writable); !added)
            return context(added.error(), name());
        if ((descriptor.flags & virtio::kDescriptorNext) == 0) return {};
        if (descriptor.next >= table_size) {
            if (indirect_from)
                return fail("{}: next index {} is past the table's {} descriptors", name(), descriptor.next,
                            table_size);
            return fail("{}: next index {} is past the queue size {}", name(), descriptor.next, table_size);
        }
        index = descriptor.next;
    }
}

Result<void> Virtqueue::push_used(uint16_t head, uint32_t written) {
    const virtio::UsedElement element{.id = head, .len = written};
    return push_used(std::span(&element, 1));
}

Result<void> Virtqueue::push_used(std::span<const virtio::UsedElement> elements) {
    if (!enabled_) return not_enabled("push_used");
    auto in_flight = static_cast<uint16_t>(next_avail_ - used_idx_);
    if (elements.size() > in_flight) {
        if (in_flight == 0)
            return fail("used element for head {}: no descriptor chain is in flight", elements.front().id);
        return fail("{} used elements with {} descriptor chains in flight", elements.size(), in_flight);
    }
    uint16_t next = used_idx_;
    for (const virtio::UsedElement& used : elements) {
        if (used.id >= config_.size) return fail("used element for head {}: past the queue size {}", used.id, config_.size);
        uint32_t slot = next & (config_.size - 1);
        uint64_t at = config_.used_ring + virtio::kUsedRingOffset + sizeof(virtio::UsedElement) * uint64_t{slot};
        if (auto stored = dma_.write_obj(at, used); !stored)
            return context(stored.error(), fmt::format("used ring entry {}", slot));
        next = static_cast<uint16_t>(next + 1);
    }
    if (next == used_idx_) return {};
    // Release: the elements (id and len) are visible before the idx that publishes them (§2.7.8.2).
    if (auto published = dma_.store_release_u16(config_.used_ring + virtio::kUsedIdxOffset, next); !published)
        return context(published.error(), "used ring idx");
    used_idx_ = next;
    return {};
}

Result<void> DescriptorChain::expect_only(bool device_writable, std::string_view rule) const {
    if (device_writable ? readable_bytes_ == 0 : writable_bytes_ == 0) return {};
    return fail("chain {} has a device-{} buffer, which the driver must not put here ({})", head_,
                device_writable ? "readable" : "writable", rule);
}

Result<bool> Virtqueue::pop_or_arm(DescriptorChain& chain) {
    for (;;) {
        auto popped = pop(chain);
        if (!popped || *popped) return popped;
        auto more = enable_notifications();
        if (!more) return std::unexpected(more.error());
        if (!*more) return false;
    }
}

Result<bool> Virtqueue::should_interrupt() {
    if (!enabled_) return not_enabled("should_interrupt");
    uint16_t old = signalled_used_;
    if (old == used_idx_) return false;
    signalled_used_ = used_idx_;
    // The used idx store must be visible before the suppression is read: a driver that re-enables
    // interrupts and then finds the used ring empty relies on it (§2.7.14's loop), or it would
    // miss these entries and sleep.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (config_.event_idx) {
        auto used_event = dma_.load_acquire_u16(config_.avail_ring + virtio::used_event_offset(config_.size));
        if (!used_event) return context(used_event.error(), "used_event");
        // §2.7.7.2 for a batch: interrupt when some entry published since the last decision sat
        // at index used_event.
        return virtio::need_event(*used_event, used_idx_, old);
    }
    auto flags = dma_.load_acquire_u16(config_.avail_ring + virtio::kAvailFlagsOffset);
    if (!flags) return context(flags.error(), "available ring flags");
    return (*flags & virtio::kAvailNoInterrupt) == 0;
}

Result<void> Virtqueue::disable_notifications() {
    if (!enabled_) return not_enabled("disable_notifications");
    // With EVENT_IDX the flags must stay 0 (§2.7.10.2); leaving avail_event behind next_avail is
    // what suppresses the driver's notifications then.
    if (config_.event_idx) return {};
    if (auto stored = dma_.store_release_u16(config_.used_ring + virtio::kUsedFlagsOffset, virtio::kUsedNoNotify);
        !stored)
        return context(stored.error(), "used ring flags");
    return {};
}

Result<bool> Virtqueue::enable_notifications() {
    if (!enabled_) return not_enabled("enable_notifications");
    Result<void> stored = config_.event_idx
                              ? dma_.store_release_u16(config_.used_ring + virtio::avail_event_offset(config_.size),
                                                       next_avail_)
                              : dma_.store_release_u16(config_.used_ring + virtio::kUsedFlagsOffset, 0);
    if (!stored) return context(stored.error(), config_.event_idx ? "avail_event" : "used ring flags");
    // The store must be visible before the avail idx is read again: a driver that raised idx
    // before seeing it did not notify, and its buffers are found only here (§2.7.10).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    auto avail_idx = dma_.load_acquire_u16(config_.avail_ring + virtio::kAvailIdxOffset);
    if (!avail_idx) return context(avail_idx.error(), "available ring idx");
    return *avail_idx != next_avail_;
}

}  // namespace strata
