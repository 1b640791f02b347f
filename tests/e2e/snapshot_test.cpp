// Snapshot and restore end to end, as a user does them from a shell: the counter guest
// (guests/counter.c) runs, is paused and snapshotted with `strata snapshot`, and the VM is killed;
// `strata restore` starts it again in a new process, under the same engine or the other one, and
// its console goes on from the next number, none lost or repeated. A snapshot restored paused and
// snapshotted again is the same state; a corrupt, truncated or wrong-version snapshot is refused
// with one line; the default Linux guest's shell, disk, rng, network and vsock work after a restore.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <span>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "e2e/host_servers.hpp"
#include "e2e/initramfs_support.hpp"
#include "e2e/linux_guest_support.hpp"
#include "e2e/process_runner.hpp"
#include "e2e/vmm_session.hpp"

namespace strata::e2e {
namespace {

namespace fs = std::filesystem;

const std::regex kCounterLine("counter: ([0-9]+)\n");

// The guest's console alone: Strata's own lines ("strata: note: ...") share the pipe.
std::string console_of(const std::string& output) {
    static const std::regex strata_line("strata: [^\n]*\n");
    return std::regex_replace(output, strata_line, "");
}

uint64_t last_count(const std::string& console) {
    uint64_t last = 0;
    for (auto it = std::sregex_iterator(console.begin(), console.end(), kCounterLine); it != std::sregex_iterator(); ++it)
        last = std::stoull((*it)[1].str());
    return last;
}

// Every count from 1 to the last is there once, in order.
bool counts_in_order(const std::string& console) {
    uint64_t expected = 1;
    for (auto it = std::sregex_iterator(console.begin(), console.end(), kCounterLine); it != std::sregex_iterator();
         ++it, ++expected)
        if (std::stoull((*it)[1].str()) != expected) return false;
    return expected > 1;
}

ProcessResult cli(std::vector<std::string> args) {
    args.insert(args.begin(), STRATA_BINARY);
    return run_process(args, std::chrono::seconds(120));
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

class SnapshotFixture {
public:
    SnapshotFixture() {
        static int made = 0;
        root_ = fs::path(::testing::TempDir()) / fmt::format("strata-snapshot-e2e-{}-{}", ::getpid(), ++made);
        fs::remove_all(root_);
        fs::create_directories(root_);
    }
    ~SnapshotFixture() { fs::remove_all(root_); }
    [[nodiscard]] std::string path(const std::string& name) const { return (root_ / name).string(); }

    // Runs the counter guest under `engine`, pauses it after a few lines, snapshots it into
    // `dir` and kills it; returns the console up to the pause.
    std::string snapshot_counter(const std::string& engine, const std::string& dir) {
        std::string socket = path("run.sock");
        VmmSession vm({STRATA_BINARY, "run", "--accel", engine, "--test-devices", "--memory", "16M", "--kernel",
                       guest_path("counter"), "--api-socket", socket});
        EXPECT_TRUE(vm.started());
        EXPECT_TRUE(vm.wait_for("counter: 3\n", std::chrono::seconds(60))) << vm.output();
        ProcessResult paused = cli({"pause", "--api-socket", socket});
        EXPECT_EQ(paused.exit_status, 0) << paused.err;
        vm.read_for(std::chrono::milliseconds(300));  // what was on its way before the pause
        std::string before = console_of(vm.output());
        ProcessResult taken = cli({"snapshot", "--api-socket", socket, dir});
        EXPECT_EQ(taken.exit_status, 0) << taken.err;
        EXPECT_NE(taken.out.find(dir + ": 16 MiB of RAM"), std::string::npos) << taken.out;
        vm.read_for(std::chrono::milliseconds(300));
        EXPECT_EQ(console_of(vm.output()), before) << "a paused VM stays paused through its snapshot";
        EXPECT_EQ(cli({"kill", "--api-socket", socket}).exit_status, 0);
        EXPECT_EQ(vm.wait_exit(), 8) << vm.output();
        return before;
    }

private:
    fs::path root_;
};

bool engine_usable(const std::string& engine) { return engine != "kvm" || kvm_usable(); }

// (snapshot under, restore under)
class SnapshotAcrossEngines : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(SnapshotAcrossEngines, ARestoredCounterGoesOnFromTheNextNumber) {
    auto [from, to] = GetParam();
    if (!engine_usable(from) || !engine_usable(to)) GTEST_SKIP() << "/dev/kvm cannot be opened read-write; the kvm engine needs it";
    SnapshotFixture files;
    std::string dir = files.path("snap");
    std::string before = files.snapshot_counter(from, dir);
    uint64_t at_snapshot = last_count(before);
    ASSERT_GE(at_snapshot, 3u) << before;

    std::string socket = files.path("restored.sock");
    VmmSession restored({STRATA_BINARY, "restore", dir, "--accel", to, "--api-socket", socket});
    ASSERT_TRUE(restored.started());
    std::string next = "counter: " + std::to_string(at_snapshot + 3) + "\n";
    ASSERT_TRUE(restored.wait_for(next, std::chrono::seconds(60))) << restored.output();
    EXPECT_TRUE(counts_in_order(before + console_of(restored.output()))) << before << "\n--- restored:\n" << restored.output();
    if (from != to) {
        EXPECT_NE(restored.output().find("restoring a snapshot taken under the " + from + " engine under the " + to + " engine"),
                  std::string::npos)
            << restored.output();
    }

    // The restored VM is a VM like any other: its API works, and the snapshot is still whole
    // (the restore mapped its RAM copy-on-write).
    ProcessResult info = cli({"info", "--api-socket", socket});
    EXPECT_EQ(info.exit_status, 0) << info.err;
    EXPECT_NE(info.out.find("\"engine\": \"" + to + "\""), std::string::npos) << info.out;
    // Its RAM is a private mapping of the snapshot, which cannot be written in the background: a
    // snapshot of it pauses it throughout, and says why.
    ProcessResult again_taken = cli({"snapshot", "--api-socket", socket, files.path("again")});
    EXPECT_EQ(again_taken.exit_status, 0) << again_taken.err;
    EXPECT_NE(again_taken.err.find("strata: note: RAM was written with the VM paused: guest RAM is a private mapping"),
              std::string::npos)
        << again_taken.err;
    ProcessResult refused = cli({"snapshot", "--api-socket", socket, "--mode", "background", files.path("refused")});
    EXPECT_EQ(refused.exit_status, 1) << refused.err;
    EXPECT_NE(refused.err.find("a background snapshot is not possible: guest RAM is a private mapping"), std::string::npos)
        << refused.err;
    EXPECT_FALSE(fs::exists(files.path("refused")));
    EXPECT_FALSE(fs::exists(files.path("refused") + ".partial"));
    EXPECT_EQ(cli({"kill", "--api-socket", socket}).exit_status, 0);
    EXPECT_EQ(restored.wait_exit(), 8) << restored.output();

    // A snapshot may catch the guest in the middle of a line ("counter: 6" with its "c" already
    // printed): a restore of it prints the rest of that line first. So the restored console, up
    // to the line after, is a tail (or the whole) of at_snapshot + 1's line.
    VmmSession again({STRATA_BINARY, "restore", dir, "--accel", to});
    std::string after = "counter: " + std::to_string(at_snapshot + 2) + "\n";
    ASSERT_TRUE(again.wait_for(after, std::chrono::seconds(60))) << again.output();
    std::string console = console_of(again.output());
    std::string head = console.substr(0, console.find(after));
    EXPECT_TRUE(!head.empty() && ("counter: " + std::to_string(at_snapshot + 1) + "\n").ends_with(head))
        << "a second restore of the snapshot goes on from its next number too\n" << console;
}

INSTANTIATE_TEST_SUITE_P(Engines, SnapshotAcrossEngines,
                         ::testing::Values(std::pair<std::string, std::string>{"soft", "soft"},
                                           std::pair<std::string, std::string>{"kvm", "kvm"},
                                           std::pair<std::string, std::string>{"kvm", "soft"},
                                           std::pair<std::string, std::string>{"soft", "kvm"}),
                         [](const auto& test) { return test.param.first + "_to_" + test.param.second; });

// A running counter snapshotted with --mode background: the VM is stopped only while its vCPUs'
// and devices' state is taken and counts on while its RAM is written; the restored VM goes on
// from the number it had reached at that stop (its RAM is of that instant, not of later), in order.
class BackgroundSnapshot : public ::testing::TestWithParam<std::string> {};

TEST_P(BackgroundSnapshot, TheVmCountsOnWhileItsRamIsWrittenAndTheRestoreGoesOnFromTheStop) {
    std::string engine = GetParam();
    if (!engine_usable(engine)) GTEST_SKIP() << "/dev/kvm cannot be opened read-write; the kvm engine needs it";
    SnapshotFixture files;
    std::string socket = files.path("run.sock");
    std::string dir = files.path("snap");
    VmmSession vm({STRATA_BINARY, "run", "--accel", engine, "--test-devices", "--memory", "16M", "--kernel",
                   guest_path("counter"), "--api-socket", socket});
    ASSERT_TRUE(vm.started());
    ASSERT_TRUE(vm.wait_for("counter: 3\n", std::chrono::seconds(60))) << vm.output();
    ProcessResult taken = cli({"snapshot", "--api-socket", socket, "--mode", "background", dir});
    if (taken.exit_status != 0 && taken.err.find("a background snapshot is not possible") != std::string::npos)
        GTEST_SKIP() << taken.err;
    ASSERT_EQ(taken.exit_status, 0) << taken.err;
    EXPECT_NE(taken.out.find("(its RAM was written while it ran)"), std::string::npos) << taken.out;
    vm.read_for(std::chrono::milliseconds(50));
    uint64_t at_return = last_count(console_of(vm.output()));
    std::string later = "counter: " + std::to_string(at_return + 2) + "\n";
    EXPECT_TRUE(vm.wait_for(later, std::chrono::seconds(60))) << "the VM runs on after its snapshot\n" << vm.output();
    EXPECT_EQ(cli({"kill", "--api-socket", socket}).exit_status, 0);
    EXPECT_EQ(vm.wait_exit(), 8) << vm.output();
    std::string original = console_of(vm.output());

    VmmSession restored({STRATA_BINARY, "restore", dir, "--accel", engine});
    ASSERT_TRUE(restored.started());
    std::smatch first;
    ASSERT_TRUE(restored.wait_for("counter: ", std::chrono::seconds(60)));
    ASSERT_TRUE(restored.wait_for("\n", std::chrono::seconds(60)));
    restored.read_for(std::chrono::milliseconds(10));
    std::string console = console_of(restored.output());
    ASSERT_TRUE(std::regex_search(console, first, kCounterLine)) << console;
    uint64_t next = std::stoull(first[1].str());
    // The snapshot's instant lies between "counter: 3" and the CLI's return (a line cut in two
    // by it ends first, unnumbered, in the restored console; the bound leaves the console's pipe
    // 200 ms to deliver what the VM printed before the return).
    EXPECT_GE(next, 4u) << console;
    EXPECT_LE(next, at_return + 10) << console;
    EXPECT_NE(original.find("counter: " + std::to_string(next - 1) + "\n"), std::string::npos)
        << "the restored VM goes on from a number the running one had printed\n" << original << "\n--- restored:\n" << console;
    std::string third = "counter: " + std::to_string(next + 2) + "\n";
    ASSERT_TRUE(restored.wait_for(third, std::chrono::seconds(60))) << restored.output();
    std::string tail = console_of(restored.output()).substr(static_cast<size_t>(first.position(0)));
    EXPECT_NE(tail.find("counter: " + std::to_string(next) + "\ncounter: " + std::to_string(next + 1) + "\n" + third),
              std::string::npos)
        << tail;
}

INSTANTIATE_TEST_SUITE_P(Engines, BackgroundSnapshot, ::testing::Values("soft", "kvm"),
                         [](const auto& test) { return test.param; });

// Snapshot → restore → snapshot is the same state: every vCPU's and device's bytes and the RAM.
// (Under the soft engine, whose clocks all stand still while the VM is paused; KVM's TSC and
// in-kernel PIT run on in the host.)
TEST(Snapshot, RestoredPausedAndSnapshottedAgainIsTheSameState) {
    SnapshotFixture files;
    std::string first = files.path("first"), second = files.path("second");
    files.snapshot_counter("soft", first);
    std::string socket = files.path("paused.sock");
    VmmSession restored({STRATA_BINARY, "restore", first, "--accel", "soft", "--paused", "--api-socket", socket});
    ASSERT_TRUE(restored.started());
    for (int i = 0; i < 100 && !fs::exists(socket); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ProcessResult info = cli({"info", "--api-socket", socket});
    EXPECT_NE(info.out.find("\"state\": \"paused\""), std::string::npos) << info.out << info.err;
    ProcessResult taken = cli({"snapshot", "--api-socket", socket, second});
    ASSERT_EQ(taken.exit_status, 0) << taken.err;

    EXPECT_EQ(read_file(fs::path(first) / "state.bin"), read_file(fs::path(second) / "state.bin"));
    auto manifest = [](const std::string& dir) { return nlohmann::json::parse(read_file(fs::path(dir) / "snapshot.json")); };
    auto a = manifest(first), b = manifest(second);
    EXPECT_EQ(a["files"], b["files"]) << "the same sizes and checksums, RAM included";
    EXPECT_EQ(a["machine_time_ns"], b["machine_time_ns"]);
    EXPECT_EQ(a["machine"], b["machine"]);

    EXPECT_EQ(cli({"resume", "--api-socket", socket}).exit_status, 0);
    EXPECT_TRUE(restored.wait_for("counter: ", std::chrono::seconds(60))) << restored.output();
}

// A snapshot directory is untrusted input: each kind of damage is refused with one line that
// names it, before a VM exists (exit status 2, nothing on the console).
TEST(Snapshot, CorruptTruncatedAndWrongVersionSnapshotsAreRefused) {
    SnapshotFixture files;
    std::string good = files.path("good");
    files.snapshot_counter("soft", good);
    struct Damage {
        std::string name;
        std::function<void(const fs::path&)> apply;
        std::string message;
    };
    const Damage damages[] = {
        {"ram-byte",
         [](const fs::path& dir) {
             std::string ram = read_file(dir / "memory.bin");
             size_t at = ram.find_first_not_of('\0', 0x100000);  // a byte of the guest's image
             int fd = ::open((dir / "memory.bin").c_str(), O_WRONLY);
             char flipped = static_cast<char>(ram[at] ^ 0x40);
             ASSERT_EQ(::pwrite(fd, &flipped, 1, static_cast<off_t>(at)), 1);
             ::close(fd);
         },
         "memory.bin: checksum mismatch"},
        {"state-truncated", [](const fs::path& dir) { fs::resize_file(dir / "state.bin", fs::file_size(dir / "state.bin") / 2); },
         "state.bin has"},
        {"ram-truncated", [](const fs::path& dir) { fs::resize_file(dir / "memory.bin", 8 << 20); }, "memory.bin has 8388608 bytes"},
        {"version",
         [](const fs::path& dir) {
             std::string text = read_file(dir / "snapshot.json");
             text.replace(text.find("\"version\": 1"), 12, "\"version\": 9");
             std::ofstream(dir / "snapshot.json", std::ios::trunc) << text;
         },
         "format version 9 (this Strata restores version 1)"},
        {"missing", [](const fs::path& dir) { fs::remove(dir / "state.bin"); }, "state.bin: No such file or directory"},
    };
    for (const Damage& damage : damages) {
        fs::path dir = files.path(damage.name);
        fs::copy(good, dir);
        damage.apply(dir);
        ProcessResult result = cli({"restore", dir.string(), "--accel", "soft"});
        EXPECT_EQ(result.exit_status, 2) << damage.name << ": " << result.out << result.err;
        EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << damage.name << ": " << result.err;
        EXPECT_TRUE(result.err.starts_with("strata: error: snapshot " + dir.string() + ": ")) << result.err;
        EXPECT_NE(result.err.find(damage.message), std::string::npos) << damage.name << ": " << result.err;
        EXPECT_EQ(result.out.find("counter"), std::string::npos) << damage.name << ": nothing ran";
    }
}

TEST(Snapshot, TheApiRefusesAPathThatExistsOrIsNotAbsolute) {
    SnapshotFixture files;
    std::string socket = files.path("vm.sock");
    VmmSession vm({STRATA_BINARY, "run", "--accel", "soft", "--test-devices", "--memory", "16M", "--kernel",
                   guest_path("counter"), "--api-socket", socket});
    ASSERT_TRUE(vm.wait_for("counter: 1\n", std::chrono::seconds(60))) << vm.output();
    fs::create_directories(files.path("taken"));
    ProcessResult exists = cli({"snapshot", "--api-socket", socket, files.path("taken")});
    EXPECT_EQ(exists.exit_status, 1);
    EXPECT_NE(exists.err.find("exists already"), std::string::npos) << exists.err;
    ProcessResult no_parent = cli({"snapshot", "--api-socket", socket, files.path("none/snap")});
    EXPECT_EQ(no_parent.exit_status, 1);
    EXPECT_NE(no_parent.err.find("is not a directory"), std::string::npos) << no_parent.err;
    // The VM ran on through both refusals.
    uint64_t now = last_count(console_of(vm.output()));
    EXPECT_TRUE(vm.wait_for("counter: " + std::to_string(now + 2) + "\n", std::chrono::seconds(60))) << vm.output();
}

// The default guest snapshotted at its shell, with a virtio disk mounted and its virtio-rng in
// use, and restored in a new process: the shell answers, its timers run, the disk reads what was
// written before and takes new writes that the host's e2fsck and debugfs find, and the rng gives
// bytes: the virtio devices carried on where they were.
TEST(LinuxGuestSnapshot, TheShellAndTheVirtioDevicesWorkAfterARestore) {
    auto guest = default_guest();
    if (!guest) GTEST_SKIP() << kNeedsDefaultGuest;
    if (run_on_host("command -v mkfs.ext4 debugfs e2fsck >/dev/null").status != 0) GTEST_SKIP() << "needs e2fsprogs";
    SnapshotFixture files;
    std::string socket = files.path("linux.sock"), dir = files.path("linux"), image = files.path("disk.img");
    HostCommand mkfs = run_on_host("mkfs.ext4 -q -F '" + image + "' 32M 2>&1");
    ASSERT_EQ(mkfs.status, 0) << mkfs.out;
    {
        VmmSession vm({STRATA_BINARY, "run", "--accel", "soft", "--memory", "256M", "--kernel", guest->kernel, "--initrd",
                       guest->initrd, "--cmdline", "console=ttyS0 panic=-1", "--disk", image, "--api-socket", socket});
        ASSERT_TRUE(vm.started());
        ASSERT_TRUE(vm.wait_for("Exit the shell to power off.", std::chrono::seconds(300))) << vm.output();
        vm.type("echo kept-$((1+1)) > /mnt/before.txt; sync; echo before-$((6*7)) rng=$(head -c 8 /dev/hwrng | wc -c)\n");
        ASSERT_TRUE(vm.wait_for("before-42 rng=8", std::chrono::seconds(60))) << vm.output();
        ProcessResult taken = cli({"snapshot", "--api-socket", socket, dir});
        ASSERT_EQ(taken.exit_status, 0) << taken.err;
        EXPECT_EQ(cli({"kill", "--api-socket", socket}).exit_status, 0);
        EXPECT_EQ(vm.wait_exit(), 8) << vm.output();
    }
    VmmSession restored({STRATA_BINARY, "restore", dir, "--accel", "soft"});
    ASSERT_TRUE(restored.started());
    restored.type("echo after-$((6*7)); uname -r\n");
    ASSERT_TRUE(restored.wait_for("after-42", std::chrono::seconds(60))) << restored.output();
    // The guest's timers run on: a sleep ends (the local APIC timer, re-armed from the snapshot).
    restored.type("sleep 1; echo slept-$((2+3))\n");
    ASSERT_TRUE(restored.wait_for("slept-5", std::chrono::seconds(60))) << restored.output();
    // Past the guest's page cache: the file written before the snapshot is read from the disk.
    restored.type("echo 3 > /proc/sys/vm/drop_caches; echo got=$(cat /mnt/before.txt) rng=$(head -c 16 /dev/hwrng | wc -c)\n");
    ASSERT_TRUE(restored.wait_for("got=kept-2 rng=16", std::chrono::seconds(60))) << restored.output();
    restored.type("seq 1 5000 > /mnt/after.txt; umount /mnt && echo unmount-$((3*3))\n");
    ASSERT_TRUE(restored.wait_for("unmount-9", std::chrono::seconds(60))) << restored.output();
    restored.type("poweroff -f\n");
    EXPECT_EQ(restored.wait_exit(std::chrono::seconds(60)), 0) << restored.output();

    HostCommand fsck = run_on_host("e2fsck -fn '" + image + "' 2>&1");
    EXPECT_EQ(fsck.status, 0) << "the host's e2fsck after the restored guest's writes:\n" << fsck.out;
    EXPECT_EQ(run_on_host("debugfs -R 'cat /before.txt' '" + image + "' 2>/dev/null").out, "kept-2\n");
    HostCommand after = run_on_host("debugfs -R 'cat /after.txt' '" + image + "' 2>/dev/null | sha256sum");
    EXPECT_EQ(after.out, run_on_host("seq 1 5000 | sha256sum").out) << "the 5000 lines the restored guest wrote";
}

// The default guest with user networking and a vsock device, snapshotted at its shell once it has
// used both, and restored in a new process: eth0 keeps its lease and fetches a page from the
// host's 127.0.0.1 through slirp again (slirp's state is new, the guest's is the snapshot's), and
// the guest's vsock transport, reset by the restore, opens a new connection to the host's listener
// and reads its answer.
TEST(LinuxGuestSnapshot, TheNetworkAndVsockWorkAfterARestore) {
    auto guest = default_guest();
    if (!guest) GTEST_SKIP() << kNeedsDefaultGuest;
    SnapshotFixture files;
    std::string socket = files.path("net.sock"), dir = files.path("net"), vsock = files.path("v.sock");
    GuestFile tool{.guest_path = "/bin/vsock_tool", .host_path = STRATA_GUEST_DIR "/linux/vsock_tool"};
    auto initrd = with_guest_files(guest->initrd, std::span(&tool, 1), files.path("initramfs.cpio"));
    ASSERT_TRUE(initrd) << initrd.error().message;
    auto vsock_listener = UnixListener::bind(vsock + "_5000");
    ASSERT_TRUE(vsock_listener) << vsock_listener.error().message;
    Listener http;
    ASSERT_NE(http.port, 0);
    HttpServerThread server(http, "page-from-the-host\n");
    auto deadline = Clock::now() + std::chrono::minutes(8);
    std::string wget = "wget -q -O - http://10.0.2.2:" + std::to_string(http.port) + "/";

    {
        VmmSession vm({STRATA_BINARY, "run", "--accel", "soft", "--memory", "256M", "--kernel", guest->kernel, "--initrd",
                       *initrd, "--cmdline", "console=ttyS0 panic=-1", "--net", "user", "--vsock", "cid=7,socket=" + vsock,
                       "--api-socket", socket});
        ASSERT_TRUE(vm.started());
        ASSERT_TRUE(vm.wait_for("Exit the shell to power off.", std::chrono::seconds(300))) << vm.output();
        ASSERT_NE(vm.output().find("eth0: 10.0.2.15/24"), std::string::npos) << vm.output();
        std::string line;
        std::thread service([&] { line = answer_guest(*vsock_listener, "host-answer-1\n", deadline); });
        vm.type("vsock_tool connect 2 5000 before-$((6*7)); " + wget + "\n");
        service.join();
        EXPECT_EQ(line, "before-42") << "what the host's vsock listener got before the snapshot";
        ASSERT_TRUE(vm.wait_for("page-from-the-host", std::chrono::seconds(60))) << vm.output();
        ASSERT_NE(vm.output().find("vsock-reply: host-answer-1"), std::string::npos) << vm.output();
        ProcessResult taken = cli({"snapshot", "--api-socket", socket, dir});
        ASSERT_EQ(taken.exit_status, 0) << taken.err;
        EXPECT_NE(taken.err.find("strata: note: vsock: open connections are reset on restore"), std::string::npos)
            << "strata snapshot says what a restore cannot carry: " << taken.err;
        EXPECT_EQ(cli({"kill", "--api-socket", socket}).exit_status, 0);
        EXPECT_EQ(vm.wait_exit(), 8) << vm.output();
    }
    VmmSession restored({STRATA_BINARY, "restore", dir, "--accel", "soft"});
    ASSERT_TRUE(restored.started());
    std::string line;
    std::thread service([&] { line = answer_guest(*vsock_listener, "host-answer-2\n", deadline); });
    restored.type("vsock_tool connect 2 5000 after-$((6*7)); " + wget + " | sed s/page/again/\n");
    service.join();
    EXPECT_EQ(line, "after-42") << "what the host's vsock listener got after the restore:\n" << restored.output();
    ASSERT_TRUE(restored.wait_for("again-from-the-host", std::chrono::seconds(60))) << restored.output();
    EXPECT_NE(restored.output().find("vsock-reply: host-answer-2"), std::string::npos) << restored.output();
    restored.type("poweroff -f\n");
    EXPECT_EQ(restored.wait_exit(std::chrono::seconds(60)), 0) << restored.output();
    struct stat gone {};
    EXPECT_NE(::stat(vsock.c_str(), &gone), 0) << "the restored VMM removes its vsock socket at exit";
}

}  // namespace
}  // namespace strata::e2e
