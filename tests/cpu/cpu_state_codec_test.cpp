// The snapshot encoding of a vCPU's state: what an engine reports reads back equal, to the last
// field, and a section that is short, has an MSR a vCPU's state does not carry, or an MP state or
// exception vector out of range is refused.
#include "cpu/cpu_state_codec.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

namespace strata {
namespace {

CpuState busy_state() {
    CpuState s = real_mode_at(0x9000);
    for (unsigned i = 0; i < 16; ++i) s.gpr[i] = 0x1111'0000'0000'0000ull * (i + 1) + i;
    s.rip = 0xffff'ffff'8100'0000;
    s.rflags = 0x246;
    s.cs = flat_code64();
    s.ss = flat_data(0x18);
    s.fs.base = 0x7fff'1234'5000;
    s.gdt = {.base = 0xffff'8880'0000'1000, .limit = 0x7f};
    s.cr0 = 0x8005'0033;
    s.cr3 = 0x1234'5000;
    s.cr4 = 0x3606f0;
    s.efer = 0xd01;
    ExtendedCpuState& x = s.extended.emplace();
    x.fpu.st[3][9] = 0x40;
    x.fpu.xmm[15][0] = 0xee;
    x.fpu.mxcsr = 0x1fa0;
    x.debug.dr[2] = 0xdead'beef;
    x.xcr0 = 3;
    x.msrs = {{kTscMsr, 123456789}, {0xc000'0082, 0xffff'ffff'8160'0000}, {kTscDeadlineMsr, 987654321}};
    x.events.exception = {.injected = false, .pending = true, .vector = 14, .has_error_code = true, .error_code = 2};
    x.events.nmi.masked = true;
    x.events.interrupt_shadow = 1;
    x.mp_state = MpState::Halted;
    x.lapic[0x20] = 0x01;
    x.lapic[0x380] = 0x40;
    return s;
}

bool same(const CpuState& a, const CpuState& b) {
    StateWriter wa, wb;
    encode_cpu_state(wa, a);
    encode_cpu_state(wb, b);
    return std::ranges::equal(wa.view(), wb.view());
}

TEST(CpuStateCodec, AReportedStateReadsBackEqual) {
    CpuState original = busy_state();
    StateWriter out;
    encode_cpu_state(out, original);
    StateReader in(out.view(), "vcpu/0");
    CpuState decoded = decode_cpu_state(in);
    ASSERT_TRUE(in.finish()) << in.finish().error().message;
    EXPECT_EQ(decoded.gpr, original.gpr);
    EXPECT_EQ(decoded.rip, original.rip);
    EXPECT_EQ(decoded.fs.base, original.fs.base);
    EXPECT_EQ(decoded.cs.l, true);
    EXPECT_EQ(decoded.extended->fpu, original.extended->fpu);
    EXPECT_EQ(decoded.extended->msrs, original.extended->msrs);
    EXPECT_EQ(decoded.extended->lapic, original.extended->lapic);
    EXPECT_EQ(decoded.extended->mp_state, MpState::Halted);
    EXPECT_TRUE(decoded.extended->events.exception.pending);
    EXPECT_TRUE(same(decoded, original)) << "every field";
}

TEST(CpuStateCodec, EveryTruncationIsRefused) {
    StateWriter out;
    encode_cpu_state(out, busy_state());
    for (size_t cut = 0; cut < out.view().size(); cut += 7) {
        StateReader in(out.view().first(cut), "vcpu/0");
        (void)decode_cpu_state(in);
        EXPECT_FALSE(in.finish()) << "cut at " << cut;
    }
}

// Re-encodes `state` with one byte patched at the position `find` locates in the encoding.
std::string refusal_with(std::function<void(CpuState&)> change) {
    CpuState state = busy_state();
    change(state);
    StateWriter out;
    encode_cpu_state(out, state);
    StateReader in(out.view(), "vcpu/0");
    (void)decode_cpu_state(in);
    auto done = in.finish();
    return done ? "" : done.error().message;
}

TEST(CpuStateCodec, WhatNoVcpuHoldsIsRefused) {
    EXPECT_NE(refusal_with([](CpuState& s) { s.extended->msrs.push_back({0x1234, 1}); }).find("MSR 0x1234 is not one"),
              std::string::npos);
    EXPECT_NE(refusal_with([](CpuState& s) { s.extended->msrs.push_back({kTscMsr, 1}); }).find("given twice"),
              std::string::npos);
    EXPECT_NE(refusal_with([](CpuState& s) { s.extended->events.exception.vector = 40; }).find("not an exception"),
              std::string::npos);
    EXPECT_NE(refusal_with([](CpuState& s) { s.extended->mp_state = static_cast<MpState>(9); }).find("MP state is 9"),
              std::string::npos);
    EXPECT_NE(refusal_with([](CpuState& s) { s.ds.dpl = 4; }).find("type or DPL"), std::string::npos);
}

}  // namespace
}  // namespace strata
