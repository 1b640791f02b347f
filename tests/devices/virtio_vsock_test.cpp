#include "devices/virtio/virtio_vsock.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "devices/virtio/virtio_pci.hpp"
#include "fakes.hpp"
#include "virtio_driver_support.hpp"

namespace strata {
namespace {

using namespace std::chrono_literals;
using testing::DriverQueue;
using testing::eventually;
using vsock::Header;
using vsock::Op;

constexpr uint64_t kCid = 42;
constexpr uint32_t kGuestBuffer = 256 * 1024;  // what the guest advertises, as Linux does

struct Packet {
    Header header{};
    std::string data;
    [[nodiscard]] Op op() const { return static_cast<Op>(header.op); }
};

// A scratch folder for the sockets, removed with what is left in it.
class TempFolder {
public:
    TempFolder() {
        std::string pattern = ::testing::TempDir() + "strata-vsock-XXXXXX";
        path_ = ::mkdtemp(pattern.data()) ? pattern : "";
        EXPECT_FALSE(path_.empty());
    }
    ~TempFolder() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    [[nodiscard]] const std::string& path() const { return path_; }

private:
    std::string path_;
};

// The host program's end: a blocking Unix socket.
Fd unix_connect(const std::string& path) {
    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path.copy(address.sun_path, sizeof(address.sun_path) - 1);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) return Fd();
    return fd;
}

void send_text(const Fd& fd, std::string_view text) {
    ASSERT_EQ(::send(fd.get(), text.data(), text.size(), MSG_NOSIGNAL), static_cast<ssize_t>(text.size()));
}

// What arrives on `fd` within `limit`, up to `want` bytes: stops early at EOF (then `eof` is set).
std::string receive_text(const Fd& fd, size_t want, bool* eof = nullptr, std::chrono::milliseconds limit = 5s) {
    std::string text;
    auto until = std::chrono::steady_clock::now() + limit;
    while (text.size() < want) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        pollfd p{fd.get(), POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
        char buffer[4096];
        ssize_t n = ::recv(fd.get(), buffer, std::min(sizeof buffer, want - text.size()), 0);
        if (n <= 0) {
            if (eof) *eof = true;
            break;
        }
        text.append(buffer, static_cast<size_t>(n));
    }
    return text;
}

// One line from `fd`, with its newline ("OK <port>\n"), or what came before EOF or `limit`.
std::string receive_line(const Fd& fd, std::chrono::milliseconds limit = 5s) {
    std::string line;
    auto until = std::chrono::steady_clock::now() + limit;
    while (!line.ends_with('\n') && std::chrono::steady_clock::now() < until) {
        std::string next = receive_text(fd, 1, nullptr, std::chrono::duration_cast<std::chrono::milliseconds>(
                                                            until - std::chrono::steady_clock::now()));
        if (next.empty()) break;
        line += next;
    }
    return line;
}

// True when the peer closed `fd` (EOF or reset) within `limit`.
bool closed_by_peer(const Fd& fd, std::chrono::milliseconds limit = 5s) {
    bool eof = false;
    std::string rest = receive_text(fd, 1 << 20, &eof, limit);
    return eof;
}

// A guest driver of virtio-vsock over virtio-pci, as Linux's would drive it: rx buffers of a
// 44-byte header and 4 KiB of data in two descriptors, tx packets as a header and a payload
// descriptor, event buffers of 4 bytes.
struct VirtioVsockTest : ::testing::Test {
    static constexpr uint16_t kQueueSize = 64;
    static constexpr uint64_t kRing[3] = {0x10000, 0x20000, 0x30000};  // desc, +0x1000 avail, +0x2000 used
    static constexpr uint64_t kRxBuffers = 0x100000, kTxBuffers = 0x400000, kEventBuffers = 0x80000;
    static constexpr uint32_t kRxData = 4096;
    static constexpr unsigned kRxPosted = 16;

