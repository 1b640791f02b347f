// Fuzzes the split virtqueue's device side (src/devices/virtio/virtqueue.hpp) against a hostile
// driver: enable() on any configuration, then pop() on whatever rings and descriptors guest memory
// holds, with push_used(), the copy helpers and the notification decisions in between.
//
// Input: the guest's first bytes (copied to GPA 0 of 16 MiB of RAM: rings, descriptors, indirect
// tables, buffers), followed by kOptionBytes option bytes (all little-endian):
//   [0]       bits 0-3: log2 of the queue size; bit 4: EVENT_IDX; bit 5: INDIRECT_DESC;
//             bit 6: take the size from [1..3) instead (any value, invalid ones included)
//   [1..3)    queue size when bit 6 of [0] is set
//   [3..11)   descriptor table address, [11..19) available ring address, [19..27) used ring address
//   [27..29)  the available ring's idx, written over guest memory before the first round
//   [29]      the DescriptorChain's capacity in buffers (0: 256)
//   [30..34)  its byte limit (0: 2^32 - 1)
//   [34..36)  how far the driver moves idx on for a second round
// Invariants beyond "no crash, no UB, no leak, no hang" (a pop returns within a second):
//   - enable() succeeds exactly when the size is a power of two from 1 to 32768 and every area is
//     aligned (16/2/4) and wholly in RAM;
//   - pop() agrees with a reference walk written here (a visited-set loop check instead of the
//     implementation's counts): it succeeds exactly when the reference does, with the same head
//     (the available ring's entry) and the same segments; so every segment is non-empty and in
//     RAM, readable ones come first, there are no more than the queue size and the chain's
//     capacity, and their total is within the chain's byte limit;
//   - read() gives the readable bytes as they are in guest memory, write() and read() copy
//     min(request, bytes of that direction); push_used() writes the element (the head, the bytes
//     written) at used idx and then publishes idx + 1;
//   - pop() finds nothing exactly when idx equals next_avail, and a failed pop consumes nothing;
//     should_interrupt() follows NO_INTERRUPT or used_event as §2.7.7 says; disable_notifications()
//     sets NO_NOTIFY (without EVENT_IDX) and enable_notifications() clears it or writes
//     avail_event = next_avail (EVENT_IDX), and reports exactly whether idx moved past next_avail.
// Each round disables notifications, pops, decides on an interrupt and enables notifications
// again, as a device does; the second starts where the first ended.
#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <vector>

#include "devices/virtio/virtio_spec.hpp"
#include "devices/virtio/virtqueue.hpp"
#include "fuzz_support.hpp"
#include "memory/guest_dma.hpp"

using namespace strata;
using namespace strata::fuzz;

