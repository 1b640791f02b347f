// Everything `strata run` is asked to build: the guest's kernel, its resources and the engine.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/checked.hpp"
#include "host/slirp_backend.hpp"
#include "loader/linux_loader.hpp"

namespace strata {

enum class Accel { Auto, Kvm, Soft };
// Where the terminal goes (--console): COM1, or the virtio-console (the guest's hvc0).
enum class ConsoleDevice { Serial, Virtio };

// A virtio-blk disk (--disk): the guest's /dev/vda, vdb, ... in the order given.
struct DiskConfig {
    std::string path;
    bool read_only = false;
    std::string serial;  // empty: derived from the file name
};

// A virtio-net interface (--net): the guest's eth0, eth1, ... in the order given.
struct NetConfig {
    enum class Mode { User, Tap };
    Mode mode = Mode::User;
    std::vector<HostForward> forwards;  // user: hostfwd=
    uint16_t mtu = SlirpBackend::kDefaultMtu;  // user: mtu=
    std::string ifname;                 // tap: the host interface
    std::optional<MacAddress> mac;      // absent: 52:54:00:12:34:56 plus the interface's index
    std::string text;                   // the flag's value, for messages
};

// The virtio-vsock device (--vsock): the guest's CID and the host side's Unix socket.
struct VsockConfig {
    uint64_t cid = 0;
    std::string socket_path;
};

struct MachineConfig {
    std::string kernel_path;
    std::string initrd_path;       // a Linux initrd, or the one module of a multiboot kernel
    std::string cmdline;
    uint64_t memory = 512 * MiB;
    unsigned cpus = 1;
    Accel accel = Accel::Auto;
    KernelUnpack kernel_unpack = KernelUnpack::Host;  // a bzImage's payload: see loader/linux_loader.hpp
    bool test_devices = false;     // isa-debug-exit, pc-testdev, pci-testdev
    ConsoleDevice console = ConsoleDevice::Serial;
    std::vector<DiskConfig> disks;
    std::vector<NetConfig> nets;
    std::optional<VsockConfig> vsock;
    std::string api_socket;        // --api-socket, or the socket --name places; empty: no control API
    std::string name;              // --name, shown by the API and `strata ls`
    int console_in = 0;            // the terminal: input to the console device, output from it
    int console_out = 1;
};

}  // namespace strata
