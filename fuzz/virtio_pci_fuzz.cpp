// libFuzzer target: the virtio-pci transport's registers as a hostile driver writes them, with a
// real device (virtio-rng) behind them working on rings the input lays out in guest memory.
//
// Input: the first 4 KiB are guest-physical page 0 (rings, descriptors; the rest of the 1 MiB of
// RAM is zero); what follows is a list of 12-byte operations:
//   u8 kind (mod 4: 0 BAR 4 write, 1 BAR 4 read, 2 configuration write, 3 configuration read),
//   u8 width (mod 4: 1, 2, 4 or 8 bytes), u16 offset (BAR 4: any; configuration: mod 256),
//   u64 value.
// A final device_status write of 0 resets the device, which waits until its loop has stopped.
// What is checked: no crash or sanitizer report (every guest address goes through GuestDma), and
// the transport's own promises: the status reads back 0 after a reset, a queue's MSI-X vector
// is one of the table's or NO_VECTOR.
#include <cstddef>
#include <cstdint>
#include <span>

#include "base/bytes.hpp"
#include "devices/virtio/virtio_pci.hpp"
#include "devices/virtio/virtio_rng.hpp"
#include "virtio_fuzz_support.hpp"

namespace {

using namespace strata;

constexpr size_t kPage = 4096;
constexpr size_t kOperation = 12;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::span<const uint8_t> input(data, size);
    GuestMemory& ram = fuzz::virtio_guest_memory();
    std::span<uint8_t> page = *ram.translate(0, kPage);
    std::ranges::fill(page, uint8_t{0});
    std::copy_n(input.begin(), std::min(kPage, input.size()), page.begin());
    input = input.size() > kPage ? input.subspan(kPage) : std::span<const uint8_t>();

    GuestDma dma(ram);
    fuzz::NullMsi msi;
    fuzz::NullLine line;
    auto created = VirtioPci::create(std::make_unique<VirtioRng>(), dma, msi);
    FUZZ_CHECK(created.has_value(), "VirtioPci::create failed");
    VirtioPci& pci = **created;
    pci.connect_intx(line);
    std::shared_ptr<BusDevice> bar = pci.bar_device(VirtioPci::kBar);

    std::array<uint8_t, 8> bytes{};
    for (; input.size() >= kOperation; input = input.subspan(kOperation)) {
        unsigned kind = input[0] % 4;
        size_t width = size_t{1} << (input[1] % 4);
        uint64_t offset = load_le(input.subspan(2, 2));
        auto value = std::span(bytes).first(width);
        store_le(value, load_le(input.subspan(4, 8)));
        switch (kind) {
            case 0: bar->write(offset, value); break;
            case 1: bar->read(offset, value); break;
            case 2: pci.config_write(offset % 256, value); break;
            default: pci.config_read(offset % 256, value); break;
        }
    }
    // The queue's vector is always a valid one or NO_VECTOR.
    std::array<uint8_t, 2> select{};
    bar->write(0x16, select);
    std::array<uint8_t, 2> vector{};
    bar->read(0x1a, vector);
    uint64_t v = load_le(vector);
    FUZZ_CHECK(v < 2 || v == VirtioPci::kNoVector, "queue vector {:#x} is neither a table entry nor NO_VECTOR", v);
    std::array<uint8_t, 1> zero{};
    bar->write(0x14, zero);
    FUZZ_CHECK(pci.status() == 0, "device_status is {:#x} after a reset", pci.status());
    return 0;
}
