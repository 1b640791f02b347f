// strata: the command line. `strata run` builds one VM from flags and runs it to its end.
//
// CLI11 gives the structure (subcommands, help, unknown flags); every value is read as text and
// checked here, so that each message names the flag, the value and what is allowed, and every
// error line starts with "strata: error: ".
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "api/runtime_dir.hpp"
#include "app/client_commands.hpp"
#include "base/units.hpp"
#include "host/signal_fd.hpp"
#include "machine/device_options.hpp"
#include "machine/machine.hpp"

namespace {

constexpr int kUsageError = 2;
constexpr unsigned kMaxCpus = 254;

constexpr const char* kDescription =
    "Strata: a virtual machine monitor for x86-64 Linux hosts.\n"
    "Runs unmodified guests (Linux bzImage or ELF vmlinux, multiboot v1 kernels such as\n"
    "kvm-unit-tests' .flat files) with COM1 (or the virtio-console) as the console on stdin/stdout.";

constexpr const char* kRunFooter =
    "Console: when stdin is a terminal it is put in raw mode; Ctrl-A x quits, Ctrl-A h helps.\n"
    "Exit status: 0 guest power-off, reset or quit; 2 a VMM error; 4 a guest triple fault;\n"
    "6 a KVM emulation failure (the guest's registers are printed on stderr); 8 killed through the\n"
    "control API (kill, or stop's deadline); 128+N signal N;\n"
    "(V << 1) | 1, an odd status, after the guest writes V to the debug-exit port 0xf4\n"
    "(--test-devices).";

int usage_error(std::string_view message) {
    fmt::print(stderr, "strata: error: {} (see 'strata run --help')\n", message);
    return kUsageError;
}

// Every value flag is given at most once: a second value would silently win or lose.
struct ValueFlag {
    const char* name;
    std::vector<std::string> values;
};

std::string once_message(const ValueFlag& flag) {
    std::string given;
    for (const auto& value : flag.values) given += fmt::format("{}'{}'", given.empty() ? "" : ", ", value);
    return fmt::format("{} is given {} times ({}); give it once", flag.name, flag.values.size(), given);
}

// --accel's value, or the usage error.
std::expected<strata::Accel, int> accel_from(const std::string& engine) {
    if (engine == "kvm") return strata::Accel::Kvm;
    if (engine == "soft") return strata::Accel::Soft;
    if (engine == "auto") return strata::Accel::Auto;
    return std::unexpected(usage_error(fmt::format("--accel: '{}' is not an engine (expected auto, kvm or soft)", engine)));
}

// Where --api-socket or --name puts the control API's socket (and the VM's name), or the usage
// error; both empty without either flag.
struct ApiPlace {
    std::string socket;
    std::string name;
};
std::expected<ApiPlace, int> api_place(const ValueFlag& api_socket, const ValueFlag& name) {
    if (!api_socket.values.empty() && !name.values.empty())
        return std::unexpected(usage_error("--api-socket and --name both say where the API socket goes; give one"));
    ApiPlace place;
    if (!name.values.empty()) {
        auto path = strata::api::socket_path_for_name(name.values.front(), true);
        if (!path) return std::unexpected(usage_error(fmt::format("--name: {}", path.error().message)));
        place.name = name.values.front();
        place.socket = *path;
    }
    if (!api_socket.values.empty()) place.socket = api_socket.values.front();
    return place;
}

int run_machine(std::expected<std::unique_ptr<strata::Machine>, strata::StopReason> machine) {
    if (!machine) {
        strata::print_stop_reason(machine.error());
        return machine.error().exit_status();
    }
    return (*machine)->run();
}

// CLI11's own messages, in Strata's words where they read oddly ("1 required TEXT missing").
std::string parse_error_message(const CLI::ParseError& error) {
    std::string what = error.what();
    if (auto colon = what.find(": 1 required"); colon != std::string::npos)
        return fmt::format("{} needs a value", what.substr(0, colon));
    if (what.find("A subcommand is required") != std::string::npos) return "say what to do: strata run --kernel FILE";
    return what;
}

int run_command_line(int argc, char** argv) {
    CLI::App app(kDescription, "strata");
    app.require_subcommand(1);
    app.set_version_flag("--version", "strata 0.1.0");

    strata::MachineConfig config;
    ValueFlag kernel{"--kernel", {}}, initrd{"--initrd", {}}, cmdline{"--cmdline", {}};
    ValueFlag memory{"--memory", {}}, cpus{"--cpus", {}}, accel{"--accel", {}}, unpack{"--kernel-unpack", {}};
    ValueFlag console{"--console", {}};
    ValueFlag disks{"--disk", {}};  // repeatable
    ValueFlag nets{"--net", {}};    // repeatable
    ValueFlag vsock{"--vsock", {}};
    ValueFlag api_socket{"--api-socket", {}}, name{"--name", {}};

    CLI::App* run = app.add_subcommand("run", "Boot a guest kernel and run it until it stops");
    run->footer(kRunFooter);
    auto add = [&](ValueFlag& flag, const char* help) {
        return run->add_option(flag.name, flag.values, help)->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    };
    add(kernel, "Guest kernel: a Linux bzImage or ELF vmlinux, or a multiboot v1 ELF (e.g. x86/NAME.flat)")
        ->required();
    add(initrd, "Initial ramdisk for Linux; for a multiboot kernel, its module (kvm-unit-tests' environment)");
    add(cmdline, "Kernel command line (multiboot: the test's arguments)");
    add(memory, "Guest RAM: a size with K, M, G or T (a bare number is MiB), 1M to 1T; default 512M");
    add(cpus, "Number of vCPUs, 1 to 254; default 1. APs start through INIT-SIPI-SIPI");
    add(accel, "CPU engine: kvm (hardware-assisted), soft (Strata's own CPU), or auto (default: kvm where the "
               "host runs guest kernel mode natively)");
    add(unpack, "Where a bzImage's compressed kernel is unpacked: host (default; LZ4 payloads, then booted as a "
                "vmlinux without KASLR) or guest (its own decompressor, the unmodified boot path)");
    add(console, "Where the terminal goes: serial (default; COM1, the guest's ttyS0) or virtio (the virtio-console, "
                 "hvc0: pass console=hvc0 in --cmdline; COM1's output still shows)");
    add(disks, "A virtio-blk disk over a raw image file (or host block device): PATH[,readonly=on][,serial=TEXT]; "
               "repeat for more (the guest's /dev/vda, vdb, ... in order). A comma in PATH is written ,,");
    add(nets, "A virtio-net interface; repeat for more (the guest's eth0, eth1, ... in order). "
              "user[,hostfwd=RULE]...[,mtu=N][,mac=MAC]: user networking (10.0.2.0/24: DHCP gives the guest "
              "10.0.2.15, 10.0.2.2 is the host and its 127.0.0.1, 10.0.2.3 forwards DNS to the host's resolver); RULE "
              "is [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT, HOSTADDR 127.0.0.1 when empty (e.g. "
              "hostfwd=tcp::2222-:22); mtu= the link's MTU, 576 to 65520 (default 65520, told to the guest). "
              "tap,ifname=NAME[,mac=MAC]: the host's TAP interface NAME (root or "
              "CAP_NET_ADMIN, or one made with ip tuntap add NAME mode tap user USER). MAC default: 52:54:00:12:34:56, "
              "plus the interface's index");
    add(vsock, "A virtio-vsock device: cid=N (the guest's CID, 3 to 4294967294),socket=PATH (host programs connect "
               "there and send 'CONNECT <port>\\n'; the guest's connections to host port P go to PATH_P)");
    add(api_socket, "Serve the control API (JSON over HTTP; docs/openapi.yaml) on this Unix socket, mode 0600; the "
                    "path must not exist. strata info|pause|resume|stop|kill --api-socket PATH use it");
    add(name, "Name the VM: its API socket goes to $XDG_RUNTIME_DIR/strata/NAME.sock (or /tmp/strata-UID/), "
              "where strata ls finds it and the verbs take --name NAME");
    run->add_flag("--test-devices", config.test_devices,
                  "Add the test devices kvm-unit-tests uses: isa-debug-exit at port 0xf4, pc-testdev, pci-testdev");

    // strata restore DIR: a snapshot's VM in this process, its console on the terminal.
    std::string restore_dir;
    ValueFlag restore_accel{"--accel", {}}, restore_api_socket{"--api-socket", {}}, restore_name{"--name", {}};
    CLI::App* restore = app.add_subcommand("restore", "Start the VM a snapshot directory holds (strata snapshot) in this "
                                                      "process, with its console on the terminal");
    restore->add_option("DIR", restore_dir, "The snapshot directory")->required();
    auto add_restore = [&](ValueFlag& flag, const char* help) {
        return restore->add_option(flag.name, flag.values, help)->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    };
    add_restore(restore_accel, "CPU engine to continue under: kvm, soft or auto (default); either engine restores a "
                               "snapshot taken under the other");
    add_restore(restore_api_socket, "Serve the control API on this Unix socket (as strata run --api-socket)");
    add_restore(restore_name, "Name the restored VM (as strata run --name)");
    bool restore_paused = false;
    restore->add_flag("--paused", restore_paused, "Keep the VM paused until strata resume (needs --api-socket or --name)");

    strata::app::ClientCommands client(app);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        // `strata VERB --help` documents the verb; `strata --help` documents everything.
        for (CLI::App* verb : app.get_subcommands({}))
            if (verb->parsed()) {
                std::fputs(verb->help().c_str(), stdout);
                return 0;
            }
        std::fputs(app.help("", CLI::AppFormatMode::All).c_str(), stdout);
        return 0;
    } catch (const CLI::CallForAllHelp&) {
        std::fputs(app.help("", CLI::AppFormatMode::All).c_str(), stdout);
        return 0;
    } catch (const CLI::CallForVersion& e) {
        std::puts(e.what());
        return 0;
    } catch (const CLI::ParseError& e) {
        return usage_error(parse_error_message(e));
    }

