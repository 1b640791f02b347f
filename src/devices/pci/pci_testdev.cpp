#include "devices/pci/pci_testdev.hpp"

#include <algorithm>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include "base/bytes.hpp"
#include "devices/facet.hpp"

namespace strata {
namespace {

// Header layout (QEMU's PCITestDevHdr).
enum class Field : uint8_t { Test = 0, Width = 1, Offset = 4, Data = 8, Count = 12, Name = 16 };

constexpr unsigned kTestsPerKind = 3;
constexpr std::string_view kTestNames[kTestsPerKind] = {"no-eventfd", "wildcard-eventfd", "datamatch-eventfd"};
constexpr unsigned kWildcard = 1;
constexpr uint8_t kDataMatch = 0xfa;
constexpr uint8_t kNoMatch = 0xce;
// Where each kind's test writes land: just past the first half of the region.
constexpr uint32_t kMemoryTestBase = 2048;
constexpr uint32_t kIoTestBase = 128;

enum class Kind : unsigned { Memory = 0, Io = 1 };

}  // namespace

struct PciTestDev::Tests {
    void read_memory(uint64_t offset, std::span<uint8_t> data) { read(offset, data); }
    void read_io(uint64_t offset, std::span<uint8_t> data) { read(offset, data); }
    void write_memory(uint64_t offset, std::span<const uint8_t> data) { write(Kind::Memory, offset, data); }
    void write_io(uint64_t offset, std::span<const uint8_t> data) { write(Kind::Io, offset, data); }

    // Test number t (0-5): its kind, its position within the kind, where its writes go.
    static Kind kind_of(unsigned t) { return t < kTestsPerKind ? Kind::Memory : Kind::Io; }
    static unsigned variant_of(unsigned t) { return t % kTestsPerKind; }
    static uint32_t offset_of(unsigned t) { return (kind_of(t) == Kind::Memory ? kMemoryTestBase : kIoTestBase) + t; }
    static uint8_t data_of(unsigned t) { return variant_of(t) == kWildcard ? kNoMatch : kDataMatch; }

    std::vector<uint8_t> header(unsigned t) const {
        std::string_view kind = kind_of(t) == Kind::Memory ? "mmio" : "portio";
        std::string_view variant = kTestNames[variant_of(t)];
        std::vector<uint8_t> bytes(static_cast<size_t>(Field::Name) + kind.size() + 1 + variant.size() + 1, 0);
        bytes[static_cast<size_t>(Field::Test)] = static_cast<uint8_t>(t);
        bytes[static_cast<size_t>(Field::Width)] = 1;
        store_le(std::span(bytes).subspan(static_cast<size_t>(Field::Offset), 4), offset_of(t));
        bytes[static_cast<size_t>(Field::Data)] = data_of(t);
        store_le(std::span(bytes).subspan(static_cast<size_t>(Field::Count), 4), count);
        size_t at = static_cast<size_t>(Field::Name);
        for (char c : kind) bytes[at++] = static_cast<uint8_t>(c);
        bytes[at++] = '-';
        for (char c : variant) bytes[at++] = static_cast<uint8_t>(c);
        return bytes;
    }

    void read(uint64_t offset, std::span<uint8_t> data) {
        std::lock_guard lock(mutex);
        std::ranges::fill(data, uint8_t{0});
        if (!current) return;
        std::vector<uint8_t> bytes = header(*current);
        for (size_t i = 0; i < data.size(); ++i) {
            // QEMU returns 0 unless the byte lies before the header's last (NUL) byte.
            uint64_t at = offset + i;
            if (at + 1 < bytes.size()) data[i] = bytes[at];
        }
    }

    void write(Kind kind, uint64_t offset, std::span<const uint8_t> data) {
        std::lock_guard lock(mutex);
        for (size_t i = 0; i < data.size(); ++i) write_byte(kind, offset + i, data[i]);
    }

    void write_byte(Kind kind, uint64_t offset, uint8_t value) {
        if (offset == static_cast<uint64_t>(Field::Test)) {
            current.reset();
            if (value >= kTestsPerKind) return;
            current = static_cast<unsigned>(kind) * kTestsPerKind + value;
            count = 0;
            return;
        }
        if (!current || offset != offset_of(*current)) return;
        if (variant_of(*current) != kWildcard && value != data_of(*current)) return;
        ++count;
    }

    std::mutex mutex;
    std::optional<unsigned> current;
    uint32_t count = 0;
};

PciTestDev::PciTestDev()
    : PciDevice(kVendorRedHat, kDeviceTest, 0xff'00'00),  // class "other"
      tests_(std::make_shared<Tests>()),
      memory_region_(std::make_shared<Facet<Tests>>(tests_, &Tests::read_memory, &Tests::write_memory)),
      io_region_(std::make_shared<Facet<Tests>>(tests_, &Tests::read_io, &Tests::write_io)) {
    declare_bar(0, PciBarKind::Memory32, kMemoryBarSize);
    declare_bar(1, PciBarKind::Io, kIoBarSize);
    set_interrupt_pin(0);
}

void PciTestDev::save_state(StateWriter& out) const {
    PciDevice::save_state(out);
    std::lock_guard lock(tests_->mutex);
    out.boolean(tests_->current.has_value());
    out.u8(static_cast<uint8_t>(tests_->current.value_or(0)));
    out.u32(tests_->count);
}

std::function<Result<void>()> PciTestDev::load_state(StateReader& in) {
    auto pci = PciDevice::load_state(in);
    bool selected = in.boolean("test selected");
    uint8_t test = in.u8_at_most(2 * kTestsPerKind - 1, "selected test");
    uint32_t count = in.u32("test count");
    std::optional<unsigned> current;
    if (selected) current = test;
    return [this, pci, current, count]() -> Result<void> {
        if (auto r = pci(); !r) return r;
        std::lock_guard lock(tests_->mutex);
        tests_->current = current;
        tests_->count = count;
        return {};
    };
}

std::shared_ptr<BusDevice> PciTestDev::bar_device(unsigned index) const {
    if (index == 0) return memory_region_;
    if (index == 1) return io_region_;
    return nullptr;
}

}  // namespace strata
