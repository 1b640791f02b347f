// Reading a guest image (kernel, initrd) from a file the user named: the one way images enter
// Strata.
//
// Features: only regular files are read (a directory, FIFO, socket or device such as /dev/zero is
//           refused by name, and opening never blocks: O_NONBLOCK until the type is known); the size
//           is capped before anything is read; the file is read in chunks, with `interrupted` asked
//           between them, so that a signal ends even a long read of a slow file system.
// Missing:  streams (pipes, process substitution): such an image would need a stated bound.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"

namespace strata {

// Reads the regular file at `path` whole. `what` names it in messages ("kernel", "initrd");
// `max_size` is the largest size accepted (what guest RAM can hold); `interrupted`, when given, is
// called between chunks and stops the read when it returns true (the message then says so).
[[nodiscard]] Result<std::vector<uint8_t>> read_image_file(const std::string& path, std::string_view what,
                                                           uint64_t max_size,
                                                           const std::function<bool()>& interrupted = {});

}  // namespace strata
