// The control API end to end: strata runs the counter guest (guests/counter.c) with --api-socket
// or --name, and the test drives it with the CLI's verbs, as a user would from another shell:
// a paused VM's console falls silent and its counter goes on from the next number on resume;
// stop presses the power button and kills at the deadline; kill ends it at once; refusals are
// one line and change nothing; ls finds named VMs.
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <regex>
#include <string>

#include <nlohmann/json.hpp>

#include "e2e/linux_guest_support.hpp"
#include "e2e/process_runner.hpp"
#include "e2e/vmm_session.hpp"

namespace strata::e2e {
namespace {

const std::regex kCounterLine("counter: ([0-9]+)(?: tsc=([0-9]+))?\n");

// The guest's console alone: strata's warnings share the pipe and may land inside a line the
// guest had half written when it was paused.
std::string console_of(const std::string& output) {
    static const std::regex warning("strata: warning: [^\n]*\n");
    return std::regex_replace(output, warning, "");
}

// The last "counter: N" on the console, or 0.
uint64_t last_count(const std::string& vmm_output) {
    const std::regex& line = kCounterLine;
    std::string output = console_of(vmm_output);
    uint64_t last = 0;
    for (auto it = std::sregex_iterator(output.begin(), output.end(), line); it != std::sregex_iterator(); ++it)
        last = std::stoull((*it)[1].str());
    return last;
}

// Every count from 1 to the last is there once, in order.
bool counts_in_order(const std::string& vmm_output) {
    const std::regex& line = kCounterLine;
    std::string output = console_of(vmm_output);
    uint64_t expected = 1;
    for (auto it = std::sregex_iterator(output.begin(), output.end(), line); it != std::sregex_iterator(); ++it, ++expected)
        if (std::stoull((*it)[1].str()) != expected) return false;
    return expected > 1;
}

ProcessResult cli(std::vector<std::string> args) {
    args.insert(args.begin(), STRATA_BINARY);
    return run_process(args, std::chrono::seconds(30));
}

class ApiTest : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        if (GetParam() == "kvm" && !kvm_usable()) GTEST_SKIP() << "/dev/kvm cannot be opened read-write; the kvm engine needs it";
        static int made = 0;
        socket_ = ::testing::TempDir() + "strata-api-e2e-" + std::to_string(::getpid()) + "-" + std::to_string(++made);
        ::unlink(socket_.c_str());
    }
    std::vector<std::string> counter_vm(const std::string& cmdline = "") {
        return {STRATA_BINARY, "run", "--accel", GetParam(), "--test-devices", "--memory", "16M",
                "--kernel", guest_path("counter"), "--cmdline", cmdline, "--api-socket", socket_};
    }
    std::string socket_;
};

TEST_P(ApiTest, APausedVmFallsSilentAndCountsOnFromWhereItWasOnResume) {
    VmmSession vm(counter_vm());
    ASSERT_TRUE(vm.started());
    ASSERT_TRUE(vm.wait_for("counter: 3\n", std::chrono::seconds(60))) << vm.output();

    ProcessResult paused = cli({"pause", "--api-socket", socket_});
    ASSERT_EQ(paused.exit_status, 0) << paused.err;
    vm.read_for(std::chrono::milliseconds(200));  // what was on its way before the pause
    std::string at_pause = vm.output();
    uint64_t count_at_pause = last_count(at_pause);
    vm.read_for(std::chrono::milliseconds(700));
    EXPECT_EQ(vm.output(), at_pause) << "the console went on while paused";

    ProcessResult info = cli({"info", "--api-socket", socket_});
    ASSERT_EQ(info.exit_status, 0) << info.err;
    EXPECT_NE(info.out.find("\"state\": \"paused\""), std::string::npos) << info.out;
    EXPECT_NE(info.out.find("\"engine\": \"" + GetParam() + "\""), std::string::npos) << info.out;

    ProcessResult again = cli({"pause", "--api-socket", socket_});
    EXPECT_EQ(again.exit_status, 1);
    EXPECT_EQ(again.err, "strata: error: pause: the VM is already paused\n");

    ProcessResult resumed = cli({"resume", "--api-socket", socket_});
    ASSERT_EQ(resumed.exit_status, 0) << resumed.err;
    std::string next = "counter: " + std::to_string(count_at_pause + 3) + "\n";
    ASSERT_TRUE(vm.wait_for(next, std::chrono::seconds(60))) << vm.output();
    EXPECT_TRUE(counts_in_order(vm.output())) << vm.output();

    ProcessResult killed = cli({"kill", "--api-socket", socket_});
    EXPECT_EQ(killed.exit_status, 0) << killed.err;
    EXPECT_EQ(vm.wait_exit(), 8) << vm.output();
    EXPECT_NE(vm.output().find("strata: killed through the control API\n"), std::string::npos) << vm.output();
}

