#include "cpu/kvm/kvm_engine.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include <array>
#include <cstring>
#include <fstream>
#include <string>

#include "cpu/kvm/kvm_irqchip.hpp"
#include "cpu/kvm/kvm_vcpu.hpp"
#include "memory/pc_layout.hpp"

namespace strata::kvm {

namespace {

// Addresses KVM on Intel needs for real-mode emulation (three pages for the TSS, one for the
// EPT identity map), placed just below the BIOS ROM in the MMIO hole where nothing else lives.
constexpr uint64_t kTssAddress = 0xfffb'd000;
constexpr uint64_t kIdentityMapAddress = 0xfffb'c000;

// The first CPU's flags line of /proc/cpuinfo, with a space at each end so that every flag
// can be found as " name ".
std::string cpu_flags() {
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line;
    while (std::getline(cpuinfo, line))
        if (line.rfind("flags", 0) == 0) return line + " ";
    return {};
}

}  // namespace

bool host_kvm_is_pvm() {
    struct stat st{};
    return ::stat("/sys/module/kvm_pvm", &st) == 0;
}

HostKvmInfo probe_host_kvm() {
    HostKvmInfo info;
    Fd kvm(::open("/dev/kvm", O_RDWR | O_CLOEXEC));
    if (!kvm.valid()) {
        info.reason = fmt::format("/dev/kvm cannot be opened read-write: {}", std::strerror(errno));
        return info;
    }
    int version = ::ioctl(kvm.get(), KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) {
        info.reason = fmt::format("/dev/kvm speaks API version {}, not {}", version, KVM_API_VERSION);
        return info;
    }
    info.available = true;
    info.pvm = host_kvm_is_pvm();
    std::string flags = cpu_flags();
    bool vmx = flags.find(" vmx ") != std::string::npos, svm = flags.find(" svm ") != std::string::npos;
    info.hardware_assisted = (vmx || svm) && !info.pvm;
    if (info.pvm)
        info.reason = "this host's KVM is PVM (/sys/module/kvm_pvm): guest kernel mode is emulated instruction by "
                      "instruction, about a million instructions per second";
    else if (!vmx && !svm)
        info.reason = "the CPU has neither the vmx nor the svm flag, so guest kernel mode is not hardware assisted";
    return info;
}

// A GSI as KVM_IRQ_LINE sees it. Thread-safe: one ioctl per level change.
class KvmEngine::Line final : public IrqLine {
public:
    Line(int vm_fd, unsigned gsi) : vm_fd_(vm_fd), gsi_(gsi) {}
    void set_level(bool asserted) override {
        kvm_irq_level level{};
        level.irq = gsi_;
        level.level = asserted ? 1 : 0;
        // Fails only if the VM is gone; nothing useful to do then.
        (void)ioctl_retry(vm_fd_, KVM_IRQ_LINE, &level);
    }

private:
    int vm_fd_;
    unsigned gsi_;
};

Result<std::unique_ptr<KvmEngine>> KvmEngine::create(const GuestMemory& memory, unsigned cpus) {
    if (cpus == 0 || cpus > 254) return fail("{} vCPUs requested; the kvm engine supports 1 to 254", cpus);
    std::unique_ptr<KvmEngine> engine(new KvmEngine());
    engine->kvm_ = Fd(::open("/dev/kvm", O_RDWR | O_CLOEXEC));
    if (!engine->kvm_.valid()) return fail_errno("opening /dev/kvm");
    int version = ::ioctl(engine->kvm_.get(), KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) return fail("/dev/kvm: API version {} (expected {})", version, KVM_API_VERSION);
    int max_vcpus = ::ioctl(engine->kvm_.get(), KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (max_vcpus > 0 && cpus > static_cast<unsigned>(max_vcpus))
        return fail("{} vCPUs requested; this host's KVM allows at most {}", cpus, max_vcpus);

    if (auto r = engine->create_vm(memory); !r) return std::unexpected(r.error());

    int run_size = ::ioctl(engine->kvm_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size <= 0) return fail_errno("KVM_GET_VCPU_MMAP_SIZE");

    // KVM's supported CPUID set; each vCPU gets its own copy shaped by the policy.
    CpuidTable supported;
    for (uint32_t capacity = 64; capacity <= 4096; capacity *= 2) {
        FlexArray<kvm_cpuid_entry2> cpuid(capacity);
        if (::ioctl(engine->kvm_.get(), kGetSupportedCpuid, cpuid.get()) == 0) {
            for (uint32_t i = 0; i < cpuid.count(); ++i) supported.push_back(from_kvm_cpuid(cpuid.entries()[i]));
            break;
        }
        if (errno != E2BIG) return fail_errno("KVM_GET_SUPPORTED_CPUID");
    }
    if (supported.empty()) return fail("KVM_GET_SUPPORTED_CPUID returned no entries");

    HostQuirks quirks{.no_cmpxchg16b = host_kvm_is_pvm()};
    for (unsigned i = 0; i < cpus; ++i) {
        auto vcpu = KvmVcpu::create(engine->vm_.get(), i, static_cast<size_t>(run_size), supported, cpus, quirks);
        if (!vcpu) return context(vcpu.error(), fmt::format("vCPU {}", i));
        engine->vcpus_.push_back(std::move(*vcpu));
    }
    for (unsigned gsi = 0; gsi < pc::kIoApicPins; ++gsi)
        engine->lines_.push_back(std::make_unique<Line>(engine->vm_.get(), gsi));
    return engine;
}

Result<void> KvmEngine::create_vm(const GuestMemory& memory) {
    vm_ = Fd(ioctl_retry(kvm_.get(), KVM_CREATE_VM, 0));
    if (!vm_.valid()) return fail_errno("KVM_CREATE_VM");

    // Intel's real-mode support needs these two; AMD and PVM ignore or lack them.
    if (::ioctl(kvm_.get(), KVM_CHECK_EXTENSION, KVM_CAP_SET_TSS_ADDR) > 0 &&
        ioctl_retry(vm_.get(), KVM_SET_TSS_ADDR, kTssAddress) < 0)
        return fail_errno("KVM_SET_TSS_ADDR");
    if (::ioctl(kvm_.get(), KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0) {
        uint64_t address = kIdentityMapAddress;
        if (ioctl_retry(vm_.get(), KVM_SET_IDENTITY_MAP_ADDR, &address) < 0)
            return fail_errno("KVM_SET_IDENTITY_MAP_ADDR");
    }

    if (ioctl_retry(vm_.get(), KVM_CREATE_IRQCHIP, 0) < 0) return fail_errno("KVM_CREATE_IRQCHIP");
    if (auto r = set_gsi_routing(); !r) return r;
    if (auto r = program_pics_as_firmware(); !r) return r;
    kvm_pit_config pit{};
    pit.flags = KVM_PIT_SPEAKER_DUMMY;
    if (ioctl_retry(vm_.get(), KVM_CREATE_PIT2, &pit) < 0) return fail_errno("KVM_CREATE_PIT2");

    uint32_t slot = 0;
    for (const auto& region : memory.regions()) {
        kvm_userspace_memory_region slot_region{};
        slot_region.slot = slot++;
        slot_region.guest_phys_addr = region.gpa;
        slot_region.memory_size = region.size;
        slot_region.userspace_addr = reinterpret_cast<uint64_t>(region.host);
        if (ioctl_retry(vm_.get(), KVM_SET_USER_MEMORY_REGION, &slot_region) < 0)
            return fail_errno("KVM_SET_USER_MEMORY_REGION for guest RAM at {:#x}", region.gpa);
    }
    return {};
}

// The PC's wiring: ISA IRQs 0-15 reach the 8259 pair (except 2, the cascade) and IOAPIC pins
// 0-23 carry GSIs 0-23, except that IRQ0 (the PIT) arrives at pin 2, as the MP table's and
// MADT's interrupt source override say.
Result<void> KvmEngine::set_gsi_routing() {
    std::vector<kvm_irq_routing_entry> entries;
    auto add = [&](uint32_t gsi, uint32_t chip, uint32_t pin) {
        kvm_irq_routing_entry e{};
        e.gsi = gsi;
        e.type = KVM_IRQ_ROUTING_IRQCHIP;
        e.u.irqchip.irqchip = chip;
        e.u.irqchip.pin = pin;
        entries.push_back(e);
    };
    for (uint32_t irq = 0; irq < 16; ++irq) {
        if (irq == 2) continue;
        add(irq, irq < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, irq % 8);
    }
    for (uint32_t gsi = 0; gsi < pc::kIoApicPins; ++gsi) {
        if (gsi == 2) continue;
        add(gsi, KVM_IRQCHIP_IOAPIC, gsi == 0 ? 2 : gsi);
    }
    // The table also carries the MSI routes of devices' vectors: KvmMsi owns it from here on.
    msi_ = std::make_unique<KvmMsi>(vm_.get(), std::move(entries));
    return msi_->apply();
}

// There is no firmware, so the 8259s start as PC firmware leaves them (SeaBIOS's pic_reset and
// its PCI set-up): initialized for 8086 mode with vectors 0x08-0x0f and 0x70-0x77, the slave
// cascaded on IRQ2, everything masked except the cascade and IRQ 10/11, where PCI devices'
// INTx lines go. Real-mode guests rely on it (kvm-unit-tests' realmode raises IRQ 11 and expects
// vector 0x73); protected-mode operating systems reprogram both chips anyway.
Result<void> KvmEngine::program_pics_as_firmware() {
    struct Pic {
        uint32_t chip;
        uint8_t base;
        uint8_t mask;
    };
    for (const Pic& pic : {Pic{KVM_IRQCHIP_PIC_MASTER, 0x08, 0xfb}, Pic{KVM_IRQCHIP_PIC_SLAVE, 0x70, 0xf3}}) {
        kvm_irqchip chip{};
        chip.chip_id = pic.chip;
        if (ioctl_retry(vm_.get(), KVM_GET_IRQCHIP, &chip) < 0) return fail_errno("KVM_GET_IRQCHIP");
        chip.chip.pic.irq_base = pic.base;
        chip.chip.pic.imr = pic.mask;
        chip.chip.pic.init4 = 1;
        chip.chip.pic.init_state = 0;
        if (ioctl_retry(vm_.get(), KVM_SET_IRQCHIP, &chip) < 0) return fail_errno("KVM_SET_IRQCHIP");
    }
    return {};
}

KvmEngine::~KvmEngine() {
    stop();
    join();
}

MsiController& KvmEngine::msi() { return *msi_; }

namespace {
kvm_ioeventfd to_kvm(const IoEvent& event) {
    kvm_ioeventfd e{};
    e.addr = event.address;
    e.len = event.length;
    e.fd = event.fd;
    e.flags = event.io ? KVM_IOEVENTFD_FLAG_PIO : 0;
    return e;
}
}  // namespace

Result<void> KvmEngine::IoEvents::add(const IoEvent& event) {
    kvm_ioeventfd e = to_kvm(event);
    if (ioctl_retry(vm_.get(), KVM_IOEVENTFD, &e) < 0)
        return fail_errno("KVM_IOEVENTFD at {:#x}+{}", event.address, event.length);
    return {};
}

void KvmEngine::IoEvents::remove(const IoEvent& event) {
    kvm_ioeventfd e = to_kvm(event);
    e.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
    ioctl_retry(vm_.get(), KVM_IOEVENTFD, &e);
}

IrqLine* KvmEngine::irq_line(unsigned gsi) { return gsi < lines_.size() ? lines_[gsi].get() : nullptr; }

Result<void> KvmEngine::set_boot_state(const CpuState& state) { return vcpus_.front()->set_state(state); }

Result<CpuState> KvmEngine::vcpu_state(unsigned index) const {
    if (index >= vcpus_.size()) return fail("vCPU {} does not exist ({} vCPUs)", index, vcpus_.size());
    return vcpus_[index]->state();
}

Result<void> KvmEngine::set_vcpu_state(unsigned index, const CpuState& state) {
    if (index >= vcpus_.size()) return fail("vCPU {} does not exist ({} vCPUs)", index, vcpus_.size());
    return vcpus_[index]->set_state(state);
}

namespace {
ClockPair clock_pair(int64_t machine_now_ns) {
    timespec host{};
    clock_gettime(CLOCK_MONOTONIC, &host);
    return {.machine_ns = machine_now_ns, .host_ns = host.tv_sec * 1'000'000'000ll + host.tv_nsec};
}
// KVM_GET_IRQCHIP's chip ids, in the order they are saved and restored.
constexpr std::array<uint32_t, 3> kKvmIrqchips{KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC};
}  // namespace

Result<std::optional<IrqchipState>> KvmEngine::irqchip_state(int64_t machine_now_ns) const {
    IrqchipState state;
    for (uint32_t id : kKvmIrqchips) {
        kvm_irqchip chip{};
        chip.chip_id = id;
        if (ioctl_retry(vm_.get(), KVM_GET_IRQCHIP, &chip) < 0) return fail_errno("KVM_GET_IRQCHIP {}", id);
        if (id == KVM_IRQCHIP_PIC_MASTER) state.pic.master = from_kvm(chip.chip.pic, true);
        if (id == KVM_IRQCHIP_PIC_SLAVE) state.pic.slave = from_kvm(chip.chip.pic, false);
        if (id == KVM_IRQCHIP_IOAPIC) state.ioapic = from_kvm(chip.chip.ioapic);
    }
    kvm_pit_state2 pit{};
    if (ioctl_retry(vm_.get(), KVM_GET_PIT2, &pit) < 0) return fail_errno("KVM_GET_PIT2");
    state.pit = from_kvm(pit, clock_pair(machine_now_ns));
    return state;
}

Result<void> KvmEngine::set_irqchip_state(const IrqchipState& state, int64_t machine_now_ns) {
    for (uint32_t id : kKvmIrqchips) {
        kvm_irqchip chip{};
        chip.chip_id = id;
        if (id == KVM_IRQCHIP_PIC_MASTER) chip.chip.pic = to_kvm(state.pic.master);
        if (id == KVM_IRQCHIP_PIC_SLAVE) chip.chip.pic = to_kvm(state.pic.slave);
        if (id == KVM_IRQCHIP_IOAPIC) chip.chip.ioapic = to_kvm(state.ioapic, pc::kIoApic);
        if (ioctl_retry(vm_.get(), KVM_SET_IRQCHIP, &chip) < 0) return fail_errno("KVM_SET_IRQCHIP {}", id);
    }
    kvm_pit_state2 pit = to_kvm(state.pit, clock_pair(machine_now_ns));
    if (ioctl_retry(vm_.get(), KVM_SET_PIT2, &pit) < 0) return fail_errno("KVM_SET_PIT2");
    return {};
}

std::vector<VcpuMetrics> KvmEngine::metrics() const {
    std::vector<VcpuMetrics> all;
    for (const auto& vcpu : vcpus_) all.push_back(vcpu->metrics());
    return all;
}

Result<void> KvmEngine::start(const Platform& platform) {
    for (auto& vcpu : vcpus_)
        if (auto r = vcpu->start(platform); !r) return r;
    return {};
}

void KvmEngine::stop() {
    for (auto& vcpu : vcpus_) vcpu->kick();
}

void KvmEngine::join() {
    for (auto& vcpu : vcpus_) vcpu->join();
}

void KvmEngine::rearm() {
    for (auto& vcpu : vcpus_) vcpu->rearm();
}

// The TSC runs on in the host while KVM_RUN is not called, and so does the in-kernel PIT's
// count. Set back (KvmVcpu::set_tsc), each vCPU's TSC continues from the value it had, and
// KVM_SET_PIT2 reloads each PIT channel's count from now. KVM's local APIC timers are not moved:
// one due during the pause fires on resume.
Result<void> KvmEngine::freeze_time() {
    FrozenTime frozen;
    for (auto& vcpu : vcpus_) {
        auto tsc = vcpu->tsc();
        if (!tsc) return std::unexpected(tsc.error());
        frozen.tsc.push_back(*tsc);
    }
    if (ioctl_retry(vm_.get(), KVM_GET_PIT2, &frozen.pit) < 0) return fail_errno("KVM_GET_PIT2");
    frozen_ = std::move(frozen);
    return {};
}

Result<void> KvmEngine::thaw_time() {
    if (!frozen_) return {};
    FrozenTime frozen = std::move(*frozen_);
    frozen_.reset();
    for (size_t i = 0; i < vcpus_.size(); ++i)
        if (auto r = vcpus_[i]->set_tsc(frozen.tsc[i]); !r) return r;
    if (ioctl_retry(vm_.get(), KVM_SET_PIT2, &frozen.pit) < 0) return fail_errno("KVM_SET_PIT2");
    return {};
}

Result<void> KvmEngine::prepare_resume(const CpuState& boot) {
    for (size_t i = 0; i < vcpus_.size(); ++i) {
        vcpus_[i]->rearm();
        auto r = i == 0 ? vcpus_[i]->set_state(boot) : Result<void>{};
        if (!r) return r;
        if (auto m = vcpus_[i]->set_mp_state(i == 0 ? KVM_MP_STATE_RUNNABLE : KVM_MP_STATE_UNINITIALIZED); !m)
            return m;
    }
    return {};
}

}  // namespace strata::kvm
