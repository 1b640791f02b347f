#include "snapshot/state_file.hpp"

#include <algorithm>
#include <set>

#include "base/state_stream.hpp"

namespace strata::snapshot {

namespace {

constexpr std::array<uint8_t, 8> kMagic{'S', 'T', 'R', 'A', 'T', 'A', 'S', 'S'};

bool valid_name(std::string_view name) {
    if (name.empty() || name.size() > kMaxSectionNameBytes) return false;
    return std::ranges::all_of(name, [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '/' || c == '.' || c == '_' || c == '-';
    });
}

}  // namespace

std::vector<uint8_t> encode_state_file(std::span<const Section> sections) {
    StateWriter out;
    out.bytes(kMagic);
    out.u32(kVersion);
    out.u32(static_cast<uint32_t>(sections.size()));
    for (const Section& section : sections) {
        if (!valid_name(section.name)) panic(fmt::format("snapshot section name '{}' is not a valid one", section.name));
        out.string(section.name);
        out.u64(section.bytes.size());
        out.bytes(section.bytes);
    }
    return out.take();
}

Result<std::vector<Section>> decode_state_file(std::span<const uint8_t> bytes) {
    StateReader in(bytes, std::string(kStateFile));
    auto magic = in.array<8>("magic");
    if (in.ok() && magic != kMagic) return fail("{}: not a Strata state file (bad magic)", kStateFile);
    uint32_t version = in.u32("version");
    if (in.ok() && version != kVersion)
        return fail("{}: format version {} (this Strata reads version {})", kStateFile, version, kVersion);
    uint32_t count = in.count(kMaxSections, "section count");
    std::vector<Section> sections;
    std::set<std::string, std::less<>> names;
    for (uint32_t i = 0; i < count && in.ok(); ++i) {
        Section section;
        section.name = in.string(kMaxSectionNameBytes, "section name");
        if (!in.ok()) break;
        if (!valid_name(section.name)) {
            in.fail(fmt::format("section {} has a name that is not allowed", i));
            break;
        }
        if (!names.insert(section.name).second) {
            in.fail(fmt::format("section '{}' appears twice", section.name));
            break;
        }
        uint64_t length = in.u64("section length");
        if (length > in.remaining()) {
            in.fail(fmt::format("section '{}' claims {} bytes, {} are left", section.name, length, in.remaining()));
            break;
        }
        section.bytes.resize(length);
        in.bytes(section.bytes, "section bytes");
        sections.push_back(std::move(section));
    }
    if (auto r = in.finish(); !r) return std::unexpected(r.error());
    return sections;
}

const Section* find_section(std::span<const Section> sections, std::string_view name) {
    auto it = std::ranges::find(sections, name, &Section::name);
    return it == sections.end() ? nullptr : &*it;
}

}  // namespace strata::snapshot