namespace {

constexpr size_t kOptionBytes = 36;
constexpr size_t kCopyBytes = 256;  // what read() and write() copy each pop: enough to cross segments
// Pops per round: enough to drain every ring a seed can describe, and few enough that a 32768-entry
// queue of long chains stays well inside libFuzzer's per-input timeout.
constexpr uint32_t kMaxPopsPerRound = 300;
// A pop reads at most 2 * size + 1 descriptors (the queue's, then an indirect table's, up to the
// queue size in all): microseconds to milliseconds. A second means it did not stop.
constexpr auto kPopDeadline = std::chrono::seconds(1);

struct Segment {
    uint64_t gpa;
    uint32_t length;
    bool writable;
    bool operator==(const Segment&) const = default;
};

template <class T>
T guest(const GuestMemory& memory, uint64_t gpa) {
    return load_struct<T>(guest_view(memory, gpa, sizeof(T)));
}

// Whether the chain at `head` is well-formed as §2.7.4-§2.7.5.3 and the DescriptorChain's limits
// define it, and its segments then; walked without the implementation's code: a loop is a
// descriptor visited twice. The vectors are reused from run to run.
bool reference_chain(const GuestMemory& memory, const VirtqueueConfig& config, uint16_t head, uint32_t capacity,
                     uint32_t max_bytes, std::vector<Segment>& segments) {
    static std::vector<bool> visited;
    segments.clear();
    visited.assign(config.size, false);
    uint64_t table = config.descriptor_table;
    uint64_t table_entries = config.size;
    uint64_t index = head;
    bool in_indirect = false, seen_writable = false;
    uint64_t buffers = 0, total = 0;
    while (true) {
        if (visited[index]) return false;
        visited[index] = true;
        auto descriptor = guest<virtio::Descriptor>(memory, table + 16 * index);
        if (descriptor.flags & virtio::kDescriptorIndirect) {
            if (in_indirect || !config.indirect_descriptors || (descriptor.flags & virtio::kDescriptorNext) ||
                descriptor.len == 0 || descriptor.len % 16 != 0 || !memory.contains(descriptor.addr, descriptor.len))
                return false;
            table = descriptor.addr;
            table_entries = descriptor.len / 16;
            visited.assign(table_entries, false);
            index = 0;
            in_indirect = true;
            continue;
        }
        bool writable = (descriptor.flags & virtio::kDescriptorWrite) != 0;
        if (++buffers > config.size || (seen_writable && !writable)) return false;
        seen_writable = seen_writable || writable;
        if (descriptor.len > 0) {
            total += descriptor.len;
            if (!memory.contains(descriptor.addr, descriptor.len) || total > max_bytes || segments.size() == capacity)
                return false;
            segments.push_back({descriptor.addr, descriptor.len, writable});
        }
        if (!(descriptor.flags & virtio::kDescriptorNext)) return true;
        if (descriptor.next >= table_entries) return false;
        index = descriptor.next;
    }
}

bool area_ok(const GuestMemory& memory, uint64_t gpa, uint64_t alignment, uint64_t size) {
    return gpa % alignment == 0 && memory.contains(gpa, size);
}

struct Fuzz {
    const GuestMemory& memory;
    const GuestDma& dma;
    Virtqueue& queue;
    const VirtqueueConfig& config;
    DescriptorChain& chain;
    std::vector<Segment>& expected;  // the reference's segments for the chain being popped

    // Pops until the ring is empty or a chain is malformed (then returns false: the device would
    // stop and ask for a reset), checking each pop against the reference. The device's own writes
    // (buffers and used ring may overlap the available ring) can move the driver's idx, so the
    // round stops after kMaxPopsPerRound pops too.
    bool round() {
        for (uint32_t attempt = 0; attempt < kMaxPopsPerRound; ++attempt) {
            uint16_t idx = guest<uint16_t>(memory, config.avail_ring + 2);
            uint16_t ahead = static_cast<uint16_t>(idx - queue.next_avail());
            uint32_t slot = queue.next_avail() % config.size;
            uint16_t head = guest<uint16_t>(memory, config.avail_ring + 4 + 2 * uint64_t{slot});
            // Whether the reference takes the chain: only asked where pop() gets as far as the chain.
            bool walks = ahead != 0 && ahead <= config.size && head < config.size;
            bool well_formed =
                walks && reference_chain(memory, config, head, chain.max_segments(), chain.max_bytes(), expected);
            uint16_t before = queue.next_avail();

            auto started = std::chrono::steady_clock::now();
            auto result = queue.pop(chain);
            auto took = std::chrono::steady_clock::now() - started;
            FUZZ_CHECK(took < kPopDeadline, "pop took {} ms (queue size {})",
                       std::chrono::duration_cast<std::chrono::milliseconds>(took).count(), config.size);
            if (!result) {
                FUZZ_CHECK(!result.error().message.empty(), "an error without a message");
                FUZZ_CHECK(queue.next_avail() == before, "a failed pop consumed an entry");
                FUZZ_CHECK(ahead != 0, "pop failed on an empty ring: {}", result.error().message);
                FUZZ_CHECK(!well_formed, "pop failed on a chain the reference takes (head {}): {}", head,
                           result.error().message);
                return false;
            }
            if (!*result) {
                FUZZ_CHECK(ahead == 0, "pop found nothing with idx {} ahead of next_avail {}", idx, before);
                return true;
            }
            FUZZ_CHECK(well_formed, "pop took head {} that the reference refuses (idx {} ahead {})", head, idx, ahead);
            FUZZ_CHECK(queue.next_avail() == static_cast<uint16_t>(before + 1), "next_avail did not move by one");
            FUZZ_CHECK(chain.head() == head, "popped head {}, the ring entry says {}", chain.head(), head);
            check_chain();
            use_chain();
        }
        return true;
    }

