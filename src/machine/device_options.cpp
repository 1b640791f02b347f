#include "machine/device_options.hpp"

#include <algorithm>
#include <cstdint>

#include "base/units.hpp"

namespace strata {

namespace {

// Splits at single commas; ",," is a comma inside an item.
std::vector<std::string> split_items(std::string_view text) {
    std::vector<std::string> items(1);
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] != ',') {
            items.back() += text[i];
        } else if (i + 1 < text.size() && text[i + 1] == ',') {
            items.back() += ',';
            ++i;
        } else {
            items.emplace_back();
        }
    }
    return items;
}

}  // namespace

Result<OptionList> OptionList::parse(std::string_view text, bool head_required) {
    std::vector<std::string> items = split_items(text);
    if (!head_required && items.front().find('=') != std::string::npos) items.insert(items.begin(), std::string());
    OptionList list;
    list.head_ = std::move(items.front());
    if (head_required && list.head_.empty()) return fail("'{}' starts with an empty item", text);
    for (size_t i = 1; i < items.size(); ++i) {
        const std::string& item = items[i];
        size_t equals = item.find('=');
        if (item.empty()) return fail("'{}' has an empty item (a trailing or doubled comma?)", text);
        if (equals == std::string::npos) return fail("'{}' is not key=value", item);
        if (equals == 0) return fail("'{}' has no key before '='", item);
        list.items_.emplace_back(item.substr(0, equals), item.substr(equals + 1));
    }
    return list;
}

Result<std::optional<std::string>> OptionList::take(std::string_view key) {
    std::vector<std::string> values = take_all(key);
    if (values.size() > 1) return fail("{}= is given {} times; give it once", key, values.size());
    if (values.empty()) return std::optional<std::string>();
    return std::optional<std::string>(std::move(values.front()));
}

std::vector<std::string> OptionList::take_all(std::string_view key) {
    std::vector<std::string> values;
    std::erase_if(items_, [&](const auto& item) {
        if (item.first != key) return false;
        values.push_back(item.second);
        return true;
    });
    return values;
}

Result<void> OptionList::expect_consumed(std::string_view known_keys) const {
    if (items_.empty()) return {};
    return fail("'{}' is not an option here (known: {})", items_.front().first, known_keys);
}

Result<bool> OptionList::parse_switch(std::string_view key, std::string_view value) {
    if (value == "on" || value == "true" || value == "yes") return true;
    if (value == "off" || value == "false" || value == "no") return false;
    return fail("{}='{}' is not on or off", key, value);
}

Result<DiskConfig> parse_disk_option(std::string_view text) {
    auto list = OptionList::parse(text);
    if (!list) return std::unexpected(list.error());
    DiskConfig disk;
    disk.path = list->head();
    auto read_only = list->take("readonly");
    if (!read_only) return std::unexpected(read_only.error());
    if (*read_only) {
        auto on = OptionList::parse_switch("readonly", **read_only);
        if (!on) return std::unexpected(on.error());
        disk.read_only = *on;
    }
    auto serial = list->take("serial");
    if (!serial) return std::unexpected(serial.error());
    if (*serial) disk.serial = **serial;  // its length is checked where the disk is opened
    if (auto r = list->expect_consumed("readonly, serial"); !r) return std::unexpected(r.error());
    return disk;
}

Result<VsockConfig> parse_vsock_option(std::string_view text) {
    auto list = OptionList::parse(text, false);
    if (!list) return std::unexpected(list.error());
    if (!list->head().empty()) return fail("'{}' is not key=value (expected cid=N,socket=PATH)", list->head());
    VsockConfig vsock;
    auto cid = list->take("cid");
    if (!cid) return std::unexpected(cid.error());
    if (!*cid) return fail("cid= is missing (expected cid=N,socket=PATH)");
    // 0 (the hypervisor), 1 (local loopback) and 2 (the host) are taken, and 2^32 - 1 is
    // VMADDR_CID_ANY; the guest's CID is one of the rest (virtio 1.2 §5.10.4, <linux/vm_sockets.h>).
    auto number = parse_count(**cid, 0, UINT64_MAX);
    bool digits = !(*cid)->empty() && (*cid)->find_first_not_of("0123456789") == std::string::npos;
    if (!number && !digits) return fail("cid='{}' is not a number (expected 3 to 4294967294)", **cid);
    if (!number || *number > UINT32_MAX)
        return fail("cid={} is out of range (a CID is 32 bits: expected 3 to 4294967294)", **cid);
    if (*number < 3 || *number == UINT32_MAX)
        return fail("cid={} is reserved (0 hypervisor, 1 local, 2 host, 4294967295 any); give 3 to 4294967294", **cid);
    vsock.cid = *number;
    auto socket = list->take("socket");
    if (!socket) return std::unexpected(socket.error());
    if (!*socket || (*socket)->empty()) return fail("socket=PATH is missing (expected cid=N,socket=PATH)");
    vsock.socket_path = **socket;  // bound, and its length checked, when the VM is built
    if (auto r = list->expect_consumed("cid, socket"); !r) return std::unexpected(r.error());
    return vsock;
}

}  // namespace strata
