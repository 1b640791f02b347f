// The control API's requests as a client may send them, well-formed or not, straight to the
// router: every malformed one gets its 4xx and a JSON error, and the VM's state is unchanged.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "api/api_router.hpp"
#include "api/vm_control_fake.hpp"

namespace strata::api {
namespace {

using nlohmann::json;
using testing::FakeVm;

HttpResponse send(FakeVm& vm, std::string_view method, std::string_view path, std::string_view body = {},
                  std::string_view content_type = {}) {
    return handle_request(vm, {.method = method, .path = path, .content_type = content_type, .body = body,
                               .body_too_large = false});
}

// The error's message, checking that the body is {"error": "..."}.
std::string error_of(const HttpResponse& response) {
    json body = json::parse(response.body, nullptr, false);
    if (!body.is_object() || !body.contains("error") || !body["error"].is_string()) return "<not an error: " + response.body + ">";
    return body["error"].get<std::string>();
}

TEST(ApiRouter, InfoIsTheVmsJsonEvenWithPathsThatAreNotUtf8) {
    FakeVm vm;
    HttpResponse response = send(vm, "GET", "/v1/vm");
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(response.content_type, "application/json");
    json body = json::parse(response.body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << response.body;
    EXPECT_EQ(body["state"], "running");
    EXPECT_EQ(body["config"]["kernel"], "/boot/k\xef\xbf\xbd");  // U+FFFD for the stray byte
}

TEST(ApiRouter, PauseAndResumeChangeTheStateAndSayTheNewOne) {
    FakeVm vm;
    HttpResponse paused = send(vm, "PUT", "/v1/vm/pause");
    EXPECT_EQ(paused.status, 200);
    EXPECT_EQ(json::parse(paused.body)["state"], "paused");
    EXPECT_EQ(vm.state(), VmState::Paused);
    HttpResponse resumed = send(vm, "PUT", "/v1/vm/resume", "{}", "application/json");
    EXPECT_EQ(resumed.status, 200);
    EXPECT_EQ(json::parse(resumed.body)["state"], "running");
}

TEST(ApiRouter, ARequestTheStateDoesNotAllowIsAConflictAndChangesNothing) {
    FakeVm vm;
    HttpResponse response = send(vm, "PUT", "/v1/vm/resume");
    EXPECT_EQ(response.status, 409);
    EXPECT_EQ(error_of(response), "the VM is not paused");
    EXPECT_EQ(vm.state(), VmState::Running);
    ASSERT_EQ(send(vm, "PUT", "/v1/vm/pause").status, 200);
    EXPECT_EQ(send(vm, "PUT", "/v1/vm/pause").status, 409);
    EXPECT_EQ(vm.pauses, 1);
}

TEST(ApiRouter, UnknownPathsAreNotFoundAndNamed) {
    FakeVm vm;
    for (std::string_view path : {"/", "/v1", "/v1/vm/", "/v1/VM", "/v1/vm/pause/now", "/../etc/passwd", ""}) {
        HttpResponse response = send(vm, "GET", path);
        EXPECT_EQ(response.status, 404) << path;
        EXPECT_NE(error_of(response).find("no such path"), std::string::npos) << path;
    }
}

TEST(ApiRouter, AWrongMethodIs405WithTheMethodsThePathTakes) {
    FakeVm vm;
    HttpResponse response = send(vm, "GET", "/v1/vm/pause");
    EXPECT_EQ(response.status, 405);
    EXPECT_EQ(response.allow, "PUT");
    EXPECT_EQ(error_of(response), "\"/v1/vm/pause\" does not take \"GET\" (it takes PUT)");
    EXPECT_EQ(send(vm, "DELETE", "/v1/vm").status, 405);
    EXPECT_EQ(send(vm, "put", "/v1/vm/kill").status, 405);  // methods are case-sensitive (RFC 9110 §9.1)
    EXPECT_EQ(vm.pauses, 0);
    EXPECT_EQ(vm.kills, 0);
}

TEST(ApiRouter, MalformedBodiesAreRefusedNamingWhatIsWrong) {
    FakeVm vm;
    struct Case {
        std::string_view body;
        std::string_view content_type;
        int status;
        std::string_view message;
    };
    const Case cases[] = {
        {"{", "application/json", 400, "the body is not valid JSON"},
        {"{\"timeout_ms\": 5", "", 400, "the body is not valid JSON"},
        {"[1, 2]", "application/json", 400, "the body must be a JSON object"},
        {"\"stop\"", "application/json", 400, "the body must be a JSON object"},
        {"{\"timeout\": 5}", "application/json", 400, "unknown member \"timeout\" in the body"},
        {"{\"timeout_ms\": -1}", "application/json", 400, "timeout_ms must be an integer from 0 to 600000, not -1"},
        {"{\"timeout_ms\": 600001}", "application/json", 400, "timeout_ms must be an integer from 0 to 600000, not 600001"},
        {"{\"timeout_ms\": 1.5}", "application/json", 400, "timeout_ms must be an integer from 0 to 600000, not 1.5"},
        {"{\"timeout_ms\": \"5\"}", "application/json", 400, "timeout_ms must be an integer from 0 to 600000, not \"5\""},
        {"{\"timeout_ms\": 1e30}", "application/json", 400, "timeout_ms must be an integer from 0 to 600000, not 1e+30"},
        {"{\"timeout_ms\": 18446744073709551616}", "application/json", 400,
         "timeout_ms must be an integer from 0 to 600000, not 1.8446744073709552e+19"},
        {"timeout_ms=5", "application/x-www-form-urlencoded", 415,
         "the body must be application/json, not 'application/x-www-form-urlencoded'"},
    };
    for (const Case& c : cases) {
        HttpResponse response = send(vm, "PUT", "/v1/vm/stop", c.body, c.content_type);
        EXPECT_EQ(response.status, c.status) << c.body;
        EXPECT_EQ(error_of(response), c.message) << c.body;
    }
    EXPECT_EQ(vm.state(), VmState::Running);
    EXPECT_EQ(send(vm, "PUT", "/v1/vm/pause", "{\"now\": true}", "application/json").status, 400);
    EXPECT_EQ(vm.pauses, 0);
}

TEST(ApiRouter, StopTakesItsTimeoutOrTheDefault) {
    FakeVm vm;
    HttpResponse response = send(vm, "PUT", "/v1/vm/stop", "{\"timeout_ms\": 2500}", "application/json; charset=utf-8");
    EXPECT_EQ(response.status, 200) << response.body;
    EXPECT_EQ(vm.last_deadline, std::chrono::milliseconds(2500));
    FakeVm other;
    EXPECT_EQ(send(other, "PUT", "/v1/vm/stop").status, 200);
    EXPECT_EQ(other.last_deadline, kDefaultStopTimeout);
}

TEST(ApiRouter, SnapshotTakesAnAbsolutePathAndRefusesAnyOther) {
    FakeVm vm;
    HttpResponse response = send(vm, "PUT", "/v1/vm/snapshot", "{\"path\": \"/tmp/snaps/one\"}", "application/json");
    EXPECT_EQ(response.status, 200) << response.body;
    EXPECT_EQ(vm.last_snapshot, "/tmp/snaps/one");
    EXPECT_EQ(vm.last_snapshot_mode, SnapshotMode::Auto);
    struct Case {
        std::string_view body;
        std::string_view message;
    };
    const Case cases[] = {
        {"{}", "the body must give \"path\": the directory to write the snapshot into"},
        {"{\"path\": 5}", "the body must give \"path\": the directory to write the snapshot into"},
        {"{\"path\": \"snap\"}", "path \"snap\" must be an absolute path"},
        {"{\"path\": \"/tmp/../etc/x\"}", "path \"/tmp/../etc/x\" has an empty, '.' or '..' component"},
        {"{\"path\": \"/tmp//x\"}", "path \"/tmp//x\" has an empty, '.' or '..' component"},
        {"{\"path\": \"/tmp/x/\"}", "path \"/tmp/x/\" has an empty, '.' or '..' component"},
        {"{\"path\": \"/tmp/\\u0001\"}", "path \"/tmp/\\u0001\" has a control character"},
        {"{\"path\": \"/\"}", "path \"/\" names the root directory"},
        {"{\"path\": \"/x\", \"force\": true}", "unknown member \"force\" in the body"},
        {"{\"path\": \"/x\", \"mode\": \"live\"}",
         "mode \"live\" is not a snapshot mode (expected \"auto\", \"background\" or \"paused\")"},
        {"{\"path\": \"/x\", \"mode\": 1}", "mode 1 is not a snapshot mode (expected \"auto\", \"background\" or \"paused\")"},
    };
    for (const Case& c : cases) {
        HttpResponse refused = send(vm, "PUT", "/v1/vm/snapshot", c.body, "application/json");
        EXPECT_EQ(refused.status, 400) << c.body;
        EXPECT_EQ(error_of(refused), c.message) << c.body;
    }
    std::string long_path = "{\"path\": \"/" + std::string(kMaxSnapshotPathBytes, 'a') + "\"}";
    EXPECT_EQ(error_of(send(vm, "PUT", "/v1/vm/snapshot", long_path, "application/json")),
              fmt::format("path \"/{}\" is longer than 1024 bytes", std::string(kMaxSnapshotPathBytes, 'a')));
    EXPECT_EQ(vm.snapshots, 1);
    for (auto [text, mode] : {std::pair{"background", SnapshotMode::Background}, std::pair{"paused", SnapshotMode::Paused},
                              std::pair{"auto", SnapshotMode::Auto}}) {
        std::string body = fmt::format("{{\"path\": \"/tmp/snaps/{}\", \"mode\": \"{}\"}}", text, text);
        EXPECT_EQ(send(vm, "PUT", "/v1/vm/snapshot", body, "application/json").status, 200) << body;
        EXPECT_EQ(vm.last_snapshot_mode, mode) << body;
    }
    EXPECT_EQ(vm.snapshots, 4);
    (void)vm.kill();
    EXPECT_EQ(send(vm, "PUT", "/v1/vm/snapshot", "{\"path\": \"/tmp/two\"}", "application/json").status, 409)
        << "snapshot while stopping";
}

TEST(ApiRouter, ABodyOverTheLimitIs413AndTheVmIsNotTouched) {
    FakeVm vm;
    HttpResponse response = handle_request(vm, {.method = "PUT", .path = "/v1/vm/kill", .content_type = "application/json",
                                                .body = "{}", .body_too_large = true});
    EXPECT_EQ(response.status, 413);
    EXPECT_EQ(vm.kills, 0);
    // An unknown path stays a 404 whatever the body.
    EXPECT_EQ(handle_request(vm, {.method = "PUT", .path = "/x", .content_type = {}, .body = {}, .body_too_large = true}).status,
              404);
}

TEST(ApiRouter, MetricsComeAsJsonAndAsPrometheusText) {
    FakeVm vm;
    HttpResponse json_metrics = send(vm, "GET", "/v1/metrics");
    EXPECT_EQ(json_metrics.status, 200);
    EXPECT_TRUE(json::parse(json_metrics.body)["vcpus"].is_array());
    HttpResponse text = send(vm, "GET", "/metrics");
    EXPECT_EQ(text.status, 200);
    EXPECT_EQ(text.content_type, "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_EQ(text.body, "strata_uptime_seconds{vm=\"fake\"} 1\n");
    EXPECT_EQ(send(vm, "PUT", "/metrics").status, 405);
}

}  // namespace
}  // namespace strata::api
