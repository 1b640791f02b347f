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

}  // namespace
}  // namespace strata