    TempFolder folder;
    std::string path = folder.path() + "/v.sock";
    GuestMemory memory = *GuestMemory::create(16 << 20);
    GuestDma dma{memory};
    testing::RecordingMsi msi;
    testing::FakeIrqLine intx;
    std::shared_ptr<VirtioPci> pci;
    VirtioVsock* vsock = nullptr;
    std::unique_ptr<testing::VirtioPciDriver> driver;
    std::unique_ptr<DriverQueue> queues[3];
    std::map<uint16_t, uint64_t> rx_heads;  // head -> its header buffer
    uint16_t rx_seen = 0, tx_sent = 0, rx_slot = 0, tx_slot = 0;
    uint32_t guest_fwd_cnt = 0;  // what the guest has "read" of every connection (the tests use one at a time)

    void SetUp() override { create({}); }

    void create(VsockOptions options) {
        pci.reset();
        options.guest_cid = kCid;
        options.socket_path = path;
        auto device = VirtioVsock::create(options);
        ASSERT_TRUE(device) << device.error().message;
        vsock = device->get();
        pci = *VirtioPci::create(std::move(*device), dma, msi);
        pci->connect_intx(intx);
        driver = std::make_unique<testing::VirtioPciDriver>(*pci);
        start_driver();
    }
    void start_driver() {
        ASSERT_TRUE(memory.write(kRing[0], std::vector<uint8_t>(0x30000, 0)));
        driver->negotiate(driver->device_features());
        ASSERT_TRUE(driver->status() & 8);
        for (uint16_t q = 0; q < 3; ++q) {
            driver->setup_queue(q, kQueueSize, kRing[q], kRing[q] + 0x1000, kRing[q] + 0x2000);
            queues[q] = std::make_unique<DriverQueue>(memory, kQueueSize, kRing[q], kRing[q] + 0x1000, kRing[q] + 0x2000);
        }
        rx_heads.clear();
        rx_seen = tx_sent = 0;
        for (unsigned i = 0; i < kRxPosted; ++i) post_rx(false);
        driver->driver_ok();
    }

    void post_rx(bool notify = true) {
        uint64_t header = kRxBuffers + 0x2000 * static_cast<uint64_t>(rx_slot++ % (2 * kRxPosted));
        DriverQueue::Buffer chain[] = {{header, vsock::kHeaderSize, true}, {header + 0x100, kRxData, true}};
        rx_heads[queues[0]->offer(chain)] = header;
        if (notify) driver->notify(0);
    }

    static Header make(Op op, uint32_t guest_port, uint32_t host_port, uint32_t len = 0) {
        Header h{};
        h.src_cid = kCid;
        h.dst_cid = vsock::kHostCid;
        h.src_port = guest_port;
        h.dst_port = host_port;
        h.len = len;
        h.type = vsock::kTypeStream;
        h.op = static_cast<uint16_t>(op);
        h.buf_alloc = kGuestBuffer;
        return h;
    }
    // Sends one packet on tx and waits for the device to return it; `chain_payload` bytes of
    // payload follow the header in the chain (data, padded with 'x').
    void send(Header h, std::string_view data = {}, std::optional<uint32_t> chain_payload = std::nullopt) {
        if (h.fwd_cnt == 0) h.fwd_cnt = guest_fwd_cnt;
        uint32_t carried = chain_payload.value_or(static_cast<uint32_t>(data.size()));
        uint64_t at = kTxBuffers + 0x20000 * static_cast<uint64_t>(tx_slot++ % 8);
        std::string bytes(data);
        bytes.resize(carried, 'x');
        ASSERT_TRUE(memory.write(at, std::span(reinterpret_cast<const uint8_t*>(&h), sizeof h)));
        ASSERT_TRUE(memory.write(at + 0x100, std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size())));
        std::vector<DriverQueue::Buffer> chain{{at, vsock::kHeaderSize, false}};
        if (carried > 0) chain.push_back({at + 0x100, carried, false});
        queues[1]->offer(chain);
        driver->notify(1);
        ++tx_sent;
        ASSERT_TRUE(eventually([&] { return queues[1]->used_idx() == tx_sent; }));
    }
    // The next packet the device puts on rx within `limit` (its buffer is posted again).
    std::optional<Packet> receive(std::chrono::milliseconds limit = 5s) {
        if (!eventually([&] { return queues[0]->used_idx() != rx_seen; }, limit)) return std::nullopt;
        auto [head, length] = queues[0]->used(rx_seen++);
        Packet packet;
        uint64_t at = rx_heads.at(static_cast<uint16_t>(head));
        EXPECT_TRUE(memory.read(at, std::span(reinterpret_cast<uint8_t*>(&packet.header), sizeof packet.header)));
        EXPECT_EQ(length, vsock::kHeaderSize + packet.header.len) << "used length: the header and its payload";
        packet.data.resize(packet.header.len);
        EXPECT_TRUE(memory.read(at + 0x100, std::span(reinterpret_cast<uint8_t*>(packet.data.data()), packet.data.size())));
        if (packet.op() == Op::Rw) guest_fwd_cnt += packet.header.len;
        post_rx();
        return packet;
    }
    bool quiet(std::chrono::milliseconds limit = 200ms) { return !receive(limit).has_value(); }
    bool needs_reset() { return (driver->status() & 64) != 0; }

