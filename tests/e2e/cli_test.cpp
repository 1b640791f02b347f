// End-to-end: strata's command line as a user meets it: help texts, bad flag values and a missing
// kernel file. None of these needs KVM.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

#include "e2e/process_runner.hpp"

namespace strata::e2e {
namespace {

const std::vector<std::string> kRunFlags{"--kernel", "--initrd", "--cmdline", "--memory",
                                         "--cpus",   "--accel",  "--kernel-unpack", "--console", "--disk", "--net",
                                         "--test-devices", "--vsock"};

size_t line_count(const std::string& text) {
    size_t lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
    return lines + (!text.empty() && text.back() != '\n' ? 1 : 0);
}

TEST(CommandLine, TopLevelHelpMentionsEveryFlag) {
    auto r = run_process({STRATA_BINARY, "--help"});
    EXPECT_EQ(r.exit_status, 0) << describe(r);
    EXPECT_NE(r.out.find("run"), std::string::npos) << describe(r);
    for (const auto& flag : kRunFlags) EXPECT_NE(r.out.find(flag), std::string::npos) << flag << "\n" << describe(r);
}

TEST(CommandLine, RunHelpMentionsEveryFlag) {
    auto r = run_process({STRATA_BINARY, "run", "--help"});
    EXPECT_EQ(r.exit_status, 0) << describe(r);
    for (const auto& flag : kRunFlags) EXPECT_NE(r.out.find(flag), std::string::npos) << flag << "\n" << describe(r);
}

struct BadFlag {
    std::string flag, value;
};

void PrintTo(const BadFlag& bad, std::ostream* os) { *os << bad.flag << ' ' << bad.value; }

class BadFlagValue : public ::testing::TestWithParam<BadFlag> {};

// One line, with the prefix every error line has, naming the flag and the value.
TEST_P(BadFlagValue, Exits2WithOneLineNamingTheFlagAndValue) {
    const auto& [flag, value] = GetParam();
    auto r = run_process({STRATA_BINARY, "run", "--kernel", guest_path("hello"), "--test-devices", flag, value});
    EXPECT_EQ(r.exit_status, 2) << describe(r);
    EXPECT_EQ(line_count(r.err), 1u) << describe(r);
    EXPECT_TRUE(r.err.starts_with("strata: error: " + flag + ": '" + value + "'")) << describe(r);
    EXPECT_EQ(r.out, "") << describe(r);
}

INSTANTIATE_TEST_SUITE_P(Values, BadFlagValue,
                         ::testing::Values(BadFlag{"--memory", "12Q"}, BadFlag{"--memory", "0x10"},
                                           BadFlag{"--memory", "1048577"}, BadFlag{"--memory", "100K"},
                                           BadFlag{"--cpus", "0"}, BadFlag{"--cpus", "abc"},
                                           BadFlag{"--cpus", "0x10"}, BadFlag{"--cpus", "255"},
                                           BadFlag{"--accel", "bogus"}, BadFlag{"--kernel-unpack", "cloud"},
                                           BadFlag{"--console", "hvc0"}),
                         [](const auto& param_info) {
                             std::string name = param_info.param.flag.substr(2) + "_" + param_info.param.value;
                             std::ranges::replace_if(name, [](char c) { return !std::isalnum(c); }, '_');
                             return name;
                         });

// What each message says: the cause in words, and what is allowed.
TEST(CommandLine, MessagesSayWhatIsWrongAndWhatIsAllowed) {
    struct Case {
        std::vector<std::string> args;
        std::string message;
    };
    const std::vector<Case> cases{
        {{"--cpus", "abc"}, "--cpus: 'abc' is not a number (expected 1 to 254)"},
        {{"--cpus", "0x10"}, "--cpus: '0x10' is not a number (expected 1 to 254)"},
        {{"--cpus", "300"}, "--cpus: '300' is out of range (expected 1 to 254)"},
        {{"--memory", "1048577"}, "--memory: '1048577' is 1048577 MiB; allowed are 1 MiB to 1 TiB"},
        {{"--memory", "0x10"}, "--memory: '0x10' is not a size (expected a decimal number"},
        {{"--cpus", "2", "--cpus", "3"}, "--cpus is given 2 times ('2', '3'); give it once"},
        {{"--memory", "1G", "--memory", "1G"}, "--memory is given 2 times"},
        {{"--cmdline"}, "--cmdline needs a value"},
        {{"--console", "ttyS0"}, "--console: 'ttyS0' is not a console device (expected serial or virtio)"},
        {{"--console", "virtio", "--console", "serial"}, "--console is given 2 times ('virtio', 'serial'); give it once"},
        {{"--accel", "soft", "--disk", "/nonexistent/strata.img"}, "board: --disk: disk image '/nonexistent/strata.img' does not exist"},
        {{"--disk", "a.img,readonly=maybe"}, "--disk: readonly='maybe' is not on or off"},
        {{"--disk", "a.img,cache=none"}, "--disk: 'cache' is not an option here (known: readonly, serial)"},
        {{"--disk", "a.img,readonly"}, "--disk: 'readonly' is not key=value"},
        {{"--net", "bridge"}, "--net: 'bridge' is not a network mode (expected user or tap)"},
        {{"--net", "user,hostfwd=tcp::99999-:80"},
         "--net: hostfwd='tcp::99999-:80': host port '99999' is out of range (expected 1 to 65535)"},
        {{"--net", "user,hostfwd=tcp:80-:80"}, "--net: hostfwd='tcp:80-:80' is not [tcp|udp]:[HOSTADDR]:HOSTPORT-"},
        {{"--net", "user,mac=01:00:5e:00:00:01"}, "--net: mac='01:00:5e:00:00:01' is a multicast address"},
        {{"--net", "tap"}, "--net: tap needs ifname=NAME, the host's TAP interface"},
        {{"--accel", "soft", "--net", "user", "--net", "user,mac=52:54:00:12:34:56"},
         "board: --net user,mac=52:54:00:12:34:56: MAC 52:54:00:12:34:56 is an earlier interface's already"},
        {{"--vsock", "cid=2,socket=/tmp/v.sock"}, "--vsock: cid=2 is reserved (0 hypervisor, 1 local, 2 host"},
        {{"--vsock", "socket=/tmp/v.sock"}, "--vsock: cid= is missing (expected cid=N,socket=PATH)"},
        {{"--vsock", "cid=3,socket=a", "--vsock", "cid=4,socket=b"}, "--vsock is given 2 times"},
    };
    for (const auto& c : cases) {
        std::vector<std::string> argv{STRATA_BINARY, "run", "--kernel", guest_path("hello")};
        argv.insert(argv.end(), c.args.begin(), c.args.end());
        auto r = run_process(argv);
        EXPECT_EQ(r.exit_status, 2) << describe(r);
        EXPECT_TRUE(r.err.starts_with("strata: error: " + c.message)) << "wanted: " << c.message << "\n" << describe(r);
        EXPECT_EQ(line_count(r.err), 1u) << describe(r);
    }
}

// A forward is listening before the VM is built; one that cannot listen stops strata then, naming
// the forward and the reason, before anything of the guest runs.
TEST(CommandLine, AForwardWhosePortIsTakenStopsTheStart) {
    int taken = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    ASSERT_EQ(bind(taken, reinterpret_cast<sockaddr*>(&address), length), 0);
    ASSERT_EQ(listen(taken, 1), 0);
    ASSERT_EQ(getsockname(taken, reinterpret_cast<sockaddr*>(&address), &length), 0);
    std::string port = std::to_string(ntohs(address.sin_port));
    auto r = run_process({STRATA_BINARY, "run", "--accel", "soft", "--test-devices", "--kernel", guest_path("hello"),
                          "--net", "user,hostfwd=tcp::" + port + "-:80"});
    close(taken);
    EXPECT_EQ(r.exit_status, 2) << describe(r);
    EXPECT_EQ(r.err, "strata: error: board: --net: hostfwd=tcp:127.0.0.1:" + port + "-:80: cannot listen on 127.0.0.1:" +
                         port + ": Address already in use\n")
        << describe(r);
    EXPECT_EQ(r.out, "") << "the guest ran";
}

// The vsock listener is made when the VM is built: a path that cannot be bound stops the build
// with the reason, and a socket that was made is gone when strata exits.
TEST(CommandLine, VsockSocketPathIsCheckedAtBuildAndRemovedAtExit) {
    std::string folder = ::testing::TempDir() + "strata-cli-vsock";
    std::filesystem::create_directories(folder);
    std::string taken = folder + "/taken";
    std::ofstream(taken) << "a file";
    auto r = run_process(
        {STRATA_BINARY, "run", "--kernel", guest_path("hello"), "--accel", "soft", "--vsock", "cid=3,socket=" + taken});
    EXPECT_EQ(r.exit_status, 2) << describe(r);
    EXPECT_TRUE(r.err.starts_with("strata: error: ")) << describe(r);
    EXPECT_NE(r.err.find("--vsock: socket path " + taken + " exists; remove it or choose another"), std::string::npos)
        << describe(r);
    EXPECT_EQ(line_count(r.err), 1u) << describe(r);
    r = run_process({STRATA_BINARY, "run", "--kernel", guest_path("hello"), "--accel", "soft", "--vsock",
                     "cid=3,socket=" + folder + "/none/v"});
    EXPECT_EQ(r.exit_status, 2) << describe(r);
    EXPECT_NE(r.err.find("No such file or directory"), std::string::npos) << describe(r);
    std::string made = folder + "/v.sock";
    std::filesystem::remove(made);
    r = run_process({STRATA_BINARY, "run", "--kernel", guest_path("hello"), "--accel", "soft", "--test-devices", "--vsock",
                     "cid=3,socket=" + made});
    EXPECT_EQ(r.out, "hello from the strata test guest\n") << describe(r);
    EXPECT_FALSE(std::filesystem::exists(made)) << "the socket outlived strata";
    std::filesystem::remove_all(folder);
}

TEST(CommandLine, MissingKernelFileExits2NamingTheFile) {
    const std::string missing = "/nonexistent/strata-e2e/kernel.elf";
    auto r = run_process({STRATA_BINARY, "run", "--kernel", missing});
    EXPECT_EQ(r.exit_status, 2) << describe(r);
    EXPECT_NE(r.err.find(missing), std::string::npos) << describe(r);
}

// A kernel or initrd that is not a regular file is refused at once, by name: no exception, no
// endless read of /dev/zero, no wait for a FIFO's writer.
TEST(CommandLine, ImagesThatAreNotRegularFilesAreRefused) {
    std::string dir = ::testing::TempDir() + "strata-cli-images";
    std::filesystem::create_directories(dir);
    std::string fifo = dir + "/fifo";
    std::filesystem::remove(fifo);
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    struct Case {
        std::string flag, path, what;
    };
    const std::vector<Case> cases{
        {"--kernel", dir, "kernel '" + dir + "' is a directory; it must be a regular file"},
        {"--initrd", dir, "initrd '" + dir + "' is a directory; it must be a regular file"},
        {"--kernel", "/dev/zero", "kernel '/dev/zero' is a character device; it must be a regular file"},
        {"--initrd", fifo, "initrd '" + fifo + "' is a FIFO (named pipe); it must be a regular file"},
    };
    for (const auto& c : cases) {
        std::vector<std::string> argv{STRATA_BINARY, "run", "--test-devices", "--kernel", guest_path("hello"), c.flag, c.path};
        if (c.flag == "--kernel") argv = {STRATA_BINARY, "run", "--kernel", c.path};
        auto r = run_process(argv, std::chrono::seconds(20));
        EXPECT_FALSE(r.timed_out) << describe(r);
        EXPECT_EQ(r.exit_status, 2) << describe(r);
        EXPECT_EQ(r.err, "strata: error: " + c.what + "\n") << describe(r);
    }
}

// An image larger than guest RAM is refused before it is read (a sparse file: nothing is stored).
TEST(CommandLine, ImagesLargerThanGuestRamAreRefusedUnread) {
    std::string path = ::testing::TempDir() + "strata-cli-huge-initrd";
    {
        std::ofstream file(path, std::ios::binary | std::ios::trunc);
    }
    std::filesystem::resize_file(path, 64ull << 30);
    auto r = run_process({STRATA_BINARY, "run", "--test-devices", "--memory", "64M", "--kernel", guest_path("hello"),
                          "--initrd", path},
                         std::chrono::seconds(20));
    std::filesystem::remove(path);
    EXPECT_EQ(r.exit_status, 2) << describe(r);
    EXPECT_NE(r.err.find("initrd '" + path + "' is 68719476736 bytes, more than the"), std::string::npos) << describe(r);
    EXPECT_NE(r.err.find("that guest RAM can hold (see --memory)"), std::string::npos) << describe(r);
}

TEST(CommandLine, RunWithoutKernelExits2) {
    auto r = run_process({STRATA_BINARY, "run"});
    EXPECT_EQ(r.exit_status, 2) << describe(r);
    EXPECT_NE(r.err.find("--kernel"), std::string::npos) << describe(r);
}

}  // namespace
}  // namespace strata::e2e

