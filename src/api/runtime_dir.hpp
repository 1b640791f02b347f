// Where VMs given a --name keep their API sockets, so that `strata ls` finds them and the verbs
// take a name instead of a path: $XDG_RUNTIME_DIR/strata/NAME.sock, or, without XDG_RUNTIME_DIR
// (a su shell, cron, a container), /tmp/strata-UID/NAME.sock. The folder is made mode 0700 and
// used only while it is ours (owner, a real folder, no group or other permissions): otherwise
// someone else could plant or read sockets in it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"

namespace strata::api {

// 1 to 64 of [A-Za-z0-9._-], not starting with '.' or '-'.
[[nodiscard]] Result<void> check_vm_name(std::string_view name);

// The folder, made if `create` and missing, checked either way.
[[nodiscard]] Result<std::string> socket_folder(bool create);

// socket_folder() + NAME.sock, the name checked.
[[nodiscard]] Result<std::string> socket_path_for_name(std::string_view name, bool create);

struct NamedSocket {
    std::string name;
    std::string path;
};
// The sockets in the folder, by name; none when the folder does not exist.
[[nodiscard]] Result<std::vector<NamedSocket>> named_sockets();

}  // namespace strata::api
