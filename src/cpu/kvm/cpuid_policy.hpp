// Strata's CPUID policy: start from what KVM can virtualize (KVM_GET_SUPPORTED_CPUID) and make it
// coherent for one vCPU of an N-vCPU guest: APIC ids and topology (leaves 1, 4, 0xB, 0x1F and
// AMD's 0x80000008), the hypervisor bit, and nothing the VMM cannot back (no MONITOR/MWAIT in the
// guest's view, no PMU it does not virtualize). Intel SDM vol. 2A, CPUID.
#pragma once

#include <linux/kvm.h>

#include <vector>

namespace strata::kvm {

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

// Rewrites `entries` (KVM's supported set) for the vCPU with `apic_id` out of `cpus`.
// Topology: one package, `cpus` cores, one thread each.
void apply_cpuid_policy(std::vector<kvm_cpuid_entry2>& entries, unsigned apic_id, unsigned cpus,
                        HostQuirks quirks = {});

}  // namespace strata::kvm