    if (auto status = client.run()) return *status;

    if (restore->parsed()) {
        for (const ValueFlag* flag : {&restore_accel, &restore_api_socket, &restore_name})
            if (flag->values.size() > 1) return usage_error(once_message(*flag));
        strata::RestoreOptions options;
        options.dir = restore_dir;
        auto chosen = accel_from(restore_accel.values.empty() ? "auto" : restore_accel.values.front());
        if (!chosen) return chosen.error();
        options.accel = *chosen;
        auto place = api_place(restore_api_socket, restore_name);
        if (!place) return place.error();
        options.api_socket = place->socket;
        options.name = place->name;
        options.paused = restore_paused;
        if (options.paused && options.api_socket.empty())
            return usage_error("--paused: the VM would never run; give --api-socket or --name to resume it");
        options.console_in = STDIN_FILENO;
        options.console_out = STDOUT_FILENO;
        return run_machine(strata::Machine::restore(options));
    }

    for (const ValueFlag* flag :
         {&kernel, &initrd, &cmdline, &memory, &cpus, &accel, &unpack, &console, &vsock, &api_socket, &name})
        if (flag->values.size() > 1) return usage_error(once_message(*flag));
    auto value_of = [](const ValueFlag& flag, std::string fallback) {
        return flag.values.empty() ? fallback : flag.values.front();
    };

