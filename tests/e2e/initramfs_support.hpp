// Initramfs images for end-to-end tests and benchmarks that need programs of their own in the
// guest (guests/linux, built static into STRATA_GUEST_DIR "/linux"): the default guest's
// initramfs with a second newc cpio archive appended that adds them. Linux unpacks every archive
// of a concatenation in turn, compressed or not (Documentation/driver-api/early-userspace/
// buffer-format.rst), so the default initramfs is used as it is, without unpacking it.
//
// Use: with_guest_files(guest.initrd, {{"/bin/vsock_tool", STRATA_GUEST_DIR "/linux/vsock_tool"}},
//                       ::testing::TempDir() + "strata-vsock-initramfs")
// and boot with --initrd on the path it returns.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/error.hpp"

namespace strata::e2e {

struct GuestFile {
    std::string guest_path;  // absolute, e.g. "/bin/vsock_tool"; its parent folders are made too
    std::string host_path;   // the file whose bytes it gets
    uint32_t mode = 0755;    // permission bits
};

// Writes `out`: `base` (any initramfs the kernel takes), zero padding to a 4-byte boundary (where
// the kernel looks for the next archive), then a newc archive with `files`. Returns `out`.
[[nodiscard]] Result<std::string> with_guest_files(const std::string& base, std::span<const GuestFile> files,
                                                   const std::string& out);

// A newc ("070701") cpio archive of `files`, ending with its TRAILER!!! entry.
[[nodiscard]] Result<std::vector<uint8_t>> newc_archive(std::span<const GuestFile> files);

}  // namespace strata::e2e