// The largest step of the guest's TSC from one counter line to the next.
uint64_t largest_tsc_step(const std::string& vmm_output) {
    std::string output = console_of(vmm_output);
    uint64_t largest = 0, previous = 0;
    for (auto it = std::sregex_iterator(output.begin(), output.end(), kCounterLine); it != std::sregex_iterator(); ++it) {
        uint64_t tsc = std::stoull((*it)[2].str());
        if (previous != 0 && tsc > previous) largest = std::max(largest, tsc - previous);
        previous = tsc;
    }
    return largest;
}

TEST_P(ApiTest, GuestTimeDoesNotJumpOverAPause) {
    // 20 M ticks a line; the pause lasts 1.5 s: 1.5 G ticks of the soft engine's 1 GHz TSC, more
    // of a host's TSC under kvm. A step of over 20 M + 400 M ticks means the pause showed.
    VmmSession vm(counter_vm("tsc=1"));
    ASSERT_TRUE(vm.started());
    ASSERT_TRUE(vm.wait_for("counter: 3 ", std::chrono::seconds(60))) << vm.output();
    ASSERT_EQ(cli({"pause", "--api-socket", socket_}).exit_status, 0);
    vm.read_for(std::chrono::milliseconds(1500));
    uint64_t at_pause = last_count(vm.output());
    ASSERT_EQ(cli({"resume", "--api-socket", socket_}).exit_status, 0);
    ASSERT_TRUE(vm.wait_for("counter: " + std::to_string(at_pause + 2) + " ", std::chrono::seconds(60))) << vm.output();
    EXPECT_TRUE(counts_in_order(vm.output())) << vm.output();
    EXPECT_EQ(cli({"kill", "--api-socket", socket_}).exit_status, 0);
    EXPECT_EQ(vm.wait_exit(), 8);
    // PVM keeps a vCPU's TSC whatever the VMM sets; strata says so on resume.
    if (GetParam() == "kvm" && vm.output().find("the host did not take TSC") != std::string::npos)
        GTEST_SKIP() << "this host's KVM does not let the VMM set a vCPU's TSC (PVM): "
                     << "the guest's TSC runs on through a pause here";
    EXPECT_LT(largest_tsc_step(vm.output()), 420'000'000u) << vm.output();
}

TEST_P(ApiTest, MetricsCountTheConsolesWritesAndTheEnginesWork) {
    VmmSession vm(counter_vm());
    ASSERT_TRUE(vm.started());
    ASSERT_TRUE(vm.wait_for("counter: 5\n", std::chrono::seconds(60))) << vm.output();
    ProcessResult metrics = cli({"metrics", "--api-socket", socket_});
    ASSERT_EQ(metrics.exit_status, 0) << metrics.err;
    nlohmann::json json = nlohmann::json::parse(metrics.out, nullptr, false);
    ASSERT_TRUE(json.is_object()) << metrics.out;
    uint64_t com1_writes = 0;
    for (const auto& device : json["devices"])
        if (device["device"] == "COM1 (16550A)") com1_writes = device["writes"].get<uint64_t>();
    EXPECT_GE(com1_writes, 5 * std::string("counter: 1\n").size()) << metrics.out;
    const auto& vcpu = json["vcpus"][0];
    if (GetParam() == "soft") {
        EXPECT_GT(vcpu["soft"]["instructions"].get<uint64_t>(), 1000u) << metrics.out;
        EXPECT_GT(vcpu["soft"]["block_cache_misses"].get<uint64_t>(), 0u) << metrics.out;
    } else {
        EXPECT_GE(vcpu["exits"]["io"].get<uint64_t>(), com1_writes) << metrics.out;  // each byte out is an exit
    }
    ProcessResult text = cli({"metrics", "--api-socket", socket_, "--format", "prometheus"});
    ASSERT_EQ(text.exit_status, 0) << text.err;
    EXPECT_TRUE(std::regex_search(text.out, std::regex("\nstrata_device_accesses_total\\{vm=\"\",bus=\"pio\",device=\"COM1 "
                                                       "\\(16550A\\)\",base=\"0x3f8\",access=\"write\"\\} [0-9]+\n")))
        << text.out;
    ProcessResult bad = cli({"metrics", "--api-socket", socket_, "--format", "xml"});
    EXPECT_EQ(bad.exit_status, 2);
    EXPECT_EQ(bad.err, "strata: error: --format: 'xml' is not a format (expected json or prometheus)\n");
    EXPECT_EQ(cli({"kill", "--api-socket", socket_}).exit_status, 0);
    EXPECT_EQ(vm.wait_exit(), 8);
}

