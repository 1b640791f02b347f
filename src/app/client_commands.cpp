#include "app/client_commands.hpp"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "api/api_client.hpp"
#include "api/api_router.hpp"
#include "api/runtime_dir.hpp"
#include "base/units.hpp"

namespace strata::app {

namespace {

using nlohmann::json;

constexpr int kRefused = 1;
constexpr int kUsageError = 2;

int error(std::string_view message, int status) {
    fmt::print(stderr, "strata: error: {}\n", message);
    return status;
}

// The VM's own message from an error reply, or the reply as it came.
std::string reply_message(const api::ApiReply& reply) {
    json body = json::parse(reply.body, nullptr, false);
    if (body.is_object() && body.contains("error") && body["error"].is_string()) return body["error"].get<std::string>();
    return fmt::format("HTTP {}: {}", reply.status, reply.body);
}

std::string format_uptime(int64_t ms) {
    int64_t seconds = ms / 1000;
    if (seconds < 60) return fmt::format("{}s", seconds);
    if (seconds < 3600) return fmt::format("{}m{:02}s", seconds / 60, seconds % 60);
    return fmt::format("{}h{:02}m", seconds / 3600, seconds / 60 % 60);
}

}  // namespace

ClientCommands::ClientCommands(CLI::App& app) {
    add_verb(app, "info", "Print a running VM's state, engine, configuration and uptime as JSON");
    add_verb(app, "pause", "Pause a running VM: its vCPUs and device timers stop, its guest time stands still");
    add_verb(app, "resume", "Resume a paused VM");
    Verb& stop = add_verb(app, "stop", "Stop a VM gracefully: press its ACPI power button, kill it if it has not "
                                       "powered off by the timeout");
    stop.command->add_option("--timeout", stop.timeout, "Milliseconds to wait for the power-off (0 to 600000; default 10000)");
    add_verb(app, "kill", "Stop a VM at once");
    Verb& metrics = add_verb(app, "metrics", "Print a VM's counters: exits, halted time, instructions, device accesses, "
                                             "interrupts");
    metrics.command->add_option("--format", metrics.format, "json (default) or prometheus (the text exposition format)");
    Verb& snapshot = add_verb(app, "snapshot", "Save the whole VM into a new directory (a running VM pauses for it and "
                                               "runs on); strata restore DIR starts it again");
    snapshot.command->add_option("DIR", snapshot.directory, "The directory to create (it must not exist)")->required();
    snapshot.command->add_option("--mode", snapshot.mode,
                                 "background: the VM runs on while its RAM is written, paused only while its vCPUs' "
                                 "and devices' state is taken (needs userfaultfd); paused: paused until its RAM is written too; "
                                 "auto (default): background where the host allows it");
    ls_ = app.add_subcommand("ls", "List the VMs started with --name (their sockets in $XDG_RUNTIME_DIR/strata, or "
                                   "/tmp/strata-UID without XDG_RUNTIME_DIR)");
}

ClientCommands::Verb& ClientCommands::add_verb(CLI::App& app, const char* name, const char* help) {
    auto verb = std::make_unique<Verb>();
    verb->command = app.add_subcommand(name, help);
    verb->command->add_option("--api-socket", verb->socket, "The VM's API socket (strata run --api-socket PATH)");
    verb->command->add_option("--name", verb->name, "The VM's name (strata run --name NAME)");
    verbs_.push_back(std::move(verb));
    return *verbs_.back();
}

std::optional<int> ClientCommands::run() const {
    if (ls_->parsed()) return list();
    for (const auto& verb : verbs_)
        if (verb->command->parsed()) return run_verb(*verb);
    return std::nullopt;
}

int ClientCommands::run_verb(const Verb& verb) const {
    std::string command = verb.command->get_name();
    if (verb.socket.empty() == verb.name.empty())
        return error(fmt::format("{}: give the VM as --api-socket PATH or as --name NAME (one of them)", command), kUsageError);
    std::string socket = verb.socket;
    if (!verb.name.empty()) {
        auto path = api::socket_path_for_name(verb.name, false);
        if (!path) return error(fmt::format("--name: {}", path.error().message), kUsageError);
        socket = *path;
    }
    bool reads = command == "info" || command == "metrics";
    std::string method = reads ? "GET" : "PUT";
    std::string path = command == "info" ? "/v1/vm" : command == "metrics" ? "/v1/metrics" : "/v1/vm/" + command;
    bool prometheus = verb.format == "prometheus";
    if (!verb.format.empty() && verb.format != "json" && !prometheus)
        return error(fmt::format("--format: '{}' is not a format (expected json or prometheus)", verb.format), kUsageError);
    if (prometheus) path = "/metrics";
    std::string body;
    if (!verb.timeout.empty()) {
        auto ms = parse_count(verb.timeout, 0, static_cast<uint64_t>(api::kMaxStopTimeout.count()));
        if (!ms) return error(fmt::format("--timeout: {}", ms.error().message), kUsageError);
        body = json{{"timeout_ms", *ms}}.dump();
    }
    if (command == "snapshot") {
        // The VM writes the directory: it gets the path as this shell means it.
        std::error_code ignored;
        std::filesystem::path absolute = std::filesystem::absolute(verb.directory, ignored).lexically_normal();
        std::string text = absolute.string();
        while (text.size() > 1 && text.back() == '/') text.pop_back();
        if (!verb.mode.empty() && !api::snapshot_mode_named(verb.mode))
            return error(fmt::format("--mode: '{}' is not a snapshot mode (expected auto, background or paused)", verb.mode),
                         kUsageError);
        json request{{"path", text}};
        if (!verb.mode.empty()) request["mode"] = verb.mode;
        body = request.dump();
    }
    auto reply = api::api_call(socket, method, path, body, std::chrono::minutes(10));
    if (!reply) return error(reply.error().message, kUsageError);
    if (reply->status / 100 != 2) return error(fmt::format("{}: {}", command, reply_message(*reply)), kRefused);
    if (command == "snapshot") {
        json done = json::parse(reply->body, nullptr, false);
        if (!done.is_object()) return 0;
        bool background = done.value("mode", std::string()) == "background";
        fmt::print("{}: {} of RAM ({} written), {} of state, in {:.1f} ms; the VM was paused for {:.1f} ms{}\n",
                   done.value("path", std::string("?")), format_size(done.value("memory_bytes", uint64_t{0})),
                   format_size(done.value("memory_data_bytes", uint64_t{0})), format_size(done.value("state_bytes", uint64_t{0})),
                   done.value("took_ms", 0.0), done.value("paused_ms", 0.0),
                   background ? " (its RAM was written while it ran)" : "");
        if (done.contains("paused_because") && done["paused_because"].is_string())
            fmt::print(stderr, "strata: note: RAM was written with the VM paused: {}\n",
                       done["paused_because"].get<std::string>());
        if (done.contains("notes") && done["notes"].is_array())
            for (const json& note : done["notes"])
                if (note.is_string()) fmt::print(stderr, "strata: note: {}\n", note.get<std::string>());
    } else if (prometheus) {
        fmt::print("{}", reply->body);
    } else if (reads) {
        json info = json::parse(reply->body, nullptr, false);
        fmt::print("{}\n", info.is_discarded() ? reply->body : info.dump(2, ' ', false, json::error_handler_t::replace));
    }
    return 0;
}

int ClientCommands::list() const {
    auto sockets = api::named_sockets();
    if (!sockets) return error(sockets.error().message, kUsageError);
    fmt::print("{:<20} {:>8} {:<9} {:<6} {:>4} {:>9} {:>8}\n", "NAME", "PID", "STATE", "ENGINE", "CPUS", "MEMORY", "UPTIME");
    for (const api::NamedSocket& socket : *sockets) {
        auto reply = api::api_call(socket.path, "GET", "/v1/vm", {}, std::chrono::seconds(5));
        json info = reply && reply->status == 200 ? json::parse(reply->body, nullptr, false) : json();
        if (!info.is_object()) {
            fmt::print("{:<20} {:>8} {:<9} (no answer at {})\n", socket.name, "-", "gone", socket.path);
            continue;
        }
        try {
            auto text = [&](const char* key) { return info.value(key, std::string("?")); };
            uint64_t memory = info["config"].is_object() ? info["config"].value("memory_bytes", uint64_t{0}) : 0;
            fmt::print("{:<20} {:>8} {:<9} {:<6} {:>4} {:>9} {:>8}\n", socket.name, info.value("pid", 0), text("state"),
                       text("engine"), info.value("vcpus", 0), format_size(memory),
                       format_uptime(info.value("uptime_ms", int64_t{0})));
        } catch (const json::exception&) {
            fmt::print("{:<20} {:>8} {:<9} (an answer that is not a VM's info, at {})\n", socket.name, "-", "?", socket.path);
        }
    }
    return 0;
}

}  // namespace strata::app
