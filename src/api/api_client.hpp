// The CLI's side of the control API: one HTTP request over the VM's Unix socket (libcurl, which
// speaks HTTP over AF_UNIX with CURLOPT_UNIX_SOCKET_PATH).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "base/error.hpp"

namespace strata::api {

struct ApiReply {
    long status = 0;
    std::string body;
};

// Fails only when no answer came (no socket, nobody listening, a broken connection, `timeout`);
// a refusal by the VM is a reply with its 4xx status.
[[nodiscard]] Result<ApiReply> api_call(const std::string& socket_path, std::string_view method, std::string_view path,
                                        std::string_view body = {},
                                        std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace strata::api
