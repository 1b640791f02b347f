// Runs the real `strata` binary as a user would: fork/exec with stdin from /dev/null, stdout and
// stderr captured, and a deadline after which the child is killed and the run reported as timed out.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <string>
#include <vector>

namespace strata::e2e {

struct ProcessResult {
    bool started = false;    // fork and exec worked
    bool timed_out = false;  // killed at the deadline
    int exit_status = -1;    // WEXITSTATUS, when the child exited
    int signal = 0;          // the terminating signal, when it was killed
    std::string out;
    std::string err;
};

// The child's exec failure is reported through this exit status (and a line on its stderr).
constexpr int kExecFailed = 127;

// A signal the runner sends the child `after` its start (none when `number` is 0). The child then
// starts with that signal blocked, as strata blocks it first thing in main(): a signal sent while
// the new process is still being exec'd and linked waits for strata instead of killing it.
// With `once_output_has`, the signal waits (after `after` too) until the child's stdout contains
// that text: a test kills the VMM right after the guest has said it finished something.
struct SignalPlan {
    int number = 0;
    std::chrono::milliseconds after{0};
    std::string once_output_has;
};

inline ProcessResult run_process(const std::vector<std::string>& argv,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(60), SignalPlan plan = {}) {
    ProcessResult result;
    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0) return result;
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
        close(out_pipe[0]);
        close(out_pipe[1]);
        return result;
    }
    std::vector<char*> args;
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);

    // Blocked across fork() so that the child has it blocked from its first instruction on.
    sigset_t held, saved;
    sigemptyset(&held);
    if (plan.number != 0) sigaddset(&held, plan.number);
    pthread_sigmask(SIG_BLOCK, &held, &saved);
    pid_t pid = fork();
    if (pid != 0) pthread_sigmask(SIG_SETMASK, &saved, nullptr);
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0) dup2(null, STDIN_FILENO);
        dup2(out_pipe[1], STDOUT_FILENO);
        dup2(err_pipe[1], STDERR_FILENO);
        execv(args[0], args.data());
        const char message[] = "run_process: exec failed\n";
        [[maybe_unused]] auto ignored = write(STDERR_FILENO, message, sizeof message - 1);
        _exit(kExecFailed);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    if (pid < 0) {
        close(out_pipe[0]);
        close(err_pipe[0]);
        return result;
    }
    result.started = true;

    auto started = std::chrono::steady_clock::now();
    auto deadline = started + timeout;
    bool signal_sent = plan.number == 0;
    std::array<pollfd, 2> fds{{{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}}};
    std::array<std::string*, 2> sinks{&result.out, &result.err};
    int open_pipes = 2;
    while (open_pipes > 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            result.timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        if (!signal_sent) {
            auto until_signal = std::chrono::duration_cast<std::chrono::milliseconds>(
                started + plan.after - std::chrono::steady_clock::now());
            bool output_seen = plan.once_output_has.empty() || result.out.find(plan.once_output_has) != std::string::npos;
            if (until_signal.count() <= 0 && output_seen) {
                kill(pid, plan.number);
                signal_sent = true;
            } else if (until_signal.count() > 0) {
                left = std::min(left, until_signal);
            }
        }
        int ready = poll(fds.data(), fds.size(), static_cast<int>(left.count()));
        if (ready < 0 && errno != EINTR) break;
        for (size_t i = 0; i < fds.size(); ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char buffer[4096];
            ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
            if (n > 0) {
                sinks[i]->append(buffer, static_cast<size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                close(fds[i].fd);
                fds[i].fd = -1;
                --open_pipes;
            }
        }
    }
    for (auto& fd : fds)
        if (fd.fd >= 0) close(fd.fd);

    // The pipes can close before the child exits (or a grandchild can hold them): bound the wait too.
    int status = 0;
    for (;;) {
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid) break;
        if (done < 0 && errno != EINTR) return result;
        if (std::chrono::steady_clock::now() >= deadline && !result.timed_out) {
            result.timed_out = true;
            kill(pid, SIGKILL);
        }
        usleep(1000);
    }
    if (WIFEXITED(status)) result.exit_status = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
    return result;
}

// True when this host can run KVM guests (the guest tests skip otherwise).
inline bool kvm_usable() {
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) return false;
    close(fd);
    return true;
}

inline std::string guest_path(const std::string& name) { return std::string(STRATA_GUEST_DIR) + "/" + name + ".elf"; }

// How a failed run explains itself in a test failure.
inline std::string describe(const ProcessResult& r) {
    return "exit status " + std::to_string(r.exit_status) + (r.timed_out ? " (timed out)" : "") +
           (r.signal ? " (signal " + std::to_string(r.signal) + ")" : "") + "\n--- stdout ---\n" + r.out +
           "\n--- stderr ---\n" + r.err;
}

}  // namespace strata::e2e
