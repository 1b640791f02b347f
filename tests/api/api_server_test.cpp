// The control API over its real transport: a Unix socket served by libmicrohttpd, reached with
// the CLI's libcurl client and with raw bytes, as curl --unix-socket or a hostile local program
// would reach it.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/api_client.hpp"
#include "api/api_server.hpp"
#include "api/vm_control_fake.hpp"

namespace strata::api {
namespace {

using nlohmann::json;
using testing::FakeVm;

std::string temp_socket(const char* name) {
    std::string path = ::testing::TempDir() + "strata-api-" + std::to_string(::getpid()) + "-" + name;
    ::unlink(path.c_str());
    return path;
}

// Sends `bytes` on a fresh connection and returns all the server says until it closes (or 5 s).
std::string raw_exchange(const std::string& path, const std::string& bytes) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.data(), path.size());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
        ::close(fd);
        return "<no connection>";
    }
    timeval timeout{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    size_t sent = 0;
    while (sent < bytes.size()) {
        ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<size_t>(n);
    }
    ::shutdown(fd, SHUT_WR);
    std::string reply;
    char buffer[4096];
    for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) reply.append(buffer, static_cast<size_t>(n));
    ::close(fd);
    return reply;
}

TEST(ApiServer, AnswersTheCliClientOnAUnixSocketOnlyItsOwnerMayOpen) {
    FakeVm vm;
    std::string path = temp_socket("owner");
    auto server = ApiServer::start(path, vm);
    ASSERT_TRUE(server) << server.error().message;
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);

    auto info = api_call(path, "GET", "/v1/vm");
    ASSERT_TRUE(info) << info.error().message;
    EXPECT_EQ(info->status, 200);
    EXPECT_EQ(json::parse(info->body)["engine"], "fake");

    auto stop = api_call(path, "PUT", "/v1/vm/stop", R"({"timeout_ms": 1234})");
    ASSERT_TRUE(stop) << stop.error().message;
    EXPECT_EQ(stop->status, 200) << stop->body;
    EXPECT_EQ(vm.last_deadline, std::chrono::milliseconds(1234));
}

TEST(ApiServer, RefusesAPathThatExistsAndRemovesItsOwnSocketWhenItGoes) {
    FakeVm vm;
    std::string path = temp_socket("exists");
    {
        auto server = ApiServer::start(path, vm);
        ASSERT_TRUE(server) << server.error().message;
        auto second = ApiServer::start(path, vm);
        ASSERT_FALSE(second);
        EXPECT_NE(second.error().message.find("exists"), std::string::npos) << second.error().message;
    }
    struct stat st {};
    EXPECT_NE(::stat(path.c_str(), &st), 0) << "the socket file outlived its server";
    auto call = api_call(path, "GET", "/v1/vm");
    ASSERT_FALSE(call);
    EXPECT_NE(call.error().message.find(path), std::string::npos);
}

TEST(ApiServer, WrongMethodsAndUnknownPathsGetTheirStatusAndAnAllowHeader) {
    FakeVm vm;
    std::string path = temp_socket("methods");
    auto server = ApiServer::start(path, vm);
    ASSERT_TRUE(server) << server.error().message;
    auto missing = api_call(path, "GET", "/v2/everything");
    ASSERT_TRUE(missing);
    EXPECT_EQ(missing->status, 404);
    std::string reply = raw_exchange(path, "POST /v1/vm HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    EXPECT_NE(reply.find("HTTP/1.1 405"), std::string::npos) << reply;
    EXPECT_NE(reply.find("Allow: GET"), std::string::npos) << reply;
}

TEST(ApiServer, ABodyOverTheLimitIs413AndNeverReachesTheVm) {
    FakeVm vm;
    std::string path = temp_socket("large");
    auto server = ApiServer::start(path, vm);
    ASSERT_TRUE(server) << server.error().message;
    std::string body = "{\"timeout_ms\": 5, \"pad\": \"" + std::string(kMaxBodyBytes, 'x') + "\"}";
    auto reply = api_call(path, "PUT", "/v1/vm/stop", body);
    ASSERT_TRUE(reply) << reply.error().message;
    EXPECT_EQ(reply->status, 413);
    EXPECT_EQ(vm.state(), VmState::Running);
}

TEST(ApiServer, GarbageAndOversizedHeadersDoNotStopItAnsweringTheNextClient) {
    FakeVm vm;
    std::string path = temp_socket("garbage");
    auto server = ApiServer::start(path, vm);
    ASSERT_TRUE(server) << server.error().message;
    std::vector<std::string> hostile = {
        std::string("\x00\x01\x02\xff\r\n\r\n", 8),
        "GET\r\n\r\n",
        "GET /v1/vm HTTP/9.9\r\n\r\n",
        "PUT /v1/vm/pause HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "PUT /v1/vm/pause HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "GET /v1/vm HTTP/1.1\r\nHost: x\r\nX-Long: " + std::string(ApiServer::kMemoryPerConnection * 2, 'a') + "\r\n\r\n",
        "GET /" + std::string(ApiServer::kMemoryPerConnection * 2, 'p') + " HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    for (const std::string& request : hostile) {
        std::string reply = raw_exchange(path, request);
        EXPECT_EQ(reply.find("HTTP/1.1 2"), std::string::npos) << request.substr(0, 60) << " -> " << reply.substr(0, 200);
    }
    EXPECT_EQ(vm.pauses, 0);
    auto info = api_call(path, "GET", "/v1/vm");
    ASSERT_TRUE(info) << info.error().message;
    EXPECT_EQ(info->status, 200);
}

TEST(ApiServer, ManyClientsAtOnceEachGetTheirAnswer) {
    FakeVm vm;
    std::string path = temp_socket("many");
    auto server = ApiServer::start(path, vm);
    ASSERT_TRUE(server) << server.error().message;
    std::vector<std::thread> clients;
    std::atomic<int> answered{0};
    std::mutex failures_mutex;
    std::string failures;
    for (int i = 0; i < 8; ++i)
        clients.emplace_back([&] {
            for (int round = 0; round < 20; ++round) {
                auto info = api_call(path, "GET", "/v1/vm");
                if (info && info->status == 200) {
                    ++answered;
                    continue;
                }
                std::lock_guard lock(failures_mutex);
                failures += (info ? fmt::format("HTTP {}: {}", info->status, info->body) : info.error().message) + "\n";
            }
        });
    for (auto& client : clients) client.join();
    EXPECT_EQ(answered, 160) << failures;
}

}  // namespace
}  // namespace strata::api
