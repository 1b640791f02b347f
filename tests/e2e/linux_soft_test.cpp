// The main job on the soft engine: Debian's cloud kernel (linux-image-cloud-amd64) with the
// busybox-static initramfs of scripts/fetch-guest boots to a shell on the serial console, with
// one and with two vCPUs, with its LZ4 payload unpacked on the host (the default) and by its own
// decompressor in the guest (--kernel-unpack guest, the unmodified boot path), runs commands typed into the console and powers off. The guest computes
// a checksum of data the host checksums too. With --test-devices the guest finds the PCI root
// bridge the DSDT describes, its windows, and pci-testdev in slot 1. Needs the guest from
// scripts/fetch-guest (STRATA_TEST_KERNEL and STRATA_TEST_INITRD, which scripts/test sets); no /dev/kvm.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "e2e/linux_guest_support.hpp"

namespace strata::e2e {
namespace {

// What the host's own sha256sum says about the output of `printf_arguments` given to printf.
std::string host_sha256(const std::string& printf_arguments) {
    std::string out = run_on_host("printf " + printf_arguments + " | sha256sum").out;
    return out.substr(0, out.find(' '));
}

struct Boot {
    unsigned cpus;
    const char* unpack;  // --kernel-unpack
};

class LinuxOnSoftEngine : public ::testing::TestWithParam<Boot> {};

TEST_P(LinuxOnSoftEngine, BootsToAShellThatRunsCommands) {
    auto guest = default_guest();
    if (!guest) GTEST_SKIP() << kNeedsDefaultGuest;
    unsigned cpus = GetParam().cpus;
    std::string unpack = GetParam().unpack;
    const std::string data = "'strata-%s\\n' 1 2 3 4 5 6 7 8 9";
    std::string expected_sum = host_sha256(data);
    ASSERT_EQ(expected_sum.size(), 64u) << "the host's sha256sum did not answer";

    std::string commands = "echo marker-$((6 * 7)); printf " + data +
                           " | sha256sum; echo cpus=$(grep -c ^processor /proc/cpuinfo); poweroff -f\n";
    ProcessResult r = boot_and_type(*guest, "--cpus " + std::to_string(cpus) + " --kernel-unpack " + unpack, commands,
                                    std::to_string(cpus) + unpack);
    EXPECT_EQ(r.exit_status, 0) << describe(r);
    EXPECT_NE(r.out.find("marker-42"), std::string::npos) << describe(r);
    EXPECT_NE(r.out.find(expected_sum), std::string::npos) << describe(r);
    EXPECT_NE(r.out.find("cpus=" + std::to_string(cpus)), std::string::npos) << describe(r);
}

// The guest's own view of PCI, through the DSDT's \_SB.PCI0: Linux's acpi_pci_root driver binds
// it, takes the bus range and windows from its _CRS, and scanning bus 0 finds pci-testdev in slot 1
// and the default virtio-rng in slot 2, whose INTA# the _PRT routes to GSI 18 and whose driver
// (loaded by the initramfs) takes MSI-X vectors and serves /dev/hwrng with the host's randomness.
// The commands print their findings after a tag the echoed command line does not contain (the
// console echoes what is typed), and grep for "ACPI Erro[r]" so that the echo cannot match either.
TEST(LinuxOnSoftEngineWithPci, FindsTheRootBridgeItsWindowsAndItsDevices) {
    auto guest = default_guest();
    if (!guest) GTEST_SKIP() << kNeedsDefaultGuest;
    std::string commands =
        "d=/sys/bus/pci/devices/0000:00:01.0; echo vendor=$(cat $d/vendor) device=$(cat $d/device); "
        "dmesg | grep -F -e 'PCI Root Bridge' -e 'root bus resource' | sed 's/^/found: /'; "
        "echo acpi-errors=$(dmesg | grep -c -e 'ACPI Erro[r]' -e 'ACPI BIOS Erro[r]'); "
        "v=/sys/bus/pci/devices/0000:00:02.0; echo virtio=$(cat $v/vendor):$(cat $v/device) irq=$(cat $v/irq); "
        "echo rng=$(cat /sys/class/misc/hw_random/rng_current); "
        "echo msix=$(grep -c 'PCI-MSI.*virtio0-' /proc/interrupts); "
        "a=$(head -c 32 /dev/hwrng | od -An -tx1 | tr -d ' \\n'); b=$(head -c 32 /dev/hwrng | od -An -tx1 | tr -d ' \\n'); "
        "echo random-a=$a; echo random-b=$b; poweroff -f\n";
    ProcessResult r = boot_and_type(*guest, "--test-devices", commands, "pci");
    EXPECT_EQ(r.exit_status, 0) << describe(r);
    EXPECT_NE(r.out.find("vendor=0x1b36 device=0x0005"), std::string::npos) << describe(r);
    // The lines the guest's dmesg gave (the kernel prints them on the console as well).
    std::vector<std::string> found;
    for (size_t at = r.out.find("found: "); at != std::string::npos; at = r.out.find("found: ", at + 1))
        found.push_back(r.out.substr(at, r.out.find('\n', at) - at));
    auto dmesg_has = [&](const std::string& text) {
        return std::ranges::any_of(found, [&](const std::string& line) { return line.find(text) != std::string::npos; });
    };
    EXPECT_TRUE(dmesg_has("] ACPI: PCI Root Bridge [PCI0] (domain 0000 [bus 00-ff])")) << describe(r);
    for (const char* window : {"[bus 00-ff]", "[io  0x0000-0x0cf7 window]", "[io  0x0d00-0xffff window]",
                               "[mem 0x000a0000-0x000bffff window]", "[mem 0xc0000000-0xfdffffff window]",
                               "[mem 0x100000000-0x8ffffffff pref window]"})
        EXPECT_TRUE(dmesg_has(std::string("pci_bus 0000:00: root bus resource ") + window)) << window << "\n" << describe(r);
    EXPECT_NE(r.out.find("acpi-errors=0"), std::string::npos) << describe(r);
    EXPECT_EQ(r.out.find("ACPI Error"), std::string::npos) << "on the console too: " << describe(r);
    EXPECT_EQ(r.out.find("ACPI BIOS Error"), std::string::npos) << describe(r);

    EXPECT_NE(r.out.find("virtio=0x1af4:0x1044 irq=18"), std::string::npos) << describe(r);
    EXPECT_NE(r.out.find("rng=virtio_rng.0"), std::string::npos) << describe(r);
    EXPECT_NE(r.out.find("msix=2"), std::string::npos) << "config and request vectors: " << describe(r);
    auto value_of = [&](const std::string& tag) {
        size_t at = r.out.rfind(tag + "=");
        return at == std::string::npos ? std::string() : r.out.substr(at + tag.size() + 1, 64);
    };
    std::string a = value_of("random-a"), b = value_of("random-b");
    EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos) << a;
    EXPECT_EQ(a.size(), 64u) << describe(r);
    EXPECT_NE(a, b) << "two reads of /dev/hwrng gave the same 32 bytes";
    EXPECT_NE(a, std::string(64, '0'));
}

// --console virtio with console=hvc0: the terminal is the virtio-console, whose driver the
// initramfs loads; the shell that cttyhack starts on the console's tty reads the commands from
// hvc0 (its stdin is /dev/hvc0) and answers there, and COM1 received nothing (rx:0 in the 8250
// driver's counters).
TEST(LinuxOnSoftEngineWithVirtioConsole, TheShellRunsOnHvc0) {
    auto guest = default_guest();
    if (!guest) GTEST_SKIP() << kNeedsDefaultGuest;
    std::string commands =
        "echo marker-$((6 * 7)); echo on=$(tty); "
        "echo com1=$(grep -o 'rx:[0-9]*' /proc/tty/driver/serial | head -n 1); poweroff -f\n";
    ProcessResult r = boot_and_type(*guest, "--console virtio", commands, "hvc0", "console=hvc0 panic=-1");
    EXPECT_EQ(r.exit_status, 0) << describe(r);
    EXPECT_NE(r.out.find("marker-42"), std::string::npos) << describe(r);
    EXPECT_NE(r.out.find("on=/dev/hvc0"), std::string::npos) << describe(r);
    EXPECT_NE(r.out.find("com1=rx:0"), std::string::npos) << describe(r);
    EXPECT_NE(r.out.find("virtio1 virtio_console"), std::string::npos) << "the initramfs's virtio line: " << describe(r);
}

INSTANTIATE_TEST_SUITE_P(CpusAndUnpack, LinuxOnSoftEngine,
                         ::testing::Values(Boot{1, "host"}, Boot{2, "host"}, Boot{1, "guest"}),
                         [](const auto& param_info) { return std::to_string(param_info.param.cpus) + "cpus_" + param_info.param.unpack; });

}  // namespace
}  // namespace strata::e2e