    // A host program connected through `path` with CONNECT `port`, and the REQUEST it made.
    std::pair<Fd, Packet> host_connect(uint32_t port) {
        Fd host = unix_connect(path);
        EXPECT_TRUE(host.valid());
        send_text(host, fmt::format("CONNECT {}\n", port));
        auto request = receive();
        EXPECT_TRUE(request);
        return {std::move(host), request.value_or(Packet{})};
    }
    // Host-initiated and accepted: returns the host's socket and the host port.
    std::pair<Fd, uint32_t> established_from_host(uint32_t port) {
        auto [host, request] = host_connect(port);
        send(make(Op::Response, port, request.header.src_port));
        EXPECT_EQ(receive_line(host), fmt::format("OK {}\n", request.header.src_port));
        return {std::move(host), request.header.src_port};
    }
};

TEST_F(VirtioVsockTest, PresentsASocketDeviceWithTheGuestCid) {
    EXPECT_EQ(driver->config(0x00, 4), 0x1053'1af4u) << "0x1040 + device type 19";
    EXPECT_EQ(driver->read(0x12, 2), 3u) << "rx, tx and event queues";
    EXPECT_EQ(driver->device_features() & 0xff'ffff, 1u) << "VIRTIO_VSOCK_F_STREAM only";
    EXPECT_EQ(driver->device_config(0, 4), kCid);
    EXPECT_EQ(driver->device_config(4, 4), 0u);
    struct stat info {};
    ASSERT_EQ(::stat(path.c_str(), &info), 0) << "the listener exists from the start";
    EXPECT_TRUE(S_ISSOCK(info.st_mode));
}

TEST_F(VirtioVsockTest, HostConnectsWithConnectLineAndDataFlowsBothWays) {
    auto [host, request] = host_connect(1234);
    EXPECT_EQ(request.op(), Op::Request);
    EXPECT_EQ(request.header.src_cid, vsock::kHostCid);
    EXPECT_EQ(request.header.dst_cid, kCid);
    EXPECT_EQ(request.header.dst_port, 1234u);
    EXPECT_GE(request.header.src_port, VsockMuxer::kFirstHostPort);
    EXPECT_EQ(request.header.type, vsock::kTypeStream);
    EXPECT_EQ(request.header.buf_alloc, VsockOptions{}.buffer_size) << "our buffer, advertised";
    send(make(Op::Response, 1234, request.header.src_port));
    EXPECT_EQ(receive_line(host), fmt::format("OK {}\n", request.header.src_port));

    send_text(host, "hello");
    auto data = receive();
    ASSERT_TRUE(data);
    EXPECT_EQ(data->op(), Op::Rw);
    EXPECT_EQ(data->data, "hello");
    EXPECT_EQ(data->header.dst_port, 1234u);

    send(make(Op::Rw, 1234, request.header.src_port, 5), "world");
    EXPECT_EQ(receive_text(host, 5), "world");
    EXPECT_EQ(vsock->connection_count(), 1u);
    EXPECT_FALSE(needs_reset());
}

TEST_F(VirtioVsockTest, BytesAfterTheConnectLineAreTheGuests) {
    Fd host = unix_connect(path);
    send_text(host, "CONNECT 99\r\nearly");  // a terminal's \r\n, and data before the OK
    auto request = receive();
    ASSERT_TRUE(request);
    EXPECT_TRUE(quiet()) << "nothing is read before the guest accepts";
    send(make(Op::Response, 99, request->header.src_port));
    EXPECT_EQ(receive_line(host), fmt::format("OK {}\n", request->header.src_port));
    auto data = receive();
    ASSERT_TRUE(data);
    EXPECT_EQ(data->data, "early");
}

TEST_F(VirtioVsockTest, GuestRefusalClosesTheHostConnection) {
    auto [host, request] = host_connect(1234);
    send(make(Op::Rst, 1234, request.header.src_port));
    bool eof = false;
    EXPECT_EQ(receive_text(host, 64, &eof), "") << "no OK";
    EXPECT_TRUE(eof);
    EXPECT_TRUE(eventually([&] { return vsock->connection_count() == 0; }));
}

TEST_F(VirtioVsockTest, ABadConnectLineIsClosed) {
    for (const std::string& line : std::vector<std::string>{"HELLO 1234\n", "CONNECT\n", "CONNECT 12a4\n", "CONNECT 4294967296\n", "CONNECT -1\n",
                             std::string(40, 'C')}) {
        Fd host = unix_connect(path);
        send_text(host, line);
        EXPECT_TRUE(closed_by_peer(host)) << line;
    }
    EXPECT_TRUE(quiet()) << "the guest heard of none of them";
    EXPECT_TRUE(eventually([&] { return vsock->connection_count() == 0; }));
}

TEST_F(VirtioVsockTest, GuestConnectsToAHostListenerAndDataFlowsBothWays) {
    auto listener = UnixListener::bind(path + "_5000");
    ASSERT_TRUE(listener) << listener.error().message;
    send(make(Op::Request, 777, 5000));
    auto response = receive();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->op(), Op::Response);
    EXPECT_EQ(response->header.src_port, 5000u);
    EXPECT_EQ(response->header.dst_port, 777u);
    EXPECT_EQ(response->header.src_cid, vsock::kHostCid);
    EXPECT_EQ(response->header.dst_cid, kCid);
    pollfd p{listener->fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1);
    auto accepted = listener->accept();
    ASSERT_TRUE(accepted && accepted->valid());
    Fd host = std::move(*accepted);

    send(make(Op::Rw, 777, 5000, 4), "ping");
    EXPECT_EQ(receive_text(host, 4), "ping");
    send_text(host, "pong");
    auto data = receive();
    ASSERT_TRUE(data);
    EXPECT_EQ(data->op(), Op::Rw);
    EXPECT_EQ(data->data, "pong");
}

TEST_F(VirtioVsockTest, GuestConnectWithNoHostListenerGetsRst) {
    send(make(Op::Request, 777, 6000));
    auto reply = receive();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->op(), Op::Rst) << "connection refused";
    EXPECT_EQ(reply->header.src_port, 6000u);
    EXPECT_EQ(reply->header.dst_port, 777u);
    EXPECT_EQ(reply->header.dst_cid, kCid);
    EXPECT_EQ(vsock->connection_count(), 0u);
}

