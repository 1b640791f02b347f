// End-to-end: strata's command line as a user meets it: help texts, bad flag values and a missing
// kernel file. None of these needs KVM.
#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

#include "e2e/process_runner.hpp"

namespace strata::e2e {
namespace {

const std::vector<std::string> kRunFlags{"--kernel", "--initrd", "--cmdline", "--memory",
                                         "--cpus",   "--accel",  "--test-devices"};

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

TEST_P(BadFlagValue, Exits2WithOneLineNamingTheFlag) {
    const auto& [flag, value] = GetParam();
    auto r = run_process({STRATA_BINARY, "run", "--kernel", guest_path("hello"), "--test-devices", flag, value});
    EXPECT_EQ(r.exit_status, 2) << describe(r);
    EXPECT_EQ(line_count(r.err), 1u) << describe(r);
    EXPECT_NE(r.err.find(flag), std::string::npos) << describe(r);
    EXPECT_EQ(r.out, "") << describe(r);
}

INSTANTIATE_TEST_SUITE_P(Values, BadFlagValue,
                         ::testing::Values(BadFlag{"--memory", "12Q"}, BadFlag{"--cpus", "0"},
                                           BadFlag{"--accel", "bogus"}),
                         [](const auto& param_info) { return param_info.param.flag.substr(2); });

TEST(CommandLine, MissingKernelFileExits2NamingTheFile) {
    const std::string missing = "/nonexistent/strata-e2e/kernel.elf";
    auto r = run_process({STRATA_BINARY, "run", "--kernel", missing});
    EXPECT_EQ(r.exit_status, 2) << describe(r);
    EXPECT_NE(r.err.find(missing), std::string::npos) << describe(r);
}

TEST(CommandLine, RunWithoutKernelExits2) {
    auto r = run_process({STRATA_BINARY, "run"});
    EXPECT_EQ(r.exit_status, 2) << describe(r);
    EXPECT_NE(r.err.find("--kernel"), std::string::npos) << describe(r);
}

}  // namespace
}  // namespace strata::e2e
