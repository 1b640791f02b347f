#include "cpu/cpuid.hpp"

#include <bit>
#include <cstdint>

namespace strata {

namespace {

constexpr uint32_t kLeafMaxBasic = 0x0;
constexpr uint32_t kLeafFeatures = 0x1;
constexpr uint32_t kLeafMaxHypervisor = 0x4000'0000;
constexpr uint32_t kLeafHypervisorEnd = 0x5000'0000;  // 0x40000000-0x4fffffff: the hypervisor's
constexpr uint32_t kLeafMaxExtended = 0x8000'0000;
constexpr uint32_t kLeafCacheParams = 0x4;
constexpr uint32_t kLeafTopology = 0xb;
constexpr uint32_t kLeafTopologyV2 = 0x1f;
constexpr uint32_t kLeafAmdAddressSizes = 0x8000'0008;

constexpr uint32_t kEcxMonitor = 1u << 3;
constexpr uint32_t kEcxCmpxchg16b = 1u << 13;
constexpr uint32_t kEcxHypervisor = 1u << 31;
constexpr uint32_t kEdxHtt = 1u << 28;

// Bits needed to number `count` things.
uint32_t id_bits(unsigned count) { return count <= 1 ? 0 : static_cast<uint32_t>(std::bit_width(count - 1u)); }

void set_topology_level(CpuidLeaf& e, unsigned apic_id, unsigned cpus) {
    // Subleaf 0: SMT (one thread per core); subleaf 1: cores; higher: invalid.
    e.edx = apic_id;
    switch (e.index) {
        case 0:
            e.eax = 0;
            e.ebx = 1;
            e.ecx = (1u << 8) | 0;
            break;
        case 1:
            e.eax = id_bits(cpus);
            e.ebx = cpus;
            e.ecx = (2u << 8) | 1;
            break;
        default:
            e.eax = 0;
            e.ebx = 0;
            e.ecx = e.index & 0xff;
            break;
    }
}

}  // namespace

void apply_cpuid_policy(CpuidTable& table, unsigned apic_id, unsigned cpus, HostQuirks quirks) {
    for (auto& e : table) {
        switch (e.function) {
            case kLeafFeatures:
                // EBX[31:24] initial APIC id, EBX[23:16] addressable logical processors.
                e.ebx = (e.ebx & 0x0000'ffffu) | (apic_id << 24) | ((1u << id_bits(cpus)) << 16);
                e.ecx |= kEcxHypervisor;
                e.ecx &= ~kEcxMonitor;  // MWAIT would exit to a VMM that does not emulate it
                if (quirks.no_cmpxchg16b) e.ecx &= ~kEcxCmpxchg16b;
                if (cpus > 1) e.edx |= kEdxHtt;
                else e.edx &= ~kEdxHtt;
                break;
            case kLeafCacheParams:
                // EAX[31:26]: cores per package - 1; EAX[25:14]: threads sharing this cache - 1.
                if ((e.eax & 0x1f) != 0) {
                    uint32_t level = (e.eax >> 5) & 0x7;
                    uint32_t sharing = level >= 3 ? (1u << id_bits(cpus)) - 1 : 0;
                    e.eax = (e.eax & 0x3fffu) | (sharing << 14) | (((1u << id_bits(cpus)) - 1) << 26);
                }
                break;
            case kLeafTopology:
            case kLeafTopologyV2:
                set_topology_level(e, apic_id, cpus);
                break;
            case kLeafAmdAddressSizes:
                // ECX[7:0]: number of cores - 1; ECX[15:12]: APIC id bits.
                e.ecx = (e.ecx & ~0xf0ffu) | (id_bits(cpus) << 12) | ((cpus - 1) & 0xff);
                break;
            default:
                break;
        }
    }
}

CpuidLeaf cpuid_lookup(const CpuidTable& table, uint32_t function, uint32_t index) {
    auto find = [&](uint32_t wanted, uint32_t subleaf) -> const CpuidLeaf* {
        for (const auto& leaf : table)
            if (leaf.function == wanted && (!leaf.indexed || leaf.index == subleaf)) return &leaf;
        return nullptr;
    };
    // The highest function of a range is what the range's first leaf reports in EAX.
    auto highest = [&](uint32_t range_start) {
        const CpuidLeaf* leaf = find(range_start, 0);
        return leaf ? leaf->eax : range_start;
    };

    const CpuidLeaf* leaf = nullptr;
    if (function >= kLeafMaxHypervisor && function < kLeafHypervisorEnd) {
        leaf = find(function, index);  // the hypervisor's own leaves: there or zero
    } else {
        uint32_t range_start = function >= kLeafMaxExtended ? kLeafMaxExtended : kLeafMaxBasic;
        uint32_t answered = function > highest(range_start) ? highest(kLeafMaxBasic) : function;
        leaf = find(answered, index);
    }
    CpuidLeaf answer = leaf ? *leaf : CpuidLeaf{};
    answer.function = function;
    answer.index = index;
    return answer;
}

}  // namespace strata
