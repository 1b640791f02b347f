#include "loader/kernel_format.hpp"

#include "loader/elf.hpp"
#include "loader/linux_loader.hpp"
#include "loader/multiboot_loader.hpp"

namespace strata {

std::string_view kernel_format_name(KernelFormat format) {
    switch (format) {
    case KernelFormat::BzImage: return "bzImage";
    case KernelFormat::Multiboot: return "multiboot";
    case KernelFormat::ElfVmlinux: return "ELF vmlinux";
    }
    return "unknown";
}

Result<KernelFormat> detect_kernel_format(std::span<const uint8_t> kernel) {
    if (is_bzimage(kernel)) return KernelFormat::BzImage;
    if (is_multiboot(kernel)) return KernelFormat::Multiboot;
    if (is_elf(kernel)) return KernelFormat::ElfVmlinux;
    return fail("kernel image of {} bytes is neither a bzImage, a multiboot kernel nor an ELF file", kernel.size());
}

}  // namespace strata
