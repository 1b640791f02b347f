// The control API's verbs on the command line: `strata info|pause|resume|stop|kill|metrics|snapshot` on a VM
// named by --api-socket PATH or --name NAME, and `strata ls`. Each sends one request
// (api/api_client.hpp) and prints the answer: info and metrics on stdout (JSON, or metrics in the
// Prometheus text format), snapshot one line of what it wrote, the others nothing when they succeed.
// Exit status: 0 done; 1 the VM refused or failed the request (its message on stderr); 2 a usage
// error, or no VM answered.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace strata::app {

class ClientCommands {
public:
    // Adds the verbs to `app`.
    explicit ClientCommands(CLI::App& app);
    // After parsing: the status of the verb that was given, or nullopt when none of them was.
    [[nodiscard]] std::optional<int> run() const;

private:
    struct Verb {
        CLI::App* command = nullptr;
        std::string socket;
        std::string name;
        std::string timeout;  // stop
        std::string format;   // metrics
        std::string directory;  // snapshot
        std::string mode;       // snapshot
    };
    Verb& add_verb(CLI::App& app, const char* name, const char* help);
    [[nodiscard]] int run_verb(const Verb& verb) const;
    [[nodiscard]] int list() const;

    std::vector<std::unique_ptr<Verb>> verbs_;
    CLI::App* ls_ = nullptr;
};

}  // namespace strata::app
