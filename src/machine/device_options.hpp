// The values of the device flags (--disk, --net, --vsock): a comma-separated list whose first item
// is positional and the rest key=value, as QEMU, kvmtool and Cloud Hypervisor users write them
// ("disk.img,readonly=on"). A comma inside a value is written twice (",,"), as in QEMU.
//
// Every function here reads text a user typed; each error names the flag's item and what is allowed.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "machine/machine_config.hpp"

namespace strata {

class OptionList {
public:
    // "head,key=value,...": the head may be empty only if `head_required` is false, and then a
    // first item with an '=' is a key=value item, not the head ("cid=3,socket=PATH"); every other
    // item needs a key and an '='.
    [[nodiscard]] static Result<OptionList> parse(std::string_view text, bool head_required = true);

    [[nodiscard]] const std::string& head() const { return head_; }
    // The value of `key`, which may be given at most once; it is consumed.
    [[nodiscard]] Result<std::optional<std::string>> take(std::string_view key);
    // Every value of a repeatable `key`, in order; they are consumed.
    [[nodiscard]] std::vector<std::string> take_all(std::string_view key);
    // An error naming the first item nobody took, and the keys that would have been understood.
    [[nodiscard]] Result<void> expect_consumed(std::string_view known_keys) const;

    // "on"/"off" (also "true"/"false", "yes"/"no") for `key`.
    [[nodiscard]] static Result<bool> parse_switch(std::string_view key, std::string_view value);

private:
    std::string head_;
    std::vector<std::pair<std::string, std::string>> items_;
};

// --disk PATH[,readonly=on|off][,serial=TEXT]
[[nodiscard]] Result<DiskConfig> parse_disk_option(std::string_view text);

// --net user[,hostfwd=RULE]...[,mtu=N][,mac=MAC] or --net tap,ifname=NAME[,mac=MAC]
[[nodiscard]] Result<NetConfig> parse_net_option(std::string_view text);
// The parts of it: [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT (HOSTADDR empty: 127.0.0.1;
// GUESTADDR empty: the guest's DHCP address), a unicast MAC as six hexadecimal bytes with colons,
// and a dotted-quad IPv4 address (decimal, no leading zeros).
[[nodiscard]] Result<HostForward> parse_host_forward(std::string_view text);
[[nodiscard]] Result<MacAddress> parse_mac(std::string_view text);
[[nodiscard]] std::optional<Ipv4Address> parse_ipv4(std::string_view text);
// --vsock cid=N,socket=PATH: N from 3 to 2^32 - 2 (0, 1 and 2 and 2^32 - 1 are reserved).
[[nodiscard]] Result<VsockConfig> parse_vsock_option(std::string_view text);

}  // namespace strata
