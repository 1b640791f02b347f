#include "e2e/initramfs_support.hpp"

#include <sys/stat.h>

#include <fstream>
#include <iterator>
#include <set>

#include <fmt/format.h>

namespace strata::e2e {

namespace {

Result<std::vector<uint8_t>> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return fail_errno("initramfs: open {}", path);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) return fail_errno("initramfs: read {}", path);
    return bytes;
}

void pad4(std::vector<uint8_t>& out) {
    while (out.size() % 4 != 0) out.push_back(0);
}

// One entry: the 110-byte header of thirteen 8-digit hex fields, the name with its NUL padded to
// 4 bytes, the data padded to 4 bytes (the newc layout of cpio(5)).
void append_entry(std::vector<uint8_t>& out, uint32_t inode, const std::string& name, uint32_t mode,
                  std::span<const uint8_t> data) {
    uint32_t nlink = (mode & S_IFMT) == S_IFDIR ? 2 : 1;
    std::string header = fmt::format("070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
                                     inode, mode, 0, 0, nlink, 0, data.size(), 0, 0, 0, 0, name.size() + 1, 0);
    out.insert(out.end(), header.begin(), header.end());
    out.insert(out.end(), name.begin(), name.end());
    out.push_back(0);
    pad4(out);
    out.insert(out.end(), data.begin(), data.end());
    pad4(out);
}

}  // namespace

Result<std::vector<uint8_t>> newc_archive(std::span<const GuestFile> files) {
    std::vector<uint8_t> archive;
    std::set<std::string> folders;
    uint32_t inode = 0x5000'0000;  // apart from the base archive's numbers (the kernel links same-numbered files)
    for (const GuestFile& file : files) {
        if (!file.guest_path.starts_with('/') || file.guest_path.size() < 2 || file.guest_path.ends_with('/'))
            return fail("initramfs: guest path '{}' is not an absolute file path", file.guest_path);
        std::string name = file.guest_path.substr(1);  // archive names are relative to the root
        // The parents first (the kernel keeps folders the base archive made; mkdir of one fails quietly).
        for (size_t slash = name.find('/'); slash != std::string::npos; slash = name.find('/', slash + 1)) {
            std::string folder = name.substr(0, slash);
            if (folders.insert(folder).second) append_entry(archive, inode++, folder, S_IFDIR | 0755, {});
        }
        auto bytes = read_file(file.host_path);
        if (!bytes) return std::unexpected(bytes.error());
        append_entry(archive, inode++, name, S_IFREG | (file.mode & 07777), *bytes);
    }
    append_entry(archive, 0, "TRAILER!!!", 0, {});
    return archive;
}

Result<std::string> with_guest_files(const std::string& base, std::span<const GuestFile> files, const std::string& out) {
    auto image = read_file(base);
    if (!image) return std::unexpected(image.error());
    auto archive = newc_archive(files);
    if (!archive) return std::unexpected(archive.error());
    pad4(*image);
    image->insert(image->end(), archive->begin(), archive->end());
    std::ofstream file(out, std::ios::binary | std::ios::trunc);
    file.write(reinterpret_cast<const char*>(image->data()), static_cast<std::streamsize>(image->size()));
    file.close();
    if (!file) return fail_errno("initramfs: write {}", out);
    return out;
}

}  // namespace strata::e2e
