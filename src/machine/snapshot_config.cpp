#include "machine/snapshot_config.hpp"

#include <sys/stat.h>

#include "base/units.hpp"
#include "memory/guest_memory.hpp"
#include "machine/device_options.hpp"

namespace strata {

namespace {

using nlohmann::json;

constexpr unsigned kMaxCpus = 254;
constexpr size_t kMaxDevices = 64;

std::string escape_commas(std::string_view text) {
    std::string out;
    for (char c : text) {
        out += c;
        if (c == ',') out += ',';
    }
    return out;
}

// The size of the image at `path` as restore opens it (0 when it cannot be seen: opening it
// reports why).
uint64_t image_size(const std::string& path) {
    struct stat st{};
    if (stat(path.c_str(), &st) != 0) return 0;
    return static_cast<uint64_t>(st.st_size);
}

Result<const json*> field(const json& object, std::string_view key, json::value_t type) {
    auto it = object.find(key);
    if (it == object.end()) return fail("the snapshot's machine has no \"{}\"", key);
    bool ok = it->type() == type || (type == json::value_t::number_unsigned && it->is_number_integer() && it->get<int64_t>() >= 0);
    if (!ok) return fail("the snapshot's machine \"{}\" is a {}, not what it must be", key, it->type_name());
    return &*it;
}

Result<std::vector<std::string>> strings(const json& machine, std::string_view key) {
    auto list = field(machine, key, json::value_t::array);
    if (!list) return std::unexpected(list.error());
    if ((*list)->size() > kMaxDevices) return fail("the snapshot's machine has more than {} \"{}\"", kMaxDevices, key);
    std::vector<std::string> out;
    for (const json& item : **list) {
        if (!item.is_string()) return fail("the snapshot's machine \"{}\" holds a {}, not a string", key, item.type_name());
        out.push_back(item.get<std::string>());
    }
    return out;
}

}  // namespace

std::string disk_option_text(const DiskConfig& disk) {
    std::string text = escape_commas(disk.path);
    if (disk.read_only) text += ",readonly=on";
    if (!disk.serial.empty()) text += ",serial=" + escape_commas(disk.serial);
    return text;
}

json snapshot_config(const MachineConfig& config) {
    json disks = json::array(), disk_sizes = json::array(), nets = json::array();
    for (const DiskConfig& disk : config.disks) {
        disks.push_back(disk_option_text(disk));
        disk_sizes.push_back(image_size(disk.path));
    }
    for (const NetConfig& net : config.nets) nets.push_back(net.text);
    json machine = {
        {"memory_bytes", config.memory},
        {"cpus", config.cpus},
        {"console", config.console == ConsoleDevice::Serial ? "serial" : "virtio"},
        {"test_devices", config.test_devices},
        {"disks", disks},
        {"disk_sizes", disk_sizes},
        {"nets", nets},
        {"kernel", config.kernel_path},
        {"cmdline", config.cmdline},
    };
    machine["vsock"] = config.vsock ? json(fmt::format("cid={},socket={}", config.vsock->cid,
                                                       escape_commas(config.vsock->socket_path)))
                                    : json();
    return machine;
}

Result<MachineConfig> config_from_snapshot(const json& machine) {
    MachineConfig config;
    auto memory = field(machine, "memory_bytes", json::value_t::number_unsigned);
    if (!memory) return std::unexpected(memory.error());
    config.memory = (*memory)->get<uint64_t>();
    if (!GuestMemory::valid_size(config.memory))
        return fail("the snapshot's machine has {} of RAM, which no VM can have", format_size(config.memory));
    auto cpus = field(machine, "cpus", json::value_t::number_unsigned);
    if (!cpus) return std::unexpected(cpus.error());
    if ((*cpus)->get<uint64_t>() < 1 || (*cpus)->get<uint64_t>() > kMaxCpus)
        return fail("the snapshot's machine has {} vCPUs (1 to {} are allowed)", (*cpus)->get<uint64_t>(), kMaxCpus);
    config.cpus = (*cpus)->get<unsigned>();
    auto console = field(machine, "console", json::value_t::string);
    if (!console) return std::unexpected(console.error());
    if (**console == "serial") config.console = ConsoleDevice::Serial;
    else if (**console == "virtio") config.console = ConsoleDevice::Virtio;
    else return fail("the snapshot's machine console \"{}\" is neither serial nor virtio", (*console)->get<std::string>());
    auto test_devices = field(machine, "test_devices", json::value_t::boolean);
    if (!test_devices) return std::unexpected(test_devices.error());
    config.test_devices = (*test_devices)->get<bool>();

    auto disks = strings(machine, "disks");
    if (!disks) return std::unexpected(disks.error());
    auto sizes = field(machine, "disk_sizes", json::value_t::array);
    if (!sizes) return std::unexpected(sizes.error());
    if ((*sizes)->size() != disks->size()) return fail("the snapshot's machine gives {} disks but {} disk sizes", disks->size(), (*sizes)->size());
    for (size_t i = 0; i < disks->size(); ++i) {
        auto disk = parse_disk_option((*disks)[i]);
        if (!disk) return context(disk.error(), "the snapshot's --disk");
        const json& size = (**sizes)[i];
        if (!size.is_number_unsigned()) return fail("the snapshot's disk size {} is not a number", i);
        if (uint64_t now = image_size(disk->path); now != size.get<uint64_t>() && now != 0)
            return fail("disk {} has {} bytes now and had {} when the snapshot was taken: it is not the same image",
                        disk->path, now, size.get<uint64_t>());
        config.disks.push_back(std::move(*disk));
    }
    auto nets = strings(machine, "nets");
    if (!nets) return std::unexpected(nets.error());
    for (const std::string& text : *nets) {
        auto net = parse_net_option(text);
        if (!net) return context(net.error(), "the snapshot's --net");
        config.nets.push_back(std::move(*net));
    }
    if (auto vsock = machine.find("vsock"); vsock != machine.end() && !vsock->is_null()) {
        if (!vsock->is_string()) return fail("the snapshot's machine \"vsock\" is not a string");
        auto parsed = parse_vsock_option(vsock->get<std::string>());
        if (!parsed) return context(parsed.error(), "the snapshot's --vsock");
        config.vsock = std::move(*parsed);
    }
    if (auto kernel = machine.find("kernel"); kernel != machine.end() && kernel->is_string())
        config.kernel_path = kernel->get<std::string>();
    if (auto cmdline = machine.find("cmdline"); cmdline != machine.end() && cmdline->is_string())
        config.cmdline = cmdline->get<std::string>();
    return config;
}

}  // namespace strata
