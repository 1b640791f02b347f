#include "api/api_server.hpp"

#include <microhttpd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace strata::api {

// libmicrohttpd's callbacks, with access to the server.
struct ServerCallbacks {
    // What one request has sent so far.
    struct Exchange {
        std::string body;
        bool body_too_large = false;
        bool refused_peer = false;
    };

    static bool peer_allowed(MHD_Connection* connection) {
        const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!info) return false;
        ucred peer{};
        socklen_t length = sizeof(peer);
        if (::getsockopt(info->connect_fd, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0) return false;
        return peer.uid == ::geteuid() || peer.uid == 0;
    }

    static MHD_Result answer(MHD_Connection* connection, const HttpResponse& reply) {
        MHD_Response* response =
            MHD_create_response_from_buffer(reply.body.size(), const_cast<char*>(reply.body.data()), MHD_RESPMEM_MUST_COPY);
        if (!response) return MHD_NO;
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, reply.content_type.c_str());
        if (!reply.allow.empty()) MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, reply.allow.c_str());
        MHD_Result queued = MHD_queue_response(connection, static_cast<unsigned>(reply.status), response);
        MHD_destroy_response(response);
        return queued;
    }

    static MHD_Result on_request(void* server_ptr, MHD_Connection* connection, const char* url, const char* method,
                                 const char* /*version*/, const char* upload_data, size_t* upload_data_size,
                                 void** request_state) {
        auto& server = *static_cast<ApiServer*>(server_ptr);
        auto* exchange = static_cast<Exchange*>(*request_state);
        if (!exchange) {
            // The first call has the headers only.
            exchange = new Exchange;
            exchange->refused_peer = !peer_allowed(connection);
            *request_state = exchange;
            return MHD_YES;
        }
        if (*upload_data_size > 0) {
            if (exchange->body.size() + *upload_data_size > kMaxBodyBytes) exchange->body_too_large = true;
            else exchange->body.append(upload_data, *upload_data_size);
            *upload_data_size = 0;
            return MHD_YES;
        }
        if (exchange->refused_peer) return answer(connection, error_response(403, "only the VM's owner may use its API"));
        const char* content_type = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        HttpRequest request{.method = method,
                            .path = url,
                            .content_type = content_type ? content_type : "",
                            .body = exchange->body,
                            .body_too_large = exchange->body_too_large};
        return answer(connection, handle_request(server.vm_, request));
    }

    static void on_completed(void*, MHD_Connection*, void** request_state, MHD_RequestTerminationCode) {
        delete static_cast<Exchange*>(*request_state);
        *request_state = nullptr;
    }
};

Result<std::unique_ptr<ApiServer>> ApiServer::start(const std::string& path, VmControl& vm) {
    auto listener = UnixListener::bind(path, static_cast<int>(kMaxConnections), 0600);
    if (!listener) return context(listener.error(), "--api-socket");
    std::unique_ptr<ApiServer> server(new ApiServer(std::move(*listener), vm));
    server->daemon_ = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC, 0, nullptr,
        nullptr, &ServerCallbacks::on_request, server.get(),                                  //
        MHD_OPTION_LISTEN_SOCKET, server->listener_.fd(),                                     //
        MHD_OPTION_CONNECTION_LIMIT, kMaxConnections,                                         //
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, kMemoryPerConnection,                             //
        MHD_OPTION_CONNECTION_TIMEOUT, kIdleTimeoutSeconds,                                   //
        MHD_OPTION_NOTIFY_COMPLETED, &ServerCallbacks::on_completed, nullptr,                 //
        MHD_OPTION_END);
    if (!server->daemon_) return fail("--api-socket {}: the HTTP server (libmicrohttpd) did not start", path);
    return server;
}

ApiServer::~ApiServer() {
    if (!daemon_) return;
    // The listening socket stays ours (the listener closes it); requests in progress may finish.
    MHD_quiesce_daemon(daemon_);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (std::chrono::steady_clock::now() < deadline) {
        const MHD_DaemonInfo* info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (!info || info->num_connections == 0) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    MHD_stop_daemon(daemon_);
}

}  // namespace strata::api