    void check_chain() {
        auto segments = chain.segments();
        FUZZ_CHECK(segments.size() == expected.size(), "{} segments, the reference has {}", segments.size(),
                   expected.size());
        uint64_t readable = 0, writable = 0;
        for (size_t i = 0; i < segments.size(); ++i) {
            const ChainSegment& s = segments[i];
            FUZZ_CHECK((Segment{s.gpa, s.length, s.device_writable} == expected[i]),
                       "segment {} is [{:#x}+{:#x} {}], the reference has [{:#x}+{:#x} {}]", i, s.gpa, s.length,
                       s.device_writable ? "W" : "R", expected[i].gpa, expected[i].length,
                       expected[i].writable ? "W" : "R");
            FUZZ_CHECK(s.length > 0 && memory.contains(s.gpa, s.length), "segment {} [{:#x}+{:#x}) not in RAM", i,
                       s.gpa, s.length);
            FUZZ_CHECK(s.device_writable == (i >= chain.readable().size()), "segment {} out of readable/writable order",
                       i);
            (s.device_writable ? writable : readable) += s.length;
        }
        FUZZ_CHECK(segments.size() <= config.size && segments.size() <= chain.max_segments(), "{} segments",
                   segments.size());
        FUZZ_CHECK(readable == chain.readable_bytes() && writable == chain.writable_bytes() &&
                       readable + writable <= chain.max_bytes(),
                   "byte counts {}+{} (chain says {}+{}, limit {})", readable, writable, chain.readable_bytes(),
                   chain.writable_bytes(), chain.max_bytes());
    }

    // Reads the readable part, writes the writable part and returns the chain, as a device would.
    void use_chain() {
        std::array<uint8_t, kCopyBytes> bytes{};
        auto read = chain.read(dma, 0, bytes);
        FUZZ_CHECK(read, "read: {}", read ? "" : read.error().message);
        FUZZ_CHECK(*read == std::min<uint64_t>(kCopyBytes, chain.readable_bytes()), "read {} bytes of {}", *read,
                   chain.readable_bytes());
        size_t at = 0;
        for (const ChainSegment& s : chain.readable()) {
            if (at == *read) break;
            size_t n = std::min<size_t>(s.length, *read - at);
            auto view = guest_view(memory, s.gpa, n);
            FUZZ_CHECK(first_difference(view, std::span(bytes).subspan(at, n)) == n, "read() differs from guest bytes");
            at += n;
        }
        std::ranges::fill(bytes, uint8_t{0xa5});
        auto written = chain.write(dma, chain.writable_bytes() / 2, bytes);
        FUZZ_CHECK(written, "write: {}", written ? "" : written.error().message);
        uint64_t room = chain.writable_bytes() - chain.writable_bytes() / 2;
        FUZZ_CHECK(*written == std::min<uint64_t>(kCopyBytes, room), "wrote {} bytes into {}", *written, room);

        uint16_t slot = static_cast<uint16_t>(queue.used_idx() % config.size);
        auto pushed = queue.push_used(chain.head(), static_cast<uint32_t>(*written));
        FUZZ_CHECK(pushed, "push_used: {}", pushed ? "" : pushed.error().message);
        auto element = guest<virtio::UsedElement>(memory, config.used_ring + 4 + 8 * uint64_t{slot});
        FUZZ_CHECK(element.id == chain.head() && element.len == *written, "used element {} is ({}, {})", slot,
                   element.id, element.len);
        FUZZ_CHECK(guest<uint16_t>(memory, config.used_ring + 2) == queue.used_idx(), "used idx not published");
    }

