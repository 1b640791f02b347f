// Servers the end-to-end tests run on the host for a guest to reach, as a user's own programs
// would be: on 127.0.0.1 through user networking (10.0.2.2), and on vsock's Unix sockets.
#pragma once

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "host/unix_socket.hpp"

namespace strata::e2e {

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
inline std::string read_from(int fd, const std::string& until, std::chrono::seconds limit) {
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
inline void serve_http(const Listener& listener, const std::string& body, const std::atomic<bool>& stop) {
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

// serve_http on a thread of its own, stopped and joined when the object goes.
class HttpServerThread {
public:
    HttpServerThread(const Listener& listener, std::string body)
        : thread_([this, &listener, body = std::move(body)] { serve_http(listener, body, stop_); }) {}
    ~HttpServerThread() {
        stop_ = true;
        thread_.join();
    }
    HttpServerThread(const HttpServerThread&) = delete;
    HttpServerThread& operator=(const HttpServerThread&) = delete;

private:
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

using Clock = std::chrono::steady_clock;

// Waits until `fd` has something for `events` or the deadline passes.
inline bool wait_for(int fd, short events, Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    pollfd p{fd, events, 0};
    return left > 0 && ::poll(&p, 1, static_cast<int>(left)) == 1;
}

// Reads one line (without its newline) from `fd`; empty at EOF or the deadline.
inline std::string read_line(int fd, Clock::time_point deadline) {
    std::string line;
    char c = 0;
    while (wait_for(fd, POLLIN, deadline) && ::recv(fd, &c, 1, 0) == 1) {
        if (c == '\n') return line;
        line += c;
    }
    return {};
}

// The host service of a guest-initiated connection: the first connection to `listener`, one line
// read and `reply` sent back.
inline std::string answer_guest(const UnixListener& listener, const std::string& reply, Clock::time_point deadline) {
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

}  // namespace strata::e2e
