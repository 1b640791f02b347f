#include "devices/virtio/virtio_pci.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>

#include "base/bytes.hpp"
#include "base/checked.hpp"

namespace strata {
namespace {

constexpr uint16_t kVendorVirtio = 0x1af4;
constexpr uint16_t kModernDeviceBase = 0x1040;

// virtio_pci_cap.cfg_type (§4.1.4).
enum class CfgType : uint8_t { Common = 1, Notify = 2, Isr = 3, Device = 4, PciCfg = 5 };

// The common configuration structure's fields (§4.1.4.3), by offset.
enum class Common : uint8_t {
    DeviceFeatureSelect = 0x00,
    DeviceFeature = 0x04,
    DriverFeatureSelect = 0x08,
    DriverFeature = 0x0c,
    ConfigMsixVector = 0x10,
    NumQueues = 0x12,
    DeviceStatus = 0x14,
    ConfigGeneration = 0x15,
    QueueSelect = 0x16,
    QueueSize = 0x18,
    QueueMsixVector = 0x1a,
    QueueEnable = 0x1c,
    QueueNotifyOff = 0x1e,
    QueueDesc = 0x20,
    QueueDriver = 0x28,
    QueueDevice = 0x30,
};
struct Field {
    Common name;
    uint8_t size;
};
constexpr Field kFields[] = {
    {Common::DeviceFeatureSelect, 4}, {Common::DeviceFeature, 4}, {Common::DriverFeatureSelect, 4},
    {Common::DriverFeature, 4},       {Common::ConfigMsixVector, 2}, {Common::NumQueues, 2},
    {Common::DeviceStatus, 1},        {Common::ConfigGeneration, 1}, {Common::QueueSelect, 2},
    {Common::QueueSize, 2},           {Common::QueueMsixVector, 2}, {Common::QueueEnable, 2},
    {Common::QueueNotifyOff, 2},      {Common::QueueDesc, 8},      {Common::QueueDriver, 8},
    {Common::QueueDevice, 8},
};
constexpr uint64_t kCommonSize = 0x38;

// PCI class codes by device type, as QEMU presents them.
uint32_t class_code(virtio::DeviceType type) {
    switch (type) {
        case virtio::DeviceType::Net: return 0x02'00'00;      // network controller, Ethernet
        case virtio::DeviceType::Block: return 0x01'00'00;    // mass storage, SCSI
        case virtio::DeviceType::Console: return 0x07'80'00;  // communication controller, other
        default: return 0x00'ff'00;                           // unclassified, other
    }
}

uint64_t transport_features() {
    using virtio::Feature;
    return virtio::feature_mask(Feature::Version1) | virtio::feature_mask(Feature::IndirectDesc) |
           virtio::feature_mask(Feature::EventIdx);
}

}  // namespace

// One virtio structure's capability (§4.1.4: struct virtio_pci_cap, and for notifications the
// multiplier after it); the PCI configuration access one also has its data window, through which
// the driver reaches BAR 4 by configuration cycles (§4.1.4.9).
class VirtioPci::StructureCapability final : public PciCapability {
public:
    StructureCapability(VirtioPci& owner, CfgType type, uint32_t offset, uint32_t length)
        : owner_(owner), type_(type) {
        bytes_[2] = size();
        bytes_[3] = static_cast<uint8_t>(type);
        bytes_[4] = type == CfgType::PciCfg ? 0 : kBar;
        store_le(std::span(bytes_).subspan(8, 4), offset);
        store_le(std::span(bytes_).subspan(12, 4), length);
        if (type == CfgType::Notify) store_le(std::span(bytes_).subspan(16, 4), kNotifyMultiplier);
    }
    PciCapabilityId id() const override { return PciCapabilityId::VendorSpecific; }
    uint8_t size() const override { return type_ == CfgType::Notify || type_ == CfgType::PciCfg ? 20 : 16; }