    void check_interrupt(uint16_t used_before) {
        // What §2.7.7 says, from the driver's fields as they are now: with EVENT_IDX, interrupt when
        // one of the entries written since, at indexes used_before .. used_now - 1, sat at used_event.
        uint16_t flags = guest<uint16_t>(memory, config.avail_ring);
        uint16_t used_event = guest<uint16_t>(memory, config.avail_ring + virtio::used_event_offset(config.size));
        uint16_t used_now = queue.used_idx();
        auto entries_written = static_cast<uint16_t>(used_now - used_before);
        bool suppressed = config.event_idx ? static_cast<uint16_t>(used_event - used_before) >= entries_written
                                           : (flags & virtio::kAvailNoInterrupt) != 0;
        bool wanted_by_driver = used_now != used_before && !suppressed;
        auto wanted = queue.should_interrupt();
        FUZZ_CHECK(wanted && *wanted == wanted_by_driver,
                   "should_interrupt {} (expected {}): flags {:#x} used_event {} used {} -> {}",
                   wanted ? (*wanted ? "true" : "false") : wanted.error().message, wanted_by_driver, flags, used_event,
                   used_before, used_now);
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    SplitInput<kOptionBytes> input(data, size);
    GuestMemory& memory = fresh_guest_memory();
    if (!memory.write(0, input.image)) return -1;  // larger than guest RAM: not an input of this target
    GuestDma dma(memory);

    uint8_t mode = input.options[0];
    VirtqueueConfig config{
        .size = (mode & 0x40) ? static_cast<uint32_t>(input.le(1, 2)) : 1u << (mode & 0xf),
        .descriptor_table = input.le(3, 8),
        .avail_ring = input.le(11, 8),
        .used_ring = input.le(19, 8),
        .event_idx = (mode & 0x10) != 0,
        .indirect_descriptors = (mode & 0x20) != 0,
    };
    bool valid = config.size >= 1 && config.size <= virtio::kMaxQueueSize && std::has_single_bit(config.size) &&
                 area_ok(memory, config.descriptor_table, 16, virtio::descriptor_table_size(config.size)) &&
                 area_ok(memory, config.avail_ring, 2, virtio::avail_ring_size(config.size)) &&
                 area_ok(memory, config.used_ring, 4, virtio::used_ring_size(config.size));
    Virtqueue queue(dma);
    auto enabled = queue.enable(config);
    FUZZ_CHECK(enabled.has_value() == valid, "enable {} a configuration that is {}: {}", enabled ? "took" : "refused",
               valid ? "valid" : "invalid", enabled ? "" : enabled.error().message);
    if (!enabled) return 0;

    uint32_t capacity = input.options[29] == 0 ? 256 : input.options[29];
    auto max_bytes = static_cast<uint32_t>(input.le(30, 4));
    DescriptorChain chain(capacity, max_bytes == 0 ? UINT32_MAX : max_bytes);
    static std::vector<Segment> expected;
    Fuzz fuzz{memory, dma, queue, config, chain, expected};

    auto avail_idx = static_cast<uint16_t>(input.le(27, 2));
    FUZZ_CHECK(memory.write_obj(config.avail_ring + 2, avail_idx), "avail idx not in RAM");
    for (int round = 0; round < 2; ++round) {
        uint16_t used_before = queue.used_idx();
        uint16_t used_flags = guest<uint16_t>(memory, config.used_ring);
        auto disabled = queue.disable_notifications();
        FUZZ_CHECK(disabled, "disable_notifications: {}", disabled ? "" : disabled.error().message);
        // NO_NOTIFY without EVENT_IDX; with it the flags are left alone (§2.7.10.2).
        uint16_t flags_now = guest<uint16_t>(memory, config.used_ring);
        FUZZ_CHECK(flags_now == (config.event_idx ? used_flags : virtio::kUsedNoNotify),
                   "used ring flags {:#x} after disable_notifications (were {:#x})", flags_now, used_flags);
        bool healthy = fuzz.round();
        fuzz.check_interrupt(used_before);
        if (!healthy) break;
        auto waiting = queue.enable_notifications();
        FUZZ_CHECK(waiting, "enable_notifications: {}", waiting ? "" : waiting.error().message);
        uint16_t idx = guest<uint16_t>(memory, config.avail_ring + 2);
        FUZZ_CHECK(*waiting == (idx != queue.next_avail()), "enable_notifications says {} with idx {} next {}",
                   *waiting, idx, queue.next_avail());
        if (config.event_idx)
            FUZZ_CHECK(guest<uint16_t>(memory, config.used_ring + virtio::avail_event_offset(config.size)) ==
                           queue.next_avail(),
                       "avail_event is not next_avail");
        else
            FUZZ_CHECK(guest<uint16_t>(memory, config.used_ring) == 0,
                       "used ring flags not 0 after enable_notifications");
        // The second round: the driver makes more available (or claims to).
        idx = static_cast<uint16_t>(idx + input.le(34, 2));
        FUZZ_CHECK(memory.write_obj(config.avail_ring + 2, idx), "avail idx not in RAM");
    }
    return 0;
}