TEST_F(VirtioVsockTest, HostDataBeyondTheGuestsCreditStaysInTheSocket) {
    auto [host, request] = host_connect(1234);
    uint32_t host_port = request.header.src_port;
    Header response = make(Op::Response, 1234, host_port);
    response.buf_alloc = 1000;
    send(response);
    ASSERT_EQ(receive_line(host), fmt::format("OK {}\n", host_port));
    // The host writes all it can: if the VMM read beyond the guest's 1000 bytes it could write
    // without end; it cannot get much past what the two socket buffers hold.
    ASSERT_EQ(::fcntl(host.get(), F_SETFL, O_NONBLOCK), 0);
    std::string chunk(4096, 'h');
    size_t written = 0;
    for (int i = 0; i < 4096; ++i) {
        ssize_t n = ::send(host.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
        if (n <= 0) break;
        written += static_cast<size_t>(n);
    }
    EXPECT_LT(written, size_t{4} << 20) << "the VMM kept reading the host socket";
    size_t got = 0;
    while (auto packet = receive(300ms)) {
        EXPECT_EQ(packet->op(), Op::Rw);
        got += packet->data.size();
    }
    EXPECT_EQ(got, 1000u) << "exactly the guest's credit";
    // The guest reads it all and says so: 1000 more may come.
    Header update = make(Op::CreditUpdate, 1234, host_port);
    update.buf_alloc = 1000;
    update.fwd_cnt = 1000;
    send(update);
    got = 0;
    while (auto packet = receive(300ms)) got += packet->data.size();
    EXPECT_EQ(got, 1000u);
}

TEST_F(VirtioVsockTest, OurCreditIsAdvertisedAndHonoured) {
    VsockOptions small;
    small.buffer_size = 4096;
    create(small);
    auto [host, host_port] = established_from_host(1234);
    // Up to our buf_alloc at once: the host socket takes it, and the guest hears of the room.
    send(make(Op::Rw, 1234, host_port, 4096), std::string(4096, 'g'));
    auto update = receive();
    ASSERT_TRUE(update);
    EXPECT_EQ(update->op(), Op::CreditUpdate);
    EXPECT_EQ(update->header.buf_alloc, 4096u);
    EXPECT_EQ(update->header.fwd_cnt, 4096u);
    EXPECT_EQ(receive_text(host, 4096).size(), 4096u);
    // A guest that sends more than we have room for is reset.
    send(make(Op::Rw, 1234, host_port, 4097), std::string(4097, 'g'));
    auto reset = receive();
    ASSERT_TRUE(reset);
    EXPECT_EQ(reset->op(), Op::Rst);
    EXPECT_TRUE(closed_by_peer(host));
}

TEST_F(VirtioVsockTest, CreditRequestGetsACreditUpdate) {
    auto [host, host_port] = established_from_host(1234);
    send(make(Op::CreditRequest, 1234, host_port));
    auto update = receive();
    ASSERT_TRUE(update);
    EXPECT_EQ(update->op(), Op::CreditUpdate);
    EXPECT_EQ(update->header.buf_alloc, VsockOptions{}.buffer_size);
}

TEST_F(VirtioVsockTest, GuestShutdownHalfClosesThenEndsWithRst) {
    auto [host, host_port] = established_from_host(1234);
    Header shutdown = make(Op::Shutdown, 1234, host_port);
    shutdown.flags = vsock::kShutdownSend;
    send(shutdown);
    bool eof = false;
    EXPECT_EQ(receive_text(host, 1, &eof), "");
    EXPECT_TRUE(eof) << "the host program reads EOF";
    send_text(host, "still");  // the other way is open
    auto data = receive();
    ASSERT_TRUE(data);
    EXPECT_EQ(data->data, "still");
    shutdown.flags = vsock::kShutdownBoth;
    send(shutdown);
    auto reset = receive();
    ASSERT_TRUE(reset);
    EXPECT_EQ(reset->op(), Op::Rst) << "a clean disconnect ends with the peer's RST";
    EXPECT_TRUE(eventually([&] { return vsock->connection_count() == 0; }));
}

TEST_F(VirtioVsockTest, HostEofBecomesShutdownSendAndBothEndsClose) {
    auto [host, host_port] = established_from_host(1234);
    ASSERT_EQ(::shutdown(host.get(), SHUT_WR), 0);
    auto shutdown = receive();
    ASSERT_TRUE(shutdown);
    EXPECT_EQ(shutdown->op(), Op::Shutdown);
    EXPECT_EQ(shutdown->header.flags, vsock::kShutdownSend) << "the host may still read";
    send(make(Op::Rw, 1234, host_port, 5), "reply");
    EXPECT_EQ(receive_text(host, 5), "reply");
    Header done = make(Op::Shutdown, 1234, host_port);
    done.flags = vsock::kShutdownSend;
    send(done);
    auto reset = receive();
    ASSERT_TRUE(reset);
    EXPECT_EQ(reset->op(), Op::Rst) << "neither side sends any more";
    EXPECT_TRUE(closed_by_peer(host));
}

TEST_F(VirtioVsockTest, GuestRstClosesTheHostSocket) {
    auto [host, host_port] = established_from_host(1234);
    send(make(Op::Rst, 1234, host_port));
    EXPECT_TRUE(closed_by_peer(host));
    EXPECT_TRUE(quiet()) << "an RST is not answered";
}

TEST_F(VirtioVsockTest, HostCloseAndAWriteToItResets) {
    auto [host, host_port] = established_from_host(1234);
    host.reset();
    auto shutdown = receive();
    ASSERT_TRUE(shutdown);
    EXPECT_EQ(shutdown->op(), Op::Shutdown);
    send(make(Op::Rw, 1234, host_port, 4), "late");
    auto reset = receive();
    ASSERT_TRUE(reset);
    EXPECT_EQ(reset->op(), Op::Rst) << "the host program is gone";
}

TEST_F(VirtioVsockTest, PacketsWithAnotherSourceCidAreDropped) {
    auto listener = UnixListener::bind(path + "_5000");
    ASSERT_TRUE(listener);
    Header request = make(Op::Request, 777, 5000);
    request.src_cid = kCid + 1;
    send(request);
    EXPECT_TRUE(quiet()) << "no answer to a source that is not the guest";
    auto accepted = listener->accept();
    ASSERT_TRUE(accepted);
    EXPECT_FALSE(accepted->valid()) << "and no connection to the host";
}

TEST_F(VirtioVsockTest, MalformedPacketsGetRstAndResetTheirConnection) {
    auto [host, host_port] = established_from_host(1234);
    // len beyond the payload the chain carries.
    send(make(Op::Rw, 1234, host_port, 100), "short", 5);
    auto reset = receive();
    ASSERT_TRUE(reset);
    EXPECT_EQ(reset->op(), Op::Rst);
    EXPECT_TRUE(closed_by_peer(host));

    // Each of these, to a port with no connection, gets an RST of its own.
    std::vector<Header> bad;
    bad.push_back(make(Op::Rw, 1, 2, vsock::kMaxPayload + 1));  // oversize len
    bad.push_back(make(Op::Request, 3, 4));
    bad.back().type = vsock::kTypeSeqpacket;
    bad.push_back(make(Op::Request, 5, 6));
    bad.back().op = 99;
    bad.push_back(make(Op::Request, 7, 8));
    bad.back().dst_cid = 9;
    bad.push_back(make(Op::Request, 9, 10, 4));  // a payload on a control packet
    bad.push_back(make(Op::Rw, 11, 12, 3));  // no such connection
    for (const Header& h : bad) {
        send(h, {}, h.len);
        auto reply = receive();
        ASSERT_TRUE(reply) << "op " << h.op;
        EXPECT_EQ(reply->op(), Op::Rst) << "op " << h.op;
        EXPECT_EQ(reply->header.dst_port, h.src_port);
        EXPECT_EQ(reply->header.src_port, h.dst_port);
    }
    send(make(Op::Rst, 13, 14));
    EXPECT_TRUE(quiet()) << "an RST for no connection is not answered";
    // A chain shorter than a header is dropped and returned.
    uint64_t at = kTxBuffers;
    DriverQueue::Buffer tiny[] = {{at, 20, false}};
    queues[1]->offer(tiny);
    driver->notify(1);
    ++tx_sent;
    EXPECT_TRUE(eventually([&] { return queues[1]->used_idx() == tx_sent; }));
    EXPECT_TRUE(quiet());
    EXPECT_FALSE(needs_reset()) << "bad packets are the connection's problem, not the device's";
}

TEST_F(VirtioVsockTest, AWritableBufferOnTxNeedsAReset) {
    auto [host, host_port] = established_from_host(1234);
    DriverQueue::Buffer chain[] = {{kTxBuffers, vsock::kHeaderSize, true}};
    queues[1]->offer(chain);
    driver->notify(1);
    EXPECT_TRUE(eventually([&] { return needs_reset(); }));
    EXPECT_TRUE(closed_by_peer(host)) << "the connections close with the device";
}

TEST_F(VirtioVsockTest, HostConnectionsBeyondTheLimitAreClosed) {
    VsockOptions two;
    two.max_connections = 2;
    create(two);
    Fd first = unix_connect(path), second = unix_connect(path);
    ASSERT_TRUE(eventually([&] { return vsock->connection_count() == 2; }));
    Fd third = unix_connect(path);
    EXPECT_TRUE(closed_by_peer(third));
    send(make(Op::Request, 777, 5000));
    auto reply = receive();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->op(), Op::Rst) << "a guest connect beyond the limit is refused too";
    first.reset();
    ASSERT_TRUE(eventually([&] { return vsock->connection_count() == 1; }));
    Fd fourth = unix_connect(path);
    send_text(fourth, "CONNECT 1\n");
    auto request = receive();
    ASSERT_TRUE(request) << "room again";
    EXPECT_EQ(request->op(), Op::Request);
}

