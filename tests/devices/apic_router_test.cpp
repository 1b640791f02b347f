#include "devices/irqchip/apic_router.hpp"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "apic_fakes.hpp"
#include "fakes.hpp"

namespace strata {
namespace {

constexpr uint32_t kTpr = 0x80, kEoi = 0xb0, kLdr = 0xd0, kDfr = 0xe0, kSvr = 0xf0, kIcrLow = 0x300, kIcrHigh = 0x310,
                   kLvtLint0 = 0x350;
constexpr uint64_t kEnable = 1u << 11, kExtd = 1u << 10;

// Three vCPUs' local APICs (IDs 0-2, the first the BSP) on one router, software-enabled.
struct ApicRouting : ::testing::Test {
    testing::ManualClock time;
    ApicRouter router;
    std::array<testing::FakeApicHost, 3> hosts;
    std::array<std::unique_ptr<LocalApic>, 3> apics;
    testing::FakeExtIntSource pic;
    testing::FakeEoiListener ioapic;

    ApicRouting() {
        for (uint32_t i = 0; i < apics.size(); ++i) {
            apics[i] = std::make_unique<LocalApic>(LocalApicConfig{.apic_id = i, .bootstrap = i == 0}, time.timers,
                                                   router, hosts[i]);
            router.add(*apics[i]);
            set(i, kSvr, 0x1ff);
        }
        router.connect(pic, ioapic);
    }

