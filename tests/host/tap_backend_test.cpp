// The TAP back end against a real interface: frames both ways through an AF_PACKET socket on the
// host side of it, pausing while the receiver cannot take frames, and the errors a user meets.
// Creating an interface needs CAP_NET_ADMIN: without it (or without /dev/net/tun) the tests
// that need one skip and say so.
#include "host/tap_backend.hpp"

#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "base/bytes.hpp"
#include "net_backend_support.hpp"

namespace strata {
namespace {

using Bytes = std::vector<uint8_t>;
using namespace std::chrono_literals;

// IEEE 802 "local experimental" EtherType: nothing else on the interface sends it.
constexpr uint16_t kTestEtherType = 0x88b5;

std::string test_interface_name(char tag) { return fmt::format("stt{}{}", tag, ::getpid() % 1000000); }

Bytes test_frame(uint8_t seed, size_t length = 64) {
    Bytes frame(length, seed);
    std::fill_n(frame.begin(), 6, 0xff);
    const uint8_t source[] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    std::copy(std::begin(source), std::end(source), frame.begin() + 6);
    frame[12] = kTestEtherType >> 8;
    frame[13] = kTestEtherType & 0xff;
    return frame;
}

class Guest final : public NetBackend::Receiver {
public:
    void receive(std::span<const uint8_t> frame) override {
        if (frame.size() < 14 || (frame[12] << 8 | frame[13]) != kTestEtherType) return;  // IPv6 chatter
        std::lock_guard lock(mutex_);
        frames_.emplace_back(frame.begin(), frame.end());
    }
    bool can_receive() const override { return open; }
    std::vector<Bytes> frames() {
        std::lock_guard lock(mutex_);
        return frames_;
    }
    std::atomic<bool> open{true};

private:
    std::mutex mutex_;
    std::vector<Bytes> frames_;
};

template <class Predicate>
bool eventually(Predicate done, std::chrono::milliseconds limit = 5s) {
    for (auto until = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < until;) {
        if (done()) return true;
        std::this_thread::sleep_for(1ms);
    }
    return done();
}

struct TapBackendTest : ::testing::Test {
    std::string ifname = test_interface_name('a');
    std::unique_ptr<TapBackend> tap;
    Guest guest;
    std::unique_ptr<testing::RunningBackend> running;  // stopped before the back end goes
    Fd packet;  // the host's side of the interface

    void SetUp() override {
        auto opened = TapBackend::open(ifname);
        if (!opened) GTEST_SKIP() << "no TAP interface here: " << opened.error().message;
        tap = std::move(*opened);
        // Up, and a packet socket on it.
        Fd control(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        ifreq request{};
        std::copy(ifname.begin(), ifname.end(), request.ifr_name);
        ASSERT_EQ(::ioctl(control.get(), SIOCGIFFLAGS, &request), 0);
        request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP);
        ASSERT_EQ(::ioctl(control.get(), SIOCSIFFLAGS, &request), 0);
        packet = Fd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(kTestEtherType)));
        ASSERT_TRUE(packet.valid());
        sockaddr_ll address{};
        address.sll_family = AF_PACKET;
        address.sll_protocol = htons(kTestEtherType);
        address.sll_ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
        ASSERT_EQ(::bind(packet.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
        running = std::make_unique<testing::RunningBackend>(*tap, guest, "tap-test");
        ASSERT_TRUE(running->started()) << running->started().error().message;
    }
    void TearDown() override { running.reset(); }
    // A frame the host sends out of the interface, towards the guest.
    void host_sends(const Bytes& frame) { ASSERT_EQ(::send(packet.get(), frame.data(), frame.size(), 0), static_cast<ssize_t>(frame.size())); }
};

TEST_F(TapBackendTest, FramesGoBothWays) {
    EXPECT_EQ(tap->interface_name(), ifname);
    EXPECT_EQ(tap->name(), "tap " + ifname);
    Bytes out = test_frame(1, 100);
    bool sent = false;
    running->run([&] { sent = tap->send(out); });
    EXPECT_TRUE(sent);
    pollfd p{packet.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1) << "the guest's frame did not come out on the host";
    Bytes got(2048);
    ssize_t n = ::recv(packet.get(), got.data(), got.size(), 0);
    ASSERT_EQ(n, 100);
    got.resize(100);
    EXPECT_EQ(got, out);

    host_sends(test_frame(2));
    host_sends(test_frame(3));
    ASSERT_TRUE(eventually([&] { return guest.frames().size() == 2; }));
    EXPECT_EQ(guest.frames()[0], test_frame(2));
    EXPECT_EQ(guest.frames()[1], test_frame(3));
}

TEST_F(TapBackendTest, ReadingPausesWhileTheReceiverIsFullAndResumesWhenToldSo) {
    guest.open = false;
    host_sends(test_frame(4));
    running->run([] {});  // a turn of the loop: the tap was readable, and is left alone now
    std::this_thread::sleep_for(50ms);
    running->run([] {});
    EXPECT_TRUE(guest.frames().empty());
    guest.open = true;
    running->run([&] { tap->receive_ready(); });
    ASSERT_TRUE(eventually([&] { return guest.frames().size() == 1; })) << "the frame waited on the host";
    EXPECT_EQ(guest.frames()[0], test_frame(4));
}

TEST_F(TapBackendTest, ASecondUserOfTheInterfaceIsToldItIsBusy) {
    auto again = TapBackend::open(ifname);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().message, "tap " + ifname + ": the interface is in use by another process");
}

TEST(TapBackend, ErrorsNameTheInterfaceAndTheCause) {
    auto long_name = TapBackend::open("a-name-too-long-for-linux");
    ASSERT_FALSE(long_name);
    EXPECT_EQ(long_name.error().message, "tap 'a-name-too-long-for-linux': an interface name has 1 to 15 characters");
    if (::access("/dev/net/tun", F_OK) != 0) GTEST_SKIP() << "no /dev/net/tun";
    if (::geteuid() == 0) {
        auto loopback = TapBackend::open("lo");
        ASSERT_FALSE(loopback);
        EXPECT_EQ(loopback.error().message, "tap lo: the interface exists and is not a TAP interface these flags attach "
                                            "to (a TUN, a multiqueue TAP, or another kind of interface)");
    }
    // An unprivileged user: in a child (no other thread runs here, so it may allocate).
    std::string name = test_interface_name('b');
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        if (::geteuid() == 0 && ::setresuid(65534, 65534, 65534) != 0) ::_exit(10);
        auto tap = TapBackend::open(name);
        if (tap) ::_exit(11);
        const std::string& message = tap.error().message;
        bool named = message.starts_with("tap " + name + ": ");
        bool explains = message.find("needs root") != std::string::npos || message.find("CAP_NET_ADMIN") != std::string::npos;
        ::_exit(named && explains ? 0 : 12);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "10: setresuid, 11: opened, 12: the message";
}

}  // namespace
}  // namespace strata
