// What the fuzz targets share: invariant checks that abort (libFuzzer then saves the input as a
// crash-<sha1> artifact), guest RAM made once per process and wiped before each run, the option
// bytes a target reads from the end of its input, and views of guest memory for the checks.
#pragma once

#include <fcntl.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "base/bytes.hpp"
#include "base/checked.hpp"
#include "loader/elf.hpp"
#include "memory/guest_memory.hpp"

namespace strata::fuzz {

[[noreturn]] inline void invariant_failed(const std::string& what, const char* file, int line) {
    fmt::print(stderr, "\n==== fuzz invariant violated at {}:{}: {}\n", file, line, what);
    std::abort();
}

// FUZZ_CHECK(condition, "fmt format", args...): the message is formatted only when it fails.
#define FUZZ_CHECK(condition, ...)                                                                   \
    do {                                                                                             \
        if (!(condition)) ::strata::fuzz::invariant_failed(fmt::format(__VA_ARGS__), __FILE__, __LINE__); \
    } while (0)

// Room for the boot structures below 1 MiB and every seed's kernel, initrd and modules. Small on
// purpose: a hostile p_memsz or bss_end_addr makes the loader zero up to all of it (page faults
// included), and at 64 MiB such inputs cut the ELF target's executions per second about fourfold.
constexpr uint64_t kGuestRamSize = 16 * MiB;

// Guest RAM for this run, all zero. It is created once per process (a memfd and its mapping per run
// would cost more than the loaders) and wiped by punching a hole over the whole memfd, which frees
// only the pages earlier runs touched: a run pays for what it wrote, not for all of RAM.
inline GuestMemory& fresh_guest_memory() {
    static GuestMemory memory = [] {
        auto created = GuestMemory::create(kGuestRamSize);
        if (!created) invariant_failed("guest RAM: " + created.error().message, __FILE__, __LINE__);
        return std::move(*created);
    }();
    if (fallocate(memory.fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(kGuestRamSize)) != 0)
        invariant_failed("punching a hole in the guest RAM memfd failed", __FILE__, __LINE__);
    return memory;
}

// An input split into the image under test and `N` option bytes at its end (zero when the input is
// shorter than that). The options come last so that a seed is an image with a few bytes appended.
template <size_t N>
struct SplitInput {
    std::span<const uint8_t> image;
    std::array<uint8_t, N> options{};

