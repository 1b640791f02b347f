// The network end to end: Debian's kernel on the soft engine with virtio-net interfaces given by
// --net user, talking to servers and clients this test runs on the host's 127.0.0.1, as a user's
// programs would. Needs the default guest (STRATA_TEST_KERNEL, STRATA_TEST_INITRD); no privileges
// (the TAP back end is tested in tests/host, where an interface can be had).
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "e2e/host_servers.hpp"
#include "e2e/linux_guest_support.hpp"
#include "e2e/vmm_session.hpp"

namespace strata::e2e {
namespace {

// strata on the default guest with its console on pipes (vmm_session.hpp).
class GuestSession : public VmmSession {
public:
    GuestSession(const DefaultGuest& guest, const std::vector<std::string>& flags) : VmmSession(argv_for(guest, flags)) {}

private:
    static std::vector<std::string> argv_for(const DefaultGuest& guest, const std::vector<std::string>& flags) {
        std::vector<std::string> argv = {STRATA_BINARY, "run", "--accel", "soft", "--memory", "256M", "--kernel",
                                         guest.kernel, "--initrd", guest.initrd, "--cmdline", "console=ttyS0 panic=-1"};
        argv.insert(argv.end(), flags.begin(), flags.end());
        return argv;
    }
};

// What the host's sha256sum says about `bytes`.
std::string host_sha256_of(const std::string& bytes, const std::string& name) {
    std::string path = ::testing::TempDir() + "strata-net-" + name;
    FILE* file = std::fopen(path.c_str(), "wb");
    if (!file) return {};
    std::fwrite(bytes.data(), 1, bytes.size(), file);
    std::fclose(file);
    std::string out = run_on_host("sha256sum '" + path + "'").out;
    std::remove(path.c_str());
    return out.substr(0, out.find(' '));
}

// --net user twice, with a forward on the first: the guest's eth0 gets its DHCP lease from slirp
// (the initramfs's line), fetches 200 KB from an HTTP server of this test on the host's 127.0.0.1
// through 10.0.2.2 (the checksums compared), and serves a page through
// hostfwd=tcp:127.0.0.1:PORT-:8000 to a connection the test makes once the guest's httpd listens;
// eth1 has the next MAC; eth0 has user networking's MTU of 65520, eth1 the 1500 its mtu= asks for. Guest output the test waits for carries a computed part ($((...))), so
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
    HttpServerThread server(http, body);
    // The forward's host port: free a moment ago.
    uint16_t forward_port = Listener().port;
    ASSERT_NE(forward_port, 0);
    std::string page = "page-" + std::to_string(getpid()) + "-" + std::to_string(time(nullptr));

    GuestSession session(*guest, {"--net", "user,hostfwd=tcp:127.0.0.1:" + std::to_string(forward_port) + "-:8000",
                                  "--net", "user,mtu=1500"});
    ASSERT_TRUE(session.started());
    session.type("wget -q -O /tmp/f http://10.0.2.2:" + std::to_string(http.port) +
                 "/f; echo fetched-$((40+2)) $(sha256sum /tmp/f); echo eth1=$(cat /sys/class/net/eth1/address); "
                 "echo mtu-$((6*7))=$(cat /sys/class/net/eth0/mtu),$(cat /sys/class/net/eth1/mtu); "
                 "mkdir -p /www; echo " + page + " > /www/index.html; httpd -p 8000 -h /www; echo serving-$((40+2))\n");
    ASSERT_TRUE(session.wait_for("serving-42")) << session.output();
    EXPECT_NE(session.output().find("eth0: 10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3 (DHCP)"), std::string::npos)
        << session.output();
    EXPECT_NE(session.output().find("fetched-42 " + body_sum + " /tmp/f"), std::string::npos) << session.output();
    EXPECT_NE(session.output().find("eth1=52:54:00:12:34:57"), std::string::npos) << session.output();
    EXPECT_NE(session.output().find("mtu-42=65520,1500"), std::string::npos)
        << "the guest takes each link's MTU from the device\n" << session.output();

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

}  // namespace
}  // namespace strata::e2e