    config.kernel_path = value_of(kernel, "");
    config.initrd_path = value_of(initrd, "");
    config.cmdline = value_of(cmdline, "");

    std::string memory_text = value_of(memory, "512M");
    auto size = strata::parse_size(memory_text);
    if (!size) return usage_error(fmt::format("--memory: {}", size.error().message));
    if (!strata::GuestMemory::valid_size(*size))
        return usage_error(fmt::format("--memory: '{}' is {}; allowed are 1 MiB to 1 TiB, in whole 4 KiB pages",
                                       memory_text, strata::format_size(*size)));
    config.memory = *size;

    auto count = strata::parse_count(value_of(cpus, "1"), 1, kMaxCpus);
    if (!count) return usage_error(fmt::format("--cpus: {}", count.error().message));
    config.cpus = static_cast<unsigned>(*count);

    auto chosen = accel_from(value_of(accel, "auto"));
    if (!chosen) return chosen.error();
    config.accel = *chosen;

    std::string where = value_of(unpack, "host");
    if (where == "host") config.kernel_unpack = strata::KernelUnpack::Host;
    else if (where == "guest") config.kernel_unpack = strata::KernelUnpack::Guest;
    else return usage_error(fmt::format("--kernel-unpack: '{}' is not a place (expected host or guest)", where));

    std::string terminal = value_of(console, "serial");
    if (terminal == "serial") config.console = strata::ConsoleDevice::Serial;
    else if (terminal == "virtio") config.console = strata::ConsoleDevice::Virtio;
    else return usage_error(fmt::format("--console: '{}' is not a console device (expected serial or virtio)", terminal));

    for (const std::string& text : disks.values) {
        auto disk = strata::parse_disk_option(text);
        if (!disk) return usage_error(fmt::format("--disk: {}", disk.error().message));
        config.disks.push_back(std::move(*disk));
    }

    for (const std::string& text : nets.values) {
        auto net = strata::parse_net_option(text);
        if (!net) return usage_error(fmt::format("--net: {}", net.error().message));
        config.nets.push_back(std::move(*net));
    }

    if (!vsock.values.empty()) {
        auto parsed = strata::parse_vsock_option(vsock.values.front());
        if (!parsed) return usage_error(fmt::format("--vsock: {}", parsed.error().message));
        config.vsock = std::move(*parsed);
    }

    auto place = api_place(api_socket, name);
    if (!place) return place.error();
    config.api_socket = place->socket;
    config.name = place->name;

    config.console_in = STDIN_FILENO;
    config.console_out = STDOUT_FILENO;

    return run_machine(strata::Machine::create(config));
}

}  // namespace

int main(int argc, char** argv) {
    // Nothing a user passes may end in an uncaught exception; an exception that still escapes
    // (out of memory, a bug of ours) ends with a VMM error instead of abort().
    try {
        if (auto r = strata::block_stop_signals(); !r) {
            fmt::print(stderr, "strata: error: {}\n", r.error().message);
            return kUsageError;
        }
        return run_command_line(argc, argv);
    } catch (const std::exception& e) {
        fmt::print(stderr, "strata: error: internal error: {}\n", e.what());
        return kUsageError;
    }
}
