#include "machine/device_options.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace strata {
namespace {

TEST(OptionList, SplitsAHeadAndKeyValuesWithDoubledCommasInside) {
    auto list = OptionList::parse("my,,disk.img,serial=a,,b,x=");
    ASSERT_TRUE(list) << list.error().message;
    EXPECT_EQ(list->head(), "my,disk.img");
    auto serial = list->take("serial");
    ASSERT_TRUE(serial);
    EXPECT_EQ(serial->value_or("?"), "a,b");
    auto x = list->take("x");
    ASSERT_TRUE(x && *x);
    EXPECT_EQ(**x, "") << "an empty value is a value";
    EXPECT_TRUE(list->expect_consumed(""));
}

TEST(OptionList, RefusesItemsThatAreNotKeyValue) {
    for (const char* text : {"", ",a=1", "disk,", "disk,,,", "disk,readonly", "disk,=on", "disk,a=1,,"}) {
        auto list = OptionList::parse(text);
        // ",,," is a comma in the head and then an empty item; "a=1,," a comma in the value.
        if (std::string_view(text) == "disk,a=1,,") {
            ASSERT_TRUE(list) << text;
            continue;
        }
        EXPECT_FALSE(list) << "'" << text << "' parsed";
    }
    auto bare = OptionList::parse("disk,readonly");
    ASSERT_FALSE(bare);
    EXPECT_EQ(bare.error().message, "'readonly' is not key=value");
    EXPECT_TRUE(OptionList::parse(",a=1", false)) << "a list without a head, where none is needed";
}

TEST(OptionList, AKeyGivenTwiceIsRefusedUnlessRepeatableAndLeftoversAreNamed) {
    auto list = OptionList::parse("user,hostfwd=a,hostfwd=b,readonly=on,readonly=off,colour=blue");
    ASSERT_TRUE(list);
    EXPECT_EQ(list->take_all("hostfwd"), (std::vector<std::string>{"a", "b"}));
    auto twice = list->take("readonly");
    ASSERT_FALSE(twice);
    EXPECT_EQ(twice.error().message, "readonly= is given 2 times; give it once");
    auto left = list->expect_consumed("readonly, hostfwd");
    ASSERT_FALSE(left);
    EXPECT_EQ(left.error().message, "'colour' is not an option here (known: readonly, hostfwd)");
}

TEST(DiskOption, ReadsPathReadonlyAndSerial) {
    auto plain = parse_disk_option("/var/disk.img");
    ASSERT_TRUE(plain) << plain.error().message;
    EXPECT_EQ(plain->path, "/var/disk.img");
    EXPECT_FALSE(plain->read_only);
    EXPECT_EQ(plain->serial, "");
    auto ro = parse_disk_option("a.img,readonly=on,serial=root");
    ASSERT_TRUE(ro) << ro.error().message;
    EXPECT_TRUE(ro->read_only);
    EXPECT_EQ(ro->serial, "root");
    auto off = parse_disk_option("a.img,readonly=off");
    ASSERT_TRUE(off);
    EXPECT_FALSE(off->read_only);
}

TEST(DiskOption, BadValuesAreNamed) {
    auto maybe = parse_disk_option("a.img,readonly=maybe");
    ASSERT_FALSE(maybe);
    EXPECT_EQ(maybe.error().message, "readonly='maybe' is not on or off");
    auto unknown = parse_disk_option("a.img,cache=none");
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error().message, "'cache' is not an option here (known: readonly, serial)");
    EXPECT_FALSE(parse_disk_option(",readonly=on")) << "no path";
}

TEST(NetOption, UserWithForwardsAndAMac) {
    auto plain = parse_net_option("user");
    ASSERT_TRUE(plain) << plain.error().message;
    EXPECT_EQ(plain->mode, NetConfig::Mode::User);
    EXPECT_TRUE(plain->forwards.empty());
    EXPECT_FALSE(plain->mac);
    EXPECT_EQ(plain->text, "user");

    auto net = parse_net_option("user,hostfwd=tcp::8080-:80,hostfwd=udp:0.0.0.0:5353-10.0.2.20:53,mac=52:54:00:AB:cd:01");
    ASSERT_TRUE(net) << net.error().message;
    ASSERT_EQ(net->forwards.size(), 2u);
    const HostForward& tcp = net->forwards[0];
    EXPECT_EQ(tcp.protocol, HostForward::Protocol::Tcp);
    EXPECT_EQ(tcp.host_address, (Ipv4Address{127, 0, 0, 1})) << "an empty host address is the loopback one";
    EXPECT_EQ(tcp.host_port, 8080);
    EXPECT_FALSE(tcp.guest_address);
    EXPECT_EQ(tcp.guest_port, 80);
    const HostForward& udp = net->forwards[1];
    EXPECT_EQ(udp.protocol, HostForward::Protocol::Udp);
    EXPECT_EQ(udp.host_address, (Ipv4Address{0, 0, 0, 0}));
    EXPECT_EQ(udp.host_port, 5353);
    EXPECT_EQ(udp.guest_address, (Ipv4Address{10, 0, 2, 20}));
    EXPECT_EQ(udp.guest_port, 53);
    EXPECT_EQ(net->mac, (MacAddress{0x52, 0x54, 0x00, 0xab, 0xcd, 0x01}));
    EXPECT_EQ(format_forward(tcp), "tcp:127.0.0.1:8080-:80");
    EXPECT_EQ(format_forward(udp), "udp:0.0.0.0:5353-10.0.2.20:53");

    EXPECT_EQ(net->mtu, 65520) << "user networking's default MTU";
    auto small = parse_net_option("user,mtu=1500");
    ASSERT_TRUE(small) << small.error().message;
    EXPECT_EQ(small->mtu, 1500);
    EXPECT_EQ(parse_net_option("user,mtu=576")->mtu, 576);
    EXPECT_EQ(parse_net_option("user,mtu=65520")->mtu, 65520);

    auto bare = parse_host_forward("::2222-:22");
    ASSERT_TRUE(bare) << "no protocol is tcp";
    EXPECT_EQ(bare->protocol, HostForward::Protocol::Tcp);
}

