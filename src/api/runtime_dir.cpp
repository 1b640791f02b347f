#include "api/runtime_dir.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

namespace strata::api {

namespace {

constexpr std::string_view kSuffix = ".sock";

Result<void> check_ours(const std::string& folder) {
    struct stat st {};
    if (::lstat(folder.c_str(), &st) != 0) return fail_errno("socket folder {}", folder);
    if (!S_ISDIR(st.st_mode)) return fail("socket folder {} is not a folder", folder);
    if (st.st_uid != ::geteuid()) return fail("socket folder {} belongs to uid {}, not to you", folder, st.st_uid);
    if (st.st_mode & 077)
        return fail("socket folder {} has mode {:o}; others may use it (chmod 700 it)", folder, st.st_mode & 0777);
    return {};
}

}  // namespace

Result<void> check_vm_name(std::string_view name) {
    if (name.empty() || name.size() > 64) return fail("the name '{}' must have 1 to 64 characters", name);
    bool valid = std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    });
    if (!valid || name.front() == '.' || name.front() == '-')
        return fail("the name '{}' may have only letters, digits, '.', '_' and '-', and not start with '.' or '-'", name);
    return {};
}

Result<std::string> socket_folder(bool create) {
    const char* runtime = std::getenv("XDG_RUNTIME_DIR");
    std::string folder = runtime && runtime[0] == '/' ? fmt::format("{}/strata", runtime)
                                                     : fmt::format("/tmp/strata-{}", ::geteuid());
    if (create && ::mkdir(folder.c_str(), 0700) != 0 && errno != EEXIST) return fail_errno("make socket folder {}", folder);
    if (!create) {
        struct stat st {};
        if (::lstat(folder.c_str(), &st) != 0 && errno == ENOENT) return folder;
    }
    if (auto r = check_ours(folder); !r) return std::unexpected(r.error());
    return folder;
}

Result<std::string> socket_path_for_name(std::string_view name, bool create) {
    if (auto r = check_vm_name(name); !r) return std::unexpected(r.error());
    auto folder = socket_folder(create);
    if (!folder) return folder;
    return fmt::format("{}/{}{}", *folder, name, kSuffix);
}

Result<std::vector<NamedSocket>> named_sockets() {
    auto folder = socket_folder(false);
    if (!folder) return std::unexpected(folder.error());
    std::vector<NamedSocket> found;
    struct CloseDir {
        void operator()(DIR* d) const { ::closedir(d); }
    };
    std::unique_ptr<DIR, CloseDir> dir(::opendir(folder->c_str()));
    if (!dir) {
        if (errno == ENOENT) return found;
        return fail_errno("read socket folder {}", *folder);
    }
    while (dirent* entry = ::readdir(dir.get())) {
        std::string_view file = entry->d_name;
        if (file.size() <= kSuffix.size() || !file.ends_with(kSuffix)) continue;
        std::string_view name = file.substr(0, file.size() - kSuffix.size());
        if (!check_vm_name(name)) continue;
        found.push_back({std::string(name), fmt::format("{}/{}", *folder, file)});
    }
    std::sort(found.begin(), found.end(), [](const NamedSocket& a, const NamedSocket& b) { return a.name < b.name; });
    return found;
}

}  // namespace strata::api
