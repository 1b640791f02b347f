// End-to-end: the real strata binary boots each guest test kernel of guests/ on each engine (kvm
// and soft); the tests check what a user sees: the exit status and the console output.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "e2e/process_runner.hpp"

namespace strata::e2e {
namespace {

// isa-debug-exit: the guest's write of V gives exit status (V << 1) | 1.
constexpr int exit_status_for(int value) { return (value << 1) | 1; }

ProcessResult boot_on(const std::string& engine, const std::string& guest, std::vector<std::string> extra) {
    std::vector<std::string> argv{STRATA_BINARY, "run", "--kernel", guest_path(guest), "--accel", engine, "--test-devices"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_process(argv);
}

class GuestTest : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        if (GetParam() == "kvm" && !kvm_usable())
            GTEST_SKIP() << "/dev/kvm cannot be opened read-write; the kvm engine needs it";
    }

    static ProcessResult boot(const std::string& guest, std::vector<std::string> extra = {}) {
        return boot_on(GetParam(), guest, std::move(extra));
    }
};

TEST_P(GuestTest, HelloPrintsItsLineAndExitsThroughDebugExit) {
    auto r = boot("hello");
    EXPECT_EQ(r.exit_status, exit_status_for(0)) << describe(r);
    EXPECT_EQ(r.out, "hello from the strata test guest\n") << describe(r);
}

TEST_P(GuestTest, CommandLineReachesTheGuestAndItsExitValueTheStatus) {
    auto r = boot("hello", {"--cmdline", "exit=5"});
    EXPECT_EQ(r.exit_status, exit_status_for(5)) << describe(r);
}

TEST_P(GuestTest, ExitNowPrintsNothing) {
    auto r = boot("exit_now");
    EXPECT_EQ(r.exit_status, exit_status_for(0)) << describe(r);
    EXPECT_EQ(r.out, "") << describe(r);
}

TEST_P(GuestTest, PortIoRoundTripsAndUnclaimedPortsReadAllOnes) {
    auto r = boot("pio");
    EXPECT_EQ(r.exit_status, exit_status_for(0)) << describe(r);
    EXPECT_NE(r.out.find("pio: all round-trips passed"), std::string::npos) << describe(r);
}

TEST_P(GuestTest, MmioRoundTripsAtEveryWidthAndIoApicHas24Pins) {
    auto r = boot("mmio");
    EXPECT_EQ(r.exit_status, exit_status_for(0)) << describe(r);
    EXPECT_NE(r.out.find("IOAPIC has 24 pins"), std::string::npos) << describe(r);
}

TEST_P(GuestTest, IoApicDeliversTestDevEdgeAndLevelAndUartInterrupts) {
    auto r = boot("ioapic_irq");
    EXPECT_EQ(r.exit_status, exit_status_for(0)) << describe(r);
    EXPECT_NE(r.out.find("ioapic_irq: all interrupts arrived"), std::string::npos) << describe(r);
}

// The guest drives the default virtio-rng itself: BAR moved, queue set up, MSI-X with masking.
TEST_P(GuestTest, VirtioRngServesBytesThroughMsixWithMasking) {
    auto r = boot("virtio_rng");
    EXPECT_EQ(r.exit_status, exit_status_for(0)) << describe(r);
    EXPECT_NE(r.out.find("virtio_rng: 32 bytes through MSI-X vector 50"), std::string::npos) << describe(r);
    EXPECT_NE(r.out.find("virtio_rng: masked vector pended and arrived when unmasked"), std::string::npos)
        << describe(r);
}

TEST_P(GuestTest, SerialOutputIsExactAndLoopbackStaysInsideTheUart) {
    auto r = boot("serial");
    EXPECT_EQ(r.exit_status, exit_status_for(0)) << describe(r);
    // Loopback bytes (0x00, 0x55, 0xaa, 0xff, 'Z', '\n') must not reach the console.
    EXPECT_EQ(r.out,
              "serial: the quick brown fox\n"
              "serial: jumps over the lazy dog 0123456789\n"
              "serial: tabs\tand symbols !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\n"
              "serial: loopback ok\n")
        << describe(r);
}

class SmpTest : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

// The guest is told the count on its command line, so this does not depend on fw_cfg.
TEST_P(SmpTest, EveryCpuComesUpThroughInitSipiSipi) {
    auto [engine, count] = GetParam();
    if (engine == "kvm" && !kvm_usable()) GTEST_SKIP() << "/dev/kvm cannot be opened read-write; the kvm engine needs it";
    std::string cpus = std::to_string(count);
    auto r = boot_on(engine, "smp", {"--cpus", cpus, "--cmdline", "cpus=" + cpus});
    EXPECT_EQ(r.exit_status, exit_status_for(0)) << describe(r);
    EXPECT_NE(r.out.find("smp: expecting " + cpus + " CPUs (from the command line"), std::string::npos) << describe(r);
    EXPECT_NE(r.out.find("smp: " + cpus + " of " + cpus + " CPUs up"), std::string::npos) << describe(r);
}

INSTANTIATE_TEST_SUITE_P(EnginesAndCpus, SmpTest,
                         ::testing::Combine(::testing::Values("kvm", "soft"), ::testing::Values(1, 2, 4)));

TEST_P(GuestTest, SmpCountsFromFwCfgMatchTheCpusFlag) {
    // Without "cpus=" on the command line the guest takes its count from fw_cfg key 0x05, which
    // must say what --cpus said, for each count.
    for (std::string cpus : {"1", "3"}) {
        auto r = boot("smp", {"--cpus", cpus});
        EXPECT_EQ(r.exit_status, exit_status_for(0)) << describe(r);
        EXPECT_NE(r.out.find("smp: expecting " + cpus + " CPUs (from fw_cfg; fw_cfg says " + cpus + ")"),
                  std::string::npos)
            << describe(r);
        EXPECT_NE(r.out.find("smp: " + cpus + " of " + cpus + " CPUs up"), std::string::npos) << describe(r);
    }
}

TEST_P(GuestTest, SmpNoticesMissingCpus) {
    // The guest is told to expect 4 but the VM has 2: it must see exactly 2 and fail with code 1.
    auto r = boot("smp", {"--cpus", "2", "--cmdline", "cpus=4"});
    EXPECT_EQ(r.exit_status, exit_status_for(1)) << describe(r);
    EXPECT_NE(r.out.find("only 2 of 4 CPUs up"), std::string::npos) << describe(r);
}

TEST_P(GuestTest, PioLoopRunsToItsEnd) {
    auto r = boot("pio_loop", {"--cmdline", "count=10000"});
    EXPECT_EQ(r.exit_status, exit_status_for(0)) << describe(r);
}

TEST_P(GuestTest, AcpiS3SleepsAndTheRtcAlarmResumesAtTheWakingVector) {
    auto r = boot("s3");
    EXPECT_EQ(r.exit_status, exit_status_for(42)) << "the real-mode resume stub did not run\n" << describe(r);
    EXPECT_NE(r.out.find("s3: sleeping"), std::string::npos) << describe(r);
}

TEST_P(GuestTest, TripleFaultExits4WithRegistersOnStderr) {
    auto r = boot("triple_fault");
    EXPECT_EQ(r.exit_status, 4) << describe(r);
    EXPECT_NE(r.out.find("triple_fault: loading an empty IDT"), std::string::npos) << describe(r);
    // The register dump names the instruction pointer (any case: RIP, rip).
    std::string lower;
    for (char c : r.err) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    EXPECT_NE(lower.find("rip"), std::string::npos) << describe(r);
}

INSTANTIATE_TEST_SUITE_P(Engines, GuestTest, ::testing::Values("kvm", "soft"),
                         [](const ::testing::TestParamInfo<std::string>& engine) { return engine.param; });

}  // namespace
}  // namespace strata::e2e
