#include "cpu/kvm/kvm_msi.hpp"

#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/fd.hpp"
#include "cpu/kvm/kvm_fd.hpp"

namespace strata::kvm {

// One vector: its GSI and the irqfd that raises it. Without an irqfd (the host refused one) the
// route falls back to KVM_SIGNAL_MSI with its GSI's message in the routing table.
class KvmMsi::Route final : public MsiRoute {
public:
    Route(KvmMsi& owner, uint32_t gsi) : owner_(owner), gsi_(gsi) {
        eventfd_ = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        if (!eventfd_.valid()) return;
        kvm_irqfd irqfd{};
        irqfd.fd = static_cast<uint32_t>(eventfd_.get());
        irqfd.gsi = gsi_;
        if (::ioctl(owner_.vm_fd_, KVM_IRQFD, &irqfd) < 0) eventfd_ = Fd();
    }
    ~Route() override {
        if (!eventfd_.valid()) return;
        kvm_irqfd irqfd{};
        irqfd.fd = static_cast<uint32_t>(eventfd_.get());
        irqfd.gsi = gsi_;
        irqfd.flags = KVM_IRQFD_FLAG_DEASSIGN;
        ::ioctl(owner_.vm_fd_, KVM_IRQFD, &irqfd);
    }
    void set_message(uint64_t address, uint32_t data) override { owner_.set_message(gsi_, {address, data}); }
    void trigger() override {
        if (eventfd_.valid()) {
            uint64_t one = 1;
            if (::write(eventfd_.get(), &one, sizeof(one)) == sizeof(one)) return;
        }
        Message m = owner_.message(gsi_);
        owner_.send(m.address, m.data);
    }

private:
    KvmMsi& owner_;
    uint32_t gsi_;
    Fd eventfd_;
};

KvmMsi::KvmMsi(int vm_fd, std::vector<kvm_irq_routing_entry> pin_routes)
    : vm_fd_(vm_fd), pin_routes_(std::move(pin_routes)) {}

Result<void> KvmMsi::apply() {
    std::lock_guard lock(mutex_);
    return apply_locked();
}

Result<void> KvmMsi::apply_locked() {
    std::vector<kvm_irq_routing_entry> entries = pin_routes_;
    for (const auto& [gsi, message] : messages_) {
        if (message.address == 0) continue;
        kvm_irq_routing_entry e{};
        e.gsi = gsi;
        e.type = KVM_IRQ_ROUTING_MSI;
        e.u.msi.address_lo = static_cast<uint32_t>(message.address);
        e.u.msi.address_hi = static_cast<uint32_t>(message.address >> 32);
        e.u.msi.data = message.data;
        entries.push_back(e);
    }
    FlexArray<kvm_irq_routing_entry> routing(entries.size());
    std::memcpy(routing.entries(), entries.data(), entries.size() * sizeof(kvm_irq_routing_entry));
    if (ioctl_retry(vm_fd_, kSetGsiRouting, routing.get()) < 0) return fail_errno("KVM_SET_GSI_ROUTING");
    return {};
}

void KvmMsi::set_message(uint32_t gsi, Message message) {
    std::lock_guard lock(mutex_);
    Message& m = messages_[gsi];
    if (m.address == message.address && m.data == message.data) return;
    m = message;
    // A table KVM refuses leaves the old one: the vector then raises its old message, which is
    // what a guest that wrote garbage may expect; the failure is reported once.
    if (auto r = apply_locked(); !r) {
        static std::once_flag reported;
        std::call_once(reported, [&] { fmt::print(stderr, "strata: kvm: MSI routing: {}\n", r.error().message); });
    }
}

KvmMsi::Message KvmMsi::message(uint32_t gsi) {
    std::lock_guard lock(mutex_);
    auto it = messages_.find(gsi);
    return it == messages_.end() ? Message{} : it->second;
}

void KvmMsi::send(uint64_t address, uint32_t data) {
    kvm_msi msi{};
    msi.address_lo = static_cast<uint32_t>(address);
    msi.address_hi = static_cast<uint32_t>(address >> 32);
    msi.data = data;
    ioctl_retry(vm_fd_, KVM_SIGNAL_MSI, &msi);
}

std::unique_ptr<MsiRoute> KvmMsi::create_route() {
    uint32_t gsi;
    {
        std::lock_guard lock(mutex_);
        gsi = next_gsi_++;
        messages_[gsi] = {};
    }
    return std::make_unique<Route>(*this, gsi);
}

}  // namespace strata::kvm
