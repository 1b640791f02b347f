// Unix-domain stream sockets for host-side device back ends (virtio-vsock's host side): a
// listening socket that owns its path and removes it when it goes away, and a non-blocking
// connect. Every socket is non-blocking and close-on-exec; the caller waits on its event loop.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "base/error.hpp"
#include "base/fd.hpp"

namespace strata {

// sun_path holds 108 bytes with the terminating NUL (unix(7)).
constexpr size_t kMaxUnixPathLength = 107;

// A socket bound to `path` and listening. The path must not exist: a stale socket file is
// refused, not removed, since it may belong to a VMM that is still running. A `mode` (e.g. 0600)
// is set on the socket file before it listens, so that nobody it excludes ever connects.
class UnixListener {
public:
    [[nodiscard]] static Result<UnixListener> bind(const std::string& path, int backlog = 64,
                                                   std::optional<mode_t> mode = std::nullopt);
    UnixListener(UnixListener&& other) noexcept;
    UnixListener& operator=(UnixListener&&) = delete;
    UnixListener(const UnixListener&) = delete;
    ~UnixListener();  // unlinks the path if it is still the socket this made

    [[nodiscard]] int fd() const { return fd_.get(); }
    [[nodiscard]] const std::string& path() const { return path_; }
    // The next waiting connection (non-blocking), or an invalid Fd when none is waiting (or one
    // went away before it was taken); fails otherwise (out of descriptors: EMFILE, ENFILE...), and
    // the connection then stays in the backlog.
    [[nodiscard]] Result<Fd> accept() const;

private:
    UnixListener(Fd fd, std::string path, dev_t device, ino_t inode)
        : fd_(std::move(fd)), path_(std::move(path)), device_(device), inode_(inode) {}

    Fd fd_;
    std::string path_;
    dev_t device_ = 0;
    ino_t inode_ = 0;
};

// A non-blocking stream socket connected to the listener at `path`. A Unix socket connects at
// once or not at all (a full backlog is EAGAIN), so nothing is left in progress.
[[nodiscard]] Result<Fd> connect_unix(const std::string& path);

}  // namespace strata
