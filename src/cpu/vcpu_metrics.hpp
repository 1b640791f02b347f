// What each vCPU has done, for the control API's metrics: read at any moment from any thread,
// while the vCPU runs. Engines keep the counts in atomics their vCPU thread alone writes
// (relaxed: a count may trail by a slice, never tear).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace strata {

struct VcpuMetrics {
    unsigned index = 0;
    // kvm: the exits to Strata by KVM exit reason ("io", "mmio", "intr", ...); soft: the events
    // the engine emulated outside guest code ("halt").
    std::vector<std::pair<std::string, uint64_t>> exits;
    // Time spent halted, where the engine sees it (the soft engine; KVM halts in the kernel).
    std::optional<uint64_t> halted_ns;
    // The soft engine's interpreter.
    struct Soft {
        uint64_t instructions = 0;       // retired
        uint64_t blocks_run = 0;
        uint64_t blocks_decoded = 0;     // block-cache misses: blocks built from guest code
        uint64_t jump_cache_misses = 0;  // next blocks found through the TLB and block hash
        uint64_t tlb_flushes = 0;
    };
    std::optional<Soft> soft;
};

// A count one thread bumps and any thread reads.
class RelaxedCounter {
public:
    void add(uint64_t n = 1) { value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    void set(uint64_t n) { value_.store(n, std::memory_order_relaxed); }
    [[nodiscard]] uint64_t get() const { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<uint64_t> value_{0};
};

}  // namespace strata
