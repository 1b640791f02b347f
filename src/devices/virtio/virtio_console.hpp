// virtio-console, the console device: one port, the guest's hvc0, carrying the host terminal's
// input (receiveq) and the guest's output (transmitq).
//
// State:    the context between activate() and reset(); the terminal size in the configuration
//           space; the host input not yet delivered (at most the input limit, 64 KiB), whether
//           receive() refused bytes since (the room notifier is then owed), and whether a task
//           delivering input is already posted to the loop; one reusable chain per queue.
// Features: queues receiveq (0) and transmitq (1) of port 0 (§5.3.2); VIRTIO_CONSOLE_F_SIZE with
//           the cols and rows given at construction (§5.3.4). Transmit: the readable bytes of
//           every chain go to the output callback in ring order, and the chain comes back used
//           with length 0 (§5.3.6.1). Receive: receive() (the console thread) takes what fits in
//           the input buffer and posts its delivery to the loop, which copies it into the
//           writable buffers the driver has made available, filling each before taking the next,
//           and returns each with the bytes written. Input that comes before DRIVER_OK or while no
//           buffer is available waits in the input buffer; the input buffer is the device's, not
//           the queue's, so a reset keeps what the guest has not been given yet (the host's bytes
//           are never dropped, and the driver that comes back after the reset gets them). When
//           receive() refused bytes, the room notifier is called once delivery has drained the
//           input buffer to half the limit. A device-readable buffer on receiveq or a
//           device-writable one on transmitq breaks §5.3.6.2's "MUST NOT": the device does not
//           guess (dropping output, or taking a buffer it cannot fill) but fails into
//           DEVICE_NEEDS_RESET, as for a malformed ring.
//           Input is held until the driver's first transmit buffer: Linux's driver posts its
//           receive buffers before its port is connected and discards what arrives in between
//           (virtio_console's in_intr, !guest_connected), so input piped early would be lost;
//           its first output (the hvc console registered) shows the port is connected.
// Missing:  MULTIPORT and its control queues (§5.3.6.3), EMERG_WRITE, and resizing after start
//           (the configuration change for a terminal's SIGWINCH).
// Threads:  receive() and set_room_notifier() from any thread, read_config() from vCPUs; the
//           rest on the device's loop. The input buffer is under a mutex; the output callback and
//           the room notifier are called on the loop without it.
// Spec:     virtio 1.2 §5.3 (Console Device).
#pragma once

#include <array>
#include <atomic>
#include <deque>
#include <functional>
#include <mutex>

#include "devices/console_input.hpp"
#include "devices/virtio/virtio_device.hpp"

namespace strata {

// The terminal's size as the configuration space gives it (cols and rows).
struct ConsoleSize {
    uint16_t cols = 80;
    uint16_t rows = 24;
};

class VirtioConsole final : public VirtioDevice, public ConsoleInput {
public:
    static constexpr size_t kInputLimit = 64 * 1024;
    static constexpr unsigned kReceiveQueue = 0;
    static constexpr unsigned kTransmitQueue = 1;
    static constexpr unsigned kFeatureSize = 0;  // VIRTIO_CONSOLE_F_SIZE (§5.3.3)

    using Output = std::function<void(std::span<const uint8_t>)>;
    using Size = ConsoleSize;

    // `output` receives what the guest writes, on the device's loop. `input_limit`: how much
    // host input the device holds for the guest.
    explicit VirtioConsole(Output output, Size size = {}, size_t input_limit = kInputLimit);

    [[nodiscard]] virtio::DeviceType type() const override { return virtio::DeviceType::Console; }
    [[nodiscard]] std::string_view name() const override { return "virtio-console"; }
    [[nodiscard]] uint64_t features() const override { return uint64_t{1} << kFeatureSize; }
    [[nodiscard]] unsigned queue_count() const override { return 2; }
    [[nodiscard]] uint32_t config_size() const override { return kConfigSize; }
    void read_config(uint32_t offset, std::span<uint8_t> data) override;
    [[nodiscard]] Result<void> activate(VirtioContext& context) override;
    void queue_notified(unsigned index) override;
    void reset() override {
        context_ = nullptr;
        guest_wrote_ = false;
    }

    // Snapshots: the input not yet delivered, and whether the guest's port is connected (its
    // first output came).
    void save_state(StateWriter& out) const override;
    [[nodiscard]] std::function<void()> load_state(StateReader& in) override;
    size_t receive(std::span<const uint8_t> bytes) override;
    void set_room_notifier(std::function<void()> notifier) override;

private:
    // struct virtio_console_config (§5.3.4): cols, rows, max_nr_ports, emerg_wr.
    static constexpr uint32_t kConfigSize = 12;

    void deliver_input();  // posted by receive()
    [[nodiscard]] Result<void> serve_receive(Virtqueue& queue);
    [[nodiscard]] Result<void> serve_transmit();
    void stop(std::string_view why);
    // Moves up to `max` bytes of input into the receive chain from `offset`; returns how many.
    [[nodiscard]] Result<uint32_t> fill(uint32_t offset, uint32_t max);

    Output output_;
    const Size size_;
    const size_t input_limit_;
    VirtioContext* context_ = nullptr;  // the loop's
    bool guest_wrote_ = false;          // the loop's: a transmit buffer came since activate()
    std::atomic<EventLoop*> loop_{nullptr};  // set at the first activate(); the same loop until the end
    DescriptorChain receive_chain_{256};
    DescriptorChain transmit_chain_{256};
    std::array<uint8_t, 4096> scratch_{};  // the loop's copy buffer

    mutable std::mutex mutex_;  // what receive() shares with the loop
    std::deque<uint8_t> input_;
    bool host_waiting_ = false;   // receive() refused bytes: notify when there is room
    bool delivery_posted_ = false;
    std::function<void()> room_notifier_;
};

}  // namespace strata
