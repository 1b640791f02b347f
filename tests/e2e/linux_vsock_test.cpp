// virtio-vsock end to end on the soft engine: Debian's cloud kernel with its
// vmw_vsock_virtio_transport (the default initramfs loads it by modalias) and the guest side in
// guests/linux/vsock_tool, added to a copy of the default initramfs (initramfs_support.hpp).
// Needs the guest from scripts/fetch-guest (STRATA_TEST_KERNEL and STRATA_TEST_INITRD, which
// scripts/test sets); no /dev/kvm.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "e2e/host_servers.hpp"
#include "e2e/initramfs_support.hpp"
#include "e2e/linux_guest_support.hpp"
#include "host/unix_socket.hpp"

namespace strata::e2e {
namespace {


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

}  // namespace
}  // namespace strata::e2e
