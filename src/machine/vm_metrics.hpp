// The control API's metrics of one VM: a snapshot of its counters, and the two forms it is served
// in, JSON (GET /v1/metrics) and the Prometheus text format (GET /metrics; the exposition format
// 0.0.4: # HELP and # TYPE lines, then one sample per line, labels quoted and escaped).
//
// Counters: per vCPU, exits to Strata by reason (kvm) or emulated events (soft: halts), time
// halted, and for the soft engine instructions retired, blocks run, block-cache misses (blocks
// decoded), jump-cache misses and TLB flushes; per device, port-I/O and MMIO reads and writes
// (accesses no device claimed, PCI BARs included, under "unclaimed (PCI host)"); interrupts the
// devices raised, by GSI, and MSIs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cpu/vcpu_metrics.hpp"
#include "machine/board.hpp"

namespace strata {

struct DeviceAccesses {
    std::string bus;  // "pio" or "mmio"
    std::string device;
    uint64_t base = 0;
    uint64_t reads = 0;
    uint64_t writes = 0;
};

struct VmMetrics {
    std::string name;
    std::string engine;
    std::string state;
    int64_t uptime_ms = 0;
    int64_t guest_time_ms = 0;
    std::vector<VcpuMetrics> vcpus;
    std::vector<DeviceAccesses> devices;
    Board::InterruptCounts interrupts;
};

// The accesses each range of `bus` has had (those with any), and the unclaimed ones.
void collect_accesses(const Bus& bus, std::string_view bus_name, std::vector<DeviceAccesses>& out);

[[nodiscard]] nlohmann::json metrics_json(const VmMetrics& metrics);
[[nodiscard]] std::string metrics_prometheus(const VmMetrics& metrics);

}  // namespace strata