    void read(uint8_t offset, std::span<uint8_t> data) override {
        if (type_ == CfgType::PciCfg && offset == kWindow) {
            if (auto target = window(data.size())) return owner_.bar_read(*target, data);
        }
        std::lock_guard lock(mutex_);
        for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < bytes_.size() ? bytes_[offset + i] : 0;
    }
    void write(uint8_t offset, std::span<const uint8_t> data) override {
        if (type_ != CfgType::PciCfg) return;  // read-only structures
        if (offset == kWindow) {
            if (auto target = window(data.size())) owner_.bar_write(*target, data);
            return;
        }
        // cap.bar, cap.offset and cap.length choose the window; the rest is read-only.
        std::lock_guard lock(mutex_);
        for (size_t i = 0; i < data.size(); ++i) {
            size_t at = offset + i;
            if (at == 4 || (at >= 8 && at < 16)) bytes_[at] = data[i];
        }
    }

    // The PCI configuration access capability's window (cap.bar, cap.offset, cap.length) is the
    // driver's; the other structures are constant.
    void save_state(StateWriter& out) const override {
        if (type_ != CfgType::PciCfg) return;
        std::lock_guard lock(mutex_);
        out.u8(bytes_[4]);
        out.bytes(std::span(bytes_).subspan(8, 8));
    }
    std::function<void()> load_state(StateReader& in) override {
        if (type_ != CfgType::PciCfg) return [] {};
        uint8_t bar = in.u8("the configuration access window's BAR");
        auto window = in.array<8>("the configuration access window's offset and length");
        return [this, bar, window] {
            std::lock_guard lock(mutex_);
            bytes_[4] = bar;
            std::ranges::copy(window, bytes_.begin() + 8);
        };
    }

private:
    static constexpr uint8_t kWindow = 16;
    // The BAR 4 offset the window reaches for an access of `width` bytes, when the driver set
    // up a valid one: BAR 4, a length of 1, 2 or 4 that matches, an offset aligned to it.
    std::optional<uint64_t> window(size_t width) {
        std::lock_guard lock(mutex_);
        uint32_t offset = static_cast<uint32_t>(load_le(std::span(bytes_).subspan(8, 4)));
        uint32_t length = static_cast<uint32_t>(load_le(std::span(bytes_).subspan(12, 4)));
        if (bytes_[4] != kBar || length != width || (length != 1 && length != 2 && length != 4) || offset % length)
            return std::nullopt;
        return offset;
    }

