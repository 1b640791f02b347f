#include "host/escape_filter.hpp"

#include <gtest/gtest.h>

#include <string>

namespace strata {
namespace {

std::span<const uint8_t> bytes(const std::string& s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(EscapeFilter, PassesOrdinaryInputThrough) {
    EscapeFilter filter;
    std::vector<uint8_t> out;
    EXPECT_EQ(filter.feed(bytes("ls -l\r\x03"), out), EscapeFilter::Command::None);
    EXPECT_EQ(std::string(out.begin(), out.end()), "ls -l\r\x03");
}

TEST(EscapeFilter, CtrlAXQuitsEvenAcrossReads) {
    EscapeFilter filter;
    std::vector<uint8_t> out;
    EXPECT_EQ(filter.feed(bytes("ab\x01"), out), EscapeFilter::Command::None);
    EXPECT_EQ(filter.feed(bytes("xcd"), out), EscapeFilter::Command::Quit);
    EXPECT_EQ(std::string(out.begin(), out.end()), "ab");
}

TEST(EscapeFilter, CtrlACtrlASendsOneAndOthersSendBoth) {
    EscapeFilter filter;
    std::vector<uint8_t> out;
    EXPECT_EQ(filter.feed(bytes("\x01\x01" "\x01q"), out), EscapeFilter::Command::None);
    EXPECT_EQ(std::string(out.begin(), out.end()), "\x01\x01q");
}

TEST(EscapeFilter, CtrlAHAsksForHelp) {
    EscapeFilter filter;
    std::vector<uint8_t> out;
    EXPECT_EQ(filter.feed(bytes("\x01h"), out), EscapeFilter::Command::Help);
    EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace strata
