// Small helpers for KVM's file-descriptor ioctl API (Documentation/virt/kvm/api.rst).
#pragma once

#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "base/fd.hpp"
#include "cpu/cpuid.hpp"

namespace strata::kvm {

// <linux/kvm.h> ends kvm_irq_routing, kvm_cpuid2, kvm_msrs and kvm_xsave with
// __DECLARE_FLEX_ARRAY, which in C++ puts the array behind an empty struct: `entries` moves to
// offset 12 or 16 and sizeof grows, while the kernel expects the C layout (a u32 count, a u32 of
// flags or padding, the entries at offset 8; kvm_xsave's 4096-byte region). The ioctl numbers
// encode the C size too, so both are spelled out here.
constexpr unsigned long kSetGsiRouting = _IOC(_IOC_WRITE, KVMIO, 0x6a, 8);
constexpr unsigned long kGetSupportedCpuid = _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x05, 8);
constexpr unsigned long kSetCpuid2 = _IOC(_IOC_WRITE, KVMIO, 0x90, 8);
constexpr unsigned long kSetMsrs = _IOC(_IOC_WRITE, KVMIO, 0x89, 8);
constexpr unsigned long kGetMsrs = _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x88, 8);
constexpr unsigned long kGetXsave = _IOC(_IOC_READ, KVMIO, 0xa4, 4096);
constexpr unsigned long kSetXsave = _IOC(_IOC_WRITE, KVMIO, 0xa5, 4096);
// With KVM_CAP_XSAVE2: as many bytes as KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2) on the VM fd says.
constexpr unsigned long kGetXsave2 = _IOC(_IOC_READ, KVMIO, 0xcf, 4096);

// A kernel struct of the form { u32 count; u32 pad; Entry entries[]; } in its C layout.
template <class Entry>
class FlexArray {
public:
    explicit FlexArray(size_t capacity) : bytes_(kHeader + capacity * sizeof(Entry)) {
        set_count(static_cast<uint32_t>(capacity));
    }
    [[nodiscard]] void* get() { return bytes_.data(); }
    [[nodiscard]] uint32_t count() const {
        uint32_t n;
        std::memcpy(&n, bytes_.data(), sizeof(n));
        return n;
    }
    void set_count(uint32_t n) { std::memcpy(bytes_.data(), &n, sizeof(n)); }
    [[nodiscard]] Entry* entries() { return reinterpret_cast<Entry*>(bytes_.data() + kHeader); }

private:
    static constexpr size_t kHeader = 8;
    std::vector<uint8_t> bytes_;
};

// KVM's CPUID entries and the engine-neutral table (cpu/cpuid.hpp). Only the significant-index
// flag means anything to KVM_SET_CPUID2; the others are obsolete.
inline CpuidLeaf from_kvm_cpuid(const kvm_cpuid_entry2& e) {
    return {.function = e.function, .index = e.index, .indexed = (e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) != 0,
            .eax = e.eax, .ebx = e.ebx, .ecx = e.ecx, .edx = e.edx};
}

inline kvm_cpuid_entry2 to_kvm_cpuid(const CpuidLeaf& leaf) {
    kvm_cpuid_entry2 e{};
    e.function = leaf.function;
    e.index = leaf.index;
    e.flags = leaf.indexed ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0;
    e.eax = leaf.eax;
    e.ebx = leaf.ebx;
    e.ecx = leaf.ecx;
    e.edx = leaf.edx;
    return e;
}

// ioctl that retries on EINTR where the call is not one that should be interrupted.
template <class... Args>
int ioctl_retry(int fd, unsigned long request, Args... args) {
    int result;
    do {
        result = ::ioctl(fd, request, args...);
    } while (result < 0 && errno == EINTR);
    return result;
}

}  // namespace strata::kvm