TEST(NetOption, TapNeedsAnInterfaceName) {
    auto tap = parse_net_option("tap,ifname=strata0,mac=02:00:00:00:00:01");
    ASSERT_TRUE(tap) << tap.error().message;
    EXPECT_EQ(tap->mode, NetConfig::Mode::Tap);
    EXPECT_EQ(tap->ifname, "strata0");
    EXPECT_EQ(tap->mac, (MacAddress{2, 0, 0, 0, 0, 1}));
    EXPECT_TRUE(parse_net_option("tap,ifname=123456789012345")) << "15 characters";
    auto missing = parse_net_option("tap");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().message, "tap needs ifname=NAME, the host's TAP interface");
    for (const char* name : {"1234567890123456", "a/b", "a:b", "a b", ".", ".."}) {
        auto bad = parse_net_option(std::string("tap,ifname=") + name);
        ASSERT_FALSE(bad) << name;
        EXPECT_EQ(bad.error().message, fmt::format("ifname='{}' is not an interface name (1 to 15 characters, none "
                                                   "of them '/', ':' or a space)", name));
    }
    EXPECT_FALSE(parse_net_option("tap,ifname="));
}

TEST(NetOption, BadValuesAreNamed) {
    auto expect_error = [](std::string_view text, std::string_view message) {
        auto net = parse_net_option(text);
        ASSERT_FALSE(net) << text;
        EXPECT_EQ(net.error().message, message) << text;
    };
    expect_error("bridge", "'bridge' is not a network mode (expected user or tap)");
    expect_error("user,ifname=x", "'ifname' is not an option here (known: hostfwd, mtu, mac)");
    expect_error("user,mtu=575", "mtu='575': '575' is out of range (expected 576 to 65520)");
    expect_error("user,mtu=65521", "mtu='65521': '65521' is out of range (expected 576 to 65520)");
    expect_error("user,mtu=9k", "mtu='9k': '9k' is not a number (expected 576 to 65520)");
    expect_error("user,mtu=1500,mtu=9000", "mtu= is given 2 times; give it once");
    expect_error("tap,ifname=t0,mtu=1500", "'mtu' is not an option here (known: ifname, mac)");
    expect_error("tap,ifname=t0,hostfwd=tcp::1-:1", "'hostfwd' is not an option here (known: ifname, mac)");
    expect_error("user,mac=52:54:00:12:34:56,mac=52:54:00:12:34:57", "mac= is given 2 times; give it once");
    const char* shape = " is not [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT";
    for (const char* rule : {"tcp", "tcp:8080:80", "tcp::8080", "8080-80", "tcp::8080-80", "tcp:1::8080-:80",
                             "tcp::8080-:80:1", "tcp::80-:80-:80", "tcp-::8080:80"})
        expect_error(std::string("user,hostfwd=") + rule, fmt::format("hostfwd='{}'{}", rule, shape));
    expect_error("user,hostfwd=sctp::1-:2", "hostfwd='sctp::1-:2': 'sctp' is not a protocol (expected tcp or udp)");
    expect_error("user,hostfwd=tcp::0-:80", "hostfwd='tcp::0-:80': host port '0' is out of range (expected 1 to 65535)");
    expect_error("user,hostfwd=tcp::65536-:80",
                 "hostfwd='tcp::65536-:80': host port '65536' is out of range (expected 1 to 65535)");
    expect_error("user,hostfwd=tcp::80-:http", "hostfwd='tcp::80-:http': guest port 'http' is not a number (expected 1 to 65535)");
    expect_error("user,hostfwd=tcp::-:80", "hostfwd='tcp::-:80': host port '' is not a number (expected 1 to 65535)");
    expect_error("user,hostfwd=tcp:localhost:80-:80",
                 "hostfwd='tcp:localhost:80-:80': host address 'localhost' is not an IPv4 address (a.b.c.d)");
    expect_error("user,hostfwd=tcp::80-10.0.2:80",
                 "hostfwd='tcp::80-10.0.2:80': guest address '10.0.2' is not an IPv4 address (a.b.c.d)");
    expect_error("user,mac=52:54:00:12:34", "mac='52:54:00:12:34' is not six hexadecimal bytes separated by colons (as "
                                            "52:54:00:12:34:56)");
    expect_error("user,mac=52-54-00-12-34-56", "mac='52-54-00-12-34-56' is not six hexadecimal bytes separated by "
                                               "colons (as 52:54:00:12:34:56)");
    expect_error("user,mac=52:54:00:12:34:5g", "mac='52:54:00:12:34:5g' is not six hexadecimal bytes separated by "
                                               "colons (as 52:54:00:12:34:56)");
    expect_error("user,mac=33:33:00:00:00:01",
                 "mac='33:33:00:00:00:01' is a multicast address (its first byte is odd), which no interface can have");
    expect_error("user,mac=00:00:00:00:00:00", "mac='00:00:00:00:00:00' is all zeros");
}

