#include "machine/device_options.hpp"

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
