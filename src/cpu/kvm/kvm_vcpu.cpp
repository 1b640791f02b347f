#include "cpu/kvm/kvm_vcpu.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "base/checked.hpp"
#include "cpu/exit.hpp"
#include "cpu/kvm/xsave_area.hpp"

namespace strata::kvm {

namespace {

// The signal that kicks a vCPU thread out of KVM_RUN. Its handler does nothing: the point is
// that KVM_RUN returns EINTR.
int kick_signal() { return SIGRTMIN; }

void install_kick_handler() {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction action{};
        action.sa_handler = [](int) {};
        sigemptyset(&action.sa_mask);
        action.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return
        sigaction(kick_signal(), &action, nullptr);
    });
}

// Local APIC register offsets (Intel SDM vol. 3A §11.4.1, table 11-1).
constexpr size_t kApicLvtLint0 = 0x350;
constexpr size_t kApicLvtLint1 = 0x360;
constexpr uint32_t kDeliveryExtInt = 0x7u << 8;
constexpr uint32_t kDeliveryNmi = 0x4u << 8;

// MSRs every vCPU starts with, as firmware leaves them (Intel SDM vol. 4).
const MsrValue kInitialMsrs[] = {
    {0x174, 0},                  // IA32_SYSENTER_CS
    {0x175, 0},                  // IA32_SYSENTER_ESP
    {0x176, 0},                  // IA32_SYSENTER_EIP
    {0xc000'0081, 0},            // STAR
    {0xc000'0082, 0},            // LSTAR
    {0xc000'0083, 0},            // CSTAR
    {0xc000'0084, 0},            // SFMASK
    {0xc000'0102, 0},            // KERNEL_GS_BASE
    {0x10, 0},                   // IA32_TSC
    {0x1a0, 1},                  // IA32_MISC_ENABLE: fast strings
    {0x2ff, (1u << 11) | 6},     // IA32_MTRR_DEF_TYPE: MTRRs on, default write-back
    {0xc001'0015, 1u << 24},     // AMD HWCR.TscFreqSel: the TSC counts at P0 frequency (else
                                 // Linux reports "[Firmware Bug]: TSC doesn't count with P0")
};

kvm_segment to_kvm(const SegmentState& s) {
    kvm_segment k{};
    k.base = s.base;
    k.limit = s.limit;
    k.selector = s.selector;
    k.type = s.type;
    k.present = s.present;
    k.dpl = s.dpl;
    k.db = s.db;
    k.s = s.s;
    k.l = s.l;
    k.g = s.g;
    k.avl = s.avl;
    k.unusable = s.unusable;
    return k;
}

SegmentState from_kvm(const kvm_segment& k) {
    return {.base = k.base, .limit = k.limit, .selector = k.selector, .type = k.type, .present = k.present != 0,
            .dpl = k.dpl, .db = k.db != 0, .s = k.s != 0, .l = k.l != 0, .g = k.g != 0, .avl = k.avl != 0,
            .unusable = k.unusable != 0};
}

// Exits whose operation KVM finishes only when KVM_RUN is entered again (api.rst, KVM_EXIT_IO and
// KVM_EXIT_MMIO).
bool completes_on_next_run(uint32_t exit_reason) {
    return exit_reason == KVM_EXIT_IO || exit_reason == KVM_EXIT_MMIO;
}

// A completing KVM_RUN exits again for each further piece of a string I/O or of an MMIO access
// KVM splits (at most a page of data a piece); more than this many means it does not complete.
constexpr unsigned kMaxCompletionPieces = 4096;

}  // namespace

Result<std::unique_ptr<KvmVcpu>> KvmVcpu::create(int vm_fd, unsigned index, size_t run_size,
                                                 const CpuidTable& supported_cpuid,
                                                 unsigned cpus, HostQuirks quirks) {
    Fd fd(ioctl_retry(vm_fd, KVM_CREATE_VCPU, static_cast<unsigned long>(index)));
    if (!fd.valid()) return fail_errno("KVM_CREATE_VCPU");
    void* run = ::mmap(nullptr, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (run == MAP_FAILED) return fail_errno("mapping kvm_run");
    // KVM_CAP_XSAVE2 gives the XSAVE area's size (at least struct kvm_xsave's 4096 bytes; more
    // once a process enables dynamic features such as AMX).
    FpuTransfer transfer;
    if (::ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0) {
        transfer.xsave_size = xsave::kKvmAreaSize;
        int xsave2_size = ::ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
        if (xsave2_size > 0) {
            transfer.xsave2 = true;
            transfer.xsave_size = std::max(transfer.xsave_size, static_cast<size_t>(xsave2_size));
        }
    }
    transfer.xcrs = ::ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0;
    std::unique_ptr<KvmVcpu> vcpu(new KvmVcpu(index, std::move(fd), static_cast<kvm_run*>(run), run_size, transfer));
    if (auto r = vcpu->configure(supported_cpuid, cpus, quirks); !r) return std::unexpected(r.error());
    return vcpu;
}

KvmVcpu::~KvmVcpu() {
    kick();
    join();
    ::munmap(run_, run_size_);
}

Result<void> KvmVcpu::configure(const CpuidTable& supported_cpuid, unsigned cpus, HostQuirks quirks) {
    CpuidTable table = supported_cpuid;
    apply_cpuid_policy(table, index_, cpus, quirks);
    FlexArray<kvm_cpuid_entry2> cpuid(table.size());
    for (size_t i = 0; i < table.size(); ++i) cpuid.entries()[i] = to_kvm_cpuid(table[i]);
    if (ioctl_retry(fd_.get(), kSetCpuid2, cpuid.get()) < 0) return fail_errno("KVM_SET_CPUID2");

    // MSRs one at a time: a host KVM that lacks one of these optional MSRs must not stop the VM.
    for (const auto& msr : kInitialMsrs) (void)set_msr(msr);

    // FNINIT's x87 state, SSE exceptions masked.
    if (auto r = set_fpu(FpuState{}); !r) return r;

    // The boot CPU's LINT0 takes the 8259's interrupts (virtual wire mode) and LINT1 is NMI, as
    // PC firmware leaves them (MP spec §3.6.2.2); the APs' stay masked until their OS sets them.
    if (index_ == 0) {
        kvm_lapic_state lapic{};
        if (ioctl_retry(fd_.get(), KVM_GET_LAPIC, &lapic) < 0) return fail_errno("KVM_GET_LAPIC");
        auto set_lvt = [&](size_t offset, uint32_t value) {
            uint32_t reg = 0;
            std::memcpy(&reg, lapic.regs + offset, 4);
            reg = (reg & ~0x1'07ffu) | value;  // clear mask (bit 16), delivery mode and vector
            std::memcpy(lapic.regs + offset, &reg, 4);
        };
        set_lvt(kApicLvtLint0, kDeliveryExtInt);
        set_lvt(kApicLvtLint1, kDeliveryNmi);
        if (ioctl_retry(fd_.get(), KVM_SET_LAPIC, &lapic) < 0) return fail_errno("KVM_SET_LAPIC");
    }
    return {};
}

Result<void> KvmVcpu::set_state(const CpuState& state) {
    // The pending operation belongs to the state being replaced: finish it there, not on top of
    // the new registers.
    if (auto r = complete_pending_exit(); !r) return r;
    kvm_sregs sregs{};
    if (ioctl_retry(fd_.get(), KVM_GET_SREGS, &sregs) < 0) return fail_errno("KVM_GET_SREGS");
    sregs.cs = to_kvm(state.cs);
    sregs.ds = to_kvm(state.ds);
    sregs.es = to_kvm(state.es);
    sregs.fs = to_kvm(state.fs);
    sregs.gs = to_kvm(state.gs);
    sregs.ss = to_kvm(state.ss);
    sregs.tr = to_kvm(state.tr);
    sregs.ldt = to_kvm(state.ldt);
    sregs.gdt = {.base = state.gdt.base, .limit = state.gdt.limit, .padding = {}};
    sregs.idt = {.base = state.idt.base, .limit = state.idt.limit, .padding = {}};
    sregs.cr0 = state.cr0;
    sregs.cr2 = state.cr2;
    sregs.cr3 = state.cr3;
    sregs.cr4 = state.cr4;
    sregs.cr8 = state.cr8;
    sregs.efer = state.efer;
    if (ioctl_retry(fd_.get(), KVM_SET_SREGS, &sregs) < 0) return fail_errno("KVM_SET_SREGS");

    kvm_regs regs{};
    const auto& g = state.gpr;
    regs.rax = g[0], regs.rcx = g[1], regs.rdx = g[2], regs.rbx = g[3];
    regs.rsp = g[4], regs.rbp = g[5], regs.rsi = g[6], regs.rdi = g[7];
    regs.r8 = g[8], regs.r9 = g[9], regs.r10 = g[10], regs.r11 = g[11];
    regs.r12 = g[12], regs.r13 = g[13], regs.r14 = g[14], regs.r15 = g[15];
    regs.rip = state.rip;
    regs.rflags = state.rflags;
    if (ioctl_retry(fd_.get(), KVM_SET_REGS, &regs) < 0) return fail_errno("KVM_SET_REGS");
    if (state.extended) return set_extended_state(*state.extended);
    return {};
}

Result<CpuState> KvmVcpu::state() {
    auto s = registers();
    if (!s) return s;
    auto extended = extended_state();
    if (!extended) return std::unexpected(extended.error());
    s->extended = std::move(*extended);
    return s;
}

Result<CpuState> KvmVcpu::registers() {
    if (auto r = complete_pending_exit(); !r) return std::unexpected(r.error());
    kvm_sregs sregs{};
    kvm_regs regs{};
    if (ioctl_retry(fd_.get(), KVM_GET_SREGS, &sregs) < 0) return fail_errno("KVM_GET_SREGS");
    if (ioctl_retry(fd_.get(), KVM_GET_REGS, &regs) < 0) return fail_errno("KVM_GET_REGS");
    CpuState s;
    s.gpr = {regs.rax, regs.rcx, regs.rdx, regs.rbx, regs.rsp, regs.rbp, regs.rsi, regs.rdi,
             regs.r8,  regs.r9,  regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15};
    s.rip = regs.rip;
    s.rflags = regs.rflags;
    s.cs = from_kvm(sregs.cs), s.ds = from_kvm(sregs.ds), s.es = from_kvm(sregs.es), s.fs = from_kvm(sregs.fs);
    s.gs = from_kvm(sregs.gs), s.ss = from_kvm(sregs.ss), s.tr = from_kvm(sregs.tr), s.ldt = from_kvm(sregs.ldt);
    s.gdt = {sregs.gdt.base, sregs.gdt.limit};
    s.idt = {sregs.idt.base, sregs.idt.limit};
    s.cr0 = sregs.cr0, s.cr2 = sregs.cr2, s.cr3 = sregs.cr3, s.cr4 = sregs.cr4, s.cr8 = sregs.cr8;
    s.efer = sregs.efer;
    s.apic_base = sregs.apic_base;
    return s;
}

namespace {

MpState from_kvm_mp_state(uint32_t state) {
    switch (state) {
        case KVM_MP_STATE_UNINITIALIZED: return MpState::Uninitialized;
        case KVM_MP_STATE_INIT_RECEIVED: return MpState::InitReceived;
        case KVM_MP_STATE_HALTED: return MpState::Halted;
        case KVM_MP_STATE_SIPI_RECEIVED: return MpState::SipiReceived;
        default: return MpState::Runnable;
    }
}

uint32_t to_kvm_mp_state(MpState state) {
    switch (state) {
        case MpState::Uninitialized: return KVM_MP_STATE_UNINITIALIZED;
        case MpState::InitReceived: return KVM_MP_STATE_INIT_RECEIVED;
        case MpState::Halted: return KVM_MP_STATE_HALTED;
        case MpState::SipiReceived: return KVM_MP_STATE_SIPI_RECEIVED;
        case MpState::Runnable: break;
    }
    return KVM_MP_STATE_RUNNABLE;
}

}  // namespace

// KVM_GET_MSRS and KVM_SET_MSRS return how many MSRs they handled: here 1, or 0 for an MSR this
// host's KVM does not have.
std::optional<uint64_t> KvmVcpu::msr(uint32_t index) const {
    FlexArray<kvm_msr_entry> msrs(1);
    msrs.entries()[0].index = index;
    if (ioctl_retry(fd_.get(), kGetMsrs, msrs.get()) != 1) return std::nullopt;
    return msrs.entries()[0].data;
}

bool KvmVcpu::set_msr(const MsrValue& msr) {
    FlexArray<kvm_msr_entry> msrs(1);
    msrs.entries()[0].index = msr.index;
    msrs.entries()[0].data = msr.value;
    return ioctl_retry(fd_.get(), kSetMsrs, msrs.get()) == 1;
}

Result<uint64_t> KvmVcpu::tsc() const {
    auto value = msr(kTscMsr);
    if (!value) return fail("vCPU {}: KVM_GET_MSRS refused IA32_TSC", index_);
    return *value;
}

// Through the vCPU's TSC offset (KVM_VCPU_TSC_OFFSET, Linux 5.16) where the host has it: a write
// of IA32_TSC is taken by KVM as an attempt to synchronise vCPUs when it lands within a second of
// what the TSC would read had it run on (kvm_synchronize_tsc), and PVM ignores it. The MSR is the
// fallback. Checked by reading the TSC back: a host that took neither is an error.
Result<void> KvmVcpu::set_tsc(uint64_t value) {
    auto now = tsc();
    if (!now) return std::unexpected(now.error());
    uint64_t offset = 0;
    kvm_device_attr attr{.flags = 0, .group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET,
                         .addr = reinterpret_cast<uint64_t>(&offset)};
    bool by_offset = ioctl_retry(fd_.get(), KVM_GET_DEVICE_ATTR, &attr) == 0;
    if (by_offset) {
        offset += value - *now;  // modulo 2^64, as the hardware adds it
        by_offset = ioctl_retry(fd_.get(), KVM_SET_DEVICE_ATTR, &attr) == 0;
    }
    if (!by_offset && !set_msr({kTscMsr, value})) return fail("vCPU {}: KVM_SET_MSRS refused IA32_TSC", index_);
    auto after = tsc();
    if (!after) return std::unexpected(after.error());
    // Read a moment later, it is a little past `value`; far past, the host kept its own.
    constexpr uint64_t kSlack = uint64_t{1} << 30;  // about half a second at 2 GHz
    if (*after - value > kSlack)
        return fail("vCPU {}: the host did not take TSC {:#x} (it reads {:#x})", index_, value, *after);
    return {};
}

Result<std::vector<uint8_t>> KvmVcpu::xsave_area() const {
    std::vector<uint8_t> area(fpu_transfer_.xsave_size, 0);
    if (ioctl_retry(fd_.get(), fpu_transfer_.xsave2 ? kGetXsave2 : kGetXsave, area.data()) < 0)
        return fail_errno("{}", fpu_transfer_.xsave2 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE");
    return area;
}

Result<FpuState> KvmVcpu::fpu() const {
    if (fpu_transfer_.xsave_size > 0) {
        auto area = xsave_area();
        if (!area) return std::unexpected(area.error());
        return xsave::read_fpu(*area);
    }
    // Without XSAVE, the host keeps guest FPU state with FXSAVE, which has no initial-state
    // tracking: the legacy region is all there is.
    kvm_fpu raw{};
    if (ioctl_retry(fd_.get(), KVM_GET_FPU, &raw) < 0) return fail_errno("KVM_GET_FPU");
    FpuState fpu;
    for (size_t i = 0; i < 8; ++i) std::memcpy(fpu.st[i].data(), raw.fpr[i], 16);
    for (size_t i = 0; i < 16; ++i) std::memcpy(fpu.xmm[i].data(), raw.xmm[i], 16);
    fpu.fcw = raw.fcw, fpu.fsw = raw.fsw, fpu.ftw_abridged = raw.ftwx, fpu.fop = raw.last_opcode;
    fpu.fip = raw.last_ip, fpu.fdp = raw.last_dp, fpu.mxcsr = raw.mxcsr;
    return fpu;
}

Result<void> KvmVcpu::set_fpu(const FpuState& fpu) {
    if (fpu_transfer_.xsave_size > 0) {
        // KVM's own area, so that the components FpuState does not carry (AVX and later) and the
        // host's MXCSR_MASK stay as they are.
        auto area = xsave_area();
        if (!area) return std::unexpected(area.error());
        xsave::write_fpu(fpu, *area);
        // KVM refuses MXCSR with reserved bits set (they would fault XRSTOR).
        if (ioctl_retry(fd_.get(), kSetXsave, area->data()) < 0)
            return fail_errno("KVM_SET_XSAVE (MXCSR {:#x})", fpu.mxcsr);
        return {};
    }
    kvm_fpu raw{};
    for (size_t i = 0; i < 8; ++i) std::memcpy(raw.fpr[i], fpu.st[i].data(), 16);
    for (size_t i = 0; i < 16; ++i) std::memcpy(raw.xmm[i], fpu.xmm[i].data(), 16);
    raw.fcw = fpu.fcw, raw.fsw = fpu.fsw, raw.ftwx = fpu.ftw_abridged, raw.last_opcode = fpu.fop;
    raw.last_ip = fpu.fip, raw.last_dp = fpu.fdp, raw.mxcsr = fpu.mxcsr;
    if (ioctl_retry(fd_.get(), KVM_SET_FPU, &raw) < 0) return fail_errno("KVM_SET_FPU");
    return {};
}

Result<ExtendedCpuState> KvmVcpu::extended_state() {
    if (auto r = complete_pending_exit(); !r) return std::unexpected(r.error());
    ExtendedCpuState x;
    auto fpu_state = fpu();
    if (!fpu_state) return std::unexpected(fpu_state.error());
    x.fpu = *fpu_state;

    kvm_debugregs debug{};
    if (ioctl_retry(fd_.get(), KVM_GET_DEBUGREGS, &debug) < 0) return fail_errno("KVM_GET_DEBUGREGS");
    for (size_t i = 0; i < 4; ++i) x.debug.dr[i] = debug.db[i];
    x.debug.dr6 = debug.dr6, x.debug.dr7 = debug.dr7;

    // XCR0 exists only where KVM offers XCRS; otherwise it stays x87-only.
    kvm_xcrs xcrs{};
    if (fpu_transfer_.xcrs && ioctl_retry(fd_.get(), KVM_GET_XCRS, &xcrs) == 0)
        for (uint32_t i = 0; i < std::min<uint32_t>(xcrs.nr_xcrs, KVM_MAX_XCRS); ++i)
            if (xcrs.xcrs[i].xcr == 0) x.xcr0 = xcrs.xcrs[i].value;

    // One at a time, like the initial MSRs: a host without one of them still reports the others.
    for (uint32_t index : kSavedMsrs)
        if (auto value = msr(index)) x.msrs.push_back({index, *value});

    kvm_vcpu_events events{};
    if (ioctl_retry(fd_.get(), KVM_GET_VCPU_EVENTS, &events) < 0) return fail_errno("KVM_GET_VCPU_EVENTS");
    x.events.exception = {.injected = events.exception.injected != 0, .pending = events.exception.pending != 0,
                          .vector = events.exception.nr, .has_error_code = events.exception.has_error_code != 0,
                          .error_code = events.exception.error_code};
    x.events.interrupt = {.injected = events.interrupt.injected != 0, .vector = events.interrupt.nr,
                          .soft = events.interrupt.soft != 0};
    x.events.nmi = {.injected = events.nmi.injected != 0, .pending = events.nmi.pending != 0,
                    .masked = events.nmi.masked != 0};
    x.events.interrupt_shadow = events.interrupt.shadow;
    x.events.sipi_vector = events.sipi_vector;

    kvm_mp_state mp{};
    if (ioctl_retry(fd_.get(), KVM_GET_MP_STATE, &mp) < 0) return fail_errno("KVM_GET_MP_STATE");
    x.mp_state = from_kvm_mp_state(mp.mp_state);

    kvm_lapic_state lapic{};
    if (ioctl_retry(fd_.get(), KVM_GET_LAPIC, &lapic) < 0) return fail_errno("KVM_GET_LAPIC");
    std::memcpy(x.lapic.data(), lapic.regs, x.lapic.size());
    return x;
}

Result<void> KvmVcpu::set_extended_state(const ExtendedCpuState& x) {
    if (auto r = set_fpu(x.fpu); !r) return r;

    kvm_debugregs debug{};
    for (size_t i = 0; i < 4; ++i) debug.db[i] = x.debug.dr[i];
    debug.dr6 = x.debug.dr6, debug.dr7 = x.debug.dr7;
    if (ioctl_retry(fd_.get(), KVM_SET_DEBUGREGS, &debug) < 0) return fail_errno("KVM_SET_DEBUGREGS");

    // XCR0 after the XSAVE area (KVM checks the area against what the host supports, not against
    // the guest's XCR0). Set even when x87-only, so that a state taken before the guest's XSETBV
    // takes a vCPU that has run since back to 1; only a host without XCRS cannot hold more.
    if (fpu_transfer_.xcrs) {
        kvm_xcrs xcrs{};
        xcrs.nr_xcrs = 1;
        xcrs.xcrs[0] = {.xcr = 0, .reserved = 0, .value = x.xcr0};
        if (ioctl_retry(fd_.get(), KVM_SET_XCRS, &xcrs) < 0) return fail_errno("KVM_SET_XCRS {:#x}", x.xcr0);
    } else if (x.xcr0 != xsave::kX87) {
        return fail("XCR0 {:#x}: this host's KVM has no KVM_CAP_XCRS", x.xcr0);
    }

    for (const MsrValue& msr : x.msrs)
        if (!set_msr(msr)) return fail("KVM_SET_MSRS refused MSR {:#x}", msr.index);

    kvm_lapic_state lapic{};
    std::memcpy(lapic.regs, x.lapic.data(), x.lapic.size());
    if (ioctl_retry(fd_.get(), KVM_SET_LAPIC, &lapic) < 0) return fail_errno("KVM_SET_LAPIC");

    kvm_vcpu_events events{};
    events.exception.injected = x.events.exception.injected;
    events.exception.pending = x.events.exception.pending;
    events.exception.nr = x.events.exception.vector;
    events.exception.has_error_code = x.events.exception.has_error_code;
    events.exception.error_code = x.events.exception.error_code;
    events.interrupt.injected = x.events.interrupt.injected;
    events.interrupt.nr = x.events.interrupt.vector;
    events.interrupt.soft = x.events.interrupt.soft;
    events.interrupt.shadow = x.events.interrupt_shadow;
    events.nmi.injected = x.events.nmi.injected;
    events.nmi.pending = x.events.nmi.pending;
    events.nmi.masked = x.events.nmi.masked;
    events.sipi_vector = x.events.sipi_vector;
    events.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR | KVM_VCPUEVENT_VALID_SHADOW;
    if (ioctl_retry(fd_.get(), KVM_SET_VCPU_EVENTS, &events) < 0) return fail_errno("KVM_SET_VCPU_EVENTS");

    return set_mp_state(to_kvm_mp_state(x.mp_state));
}

Result<void> KvmVcpu::set_mp_state(uint32_t mp_state) {
    kvm_mp_state state{.mp_state = mp_state};
    if (ioctl_retry(fd_.get(), KVM_SET_MP_STATE, &state) < 0) return fail_errno("KVM_SET_MP_STATE {}", mp_state);
    return {};
}

Result<void> KvmVcpu::start(const Platform& platform) {
    install_kick_handler();
    platform_ = &platform;
    return thread_.start(platform);
}

void KvmVcpu::kick() { thread_.stop(); }

void KvmVcpu::join() { thread_.join(); }

void KvmVcpu::rearm() { thread_.rearm(); }

void KvmVcpu::on_stop(std::thread* running) {
    // immediate_exit covers the window between the loop's check and the KVM_RUN ioctl.
    __atomic_store_n(&run_->immediate_exit, 1, __ATOMIC_SEQ_CST);
    if (running) pthread_kill(running->native_handle(), kick_signal());
}

void KvmVcpu::on_rearm() { __atomic_store_n(&run_->immediate_exit, 0, __ATOMIC_SEQ_CST); }

void KvmVcpu::enter_thread() {
    // Only the kick signal may interrupt this thread; the console thread handles the others.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, kick_signal());
    pthread_sigmask(SIG_UNBLOCK, &mask, nullptr);
}

bool KvmVcpu::run_once(const Platform& platform) {
    // KVM completes an earlier exit's operation first thing in KVM_RUN, before it looks at
    // immediate_exit or signals, so this KVM_RUN completes it whatever it returns.
    exit_pending_ = false;
    if (::ioctl(fd_.get(), KVM_RUN, 0) < 0) {
        if (errno == EINTR || errno == EAGAIN) return true;
        platform.control.request_stop(
            {StopKind::HostError, 0, fmt::format("vCPU {}: KVM_RUN failed: {}", index_, std::strerror(errno))});
        return false;
    }
    bool go_on = handle_exit(platform);
    // Set only now: a device that reads this vCPU's state while handling the exit must not make
    // KVM complete it before the exit's data is there. If the thread stops before its next
    // KVM_RUN, complete_pending_exit() does that KVM_RUN when the state is read or set.
    exit_pending_ = completes_on_next_run(run_->exit_reason);
    return go_on;
}

Result<void> KvmVcpu::complete_pending_exit() {
    if (!exit_pending_) return {};
    // immediate_exit = 1 lets KVM_RUN complete the operation and return EINTR before any guest
    // instruction (api.rst, kvm_run.immediate_exit). The value it had comes back afterwards: if a
    // stop came in between and set it, VcpuThread's stop request still holds the thread back.
    uint8_t armed = __atomic_exchange_n(&run_->immediate_exit, uint8_t{1}, __ATOMIC_SEQ_CST);
    Result<void> result;
    unsigned pieces = 0;
    while (exit_pending_) {
        exit_pending_ = false;
        if (::ioctl(fd_.get(), KVM_RUN, 0) < 0) {
            if (errno != EINTR) result = fail_errno("vCPU {}: KVM_RUN completing a port I/O or MMIO exit", index_);
            break;
        }
        // The next piece of a string I/O or split MMIO access: the buses serve it like any other.
        if (!completes_on_next_run(run_->exit_reason) || platform_ == nullptr || ++pieces > kMaxCompletionPieces) {
            result = fail("vCPU {}: KVM_RUN completing a port I/O or MMIO exit returned exit reason {} ({} pieces)",
                          index_, run_->exit_reason, pieces);
            break;
        }
        if (run_->exit_reason == KVM_EXIT_IO) handle_io(*platform_);
        else handle_mmio(*platform_);
        exit_pending_ = true;
    }
    __atomic_store_n(&run_->immediate_exit, armed, __ATOMIC_SEQ_CST);
    return result;
}

namespace {

std::string exit_reason_name(size_t reason) {
    switch (reason) {
        case KVM_EXIT_UNKNOWN: return "unknown";
        case KVM_EXIT_EXCEPTION: return "exception";
        case KVM_EXIT_IO: return "io";
        case KVM_EXIT_HYPERCALL: return "hypercall";
        case KVM_EXIT_DEBUG: return "debug";
        case KVM_EXIT_HLT: return "hlt";
        case KVM_EXIT_MMIO: return "mmio";
        case KVM_EXIT_IRQ_WINDOW_OPEN: return "irq_window_open";
        case KVM_EXIT_SHUTDOWN: return "shutdown";
        case KVM_EXIT_FAIL_ENTRY: return "fail_entry";
        case KVM_EXIT_INTR: return "intr";
        case KVM_EXIT_INTERNAL_ERROR: return "internal_error";
        case KVM_EXIT_SYSTEM_EVENT: return "system_event";
        default: return fmt::format("reason_{}", reason);
    }
}

}  // namespace

VcpuMetrics KvmVcpu::metrics() const {
    VcpuMetrics metrics{.index = index_, .exits = {}, .halted_ns = std::nullopt, .soft = std::nullopt};
    for (size_t reason = 0; reason < exit_counts_.size(); ++reason)
        if (uint64_t count = exit_counts_[reason].get())
            metrics.exits.emplace_back(reason + 1 == exit_counts_.size() ? "other" : exit_reason_name(reason), count);
    return metrics;
}

bool KvmVcpu::handle_exit(const Platform& platform) {
    exit_counts_[std::min<size_t>(run_->exit_reason, kCountedExitReasons - 1)].add();
    switch (run_->exit_reason) {
        case KVM_EXIT_IO:
            handle_io(platform);
            return true;
        case KVM_EXIT_MMIO:
            handle_mmio(platform);
            return true;
        case KVM_EXIT_INTR:
        case KVM_EXIT_IRQ_WINDOW_OPEN:
        case KVM_EXIT_HLT:  // only without an in-kernel irqchip; re-entering waits for an interrupt
            return true;
        case KVM_EXIT_SHUTDOWN:
            report_guest_crash(platform, StopKind::TripleFault, "the guest triple-faulted (KVM_EXIT_SHUTDOWN)");
            return false;
        case KVM_EXIT_SYSTEM_EVENT:
            switch (run_->system_event.type) {
                case KVM_SYSTEM_EVENT_SHUTDOWN:
                    platform.control.request_stop({StopKind::PowerOff, 0, "the guest powered off"});
                    return false;
                case KVM_SYSTEM_EVENT_RESET:
                    platform.control.request_stop({StopKind::Reset, 0, "the guest reset"});
                    return false;
                default:
                    report_guest_crash(platform, StopKind::EmulationFailure,
                                       fmt::format("KVM system event {}", run_->system_event.type));
                    return false;
            }
        case KVM_EXIT_INTERNAL_ERROR: {
            std::string what = run_->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
                                   ? "KVM could not emulate a guest instruction"
                                   : fmt::format("KVM internal error, suberror {}", run_->internal.suberror);
            // KVM's own diagnostic words (for emulation failures: flags and instruction bytes).
            uint32_t words = std::min(run_->internal.ndata, static_cast<uint32_t>(std::size(run_->internal.data)));
            if (words > 0) what += " (KVM data:";
            for (uint32_t i = 0; i < words; ++i) what += fmt::format(" {:#x}", run_->internal.data[i]);
            if (words > 0) what += ")";
            report_guest_crash(platform, StopKind::EmulationFailure, what);
            return false;
        }
        case KVM_EXIT_FAIL_ENTRY:
            report_guest_crash(platform, StopKind::EmulationFailure,
                               fmt::format("VM entry failed, hardware reason {:#x}",
                                           run_->fail_entry.hardware_entry_failure_reason));
            return false;
        default:
            report_guest_crash(platform, StopKind::HostError,
                               fmt::format("unhandled KVM exit reason {}", run_->exit_reason));
            return false;
    }
}

void KvmVcpu::handle_io(const Platform& platform) {
    auto& io = run_->io;
    // KVM fills these, but a wrong offset would make us scribble outside kvm_run: check.
    auto bytes = checked_mul(io.size, io.count);
    if (io.size == 0 || io.size > 8 || !bytes || !range_within(io.data_offset, *bytes, run_size_)) {
        platform.control.request_stop({StopKind::HostError, 0,
                                       fmt::format("vCPU {}: malformed port I/O exit (size {}, count {})", index_,
                                                   io.size, io.count)});
        return;
    }
    auto* data = reinterpret_cast<uint8_t*>(run_) + io.data_offset;
    dispatch(platform, PortIoExit{.port = io.port, .size = io.size, .count = io.count,
                                  .write = io.direction == KVM_EXIT_IO_OUT, .data = std::span(data, *bytes)});
}

void KvmVcpu::handle_mmio(const Platform& platform) {
    auto& mmio = run_->mmio;
    size_t length = std::min<size_t>(mmio.len, sizeof(mmio.data));
    dispatch(platform, MmioExit{.address = mmio.phys_addr, .write = mmio.is_write != 0,
                                .data = std::span(mmio.data, length)});
}

void KvmVcpu::report_guest_crash(const Platform& platform, StopKind kind, std::string what) {
    std::string detail = fmt::format("vCPU {}: {}", index_, what);
    if (auto s = registers()) {
        detail += '\n';  // not "\n" + ...: g++ 12 at -O3 warns falsely on it (-Wrestrict, GCC bug 105651)
        detail += s->describe();
    }
    platform.control.request_stop({kind, 0, std::move(detail)});
}

}  // namespace strata::kvm
