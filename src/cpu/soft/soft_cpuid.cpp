#include "cpu/soft/soft_cpuid.hpp"

#include <cstring>
#include <string_view>

namespace strata::soft {

namespace {

constexpr uint32_t kMaxBasicLeaf = 0x1f;
constexpr uint32_t kMaxExtendedLeaf = 0x8000'0008;
constexpr uint32_t kFirstHypervisorLeaf = 0x4000'0000;

// Leaf 1 EAX: family 6, model 0x9f (extended model 9), stepping 0. A model number no Linux
// quirk list names, so that no model-specific MSR is expected of this CPU.
constexpr uint32_t kSignature = (9u << 16) | (6u << 8) | (0xfu << 4) | 0;
constexpr uint32_t kClflushLineQwords = 8;  // EBX[15:8]: CLFLUSH line size in 8-byte units (64 bytes)

namespace leaf1 {
constexpr uint32_t EcxSse3 = 1u << 0, EcxSsse3 = 1u << 9, EcxCx16 = 1u << 13, EcxSse41 = 1u << 19,
                   EcxSse42 = 1u << 20, EcxX2apic = 1u << 21, EcxPopcnt = 1u << 23, EcxTscDeadline = 1u << 24;
constexpr uint32_t EdxFpu = 1u << 0, EdxDe = 1u << 2, EdxPse = 1u << 3, EdxTsc = 1u << 4, EdxMsr = 1u << 5,
                   EdxPae = 1u << 6, EdxCx8 = 1u << 8, EdxApic = cpuid_bit::Leaf1EdxApic, EdxSep = 1u << 11,
                   EdxMtrr = 1u << 12, EdxPge = 1u << 13, EdxCmov = 1u << 15, EdxPat = 1u << 16,
                   EdxPse36 = 1u << 17, EdxClflush = 1u << 19, EdxMmx = 1u << 23, EdxFxsr = 1u << 24,
                   EdxSse = 1u << 25, EdxSse2 = 1u << 26, EdxSelfSnoop = 1u << 27;
}  // namespace leaf1
namespace leaf7 {
constexpr uint32_t EbxErms = 1u << 9, EdxArchCapabilities = 1u << 29;
}
namespace ext1 {
constexpr uint32_t EcxLahfLm = 1u << 0, EcxAbm = 1u << 5;
constexpr uint32_t EdxSyscall = 1u << 11, EdxNx = 1u << 20, EdxRdtscp = 1u << 27, EdxLm = 1u << 29;
}  // namespace ext1

constexpr uint32_t kLeaf1Ecx = leaf1::EcxSse3 | leaf1::EcxSsse3 | leaf1::EcxCx16 | leaf1::EcxSse41 | leaf1::EcxSse42 |
                               leaf1::EcxX2apic | leaf1::EcxPopcnt | leaf1::EcxTscDeadline;
constexpr uint32_t kLeaf1Edx = leaf1::EdxFpu | leaf1::EdxDe | leaf1::EdxPse | leaf1::EdxTsc | leaf1::EdxMsr |
                               leaf1::EdxPae | leaf1::EdxCx8 | leaf1::EdxApic | leaf1::EdxSep | leaf1::EdxMtrr |
                               leaf1::EdxPge | leaf1::EdxCmov | leaf1::EdxPat | leaf1::EdxPse36 | leaf1::EdxClflush |
                               leaf1::EdxMmx | leaf1::EdxFxsr | leaf1::EdxSse | leaf1::EdxSse2 | leaf1::EdxSelfSnoop;

// CR4 bits (SDM vol. 3A §2.5) and the features that make them legal.
namespace cr4_bit {
constexpr uint64_t TSD = 1u << 2, DE = 1u << 3, PSE = 1u << 4, PAE = 1u << 5, PGE = 1u << 7, PCE = 1u << 8,
                   OSFXSR = 1u << 9, OSXMMEXCPT = 1u << 10;
}

// IA32_MISC_ENABLE bit 22: "limit CPUID maxval" to 2 (SDM vol. 4 table 2-2).
constexpr uint64_t kMiscEnableLimitCpuid = 1ull << 22;

uint32_t chars(std::string_view four) {
    uint32_t v = 0;
    std::memcpy(&v, four.data(), 4);
    return v;
}

// A cache of leaf 4 (SDM vol. 2A table 3-8): type (1 data, 2 instruction, 3 unified), level,
// ways, sets, 64-byte lines; self-initializing. The policy fills in the sharing fields.
CpuidLeaf cache(uint32_t index, uint32_t type, uint32_t level, uint32_t ways, uint32_t sets, bool inclusive) {
    return {.function = 4, .index = index, .indexed = true,
            .eax = type | (level << 5) | (1u << 8),
            .ebx = (ways - 1) << 22 | (64 - 1),
            .ecx = sets - 1,
            .edx = inclusive ? 2u : 0u};
}

}  // namespace

CpuidTable soft_cpuid_table(unsigned apic_id, unsigned cpus) {
    CpuidTable t;
    t.push_back({.function = 0, .eax = kMaxBasicLeaf, .ebx = chars("Genu"), .ecx = chars("ntel"), .edx = chars("ineI")});
    t.push_back({.function = 1, .eax = kSignature, .ebx = kClflushLineQwords << 8, .ecx = kLeaf1Ecx, .edx = kLeaf1Edx});
    // Leaf 2: one round, descriptor 0xff ("no cache descriptors here: use leaf 4").
    t.push_back({.function = 2, .eax = 0x0000'ff01});
    t.push_back(cache(0, 1, 1, 8, 64, false));       // L1d: 32 KiB, 8-way
    t.push_back(cache(1, 2, 1, 8, 64, false));       // L1i: 32 KiB, 8-way
    t.push_back(cache(2, 3, 2, 16, 1024, false));    // L2: 1 MiB, 16-way
    t.push_back(cache(3, 3, 3, 16, 16384, true));    // L3: 16 MiB, 16-way, inclusive
    t.push_back({.function = 4, .index = 4, .indexed = true});  // no more caches
    t.push_back({.function = 6, .eax = 1u << 2});    // ARAT: the APIC timer runs in every C-state
    t.push_back({.function = 7, .index = 0, .indexed = true, .ebx = leaf7::EbxErms, .edx = leaf7::EdxArchCapabilities});
    for (uint32_t function : {0xbu, 0x1fu})
        for (uint32_t level = 0; level < 3; ++level) t.push_back({.function = function, .index = level, .indexed = true});
    // The TSC and the APIC timer's clock: a 1 GHz crystal, TSC = crystal * 1 / 1 (SDM vol. 3B §18.7.3).
    t.push_back({.function = 0x15, .eax = 1, .ebx = 1, .ecx = 1'000'000'000});
    t.push_back({.function = 0x16, .eax = 1000, .ebx = 1000, .ecx = 100});  // base, maximum, bus MHz

    t.push_back({.function = 0x8000'0000, .eax = kMaxExtendedLeaf});
    t.push_back({.function = 0x8000'0001, .ecx = ext1::EcxLahfLm | ext1::EcxAbm,
                 .edx = ext1::EdxSyscall | ext1::EdxNx | ext1::EdxRdtscp | ext1::EdxLm});
    char brand[48] = "Strata soft CPU";
    for (uint32_t i = 0; i < 3; ++i) {
        uint32_t r[4];
        std::memcpy(r, brand + 16 * i, 16);
        t.push_back({.function = 0x8000'0002 + i, .eax = r[0], .ebx = r[1], .ecx = r[2], .edx = r[3]});
    }
    t.push_back({.function = 0x8000'0006, .ecx = (1024u << 16) | (0x8u << 12) | 64});  // L2: 1 MiB, 16-way
    t.push_back({.function = 0x8000'0007, .edx = 1u << 8});                        // invariant TSC
    t.push_back({.function = 0x8000'0008, .eax = 40 | (48u << 8)});                // physical, linear bits
    apply_cpuid_policy(t, apic_id, cpus);
    return t;
}

uint64_t soft_cr4_allowed() {
    using namespace cr4_bit;
    // PCE needs no CPUID bit; the others follow leaf 1 EDX (TSD: TSC, DE, PSE, PAE, PGE, FXSR, SSE).
    return TSD | DE | PSE | PAE | PGE | PCE | OSFXSR | OSXMMEXCPT;
}

CpuidLeaf soft_cpuid(const Cpu& cpu, uint32_t function, uint32_t index) {
    static const CpuidTable kSingleCpu = soft_cpuid_table(0, 1);
    const CpuidTable& table = cpu.cpuid ? *cpu.cpuid : kSingleCpu;
    bool limited = (cpu.msr.misc_enable & kMiscEnableLimitCpuid) != 0;
    uint32_t asked = function;
    if (limited && function > 2 && function < kFirstHypervisorLeaf) function = 2;
    CpuidLeaf leaf = cpuid_lookup(table, function, index);
    leaf.function = asked;
    if (asked == 0 && limited) leaf.eax = 2;
    // CPUID.1:EDX.APIC follows IA32_APIC_BASE.EN (SDM vol. 3A §11.4.3).
    if (asked == 1 && !(cpu.msr.apic_base & (1u << 11))) leaf.edx &= ~cpuid_bit::Leaf1EdxApic;
    return leaf;
}

}  // namespace strata::soft
