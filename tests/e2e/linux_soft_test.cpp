// The main job on the soft engine: Debian's cloud kernel (linux-image-cloud-amd64) with the
// busybox-static initramfs of scripts/fetch-guest boots to a shell on the serial console, with
// one and with two vCPUs, with its LZ4 payload unpacked on the host (the default) and by its own
// decompressor in the guest (--kernel-unpack guest, the unmodified boot path), runs commands typed into the console and powers off. The guest computes
// a checksum of data the host checksums too. Needs the guest from scripts/fetch-guest
// (STRATA_TEST_KERNEL and STRATA_TEST_INITRD, which scripts/test sets); no /dev/kvm.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "e2e/process_runner.hpp"

namespace strata::e2e {
namespace {

// What the host's own sha256sum says about the output of `printf_arguments` given to printf.
std::string host_sha256(const std::string& printf_arguments) {
    std::string command = "printf " + printf_arguments + " | sha256sum";
    FILE* pipe = popen(command.c_str(), "r");
    if (!pipe) return {};
    char buffer[128] = {};
    std::string out = fgets(buffer, sizeof buffer, pipe) ? buffer : "";
    pclose(pipe);
    return out.substr(0, out.find(' '));
}

struct Boot {
    unsigned cpus;
    const char* unpack;  // --kernel-unpack
};

class LinuxOnSoftEngine : public ::testing::TestWithParam<Boot> {};

TEST_P(LinuxOnSoftEngine, BootsToAShellThatRunsCommands) {
    const char* kernel = std::getenv("STRATA_TEST_KERNEL");
    const char* initrd = std::getenv("STRATA_TEST_INITRD");
    if (!kernel || !initrd || !*kernel || !*initrd)
        GTEST_SKIP() << "needs the default guest: set STRATA_TEST_KERNEL and STRATA_TEST_INITRD (scripts/test does)";
    unsigned cpus = GetParam().cpus;
    std::string unpack = GetParam().unpack;
    const std::string data = "'strata-%s\\n' 1 2 3 4 5 6 7 8 9";
    std::string expected_sum = host_sha256(data);
    ASSERT_EQ(expected_sum.size(), 64u) << "the host's sha256sum did not answer";

    // Typed at the shell prompt: the UART holds the bytes until the guest's driver is ready.
    std::string commands = "echo marker-$((6 * 7)); printf " + data +
                           " | sha256sum; echo cpus=$(grep -c ^processor /proc/cpuinfo); poweroff -f\n";
    std::string input = ::testing::TempDir() + "strata-linux-commands-" + std::to_string(cpus) + unpack;
    FILE* file = std::fopen(input.c_str(), "w");
    ASSERT_NE(file, nullptr);
    std::fputs(commands.c_str(), file);
    std::fclose(file);
    std::string shell = "'" STRATA_BINARY "' run --accel soft --memory 256M --cpus " + std::to_string(cpus) +
                        " --kernel-unpack " + unpack + " --kernel '" + kernel + "' --initrd '" + initrd +
                        "' --cmdline 'console=ttyS0 panic=-1' < '" + input + "'";
    ProcessResult r = run_process({"/bin/sh", "-c", shell}, std::chrono::minutes(10));
    EXPECT_EQ(r.exit_status, 0) << describe(r);
    EXPECT_NE(r.out.find("marker-42"), std::string::npos) << describe(r);
    EXPECT_NE(r.out.find(expected_sum), std::string::npos) << describe(r);
    EXPECT_NE(r.out.find("cpus=" + std::to_string(cpus)), std::string::npos) << describe(r);
}

INSTANTIATE_TEST_SUITE_P(CpusAndUnpack, LinuxOnSoftEngine,
                         ::testing::Values(Boot{1, "host"}, Boot{2, "host"}, Boot{1, "guest"}),
                         [](const auto& param_info) { return std::to_string(param_info.param.cpus) + "cpus_" + param_info.param.unpack; });

}  // namespace
}  // namespace strata::e2e
