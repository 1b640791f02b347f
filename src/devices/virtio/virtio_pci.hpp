// The virtio-pci transport, modern (virtio 1.x) only: a PCI function that carries one virtio
// device type.
//
// State:    feature selects and the driver's features, device status, the config MSI-X vector,
//           per queue its size, MSI-X vector, enable and ring addresses (and its Virtqueue on
//           the device's loop), the ISR status; the MSI-X table.
// Features: vendor 0x1af4, device 0x1040 + type, revision 1 (§4.1.2.1); BAR 4 is one 64-bit
//           prefetchable memory region with the common configuration (0x0000), ISR status
//           (0x1000), device configuration (0x2000), notifications (0x3000, one 4-byte slot a
//           queue: queue_notify_off = index, multiplier 4) and the MSI-X table (0x4000) and PBA
//           (0x5000); the capability list has MSI-X and the five virtio structures, the PCI
//           configuration access one (VIRTIO_PCI_CAP_PCI_CFG) working as a window into BAR 4.
//           Feature negotiation: FEATURES_OK sticks only if the driver took a subset of what is
//           offered and VERSION_1 (§2.2, §3.1.1); a write of 0 to device_status resets the device
//           and returns when the reset is done (§4.1.4.3.2); queue_size takes any power of two
//           up to the maximum; queue and config MSI-X vectors past the table read back
//           NO_VECTOR (§4.1.5.1.2). Queues are checked at DRIVER_OK (a bad one: NEEDS_RESET);
//           notifications before DRIVER_OK or after an error are dropped (the device consumes no
//           buffer before DRIVER_OK, §3.1.1) and at DRIVER_OK every queue is looked at once.
//           Interrupts: the queue's or config's MSI-X vector while MSI-X is enabled, else INTA#
//           with the ISR bits (read-to-clear, §4.1.4.5). Device work runs on one event-loop thread
//           per device; a notification is an eventfd write the loop waits on.
//           Under the kvm engine each queue's notification slot is also a KVM ioeventfd on the
//           same eventfd (16-bit writes, what Linux's driver does), moved with BAR 4; other
//           widths take the MMIO exit to the same eventfd. Snapshots: quiesce() finishes the
//           device's work and holds its loop; save_state()/load_state() carry the registers, the
//           queues' positions and the device type's state, and a restore re-activates a device
//           that was running.
// Missing:  legacy and transitional interfaces; packed rings;
//           VIRTIO_F_RING_RESET, NOTIFICATION_DATA.
// Spec:     virtio 1.2 §4.1 (Virtio Over PCI Bus), §2.1 (status), §3.1 (initialization).
#pragma once

#include <array>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "base/fd.hpp"
#include "bus/io_event.hpp"
#include "bus/msi.hpp"
#include "devices/pci/msix.hpp"
#include "devices/pci/pci_device.hpp"
#include "devices/virtio/virtio_device.hpp"

namespace strata {

class VirtioPci final : public PciDevice, private VirtioContext {
public:
    static constexpr unsigned kBar = 4;
    static constexpr uint64_t kBarSize = 0x8000;
    static constexpr uint64_t kCommonOffset = 0x0000;
    static constexpr uint64_t kIsrOffset = 0x1000;
    static constexpr uint64_t kDeviceOffset = 0x2000;
    static constexpr uint64_t kNotifyOffset = 0x3000;
    static constexpr uint32_t kNotifyMultiplier = 4;
    static constexpr uint64_t kMsixTableOffset = 0x4000;
    static constexpr uint64_t kMsixPbaOffset = 0x5000;
    static constexpr uint16_t kNoVector = 0xffff;

    // `io_events` (may be null): the engine's in-kernel path for notifications.
    static Result<std::shared_ptr<VirtioPci>> create(std::unique_ptr<VirtioDevice> device, const GuestDma& dma,
                                                     MsiController& msi, IoEventRegistry* io_events = nullptr);
    ~VirtioPci() override;

    [[nodiscard]] std::shared_ptr<BusDevice> bar_device(unsigned index) const override;
    // Moves the notification ioeventfds with BAR 4.
    void bar_moved(unsigned index, std::optional<PciBarMapping> mapping) override;
    [[nodiscard]] uint8_t status() const;
    [[nodiscard]] VirtioDevice& device() { return *device_; }

    // Snapshots: the PCI function, the transport's registers, each queue's configuration and
    // position, then the device type's own state (VirtioDevice::save_state); saved while held.
    // A restored device that had reached DRIVER_OK is activated again on its loop, its queues
    // where they were, and looks at every queue once, as at DRIVER_OK.
    void save_state(StateWriter& out) const override;
    [[nodiscard]] std::function<Result<void>()> load_state(StateReader& in) override;
    // true: the device finishes its work in flight (VirtioDevice::quiesce), then its loop is
    // held, so that nothing touches guest memory or the rings until false lets it go.
    void quiesce(bool hold) override;

private:
    VirtioPci(std::unique_ptr<VirtioDevice> device, const GuestDma& dma, MsiController& msi);
    class Region;
    class StructureCapability;

    // BAR 4, from vCPU threads.
    void bar_read(uint64_t offset, std::span<uint8_t> data);
    void bar_write(uint64_t offset, std::span<const uint8_t> data);
    void common_read(uint64_t offset, std::span<uint8_t> data);
    void common_write(uint64_t offset, std::span<const uint8_t> data);
    void write_status(uint8_t value);
    void reset_device();
    void driver_ok();
    void start_device(std::span<const VirtqueuePosition> restored);
    void notify(unsigned queue);

    // VirtioContext, for the device on the loop.
    const GuestDma& dma() override { return dma_; }
    uint64_t features() override;
    Virtqueue& queue(unsigned index) override { return *queues_[index].ring; }
    EventLoop& loop() override { return *loop_; }
    void interrupt(unsigned index) override;
    void config_changed() override;
    void fail(std::string_view why) override;
    void raise(uint8_t isr_bit, uint16_t vector);

    struct Queue {
        uint16_t max_size = 0;
        uint16_t size = 0;
        uint16_t msix_vector = kNoVector;
        bool enabled = false;
        uint64_t descriptor_table = 0, avail_ring = 0, used_ring = 0;
        std::unique_ptr<Virtqueue> ring;  // used on the loop only
        Fd kick;                          // the notification eventfd
    };

    std::unique_ptr<VirtioDevice> device_;
    const GuestDma& dma_;
    std::shared_ptr<MsixCapability> msix_;
    std::shared_ptr<BusDevice> region_;
    std::unique_ptr<EventLoop> loop_;
    IoEventRegistry* io_events_ = nullptr;
    std::mutex io_events_mutex_;
    std::vector<IoEvent> registered_;  // the ioeventfds in place now

    mutable std::mutex mutex_;  // the registers below
    uint64_t offered_features_ = 0;
    uint32_t device_feature_select_ = 0;
    uint32_t driver_feature_select_ = 0;
    uint64_t driver_features_ = 0;
    uint16_t config_vector_ = kNoVector;
    uint8_t status_ = 0;
    uint8_t config_generation_ = 0;
    uint16_t queue_select_ = 0;
    uint8_t isr_ = 0;
    bool active_ = false;  // DRIVER_OK reached, no error since: notifications go to the device
    bool failed_ = false;
    std::vector<Queue> queues_;

    // quiesce(): the loop runs a task that waits while `hold_wanted_`.
    std::mutex hold_mutex_;
    std::condition_variable hold_changed_;
    bool hold_wanted_ = false;
    bool held_ = false;
};

}  // namespace strata
