// CPUID as both engines present it: a table of leaves that belongs to no engine, and Strata's
// policy over it. The kvm engine starts from what KVM can virtualize (KVM_GET_SUPPORTED_CPUID) and
// converts to and from this table; the soft engine will start from its own feature set and answer
// the guest's CPUID from the table with cpuid_lookup().
//
// Policy: coherent for one vCPU of an N-vCPU guest: APIC ids and topology (leaves 1, 4, 0xB, 0x1F
// and AMD's 0x80000008), the hypervisor bit, and nothing the VMM cannot back (no MONITOR/MWAIT in
// the guest's view). Spec: Intel SDM vol. 2A, "CPUID—CPU Identification".
#pragma once

#include <cstdint>
#include <vector>

namespace strata {

// One leaf: the registers CPUID returns for EAX = function (and ECX = index when `indexed`).
struct CpuidLeaf {
    uint32_t function = 0;
    uint32_t index = 0;
    bool indexed = false;  // ECX selects a subleaf (leaves 4, 7, 0xB, 0xD, 0x1F, ...)
    uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};
using CpuidTable = std::vector<CpuidLeaf>;

// What the host's KVM cannot do although its supported set claims it.
struct HostQuirks {
    // PVM emulates guest kernel mode with an instruction emulator that has no CMPXCHG16B
    // (KVM_EXIT_INTERNAL_ERROR at the first `lock cmpxchg16b`, which Linux's SLUB allocator
    // issues early in boot; QEMU -accel kvm stops at the same instruction). Hiding CPUID.1:ECX.CX16
    // makes guests take their fallback paths.
    bool no_cmpxchg16b = false;
    // The same emulator has no XRSTOR/XGETBV either, and Linux stops in its FPU set-up; but PVM
    // reports XSAVE in CPUID.1:ECX whatever the VMM sets, so there is no quirk for it here.
};

// Rewrites `table` for the vCPU with `apic_id` out of `cpus`.
// Topology: one package, `cpus` cores, one thread each.
void apply_cpuid_policy(CpuidTable& table, unsigned apic_id, unsigned cpus, HostQuirks quirks = {});

// What CPUID returns for EAX = `function`, ECX = `index` on a processor described by `table`
// (SDM vol. 2A, CPUID): the matching leaf; zeros for a leaf within range that the table lacks;
// and, as Intel processors do, the highest basic leaf for a function above the highest basic
// (leaf 0's EAX) or extended (leaf 0x80000000's EAX) function.
[[nodiscard]] CpuidLeaf cpuid_lookup(const CpuidTable& table, uint32_t function, uint32_t index);

}  // namespace strata
