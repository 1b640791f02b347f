// StateReader over snapshot bytes: what StateWriter wrote reads back, and anything short, out of
// range or left over is refused with the field's name, never read past.
#include "base/state_stream.hpp"

#include <gtest/gtest.h>

namespace strata {
namespace {

TEST(StateStream, WhatIsWrittenReadsBack) {
    StateWriter out;
    out.u8(0xab);
    out.u16(0x1234);
    out.u32(0xdeadbeef);
    out.u64(0x0102030405060708);
    out.i64(-5);
    out.boolean(true);
    out.string("com1");
    std::array<uint8_t, 3> raw{1, 2, 3};
    out.bytes(raw);

    StateReader in(out.view(), "test");
    EXPECT_EQ(in.u8("a"), 0xab);
    EXPECT_EQ(in.u16("b"), 0x1234);
    EXPECT_EQ(in.u32("c"), 0xdeadbeefu);
    EXPECT_EQ(in.u64("d"), 0x0102030405060708u);
    EXPECT_EQ(in.i64("e"), -5);
    EXPECT_TRUE(in.boolean("f"));
    EXPECT_EQ(in.string(16, "g"), "com1");
    EXPECT_EQ((in.array<3>("h")), raw);
    EXPECT_TRUE(in.finish());
}

TEST(StateStream, ShortInputFailsNamingTheField) {
    StateWriter out;
    out.u16(7);
    StateReader in(out.view(), "COM1");
    EXPECT_EQ(in.u32("divisor"), 0u);
    EXPECT_EQ(in.u8("later"), 0u) << "reads after a failure give zeros";
    auto done = in.finish();
    ASSERT_FALSE(done);
    EXPECT_NE(done.error().message.find("COM1: divisor is cut off"), std::string::npos) << done.error().message;
}

TEST(StateStream, BadBooleanAndEnumAreRefused) {
    std::array<uint8_t, 1> two{2};
    StateReader in(two, "x");
    in.boolean("enabled");
    EXPECT_NE(in.finish().error().message.find("enabled is 2, not a boolean"), std::string::npos);

    StateReader e(two, "x");
    e.u8_at_most(1, "mode");
    EXPECT_FALSE(e.finish());
}

TEST(StateStream, LengthsAreBoundedBeforeAnythingIsRead) {
    StateWriter out;
    out.u32(0xffff'ffff);  // a blob claiming 4 GiB
    StateReader in(out.view(), "x");
    EXPECT_TRUE(in.blob(64, "name").empty());
    EXPECT_NE(in.finish().error().message.find("more than the 64 allowed"), std::string::npos);
}

TEST(StateStream, AnOptionalIsItsPresenceThenItsValue) {
    StateWriter out;
    out.optional_i64(std::nullopt);
    out.optional_i64(-5);
    out.optional_u64(9);
    EXPECT_EQ(out.view().size(), 1u + 9 + 9);
    StateReader in(out.view(), "x");
    EXPECT_EQ(in.optional_i64("a"), std::nullopt);
    EXPECT_EQ(in.optional_i64("b"), -5);
    EXPECT_EQ(in.optional_u64("c"), 9u);
    EXPECT_TRUE(in.finish());
}

TEST(StateStream, AnEmptyBlobReadsBackEmpty) {
    StateWriter out;
    out.blob({});
    out.u8(7);
    StateReader in(out.view(), "x");
    EXPECT_TRUE(in.blob(64, "name").empty());
    EXPECT_EQ(in.u8("after"), 7);
    EXPECT_TRUE(in.finish());
}

TEST(StateStream, LeftOverBytesAreAnError) {
    StateWriter out;
    out.u32(1);
    out.u8(0);
    StateReader in(out.view(), "RTC");
    in.u32("x");
    auto done = in.finish();
    ASSERT_FALSE(done);
    EXPECT_EQ(done.error().message, "RTC: 1 bytes left over after its state");
}

TEST(StateStream, CheckKeepsTheFirstFailure) {
    std::array<uint8_t, 0> none{};
    StateReader in(none, "x");
    in.check(false, "first");
    in.check(false, "second");
    EXPECT_EQ(in.finish().error().message, "x: first");
}

}  // namespace
}  // namespace strata
