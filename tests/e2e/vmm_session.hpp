// A strata process a test talks to while it runs: its console's input on a pipe, its stdout and
// stderr together on another, read as the test waits for what the guest prints (and, for the
// control API's tests, for silence). The process is killed if the test ends first.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <vector>

#include "e2e/process_runner.hpp"

namespace strata::e2e {

class VmmSession {
public:
    explicit VmmSession(std::vector<std::string> argv) {
        std::vector<char*> args;
        for (auto& arg : argv) args.push_back(arg.data());
        args.push_back(nullptr);
        int in[2], out[2];
        if (pipe2(in, O_CLOEXEC) != 0) return;
        if (pipe2(out, O_CLOEXEC) != 0) {
            close(in[0]);
            close(in[1]);
            return;
        }
        pid_ = fork();
        if (pid_ == 0) {
            dup2(in[0], STDIN_FILENO);
            dup2(out[1], STDOUT_FILENO);
            dup2(out[1], STDERR_FILENO);
            execv(args[0], args.data());
            _exit(kExecFailed);
        }
        close(in[0]);
        close(out[1]);
        input_ = in[1];
        output_fd_ = out[0];
    }
    ~VmmSession() {
        if (pid_ > 0 && !exited_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        for (int fd : {input_, output_fd_})
            if (fd >= 0) close(fd);
    }
    VmmSession(const VmmSession&) = delete;
    VmmSession& operator=(const VmmSession&) = delete;

    [[nodiscard]] bool started() const { return pid_ > 0 && input_ >= 0; }
    [[nodiscard]] pid_t pid() const { return pid_; }
    void type(const std::string& line) {
        ASSERT_EQ(write(input_, line.data(), line.size()), static_cast<ssize_t>(line.size()));
    }
    // Reads the output until `text` has appeared, the output's end, or `limit`.
    bool wait_for(const std::string& text, std::chrono::milliseconds limit = std::chrono::seconds(300)) {
        auto deadline = std::chrono::steady_clock::now() + limit;
        while (output_.find(text) == std::string::npos) {
            if (output_fd_ < 0 || !read_some(deadline)) return false;
        }
        return true;
    }
    // Reads whatever comes for `period`.
    void read_for(std::chrono::milliseconds period) {
        auto deadline = std::chrono::steady_clock::now() + period;
        while (output_fd_ >= 0 && read_some(deadline)) {
        }
    }
    // The exit status once the output has ended, or -1.
    int wait_exit(std::chrono::seconds limit = std::chrono::seconds(120)) {
        wait_for("\x01never\x02", limit);
        int status = 0;
        if (output_fd_ >= 0 || waitpid(pid_, &status, 0) != pid_) return -1;
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    [[nodiscard]] const std::string& output() const { return output_; }

private:
    // Waits until output comes (appended; true), the output ends or `deadline` passes (false).
    bool read_some(std::chrono::steady_clock::time_point deadline) {
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return false;
            pollfd fd{output_fd_, POLLIN, 0};
            if (poll(&fd, 1, static_cast<int>(left.count())) <= 0) continue;
            char buffer[4096];
            ssize_t n = read(output_fd_, buffer, sizeof buffer);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                close(output_fd_);
                output_fd_ = -1;
                return false;
            }
            output_.append(buffer, static_cast<size_t>(n));
            return true;
        }
    }

    pid_t pid_ = -1;
    bool exited_ = false;
    int input_ = -1, output_fd_ = -1;
    std::string output_;
};

}  // namespace strata::e2e
