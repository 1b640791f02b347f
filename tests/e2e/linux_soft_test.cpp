// The main job on the soft engine: Debian's cloud kernel (linux-image-cloud-amd64) with the
// busybox-static initramfs of scripts/fetch-guest boots to a shell on the serial console, with
// one and with two vCPUs, with its LZ4 payload unpacked on the host (the default) and by its own
// decompressor in the guest (--kernel-unpack guest, the unmodified boot path), runs commands typed into the console and powers off. The guest computes
// a checksum of data the host checksums too. With --test-devices the guest finds the PCI root
// bridge the DSDT describes, its windows, and pci-testdev in slot 1. With --net user the guest
// gets its lease from slirp, fetches from the host and serves through a forward. Needs the guest from
// scripts/fetch-guest (STRATA_TEST_KERNEL and STRATA_TEST_INITRD, which scripts/test sets); no /dev/kvm.
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

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

// strata on the default guest with its console (stdin, and stdout with stderr) on pipes, for a test
// that types commands, waits for what the guest prints and acts on the host in between.
class GuestSession {
public:
    GuestSession(const DefaultGuest& guest, std::vector<std::string> flags) {
        std::vector<std::string> argv = {STRATA_BINARY, "run", "--accel", "soft", "--memory", "256M", "--kernel",
                                         guest.kernel, "--initrd", guest.initrd, "--cmdline", "console=ttyS0 panic=-1"};
        argv.insert(argv.end(), flags.begin(), flags.end());
        std::vector<char*> args;
        for (auto& arg : argv) args.push_back(arg.data());
        args.push_back(nullptr);
        int in[2], out[2];
        if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return;
        pid_ = fork();
        if (pid_ == 0) {
            dup2(in[0], STDIN_FILENO);
            dup2(out[1], STDOUT_FILENO);
            dup2(out[1], STDERR_FILENO);
            execv(args[0], args.data());
            _exit(kExecFailed);
        }
        close(in[0]);
        close(out[1]);
        input_ = in[1];
        output_fd_ = out[0];
    }
    ~GuestSession() {
        if (pid_ > 0 && !exited_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        for (int fd : {input_, output_fd_})
            if (fd >= 0) close(fd);
    }
    [[nodiscard]] bool started() const { return pid_ > 0 && input_ >= 0; }
    void type(const std::string& line) {
        ASSERT_EQ(write(input_, line.data(), line.size()), static_cast<ssize_t>(line.size()));
    }
    // Reads the console until `text` has appeared, the guest's end, or `limit`.
    bool wait_for(const std::string& text, std::chrono::seconds limit = std::chrono::seconds(120)) {
        auto deadline = std::chrono::steady_clock::now() + limit;
        while (output_.find(text) == std::string::npos) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0 || output_fd_ < 0) return false;
            pollfd fd{output_fd_, POLLIN, 0};
            if (poll(&fd, 1, static_cast<int>(left.count())) <= 0) continue;
            char buffer[4096];
            ssize_t n = read(output_fd_, buffer, sizeof buffer);
            if (n <= 0) {
                close(output_fd_);
                output_fd_ = -1;
                return output_.find(text) != std::string::npos;
            }
            output_.append(buffer, static_cast<size_t>(n));
        }
        return true;
    }
    // The exit status once the output has ended, or -1.
    int wait_exit(std::chrono::seconds limit = std::chrono::seconds(60)) {
        wait_for("\x01never\x02", limit);
        int status = 0;
        if (output_fd_ >= 0 || waitpid(pid_, &status, 0) != pid_) return -1;
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    [[nodiscard]] const std::string& output() const { return output_; }

private:
    pid_t pid_ = -1;
    bool exited_ = false;
    int input_ = -1, output_fd_ = -1;
    std::string output_;
};

// A TCP socket listening on 127.0.0.1 at a port the kernel picked (so parallel runs never collide).
struct Listener {
    int fd = -1;
    uint16_t port = 0;
    Listener() {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof(address);
        if (bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0 || listen(fd, 4) != 0 ||
            getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
            return;
        port = ntohs(address.sin_port);
    }
    ~Listener() { close(fd); }
};

// Reads from `fd` until the peer closes, `until` appears, or `limit` passes.
std::string read_from(int fd, const std::string& until, std::chrono::seconds limit) {
    std::string bytes;
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (until.empty() || bytes.find(until) == std::string::npos) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{fd, POLLIN, 0};
        if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
        char buffer[4096];
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n <= 0) break;
        bytes.append(buffer, static_cast<size_t>(n));
    }
    return bytes;
}

