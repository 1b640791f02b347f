// Booting the default guest (Debian's cloud kernel and the initramfs of scripts/fetch-guest) on the
// soft engine with commands typed at its shell: shared by the end-to-end tests of Linux.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "e2e/process_runner.hpp"

namespace strata::e2e {

// The default guest's kernel and initramfs, or null when the environment does not name them.
struct DefaultGuest {
    std::string kernel, initrd;
};
inline std::optional<DefaultGuest> default_guest() {
    const char* kernel = std::getenv("STRATA_TEST_KERNEL");
    const char* initrd = std::getenv("STRATA_TEST_INITRD");
    if (!kernel || !initrd || !*kernel || !*initrd) return std::nullopt;
    return DefaultGuest{kernel, initrd};
}
inline constexpr const char* kNeedsDefaultGuest =
    "needs the default guest: set STRATA_TEST_KERNEL and STRATA_TEST_INITRD (scripts/test does)";

// A shell command run on the host, as the tests check what the guest did with the host's own tools.
struct HostCommand {
    int status = -1;  // the exit status, or -1 when it did not exit
    std::string out;  // stdout (append 2>&1 for stderr too)
};
inline HostCommand run_on_host(const std::string& command) {
    HostCommand result;
    FILE* pipe = popen(command.c_str(), "r");
    if (!pipe) return result;
    char buffer[4096];
    for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) result.out.append(buffer, n);
    int status = pclose(pipe);
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

// Boots `guest` on the soft engine with 256 MiB and the extra `flags`, and types `commands` (one
// line, ending in poweroff -f) at its shell prompt: the UART holds the bytes until the guest's
// driver is ready. `name` tells the input files of concurrent tests apart; `signal` may stop the
// VMM on the way (see SignalPlan).
inline ProcessResult boot_and_type(const DefaultGuest& guest, const std::string& flags, const std::string& commands,
                                   const std::string& name, const std::string& cmdline = "console=ttyS0 panic=-1",
                                   const SignalPlan& signal = {}) {
    std::string input = ::testing::TempDir() + "strata-linux-commands-" + name;
    FILE* file = std::fopen(input.c_str(), "w");
    if (!file) return {};
    std::fputs(commands.c_str(), file);
    std::fclose(file);
    // exec: the signal goes to strata itself, not to the shell that started it.
    std::string shell = "exec '" STRATA_BINARY "' run --accel soft --memory 256M " + flags + " --kernel '" +
                        guest.kernel + "' --initrd '" + guest.initrd + "' --cmdline '" + cmdline + "' < '" + input + "'";
    return run_process({"/bin/sh", "-c", shell}, std::chrono::minutes(10), signal);
}

}  // namespace strata::e2e
