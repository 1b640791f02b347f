// End-to-end: SIGINT and SIGTERM end the VMM in every phase (reading images, building the VM,
// running the guest) with status 128 + N and one line saying so. The guest (echo, with no input)
// never stops by itself, so the signal is what ends every run.
#include <signal.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "e2e/process_runner.hpp"

namespace strata::e2e {
namespace {

void expect_stopped_by(const ProcessResult& r, int signal) {
    EXPECT_FALSE(r.timed_out) << describe(r);
    EXPECT_EQ(r.signal, 0) << "killed by the signal instead of handling it\n" << describe(r);
    EXPECT_EQ(r.exit_status, 128 + signal) << describe(r);
    EXPECT_NE(r.err.find("strata: stopped by signal " + std::to_string(signal)), std::string::npos) << describe(r);
}

// From the first microseconds (flag parsing, before the signalfd exists) to a running guest.
TEST(Signals, EndEveryPhaseWithTheDocumentedStatus) {
    if (!kvm_usable()) GTEST_SKIP() << "needs /dev/kvm (read-write)";
    for (int delay_ms : {0, 1, 3, 10, 30, 100, 300}) {
        for (int signal : {SIGTERM, SIGINT}) {
            SCOPED_TRACE("signal " + std::to_string(signal) + " after " + std::to_string(delay_ms) + " ms");
            auto r = run_process({STRATA_BINARY, "run", "--test-devices", "--kernel", guest_path("echo")},
                                 std::chrono::seconds(30), {signal, std::chrono::milliseconds(delay_ms), {}});
            expect_stopped_by(r, signal);
        }
    }
}

// A large initrd takes a while to read; a signal then stops the read itself.
TEST(Signals, StopALongImageRead) {
    if (!kvm_usable()) GTEST_SKIP() << "needs /dev/kvm (read-write)";
    std::string path = ::testing::TempDir() + "strata-signals-big-initrd";
    {
        std::ofstream file(path, std::ios::binary | std::ios::trunc);
    }
    std::filesystem::resize_file(path, 1ull << 30);  // sparse: reads as zeros, stores nothing
    auto r = run_process({STRATA_BINARY, "run", "--test-devices", "--memory", "2G", "--kernel", guest_path("echo"),
                          "--initrd", path},
                         std::chrono::seconds(60), {SIGTERM, std::chrono::milliseconds(100), {}});
    std::filesystem::remove(path);
    expect_stopped_by(r, SIGTERM);
}

}  // namespace
}  // namespace strata::e2e
