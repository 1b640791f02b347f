#include "cpu/kvm/xsave_area.hpp"

#include <algorithm>

#include "base/bytes.hpp"
#include "base/error.hpp"

namespace strata::kvm::xsave {

namespace {

// Offsets in the legacy region, 64-bit layout (SDM vol. 1 §10.5.1, table 10-2), and of XSTATE_BV
// in the header (§13.4.2).
enum class Field : size_t {
    Fcw = 0,         // 2 bytes
    Fsw = 2,         // 2
    Ftw = 4,         // 1: abridged, one valid bit per register
    Fop = 6,         // 2
    Fip = 8,         // 8
    Fdp = 16,        // 8
    Mxcsr = 24,      // 4 (MXCSR_MASK, at 28, is the processor's and is left alone)
    St0 = 32,        // 8 registers of 16 bytes (80 bits used)
    Xmm0 = 160,      // 16 registers of 16 bytes
    XstateBv = 512,  // 8
};
constexpr size_t kRegisterSize = 16;

constexpr size_t at(Field field) { return static_cast<size_t>(field); }

uint64_t load(std::span<const uint8_t> area, Field field, size_t size) {
    return load_le(area.subspan(at(field), size));
}

void store(std::span<uint8_t> area, Field field, size_t size, uint64_t value) {
    store_le(area.subspan(at(field), size), value);
}

void check_size(size_t size) {
    if (size < kLegacyAndHeaderSize)
        panic(fmt::format("XSAVE area of {} bytes, smaller than its legacy region and header ({})", size,
                          kLegacyAndHeaderSize));
}

}  // namespace

FpuState read_fpu(std::span<const uint8_t> area) {
    check_size(area.size());
    uint64_t present = load(area, Field::XstateBv, 8);
    FpuState fpu;  // the initial configuration of both components (SDM vol. 1 §13.6)
    if (present & kX87) {
        fpu.fcw = static_cast<uint16_t>(load(area, Field::Fcw, 2));
        fpu.fsw = static_cast<uint16_t>(load(area, Field::Fsw, 2));
        fpu.ftw_abridged = area[at(Field::Ftw)];
        fpu.fop = static_cast<uint16_t>(load(area, Field::Fop, 2));
        fpu.fip = load(area, Field::Fip, 8);
        fpu.fdp = load(area, Field::Fdp, 8);
        for (size_t i = 0; i < fpu.st.size(); ++i)
            std::copy_n(area.begin() + static_cast<std::ptrdiff_t>(at(Field::St0) + kRegisterSize * i), kRegisterSize,
                        fpu.st[i].begin());
    }
    if (present & kSse)
        for (size_t i = 0; i < fpu.xmm.size(); ++i)
            std::copy_n(area.begin() + static_cast<std::ptrdiff_t>(at(Field::Xmm0) + kRegisterSize * i), kRegisterSize,
                        fpu.xmm[i].begin());
    fpu.mxcsr = static_cast<uint32_t>(load(area, Field::Mxcsr, 4));
    return fpu;
}

void write_fpu(const FpuState& fpu, std::span<uint8_t> area) {
    check_size(area.size());
    store(area, Field::Fcw, 2, fpu.fcw);
    store(area, Field::Fsw, 2, fpu.fsw);
    area[at(Field::Ftw)] = fpu.ftw_abridged;
    store(area, Field::Fop, 2, fpu.fop);
    store(area, Field::Fip, 8, fpu.fip);
    store(area, Field::Fdp, 8, fpu.fdp);
    store(area, Field::Mxcsr, 4, fpu.mxcsr);
    for (size_t i = 0; i < fpu.st.size(); ++i)
        std::ranges::copy(fpu.st[i], area.begin() + static_cast<std::ptrdiff_t>(at(Field::St0) + kRegisterSize * i));
    for (size_t i = 0; i < fpu.xmm.size(); ++i)
        std::ranges::copy(fpu.xmm[i], area.begin() + static_cast<std::ptrdiff_t>(at(Field::Xmm0) + kRegisterSize * i));
    // Present, so that XRSTOR loads these registers rather than the initial configuration (§13.8.1).
    store(area, Field::XstateBv, 8, load(area, Field::XstateBv, 8) | kX87 | kSse);
}

}  // namespace strata::kvm::xsave
