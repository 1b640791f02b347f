#include "host/image_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "base/fd.hpp"
#include "base/units.hpp"

namespace strata {

namespace {

constexpr size_t kChunkSize = 4 * MiB;

// What a file that is not a regular one is, for the message that refuses it.
std::string_view file_type_name(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    return "not a regular file";
}

}  // namespace

Result<std::vector<uint8_t>> read_image_file(const std::string& path, std::string_view what, uint64_t max_size,
                                             const std::function<bool()>& interrupted) {
    // O_NONBLOCK: opening a FIFO without a writer would otherwise wait forever.
    Fd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    if (file.get() < 0) return fail_errno("{} '{}' cannot be opened", what, path);
    struct stat st{};
    if (::fstat(file.get(), &st) != 0) return fail_errno("{} '{}' cannot be examined", what, path);
    if (!S_ISREG(st.st_mode))
        return fail("{} '{}' is {}; it must be a regular file", what, path, file_type_name(st.st_mode));
    uint64_t size = static_cast<uint64_t>(st.st_size);
    if (size == 0) return fail("{} '{}' is empty", what, path);
    if (size > max_size)
        return fail("{} '{}' is {} bytes, more than the {} that guest RAM can hold (see --memory)", what, path, size,
                    format_size(max_size));

    std::vector<uint8_t> bytes(size);
    uint64_t done = 0;
    while (done < size) {
        if (interrupted && interrupted()) return fail("reading {} '{}' was interrupted", what, path);
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(kChunkSize, size - done));
        ssize_t n = ::read(file.get(), bytes.data() + done, chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail_errno("{} '{}' cannot be read", what, path);
        if (n == 0)
            return fail("{} '{}' shrank from {} to {} bytes while it was being read", what, path, size, done);
        done += static_cast<uint64_t>(n);
    }
    return bytes;
}

}  // namespace strata
