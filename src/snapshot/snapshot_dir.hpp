// Writing a snapshot directory and opening one for restore (snapshot_format.hpp says what is in
// it). Writing is all or nothing: the files go into DIR.partial, are flushed (fsync) and only then
// renamed to DIR, so an interrupted snapshot leaves no DIR that looks whole. Opening checks the
// manifest (format, version, sizes, checksums) and state.bin before anything is built; RAM is
// checked after it is mapped (memory_file.hpp), still before any vCPU runs.
#pragma once

#include <nlohmann/json.hpp>

#include "base/fd.hpp"
#include "snapshot/memory_file.hpp"

namespace strata::snapshot {

struct SnapshotContent {
    std::string engine;              // the engine the VM ran under: "kvm" or "soft"
    int64_t machine_time_ns = 0;     // the machine clock at the snapshot
    nlohmann::json machine;          // the VM's configuration (the machine layer's to read)
    std::vector<std::string> notes;  // what the snapshot could not carry, for whoever restores it
    std::vector<Section> sections;   // state.bin's, without "memory" (written here)
};

struct WrittenSnapshot {
    uint64_t state_bytes = 0;
    uint64_t memory_data_bytes = 0;  // bytes of RAM written (the rest are holes)
    uint64_t ram_size = 0;
};

// A snapshot directory being written, in two steps so that RAM can be written while the VM runs
// on (background_memory.hpp): create() makes DIR.partial with an empty memory.bin to fill;
// finish() flushes it, writes state.bin and snapshot.json, flushes them and renames the directory
// to DIR. Dropped unfinished, it removes what it wrote.
// `dir` must not exist; its parent must be a directory. The path is the caller's to check for
// policy (the API wants it absolute); here it is only used as given.
class SnapshotWriter {
public:
    [[nodiscard]] static Result<SnapshotWriter> create(const std::string& dir);
    SnapshotWriter(SnapshotWriter&& other) noexcept;
    SnapshotWriter& operator=(SnapshotWriter&&) = delete;
    ~SnapshotWriter();

    [[nodiscard]] int memory_fd() const { return memory_fd_.get(); }
    // `image` is what memory.bin holds; `content` the rest.
    [[nodiscard]] Result<WrittenSnapshot> finish(const SnapshotContent& content, const MemoryImage& image);

private:
    SnapshotWriter() = default;

    std::string dir_;
    std::string partial_;
    Fd dirfd_;
    Fd memory_fd_;
    bool open_ = false;  // DIR.partial exists and is ours to remove
};

// create(), all of `memory` written while the caller keeps it still, finish().
[[nodiscard]] Result<WrittenSnapshot> write_snapshot(const std::string& dir, const SnapshotContent& content,
                                                     const GuestMemory& memory);

// What snapshot.json says, checked: format, version, engine, machine time, the machine's
// configuration (an object, the machine layer's to check), notes, and each file's size and hash.
struct Manifest {
    SnapshotContent content;  // without sections
    uint64_t state_size = 0;
    uint64_t state_hash = 0;
    uint64_t memory_size = 0;
    uint64_t memory_hash = 0;
};
[[nodiscard]] Result<Manifest> parse_manifest(std::span<const uint8_t> bytes);

struct OpenedSnapshot {
    SnapshotContent content;
    MemoryImage memory;
    Fd memory_file;  // memory.bin, read-only, to be mapped
};

[[nodiscard]] Result<OpenedSnapshot> open_snapshot(const std::string& dir);

}  // namespace strata::snapshot