// One HTTP/1.0 answer with `body` to each request on `listener`, until `stop`.
void serve_http(const Listener& listener, const std::string& body, const std::atomic<bool>& stop) {
    while (!stop) {
        pollfd p{listener.fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        int client = accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) continue;
        read_from(client, "\r\n\r\n", std::chrono::seconds(30));
        std::string answer = "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body;
        for (size_t done = 0; done < answer.size();) {
            ssize_t n = write(client, answer.data() + done, answer.size() - done);
            if (n <= 0) break;
            done += static_cast<size_t>(n);
        }
        close(client);
    }
}

// What the host's sha256sum says about `bytes`.
std::string host_sha256_of(const std::string& bytes, const std::string& name) {
    std::string path = ::testing::TempDir() + "strata-net-" + name;
    FILE* file = std::fopen(path.c_str(), "wb");
    if (!file) return {};
    std::fwrite(bytes.data(), 1, bytes.size(), file);
    std::fclose(file);
    FILE* pipe = popen(("sha256sum '" + path + "'").c_str(), "r");
    char buffer[128] = {};
    std::string out = pipe && fgets(buffer, sizeof buffer, pipe) ? buffer : "";
    if (pipe) pclose(pipe);
    std::remove(path.c_str());
    return out.substr(0, out.find(' '));
}

// --net user twice, with a forward on the first: the guest's eth0 gets its DHCP lease from slirp
// (the initramfs's line), fetches 200 KB from an HTTP server of this test on the host's 127.0.0.1
// through 10.0.2.2 (the checksums compared), and serves a page through
// hostfwd=tcp:127.0.0.1:PORT-:8000 to a connection the test makes once the guest's httpd listens;
// eth1 has the next MAC. Guest output the test waits for carries a computed part ($((...))), so
// that the console's echo of the typed command cannot match.
TEST(LinuxOnSoftEngineWithNetwork, GetsALeaseFetchesFromTheHostAndServesThroughAForward) {
    auto guest = default_guest();
    if (!guest) GTEST_SKIP() << kNeedsDefaultGuest;
    std::string body;
    for (unsigned i = 0; body.size() < 200 * 1000; ++i) body += std::to_string(i * 2654435761u) + "\n";
    std::string body_sum = host_sha256_of(body, std::to_string(getpid()));
    ASSERT_EQ(body_sum.size(), 64u) << "the host's sha256sum did not answer";
    Listener http;
    ASSERT_NE(http.port, 0);
    std::atomic<bool> stop{false};
    std::thread server([&] { serve_http(http, body, stop); });
    struct StopServer {
        std::atomic<bool>& stop;
        std::thread& server;
        ~StopServer() {
            stop = true;
            server.join();
        }
    } stop_server{stop, server};
    // The forward's host port: free a moment ago.
    uint16_t forward_port = Listener().port;
    ASSERT_NE(forward_port, 0);
    std::string page = "page-" + std::to_string(getpid()) + "-" + std::to_string(time(nullptr));

    GuestSession session(*guest, {"--net", "user,hostfwd=tcp:127.0.0.1:" + std::to_string(forward_port) + "-:8000",
                                  "--net", "user"});
    ASSERT_TRUE(session.started());
    session.type("wget -q -O /tmp/f http://10.0.2.2:" + std::to_string(http.port) +
                 "/f; echo fetched-$((40+2)) $(sha256sum /tmp/f); echo eth1=$(cat /sys/class/net/eth1/address); "
                 "mkdir -p /www; echo " + page + " > /www/index.html; httpd -p 8000 -h /www; echo serving-$((40+2))\n");
    ASSERT_TRUE(session.wait_for("serving-42")) << session.output();
    EXPECT_NE(session.output().find("eth0: 10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3 (DHCP)"), std::string::npos)
        << session.output();
    EXPECT_NE(session.output().find("fetched-42 " + body_sum + " /tmp/f"), std::string::npos) << session.output();
    EXPECT_NE(session.output().find("eth1=52:54:00:12:34:57"), std::string::npos) << session.output();

    // The host connects to the forward: the guest's httpd answers.
    int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(forward_port);
    ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    std::string request = "GET /index.html HTTP/1.0\r\n\r\n";
    ASSERT_EQ(write(client, request.data(), request.size()), static_cast<ssize_t>(request.size()));
    std::string answer = read_from(client, "", std::chrono::seconds(60));
    close(client);
    EXPECT_NE(answer.find("200 OK"), std::string::npos) << answer;
    EXPECT_NE(answer.find(page), std::string::npos) << answer << "\n" << session.output();

    session.type("poweroff -f\n");
    EXPECT_EQ(session.wait_exit(), 0) << session.output();
}

INSTANTIATE_TEST_SUITE_P(CpusAndUnpack, LinuxOnSoftEngine,
                         ::testing::Values(Boot{1, "host"}, Boot{2, "host"}, Boot{1, "guest"}),
                         [](const auto& param_info) { return std::to_string(param_info.param.cpus) + "cpus_" + param_info.param.unpack; });

}  // namespace
}  // namespace strata::e2e
