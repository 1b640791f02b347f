// The soft engine's vCPU state beyond the CPU's own registers: the local APIC's register page
// and the TSC, which live beside the CPU, travel through vcpu_state()/set_vcpu_state() as they
// do on the kvm engine (snapshots and moves between engines are built on them).
#include <gtest/gtest.h>

#include <cstring>

#include "engines.hpp"

namespace strata::testing {
namespace {

constexpr uint32_t kTscMsr = 0x10;
constexpr size_t kTprOffset = 0x80;

uint64_t tsc_of(const CpuState& s) {
    for (const MsrValue& m : s.extended->msrs)
        if (m.index == kTscMsr) return m.value;
    ADD_FAILURE() << "no IA32_TSC in the state";
    return 0;
}

TEST(SoftEngineState, LocalApicPageAndTscRoundTrip) {
    GuestMemory memory = GuestMemory::create(1 << 20).value();
    auto engine = make_engine(EngineKind::Soft, memory, 1);
    ASSERT_TRUE(engine) << engine.error().message;
    auto state = (*engine)->vcpu_state(0);
    ASSERT_TRUE(state && state->extended);
    uint32_t tpr = 0x20;
    std::memcpy(state->extended->lapic.data() + kTprOffset, &tpr, 4);
    constexpr uint64_t kTsc = 5'000'000'000'000ull;
    for (MsrValue& m : state->extended->msrs)
        if (m.index == kTscMsr) m.value = kTsc;
    ASSERT_TRUE((*engine)->set_vcpu_state(0, *state));

    auto again = (*engine)->vcpu_state(0);
    ASSERT_TRUE(again && again->extended);
    uint32_t read_tpr = 0;
    std::memcpy(&read_tpr, again->extended->lapic.data() + kTprOffset, 4);
    EXPECT_EQ(read_tpr, tpr);
    uint64_t tsc = tsc_of(*again);
    EXPECT_GE(tsc, kTsc);
    EXPECT_LT(tsc, kTsc + 10'000'000'000ull) << "the TSC runs at 1 GHz from where it was set";
    EXPECT_EQ(again->apic_base, state->apic_base);
}

TEST(SoftEngineState, AnInvalidApicBaseIsRefusedAndNothingChanges) {
    GuestMemory memory = GuestMemory::create(1 << 20).value();
    auto engine = make_engine(EngineKind::Soft, memory, 1);
    ASSERT_TRUE(engine) << engine.error().message;
    auto state = (*engine)->vcpu_state(0);
    ASSERT_TRUE(state);
    CpuState bad = *state;
    bad.apic_base |= 1ull << 62;  // beyond the physical address width: reserved
    bad.rip = 0x1234;
    EXPECT_FALSE((*engine)->set_vcpu_state(0, bad));
    auto after = (*engine)->vcpu_state(0);
    ASSERT_TRUE(after);
    EXPECT_EQ(after->rip, state->rip);
    EXPECT_EQ(after->apic_base, state->apic_base);
}

}  // namespace
}  // namespace strata::testing
