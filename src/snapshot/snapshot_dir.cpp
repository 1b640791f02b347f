#include "snapshot/snapshot_dir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <climits>
#include <ctime>
#include <tuple>

#include "snapshot/state_file.hpp"

namespace strata::snapshot {

namespace {

constexpr std::string_view kMemorySection = "memory";

std::string hex64(uint64_t value) { return fmt::format("{:016x}", value); }

std::string utc_now() {
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return text;
}

Result<Fd> create_file(int dirfd, std::string_view name) {
    int fd = openat(dirfd, std::string(name).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return fail_errno("creating {}", name);
    return Fd(fd);
}

Result<void> write_whole(int fd, std::span<const uint8_t> bytes, std::string_view name) {
    while (!bytes.empty()) {
        ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail_errno("writing {}", name);
        bytes = bytes.subspan(static_cast<size_t>(n));
    }
    if (fsync(fd) != 0) return fail_errno("flushing {}", name);
    return {};
}

// Removes what a failed write left in `partial`.
void remove_partial(int dirfd, const std::string& partial) {
    for (std::string_view name : {kManifestFile, kStateFile, kMemoryFile}) unlinkat(dirfd, std::string(name).c_str(), 0);
    rmdir(partial.c_str());
}

// Reads a whole regular file of at most `limit` bytes, opened in `dirfd` without following links.
Result<std::vector<uint8_t>> read_small(int dirfd, std::string_view name, uint64_t limit) {
    Fd fd(openat(dirfd, std::string(name).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd.valid()) return fail_errno("{}", name);
    struct stat st{};
    if (fstat(fd.get(), &st) != 0) return fail_errno("{}", name);
    if (!S_ISREG(st.st_mode)) return fail("{} is not a regular file", name);
    if (static_cast<uint64_t>(st.st_size) > limit)
        return fail("{} has {} bytes, more than the {} a snapshot's may have", name, st.st_size, limit);
    std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = pread(fd.get(), bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail_errno("reading {}", name);
        if (n == 0) return fail("{} got shorter while it was read", name);
        done += static_cast<size_t>(n);
    }
    return bytes;
}

// The manifest member `key` of `type`, or an error naming it.
Result<const nlohmann::json*> member(const nlohmann::json& object, std::string_view key, nlohmann::json::value_t type,
                                     std::string_view where) {
    auto it = object.find(key);
    if (it == object.end()) return fail("{}: {} has no \"{}\"", kManifestFile, where, key);
    bool ok = it->type() == type ||
              (type == nlohmann::json::value_t::number_unsigned && it->type() == nlohmann::json::value_t::number_integer &&
               it->get<int64_t>() >= 0);
    if (!ok) return fail("{}: \"{}\" in {} is a {}, not what it must be", kManifestFile, key, where, it->type_name());
    return &*it;
}

Result<uint64_t> parse_hex64(const nlohmann::json& value, std::string_view what) {
    const std::string& text = value.get_ref<const std::string&>();
    if (text.size() != 16 || text.find_first_not_of("0123456789abcdef") != std::string::npos)
        return fail("{}: the checksum of {} is not 16 hexadecimal digits", kManifestFile, what);
    return std::stoull(text, nullptr, 16);
}

}  // namespace

Result<SnapshotWriter> SnapshotWriter::create(const std::string& dir) {
    if (dir.empty()) return fail("the snapshot directory's name is empty");
    struct stat st{};
    if (lstat(dir.c_str(), &st) == 0) return fail("{} exists already: a snapshot goes into a new directory", dir);
    SnapshotWriter writer;
    writer.dir_ = dir;
    writer.partial_ = dir + ".partial";
    if (mkdir(writer.partial_.c_str(), 0700) != 0) return fail_errno("creating {}", writer.partial_);
    writer.dirfd_ = Fd(open(writer.partial_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!writer.dirfd_.valid()) {
        auto error = fail_errno("opening {}", writer.partial_);
        rmdir(writer.partial_.c_str());
        return error;
    }
    writer.open_ = true;
    auto memory_fd = create_file(writer.dirfd_.get(), kMemoryFile);
    if (!memory_fd) return std::unexpected(memory_fd.error());
    writer.memory_fd_ = std::move(*memory_fd);
    return writer;
}

SnapshotWriter::SnapshotWriter(SnapshotWriter&& other) noexcept
    : dir_(std::move(other.dir_)),
      partial_(std::move(other.partial_)),
      dirfd_(std::move(other.dirfd_)),
      memory_fd_(std::move(other.memory_fd_)),
      open_(std::exchange(other.open_, false)) {}

SnapshotWriter::~SnapshotWriter() {
    if (open_) remove_partial(dirfd_.get(), partial_);
}

Result<WrittenSnapshot> SnapshotWriter::finish(const SnapshotContent& content, const MemoryImage& image) {
    if (!open_) return fail("the snapshot {} is finished already", dir_);
    if (fsync(memory_fd_.get()) != 0) return fail_errno("flushing {}", kMemoryFile);

    std::vector<Section> sections = content.sections;
    StateWriter map;
    encode_memory_map(map, image);
    sections.push_back({std::string(kMemorySection), map.take()});
    std::vector<uint8_t> state = encode_state_file(sections);
    auto state_fd = create_file(dirfd_.get(), kStateFile);
    if (!state_fd) return std::unexpected(state_fd.error());
    if (auto r = write_whole(state_fd->get(), state, kStateFile); !r) return std::unexpected(r.error());

    nlohmann::json manifest = {
        {"format", kFormat},
        {"version", kVersion},
        {"created", utc_now()},
        {"engine", content.engine},
        {"machine_time_ns", content.machine_time_ns},
        {"machine", content.machine},
        {"notes", content.notes},
        {"files",
         {{std::string(kStateFile), {{"size", state.size()}, {"xxh3_64", hex64(XXH3_64bits(state.data(), state.size()))}}},
          {std::string(kMemoryFile),
           {{"size", image.ram_size}, {"data_bytes", image.data_bytes()}, {"xxh3_64", hex64(image.hash)}}}}},
    };
    std::string text = manifest.dump(2) + "\n";
    auto manifest_fd = create_file(dirfd_.get(), kManifestFile);
    if (!manifest_fd) return std::unexpected(manifest_fd.error());
    if (auto r = write_whole(manifest_fd->get(), {reinterpret_cast<const uint8_t*>(text.data()), text.size()}, kManifestFile); !r)
        return std::unexpected(r.error());
    if (fsync(dirfd_.get()) != 0) return fail_errno("flushing {}", partial_);
    if (rename(partial_.c_str(), dir_.c_str()) != 0) return fail_errno("renaming {} to {}", partial_, dir_);
    open_ = false;
    // The rename is durable once the parent is flushed.
    std::string parent = dir_.find('/') == std::string::npos ? "." : dir_.substr(0, dir_.find_last_of('/') + 1);
    if (Fd parent_fd(open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)); parent_fd.valid()) fsync(parent_fd.get());
    return WrittenSnapshot{.state_bytes = state.size(), .memory_data_bytes = image.data_bytes(), .ram_size = image.ram_size};
}

Result<WrittenSnapshot> write_snapshot(const std::string& dir, const SnapshotContent& content, const GuestMemory& memory) {
    auto writer = SnapshotWriter::create(dir);
    if (!writer) return std::unexpected(writer.error());
    // RAM first: the memory map goes into state.bin.
    auto image = write_memory_file(writer->memory_fd(), memory);
    if (!image) return std::unexpected(image.error());
    return writer->finish(content, *image);
}

Result<Manifest> parse_manifest(std::span<const uint8_t> bytes) {
    using Type = nlohmann::json::value_t;
    nlohmann::json manifest = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, false);
    if (manifest.is_discarded() || !manifest.is_object()) return fail("{} is not a JSON object", kManifestFile);
    auto format = member(manifest, "format", Type::string, "the manifest");
    if (!format) return std::unexpected(format.error());
    if ((*format)->get<std::string>() != kFormat) return fail("{} is not a Strata snapshot's manifest", kManifestFile);
    auto version = member(manifest, "version", Type::number_unsigned, "the manifest");
    if (!version) return std::unexpected(version.error());
    if ((*version)->get<uint64_t>() != kVersion)
        return fail("format version {} (this Strata restores version {})", (*version)->get<uint64_t>(), kVersion);

    Manifest parsed;
    auto engine = member(manifest, "engine", Type::string, "the manifest");
    if (!engine) return std::unexpected(engine.error());
    parsed.content.engine = (*engine)->get<std::string>();
    if (parsed.content.engine != "kvm" && parsed.content.engine != "soft")
        return fail("{}: engine \"{}\" is neither kvm nor soft", kManifestFile, parsed.content.engine);
    auto time = member(manifest, "machine_time_ns", Type::number_unsigned, "the manifest");
    if (!time) return std::unexpected(time.error());
    if ((*time)->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX) / 2)
        return fail("{}: machine_time_ns is out of range", kManifestFile);
    parsed.content.machine_time_ns = (*time)->get<int64_t>();
    auto machine = member(manifest, "machine", Type::object, "the manifest");
    if (!machine) return std::unexpected(machine.error());
    parsed.content.machine = **machine;
    if (auto notes = manifest.find("notes"); notes != manifest.end() && notes->is_array())
        for (const auto& note : *notes)
            if (note.is_string()) parsed.content.notes.push_back(note.get<std::string>());
    auto files = member(manifest, "files", Type::object, "the manifest");
    if (!files) return std::unexpected(files.error());
    for (auto [name, size, hash] : {std::tuple{kStateFile, &parsed.state_size, &parsed.state_hash},
                                    std::tuple{kMemoryFile, &parsed.memory_size, &parsed.memory_hash}}) {
        auto entry = member(**files, name, Type::object, "\"files\"");
        if (!entry) return std::unexpected(entry.error());
        auto entry_size = member(**entry, "size", Type::number_unsigned, name);
        if (!entry_size) return std::unexpected(entry_size.error());
        auto entry_hash = member(**entry, "xxh3_64", Type::string, name);
        if (!entry_hash) return std::unexpected(entry_hash.error());
        auto value = parse_hex64(**entry_hash, name);
        if (!value) return std::unexpected(value.error());
        *size = (*entry_size)->get<uint64_t>();
        *hash = *value;
    }
    return parsed;
}

Result<OpenedSnapshot> open_snapshot(const std::string& dir) {
    Fd dirfd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dirfd.valid()) return fail_errno("snapshot {}", dir);
    auto in_dir = [&dir](const Error& error) { return context(error, fmt::format("snapshot {}", dir)); };

