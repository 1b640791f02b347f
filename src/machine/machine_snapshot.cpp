// Snapshot and restore of the whole machine (docs/snapshot-format.md): the API's snapshot runs on
// the thread of run() like pause; restore builds a machine around a snapshot directory in a new
// process, checking everything before any vCPU runs.
#include <sys/stat.h>
#include <unistd.h>

#include "cpu/cpu_state_codec.hpp"
#include "machine/engine_choice.hpp"
#include "machine/machine.hpp"
#include "machine/messages.hpp"
#include "machine/snapshot_config.hpp"
#include "snapshot/background_memory.hpp"
#include "snapshot/snapshot_dir.hpp"
#include "snapshot/state_file.hpp"

namespace strata {

namespace {

using nlohmann::json;

constexpr std::string_view kIrqchipSection = "irqchip";
// XCR0 bits the backend-neutral vCPU state carries: x87 and SSE.
constexpr uint64_t kCarriedXcr0 = 0x3;

std::string vcpu_section(unsigned index) { return fmt::format("vcpu/{}", index); }

api::ApiError bad_request(std::string message) { return {400, std::move(message)}; }

// Why a snapshot cannot go to `path`, checked before the VM is paused for it.
std::optional<std::string> path_problem(const std::string& path) {
    struct stat st{};
    if (lstat(path.c_str(), &st) == 0) return fmt::format("{} exists already: a snapshot goes into a new directory", path);
    size_t slash = path.find_last_of('/');
    std::string parent = slash == 0 || slash == std::string::npos ? std::string("/") : path.substr(0, slash);
    if (stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return fmt::format("{} is not a directory", parent);
    if (access(parent.c_str(), W_OK | X_OK) != 0) return fmt::format("{} is not writable", parent);
    return std::nullopt;
}

}  // namespace

struct Machine::SnapshotJob {
    std::optional<snapshot::SnapshotWriter> files;
    snapshot::SnapshotContent content;
    std::unique_ptr<snapshot::BackgroundMemoryWriter> background;  // RAM still to write, the VM running
    std::optional<snapshot::MemoryImage> image;                     // RAM written
    std::string paused_because;  // Auto mode, a running VM: why RAM was written with the VM paused
    std::chrono::microseconds paused{0};
};

api::ApiResult<json> Machine::snapshot(const std::string& path, api::SnapshotMode mode) {
    {
        std::lock_guard lock(snapshot_mutex_);
        if (snapshot_busy_) return std::unexpected(api::ApiError{409, "a snapshot is being written already"});
        snapshot_busy_ = true;
    }
    struct NotBusy {
        Machine& machine;
        ~NotBusy() {
            std::lock_guard lock(machine.snapshot_mutex_);
            machine.snapshot_busy_ = false;
        }
    } not_busy{*this};

    auto started = std::chrono::steady_clock::now();
    if (auto problem = path_problem(path)) return std::unexpected(bad_request(*problem));
    SnapshotJob job;
    auto files = snapshot::SnapshotWriter::create(path);
    if (!files) return std::unexpected(api::ApiError{500, files.error().message});
    job.files.emplace(std::move(*files));
    // A running VM's RAM is protected before the pause, while it runs: the pause then only takes
    // the state and fixes the instant (snapshot/background_memory.hpp). A paused VM has nothing to
    // gain: it stays stopped anyway.
    if (state() == api::VmState::Running && mode != api::SnapshotMode::Paused) {
        auto background = snapshot::BackgroundMemoryWriter::start(memory_, job.files->memory_fd());
        if (background)
            job.background = std::move(*background);
        else if (mode == api::SnapshotMode::Background)
            return std::unexpected(
                api::ApiError{409, fmt::format("a background snapshot is not possible: {}", background.error().message)});
        else
            job.paused_because = background.error().message;
    }
    if (auto taken = on_main_loop([&] { return snapshot_now(job); }); !taken) return std::unexpected(taken.error());

    uint64_t early_pages = 0;
    bool background = job.background != nullptr;
    if (background) {
        auto image = job.background->run();
        early_pages = job.background->early_pages();
        job.background.reset();
        if (!image) return std::unexpected(api::ApiError{500, image.error().message});
        job.image = std::move(*image);
    }
    auto written = job.files->finish(job.content, *job.image);
    if (!written) return std::unexpected(api::ApiError{500, written.error().message});
    auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
    json result{
        {"path", path},
        {"engine", job.content.engine},
        {"mode", background ? "background" : "paused"},
        {"state_bytes", written->state_bytes},
        {"memory_bytes", written->ram_size},
        {"memory_data_bytes", written->memory_data_bytes},
        {"took_ms", static_cast<double>(took.count()) / 1000.0},
        {"paused_ms", static_cast<double>(job.paused.count()) / 1000.0},
        {"notes", job.content.notes},
    };
    // Pages copied ahead of their turn because the guest or a device wrote them meanwhile.
    if (background) result["early_pages"] = early_pages;
    if (!job.paused_because.empty()) result["paused_because"] = job.paused_because;
    return result;
}

api::ApiResult<> Machine::snapshot_now(SnapshotJob& job) {
    bool was_running = false;
    {
        std::lock_guard lock(stop_mutex_);
        switch (state_locked()) {
            case api::VmState::Running: was_running = true; break;
            case api::VmState::Paused: break;
            case api::VmState::Asleep: return std::unexpected(api::ApiError{409, "the guest is asleep (ACPI S3): wake it first"});
            case api::VmState::Stopping: return std::unexpected(api::ApiError{409, "the VM is stopping"});
        }
    }
    auto stopped = std::chrono::steady_clock::now();
    if (was_running)
        if (auto r = pause_now(); !r) return std::unexpected(r.error());
    board_->quiesce();
    api::ApiResult<> done;
    if (auto content = capture_state(); !content) {
        done = std::unexpected(api::ApiError{409, content.error().message});
    } else {
        job.content = std::move(*content);
        if (job.background) {
            if (auto r = job.background->freeze(); !r) done = std::unexpected(api::ApiError{500, r.error().message});
        } else if (auto image = snapshot::write_memory_file(job.files->memory_fd(), memory_); image) {
            job.image = std::move(*image);
        } else {
            done = std::unexpected(api::ApiError{500, image.error().message});
        }
    }
    board_->unquiesce();
    if (was_running)
        if (auto r = resume_now(); !r) return std::unexpected(r.error());
    job.paused = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - stopped);
    return done;
}

Result<snapshot::SnapshotContent> Machine::capture_state() {
    snapshot::SnapshotContent content;
    content.engine = std::string(engine_->name());
    content.machine_time_ns = clock_.now_ns();
    content.machine = snapshot_config(config_);
    for (unsigned i = 0; i < engine_->vcpu_count(); ++i) {
        auto state = engine_->vcpu_state(i);
        if (!state) return context(state.error(), fmt::format("vCPU {}", i));
        if (state->extended->xcr0 & ~kCarriedXcr0)
            return fail("vCPU {}: the guest enabled processor state beyond x87 and SSE (XCR0 {:#x}: AVX or later), "
                        "which Strata's snapshots do not carry yet",
                        i, state->extended->xcr0);
        StateWriter out;
        encode_cpu_state(out, *state);
        content.sections.push_back({vcpu_section(i), out.take()});
    }
    IrqchipState irqchip;
    if (board_->has_own_irqchip()) {
        irqchip = board_->irqchip_state();
    } else {
        auto state = engine_->irqchip_state(content.machine_time_ns);
        if (!state) return context(state.error(), "interrupt controllers");
        if (!*state) return fail("the {} engine reported no interrupt controllers", engine_->name());
        irqchip = **state;
    }
    StateWriter out;
    irqchip.encode(out);
    content.sections.push_back({std::string(kIrqchipSection), out.take()});
    if (auto r = board_->save_state(content.sections); !r) return std::unexpected(r.error());

    if (!config_.disks.empty())
        content.notes.push_back("the disk images must not change until the snapshot is restored: the guest's "
                                "caches of them are in its RAM");
    if (!config_.nets.empty())
        content.notes.push_back("network: frames in flight are dropped; user networking's connections do not survive "
                                "a restore");
    if (config_.vsock) content.notes.push_back("vsock: open connections are reset on restore");
    if (engine_->name() == "kvm" && !board_->has_own_irqchip())
        content.notes.push_back("kvm: local APIC timers restart their current period on restore");
    return content;
}

std::expected<std::unique_ptr<Machine>, StopReason> Machine::restore(const RestoreOptions& options) {
    auto began = std::chrono::steady_clock::now();
    auto host_error = [](std::string message) { return std::unexpected(StopReason{StopKind::HostError, 0, std::move(message)}); };
    auto signals = SignalFd::create();
    if (!signals) return host_error(signals.error().message);
    auto opened = snapshot::open_snapshot(options.dir);
    if (!opened) return host_error(opened.error().message);
    auto in_snapshot = [&](const Error& error) { return host_error(fmt::format("snapshot {}: {}", options.dir, error.message)); };

    auto config = config_from_snapshot(opened->content.machine);
    if (!config) return in_snapshot(config.error());
    config->accel = options.accel;
    config->api_socket = options.api_socket;
    config->name = options.name;
    config->console_in = options.console_in;
    config->console_out = options.console_out;
    if (config->memory != opened->memory.ram_size)
        return in_snapshot({fmt::format("the machine has {} bytes of RAM, {} holds {}", config->memory,
                                        snapshot::kMemoryFile, opened->memory.ram_size)});

    // RAM: mapped from the file, copy-on-write, and checked through that mapping.
    int map_fd = dup(opened->memory_file.get());
    if (map_fd < 0) return host_error(fail_errno("dup").error().message);
    auto memory = GuestMemory::map_private(map_fd, opened->memory.ram_size);
    if (!memory) return in_snapshot(memory.error());
    if (auto r = snapshot::verify_memory(*memory, opened->memory_file.get(), opened->memory); !r) return in_snapshot(r.error());
    opened->memory_file.reset();

    // Every vCPU's state and the interrupt controllers' decode before anything is built.
    const auto& sections = opened->content.sections;
    std::vector<CpuState> vcpus;
    for (unsigned i = 0; i < config->cpus; ++i) {
        const snapshot::Section* section = snapshot::find_section(sections, vcpu_section(i));
        if (!section) return in_snapshot({fmt::format("{} has no section for vCPU {}", snapshot::kStateFile, i)});
        StateReader in(section->bytes, vcpu_section(i));
        vcpus.push_back(decode_cpu_state(in));
        if (auto r = in.finish(); !r) return in_snapshot(r.error());
        if (vcpus.back().extended->xcr0 & ~kCarriedXcr0)
            return in_snapshot({fmt::format("vCPU {}: XCR0 {:#x} enables state the snapshot does not carry", i,
                                            vcpus.back().extended->xcr0)});
    }
    const snapshot::Section* irqchip_section = snapshot::find_section(sections, kIrqchipSection);
    if (!irqchip_section) return in_snapshot({fmt::format("{} has no \"{}\" section", snapshot::kStateFile, kIrqchipSection)});
    StateReader irqchip_reader(irqchip_section->bytes, std::string(kIrqchipSection));
    IrqchipState irqchip = IrqchipState::decode(irqchip_reader);
    if (auto r = irqchip_reader.finish(); !r) return in_snapshot(r.error());
    std::vector<snapshot::Section> device_sections;
    for (const snapshot::Section& section : sections) {
        if (section.name == kIrqchipSection) continue;
        if (section.name.starts_with("vcpu/")) {
            bool known = false;
            for (unsigned i = 0; i < config->cpus; ++i) known = known || section.name == vcpu_section(i);
            if (!known) return in_snapshot({fmt::format("section '{}' is for a vCPU the machine does not have", section.name)});
            continue;
        }
        device_sections.push_back(section);
    }

    auto attention = EventFd::create();
    if (!attention) return host_error(attention.error().message);
    auto console_room = EventFd::create();
    if (!console_room) return host_error(console_room.error().message);
    std::unique_ptr<Machine> machine(new Machine(*config, std::move(*memory), std::move(*attention),
                                                 std::move(*console_room), std::move(*signals)));
    machine->started_ = began;
    // The machine clock continues from the snapshot's time: every absolute deadline in the
    // devices' states stays valid, and the soft engine's TSC goes on from where it was.
    machine->clock_.pause();
    machine->clock_.set_paused_time(opened->content.machine_time_ns);

    auto engine = create_engine(config->accel, machine->memory_, config->cpus, machine->timers_, warn, note);
    if (!engine) return std::unexpected(machine->creation_failure(engine.error()));
    machine->engine_ = std::move(*engine);
    if (machine->engine_->name() != opened->content.engine)
        note(fmt::format("restoring a snapshot taken under the {} engine under the {} engine", opened->content.engine,
                         machine->engine_->name()));
    auto board = Board::build(*machine->engine_, *machine, machine->timers_, machine->memory_, *config);
    if (!board) return std::unexpected(machine->creation_failure(context(board.error(), "board").error()));
    machine->board_ = std::move(*board);
    machine->board_->on_console_room([m = machine.get()] { m->console_room_.notify(); });

    for (unsigned i = 0; i < config->cpus; ++i)
        if (auto r = machine->engine_->set_vcpu_state(i, vcpus[i]); !r)
            return std::unexpected(machine->creation_failure(context(r.error(), fmt::format("snapshot: vCPU {}", i)).error()));
    Result<void> irqchip_set = machine->board_->has_own_irqchip()
                                   ? machine->board_->set_irqchip_state(irqchip)
                                   : machine->engine_->set_irqchip_state(irqchip, opened->content.machine_time_ns);
    if (!irqchip_set)
        return std::unexpected(machine->creation_failure(context(irqchip_set.error(), "snapshot: interrupt controllers").error()));
    if (auto r = machine->board_->restore_state(device_sections); !r)
        return std::unexpected(machine->creation_failure(context(r.error(), "snapshot").error()));

    if (!config->api_socket.empty()) {
        auto server = api::ApiServer::start(config->api_socket, *machine);
        if (!server) return std::unexpected(machine->creation_failure(server.error()));
        machine->api_server_ = std::move(*server);
    }
    machine->paused_ = options.paused;
    machine->restored_from_ = options.dir;
    machine->restored_engine_ = opened->content.engine;
    if (machine->stop_pending()) return std::unexpected(*machine->stop_);
    return machine;
}

}  // namespace strata
