// libFuzzer target: virtio-net's transmit and receive paths under a hostile driver, through the
// virtio-pci transport, with a back end that checks what reaches it and injects frames.
//
// Input: the first 8 KiB are guest-physical [0, 0x2000): receiveq's descriptor table at 0x000,
// available ring at 0x200, used ring at 0x400; transmitq's at 0x800, 0xa00 and 0xc00 (16 entries
// each); buffers anywhere (the rest of the 1 MiB of RAM is zero). Then one byte of features (bit 0
// CSUM, bit 1 EVENT_IDX, bit 2 INDIRECT_DESC, bit 3 MRG_RXBUF, bit 4 GUEST_CSUM; VERSION_1, MAC and
// STATUS always), then operations
// of 3 bytes: u8 kind (mod 4: 0 notify transmitq, 1 notify receiveq, 2 a frame from the back end of
// the u16 length that follows mod 2048, 3 reset and start the driver again), u16 argument.
// What is checked: no crash or sanitizer report (every guest access goes through GuestDma), every
// frame the back end gets is an Ethernet frame of 14 to 65550 bytes, the device_status reads back
// 0 after a reset.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

#include "base/bytes.hpp"
#include "devices/virtio/virtio_net.hpp"
#include "devices/virtio/virtio_pci.hpp"
#include "virtio_fuzz_support.hpp"

namespace {

using namespace strata;

class CheckingBackend final : public NetBackend {
public:
    std::string_view name() const override { return "fuzz"; }
    // As slirp: an MTU and frames whose checksums need no check, so GUEST_CSUM can be taken.
    uint16_t mtu() const override { return 65520; }
    bool checksums_verified() const override { return true; }
    Result<void> start(EventLoop& loop, Receiver& receiver) override {
        receiver_ = &receiver;
        loop_.store(&loop);
        return {};
    }
    void stop() override { receiver_ = nullptr; }
    bool send(std::span<const uint8_t> frame) override {
        FUZZ_CHECK(frame.size() >= kEthernetHeaderSize && frame.size() <= kMaxFrameSize,
                   "a {}-byte frame reached the back end", frame.size());
        return true;
    }
    // A frame of `length` bytes for the guest, on the device's loop (nothing before the first start).
    void inject(size_t length) {
        if (EventLoop* loop = loop_.load())
            loop->run_sync([&] {
                if (receiver_) receiver_->receive(fuzz::pattern_bytes(length));
            });
    }
    // Waits until the device's loop has done what it was given (once the device has started).
    void sync() {
        if (EventLoop* loop = loop_.load()) loop->run_sync([] {});
    }

private:
    std::atomic<EventLoop*> loop_{nullptr};  // the device's, from its first start on
    Receiver* receiver_ = nullptr;           // the loop's
};

constexpr size_t kRings = 0x2000;
constexpr uint16_t kQueueSize = 16;

void write_register(BusDevice& bar, uint64_t offset, uint64_t value, size_t width) {
    std::array<uint8_t, 8> bytes{};
    store_le(std::span(bytes).first(width), value);
    bar.write(offset, std::span<const uint8_t>(bytes).first(width));
}

// What Linux's driver does up to DRIVER_OK (virtio 1.2 §3.1.1), both queues at their fixed places.
void start_driver(BusDevice& bar, uint64_t features) {
    write_register(bar, 0x14, 0, 1);
    write_register(bar, 0x14, 1, 1);
    write_register(bar, 0x14, 3, 1);
    for (uint32_t half = 0; half < 2; ++half) {
        write_register(bar, 0x08, half, 4);
        write_register(bar, 0x0c, static_cast<uint32_t>(features >> (32 * half)), 4);
    }
    write_register(bar, 0x14, 11, 1);
    for (uint16_t queue = 0; queue < 2; ++queue) {
        uint64_t base = 0x800 * uint64_t{queue};
        write_register(bar, 0x16, queue, 2);
        write_register(bar, 0x18, kQueueSize, 2);
        write_register(bar, 0x20, base, 8);
        write_register(bar, 0x28, base + 0x200, 8);
        write_register(bar, 0x30, base + 0x400, 8);
        write_register(bar, 0x1c, 1, 2);
    }
    write_register(bar, 0x14, 15, 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::span<const uint8_t> input(data, size);
    GuestMemory& ram = fuzz::virtio_guest_memory();
    // All of RAM afresh: the device writes received frames wherever the input's buffers point.
    std::ranges::fill(*ram.translate(0, ram.ram_size()), uint8_t{0});
    std::span<uint8_t> rings = *ram.translate(0, kRings);
    std::copy_n(input.begin(), std::min(kRings, input.size()), rings.begin());
    input = input.size() > kRings ? input.subspan(kRings) : std::span<const uint8_t>();
    uint8_t choice = input.empty() ? 0 : input[0];
    if (!input.empty()) input = input.subspan(1);
    uint64_t features = uint64_t{1} << 32 | uint64_t{1} << VirtioNet::kFeatureMac | uint64_t{1} << VirtioNet::kFeatureStatus;
    if (choice & 1) features |= uint64_t{1} << VirtioNet::kFeatureCsum;
    if (choice & 2) features |= virtio::feature_mask(virtio::Feature::EventIdx);
    if (choice & 4) features |= virtio::feature_mask(virtio::Feature::IndirectDesc);
    if (choice & 8) features |= uint64_t{1} << VirtioNet::kFeatureMrgRxbuf;
    if (choice & 16) features |= uint64_t{1} << VirtioNet::kFeatureGuestCsum;

    GuestDma dma(ram);
    fuzz::NullMsi msi;
    fuzz::NullLine line;
    auto backend = std::make_unique<CheckingBackend>();
    CheckingBackend* fake = backend.get();
    auto created = VirtioPci::create(std::make_unique<VirtioNet>(std::move(backend)), dma, msi);
    FUZZ_CHECK(created.has_value(), "VirtioPci::create failed");
    VirtioPci& pci = **created;
    pci.connect_intx(line);
    std::shared_ptr<BusDevice> bar = pci.bar_device(VirtioPci::kBar);
    start_driver(*bar, features);
    // DRIVER_OK is handled on the device's loop; a frame is injected only once it has started.
    for (; input.size() >= 3; input = input.subspan(3)) {
        auto argument = static_cast<uint16_t>(load_le(input.subspan(1, 2)));
        switch (input[0] % 4) {
            case 0: write_register(*bar, VirtioPci::kNotifyOffset + VirtioPci::kNotifyMultiplier, 1, 2); break;
            case 1: write_register(*bar, VirtioPci::kNotifyOffset, 0, 2); break;
            case 2: fake->inject(argument % 2048); break;
            default: start_driver(*bar, features); break;
        }
        fake->sync();
    }
    write_register(*bar, 0x14, 0, 1);
    FUZZ_CHECK(pci.status() == 0, "device_status is {:#x} after a reset", pci.status());
    return 0;
}