TEST(NetOption, Ipv4AddressesAreDottedDecimalQuads) {
    EXPECT_EQ(parse_ipv4("10.0.2.15"), (Ipv4Address{10, 0, 2, 15}));
    EXPECT_EQ(parse_ipv4("255.255.255.255"), (Ipv4Address{255, 255, 255, 255}));
    EXPECT_EQ(parse_ipv4("0.0.0.0"), (Ipv4Address{0, 0, 0, 0}));
    for (const char* text : {"", "1", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4.", ".1.2.3", "1..2.3", "01.2.3.4",
                             "1.2.3.0x4", "1.2.3.-4", " 1.2.3.4", "1.2.3.1000", "1.2.3.4/24"})
        EXPECT_FALSE(parse_ipv4(text)) << "'" << text << "'";
}

TEST(OptionList, WithoutAHeadTheFirstItemMayBeAKeyValue) {
    auto list = OptionList::parse("cid=3,socket=/run/v.sock", false);
    ASSERT_TRUE(list) << list.error().message;
    EXPECT_EQ(list->head(), "");
    EXPECT_EQ(list->take("cid")->value_or("?"), "3");
    EXPECT_EQ(list->take("socket")->value_or("?"), "/run/v.sock");
    auto with_head = OptionList::parse("cid=3,socket=/run/v.sock");
    ASSERT_TRUE(with_head);
    EXPECT_EQ(with_head->head(), "cid=3") << "where a head is required, the first item is it";
}

TEST(VsockOption, ReadsCidAndSocket) {
    auto vsock = parse_vsock_option("cid=3,socket=/tmp/v,,1.sock");
    ASSERT_TRUE(vsock) << vsock.error().message;
    EXPECT_EQ(vsock->cid, 3u);
    EXPECT_EQ(vsock->socket_path, "/tmp/v,1.sock");
    auto reversed = parse_vsock_option("socket=v.sock,cid=4294967294");
    ASSERT_TRUE(reversed) << reversed.error().message;
    EXPECT_EQ(reversed->cid, 4294967294u);
    EXPECT_EQ(reversed->socket_path, "v.sock");
}

TEST(VsockOption, ReservedCidsAndBadValuesAreNamed) {
    auto message = [](std::string_view text) {
        auto vsock = parse_vsock_option(text);
        return vsock ? std::string("parsed") : vsock.error().message;
    };
    for (const char* cid : {"0", "1", "2", "4294967295"})
        EXPECT_EQ(message(fmt::format("cid={},socket=v.sock", cid)),
                  fmt::format("cid={} is reserved (0 hypervisor, 1 local, 2 host, 4294967295 any); give 3 to "
                              "4294967294",
                              cid));
    EXPECT_EQ(message("cid=4294967296,socket=v"), "cid=4294967296 is out of range (a CID is 32 bits: expected 3 to 4294967294)");
    EXPECT_EQ(message("cid=99999999999999999999999,socket=v"),
              "cid=99999999999999999999999 is out of range (a CID is 32 bits: expected 3 to 4294967294)");
    EXPECT_EQ(message("cid=0x10,socket=v"), "cid='0x10' is not a number (expected 3 to 4294967294)");
    EXPECT_EQ(message("cid=-3,socket=v"), "cid='-3' is not a number (expected 3 to 4294967294)");
    EXPECT_EQ(message("socket=v"), "cid= is missing (expected cid=N,socket=PATH)");
    EXPECT_EQ(message("cid=3"), "socket=PATH is missing (expected cid=N,socket=PATH)");
    EXPECT_EQ(message("cid=3,socket="), "socket=PATH is missing (expected cid=N,socket=PATH)");
    EXPECT_EQ(message("v.sock,cid=3"), "'v.sock' is not key=value (expected cid=N,socket=PATH)");
    EXPECT_EQ(message("cid=3,socket=v,port=9"), "'port' is not an option here (known: cid, socket)");
    EXPECT_EQ(message("cid=3,cid=4,socket=v"), "cid= is given 2 times; give it once");
}

}  // namespace
}  // namespace strata