namespace strata::e2e {
namespace {

// On a host without hardware-assisted guest kernel mode (PVM here), --accel kvm warns in one short
// line, on the first run only.
TEST(CommandLine, SlowHostWarningIsShortAndSaidOnce) {
    if (!kvm_usable()) GTEST_SKIP() << "needs /dev/kvm (read-write)";
    std::string cache = ::testing::TempDir() + "strata-cli-cache";
    std::filesystem::remove_all(cache);
    const char* saved = std::getenv("XDG_CACHE_HOME");
    std::string saved_value = saved ? saved : "";
    setenv("XDG_CACHE_HOME", cache.c_str(), 1);
    auto first = run_process({STRATA_BINARY, "run", "--accel", "kvm", "--test-devices", "--kernel", guest_path("hello")});
    auto second = run_process({STRATA_BINARY, "run", "--accel", "kvm", "--test-devices", "--kernel", guest_path("hello")});
    if (saved) setenv("XDG_CACHE_HOME", saved_value.c_str(), 1);
    else unsetenv("XDG_CACHE_HOME");
    std::filesystem::remove_all(cache);

    EXPECT_EQ(first.exit_status, 1) << describe(first);
    EXPECT_EQ(second.exit_status, 1) << describe(second);
    EXPECT_EQ(second.err, "") << describe(second);
    if (first.err.empty()) GTEST_SKIP() << "this host runs guest kernel mode natively: nothing to warn about";
    EXPECT_EQ(line_count(first.err), 1u) << describe(first);
    EXPECT_TRUE(first.err.starts_with("strata: warning: ")) << describe(first);
    EXPECT_LE(first.err.size(), 120u) << describe(first);
    EXPECT_NE(first.err.find("README"), std::string::npos) << describe(first);
}

}  // namespace
}  // namespace strata::e2e

namespace strata::e2e {
namespace {

// --accel auto takes the soft engine where KVM cannot run guest kernel mode natively (PVM here, or
// no /dev/kvm at all) and says why in one line, on every run; the guest runs the same.
TEST(CommandLine, AutoChoosesTheSoftEngineWhereKvmIsNotNativeAndSaysWhy) {
    auto r = run_process({STRATA_BINARY, "run", "--test-devices", "--kernel", guest_path("hello")});
    EXPECT_EQ(r.exit_status, 1) << describe(r);
    EXPECT_EQ(r.out, "hello from the strata test guest\n") << describe(r);
    if (r.err.empty()) GTEST_SKIP() << "this host runs guest kernel mode natively: auto chose kvm";
    EXPECT_EQ(line_count(r.err), 1u) << describe(r);
    EXPECT_TRUE(r.err.starts_with("strata: --accel auto chose the soft engine: ")) << describe(r);
}

}  // namespace
}  // namespace strata::e2e
