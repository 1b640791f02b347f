// Disks end to end: Debian's kernel on the soft engine with virtio-blk disks given by --disk, and
// the host checking the images afterwards with its own tools (e2fsprogs' debugfs and e2fsck), as a
// user would. Needs the default guest (STRATA_TEST_KERNEL, STRATA_TEST_INITRD) and mkfs.ext4.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "e2e/linux_guest_support.hpp"

namespace strata::e2e {
namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

void write_file(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
}

// A fresh directory for one test's images.
std::string scratch_dir(const std::string& name) {
    std::string dir = ::testing::TempDir() + "strata-disk-" + name;
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

// An ext4 image made on the host from a directory (mkfs.ext4 -d) is /dev/vda, which the initramfs
// mounts at /mnt: the guest reads what the host put there, writes, renames and deletes, and unmounts;
// the host's e2fsck finds the file system clean and debugfs reads back what the guest wrote. A
// second, read-only disk is /dev/vdb: the guest's kernel knows it is read-only, a write to it
// fails, and its image is unchanged. The serials are what --disk said or what the name gives.
TEST(LinuxWithDisks, TheGuestUsesAnExt4ImageTheHostMadeAndChecks) {
    auto guest = default_guest();
    if (!guest) GTEST_SKIP() << kNeedsDefaultGuest;
    if (run_on_host("command -v mkfs.ext4 debugfs e2fsck >/dev/null").status != 0) GTEST_SKIP() << "needs e2fsprogs";
    std::string dir = scratch_dir("ext4");
    std::filesystem::create_directories(dir + "/tree/docs");
    write_file(dir + "/tree/docs/hello.txt", "hello from the host\n");
    write_file(dir + "/tree/remove-me", "doomed\n");
    std::string image = dir + "/root.img", spare = dir + "/spare.img";
    HostCommand mkfs = run_on_host("mkfs.ext4 -q -F -d '" + dir + "/tree' '" + image + "' 32M 2>&1");
    ASSERT_EQ(mkfs.status, 0) << mkfs.out;
    write_file(spare, std::string(64 * 1024, 'S'));

    // After a tag that the echoed command line does not contain, so that only the answers match.
    std::string commands =
        "echo got=$(cat /mnt/docs/hello.txt); seq 1 20000 > /mnt/docs/numbers.txt; "
        "echo from-the-guest > /mnt/new.txt; mv /mnt/new.txt /mnt/docs/renamed.txt; rm /mnt/remove-me; "
        "umount /mnt && echo unmount=ok; echo ro=$(cat /sys/block/vdb/ro) serials=$(cat /sys/block/vda/serial),"
        "$(cat /sys/block/vdb/serial); dd if=/dev/zero of=/dev/vdb bs=512 count=1 2>/dev/null || echo vdb-write=refused; "
        "echo vdb=$(head -c 4 /dev/vdb); poweroff -f\n";
    ProcessResult r = boot_and_type(*guest, "--disk '" + image + "' --disk '" + spare + ",readonly=on,serial=spare-disk'",
                                    commands, "ext4");
    EXPECT_EQ(r.exit_status, 0) << describe(r);
    EXPECT_NE(r.out.find("/dev/vda: mounted at /mnt (ext4)"), std::string::npos) << describe(r);
    EXPECT_NE(r.out.find("got=hello from the host"), std::string::npos) << describe(r);
    EXPECT_NE(r.out.find("unmount=ok"), std::string::npos) << describe(r);
    EXPECT_NE(r.out.find("ro=1 serials=strata-root,spare-disk"), std::string::npos) << describe(r);
    EXPECT_NE(r.out.find("vdb-write=refused"), std::string::npos) << describe(r);
    EXPECT_NE(r.out.find("vdb=SSSS"), std::string::npos) << describe(r);

    HostCommand fsck = run_on_host("e2fsck -fn '" + image + "' 2>&1");
    EXPECT_EQ(fsck.status, 0) << "the host's e2fsck after the guest's writes:\n" << fsck.out;
    EXPECT_EQ(run_on_host("debugfs -R 'cat /docs/renamed.txt' '" + image + "' 2>/dev/null").out, "from-the-guest\n");
    HostCommand numbers = run_on_host("debugfs -R 'cat /docs/numbers.txt' '" + image + "' 2>/dev/null | sha256sum");
    EXPECT_EQ(numbers.out, run_on_host("seq 1 20000 | sha256sum").out) << "the 20000 lines the guest wrote";
    EXPECT_NE(run_on_host("debugfs -R 'stat /remove-me' '" + image + "' 2>&1").out.find("File not found"), std::string::npos);
    EXPECT_EQ(read_file(spare), std::string(64 * 1024, 'S')) << "the read-only image was written";
}

// A write the guest has flushed (dd conv=fsync: the block layer's FLUSH after the data) is in the
// image even when the VMM is killed with SIGKILL the moment the guest says so: nothing of it was
// still held by Strata.
TEST(LinuxWithDisks, AFlushedWriteSurvivesSigkillOfTheVmm) {
    auto guest = default_guest();
    if (!guest) GTEST_SKIP() << kNeedsDefaultGuest;
    std::string dir = scratch_dir("sigkill");
    std::string image = dir + "/raw.img";
    write_file(image, std::string(1 << 20, '\0'));

    // The shell's arithmetic makes the marker, so that the echo of the typed line cannot match it.
    std::string commands =
        "printf 'durable-%s' 42 | dd of=/dev/vda bs=512 seek=8 conv=fsync 2>/dev/null && echo flushed-$((40 + 2)); "
        "sleep 600\n";
    SignalPlan kill_when_flushed{.number = SIGKILL, .after = std::chrono::milliseconds(0), .once_output_has = "flushed-42"};
    ProcessResult r = boot_and_type(*guest, "--disk '" + image + "'", commands, "sigkill", "console=ttyS0 panic=-1",
                                    kill_when_flushed);
    EXPECT_FALSE(r.timed_out) << describe(r);
    EXPECT_EQ(r.signal, SIGKILL) << describe(r);
    std::string bytes = read_file(image);
    ASSERT_EQ(bytes.size(), size_t{1} << 20);
    EXPECT_EQ(bytes.substr(8 * 512, 10), "durable-42") << describe(r);
    EXPECT_EQ(bytes.find_first_not_of('\0', 8 * 512 + 10), std::string::npos) << "nothing else was written";
}

}  // namespace
}  // namespace strata::e2e
