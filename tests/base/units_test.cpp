#include "base/units.hpp"

#include <gtest/gtest.h>

namespace strata {
namespace {

TEST(ParseSize, AcceptsSuffixes) {
    EXPECT_EQ(parse_size("512M").value(), 512ull << 20);
    EXPECT_EQ(parse_size("2G").value(), 2ull << 30);
    EXPECT_EQ(parse_size("64").value(), 64ull << 20);
    EXPECT_EQ(parse_size("4096K").value(), 4ull << 20);
}

TEST(ParseSize, RejectsJunkNamingIt) {
    auto bad = parse_size("12Q");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("12Q"), std::string::npos);
    EXPECT_FALSE(parse_size(""));
    EXPECT_FALSE(parse_size("M"));
    EXPECT_FALSE(parse_size("-1G"));
    EXPECT_FALSE(parse_size("99999999999999999999G"));
    EXPECT_FALSE(parse_size("18446744073709551615G"));
}

}  // namespace
}  // namespace strata
