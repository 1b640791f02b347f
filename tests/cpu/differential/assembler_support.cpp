// Cases' assembly to machine code: one GNU as run for all cases of a test (binutils is there
// wherever the tests are built, since g++ needs it), then objcopy to a flat binary. The binary
// opens with a table of (offset, length) pairs, one per case, that the assembler itself fills
// from labels around each case, so no ELF symbol table needs reading.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/bytes.hpp"
#include "cpu/differential/harness.hpp"

extern char** environ;

namespace strata::differential {

namespace {

// A scratch directory, removed with everything in it.
class ScratchDirectory {
public:
    static Result<ScratchDirectory> create() {
        std::string pattern = (std::filesystem::temp_directory_path() / "strata-differential-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) return fail_errno("creating a scratch directory {}", pattern);
        return ScratchDirectory(pattern);
    }
    ScratchDirectory(ScratchDirectory&& other) noexcept : path_(std::exchange(other.path_, {})) {}
    ScratchDirectory(const ScratchDirectory&) = delete;
    ScratchDirectory& operator=(const ScratchDirectory&) = delete;
    ScratchDirectory& operator=(ScratchDirectory&&) = delete;
    ~ScratchDirectory() {
        std::error_code ignored;
        if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
    }
    [[nodiscard]] std::string file(std::string_view name) const { return (path_ / name).string(); }

private:
    explicit ScratchDirectory(std::filesystem::path path) : path_(std::move(path)) {}
    std::filesystem::path path_;
};

// Runs `argv` (found on PATH) with stdout and stderr going to `log`; fails with the log's text.
Result<void> run_tool(std::vector<std::string> argv, const std::string& log) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    std::vector<char*> args;
    for (auto& arg : argv) args.push_back(arg.data());
    args.push_back(nullptr);
    pid_t pid = 0;
    int error = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (error != 0) return fail("running {}: {}", argv[0], std::strerror(error));
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return fail_errno("waiting for {}", argv[0]);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    return fail("{} failed (status {:#x}):\n{}", argv[0], status, text.str());
}

// Rewrites as's "FILE:LINE: Error: ..." lines to name the case and its line.
std::string explain_errors(const std::string& log, std::span<const Case> cases, std::span<const size_t> first_lines) {
    std::istringstream in(log);
    std::string line, out;
    while (std::getline(in, line)) {
        size_t colon = line.find(".s:");
        size_t number_end = colon == std::string::npos ? std::string::npos : line.find(':', colon + 3);
        if (number_end == std::string::npos) {
            out += line + '\n';
            continue;
        }
        size_t number = std::strtoul(line.c_str() + colon + 3, nullptr, 10);
        auto after = std::upper_bound(first_lines.begin(), first_lines.end(), number);
        if (after == first_lines.begin()) {
            out += line + '\n';
            continue;
        }
        size_t index = static_cast<size_t>(after - first_lines.begin()) - 1;
        out += fmt::format("case '{}', line {}:{}\n", cases[index].name, number - first_lines[index] + 1,
                           line.substr(number_end + 1));
    }
    return out;
}

}  // namespace

Result<std::vector<std::vector<uint8_t>>> assemble(std::span<const Case> cases) {
    auto dir = ScratchDirectory::create();
    if (!dir) return std::unexpected(dir.error());

    std::string source = fmt::format(
        ".set CODE, {:#x}\n.set DATA, {:#x}\n.set STACK, {:#x}\n.set STACK_TOP, {:#x}\n.set READONLY, {:#x}\n"
        ".set UNMAPPED, {:#x}\n.set SUPERVISOR, {:#x}\n.set NONCANONICAL, {:#x}\n.text\ntable:\n",
        layout::kCode, layout::kData, layout::kStack, layout::kStackTop, layout::kReadOnly, layout::kUnmapped,
        layout::kSupervisor, layout::kNonCanonical);
    for (size_t i = 0; i < cases.size(); ++i)
        source += fmt::format(".quad case{0}_begin - table, case{0}_end - case{0}_begin\n", i);
    size_t line = static_cast<size_t>(std::ranges::count(source, '\n')) + 1;
    std::vector<size_t> first_lines;
    for (size_t i = 0; i < cases.size(); ++i) {
        // Every case starts in Intel syntax, whatever the one before it switched to.
        std::string head = fmt::format(".intel_syntax noprefix\ncase{}_begin:\n", i);
        first_lines.push_back(line + 2);
        std::string body = cases[i].code + fmt::format("\ncase{}_end:\n", i);
        line += 2 + static_cast<size_t>(std::ranges::count(body, '\n'));
        source += head + body;
    }

    std::string asm_path = dir->file("cases.s"), object = dir->file("cases.o"), binary = dir->file("cases.bin");
    std::string log = dir->file("log");
    {
        std::ofstream out(asm_path);
        out << source;
        if (!out) return fail("writing {}", asm_path);
    }
    if (auto r = run_tool({"as", "--64", "-o", object, asm_path}, log); !r)
        return fail("assembling the cases: {}", explain_errors(r.error().message, cases, first_lines));
    if (auto r = run_tool({"objcopy", "-O", "binary", "-j", ".text", object, binary}, log); !r)
        return std::unexpected(r.error());

    std::ifstream in(binary, std::ios::binary);
    std::vector<uint8_t> image((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::vector<uint8_t>> code;
    for (size_t i = 0; i < cases.size(); ++i) {
        if ((i + 1) * 16 > image.size()) return fail("assembled image too short ({} bytes)", image.size());
        uint64_t offset = load_le(std::span(image).subspan(i * 16, 8));
        uint64_t length = load_le(std::span(image).subspan(i * 16 + 8, 8));
        if (offset > image.size() || length > image.size() - offset)
            return fail("case '{}' at {:#x}+{:#x} lies outside the assembled image", cases[i].name, offset, length);
        auto begin = image.begin() + static_cast<std::ptrdiff_t>(offset);
        code.emplace_back(begin, begin + static_cast<std::ptrdiff_t>(length));
    }
    return code;
}

}  // namespace strata::differential
