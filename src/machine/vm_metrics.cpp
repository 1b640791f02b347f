#include "machine/vm_metrics.hpp"

#include <fmt/format.h>

namespace strata {

namespace {

using nlohmann::json;

// A label value as the exposition format quotes it: backslash, double quote and newline escaped.
std::string label(std::string_view value) {
    std::string escaped;
    for (char c : value) {
        if (c == '\\') escaped += "\\\\";
        else if (c == '"') escaped += "\\\"";
        else if (c == '\n') escaped += "\\n";
        else escaped += c;
    }
    return escaped;
}

class PrometheusText {
public:
    explicit PrometheusText(std::string vm) : vm_(label(vm)) {}
    // Starts a metric family.
    void family(std::string_view name, std::string_view type, std::string_view help) {
        text_ += fmt::format("# HELP strata_{} {}\n# TYPE strata_{} {}\n", name, help, name, type);
    }
    // One sample; `labels` is "" or `key="value",...` with values already escaped.
    template <class T>
    void sample(std::string_view name, std::string_view labels, T value) {
        text_ += fmt::format("strata_{}{{vm=\"{}\"{}{}}} {}\n", name, vm_, labels.empty() ? "" : ",", labels, value);
    }
    [[nodiscard]] std::string take() { return std::move(text_); }

private:
    std::string vm_;
    std::string text_;
};

}  // namespace

void collect_accesses(const Bus& bus, std::string_view bus_name, std::vector<DeviceAccesses>& out) {
    for (const auto& [base, range] : bus.ranges()) {
        uint64_t reads = range.count->reads.load(std::memory_order_relaxed);
        uint64_t writes = range.count->writes.load(std::memory_order_relaxed);
        if (reads || writes) out.push_back({std::string(bus_name), range.name, base, reads, writes});
    }
    uint64_t reads = bus.unclaimed().reads.load(std::memory_order_relaxed);
    uint64_t writes = bus.unclaimed().writes.load(std::memory_order_relaxed);
    if (reads || writes)
        out.push_back({std::string(bus_name), bus.has_fallback() ? "unclaimed (PCI host)" : "unclaimed", 0, reads, writes});
}

json metrics_json(const VmMetrics& metrics) {
    json vcpus = json::array();
    for (const VcpuMetrics& vcpu : metrics.vcpus) {
        json exits = json::object();
        for (const auto& [reason, count] : vcpu.exits) exits[reason] = count;
        json entry = {{"index", vcpu.index}, {"exits", exits}};
        entry["halted_ns"] = vcpu.halted_ns ? json(*vcpu.halted_ns) : json();
        if (vcpu.soft)
            entry["soft"] = {{"instructions", vcpu.soft->instructions},
                             {"blocks_run", vcpu.soft->blocks_run},
                             {"block_cache_misses", vcpu.soft->blocks_decoded},
                             {"jump_cache_misses", vcpu.soft->jump_cache_misses},
                             {"tlb_flushes", vcpu.soft->tlb_flushes}};
        vcpus.push_back(entry);
    }
    json devices = json::array();
    for (const DeviceAccesses& device : metrics.devices)
        devices.push_back({{"bus", device.bus}, {"device", device.device}, {"base", device.base},
                           {"reads", device.reads}, {"writes", device.writes}});
    json gsi = json::object();
    for (const auto& [line, count] : metrics.interrupts.gsi) gsi[std::to_string(line)] = count;
    return {{"name", metrics.name},
            {"engine", metrics.engine},
            {"state", metrics.state},
            {"uptime_ms", metrics.uptime_ms},
            {"guest_time_ms", metrics.guest_time_ms},
            {"vcpus", vcpus},
            {"devices", devices},
            {"interrupts", {{"gsi", gsi}, {"msi", metrics.interrupts.msi}}}};
}

std::string metrics_prometheus(const VmMetrics& metrics) {
    PrometheusText out(metrics.name);
    std::string engine = fmt::format("engine=\"{}\",state=\"{}\"", label(metrics.engine), label(metrics.state));
    out.family("uptime_seconds", "gauge", "Host time since the VM was built.");
    out.sample("uptime_seconds", engine, static_cast<double>(metrics.uptime_ms) / 1e3);
    out.family("guest_time_seconds", "gauge", "Guest time: the machine clock, which stands still while paused.");
    out.sample("guest_time_seconds", engine, static_cast<double>(metrics.guest_time_ms) / 1e3);

    out.family("vcpu_exits_total", "counter", "Exits to Strata by reason (kvm) or events emulated (soft).");
    for (const VcpuMetrics& vcpu : metrics.vcpus)
        for (const auto& [reason, count] : vcpu.exits)
            out.sample("vcpu_exits_total", fmt::format("vcpu=\"{}\",reason=\"{}\"", vcpu.index, label(reason)), count);
    out.family("vcpu_halted_seconds_total", "counter", "Time vCPUs spent halted (where the engine sees it).");
    for (const VcpuMetrics& vcpu : metrics.vcpus)
        if (vcpu.halted_ns)
            out.sample("vcpu_halted_seconds_total", fmt::format("vcpu=\"{}\"", vcpu.index),
                       static_cast<double>(*vcpu.halted_ns) / 1e9);
    struct SoftCounter {
        const char* name;
        const char* help;
        uint64_t VcpuMetrics::Soft::*field;
    };
    static constexpr SoftCounter kSoft[] = {
        {"vcpu_instructions_total", "Guest instructions the soft engine retired.", &VcpuMetrics::Soft::instructions},
        {"vcpu_blocks_run_total", "Predecoded blocks the soft engine ran.", &VcpuMetrics::Soft::blocks_run},
        {"vcpu_block_cache_misses_total", "Blocks decoded from guest code (block-cache misses).",
         &VcpuMetrics::Soft::blocks_decoded},
        {"vcpu_jump_cache_misses_total", "Next blocks found through the TLB and block hash.",
         &VcpuMetrics::Soft::jump_cache_misses},
        {"vcpu_tlb_flushes_total", "Soft TLB flushes.", &VcpuMetrics::Soft::tlb_flushes},
    };
    for (const SoftCounter& counter : kSoft) {
        bool any = false;
        for (const VcpuMetrics& vcpu : metrics.vcpus) any = any || vcpu.soft;
        if (!any) continue;
        out.family(counter.name, "counter", counter.help);
        for (const VcpuMetrics& vcpu : metrics.vcpus)
            if (vcpu.soft) out.sample(counter.name, fmt::format("vcpu=\"{}\"", vcpu.index), (*vcpu.soft).*counter.field);
    }

    out.family("device_accesses_total", "counter", "Port-I/O and MMIO accesses by device.");
    for (const DeviceAccesses& device : metrics.devices) {
        std::string labels = fmt::format("bus=\"{}\",device=\"{}\",base=\"{:#x}\"", label(device.bus), label(device.device),
                                         device.base);
        out.sample("device_accesses_total", labels + ",access=\"read\"", device.reads);
        out.sample("device_accesses_total", labels + ",access=\"write\"", device.writes);
    }
    out.family("interrupts_total", "counter", "Interrupts devices raised: rising edges by GSI, and MSIs.");
    for (const auto& [gsi, count] : metrics.interrupts.gsi)
        out.sample("interrupts_total", fmt::format("kind=\"gsi\",gsi=\"{}\"", gsi), count);
    out.sample("interrupts_total", "kind=\"msi\"", metrics.interrupts.msi);
    return out.take();
}

}  // namespace strata
