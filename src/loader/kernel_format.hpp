// Which loader an image needs, told by its magic: the machine layer's single entry to the loaders.
//
// Features: bzImage ("HdrS" / 0xAA55), multiboot v1 (header in the first 8 KiB; checked before ELF
//           because kvm-unit-tests' .flat files are ELF32 with a multiboot header), ELF vmlinux.
// Spec: see linux_loader.hpp and multiboot_loader.hpp.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "base/error.hpp"

namespace strata {

enum class KernelFormat { BzImage, Multiboot, ElfVmlinux };

[[nodiscard]] std::string_view kernel_format_name(KernelFormat format);

// Fails naming the image size when no known magic is present.
[[nodiscard]] Result<KernelFormat> detect_kernel_format(std::span<const uint8_t> kernel);

}  // namespace strata
