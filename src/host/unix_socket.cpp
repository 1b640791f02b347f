#include "host/unix_socket.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <utility>

namespace strata {

namespace {

Result<sockaddr_un> address_of(const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.empty()) return fail("socket path is empty");
    if (path.size() > kMaxUnixPathLength)
        return fail("socket path {} is {} bytes long; a Unix socket's path takes at most {}", path, path.size(),
                    kMaxUnixPathLength);
    if (path.find('\0') != std::string::npos) return fail("socket path {} contains a NUL byte", path);
    std::memcpy(address.sun_path, path.data(), path.size());
    return address;
}

Result<Fd> stream_socket(const std::string& path) {
    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return fail_errno("socket for {}", path);
    return fd;
}

}  // namespace

Result<UnixListener> UnixListener::bind(const std::string& path, int backlog, std::optional<mode_t> mode) {
    auto address = address_of(path);
    if (!address) return std::unexpected(address.error());
    auto fd = stream_socket(path);
    if (!fd) return std::unexpected(fd.error());
    // bind() creates the file; it refuses a path that exists (EADDRINUSE), whatever it is.
    if (::bind(fd->get(), reinterpret_cast<const sockaddr*>(&*address), sizeof(*address)) != 0) {
        if (errno == EADDRINUSE) return fail("socket path {} exists; remove it or choose another", path);
        return fail_errno("bind socket {}", path);
    }
    struct stat made {};
    if (::stat(path.c_str(), &made) != 0) {
        auto error = fail_errno("stat socket {}", path);
        ::unlink(path.c_str());
        return error;
    }
    UnixListener listener(std::move(*fd), path, made.st_dev, made.st_ino);
    // Until listen() nobody can connect, so the mode holds from the first connection on.
    if (mode && ::chmod(path.c_str(), *mode) != 0) return fail_errno("chmod socket {}", path);
    if (::listen(listener.fd(), backlog) != 0) return fail_errno("listen on socket {}", path);
    return listener;
}

UnixListener::UnixListener(UnixListener&& other) noexcept
    : fd_(std::move(other.fd_)), path_(std::exchange(other.path_, {})), device_(other.device_),
      inode_(other.inode_) {}

UnixListener::~UnixListener() {
    if (path_.empty()) return;
    // Only our own socket: someone may have replaced the path since (and then it is theirs).
    struct stat now {};
    if (::lstat(path_.c_str(), &now) == 0 && now.st_dev == device_ && now.st_ino == inode_) ::unlink(path_.c_str());
}

Result<Fd> UnixListener::accept() const {
    for (;;) {
        Fd fd(::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (fd.valid()) return fd;
        if (errno == EINTR) continue;
        // A connection that went away before it was taken is the caller's "none"; so is no connection.
        if (errno == EAGAIN || errno == ECONNABORTED || errno == EPROTO) return Fd();
        return fail_errno("accept on socket {}", path_);
    }
}

Result<Fd> connect_unix(const std::string& path) {
    auto address = address_of(path);
    if (!address) return std::unexpected(address.error());
    auto fd = stream_socket(path);
    if (!fd) return std::unexpected(fd.error());
    int r;
    do {
        r = ::connect(fd->get(), reinterpret_cast<const sockaddr*>(&*address), sizeof(*address));
    } while (r != 0 && errno == EINTR);
    if (r != 0) return fail_errno("connect to socket {}", path);
    return std::move(*fd);
}

}  // namespace strata
