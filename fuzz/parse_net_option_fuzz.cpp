// Fuzzes parse_net_option(), the parser of --net (user networking with host forwards, TAP
// interfaces, MAC addresses), and the parsers it is made of.
//
// Input: the whole input is the text.
// Invariants beyond "no crash, no UB, no leak":
//   - a success keeps the text, and is either user mode with forwards whose ports are 1 to 65535
//     and no interface name, or TAP mode with an interface name Linux accepts (1 to 15 bytes, no
//     '/', ':', white space or NUL, not "." or "..") and no forwards; a user network's MTU is
//     576 to 65520; a MAC, when given, is
//     unicast and not all zeros;
//   - every forward and MAC reads back: parse_host_forward(format_forward(f)) is f, and
//     parse_mac(format_mac(m)) is m;
//   - parse_ipv4 of the whole text, when it succeeds, gives four numbers format_ipv4 writes back
//     as exactly the text (a dotted quad has one spelling);
//   - a failure has a message.
#include <string>
#include <string_view>

#include "fuzz_support.hpp"
#include "machine/device_options.hpp"

using namespace strata;

namespace {

bool valid_interface_name(std::string_view name) {
    if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
    for (char c : name)
        if (c == '/' || c == ':' || c == '\0' || c == ' ' || (c >= '\t' && c <= '\r')) return false;
    return true;
}

bool same_forward(const HostForward& a, const HostForward& b) {
    return a.protocol == b.protocol && a.host_address == b.host_address && a.host_port == b.host_port &&
           a.guest_address == b.guest_address && a.guest_port == b.guest_port;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);

    if (auto ip = parse_ipv4(text))
        FUZZ_CHECK(format_ipv4(*ip) == text, "parse_ipv4(\"{}\") reads back as {}", text, format_ipv4(*ip));

    auto net = parse_net_option(text);
    if (!net) {
        FUZZ_CHECK(!net.error().message.empty(), "parse_net_option(\"{}\") failed without a message", text);
        return 0;
    }
    FUZZ_CHECK(net->text == text, "the text \"{}\" came back as \"{}\"", text, net->text);
    if (net->mode == NetConfig::Mode::User) {
        FUZZ_CHECK(net->ifname.empty(), "user mode with ifname \"{}\"", net->ifname);
        FUZZ_CHECK(net->mtu >= SlirpBackend::kMinMtu && net->mtu <= SlirpBackend::kMaxMtu, "MTU {} from \"{}\"",
                   net->mtu, text);
    } else {
        FUZZ_CHECK(net->forwards.empty(), "TAP mode with {} forwards", net->forwards.size());
        FUZZ_CHECK(valid_interface_name(net->ifname), "interface name \"{}\" from \"{}\"", net->ifname, text);
    }
    for (const HostForward& forward : net->forwards) {
        FUZZ_CHECK(forward.host_port != 0 && forward.guest_port != 0, "a port 0 in \"{}\"", text);
        std::string written = format_forward(forward);
        auto again = parse_host_forward(written);
        FUZZ_CHECK(again && same_forward(*again, forward), "forward \"{}\" does not read back", written);
    }
    if (net->mac) {
        const MacAddress& mac = *net->mac;
        FUZZ_CHECK(!(mac[0] & 1), "multicast MAC {} from \"{}\"", format_mac(mac), text);
        FUZZ_CHECK(mac != MacAddress{}, "all-zero MAC from \"{}\"", text);
        auto again = parse_mac(format_mac(mac));
        FUZZ_CHECK(again && *again == mac, "MAC {} does not read back", format_mac(mac));
    }
    return 0;
}
