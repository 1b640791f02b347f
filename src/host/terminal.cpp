#include "host/terminal.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>

namespace strata {

namespace {

// One saved state for the process: there is one console.
struct termios g_saved;
std::atomic<int> g_saved_fd{-1};

void restore_and_reraise(int signal) {
    restore_terminal();
    // Default action (core dump or termination) with the terminal already sane.
    ::signal(signal, SIG_DFL);
    ::raise(signal);
}

void install_fatal_handlers() {
    for (int signal : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGQUIT}) {
        struct sigaction action{};
        action.sa_handler = restore_and_reraise;
        sigemptyset(&action.sa_mask);
        action.sa_flags = static_cast<int>(SA_RESETHAND);  // an unsigned constant in glibc
        sigaction(signal, &action, nullptr);
    }
}

}  // namespace

void restore_terminal() {
    int fd = g_saved_fd.exchange(-1);
    if (fd >= 0) tcsetattr(fd, TCSAFLUSH, &g_saved);
}

Result<std::unique_ptr<RawTerminal>> RawTerminal::enter(int fd) {
    if (!isatty(fd)) return nullptr;
    struct termios current;
    if (tcgetattr(fd, &current) != 0) return fail_errno("reading terminal settings");
    g_saved = current;
    g_saved_fd = fd;
    static bool hooks_installed = false;
    if (!hooks_installed) {
        std::atexit(restore_terminal);
        install_fatal_handlers();
        hooks_installed = true;
    }
    cfmakeraw(&current);
    // Keep output post-processing so the VMM's own messages on stderr still get CR-LF.
    current.c_oflag |= OPOST;
    if (tcsetattr(fd, TCSAFLUSH, &current) != 0) {
        g_saved_fd = -1;
        return fail_errno("putting the terminal in raw mode");
    }
    return std::unique_ptr<RawTerminal>(new RawTerminal(fd));
}

RawTerminal::~RawTerminal() {
    (void)fd_;
    restore_terminal();
}

}  // namespace strata