    uint32_t reg(size_t cpu, uint32_t offset) { return static_cast<uint32_t>(testing::in(*apics[cpu], offset, 4)); }
    void set(size_t cpu, uint32_t offset, uint32_t value) { testing::out(*apics[cpu], offset, value, 4); }
    void ipi(size_t from, uint8_t destination, uint32_t command) {
        set(from, kIcrHigh, uint32_t{destination} << 24);
        set(from, kIcrLow, command);
    }
    std::optional<uint8_t> pending_vector(size_t cpu) {
        auto pending = apics[cpu]->pending_interrupt();
        if (!pending || pending->external) return std::nullopt;
        return pending->vector;
    }
    // Which APICs have `vector` pending, as a bit per CPU.
    unsigned receivers(uint8_t vector) {
        unsigned mask = 0;
        for (size_t i = 0; i < apics.size(); ++i) {
            if (pending_vector(i) == vector) {
                mask |= 1u << i;
                (void)apics[i]->acknowledge();
                if (apics[i]->x2apic_mode()) {
                    EXPECT_TRUE(apics[i]->write_msr(0x80b, 0));
                } else {
                    set(i, kEoi, 0);
                }
            }
        }
        return mask;
    }
    static ApicMessage fixed(uint8_t vector, uint32_t destination, bool logical = false) {
        ApicMessage m;
        m.vector = vector;
        m.destination = destination;
        m.logical = logical;
        return m;
    }
};

TEST_F(ApicRouting, FixedIpiReachesItsPhysicalDestination) {
    int kicks = hosts[1].kicks;
    ipi(0, 1, 0x0000'4040);
    EXPECT_GT(hosts[1].kicks, kicks) << "the target vCPU is woken";
    EXPECT_EQ(receivers(0x40), 0b010u);
    ipi(0, 0xff, 0x0000'4041);
    EXPECT_EQ(receivers(0x41), 0b111u) << "0xff: broadcast";
    ipi(0, 7, 0x0000'4042);
    EXPECT_EQ(receivers(0x42), 0u) << "no such APIC";
}

TEST_F(ApicRouting, InitSipiStartsAnAp) {
    ipi(0, 2, 0x0000'c500);  // INIT, level, assert
    EXPECT_TRUE(apics[2]->pending_events() & LocalApic::kEventInit);
    ipi(0, 0, 0x000c'8500);  // INIT level de-assert to all including self
    EXPECT_FALSE(apics[1]->has_event()) << "de-assert does nothing";
    EXPECT_TRUE(apics[2]->take_init());
    ipi(0, 2, 0x0000'4697);  // SIPI, vector 0x97
    EXPECT_EQ(apics[2]->take_sipi(), 0x97);
    EXPECT_FALSE(apics[1]->has_event());
    EXPECT_FALSE(apics[0]->has_event());
}

TEST_F(ApicRouting, ShorthandsAndNmi) {
    set(0, kIcrLow, 0x000c'0400);  // NMI to all but self
    EXPECT_FALSE(apics[0]->take_nmi());
    EXPECT_TRUE(apics[1]->take_nmi());
    EXPECT_TRUE(apics[2]->take_nmi());
    set(1, kIcrLow, 0x0008'4050);  // fixed to all including self
    EXPECT_EQ(receivers(0x50), 0b111u);
    set(2, kIcrLow, 0x0004'4051);  // self
    EXPECT_EQ(receivers(0x51), 0b100u);
}

TEST_F(ApicRouting, LogicalFlatAndClusterModels) {
    for (size_t i = 0; i < 3; ++i) set(i, kLdr, (1u << i) << 24);
    ipi(0, 0x05, 0x0000'4860);  // logical
    EXPECT_EQ(receivers(0x60), 0b101u);
    router.send(fixed(0x61, 0x02, true));  // an IOAPIC message, logical
    EXPECT_EQ(receivers(0x61), 0b010u);

    // Cluster model: APIC 0 and 1 in cluster 1 (members 1 and 2), APIC 2 in cluster 2 member 1.
    for (size_t i = 0; i < 3; ++i) set(i, kDfr, 0x0fff'ffff);
    set(0, kLdr, 0x11u << 24);
    set(1, kLdr, 0x12u << 24);
    set(2, kLdr, 0x21u << 24);
    router.send(fixed(0x62, 0x13, true));
    EXPECT_EQ(receivers(0x62), 0b011u);
    router.send(fixed(0x63, 0x21, true));
    EXPECT_EQ(receivers(0x63), 0b100u);
    router.send(fixed(0x64, 0xf1, true));
    EXPECT_EQ(receivers(0x64), 0b101u) << "cluster 0xf: member 1 of every cluster";
}

TEST_F(ApicRouting, X2apicDestinations) {
    for (auto& apic : apics) ASSERT_TRUE(apic->set_apic_base(LocalApic::kDefaultBase | kEnable | kExtd));
    // LDRs: cluster 0, bits 0, 1, 2.
    ASSERT_TRUE(apics[0]->write_msr(0x830, (uint64_t{0x0000'0006} << 32) | 0x4870));  // logical
    EXPECT_EQ(receivers(0x70), 0b110u);
    ASSERT_TRUE(apics[0]->write_msr(0x830, (uint64_t{0x0001'0006} << 32) | 0x4871));
    EXPECT_EQ(receivers(0x71), 0u) << "cluster 1 is empty";
    ASSERT_TRUE(apics[0]->write_msr(0x830, (uint64_t{0xffff'ffff} << 32) | 0x4072));
    EXPECT_EQ(receivers(0x72), 0b111u) << "physical 0xffffffff: broadcast";
    ASSERT_TRUE(apics[0]->write_msr(0x830, (uint64_t{0xff} << 32) | 0x4073));
    EXPECT_EQ(receivers(0x73), 0u) << "0xff is just an ID in an x2APIC destination";
    router.send(fixed(0x74, 0xff));
    EXPECT_EQ(receivers(0x74), 0b111u) << "an IOAPIC's 8-bit 0xff still broadcasts";
    router.send(fixed(0x75, 2));
    EXPECT_EQ(receivers(0x75), 0b100u);
}

TEST_F(ApicRouting, LowestPriorityPicksTheLowestArbitrationPriority) {
    set(0, kTpr, 0x30);
    set(1, kTpr, 0x10);
    set(2, kTpr, 0x10);
    ApicMessage lowest = fixed(0x80, 0xff);
    lowest.mode = DeliveryMode::LowestPriority;
    router.send(lowest);
    EXPECT_EQ(receivers(0x80), 0b010u) << "the first of the two lowest";
    set(1, kTpr, 0x40);
    router.send(lowest);
    EXPECT_EQ(receivers(0x80), 0b100u);
    set(2, kSvr, 0xff);  // software-disabled: it would refuse the interrupt
    router.send(lowest);
    EXPECT_EQ(receivers(0x80), 0b001u);
}

TEST_F(ApicRouting, DisabledApicsGetWhatTheSdmSays) {
    ASSERT_TRUE(apics[2]->set_apic_base(LocalApic::kDefaultBase));  // globally disabled
    set(1, kSvr, 0xff);                                               // software-disabled
    set(0, kIcrLow, 0x000c'0500);  // INIT to all but self
    EXPECT_TRUE(apics[1]->take_init()) << "a software-disabled APIC takes INIT";
    EXPECT_FALSE(apics[2]->has_event()) << "a globally disabled one is off the bus";
    set(1, kSvr, 0xff);
    set(0, kIcrLow, 0x000c'4090);  // fixed to all but self
    EXPECT_EQ(receivers(0x90), 0u);
    set(0, kIcrLow, 0x000c'0400);  // NMI to all but self
    EXPECT_TRUE(apics[1]->take_nmi());
    EXPECT_FALSE(apics[2]->take_nmi());
}

TEST_F(ApicRouting, Lint0FansOutAndTheBspTakesTheExtInt) {
    set(0, kLvtLint0, 0x700);  // the BSP in virtual-wire mode, as firmware leaves it
    router.lint0().raise();
    EXPECT_EQ(apics[0]->pending_interrupt(), (LocalApic::PendingInterrupt{.external = true, .vector = 0}));
    EXPECT_EQ(apics[1]->pending_interrupt(), std::nullopt) << "the APs' LINT0 stay masked";
    EXPECT_EQ(apics[0]->acknowledge(), 0x21) << "through connect(): the 8259's INTA";
    EXPECT_EQ(pic.acknowledges, 1);
    router.lint0().lower();
    EXPECT_EQ(apics[0]->pending_interrupt(), std::nullopt);
}

TEST_F(ApicRouting, MsiAndLevelEoi) {
    // An MSI to APIC 1, level-triggered: its EOI reaches the IOAPIC given to connect().
    router.send(ApicMessage::from_msi(0xfee0'1000, 0xc0a5));
    EXPECT_EQ(pending_vector(1), 0xa5);
    EXPECT_EQ(apics[1]->acknowledge(), 0xa5);
    set(1, kEoi, 0);
    EXPECT_EQ(ioapic.eois(), std::vector<uint8_t>{0xa5});
}

// Two vCPU threads bounce one IPI between them while a third thread sends NMIs: every IPI
// arrives (only one is ever in flight, so none coalesce) and nothing deadlocks.
TEST_F(ApicRouting, IpisBetweenThreads) {
    constexpr int kRoundTrips = 2000;
    std::atomic<bool> stop{false};
    std::array<std::atomic<int>, 2> received{};
    auto vcpu = [&](size_t self, size_t other) {
        auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (!stop && std::chrono::steady_clock::now() < give_up) {
            if (!apics[self]->has_event()) {
                std::this_thread::yield();
                continue;
            }
            (void)apics[self]->take_nmi();
            if (!apics[self]->pending_interrupt()) continue;
            EXPECT_EQ(apics[self]->acknowledge(), 0x40 + self);
            set(self, kEoi, 0);
            if (++received[self] == kRoundTrips && self == 0) stop = true;
            ipi(self, static_cast<uint8_t>(other), 0x4040 + static_cast<uint32_t>(other));
        }
    };
    std::thread a(vcpu, 0, 1), b(vcpu, 1, 0);
    std::thread nmis([&] {
        while (!stop) {
            ApicMessage nmi;
            nmi.mode = DeliveryMode::Nmi;
            nmi.destination = 0xff;
            router.send(nmi);
            std::this_thread::yield();
        }
    });
    ipi(2, 0, 0x4040);  // the first ball
    a.join();
    stop = true;
    b.join();
    nmis.join();
    EXPECT_EQ(received[0], kRoundTrips);
    EXPECT_GE(received[1], kRoundTrips - 1);
}

}  // namespace
}  // namespace strata