TEST_P(ApiTest, StopPressesThePowerButtonAndKillsAGuestThatIgnoresItAtTheDeadline) {
    VmmSession vm(counter_vm());
    ASSERT_TRUE(vm.started());
    ASSERT_TRUE(vm.wait_for("counter: 2\n", std::chrono::seconds(60))) << vm.output();
    ProcessResult refused = cli({"resume", "--api-socket", socket_});
    EXPECT_EQ(refused.exit_status, 1);
    EXPECT_EQ(refused.err, "strata: error: resume: the VM is not paused\n");

    ProcessResult stop = cli({"stop", "--api-socket", socket_, "--timeout", "300"});
    ASSERT_EQ(stop.exit_status, 0) << stop.err;
    EXPECT_EQ(vm.wait_exit(), 8) << vm.output();
    EXPECT_NE(vm.output().find("strata: the guest did not power off within 300 ms of the ACPI power button; killed\n"),
              std::string::npos)
        << vm.output();
    ProcessResult gone = cli({"info", "--api-socket", socket_});
    EXPECT_EQ(gone.exit_status, 2);
    EXPECT_NE(gone.err.find(socket_), std::string::npos) << gone.err;
}

TEST_P(ApiTest, ANamedVmIsListedAndTakesItsVerbsByName) {
    std::string runtime = ::testing::TempDir() + "strata-api-runtime-" + std::to_string(::getpid()) + "-" + GetParam();
    ASSERT_EQ(run_process({"/bin/mkdir", "-p", "-m", "700", runtime}).exit_status, 0);
    ::setenv("XDG_RUNTIME_DIR", runtime.c_str(), 1);
    std::string name = "counter-" + GetParam();
    VmmSession vm({STRATA_BINARY, "run", "--accel", GetParam(), "--test-devices", "--memory", "16M", "--kernel",
                   guest_path("counter"), "--name", name});
    ASSERT_TRUE(vm.started());
    ASSERT_TRUE(vm.wait_for("counter: 2\n", std::chrono::seconds(60))) << vm.output();

    ProcessResult listed = cli({"ls"});
    EXPECT_EQ(listed.exit_status, 0) << listed.err;
    EXPECT_TRUE(std::regex_search(listed.out, std::regex("\n" + name + " +[0-9]+ running +" + GetParam() + " +1 +16 MiB")))
        << listed.out;
    ProcessResult paused = cli({"pause", "--name", name});
    EXPECT_EQ(paused.exit_status, 0) << paused.err;
    EXPECT_NE(cli({"ls"}).out.find(" paused "), std::string::npos);
    ProcessResult both = cli({"info", "--name", name, "--api-socket", socket_});
    EXPECT_EQ(both.exit_status, 2);
    ProcessResult bad = cli({"info", "--name", "../etc"});
    EXPECT_EQ(bad.exit_status, 2);
    EXPECT_NE(bad.err.find("--name: the name '../etc' may have only"), std::string::npos) << bad.err;

    EXPECT_EQ(cli({"kill", "--name", name}).exit_status, 0);
    EXPECT_EQ(vm.wait_exit(), 8) << vm.output();
    ProcessResult empty = cli({"ls"});
    EXPECT_EQ(empty.out.find(name), std::string::npos) << empty.out;
    ::unsetenv("XDG_RUNTIME_DIR");
}

// The default guest's /init powers off when its ACPI power button is pressed: strata stop is a
// clean shutdown (the disk synced and unmounted), exit status 0, long before the deadline.
TEST(LinuxGuestApi, StopPowersTheDefaultGuestOffThroughItsPowerButton) {
    auto guest = default_guest();
    if (!guest) GTEST_SKIP() << kNeedsDefaultGuest;
    std::string socket = ::testing::TempDir() + "strata-api-linux-" + std::to_string(::getpid());
    ::unlink(socket.c_str());
    VmmSession vm({STRATA_BINARY, "run", "--accel", "soft", "--memory", "256M", "--kernel", guest->kernel, "--initrd",
                   guest->initrd, "--cmdline", "console=ttyS0 panic=-1", "--api-socket", socket});
    ASSERT_TRUE(vm.started());
    ASSERT_TRUE(vm.wait_for("Exit the shell to power off.", std::chrono::seconds(300))) << vm.output();
    // The power button's watcher finds its input device in the background, within a second or two.
    vm.read_for(std::chrono::seconds(3));
    ProcessResult stop = cli({"stop", "--api-socket", socket, "--timeout", "60000"});
    ASSERT_EQ(stop.exit_status, 0) << stop.err;
    EXPECT_EQ(vm.wait_exit(std::chrono::seconds(60)), 0) << vm.output();
    EXPECT_NE(vm.output().find("Power button: powering off."), std::string::npos) << vm.output();
    EXPECT_EQ(vm.output().find("killed"), std::string::npos) << vm.output();
}

INSTANTIATE_TEST_SUITE_P(Engines, ApiTest, ::testing::Values("kvm", "soft"),
                         [](const auto& test) { return test.param; });

}  // namespace
}  // namespace strata::e2e
