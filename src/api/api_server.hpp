// The control API's transport: HTTP/1.1 on a Unix socket that only its owner may open, served by
// GNU libmicrohttpd, each request handed to handle_request() (api_router.hpp).
//
// Why libmicrohttpd: Debian 12's cpp-httplib (0.11) cannot listen on a Unix socket, and Boost.Beast
// would bring Boost and Asio for five routes; libmicrohttpd is a maintained C library made for
// embedding a server, takes a listening socket of any family that it did not create, and bounds
// what a client can make it hold (memory per connection, number of connections, idle time).
//
// State:    the listening socket (its path removed when the server goes), the daemon and its
//           threads (one per connection, so that a slow request does not hold up the others).
// Limits:   kMaxConnections at once (one over it is closed at once), kMemoryPerConnection for the
//           request line and headers (a longer one gets 431 or 414 from libmicrohttpd), bodies
//           kept up to kMaxBodyBytes (413 beyond), kIdleTimeout for a connection that sends
//           nothing. The socket file is mode 0600 before it listens, and a peer whose uid
//           (SO_PEERCRED) is neither ours nor root's gets 403.
#pragma once

#include <memory>
#include <string>

#include "api/api_router.hpp"
#include "base/error.hpp"
#include "host/unix_socket.hpp"

struct MHD_Daemon;

namespace strata::api {

class ApiServer {
public:
    static constexpr unsigned kMaxConnections = 64;
    static constexpr size_t kMemoryPerConnection = 32 * 1024;
    static constexpr unsigned kIdleTimeoutSeconds = 10;

    // Serves `vm` at `path`, which must not exist; `vm` must outlive the server.
    [[nodiscard]] static Result<std::unique_ptr<ApiServer>> start(const std::string& path, VmControl& vm);
    // Stops accepting, lets the requests in progress answer (up to a second), then closes every
    // connection and removes the socket file.
    ~ApiServer();
    ApiServer(const ApiServer&) = delete;
    ApiServer& operator=(const ApiServer&) = delete;

    [[nodiscard]] const std::string& path() const { return listener_.path(); }

private:
    ApiServer(UnixListener listener, VmControl& vm) : listener_(std::move(listener)), vm_(vm) {}

    UnixListener listener_;
    VmControl& vm_;
    MHD_Daemon* daemon_ = nullptr;

    friend struct ServerCallbacks;
};

}  // namespace strata::api
