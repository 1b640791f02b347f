// state.bin: the magic "STRATASS", the format version (u32), the number of sections (u32), then
// each section as its name (u32 length, at most kMaxSectionNameBytes of [a-z0-9/._-]) and its bytes
// (u64 length). Names are unique; order is the writer's.
#pragma once

#include <optional>
#include <span>

#include "base/error.hpp"
#include "snapshot/snapshot_format.hpp"

namespace strata::snapshot {

[[nodiscard]] std::vector<uint8_t> encode_state_file(std::span<const Section> sections);
// Refuses a bad magic, another version, more than kMaxSections, a name that is empty, too long,
// has other characters or repeats, and lengths past the end, naming which.
[[nodiscard]] Result<std::vector<Section>> decode_state_file(std::span<const uint8_t> bytes);

// The section named `name`, or nullptr.
[[nodiscard]] const Section* find_section(std::span<const Section> sections, std::string_view name);

}  // namespace strata::snapshot