    SplitInput(const uint8_t* data, size_t size) : image(data, size) {
        if (size < N) return;
        image = image.first(size - N);
        std::copy_n(data + size - N, N, options.begin());
    }
    [[nodiscard]] uint64_t le(size_t offset, size_t bytes) const {
        return load_le(std::span(options).subspan(offset, bytes));
    }
};

// `length` bytes of text for a command line, valid until the next call; `nul_inside` puts a NUL in
// the middle.
inline std::string_view filler_text(size_t length, bool nul_inside) {
    static std::string text;
    text.assign(length, 'x');
    if (nul_inside && length > 0) text[length / 2] = '\0';
    return text;
}

// The first `length` (at most 1 MiB) bytes of a fixed pattern, for initrds and modules.
inline std::span<const uint8_t> pattern_bytes(size_t length) {
    static const std::vector<uint8_t> bytes = [] {
        std::vector<uint8_t> pattern(MiB);
        for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<uint8_t>(i * 7 + i / 251);
        return pattern;
    }();
    return std::span(bytes).first(std::min(length, bytes.size()));
}

// The host view of guest [gpa, gpa + length); a range outside RAM is a broken invariant of the caller.
inline std::span<const uint8_t> guest_view(const GuestMemory& memory, uint64_t gpa, uint64_t length) {
    auto view = memory.translate(gpa, length);
    FUZZ_CHECK(view, "guest range {:#x}+{:#x} expected in RAM: {}", gpa, length, view.error().message);
    return *view;
}

inline uint64_t guest_le(const GuestMemory& memory, uint64_t gpa, size_t bytes) {
    return load_le(guest_view(memory, gpa, bytes));
}

struct GuestRange {
    uint64_t start = 0, end = 0;  // [start, end)
    [[nodiscard]] bool overlaps(const GuestRange& other) const { return start < other.end && other.start < end; }
};

// The checks' own loops run as many times as an image's sizes say. Coverage instrumentation there
// would reward the fuzzer for ever larger sizes (new loop-count buckets), which only slow runs down.
#define FUZZ_NO_COVERAGE __attribute__((no_sanitize("coverage")))

// The offset of the first difference between `a` and `b` (of equal size), or their size; memcmp
// chunk by chunk, as a byte loop would dominate a run's time.
FUZZ_NO_COVERAGE inline size_t first_difference(std::span<const uint8_t> a, std::span<const uint8_t> b) {
    constexpr size_t kChunk = 4096;
    for (size_t at = 0; at < a.size(); at += kChunk) {
        size_t n = std::min(kChunk, a.size() - at);
        if (std::memcmp(a.data() + at, b.data() + at, n) == 0) continue;
        while (a[at] == b[at]) ++at;
        return at;
    }
    return a.size();
}

FUZZ_NO_COVERAGE inline size_t first_nonzero(std::span<const uint8_t> bytes) {
    static const std::array<uint8_t, 4096> zeroes{};
    for (size_t at = 0; at < bytes.size(); at += zeroes.size()) {
        size_t n = std::min(zeroes.size(), bytes.size() - at);
        if (auto d = first_difference(bytes.subspan(at, n), std::span(zeroes).first(n)); d < n) return at + d;
    }
    return bytes.size();
}

// True when guest memory at `gpa` holds `text` followed by a NUL (a C string the guest reads).
inline bool guest_has_string(const GuestMemory& memory, uint64_t gpa, std::string_view text) {
    if (!memory.contains(gpa, text.size() + 1)) return false;
    auto view = guest_view(memory, gpa, text.size() + 1);
    std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(text.data()), text.size());
    return first_difference(bytes, view.first(text.size())) == text.size() && view.back() == 0;
}

// What a loader put at `gpa` from an image: `file_bytes`, then zeroes up to `mem_size` (bss).
// Checks that it is all still there after the loader finished writing everything else.
inline void check_loaded(const GuestMemory& memory, std::string_view what, uint64_t gpa,
                         std::span<const uint8_t> file_bytes, uint64_t mem_size) {
    auto view = guest_view(memory, gpa, mem_size);
    size_t diff = first_difference(file_bytes, view.first(file_bytes.size()));
    FUZZ_CHECK(diff == file_bytes.size(), "{} at {:#x}: guest byte at {:#x} is {:#x}, the image's is {:#x}", what,
               gpa, gpa + diff, view[diff], file_bytes[diff]);
    size_t nonzero = first_nonzero(view.subspan(file_bytes.size()));
    FUZZ_CHECK(nonzero == mem_size - file_bytes.size(), "{} at {:#x}: bss byte at {:#x} is {:#x}, not zero", what,
               gpa, gpa + file_bytes.size() + nonzero, view[file_bytes.size() + nonzero]);
}

// Every PT_LOAD segment that overlaps no other is in guest memory at its paddr, bss zeroed. (Where
// segments overlap, the later one wins; the gABI does not forbid that, so it is not checked.)
inline void check_segments_loaded(const GuestMemory& memory, std::span<const uint8_t> image,
                                  const std::vector<ElfSegment>& segments) {
    for (const auto& segment : segments) {
        GuestRange range{segment.paddr, segment.paddr + segment.mem_size};
        bool alone = std::ranges::none_of(segments, [&](const ElfSegment& other) {
            return other.index != segment.index && range.overlaps({other.paddr, other.paddr + other.mem_size});
        });
        if (alone)
            check_loaded(memory, fmt::format("ELF program header {}", segment.index), segment.paddr,
                         image.subspan(segment.file_offset, segment.file_size), segment.mem_size);
    }
}

}  // namespace strata::fuzz