    VirtioPci& owner_;
    CfgType type_;
    mutable std::mutex mutex_;
    std::array<uint8_t, 20> bytes_{};
};

class VirtioPci::Region final : public BusDevice {
public:
    explicit Region(VirtioPci& owner) : owner_(owner) {}
    void read(uint64_t offset, std::span<uint8_t> data) override { owner_.bar_read(offset, data); }
    void write(uint64_t offset, std::span<const uint8_t> data) override { owner_.bar_write(offset, data); }

private:
    VirtioPci& owner_;
};

Result<std::shared_ptr<VirtioPci>> VirtioPci::create(std::unique_ptr<VirtioDevice> device, const GuestDma& dma,
                                                     MsiController& msi, IoEventRegistry* io_events) {
    if (!device) return strata::fail("virtio-pci: no device");
    if (device->queue_count() == 0 || device->queue_count() > (kMsixTableOffset - kNotifyOffset) / kNotifyMultiplier)
        return strata::fail("{}: {} queues do not fit virtio-pci's layout", device->name(), device->queue_count());
    std::string name(device->name());
    std::shared_ptr<VirtioPci> pci(new VirtioPci(std::move(device), dma, msi));
    auto loop = EventLoop::create(name);
    if (!loop) return std::unexpected(loop.error());
    pci->loop_ = std::move(*loop);
    pci->io_events_ = io_events;
    for (unsigned q = 0; q < pci->queues_.size(); ++q) {
        Queue& queue = pci->queues_[q];
        queue.kick = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        if (!queue.kick.valid()) return fail_errno("{}: eventfd for queue {}", name, q);
        VirtioPci* raw = pci.get();
        int fd = queue.kick.get();
        auto watched = pci->loop_->watch(fd, [raw, q, fd] {
            uint64_t count = 0;
            if (::read(fd, &count, sizeof(count)) == sizeof(count)) raw->notify(q);
        });
        if (!watched) return std::unexpected(watched.error());
    }
    return pci;
}

VirtioPci::VirtioPci(std::unique_ptr<VirtioDevice> device, const GuestDma& dma, MsiController& msi)
    : PciDevice(kVendorVirtio, static_cast<uint16_t>(kModernDeviceBase + static_cast<uint16_t>(device->type())),
                class_code(device->type()), 1),
      device_(std::move(device)), dma_(dma) {
    unsigned count = device_->queue_count();
    queues_.resize(count);
    for (unsigned q = 0; q < count; ++q) {
        queues_[q].max_size = device_->max_queue_size(q);
        queues_[q].size = queues_[q].max_size;
        queues_[q].ring = std::make_unique<Virtqueue>(dma_);
    }
    offered_features_ = device_->features() | transport_features();
    set_subsystem(kVendorVirtio, static_cast<uint16_t>(0x40 + static_cast<uint16_t>(device_->type())));
    declare_bar(kBar, PciBarKind::Memory64, kBarSize, true);
    set_interrupt_pin(1);
    msix_ = std::make_shared<MsixCapability>(count + 1, kBar, static_cast<uint32_t>(kMsixTableOffset), kBar,
                                             static_cast<uint32_t>(kMsixPbaOffset), msi);
    add_capability(msix_);
    add_capability(std::make_shared<StructureCapability>(*this, CfgType::Common, kCommonOffset, 0x1000));
    add_capability(std::make_shared<StructureCapability>(*this, CfgType::Notify, kNotifyOffset,
                                                         count * kNotifyMultiplier));
    add_capability(std::make_shared<StructureCapability>(*this, CfgType::Isr, kIsrOffset, 1));
    if (device_->config_size() > 0)
        add_capability(std::make_shared<StructureCapability>(*this, CfgType::Device, kDeviceOffset,
                                                             std::min<uint32_t>(device_->config_size(), 0x1000)));
    add_capability(std::make_shared<StructureCapability>(*this, CfgType::PciCfg, 0, 0));
    region_ = std::make_shared<Region>(*this);
}

void VirtioPci::bar_moved(unsigned index, std::optional<PciBarMapping> mapping) {
    if (index != kBar || !io_events_) return;
    std::lock_guard lock(io_events_mutex_);
    for (const IoEvent& event : registered_) io_events_->remove(event);
    registered_.clear();
    if (!mapping) return;
    for (unsigned q = 0; q < queues_.size(); ++q) {
        IoEvent event{.io = false,
                      .address = mapping->address + kNotifyOffset + q * kNotifyMultiplier,
                      .length = 2,
                      .fd = queues_[q].kick.get()};
        // Without it the notification still arrives, through the MMIO exit: say so once.
        if (auto r = io_events_->add(event); !r) {
            static std::once_flag reported;
            std::call_once(reported, [&] {
                fmt::print(stderr, "strata: {}: queue notifications take the slow path: {}\n", device_->name(),
                           r.error().message);
            });
            continue;
        }
        registered_.push_back(event);
    }
}

VirtioPci::~VirtioPci() {
    // The loop goes first: nothing of the device runs once the rest is torn down.
    if (loop_) loop_->run_sync([this] { device_->reset(); });
    loop_.reset();
    bar_moved(kBar, std::nullopt);
}

std::shared_ptr<BusDevice> VirtioPci::bar_device(unsigned index) const { return index == kBar ? region_ : nullptr; }

uint8_t VirtioPci::status() const {
    std::lock_guard lock(mutex_);
    return status_;
}

uint64_t VirtioPci::features() {
    std::lock_guard lock(mutex_);
    return driver_features_;
}

void VirtioPci::bar_read(uint64_t offset, std::span<uint8_t> data) {
    std::ranges::fill(data, uint8_t{0});
    if (offset >= kCommonOffset && range_within(offset - kCommonOffset, data.size(), kCommonSize)) {
        common_read(offset - kCommonOffset, data);
    } else if (offset == kIsrOffset) {
        // Reading the ISR status clears it, and with it the INTx condition (§4.1.4.5.1).
        std::lock_guard lock(mutex_);
        data[0] = isr_;
        isr_ = 0;
        set_intx(false);
    } else if (offset >= kDeviceOffset && range_within(offset - kDeviceOffset, data.size(), device_->config_size())) {
        device_->read_config(static_cast<uint32_t>(offset - kDeviceOffset), data);
    } else if (offset >= kMsixTableOffset && range_within(offset - kMsixTableOffset, data.size(), msix_->table_size())) {
        msix_->table_read(offset - kMsixTableOffset, data);
    } else if (offset >= kMsixPbaOffset && range_within(offset - kMsixPbaOffset, data.size(), msix_->pba_size())) {
        msix_->pba_read(offset - kMsixPbaOffset, data);
    }
}

void VirtioPci::bar_write(uint64_t offset, std::span<const uint8_t> data) {
    if (offset >= kCommonOffset && range_within(offset - kCommonOffset, data.size(), kCommonSize)) {
        common_write(offset - kCommonOffset, data);
    } else if (offset >= kNotifyOffset && offset < kNotifyOffset + queues_.size() * kNotifyMultiplier) {
        // Any write in a queue's slot notifies it (the value is the queue index, §4.1.5.2).
        uint64_t one = 1;
        unsigned q = static_cast<unsigned>((offset - kNotifyOffset) / kNotifyMultiplier);
        [[maybe_unused]] ssize_t n = ::write(queues_[q].kick.get(), &one, sizeof(one));
    } else if (offset >= kDeviceOffset && range_within(offset - kDeviceOffset, data.size(), device_->config_size())) {
        device_->write_config(static_cast<uint32_t>(offset - kDeviceOffset), data);
    } else if (offset >= kMsixTableOffset && range_within(offset - kMsixTableOffset, data.size(), msix_->table_size())) {
        msix_->table_write(offset - kMsixTableOffset, data);
    }
}

// Accesses may be of any width and cover parts of fields: each field an access touches is read,
// patched with the bytes written and stored whole, with its side effect.
void VirtioPci::common_read(uint64_t offset, std::span<uint8_t> data) {
    std::array<uint8_t, kCommonSize> image{};
    {
        std::lock_guard lock(mutex_);
        auto put = [&](Common field, size_t size, uint64_t value) {
            store_le(std::span(image).subspan(static_cast<size_t>(field), size), value);
        };
        put(Common::DeviceFeatureSelect, 4, device_feature_select_);
        put(Common::DeviceFeature, 4, device_feature_select_ < 2 ? offered_features_ >> (32 * device_feature_select_) : 0);
        put(Common::DriverFeatureSelect, 4, driver_feature_select_);
        put(Common::DriverFeature, 4, driver_feature_select_ < 2 ? driver_features_ >> (32 * driver_feature_select_) : 0);
        put(Common::ConfigMsixVector, 2, config_vector_);
        put(Common::NumQueues, 2, queues_.size());
        put(Common::DeviceStatus, 1, status_);
        put(Common::ConfigGeneration, 1, config_generation_);
        put(Common::QueueSelect, 2, queue_select_);
        if (queue_select_ < queues_.size()) {
            const Queue& q = queues_[queue_select_];
            put(Common::QueueSize, 2, q.size);
            put(Common::QueueMsixVector, 2, q.msix_vector);
            put(Common::QueueEnable, 2, q.enabled ? 1 : 0);
            put(Common::QueueNotifyOff, 2, queue_select_);
            put(Common::QueueDesc, 8, q.descriptor_table);
            put(Common::QueueDriver, 8, q.avail_ring);
            put(Common::QueueDevice, 8, q.used_ring);
        }
    }
    std::copy_n(image.begin() + static_cast<ptrdiff_t>(offset), data.size(), data.begin());
}

void VirtioPci::common_write(uint64_t offset, std::span<const uint8_t> data) {
    std::array<uint8_t, kCommonSize> current{};
    common_read(0, current);
    std::copy(data.begin(), data.end(), current.begin() + static_cast<ptrdiff_t>(offset));
    for (const Field& f : kFields) {
        auto at = static_cast<uint64_t>(f.name);
        if (at + f.size <= offset || at >= offset + data.size()) continue;
        uint64_t value = load_le(std::span(current).subspan(at, f.size));
        if (f.name == Common::DeviceStatus) {
            write_status(static_cast<uint8_t>(value));
            continue;
        }
        std::lock_guard lock(mutex_);
        Queue* q = queue_select_ < queues_.size() ? &queues_[queue_select_] : nullptr;
        // Queue fields are the driver's to set only before DRIVER_OK (§4.1.4.3.2, no RING_RESET).
        bool queue_writable = q && !(status_ & virtio::kStatusDriverOk);
        auto vector = [&](uint64_t v) {
            return static_cast<uint16_t>(v < msix_->vectors() ? v : kNoVector);
        };
        switch (f.name) {
            case Common::DeviceFeatureSelect: device_feature_select_ = static_cast<uint32_t>(value); break;
            case Common::DriverFeatureSelect: driver_feature_select_ = static_cast<uint32_t>(value); break;
            case Common::DriverFeature:
                if (driver_feature_select_ < 2 && !(status_ & virtio::kStatusFeaturesOk)) {
                    unsigned shift = 32 * driver_feature_select_;
                    driver_features_ = (driver_features_ & ~(uint64_t{0xffff'ffff} << shift)) | (value << shift);
                }
                break;
            case Common::ConfigMsixVector: config_vector_ = vector(value); break;
            case Common::QueueSelect: queue_select_ = static_cast<uint16_t>(value); break;
            case Common::QueueSize:
                if (queue_writable) q->size = static_cast<uint16_t>(value);
                break;
            case Common::QueueMsixVector:
                if (q) q->msix_vector = vector(value);
                break;
            case Common::QueueEnable:
                if (queue_writable && value == 1) q->enabled = true;
                break;
            case Common::QueueDesc:
                if (queue_writable) q->descriptor_table = value;
                break;
            case Common::QueueDriver:
                if (queue_writable) q->avail_ring = value;
                break;
            case Common::QueueDevice:
                if (queue_writable) q->used_ring = value;
                break;
            default: break;  // read-only
        }
    }
}

void VirtioPci::write_status(uint8_t value) {
    if (value == 0) return reset_device();
    bool start = false;
    {
        std::lock_guard lock(mutex_);
        uint8_t before = status_;
        // The driver sets bits, never clears them but by a reset; NEEDS_RESET is the device's.
        uint8_t next = static_cast<uint8_t>((before | value) & ~virtio::kStatusDeviceNeedsReset) |
                       (before & virtio::kStatusDeviceNeedsReset);
        if ((next & virtio::kStatusFeaturesOk) && !(before & virtio::kStatusFeaturesOk)) {
            // §3.1.1 step 5: FEATURES_OK holds only for a subset of the offered features that
            // includes VERSION_1 (this transport is modern only).
            bool subset = (driver_features_ & ~offered_features_) == 0;
            bool modern = virtio::has_feature(driver_features_, virtio::Feature::Version1);
            if (!subset || !modern) next &= static_cast<uint8_t>(~virtio::kStatusFeaturesOk);
        }
        if ((next & virtio::kStatusDriverOk) && !(before & virtio::kStatusDriverOk)) {
            if (!(next & virtio::kStatusFeaturesOk)) next &= static_cast<uint8_t>(~virtio::kStatusDriverOk);
            else start = !failed_;
        }
        status_ = next;
    }
    if (start) loop_->post([this] { driver_ok(); });
}

// On the loop: the queues the driver enabled are checked and handed to the device, which then
// looks at every queue once (buffers made available before DRIVER_OK were not notified to it).
void VirtioPci::driver_ok() { start_device({}); }

// DRIVER_OK's work, or a restore's with the queues' saved positions (one for each queue).
void VirtioPci::start_device(std::span<const VirtqueuePosition> restored) {
    std::vector<std::pair<unsigned, VirtqueueConfig>> configs;
    uint64_t features;
    {
        std::lock_guard lock(mutex_);
        if (!(status_ & virtio::kStatusDriverOk) || failed_ || active_) return;  // reset meanwhile
        features = driver_features_;
        for (unsigned i = 0; i < queues_.size(); ++i) {
            const Queue& q = queues_[i];
            if (!q.enabled) continue;
            configs.push_back({i, VirtqueueConfig{.size = q.size,
                                                  .descriptor_table = q.descriptor_table,
                                                  .avail_ring = q.avail_ring,
                                                  .used_ring = q.used_ring,
                                                  .event_idx = virtio::has_feature(features, virtio::Feature::EventIdx),
                                                  .indirect_descriptors = virtio::has_feature(
                                                      features, virtio::Feature::IndirectDesc)}});
        }
    }
    for (const auto& [index, config] : configs) {
        if (queues_[index].size > queues_[index].max_size)
            return fail(fmt::format("queue {}: size {} is larger than the maximum {}", index, config.size,
                                    queues_[index].max_size));
        auto r = restored.empty() ? queues_[index].ring->enable(config)
                                  : queues_[index].ring->restore(config, restored[index]);
        if (!r) return fail(fmt::format("queue {}: {}", index, r.error().message));
    }
    if (auto r = device_->activate(*this); !r) return fail(r.error().message);
    {
        std::lock_guard lock(mutex_);
        if (failed_) return;
        active_ = true;
    }
    if (!restored.empty()) device_->restored();
    for (const auto& [index, config] : configs) notify(index);
}

void VirtioPci::notify(unsigned queue) {
    {
        std::lock_guard lock(mutex_);
        if (!active_ || !queues_[queue].enabled) return;
    }
    device_->queue_notified(queue);
}

// §4.1.4.3.2: the reset is complete when the driver reads device_status back as 0, so the device
// has stopped (on its loop) before this returns to the vCPU.
void VirtioPci::reset_device() {
    loop_->run_sync([this] {
        {
            std::lock_guard lock(mutex_);
            active_ = false;
        }
        device_->reset();
        for (Queue& q : queues_) q.ring->reset();
    });
    std::lock_guard lock(mutex_);
    device_feature_select_ = driver_feature_select_ = 0;
    driver_features_ = 0;
    config_vector_ = kNoVector;
    status_ = 0;
    queue_select_ = 0;
    failed_ = false;
    for (Queue& q : queues_) {
        q.size = q.max_size;
        q.msix_vector = kNoVector;
        q.enabled = false;
        q.descriptor_table = q.avail_ring = q.used_ring = 0;
    }
    isr_ = 0;
    set_intx(false);
}

void VirtioPci::quiesce(bool hold) {
    std::unique_lock lock(hold_mutex_);
    if (!hold) {
        hold_wanted_ = false;
        hold_changed_.notify_all();
        hold_changed_.wait(lock, [this] { return !held_; });  // a new hold starts from a free loop
        return;
    }
    if (hold_wanted_) return;
    hold_wanted_ = true;
    loop_->post([this] {
        device_->quiesce();
        std::unique_lock held(hold_mutex_);
        held_ = true;
        hold_changed_.notify_all();
        hold_changed_.wait(held, [this] { return !hold_wanted_; });
        held_ = false;
        hold_changed_.notify_all();
    });
    hold_changed_.wait(lock, [this] { return held_; });
}

void VirtioPci::save_state(StateWriter& out) const {
    PciDevice::save_state(out);
    std::lock_guard lock(mutex_);
    out.u32(device_feature_select_);
    out.u32(driver_feature_select_);
    out.u64(driver_features_);
    out.u16(config_vector_);
    out.u8(status_);
    out.u8(config_generation_);
    out.u16(queue_select_);
    out.u8(isr_);
    out.boolean(failed_);
    out.u32(static_cast<uint32_t>(queues_.size()));
    for (const Queue& q : queues_) {
        out.u16(q.size);
        out.u16(q.msix_vector);
        out.boolean(q.enabled);
        out.u64(q.descriptor_table);
        out.u64(q.avail_ring);
        out.u64(q.used_ring);
        VirtqueuePosition position = q.ring->position();  // the loop is held
        out.u16(position.next_avail);
        out.u16(position.used_idx);
        out.u16(position.signalled_used);
    }
    device_->save_state(out);
}

std::function<Result<void>()> VirtioPci::load_state(StateReader& in) {
    auto pci = PciDevice::load_state(in);
    struct Saved {
        uint32_t device_feature_select = 0, driver_feature_select = 0;
        uint64_t driver_features = 0;
        uint16_t config_vector = kNoVector;
        uint8_t status = 0, config_generation = 0;
        uint16_t queue_select = 0;
        uint8_t isr = 0;
        bool failed = false;
        struct SavedQueue {
            uint16_t size, msix_vector;
            bool enabled;
            uint64_t descriptor_table, avail_ring, used_ring;
            VirtqueuePosition position;
        };
        std::vector<SavedQueue> queues;
    } saved;
    saved.device_feature_select = in.u32("device_feature_select");
    saved.driver_feature_select = in.u32("driver_feature_select");
    saved.driver_features = in.u64("driver features");
    saved.config_vector = in.u16("config_msix_vector");
    saved.status = in.u8("device_status");
    saved.config_generation = in.u8("config_generation");
    saved.queue_select = in.u16("queue_select");
    saved.isr = in.u8("ISR status");
    saved.failed = in.boolean("device failed");
    uint32_t count = in.count(static_cast<uint32_t>(queues_.size()), "queue count");
    if (in.ok() && count != queues_.size())
        in.fail(fmt::format("{} queues, {} has {}", count, device_->name(), queues_.size()));
    for (uint32_t i = 0; i < count && in.ok(); ++i) {
        Saved::SavedQueue q{};
        q.size = in.u16("queue_size");
        q.msix_vector = in.u16("queue_msix_vector");
        q.enabled = in.boolean("queue_enable");
        q.descriptor_table = in.u64("queue_desc");
        q.avail_ring = in.u64("queue_driver");
        q.used_ring = in.u64("queue_device");
        q.position.next_avail = in.u16("next available index");
        q.position.used_idx = in.u16("used index");
        q.position.signalled_used = in.u16("used index last signalled");
        saved.queues.push_back(q);
    }
    auto device = device_->load_state(in);

    using namespace virtio;
    constexpr uint8_t kKnownStatus = kStatusAcknowledge | kStatusDriver | kStatusDriverOk | kStatusFeaturesOk |
                                     kStatusDeviceNeedsReset | kStatusFailed;
    auto vector_ok = [&](uint16_t v) { return v == kNoVector || v < msix_->vectors(); };
    in.check((saved.status & ~kKnownStatus) == 0, "device_status has bits virtio 1.2 §2.1 does not define");
    in.check(saved.failed == ((saved.status & kStatusDeviceNeedsReset) != 0),
             "the device's failure and DEVICE_NEEDS_RESET disagree");
    in.check(!(saved.status & kStatusDriverOk) || (saved.status & kStatusFeaturesOk), "DRIVER_OK without FEATURES_OK");
    in.check(!(saved.status & kStatusFeaturesOk) ||
                 ((saved.driver_features & ~offered_features_) == 0 && has_feature(saved.driver_features, Feature::Version1)),
             "the driver's features are not a subset of the offered ones with VERSION_1, yet FEATURES_OK is set");
    in.check(vector_ok(saved.config_vector), "config_msix_vector is past the MSI-X table");
    in.check(saved.isr <= 3, "the ISR status has bits other than queue (0) and configuration (1)");
    bool running = (saved.status & kStatusDriverOk) && !saved.failed;
    for (size_t i = 0; i < saved.queues.size() && in.ok(); ++i) {
        const auto& q = saved.queues[i];
        in.check(vector_ok(q.msix_vector), fmt::format("queue {}: queue_msix_vector is past the MSI-X table", i));
        if (!running || !q.enabled) continue;
        if (q.size > queues_[i].max_size) {
            in.fail(fmt::format("queue {}: size {} is larger than the maximum {}", i, q.size, queues_[i].max_size));
            break;
        }
        // The rings must hold in the restored RAM as they did when the driver set them up.
        Virtqueue check(dma_);
        if (auto r = check.restore({.size = q.size, .descriptor_table = q.descriptor_table, .avail_ring = q.avail_ring,
                                    .used_ring = q.used_ring},
                                   q.position);
            !r)
            in.fail(fmt::format("queue {}: {}", i, r.error().message));
    }

    return [this, pci, device, saved, running]() -> Result<void> {
        if (auto r = pci(); !r) return r;
        {
            std::lock_guard lock(mutex_);
            device_feature_select_ = saved.device_feature_select;
            driver_feature_select_ = saved.driver_feature_select;
            driver_features_ = saved.driver_features;
            config_vector_ = saved.config_vector;
            status_ = saved.status;
            config_generation_ = saved.config_generation;
            queue_select_ = saved.queue_select;
            isr_ = saved.isr;
            failed_ = saved.failed;
            for (size_t i = 0; i < queues_.size(); ++i) {
                const auto& q = saved.queues[i];
                queues_[i].size = q.size;
                queues_[i].msix_vector = q.msix_vector;
                queues_[i].enabled = q.enabled;
                queues_[i].descriptor_table = q.descriptor_table;
                queues_[i].avail_ring = q.avail_ring;
                queues_[i].used_ring = q.used_ring;
            }
        }
        std::vector<VirtqueuePosition> positions;
        for (const auto& q : saved.queues) positions.push_back(q.position);
        loop_->run_sync([&] {
            device();
            if (running) start_device(positions);
        });
        return {};
    };
}

void VirtioPci::interrupt(unsigned index) {
    uint16_t vector;
    {
        std::lock_guard lock(mutex_);
        vector = index < queues_.size() ? queues_[index].msix_vector : kNoVector;
    }
    raise(1, vector);
}

void VirtioPci::config_changed() {
    uint16_t vector;
    {
        std::lock_guard lock(mutex_);
        ++config_generation_;
        vector = config_vector_;
    }
    raise(2, vector);
}

// With MSI-X enabled the vector carries the interrupt (none without one, §4.1.5.1.2); otherwise
// INTA# with the ISR bit, which the driver's read of the ISR clears.
void VirtioPci::raise(uint8_t isr_bit, uint16_t vector) {
    if (msix_->enabled()) {
        if (vector != kNoVector) msix_->notify(vector);
        return;
    }
    std::lock_guard lock(mutex_);
    isr_ |= isr_bit;
    set_intx(true);
}

void VirtioPci::fail(std::string_view why) {
    bool notify_driver;
    {
        std::lock_guard lock(mutex_);
        if (failed_) return;
        failed_ = true;
        active_ = false;
        status_ |= virtio::kStatusDeviceNeedsReset;
        notify_driver = status_ & virtio::kStatusDriverOk;
    }
    fmt::print(stderr, "strata: {}: {}; the device needs a reset (DEVICE_NEEDS_RESET)\n", device_->name(), why);
    if (notify_driver) config_changed();
}

}  // namespace strata
