#include "devices/test/pc_testdev.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <mutex>
#include <vector>

#include "base/bytes.hpp"
#include "base/checked.hpp"
#include "devices/facet.hpp"

namespace strata {
namespace {

// Offsets in the ports() window (port 0xe0 + offset).
enum class Port : uint8_t {
    Scratch32 = 0x0,  // 0xe0-0xe3
    FlushPage = 0x4,  // 0xe4-0xe7
    Scratch8 = 0x8,   // 0xe8
};

constexpr uint64_t kPageSize = 4096;

}  // namespace

struct PcTestDev::Core {
    Core(const GuestMemory& memory_in, std::array<IrqLine*, 24> lines_in)
        : memory(memory_in), lines(lines_in), scratch_memory(kMmioWindowSize) {}

    void read_ports(uint64_t offset, std::span<uint8_t> data);
    void write_ports(uint64_t offset, std::span<const uint8_t> data);
    void read_irq(uint64_t offset, std::span<uint8_t> data);
    void write_irq(uint64_t offset, std::span<const uint8_t> data);
    void read_mmio(uint64_t offset, std::span<uint8_t> data);
    void write_mmio(uint64_t offset, std::span<const uint8_t> data);
    void flush_page(uint64_t gpa) const;

    const GuestMemory& memory;
    std::array<IrqLine*, 24> lines;
    std::mutex mutex;
    uint32_t scratch32 = 0;
    uint8_t scratch8 = 0;
    std::vector<uint8_t> scratch_memory;
    std::array<bool, 24> levels{};  // as last written, so that a snapshot keeps raised lines up
};

PcTestDev::PcTestDev(const GuestMemory& memory, std::array<IrqLine*, 24> lines)
    : core_(std::make_shared<Core>(memory, lines)),
      ports_(std::make_shared<Facet<Core>>(core_, &Core::read_ports, &Core::write_ports)),
      irq_ports_(std::make_shared<Facet<Core>>(core_, &Core::read_irq, &Core::write_irq)),
      mmio_(std::make_shared<Facet<Core>>(core_, &Core::read_mmio, &Core::write_mmio)) {}

void PcTestDev::Core::read_ports(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex);
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t at = offset + i;
        if (at < static_cast<uint64_t>(Port::FlushPage))
            data[i] = static_cast<uint8_t>(scratch32 >> (8 * at));  // byte lane `at` of the dword
        else if (at == static_cast<uint64_t>(Port::Scratch8))
            data[i] = scratch8;
        else
            data[i] = 0xff;
    }
}

void PcTestDev::Core::write_ports(uint64_t offset, std::span<const uint8_t> data) {
    if (offset == static_cast<uint64_t>(Port::FlushPage)) {
        flush_page(load_le(data.first(std::min<size_t>(data.size(), 8))));
        return;
    }
    std::lock_guard lock(mutex);
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t at = offset + i;
        if (at < static_cast<uint64_t>(Port::FlushPage)) {
            unsigned shift = static_cast<unsigned>(8 * at);
            scratch32 = (scratch32 & ~(0xffu << shift)) | (uint32_t{data[i]} << shift);
        } else if (at == static_cast<uint64_t>(Port::Scratch8)) {
            scratch8 = data[i];
        }
    }
}

void PcTestDev::Core::flush_page(uint64_t gpa) const {
    auto page = memory.translate(gpa & ~(kPageSize - 1), kPageSize);
    if (!page) return;  // not RAM: nothing to flush
    void* host = page->data();
    if (reinterpret_cast<uintptr_t>(host) % kPageSize != 0) return;
    // Dropping the host's page-table entry makes the kernel invalidate the page in KVM's MMU too
    // (through the MMU notifier), so the guest's next access faults and is mapped afresh. Guest RAM
    // is a shared memfd mapping: its contents stay in the memfd and come back on that fault.
    madvise(host, kPageSize, MADV_DONTNEED);
}

void PcTestDev::Core::read_irq(uint64_t /*offset*/, std::span<uint8_t> data) { std::ranges::fill(data, uint8_t{0}); }

void PcTestDev::Core::write_irq(uint64_t offset, std::span<const uint8_t> data) {
    std::lock_guard lock(mutex);
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t line = offset + i;
        if (line >= lines.size() || lines[line] == nullptr) continue;
        levels[line] = data[i] != 0;
        lines[line]->set_level(levels[line]);
    }
}

void PcTestDev::Core::read_mmio(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex);
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t at = offset + i;
        data[i] = at < scratch_memory.size() ? scratch_memory[at] : uint8_t{0xff};
    }
}

void PcTestDev::Core::write_mmio(uint64_t offset, std::span<const uint8_t> data) {
    std::lock_guard lock(mutex);
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t at = offset + i;
        if (at < scratch_memory.size()) scratch_memory[at] = data[i];
    }
}

void PcTestDev::State::encode(StateWriter& out) const {
    out.u32(scratch32);
    out.u8(scratch8);
    out.bytes(scratch_memory);
    for (bool level : levels) out.boolean(level);
}

PcTestDev::State PcTestDev::State::decode(StateReader& in) {
    State s;
    s.scratch32 = in.u32("32-bit scratch register");
    s.scratch8 = in.u8("byte scratch register");
    s.scratch_memory.resize(kMmioWindowSize);
    in.bytes(s.scratch_memory, "scratch memory");
    for (bool& level : s.levels) level = in.boolean("IRQ line level");
    return s;
}

PcTestDev::State PcTestDev::state() const {
    std::lock_guard lock(core_->mutex);
    return {.scratch32 = core_->scratch32, .scratch8 = core_->scratch8, .scratch_memory = core_->scratch_memory,
            .levels = core_->levels};
}

Result<void> PcTestDev::set_state(const State& s) {
    if (s.scratch_memory.size() != kMmioWindowSize)
        return fail("scratch memory is {} bytes, not {}", s.scratch_memory.size(), kMmioWindowSize);
    std::lock_guard lock(core_->mutex);
    core_->scratch32 = s.scratch32;
    core_->scratch8 = s.scratch8;
    core_->scratch_memory = s.scratch_memory;
    core_->levels = s.levels;
    // Lines the guest left up are driven up again (the interrupt controllers have them up).
    for (size_t line = 0; line < s.levels.size(); ++line)
        if (s.levels[line] && core_->lines[line]) core_->lines[line]->set_level(true);
    return {};
}

}  // namespace strata
