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

// "name='value' is not ...": the form every --net error takes.
std::string quoted(std::string_view key, std::string_view value) { return fmt::format("{}='{}'", key, value); }

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Linux's rule for interface names (dev_valid_name): 1 to IFNAMSIZ - 1 = 15 bytes, not "." or
// "..", and no '/', ':' or white space.
bool valid_interface_name(std::string_view name) {
    if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
    return std::ranges::none_of(name, [](char c) {
        return c == '/' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' ||
               c == '\0';
    });
}

Result<uint16_t> parse_port(std::string_view rule, std::string_view which, std::string_view text) {
    auto port = parse_count(text, 1, 65535);
    if (!port) return fail("{}: {} port {}", quoted("hostfwd", rule), which, port.error().message);
    return static_cast<uint16_t>(*port);
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


std::optional<Ipv4Address> parse_ipv4(std::string_view text) {
    Ipv4Address address{};
    size_t part = 0;
    size_t digits = 0;
    unsigned value = 0;
    for (size_t i = 0; i <= text.size(); ++i) {
        if (i == text.size() || text[i] == '.') {
            if (digits == 0 || part == 4) return std::nullopt;
            address[part++] = static_cast<uint8_t>(value);
            digits = 0;
            value = 0;
            continue;
        }
        char c = text[i];
        // At most three digits, no leading zero (which some parsers read as octal), at most 255.
        if (c < '0' || c > '9' || digits == 3 || (digits == 1 && value == 0)) return std::nullopt;
        value = value * 10 + static_cast<unsigned>(c - '0');
        ++digits;
        if (value > 255) return std::nullopt;
    }
    if (part != 4) return std::nullopt;
    return address;
}

Result<MacAddress> parse_mac(std::string_view text) {
    MacAddress mac{};
    bool shaped = text.size() == 17;
    for (size_t i = 0; shaped && i < mac.size(); ++i) {
        int high = hex_digit(text[3 * i]), low = hex_digit(text[3 * i + 1]);
        if (high < 0 || low < 0 || (i < 5 && text[3 * i + 2] != ':')) shaped = false;
        else mac[i] = static_cast<uint8_t>(high << 4 | low);
    }
    if (!shaped) return fail("{} is not six hexadecimal bytes separated by colons (as 52:54:00:12:34:56)", quoted("mac", text));
    // The I/G bit: a multicast address is a group's, never one interface's (IEEE 802 §8.2).
    if (mac[0] & 1) return fail("{} is a multicast address (its first byte is odd), which no interface can have", quoted("mac", text));
    if (std::ranges::all_of(mac, [](uint8_t b) { return b == 0; })) return fail("{} is all zeros", quoted("mac", text));
    return mac;
}

Result<HostForward> parse_host_forward(std::string_view text) {
    auto malformed = [&] {
        return fail("{} is not [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT", quoted("hostfwd", text));
    };
    size_t protocol_end = text.find(':');
    size_t dash = text.find('-');
    if (protocol_end == std::string_view::npos || dash == std::string_view::npos || dash < protocol_end ||
        text.find('-', dash + 1) != std::string_view::npos)
        return malformed();
    std::string_view protocol = text.substr(0, protocol_end);
    std::string_view host = text.substr(protocol_end + 1, dash - protocol_end - 1);
    std::string_view guest = text.substr(dash + 1);
    size_t host_colon = host.find(':'), guest_colon = guest.find(':');
    if (host_colon == std::string_view::npos || host.find(':', host_colon + 1) != std::string_view::npos ||
        guest_colon == std::string_view::npos || guest.find(':', guest_colon + 1) != std::string_view::npos)
        return malformed();

    HostForward forward;
    if (protocol == "udp") forward.protocol = HostForward::Protocol::Udp;
    else if (protocol != "tcp" && !protocol.empty())
        return fail("{}: '{}' is not a protocol (expected tcp or udp)", quoted("hostfwd", text), protocol);
    auto address = [&](std::string_view which, std::string_view part) -> Result<std::optional<Ipv4Address>> {
        if (part.empty()) return std::optional<Ipv4Address>();
        auto ip = parse_ipv4(part);
        if (!ip) return fail("{}: {} address '{}' is not an IPv4 address (a.b.c.d)", quoted("hostfwd", text), which, part);
        return ip;
    };
    auto host_address = address("host", host.substr(0, host_colon));
    if (!host_address) return std::unexpected(host_address.error());
    if (*host_address) forward.host_address = **host_address;
    auto host_port = parse_port(text, "host", host.substr(host_colon + 1));
    if (!host_port) return std::unexpected(host_port.error());
    forward.host_port = *host_port;
    auto guest_address = address("guest", guest.substr(0, guest_colon));
    if (!guest_address) return std::unexpected(guest_address.error());
    forward.guest_address = *guest_address;
    auto guest_port = parse_port(text, "guest", guest.substr(guest_colon + 1));
    if (!guest_port) return std::unexpected(guest_port.error());
    forward.guest_port = *guest_port;
    return forward;
}

Result<NetConfig> parse_net_option(std::string_view text) {
    auto list = OptionList::parse(text);
    if (!list) return std::unexpected(list.error());
    NetConfig net;
    net.text = std::string(text);
    if (list->head() == "user") {
        net.mode = NetConfig::Mode::User;
        for (const std::string& rule : list->take_all("hostfwd")) {
            auto forward = parse_host_forward(rule);
            if (!forward) return std::unexpected(forward.error());
            net.forwards.push_back(*forward);
        }
        auto mtu = list->take("mtu");
        if (!mtu) return std::unexpected(mtu.error());
        if (*mtu) {
            auto value = parse_count(**mtu, SlirpBackend::kMinMtu, SlirpBackend::kMaxMtu);
            if (!value) return fail("{}: {}", quoted("mtu", **mtu), value.error().message);
            net.mtu = static_cast<uint16_t>(*value);
        }
    } else if (list->head() == "tap") {
        net.mode = NetConfig::Mode::Tap;
        auto ifname = list->take("ifname");
        if (!ifname) return std::unexpected(ifname.error());
        if (!*ifname) return fail("tap needs ifname=NAME, the host's TAP interface");
        if (!valid_interface_name(**ifname))
            return fail("{} is not an interface name (1 to 15 characters, none of them '/', ':' or a space)",
                        quoted("ifname", **ifname));
        net.ifname = **ifname;
    } else {
        return fail("'{}' is not a network mode (expected user or tap)", list->head());
    }
    auto mac = list->take("mac");
    if (!mac) return std::unexpected(mac.error());
    if (*mac) {
        auto parsed = parse_mac(**mac);
        if (!parsed) return std::unexpected(parsed.error());
        net.mac = *parsed;
    }
    if (auto r = list->expect_consumed(net.mode == NetConfig::Mode::User ? "hostfwd, mtu, mac" : "ifname, mac"); !r)
        return std::unexpected(r.error());
    return net;
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
