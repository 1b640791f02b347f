// strata: the command line. `strata run` builds one VM from flags and runs it to its end.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "base/units.hpp"
#include "machine/machine.hpp"

namespace {

constexpr int kUsageError = 2;

constexpr const char* kDescription =
    "Strata: a virtual machine monitor for x86-64 Linux hosts.\n"
    "Runs unmodified guests (Linux bzImage or ELF vmlinux, multiboot v1 kernels such as\n"
    "kvm-unit-tests' .flat files) with COM1 as the console on stdin/stdout.";

constexpr const char* kRunFooter =
    "Console: when stdin is a terminal it is put in raw mode; Ctrl-A x quits, Ctrl-A h helps.\n"
    "Exit status: 0 guest power-off, reset or quit; (V << 1) | 1 after the guest writes V to the\n"
    "debug-exit port 0xf4 (--test-devices); 2 a VMM error; 4 a guest triple fault; 6 a KVM\n"
    "emulation failure (the guest's registers are printed on stderr); 128+N signal N.";

}  // namespace

int main(int argc, char** argv) {
    CLI::App app(kDescription, "strata");
    app.require_subcommand(1);
    app.set_version_flag("--version", "strata 0.1.0");

    strata::MachineConfig config;
    std::string memory = "512M";
    std::string accel = "auto";

    CLI::App* run = app.add_subcommand("run", "Boot a guest kernel and run it until it stops");
    run->footer(kRunFooter);
    run->add_option("--kernel", config.kernel_path,
                    "Guest kernel: a Linux bzImage or ELF vmlinux, or a multiboot v1 ELF (e.g. x86/NAME.flat)")
        ->required();
    run->add_option("--initrd", config.initrd_path,
                    "Initial ramdisk for Linux; for a multiboot kernel, its module (kvm-unit-tests' environment)");
    run->add_option("--cmdline", config.cmdline, "Kernel command line (multiboot: the test's arguments)");
    run->add_option("--memory", memory, "Guest RAM: a size with K, M, G or T (a bare number is MiB)")
        ->capture_default_str();
    run->add_option("--cpus", config.cpus, "Number of vCPUs (1-254); APs start through INIT-SIPI-SIPI")
        ->check(CLI::Range(1u, 254u))
        ->capture_default_str();
    run->add_option("--accel", accel,
                    "CPU engine: kvm (hardware-assisted), soft (Strata's own CPU), or auto (kvm where the host "
                    "runs guest kernel mode natively)")
        ->check(CLI::IsMember({"auto", "kvm", "soft"}))
        ->capture_default_str();
    run->add_flag("--test-devices", config.test_devices,
                  "Add the test devices kvm-unit-tests uses: isa-debug-exit at port 0xf4, pc-testdev, pci-testdev");

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        // `strata run --help` documents run; `strata --help` documents everything.
        std::fputs(run->parsed() ? run->help().c_str() : app.help("", CLI::AppFormatMode::All).c_str(), stdout);
        return 0;
    } catch (const CLI::CallForAllHelp&) {
        std::fputs(app.help("", CLI::AppFormatMode::All).c_str(), stdout);
        return 0;
    } catch (const CLI::CallForVersion& e) {
        std::puts(e.what());
        return 0;
    } catch (const CLI::ParseError& e) {
        fmt::print(stderr, "strata: {} (see 'strata run --help')\n", e.what());
        return kUsageError;
    }

    auto size = strata::parse_size(memory);
    if (!size) {
        fmt::print(stderr, "strata: --memory: {}\n", size.error().message);
        return kUsageError;
    }
    config.memory = *size;
    config.accel = accel == "kvm" ? strata::Accel::Kvm : accel == "soft" ? strata::Accel::Soft : strata::Accel::Auto;
    config.console_in = STDIN_FILENO;
    config.console_out = STDOUT_FILENO;

    auto machine = strata::Machine::create(config);
    if (!machine) {
        fmt::print(stderr, "strata: error: {}\n", machine.error().message);
        return kUsageError;
    }
    return (*machine)->run();
}
