// The main job on the soft engine: Debian's cloud kernel (linux-image-cloud-amd64) with the
// busybox-static initramfs of scripts/fetch-guest boots to a shell on the serial console, with
// one and with two vCPUs, with its LZ4 payload unpacked on the host (the default) and by its own
// decompressor in the guest (--kernel-unpack guest, the unmodified boot path), runs commands typed into the console and powers off. The guest computes
// a checksum of data the host checksums too. With --test-devices the guest finds the PCI root
// bridge the DSDT describes, its windows, and pci-testdev in slot 1. Needs the guest from
// scripts/fetch-guest (STRATA_TEST_KERNEL and STRATA_TEST_INITRD, which scripts/test sets); no /dev/kvm.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "e2e/initramfs_support.hpp"
#include "e2e/process_runner.hpp"
#include "host/unix_socket.hpp"

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

// The default guest's kernel and initramfs, or null when the environment does not name them.
struct DefaultGuest {
    std::string kernel, initrd;
};
std::optional<DefaultGuest> default_guest() {
    const char* kernel = std::getenv("STRATA_TEST_KERNEL");
    const char* initrd = std::getenv("STRATA_TEST_INITRD");
    if (!kernel || !initrd || !*kernel || !*initrd) return std::nullopt;
    return DefaultGuest{kernel, initrd};
}
constexpr const char* kNeedsDefaultGuest =
    "needs the default guest: set STRATA_TEST_KERNEL and STRATA_TEST_INITRD (scripts/test does)";