    auto manifest_bytes = read_small(dirfd.get(), kManifestFile, kMaxManifestBytes);
    if (!manifest_bytes) return in_dir(manifest_bytes.error());
    auto manifest = parse_manifest(*manifest_bytes);
    if (!manifest) return in_dir(manifest.error());
    OpenedSnapshot opened;
    opened.content = std::move(manifest->content);

    // state.bin: size and checksum, then its sections.
    auto state = read_small(dirfd.get(), kStateFile, kMaxStateBytes);
    if (!state) return in_dir(state.error());
    if (state->size() != manifest->state_size)
        return in_dir({fmt::format("{} has {} bytes, the manifest says {}: it is truncated or not this snapshot's",
                                   kStateFile, state->size(), manifest->state_size)});
    if (uint64_t actual = XXH3_64bits(state->data(), state->size()); actual != manifest->state_hash)
        return in_dir({fmt::format("{}: checksum mismatch (XXH3-64 {:016x}, the manifest says {:016x}): the file is corrupt",
                                   kStateFile, actual, manifest->state_hash)});
    auto sections = decode_state_file(*state);
    if (!sections) return in_dir(sections.error());
    const Section* map = find_section(*sections, kMemorySection);
    if (!map) return in_dir({fmt::format("{} has no \"{}\" section", kStateFile, kMemorySection)});
    StateReader map_reader(map->bytes, std::string(kMemorySection));
    opened.memory = decode_memory_map(map_reader);
    if (auto r = map_reader.finish(); !r) return in_dir(r.error());
    std::erase_if(*sections, [](const Section& s) { return s.name == kMemorySection; });
    opened.content.sections = std::move(*sections);

    // memory.bin: its size and checksum; its bytes are checked once mapped.
    if (manifest->memory_size != opened.memory.ram_size)
        return in_dir({fmt::format("the manifest gives {} bytes of RAM, {} gives {}", manifest->memory_size, kStateFile,
                                   opened.memory.ram_size)});
    opened.memory.hash = manifest->memory_hash;
    opened.memory_file = Fd(openat(dirfd.get(), std::string(kMemoryFile).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!opened.memory_file.valid()) return in_dir(fail_errno("{}", kMemoryFile).error());
    struct stat st{};
    if (fstat(opened.memory_file.get(), &st) != 0) return in_dir(fail_errno("{}", kMemoryFile).error());
    if (!S_ISREG(st.st_mode)) return in_dir({fmt::format("{} is not a regular file", kMemoryFile)});
    if (static_cast<uint64_t>(st.st_size) != opened.memory.ram_size)
        return in_dir({fmt::format("{} has {} bytes, the snapshot's RAM is {}: it is truncated or not this snapshot's",
                                   kMemoryFile, st.st_size, opened.memory.ram_size)});
    return opened;
}

}  // namespace strata::snapshot
