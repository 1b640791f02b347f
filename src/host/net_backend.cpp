#include "host/net_backend.hpp"

#include <fmt/format.h>

namespace strata {

std::string format_mac(const MacAddress& mac) {
    return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

std::string format_ipv4(const Ipv4Address& ip) { return fmt::format("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3]); }

}  // namespace strata