// Boots `guest` on the soft engine with 256 MiB and the extra `flags`, and types `commands` (one
// line, ending in poweroff -f) at its shell prompt: the UART holds the bytes until the guest's
// driver is ready. `name` tells the input files of concurrent tests apart.
ProcessResult boot_and_type(const DefaultGuest& guest, const std::string& flags, const std::string& commands,
                            const std::string& name, const std::string& cmdline = "console=ttyS0 panic=-1") {
    std::string input = ::testing::TempDir() + "strata-linux-commands-" + name;
    FILE* file = std::fopen(input.c_str(), "w");
    if (!file) return {};
    std::fputs(commands.c_str(), file);
    std::fclose(file);
    std::string shell = "'" STRATA_BINARY "' run --accel soft --memory 256M " + flags + " --kernel '" + guest.kernel +
                        "' --initrd '" + guest.initrd + "' --cmdline '" + cmdline + "' < '" + input + "'";
    return run_process({"/bin/sh", "-c", shell}, std::chrono::minutes(10));
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

// --- virtio-vsock, both ways, with the guest side in guests/linux/vsock_tool ---

using Clock = std::chrono::steady_clock;

// Waits until `fd` has something for `events` or the deadline passes.
bool wait_for(int fd, short events, Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    pollfd p{fd, events, 0};
    return left > 0 && ::poll(&p, 1, static_cast<int>(left)) == 1;
}

// Reads one line (without its newline) from `fd`; empty at EOF or the deadline.
std::string read_line(int fd, Clock::time_point deadline) {
    std::string line;
    char c = 0;
    while (wait_for(fd, POLLIN, deadline) && ::recv(fd, &c, 1, 0) == 1) {
        if (c == '\n') return line;
        line += c;
    }
    return {};
}

// The host program of a host-initiated connection: "CONNECT 1234" through `path` until the guest
// listens (until then the guest refuses and the VMM closes the socket), then `data` out while the
// guest's echo comes back, both at once as a real client must (each side's credit is bounded).
struct HostEcho {
    std::string ok_line, echoed;
    int attempts = 0;
};
HostEcho echo_through_guest(const std::string& path, const std::string& data, Clock::time_point deadline) {
    HostEcho result;
    while (Clock::now() < deadline) {
        ++result.attempts;
        auto connected = connect_unix(path);
        if (!connected) {  // the VM is not built yet
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            continue;
        }
        int fd = connected->get();
        std::string connect = "CONNECT 1234\n";
        if (::send(fd, connect.data(), connect.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(connect.size())) continue;
        std::string ok = read_line(fd, std::min(deadline, Clock::now() + std::chrono::seconds(10)));
        if (ok.rfind("OK ", 0) != 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            continue;
        }
        result.ok_line = ok;
        size_t sent = 0;
        bool shut = false;
        char buffer[16384];
        while (Clock::now() < deadline) {
            short events = POLLIN | (sent < data.size() ? POLLOUT : 0);
            if (!wait_for(fd, events, deadline)) break;
            if (sent < data.size()) {
                ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n > 0) sent += static_cast<size_t>(n);
            } else if (!shut) {
                ::shutdown(fd, SHUT_WR);  // the guest's echo loop ends at our EOF
                shut = true;
            }
            ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
            if (n == 0) break;
            if (n > 0) result.echoed.append(buffer, static_cast<size_t>(n));
        }
        return result;
    }
    return result;
}

// The host service of a guest-initiated connection: the first connection to `listener`, one line
// read and `reply` sent back.
std::string answer_guest(const UnixListener& listener, const std::string& reply, Clock::time_point deadline) {
    while (wait_for(listener.fd(), POLLIN, deadline)) {
        auto accepted = listener.accept();
        if (!accepted) return "accept: " + accepted.error().message;
        if (!accepted->valid()) continue;
        std::string line = read_line(accepted->get(), deadline);
        ::send(accepted->get(), reply.data(), reply.size(), MSG_NOSIGNAL);
        return line;
    }
    return "(no connection)";
}

// --vsock with Debian's vmw_vsock_virtio_transport (loaded by the initramfs by modalias): the
// guest's vsock_tool connects to CID 2 port 5000, which the VMM carries to the host's listener at
// PATH_5000; then it listens on port 1234, and a host program reaches it through PATH with
// "CONNECT 1234" and has 200 KiB echoed back, more than either side's buffer, so credit flows
// both ways. Each side checks the bytes it saw; the socket file is gone after the VM.
TEST(LinuxOnSoftEngineWithVsock, HostAndGuestConnectBothWays) {
    auto guest = default_guest();
    if (!guest) GTEST_SKIP() << kNeedsDefaultGuest;
    std::string folder = ::testing::TempDir() + "strata-vsock-e2e-XXXXXX";
    ASSERT_TRUE(::mkdtemp(folder.data()));
    std::string path = folder + "/v.sock";
    GuestFile tool{.guest_path = "/bin/vsock_tool", .host_path = STRATA_GUEST_DIR "/linux/vsock_tool"};
    auto initrd = with_guest_files(guest->initrd, std::span(&tool, 1), folder + "/initramfs.cpio");
    ASSERT_TRUE(initrd) << initrd.error().message;
    auto listener = UnixListener::bind(path + "_5000");
    ASSERT_TRUE(listener) << listener.error().message;

    std::string data = "host-to-guest-line\n";
    for (size_t i = 0; data.size() < 200 * 1024; ++i) data += static_cast<char>('a' + (i * 7) % 26);
    auto deadline = Clock::now() + std::chrono::minutes(4);
    std::string guest_line;
    HostEcho echo;
    std::thread service([&] { guest_line = answer_guest(*listener, "host-reply-to-guest\n", deadline); });
    std::thread client([&] { echo = echo_through_guest(path, data, deadline); });
    std::string commands =
        "vsock_tool connect 2 5000 guest-to-host-$((6 * 7)); vsock_tool listen 1234; poweroff -f\n";
    DefaultGuest with_tool{guest->kernel, *initrd};
    ProcessResult r = boot_and_type(with_tool, "--vsock cid=7,socket=" + path, commands, "vsock");
    service.join();
    client.join();

    EXPECT_EQ(r.exit_status, 0) << describe(r);
    EXPECT_NE(r.out.find("virtio2 vmw_vsock_virtio_transport"), std::string::npos) << "the initramfs's virtio line: " << describe(r);
    EXPECT_EQ(guest_line, "guest-to-host-42") << "what the host's listener got";
    EXPECT_NE(r.out.find("vsock-reply: host-reply-to-guest"), std::string::npos) << describe(r);
    EXPECT_EQ(echo.ok_line.rfind("OK ", 0), 0u) << "after " << echo.attempts << " attempts: " << describe(r);
    EXPECT_EQ(echo.echoed.size(), data.size());
    EXPECT_TRUE(echo.echoed == data) << "the echo differs from what was sent";
    EXPECT_NE(r.out.find(fmt::format("vsock-echoed {} bytes, first line: host-to-guest-line", data.size())),
              std::string::npos)
        << describe(r);
    struct stat gone {};
    EXPECT_NE(::stat(path.c_str(), &gone), 0) << "the VMM removes its socket at exit";
    std::error_code ignored;
    std::filesystem::remove_all(folder, ignored);
}

INSTANTIATE_TEST_SUITE_P(CpusAndUnpack, LinuxOnSoftEngine,
                         ::testing::Values(Boot{1, "host"}, Boot{2, "host"}, Boot{1, "guest"}),
                         [](const auto& param_info) { return std::to_string(param_info.param.cpus) + "cpus_" + param_info.param.unpack; });

}  // namespace
}  // namespace strata::e2e
