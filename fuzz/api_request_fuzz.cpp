// Fuzzes handle_request(), the control API's router: what any local client can send once
// libmicrohttpd has framed it (method, path, Content-Type, body), against a fake VM.
//
// Input: the first byte picks the method (GET, PUT, POST, DELETE, HEAD, get, or the bytes up to
// the first newline as a method of their own when it is 0xff), then newline-separated fields:
// the path, the Content-Type, and the rest as the body; a body over kMaxBodyBytes is flagged as
// the transport flags it.
// Invariants beyond "no crash, no UB, no leak":
//   - the status is 200, or 4xx for the client's mistakes (the fake VM never fails);
//   - the body is valid JSON; a refusal is {"error": "<non-empty>"}, a 405 names its Allow;
//   - a refused request leaves the VM's state as it was; a 200 is one of the routes and methods;
//   - a snapshot reaches the VM only with an absolute path without "." or ".." components.
#include <array>
#include <string>
#include <string_view>

#include "api/api_router.hpp"
#include "api/vm_control_fake.hpp"
#include "fuzz_support.hpp"

using namespace strata::api;

namespace {

std::string_view take_line(std::string_view& rest) {
    size_t end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    return line;
}

bool is_route(std::string_view method, std::string_view path) {
    if (path == "/v1/vm" || path == "/v1/metrics" || path == "/metrics") return method == "GET";
    return method == "PUT" && (path == "/v1/vm/pause" || path == "/v1/vm/resume" || path == "/v1/vm/stop" ||
                               path == "/v1/vm/kill" || path == "/v1/vm/snapshot");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    static constexpr std::array<std::string_view, 6> kMethods{"GET", "PUT", "POST", "DELETE", "HEAD", "get"};
    std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
    std::string_view method = data[0] == 0xff ? take_line(rest) : kMethods[data[0] % kMethods.size()];
    std::string_view path = take_line(rest);
    std::string_view content_type = take_line(rest);
    bool too_large = rest.size() > kMaxBodyBytes;
    std::string_view body = too_large ? rest.substr(0, kMaxBodyBytes) : rest;

    testing::FakeVm vm;
    // Half the inputs meet a paused VM, so that resume and the conflicts are reached too.
    if (size % 2 == 0) (void)vm.pause();
    VmState before = vm.state();
    HttpResponse response = handle_request(
        vm, {.method = method, .path = path, .content_type = content_type, .body = body, .body_too_large = too_large});

    FUZZ_CHECK(response.status == 200 || (response.status >= 400 && response.status < 500),
               "status {} for {} {}", response.status, method, path);
    if (response.status == 200 && path == "/metrics") return 0;  // Prometheus text, not JSON
    auto json = nlohmann::json::parse(response.body, nullptr, false);
    FUZZ_CHECK(!json.is_discarded(), "the answer is not JSON: {}", response.body);
    if (response.status == 200) {
        FUZZ_CHECK(is_route(method, path), "200 for {} {}", method, path);
        if (vm.snapshots > 0) {
            const std::string& dir = vm.last_snapshot;
            FUZZ_CHECK(!dir.empty() && dir.front() == '/' && dir.size() <= kMaxSnapshotPathBytes &&
                           dir.find("/../") == std::string::npos && dir.find("/./") == std::string::npos &&
                           dir.find("//") == std::string::npos && !dir.ends_with("/..") && !dir.ends_with("/.") &&
                           !dir.ends_with("/"),
                       "a snapshot path the router should have refused: {}", dir);
        }
        return 0;
    }
    FUZZ_CHECK(json.is_object() && json.contains("error") && json["error"].is_string() &&
                   !json["error"].get<std::string>().empty(),
               "a refusal without an error message: {}", response.body);
    FUZZ_CHECK(response.status != 405 || !response.allow.empty(), "405 without Allow for {} {}", method, path);
    FUZZ_CHECK(vm.state() == before, "refused {} {} (status {}) changed the VM's state", method, path, response.status);
    return 0;
}
