#include "api/api_router.hpp"

#include <array>

#include <fmt/format.h>

namespace strata::api {

namespace {

using nlohmann::json;

std::string dump(const json& value) {
    // Paths and command lines are the user's bytes, not always UTF-8: replaced, never thrown on.
    return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

HttpResponse ok(const json& body) { return {.status = 200, .body = dump(body), .allow = {}}; }

HttpResponse from(const ApiResult<>& result, VmState state) {
    if (!result) return error_response(result.error().status, result.error().message);
    return ok({{"state", to_string(state)}});
}

// The body of a request that takes an optional JSON object: its members, or the refusal.
std::expected<json, HttpResponse> object_body(const HttpRequest& request) {
    if (request.body.empty()) return json::object();
    std::string_view type = request.content_type.substr(0, request.content_type.find(';'));
    while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
    if (!type.empty() && type != "application/json")
        return std::unexpected(
            error_response(415, fmt::format("the body must be application/json, not '{}'", type)));
    json body = json::parse(request.body, nullptr, false);
    if (body.is_discarded()) return std::unexpected(error_response(400, "the body is not valid JSON"));
    if (!body.is_object()) return std::unexpected(error_response(400, "the body must be a JSON object"));
    return body;
}

// Refuses any member of `body` not in `known`.
std::expected<void, HttpResponse> only_members(const json& body, std::initializer_list<std::string_view> known) {
    for (const auto& [key, value] : body.items()) {
        bool found = false;
        for (std::string_view name : known) found = found || key == name;
        if (!found) {
            json quoted = key;
            return std::unexpected(error_response(400, fmt::format("unknown member {} in the body", dump(quoted))));
        }
    }
    return {};
}

std::expected<void, HttpResponse> no_members(const HttpRequest& request) {
    auto body = object_body(request);
    if (!body) return std::unexpected(body.error());
    return only_members(*body, {});
}

HttpResponse get_vm(VmControl& vm, const HttpRequest&) { return ok(vm.info()); }

HttpResponse get_metrics(VmControl& vm, const HttpRequest&) { return ok(vm.metrics()); }

HttpResponse get_prometheus(VmControl& vm, const HttpRequest&) {
    return {.status = 200, .content_type = "text/plain; version=0.0.4; charset=utf-8", .body = vm.metrics_prometheus(),
            .allow = {}};
}

HttpResponse pause(VmControl& vm, const HttpRequest& request) {
    if (auto r = no_members(request); !r) return r.error();
    return from(vm.pause(), VmState::Paused);
}

HttpResponse resume(VmControl& vm, const HttpRequest& request) {
    if (auto r = no_members(request); !r) return r.error();
    return from(vm.resume(), VmState::Running);
}

HttpResponse stop(VmControl& vm, const HttpRequest& request) {
    auto body = object_body(request);
    if (!body) return body.error();
    if (auto r = only_members(*body, {"timeout_ms"}); !r) return r.error();
    std::chrono::milliseconds timeout = kDefaultStopTimeout;
    if (body->contains("timeout_ms")) {
        const json& value = (*body)["timeout_ms"];
        if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > kMaxStopTimeout.count())
            return error_response(400, fmt::format("timeout_ms must be an integer from 0 to {}, not {}",
                                                   kMaxStopTimeout.count(), dump(value)));
        timeout = std::chrono::milliseconds(value.get<int64_t>());
    }
    return from(vm.stop(timeout), VmState::Stopping);
}

// Why `path` is not a snapshot directory the API writes, or empty: an absolute path of at most
// kMaxSnapshotPathBytes, without empty, "." or ".." components or control characters, so that
// what the VMM creates is exactly what the text names.
std::string snapshot_path_problem(const std::string& path) {
    if (path.empty() || path.front() != '/') return "must be an absolute path";
    if (path.size() > kMaxSnapshotPathBytes) return fmt::format("is longer than {} bytes", kMaxSnapshotPathBytes);
    if (path == "/") return "names the root directory";
    for (char c : path)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "has a control character";
    size_t start = 1;
    while (start <= path.size()) {
        size_t end = path.find('/', start);
        if (end == std::string::npos) end = path.size();
        std::string_view part(path.data() + start, end - start);
        if (part.empty() || part == "." || part == "..") return "has an empty, '.' or '..' component";
        start = end + 1;
    }
    return {};
}

HttpResponse snapshot(VmControl& vm, const HttpRequest& request) {
    auto body = object_body(request);
    if (!body) return body.error();
    if (auto r = only_members(*body, {"path", "mode"}); !r) return r.error();
    if (!body->contains("path") || !(*body)["path"].is_string())
        return error_response(400, "the body must give \"path\": the directory to write the snapshot into");
    std::string path = (*body)["path"].get<std::string>();
    if (std::string problem = snapshot_path_problem(path); !problem.empty()) {
        json quoted = path;
        return error_response(400, fmt::format("path {} {}", dump(quoted), problem));
    }
    std::optional<SnapshotMode> mode = SnapshotMode::Auto;
    if (body->contains("mode")) {
        const json& given = (*body)["mode"];
        mode = given.is_string() ? snapshot_mode_named(given.get<std::string>()) : std::nullopt;
        if (!mode)
            return error_response(400, fmt::format("mode {} is not a snapshot mode (expected \"auto\", \"background\" "
                                                   "or \"paused\")",
                                                   dump(given)));
    }
    auto result = vm.snapshot(path, *mode);
    if (!result) return error_response(result.error().status, result.error().message);
    return ok(*result);
}

HttpResponse kill(VmControl& vm, const HttpRequest& request) {
    if (auto r = no_members(request); !r) return r.error();
    return from(vm.kill(), VmState::Stopping);
}

struct Route {
    std::string_view path;
    std::string_view method;
    HttpResponse (*handle)(VmControl&, const HttpRequest&);
};

constexpr std::array kRoutes{
    Route{"/v1/vm", "GET", get_vm},
    Route{"/v1/metrics", "GET", get_metrics},
    Route{"/metrics", "GET", get_prometheus},
    Route{"/v1/vm/pause", "PUT", pause},
    Route{"/v1/vm/resume", "PUT", resume},
    Route{"/v1/vm/stop", "PUT", stop},
    Route{"/v1/vm/kill", "PUT", kill},
    Route{"/v1/vm/snapshot", "PUT", snapshot},
};

}  // namespace

std::string_view to_string(VmState state) {
    switch (state) {
        case VmState::Running: return "running";
        case VmState::Paused: return "paused";
        case VmState::Asleep: return "asleep";
        case VmState::Stopping: return "stopping";
    }
    return "unknown";
}

std::optional<SnapshotMode> snapshot_mode_named(std::string_view name) {
    if (name == "auto") return SnapshotMode::Auto;
    if (name == "background") return SnapshotMode::Background;
    if (name == "paused") return SnapshotMode::Paused;
    return std::nullopt;
}

HttpResponse error_response(int status, std::string_view message) {
    return {.status = status, .body = dump(json{{"error", message}}), .allow = {}};
}

HttpResponse handle_request(VmControl& vm, const HttpRequest& request) {
    std::string allow;
    for (const Route& route : kRoutes) {
        if (route.path != request.path) continue;
        if (route.method == request.method) {
            if (request.body_too_large)
                return error_response(413, fmt::format("the body is larger than {} bytes", kMaxBodyBytes));
            return route.handle(vm, request);
        }
        allow += allow.empty() ? "" : ", ";
        allow += route.method;
    }
    json path = std::string(request.path);
    if (allow.empty()) return error_response(404, fmt::format("no such path: {}", dump(path)));
    json method = std::string(request.method);
    HttpResponse response = error_response(405, fmt::format("{} does not take {} (it takes {})", dump(path), dump(method), allow));
    response.allow = allow;
    return response;
}

}  // namespace strata::api