TEST_F(VirtioVsockTest, TransportResetDropsConnectionsAndTellsTheDriver) {
    auto [host, host_port] = established_from_host(1234);
    DriverQueue::Buffer event[] = {{kEventBuffers, vsock::kEventSize, true}};
    ASSERT_TRUE(memory.write_obj<uint32_t>(kEventBuffers, 0xffff'ffff));
    queues[2]->offer(event);
    driver->notify(2);
    vsock->transport_reset();
    EXPECT_TRUE(eventually([&] { return queues[2]->used_idx() == 1; }));
    EXPECT_EQ(queues[2]->used(0).second, vsock::kEventSize);
    EXPECT_EQ(*memory.read_obj<uint32_t>(kEventBuffers), vsock::kEventTransportReset);
    EXPECT_TRUE(closed_by_peer(host));
    auto [again, request] = host_connect(1234);
    EXPECT_EQ(request.op(), Op::Request) << "new connections work after it";
}

TEST_F(VirtioVsockTest, DeviceResetClosesConnectionsAndTheListenerStays) {
    auto [host, host_port] = established_from_host(1234);
    driver->status(0);
    EXPECT_TRUE(closed_by_peer(host));
    start_driver();
    auto [again, request] = host_connect(1234);
    EXPECT_EQ(request.op(), Op::Request);
}

TEST(VirtioVsockCreate, RefusesSocketPathsItCannotBind) {
    TempFolder folder;
    std::string path = folder.path() + "/v.sock";
    auto first = VirtioVsock::create({.guest_cid = 3, .socket_path = path});
    ASSERT_TRUE(first) << first.error().message;
    auto taken = VirtioVsock::create({.guest_cid = 3, .socket_path = path});
    ASSERT_FALSE(taken);
    EXPECT_NE(taken.error().message.find(path + " exists"), std::string::npos) << taken.error().message;
    auto no_folder = VirtioVsock::create({.guest_cid = 3, .socket_path = folder.path() + "/none/v.sock"});
    ASSERT_FALSE(no_folder);
    EXPECT_NE(no_folder.error().message.find("No such file or directory"), std::string::npos) << no_folder.error().message;
    auto too_long = VirtioVsock::create({.guest_cid = 3, .socket_path = folder.path() + "/" + std::string(100, 'v')});
    ASSERT_FALSE(too_long);
    EXPECT_NE(too_long.error().message.find("bytes long"), std::string::npos) << too_long.error().message;
    auto reserved = VirtioVsock::create({.guest_cid = 2, .socket_path = folder.path() + "/w.sock"});
    ASSERT_FALSE(reserved);
    EXPECT_NE(reserved.error().message.find("reserved"), std::string::npos) << reserved.error().message;
    first->reset();
    struct stat info {};
    EXPECT_NE(::stat(path.c_str(), &info), 0) << "the socket file goes with the device";
}

}  // namespace
}  // namespace strata
