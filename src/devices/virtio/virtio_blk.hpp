// virtio-blk, the block device, over a raw disk image (a regular file or a host block device).
//
// State:    the image and its back end (host/block_backend.hpp), the configuration space (fixed at
//           open), and up to kQueueSize requests in flight, each in a preallocated slot (head,
//           status byte address, iovecs into guest memory, the ranges the back end fills).
// Features: one request queue of 256 entries; SEG_MAX (254), BLK_SIZE (512), FLUSH, DISCARD,
//           WRITE_ZEROES (with UNMAP), RO for read-only images, and the §5.2.4 configuration space
//           (capacity, seg_max, blk_size, discard and write-zeroes limits and alignment).
//           Requests (§5.2.6): IN, OUT, FLUSH, GET_ID (the 20-byte serial), DISCARD and
//           WRITE_ZEROES (up to kMaxDiscardSegments segments each); any other type gets UNSUPP.
//           The chain's framing is not assumed (§2.7.4): the header is the first 16 device-readable
//           bytes, the status the last device-writable byte, the data what lies between. A request
//           that breaks a rule (short header, no status byte, data not in 512-byte sectors, sectors
//           past the capacity or whose byte offset overflows, a write of any kind to a read-only
//           image, too many or malformed discard segments) gets IOERR or UNSUPP and the image is
//           not touched; only a malformed ring (a Virtqueue error) puts the device in
//           DEVICE_NEEDS_RESET. Reads and writes go between the image and guest memory without a
//           copy; requests complete in any order, each returned as it completes, with one
//           interrupt decision per batch. Without FLUSH negotiated every write is durable when it
//           completes (RWF_DSYNC), as §5.2.6.2 asks of a write-through device.
// Missing:  multiqueue (MQ), CONFIG_WCE, TOPOLOGY, SIZE_MAX, GET_LIFETIME, SECURE_ERASE, zoned
//           devices; image formats other than raw.
// Threads:  everything but the configuration space runs on the transport's loop, which also
//           watches the back end's completion eventfd between activate() and reset().
// Spec:     virtio 1.2 §5.2 (Block Device).
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "devices/virtio/virtio_device.hpp"
#include "host/block_backend.hpp"

namespace strata {

struct VirtioBlkOptions {
    bool read_only = false;
    std::string serial;  // GET_ID; empty: "strata-" and the image's file name, cut to 20 bytes
    BlockBackendKind backend = BlockBackendKind::Auto;
};

class VirtioBlk final : public VirtioDevice {
public:
    static constexpr uint16_t kQueueSize = 256;
    static constexpr uint32_t kSegMax = kQueueSize - 2;  // data segments: the chain also has header and status
    static constexpr uint32_t kSectorSize = 512;
    static constexpr uint32_t kMaxDiscardSegments = 16;
    static constexpr uint32_t kMaxDiscardSectors = 1u << 22;  // 2 GiB a segment
    static constexpr uint32_t kDiscardSectorAlignment = 8;    // 4 KiB, the host file systems' block
    static constexpr uint32_t kSerialSize = 20;               // §5.2.6: VIRTIO_BLK_ID_BYTES
    static constexpr uint32_t kConfigSize = 60;               // up to write_zeroes_may_unmap and padding

    // Feature bits (§5.2.3).
    static constexpr unsigned kFeatureSegMax = 2, kFeatureRo = 5, kFeatureBlkSize = 6, kFeatureFlush = 9,
                              kFeatureDiscard = 13, kFeatureWriteZeroes = 14;
    // Request types and status values (§5.2.6).
    static constexpr uint32_t kTypeIn = 0, kTypeOut = 1, kTypeFlush = 4, kTypeGetId = 8, kTypeDiscard = 11,
                              kTypeWriteZeroes = 13;
    static constexpr uint8_t kStatusOk = 0, kStatusIoErr = 1, kStatusUnsupp = 2;

    [[nodiscard]] static Result<std::unique_ptr<VirtioBlk>> open(const std::string& path, VirtioBlkOptions options = {});
    ~VirtioBlk() override;

    [[nodiscard]] virtio::DeviceType type() const override { return virtio::DeviceType::Block; }
    [[nodiscard]] std::string_view name() const override { return "virtio-blk"; }
    [[nodiscard]] uint64_t features() const override;
    [[nodiscard]] unsigned queue_count() const override { return 1; }
    [[nodiscard]] uint16_t max_queue_size(unsigned /*index*/) const override { return kQueueSize; }
    [[nodiscard]] uint32_t config_size() const override { return kConfigSize; }
    void read_config(uint32_t offset, std::span<uint8_t> data) override;
    [[nodiscard]] Result<void> activate(VirtioContext& context) override;
    void queue_notified(unsigned index) override;
    void reset() override;
    // Waits until every request in flight has completed and gone back used.
    void quiesce() override;

    [[nodiscard]] std::string_view backend_name() const { return backend_->name(); }
    [[nodiscard]] uint64_t capacity_sectors() const { return image_.size / kSectorSize; }
    [[nodiscard]] const std::string& serial() const { return serial_; }

private:
    struct Request {
        uint16_t head = 0;
        uint64_t status_gpa = 0;
        uint32_t type = 0;
        uint32_t used_length = 0;  // for push_used: the bytes written into the chain
        uint64_t expected = 0;     // what the back end must move for success (IN, OUT)
        std::vector<iovec> iov;             // capacity kQueueSize
        std::vector<ChainSegment> filled;   // IN: the guest ranges the read fills, for written()
        std::vector<ByteRange> ranges;      // DISCARD, WRITE_ZEROES
    };

    VirtioBlk(DiskImage image, std::unique_ptr<BlockBackend> backend, std::string serial);
    void build_config();
    [[nodiscard]] Result<void> serve(Virtqueue& queue);
    // Parses and checks the chain in chain_, then starts its request or finishes it at once.
    [[nodiscard]] Result<void> start(uint32_t slot);
    [[nodiscard]] Result<void> finish(uint32_t slot, uint8_t status);
    // Reaps what the back end completed, returns each request, and decides on an interrupt.
    [[nodiscard]] Result<void> complete();
    void completions_ready();
    // iovecs for bytes [offset, offset + length) of `segments`.
    [[nodiscard]] Result<void> map(std::span<const ChainSegment> segments, uint64_t offset, uint64_t length,
                                   bool for_write, Request& request);
    void forget_requests();
    void on_fail(const Error& error);

    DiskImage image_;
    std::unique_ptr<BlockBackend> backend_;
    std::string serial_;
    std::array<uint8_t, kConfigSize> config_{};
    VirtioContext* context_ = nullptr;
    bool failed_ = false;
    bool starved_ = false;  // every slot busy: popping waits for a completion
    uint64_t negotiated_ = 0;
    DescriptorChain chain_{kQueueSize};
    std::vector<Request> requests_;  // kQueueSize slots
    std::vector<uint32_t> free_;     // free slot indexes
    std::vector<BlockCompletion> completions_;
};

}  // namespace strata
