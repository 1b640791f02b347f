#include "machine/machine.hpp"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>

#include "devices/legacy/hpet.hpp"
#include "host/escape_filter.hpp"
#include "host/image_file.hpp"
#include "host/terminal.hpp"
#include "loader/acpi_tables.hpp"
#include "loader/linux_loader.hpp"
#include "loader/mptable.hpp"
#include "loader/multiboot_loader.hpp"
#include "machine/engine_choice.hpp"
#include "machine/messages.hpp"

namespace strata {

namespace {

StopReason host_error(std::string message) { return {StopKind::HostError, 0, std::move(message)}; }

StopReason signal_stop(int signal) {
    return {StopKind::Signal, static_cast<uint32_t>(signal),
            fmt::format("stopped by signal {} ({})", signal, strsignal(signal))};
}

}  // namespace

std::expected<std::unique_ptr<Machine>, StopReason> Machine::create(const MachineConfig& config) {
    // First, before the engine and the devices start threads of their own.
    auto signals = SignalFd::create();
    if (!signals) return std::unexpected(host_error(signals.error().message));
    auto memory = GuestMemory::create(config.memory);
    if (!memory) return std::unexpected(host_error(context(memory.error(), "--memory").error().message));
    auto stopped = EventFd::create();
    if (!stopped) return std::unexpected(host_error(stopped.error().message));
    auto console_room = EventFd::create();
    if (!console_room) return std::unexpected(host_error(console_room.error().message));
    std::unique_ptr<Machine> machine(new Machine(config, std::move(*memory), std::move(*stopped),
                                                 std::move(*console_room), std::move(*signals)));

    // The guest goes into RAM before any engine exists, so that a bad image is reported alone.
    auto entry = machine->load_guest();
    if (!entry) return std::unexpected(machine->creation_failure(entry.error()));
    if (machine->stop_pending()) return std::unexpected(*machine->stop_);

    auto engine = create_engine(config.accel, machine->memory_, config.cpus, machine->timers_, warn, note);
    if (!engine) return std::unexpected(machine->creation_failure(engine.error()));
    machine->engine_ = std::move(*engine);

    auto board = Board::build(*machine->engine_, *machine, machine->timers_, machine->memory_, config);
    if (!board) return std::unexpected(machine->creation_failure(context(board.error(), "board").error()));
    machine->board_ = std::move(*board);
    machine->board_->on_console_room([m = machine.get()] { m->console_room_.notify(); });

    if (auto r = machine->engine_->set_boot_state(*entry); !r)
        return std::unexpected(machine->creation_failure(context(r.error(), "boot vCPU").error()));
    if (!config.api_socket.empty()) {
        auto server = api::ApiServer::start(config.api_socket, *machine);
        if (!server) return std::unexpected(machine->creation_failure(server.error()));
        machine->api_server_ = std::move(*server);
    }
    if (machine->stop_pending()) return std::unexpected(*machine->stop_);
    return machine;
}

void Machine::take_signal() {
    if (int signal = signals_.take()) request_stop(signal_stop(signal));
}

bool Machine::stop_pending() {
    take_signal();
    std::lock_guard lock(stop_mutex_);
    return stop_.has_value();
}

StopReason Machine::creation_failure(const Error& error) {
    if (stop_pending()) {
        std::lock_guard lock(stop_mutex_);
        if (stop_->kind == StopKind::Signal) return *stop_;
    }
    return host_error(error.message);
}

void print_stop_reason(const StopReason& reason) {
    switch (reason.kind) {
        case StopKind::HostError: fmt::print(stderr, "strata: error: {}\n", reason.detail); break;
        case StopKind::TripleFault:
        case StopKind::EmulationFailure: fmt::print(stderr, "strata: error: the guest crashed: {}\n", reason.detail); break;
        case StopKind::Signal:
        case StopKind::Killed: fmt::print(stderr, "strata: {}\n", reason.detail); break;
        default: break;
    }
}

Machine::~Machine() {
    if (engine_) {
        engine_->stop();
        engine_->join();
    }
}

Result<CpuState> Machine::load_guest() {
    // Neither image can be larger than guest RAM, nor both together; Ctrl-C ends a long read.
    auto interrupted = [this] { return stop_pending(); };
    auto kernel = read_image_file(config_.kernel_path, "kernel", config_.memory, interrupted);
    if (!kernel) return std::unexpected(kernel.error());
    std::vector<uint8_t> initrd;
    if (!config_.initrd_path.empty()) {
        auto bytes = read_image_file(config_.initrd_path, "initrd", config_.memory - kernel->size(), interrupted);
        if (!bytes) return std::unexpected(bytes.error());
        initrd = std::move(*bytes);
    }

    // Firmware tables first: the loaders place nothing in the BIOS area or the EBDA.
    if (auto r = write_mptable(memory_, config_.cpus); !r) return context(r.error(), "MP table");
    // The board places its HPET under both engines; the table tells guests where it is.
    AcpiHpet hpet{.event_timer_block_id = Hpet::kEventTimerBlockId,
                  .minimum_periodic_ticks = Hpet::kMinPeriodicIntervalNs / Hpet::kTickNs};
    if (auto r = write_acpi_tables(memory_, AcpiConfig{.cpus = config_.cpus, .ram_end = memory_.end(), .hpet = hpet}); !r)
        return context(r.error(), "ACPI tables");

    Result<CpuState> entry;
    if (is_multiboot(*kernel)) {
        std::vector<MultibootModule> modules;
        if (!initrd.empty()) modules.push_back(MultibootModule{.data = std::move(initrd), .cmdline = config_.initrd_path});
        // The command line starts with the kernel's file name, as GRUB and QEMU pass it:
        // kvm-unit-tests take its first word as argv[0].
        std::string cmdline = config_.kernel_path;
        if (!config_.cmdline.empty()) cmdline += " " + config_.cmdline;
        entry = load_multiboot(memory_, *kernel, cmdline, modules);
    } else {
        entry = load_linux(memory_, *kernel, initrd, config_.cmdline, kAcpiRsdpAddress, config_.kernel_unpack);
    }
    if (!entry) return context(entry.error(), fmt::format("kernel '{}'", config_.kernel_path));
    return entry;
}

void Machine::request_stop(StopReason reason) {
    {
        std::lock_guard lock(stop_mutex_);
        if (stop_) return;
        stop_ = std::move(reason);
    }
    if (engine_) engine_->stop();
    attention_.notify();
}

void Machine::request_sleep() {
    {
        std::lock_guard lock(stop_mutex_);
        if (stop_ || sleep_requested_) return;
        sleep_requested_ = true;
        wake_requested_ = false;
    }
    if (engine_) engine_->stop();
    attention_.notify();
}

void Machine::request_wake() {
    {
        std::lock_guard lock(stop_mutex_);
        if (!sleep_requested_) return;
        wake_requested_ = true;
    }
    attention_.notify();
}

Result<void> Machine::resume(const Platform& platform) {
    auto vector = memory_.read_obj<uint32_t>(kAcpiFacsWakingVector);
    if (!vector) return context(vector.error(), "FACS waking vector");
    if (*vector == 0 || *vector >= 0x10'0000)
        return fail("the guest woke from S3 with FACS waking vector {:#x}, not a real-mode address", *vector);
    if (auto r = engine_->prepare_resume(real_mode_at(*vector)); !r) return r;
    return engine_->start(platform);
}

int Machine::run() {
    // A console reader that went away must not kill the VMM.
    ::signal(SIGPIPE, SIG_IGN);

    std::unique_ptr<RawTerminal> terminal;
    if (auto raw = RawTerminal::enter(config_.console_in)) terminal = std::move(*raw);
    else warn(raw.error().message);

    platform_.emplace(Platform{memory_, board_->pio(), board_->mmio(), *this});
    // A restored machine's clock waits at the snapshot's time until its vCPUs start, which for
    // `strata restore --paused` is at the API's resume.
    bool start_paused = false;
    {
        std::lock_guard lock(stop_mutex_);
        start_paused = paused_;
    }
    if (!start_paused) {
        clock_.resume();
        if (auto r = engine_->start(*platform_); !r) request_stop(host_error(r.error().message));
        note_running();
    }
    // The console is served until the VM stops; an S3 sleep stops the vCPUs in between and a wake
    // event resumes them; the control API's tasks run between two looks at the console.
    while (true) {
        serve_console();
        attention_.drain();
        run_main_loop_tasks();
        std::unique_lock lock(stop_mutex_);
        if (stop_) break;
        if (sleep_requested_ && !asleep_) {
            lock.unlock();
            engine_->join();
            lock.lock();
            asleep_ = true;
            attention_.notify();  // look again: the wake may already have come
            continue;
        }
        if (asleep_ && wake_requested_ && !paused_) {
            sleep_requested_ = wake_requested_ = false;
            asleep_ = false;
            lock.unlock();
            if (auto r = resume(*platform_); !r) request_stop(host_error(context(r.error(), "S3 resume").error().message));
        }
    }
    close_main_loop_tasks();
    engine_->stop();
    engine_->join();
    terminal.reset();

    std::lock_guard lock(stop_mutex_);
    print_stop_reason(*stop_);
    return stop_->exit_status();
}

void Machine::serve_console() {
    bool terminal_input = isatty(config_.console_in) != 0;
    bool input_open = true;
    EscapeFilter escape;
    std::vector<uint8_t> to_guest;
    uint8_t buffer[4096];

    while (true) {
        // A pipe waits while COM1 has not taken what was read (back-pressure); a terminal is
        // read on, so that the escape keys always work.
        bool read_input = input_open && (pending_input_.empty() || (terminal_input && pending_input_.size() < kMaxPendingInput));
        pollfd fds[4] = {{attention_.fd(), POLLIN, 0},
                         {signals_.fd(), POLLIN, 0},
                         {console_room_.fd(), POLLIN, 0},
                         {read_input ? config_.console_in : -1, POLLIN, 0}};
        if (::poll(fds, 4, -1) < 0) {
            if (errno == EINTR) continue;
            request_stop(host_error(fmt::format("poll: {}", std::strerror(errno))));
            return;
        }
        if (fds[0].revents) return;
        if (fds[1].revents) {
            take_signal();
            continue;
        }
        if (fds[2].revents) {
            console_room_.drain();
            forward_console_input();
        }
        if (!fds[3].revents) continue;
        ssize_t n = ::read(config_.console_in, buffer, sizeof(buffer));
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) {
            // End of input (a pipe or /dev/null): the guest keeps running without it.
            input_open = false;
            continue;
        }
        std::span<const uint8_t> input(buffer, static_cast<size_t>(n));
        if (!terminal_input) {
            pending_input_.assign(input.begin(), input.end());
            forward_console_input();
            continue;
        }
        to_guest.clear();
        auto command = escape.feed(input, to_guest);
        // Typed ahead of a guest that reads nothing: beyond the bound, keys are dropped, as a
        // terminal's full input queue drops them.
        size_t room = kMaxPendingInput - pending_input_.size();
        pending_input_.insert(pending_input_.end(), to_guest.begin(),
                              to_guest.begin() + static_cast<std::ptrdiff_t>(std::min(room, to_guest.size())));
        forward_console_input();
        if (command == EscapeFilter::Command::Help)
            (void)!::write(config_.console_out, EscapeFilter::kHelp, std::strlen(EscapeFilter::kHelp));
        if (command == EscapeFilter::Command::Quit) request_stop({StopKind::UserQuit, 0, "quit from the console"});
    }
}

void Machine::forward_console_input() {
    if (pending_input_.empty()) return;
    size_t taken = board_->console_input(pending_input_);
    pending_input_.erase(pending_input_.begin(), pending_input_.begin() + static_cast<std::ptrdiff_t>(taken));
}

}  // namespace strata
