// The control API's requests, checked and routed to the VM: the part of the API that sees what a
// client sent, apart from the HTTP transport (api_server.hpp) so that tests and the fuzz target
// drive it directly.
//
// Routes (docs/openapi.yaml): GET /v1/vm, GET /v1/metrics (JSON), GET /metrics (Prometheus text),
// PUT /v1/vm/pause, /v1/vm/resume, /v1/vm/stop (an
// optional {"timeout_ms": N}), /v1/vm/kill. Answers are JSON; every refusal is {"error": "..."}
// with a 4xx status: 404 an unknown path, 405 a method the path does not take (with Allow), 413 a
// body over kMaxBodyBytes, 415 a body that is not JSON by its Content-Type, 400 malformed JSON,
// a body that is not an object, an unknown member or a value out of range, 409 a request the
// VM's state does not allow.
#pragma once

#include <string>
#include <string_view>

#include "api/vm_control.hpp"

namespace strata::api {

constexpr size_t kMaxBodyBytes = 16 * 1024;
constexpr std::chrono::milliseconds kDefaultStopTimeout{10'000};
constexpr std::chrono::milliseconds kMaxStopTimeout{600'000};
constexpr size_t kMaxSnapshotPathBytes = 1024;  // PUT /v1/vm/snapshot "path"

struct HttpRequest {
    std::string_view method;        // as sent: GET, PUT, ...
    std::string_view path;          // without the query
    std::string_view content_type;  // empty when the client sent none
    std::string_view body;
    bool body_too_large = false;    // the transport stopped keeping it at kMaxBodyBytes
};

struct HttpResponse {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::string allow;  // 405: the methods the path takes
};

[[nodiscard]] HttpResponse handle_request(VmControl& vm, const HttpRequest& request);

// {"error": message} with `status`.
[[nodiscard]] HttpResponse error_response(int status, std::string_view message);

}  // namespace strata::api
