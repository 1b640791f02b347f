// The console as a user meets it: strata on a real terminal (a pseudo-terminal here), typing to
// the guest, the Ctrl-A x escape, signals, and the terminal's settings restored on every exit.
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <chrono>
#include <string>
#include <thread>
#include <utility>

#include "e2e/process_runner.hpp"

namespace strata::e2e {
namespace {

// strata running `guest` with its stdin/stdout/stderr on a new pseudo-terminal.
class TerminalSession {
public:
    explicit TerminalSession(const std::string& guest) {
        pid_ = forkpty(&master_, nullptr, nullptr, nullptr);
        if (pid_ == 0) {
            execl(STRATA_BINARY, STRATA_BINARY, "run", "--test-devices", "--kernel", guest_path(guest).c_str(),
                  static_cast<char*>(nullptr));
            _exit(kExecFailed);
        }
    }
    ~TerminalSession() {
        if (pid_ > 0 && !reaped_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        if (master_ >= 0) close(master_);
    }

    [[nodiscard]] bool started() const { return pid_ > 0 && master_ >= 0; }

    // Reads until `text` has appeared in the output or the deadline passes.
    bool wait_for(const std::string& text, std::chrono::seconds timeout = std::chrono::seconds(60)) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (output_.find(text) == std::string::npos) {
            if (std::chrono::steady_clock::now() >= deadline) return false;
            pollfd fd{master_, POLLIN, 0};
            if (poll(&fd, 1, 100) <= 0) continue;
            char buffer[512];
            ssize_t n = read(master_, buffer, sizeof(buffer));
            if (n <= 0) return output_.find(text) != std::string::npos;
            output_.append(buffer, static_cast<size_t>(n));
        }
        return true;
    }

    void type(const std::string& keys) { ASSERT_EQ(write(master_, keys.data(), keys.size()), static_cast<ssize_t>(keys.size())); }

    // The exit status once strata ends (drains its output meanwhile), or -1 on timeout.
    int wait_exit(std::chrono::seconds timeout = std::chrono::seconds(30)) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            int status = 0;
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                reaped_ = true;
                // A death by signal is not an exit: report it apart from the 128 + N statuses.
                return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
            }
            wait_for("\x01\x02never", std::chrono::seconds(0));
            usleep(10'000);
        }
        return -1;
    }

    // The terminal's settings as the shell would find them.
    termios settings() const {
        termios t{};
        tcgetattr(master_, &t);
        return t;
    }
    [[nodiscard]] pid_t pid() const { return pid_; }
    [[nodiscard]] const std::string& output() const { return output_; }

private:
    int master_ = -1;
    pid_t pid_ = -1;
    bool reaped_ = false;
    std::string output_;
};

bool canonical_with_echo(const termios& t) { return (t.c_lflag & ICANON) && (t.c_lflag & ECHO) && (t.c_lflag & ISIG); }

TEST(Console, TypedKeysReachTheGuestRawAndTheTerminalIsRestored) {
    if (!kvm_usable()) GTEST_SKIP() << "needs /dev/kvm (read-write)";
    TerminalSession session("echo");
    ASSERT_TRUE(session.started());
    ASSERT_TRUE(session.wait_for("echo: ready")) << session.output();
    EXPECT_FALSE(canonical_with_echo(session.settings())) << "the console should be in raw mode";
    // Ctrl-C is a key for the guest, not a signal for strata.
    session.type("abc\x03xyz");
    ASSERT_TRUE(session.wait_for("abc\x03xyz")) << session.output();
    session.type("q");
    ASSERT_TRUE(session.wait_for("bye")) << session.output();
    EXPECT_EQ(session.wait_exit(), 1);  // the guest's exit(0) through the debug-exit port
    EXPECT_TRUE(canonical_with_echo(session.settings()));
}

TEST(Console, CtrlAXQuitsWithStatusZero) {
    if (!kvm_usable()) GTEST_SKIP() << "needs /dev/kvm (read-write)";
    TerminalSession session("echo");
    ASSERT_TRUE(session.started());
    ASSERT_TRUE(session.wait_for("echo: ready")) << session.output();
    session.type("\x01" "x");
    EXPECT_EQ(session.wait_exit(), 0) << session.output();
    EXPECT_TRUE(canonical_with_echo(session.settings()));
}

TEST(Console, SigtermStopsTheVmAndRestoresTheTerminal) {
    if (!kvm_usable()) GTEST_SKIP() << "needs /dev/kvm (read-write)";
    TerminalSession session("echo");
    ASSERT_TRUE(session.started());
    ASSERT_TRUE(session.wait_for("echo: ready")) << session.output();
    kill(session.pid(), SIGTERM);
    EXPECT_EQ(session.wait_exit(), 128 + SIGTERM) << session.output();
    EXPECT_TRUE(canonical_with_echo(session.settings()));
}

// Runs the echo guest with `input` piped to its stdin, written at once (by a thread: a full pipe
// blocks the writer, which is the back-pressure under test); returns its exit status and stdout.
std::pair<int, std::string> run_echo_with_piped_input(const std::string& input) {
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) return {-1, "pipe failed"};
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        for (int fd : {in[0], in[1], out[0], out[1]}) close(fd);
        execl(STRATA_BINARY, STRATA_BINARY, "run", "--test-devices", "--kernel", guest_path("echo").c_str(),
              static_cast<char*>(nullptr));
        _exit(kExecFailed);
    }
    close(in[0]);
    close(out[1]);
    std::thread writer([&] {
        size_t done = 0;
        while (done < input.size()) {
            ssize_t n = write(in[1], input.data() + done, input.size() - done);
            if (n <= 0) break;
            done += static_cast<size_t>(n);
        }
        close(in[1]);
    });
    std::string output;
    char buffer[4096];
    for (ssize_t n; (n = read(out[0], buffer, sizeof buffer)) > 0;) output.append(buffer, static_cast<size_t>(n));
    close(out[0]);
    writer.join();
    int status = 0;
    waitpid(pid, &status, 0);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

TEST(Console, PipedInputReachesTheGuestUnchangedAndItsEndDoesNotStopIt) {
    if (!kvm_usable()) GTEST_SKIP() << "needs /dev/kvm (read-write)";
    // Written before the guest has set up its UART: every byte must still arrive, unchanged (no
    // escape handling), and the guest keeps running after the pipe ends: it exits by itself
    // when it sees the 'q'.
    auto [status, output] = run_echo_with_piped_input("abc\x01x-not-an-escape-q");
    EXPECT_EQ(status, 1) << "the guest saw the 'q', not a Ctrl-A x quit (status 0)\n" << output;
    EXPECT_EQ(output, "echo: ready\nabc\x01x-not-an-escape-\nbye\n");
}

// More input than COM1's backlog and the console's buffer hold: the pipe waits for the guest
// (back-pressure) and nothing is lost.
TEST(Console, PipedInputLargerThanTheBuffersArrivesWhole) {
    if (!kvm_usable()) GTEST_SKIP() << "needs /dev/kvm (read-write)";
    std::string text;
    for (size_t i = 0; text.size() < 80 * 1024; ++i) text += fmt::format("line {}\n", i);
    auto [status, output] = run_echo_with_piped_input(text + "q");
    EXPECT_EQ(status, 1);
    ASSERT_EQ(output.size(), std::string("echo: ready\n").size() + text.size() + std::string("\nbye\n").size());
    EXPECT_TRUE(output == "echo: ready\n" + text + "\nbye\n") << "the echoed text differs";
}

}  // namespace
}  // namespace strata::e2e
