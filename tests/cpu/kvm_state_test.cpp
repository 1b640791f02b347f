// The kvm engine's vCPU state: the XSAVE area's layout (no KVM needed); against real KVM, that
// x87/SSE state set through set_vcpu_state() is what guest code sees and that what guest code
// leaves is what vcpu_state() reports, also while the XSAVE header marks SSE state initial (a fresh
// vCPU, a run that left every XMM register zero); and that a vCPU stopped right after a port-I/O
// or MMIO exit reports its state with the operation completed (RIP past the instruction, the read
// data in the register).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>

#include "base/bytes.hpp"
#include "base/checked.hpp"
#include "cpu/kvm/kvm_engine.hpp"
#include "cpu/kvm/xsave_area.hpp"

namespace strata {
namespace {

using Register = std::array<uint8_t, 16>;

// A 16-byte register whose bytes count up from `first`.
Register pattern(uint8_t first) {
    Register r;
    for (size_t i = 0; i < r.size(); ++i) r[i] = static_cast<uint8_t>(first + i);
    return r;
}

// Every XMM register a different pattern, starting at `first`.
std::array<Register, 16> xmm_patterns(uint8_t first) {
    std::array<Register, 16> xmm;
    for (size_t n = 0; n < xmm.size(); ++n) xmm[n] = pattern(static_cast<uint8_t>(first + 16 * n));
    return xmm;
}

// ---- The XSAVE area (Intel SDM vol. 1 §10.5.1 table 10-2, §13.4) ----

constexpr size_t kXstateBv = 512, kMxcsrMask = 28, kSt0 = 32, kXmm0 = 160;

std::vector<uint8_t> stale_area(uint64_t xstate_bv) {
    std::vector<uint8_t> area(kvm::xsave::kKvmAreaSize, 0xee);
    store_le(std::span(area).subspan(kXstateBv, 8), xstate_bv);
    store_le(std::span(area).subspan(kXstateBv + 8, 56), 0);  // XCOMP_BV and reserved
    return area;
}

TEST(XsaveArea, ReadsTheLegacyRegionOfPresentComponents) {
    auto area = stale_area(kvm::xsave::kX87 | kvm::xsave::kSse);
    store_le(std::span(area).subspan(0, 2), 0x27f);          // FCW
    store_le(std::span(area).subspan(2, 2), 0x3800);         // FSW: TOP = 7
    area[4] = 0x80;                                          // FTW: ST7 valid
    store_le(std::span(area).subspan(6, 2), 0x7d9);          // FOP
    store_le(std::span(area).subspan(8, 8), 0x1234'5678'9abcull);
    store_le(std::span(area).subspan(16, 8), 0xfedc'ba98ull);
    store_le(std::span(area).subspan(24, 4), 0x3f80);        // MXCSR: round toward zero
    std::ranges::copy(pattern(0x10), area.begin() + kSt0 + 16 * 7);
    std::ranges::copy(pattern(0x40), area.begin() + kXmm0 + 16 * 15);

    FpuState fpu = kvm::xsave::read_fpu(area);
    EXPECT_EQ(fpu.fcw, 0x27f);
    EXPECT_EQ(fpu.fsw, 0x3800);
    EXPECT_EQ(fpu.ftw_abridged, 0x80);
    EXPECT_EQ(fpu.fop, 0x7d9);
    EXPECT_EQ(fpu.fip, 0x1234'5678'9abcull);
    EXPECT_EQ(fpu.fdp, 0xfedc'ba98ull);
    EXPECT_EQ(fpu.mxcsr, 0x3f80u);
    EXPECT_EQ(fpu.st[7], pattern(0x10));
    EXPECT_EQ(fpu.xmm[15], pattern(0x40));
    Register stale;
    stale.fill(0xee);
    EXPECT_EQ(fpu.xmm[0], stale) << "the bytes of a present component are its values";
}

TEST(XsaveArea, ComponentsMarkedInitialReadAsTheirInitialConfiguration) {
    auto area = stale_area(0);
    store_le(std::span(area).subspan(24, 4), 0x1f80);
    EXPECT_EQ(kvm::xsave::read_fpu(area), FpuState{}) << "neither component present: the stale bytes mean nothing";

    area = stale_area(kvm::xsave::kX87);
    store_le(std::span(area).subspan(24, 4), 0x1f80);
    FpuState fpu = kvm::xsave::read_fpu(area);
    EXPECT_EQ(fpu.fcw, 0xeeee) << "x87 present";
    EXPECT_EQ(fpu.xmm, FpuState{}.xmm) << "SSE initial: every XMM register zero";
}

TEST(XsaveArea, WriteMarksX87AndSsePresentAndLeavesTheRest) {
    auto area = stale_area(kvm::xsave::kAvx);
    FpuState fpu;
    fpu.fcw = 0x7f, fpu.fsw = 0x4100, fpu.ftw_abridged = 0x3, fpu.fop = 0x123;
    fpu.fip = 0x8000'0000'1000ull, fpu.fdp = 0x2000, fpu.mxcsr = 0x9fc0;
    fpu.st[0] = pattern(0x60);
    fpu.xmm = xmm_patterns(0x80);
    kvm::xsave::write_fpu(fpu, area);

    EXPECT_EQ(load_le(std::span(area).subspan(kXstateBv, 8)),
              kvm::xsave::kX87 | kvm::xsave::kSse | kvm::xsave::kAvx);
    EXPECT_EQ(load_le(std::span(area).subspan(kXstateBv + 8, 8)), 0u) << "XCOMP_BV: standard format";
    EXPECT_EQ(load_le(std::span(area).subspan(kMxcsrMask, 4)), 0xeeee'eeeeu) << "MXCSR_MASK is the host's";
    EXPECT_TRUE(std::all_of(area.begin() + 416, area.begin() + 512, [](uint8_t b) { return b == 0xee; }))
        << "the legacy region's reserved and available bytes";
    EXPECT_TRUE(std::all_of(area.begin() + 576, area.end(), [](uint8_t b) { return b == 0xee; }))
        << "the AVX and later components";
    EXPECT_EQ(load_le(std::span(area).subspan(0, 2)), 0x7fu);
    EXPECT_EQ(load_le(std::span(area).subspan(24, 4)), 0x9fc0u);
    EXPECT_TRUE(std::equal(fpu.xmm[1].begin(), fpu.xmm[1].end(), area.begin() + kXmm0 + 16));
    EXPECT_EQ(kvm::xsave::read_fpu(area), fpu) << "round trip";
}

// ---- Against KVM ----

bool kvm_usable() {
    int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) return false;
    ::close(fd);
    return true;
}

// Stops the engine, on whichever thread asks; the test waits for it.
class Stopper : public MachineControl {
public:
    void request_stop(StopReason reason) override {
        std::lock_guard lock(mutex_);
        if (!reason_) reason_ = std::move(reason);
        if (engine) engine->stop();
        stopped_.notify_all();
    }
    StopReason wait() {
        std::unique_lock lock(mutex_);
        stopped_.wait_for(lock, std::chrono::seconds(30), [&] { return reason_.has_value(); });
        return reason_.value_or(StopReason{StopKind::HostError, 0, "timed out"});
    }
    void reset() {
        std::lock_guard lock(mutex_);
        reason_.reset();
    }
    CpuEngine* engine = nullptr;

private:
    std::mutex mutex_;
    std::condition_variable stopped_;
    std::optional<StopReason> reason_;
};

// A device whose every access stops the VM from inside the exit: the vCPU stops right after the
// exit, before KVM has completed it. Reads return 0x8877665544332211 (truncated to their size).
class StopOnAccess : public BusDevice {
public:
    explicit StopOnAccess(MachineControl& control) : control_(control) {}
    void read(uint64_t, std::span<uint8_t> data) override {
        store_le(data, kReadValue);
        control_.request_stop({StopKind::DebugExit, 0, "read"});
    }
    void write(uint64_t, std::span<const uint8_t> data) override {
        control_.request_stop({StopKind::DebugExit, static_cast<uint32_t>(load_le(data)), "write"});
    }
    static constexpr uint64_t kReadValue = 0x8877'6655'4433'2211ull;

private:
    MachineControl& control_;
};

constexpr uint16_t kStopPort = 0xf4;
constexpr uint64_t kStopMmio = 0xd000'0000;  // in the PC's MMIO hole

// One VM whose vCPU 0 runs guest code placed at kCode, again and again; every port-I/O and MMIO
// access stops it (StopOnAccess at kStopPort and kStopMmio).
class Vm {
public:
    static constexpr uint64_t kCode = 0x1'0000;

    void SetUp() {
        auto memory = GuestMemory::create(2 * MiB);
        ASSERT_TRUE(memory) << memory.error().message;
        memory_.emplace(std::move(*memory));
        ASSERT_TRUE(pio_.add(kStopPort, 1, std::make_shared<StopOnAccess>(control_), "stop port"));
        ASSERT_TRUE(mmio_.add(kStopMmio, 0x1000, std::make_shared<StopOnAccess>(control_), "stop mmio"));
        auto engine = kvm::KvmEngine::create(*memory_, 1);
        ASSERT_TRUE(engine) << engine.error().message;
        engine_ = std::move(*engine);
        control_.engine = engine_.get();
        platform_.emplace(Platform{*memory_, pio_, mmio_, control_});
    }
    ~Vm() {
        if (engine_) {
            engine_->stop();
            engine_->join();
        }
    }

    const GuestMemory& memory() { return *memory_; }
    kvm::KvmEngine& engine() { return *engine_; }

    // Runs `code` from `entry` (which the engine's state completes where it has no extended part)
    // until an access stops it; returns how it stopped, without reading the vCPU's state.
    StopReason start(std::span<const uint8_t> code, CpuState entry) {
        EXPECT_TRUE(memory_->write(kCode, code));
        if (!entry.extended) {
            auto current = engine_->vcpu_state(0);
            EXPECT_TRUE(current) << current.error().message;
            if (current) entry.extended = current->extended;
        }
        control_.reset();
        // As for an S3 resume: the earlier stop forgotten, the whole state set.
        auto r = engine_->prepare_resume(entry);
        EXPECT_TRUE(r) << r.error().message;
        r = engine_->start(*platform_);
        EXPECT_TRUE(r) << r.error().message;
        StopReason reason = control_.wait();
        EXPECT_EQ(reason.kind, StopKind::DebugExit) << reason.detail;
        engine_->join();
        return reason;
    }

    // The same, returning the vCPU's state after the stop.
    CpuState run(std::span<const uint8_t> code, CpuState entry) {
        (void)start(code, std::move(entry));
        auto state = engine_->vcpu_state(0);
        EXPECT_TRUE(state && state->extended) << (state ? "no extended state" : state.error().message);
        return state ? *state : CpuState{};
    }

private:
    std::optional<GuestMemory> memory_;
    Bus pio_{"pio"}, mmio_{"mmio"};
    Stopper control_;
    std::unique_ptr<kvm::KvmEngine> engine_;
    std::optional<Platform> platform_;
};

// Machine code for the guests below.
class Code {
public:
    Code& bytes(std::initializer_list<uint8_t> b) {
        code_.insert(code_.end(), b);
        return *this;
    }
    Code& imm32(uint64_t value) {
        for (unsigned i = 0; i < 4; ++i) code_.push_back(static_cast<uint8_t>(value >> (8 * i)));
        return *this;
    }
    // `[prefix] [REX.R] 0F op ModRM SIB disp32`: register `reg` and the absolute address `address`
    // (64-bit mode: ModRM.rm = 100, SIB without base and index).
    Code& absolute(std::initializer_list<uint8_t> prefix, std::initializer_list<uint8_t> opcode, unsigned reg,
                   uint64_t address) {
        bytes(prefix);
        if (reg >= 8) code_.push_back(0x44);
        bytes(opcode);
        code_.push_back(static_cast<uint8_t>(((reg & 7) << 3) | 4));
        code_.push_back(0x25);
        return imm32(address);
    }
    Code& store_xmm(unsigned n, uint64_t address) { return absolute({0xf3}, {0x0f, 0x7f}, n, address); }  // movdqu
    Code& load_xmm(unsigned n, uint64_t address) { return absolute({0xf3}, {0x0f, 0x6f}, n, address); }
    Code& stmxcsr(uint64_t address) { return absolute({}, {0x0f, 0xae}, 3, address); }
    Code& ldmxcsr(uint64_t address) { return absolute({}, {0x0f, 0xae}, 2, address); }
    Code& fnstcw(uint64_t address) { return absolute({}, {0xd9}, 7, address); }
    Code& fldcw(uint64_t address) { return absolute({}, {0xd9}, 5, address); }
    Code& store_byte(uint64_t address, uint8_t value) {  // mov byte ptr [address], value
        bytes({0xc6, 0x04, 0x25}).imm32(address);
        code_.push_back(value);
        return *this;
    }
    [[nodiscard]] std::span<const uint8_t> get() const { return code_; }

private:
    std::vector<uint8_t> code_;
};

// ---- x87/SSE state, at CPL3 in long mode ----
// (PVM hosts emulate guest kernel mode and cannot emulate SSE instructions there; guest user mode
// runs natively, so that is where the guest code touches XMM.)

constexpr uint64_t kGdt = 0x1000, kTss = 0x1800, kPml4 = 0x8000, kPdpt = 0x9000, kPd = 0xa000;
constexpr uint64_t kStoredByGuest = 0x2'0000;  // XMM0-15, then MXCSR at +0x100 and FCW at +0x104
constexpr uint64_t kLoadedByGuest = 0x2'0200;  // the same layout
constexpr uint64_t kDoorbell = 0x20'0000;      // virtual: the 2 MiB page at kStopMmio
constexpr uint16_t kUserCode = 0x23, kUserData = 0x1b, kTssSelector = 0x28;

// Page tables identity-mapping the first 2 MiB with one user page, and kDoorbell onto kStopMmio;
// a GDT with 64-bit kernel and user segments and a TSS (SDM vol. 3A §3.4.5, §4.5, §7.2.3).
void write_long_mode_tables(const GuestMemory& memory) {
    constexpr uint64_t kPresentWritableUser = 0x7, kLargePage = 1u << 7;
    ASSERT_TRUE(memory.write_obj<uint64_t>(kPml4, kPdpt | kPresentWritableUser));
    ASSERT_TRUE(memory.write_obj<uint64_t>(kPdpt, kPd | kPresentWritableUser));
    ASSERT_TRUE(memory.write_obj<uint64_t>(kPd, 0 | kPresentWritableUser | kLargePage));
    ASSERT_TRUE(memory.write_obj<uint64_t>(kPd + 8, kStopMmio | kPresentWritableUser | kLargePage));
    auto flat = [](uint64_t access, uint64_t flags) { return 0xffffull | access << 40 | 0xfull << 48 | flags << 52; };
    const std::array<uint64_t, 7> gdt = {0,
                            flat(0x9b, 0xa),  // kernel code: L
                            flat(0x93, 0xc),  // kernel data
                            flat(0xf3, 0xc),  // user data: DPL3
                            flat(0xfb, 0xa),  // user code: DPL3, L
                            0x67 | (kTss & 0xff'ffff) << 16 | 0x8bull << 40,  // busy 64-bit TSS
                            0};
    ASSERT_TRUE(memory.write_obj(kGdt, gdt));
}

SegmentState user_segment(uint16_t selector, uint8_t type, bool code) {
    return {.base = 0, .limit = 0xffff'ffff, .selector = selector, .type = type, .present = true, .dpl = 3,
            .db = !code, .s = true, .l = code, .g = true};
}

// CPL3 in 64-bit mode with paging and SSE enabled (SDM vol. 3A §9.8.5), at kCode. No IDT: an
// exception would triple-fault, which the run reports.
CpuState user_mode_entry() {
    CpuState s;
    s.cs = user_segment(kUserCode, 0xb, true);
    s.ss = s.ds = s.es = s.fs = s.gs = user_segment(kUserData, 0x3, false);
    s.tr = {.base = kTss, .limit = 0x67, .selector = kTssSelector, .type = 0xb, .present = true, .dpl = 0,
            .db = false, .s = false, .l = false, .g = false};
    s.ldt = {.base = 0, .limit = 0, .selector = 0, .type = 0x2, .present = false, .dpl = 0, .db = false,
             .s = false, .l = false, .g = false, .avl = false, .unusable = true};
    s.gdt = {kGdt, 0x37};
    s.idt = {0, 0};
    s.cr0 = cr0::PE | cr0::MP | cr0::ET | cr0::NE | cr0::WP | cr0::PG;
    s.cr3 = kPml4;
    s.cr4 = cr4::PAE | cr4::OSFXSR | cr4::OSXMMEXCPT;
    s.efer = efer::LME | efer::LMA | efer::NXE | efer::SCE;
    s.rip = Vm::kCode;
    s.rflags = 0x202;  // IF, as PVM runs guest user mode anyway
    s[Gpr::Rsp] = 0x3'0000;
    return s;
}

// Guest code that stores XMM0-15, MXCSR and FCW as it finds them, then loads them from
// kLoadedByGuest and rings the doorbell.
Code store_then_load_fpu() {
    Code code;
    for (unsigned n = 0; n < 16; ++n) code.store_xmm(n, kStoredByGuest + 16 * n);
    code.stmxcsr(kStoredByGuest + 0x100).fnstcw(kStoredByGuest + 0x104);
    for (unsigned n = 0; n < 16; ++n) code.load_xmm(n, kLoadedByGuest + 16 * n);
    code.ldmxcsr(kLoadedByGuest + 0x100).fldcw(kLoadedByGuest + 0x104);
    code.store_byte(kDoorbell, 1).bytes({0xeb, 0xfe});  // jmp $
    return code;
}

struct FpuSeen {
    std::array<Register, 16> xmm;
    uint32_t mxcsr;
    uint16_t fcw;
};

FpuSeen read_fpu_block(const GuestMemory& memory, uint64_t address) {
    FpuSeen seen{};
    for (size_t n = 0; n < 16; ++n) EXPECT_TRUE(memory.read(address + 16 * n, seen.xmm[n]));
    seen.mxcsr = memory.read_obj<uint32_t>(address + 0x100).value_or(0);
    seen.fcw = memory.read_obj<uint16_t>(address + 0x104).value_or(0);
    return seen;
}

void write_fpu_block(const GuestMemory& memory, uint64_t address, const FpuSeen& block) {
    for (size_t n = 0; n < 16; ++n) ASSERT_TRUE(memory.write(address + 16 * n, block.xmm[n]));
    ASSERT_TRUE(memory.write_obj(address + 0x100, block.mxcsr));
    ASSERT_TRUE(memory.write_obj(address + 0x104, block.fcw));
}

// One round: the host sets `from_host` through set_vcpu_state(), the guest stores what it finds
// and loads `from_guest`; both directions must arrive.
void expect_fpu_round_trip(Vm& vm, const FpuSeen& from_host, const FpuSeen& from_guest, const char* round) {
    SCOPED_TRACE(round);
    write_fpu_block(vm.memory(), kLoadedByGuest, from_guest);
    auto current = vm.engine().vcpu_state(0);
    ASSERT_TRUE(current) << current.error().message;
    CpuState entry = user_mode_entry();
    entry.extended = current->extended;
    entry.extended->fpu.xmm = from_host.xmm;
    entry.extended->fpu.mxcsr = from_host.mxcsr;
    entry.extended->fpu.fcw = from_host.fcw;
    entry.extended->mp_state = MpState::Runnable;
    CpuState after = vm.run(store_then_load_fpu().get(), entry);
    ASSERT_TRUE(after.extended);

    FpuSeen seen = read_fpu_block(vm.memory(), kStoredByGuest);
    EXPECT_EQ(seen.xmm, from_host.xmm) << "the guest saw the XMM registers the host set";
    EXPECT_EQ(seen.mxcsr, from_host.mxcsr);
    EXPECT_EQ(seen.fcw, from_host.fcw);
    EXPECT_EQ(after.extended->fpu.xmm, from_guest.xmm) << "vcpu_state() reports the XMM registers the guest loaded";
    EXPECT_EQ(after.extended->fpu.mxcsr, from_guest.mxcsr);
    EXPECT_EQ(after.extended->fpu.fcw, from_guest.fcw);
}

TEST(KvmState, FpuStateMovesBothWaysAlsoWhileTheXsaveHeaderMarksItInitial) {
    if (!kvm_usable()) GTEST_SKIP() << "needs /dev/kvm (read-write)";
    Vm vm;
    vm.SetUp();
    if (::testing::Test::HasFatalFailure()) return;
    write_long_mode_tables(vm.memory());

    const FpuSeen zero{.xmm = {}, .mxcsr = 0x1f80, .fcw = 0x37f};  // SSE's initial configuration
    const FpuSeen first{.xmm = xmm_patterns(0x01), .mxcsr = 0x3f80, .fcw = 0x27f};
    const FpuSeen second{.xmm = xmm_patterns(0x81), .mxcsr = 0x1fc0, .fcw = 0x37f};
    const FpuSeen third{.xmm = xmm_patterns(0x41), .mxcsr = 0x5f80, .fcw = 0x7f};
    // A fresh vCPU; the guest leaves every XMM register zero, so that the host's XSAVE marks SSE
    // initial and the area's XMM bytes stale (they still hold `first`).
    expect_fpu_round_trip(vm, first, zero, "fresh vCPU, guest leaves XMM zero");
    // All zero before: the host's values must take all the same.
    expect_fpu_round_trip(vm, second, third, "after a run that left XMM zero");
    expect_fpu_round_trip(vm, third, first, "after a run that left XMM set");
    expect_fpu_round_trip(vm, zero, zero, "zero both ways");
}

// ---- Exits that KVM completes on the next KVM_RUN, at CPL0 in 32-bit protected mode ----

CpuState protected_mode_entry() {
    CpuState state;
    state.cs = flat_code32();
    state.ds = state.es = state.fs = state.gs = state.ss = flat_data(0x18);
    state.cr0 = cr0::PE | cr0::ET;
    state.rip = Vm::kCode;
    state[Gpr::Rsp] = 0x8000;
    return state;
}

TEST(KvmState, StopRightAfterOutReportsRipPastTheOut) {
    if (!kvm_usable()) GTEST_SKIP() << "needs /dev/kvm (read-write)";
    Vm vm;
    vm.SetUp();
    if (::testing::Test::HasFatalFailure()) return;
    const uint8_t code[] = {
        0xb0, 0x05,  // mov al, 5
        0xe6, 0xf4,  // out 0xf4, al   (stops the VM)
        0xf4,        // hlt
    };
    CpuState after = vm.run(code, protected_mode_entry());
    EXPECT_EQ(after.rip, Vm::kCode + 4) << "past the OUT, at the HLT";
}

TEST(KvmState, StopRightAfterInReportsTheReadValueAndRipPastTheIn) {
    if (!kvm_usable()) GTEST_SKIP() << "needs /dev/kvm (read-write)";
    Vm vm;
    vm.SetUp();
    if (::testing::Test::HasFatalFailure()) return;
    const uint8_t code[] = {
        0x31, 0xc0,  // xor eax, eax
        0xe4, 0xf4,  // in al, 0xf4    (stops the VM)
        0xf4,        // hlt
    };
    CpuState after = vm.run(code, protected_mode_entry());
    EXPECT_EQ(after.rip, Vm::kCode + 4);
    EXPECT_EQ(after[Gpr::Rax], StopOnAccess::kReadValue & 0xff);
}

// A new state set right after an IN exit, without reading the old one: the IN completes on the old
// state, not on top of the new registers (KVM's emulator would redo its write-back there: AL and
// the RIP after the IN).
TEST(KvmState, StateSetRightAfterAnInExitStartsCleanly) {
    if (!kvm_usable()) GTEST_SKIP() << "needs /dev/kvm (read-write)";
    Vm vm;
    vm.SetUp();
    if (::testing::Test::HasFatalFailure()) return;
    auto initial = vm.engine().vcpu_state(0);
    ASSERT_TRUE(initial) << initial.error().message;
    CpuState entry = protected_mode_entry();
    entry.extended = initial->extended;
    const uint8_t in[] = {
        0x31, 0xc0,  // xor eax, eax
        0xe4, 0xf4,  // in al, 0xf4    (stops the VM)
        0xf4,        // hlt
    };
    vm.start(in, entry);
    const uint8_t out[] = {
        0xb0, 0x07,  // mov al, 7
        0xe6, 0xf4,  // out 0xf4, al   (stops the VM with 7)
        0xb0, 0x09,  // mov al, 9      (where the IN would have returned to)
        0xe6, 0xf4,  // out 0xf4, al
        0xf4,        // hlt
    };
    StopReason reason = vm.start(out, entry);
    EXPECT_EQ(reason.value, 7u) << "the new state ran from its first instruction";
    auto after = vm.engine().vcpu_state(0);
    ASSERT_TRUE(after) << after.error().message;
    EXPECT_EQ(after->rip, Vm::kCode + 4);
    EXPECT_EQ(after->gpr[0] & 0xff, 7u);
}

TEST(KvmState, StopRightAfterMmioReadReportsTheReadValue) {
    if (!kvm_usable()) GTEST_SKIP() << "needs /dev/kvm (read-write)";
    Vm vm;
    vm.SetUp();
    if (::testing::Test::HasFatalFailure()) return;
    const uint8_t code[] = {
        0x31, 0xc0,                    // xor eax, eax
        0xa1, 0x00, 0x00, 0x00, 0xd0,  // mov eax, [0xd0000000]  (stops the VM)
        0xf4,                          // hlt
    };
    CpuState after = vm.run(code, protected_mode_entry());
    EXPECT_EQ(after.rip, Vm::kCode + 7);
    EXPECT_EQ(after[Gpr::Rax], StopOnAccess::kReadValue & 0xffff'ffff);
}

// A string input stopped after its first piece: the completing KVM_RUN stores what the device
// returned, and KVM may go on with further pieces (the buses serve them) or stop between two
// iterations; either way memory, RDI, RCX and RIP agree with each other, and none of the data
// the device handed out is lost.
TEST(KvmState, StopInsideStringInputLeavesAConsistentState) {
    if (!kvm_usable()) GTEST_SKIP() << "needs /dev/kvm (read-write)";
    Vm vm;
    vm.SetUp();
    if (::testing::Test::HasFatalFailure()) return;
    constexpr uint64_t kBuffer = 0x2'0000, kCount = 0x3000;
    const uint8_t code[] = {
        0xbf, 0x00, 0x00, 0x02, 0x00,  // mov edi, 0x20000
        0xb9, 0x00, 0x30, 0x00, 0x00,  // mov ecx, 0x3000
        0x66, 0xba, 0xf4, 0x00,        // mov dx, 0xf4
        0xfc,                          // cld
        0xf3, 0x6c,                    // rep insb   (stops the VM)
        0xf4,                          // hlt
    };
    constexpr uint64_t kRepInsb = Vm::kCode + 15;
    CpuState after = vm.run(code, protected_mode_entry());
    uint64_t done = kCount - after[Gpr::Rcx];
    EXPECT_GT(done, 0u) << "the first piece's data reached memory";
    EXPECT_EQ(after[Gpr::Rdi], kBuffer + done);
    EXPECT_EQ(after.rip, done == kCount ? kRepInsb + 2 : kRepInsb);
    std::vector<uint8_t> buffer(kCount + 16);
    ASSERT_TRUE(vm.memory().read(kBuffer, buffer));
    auto first_unfilled =
        std::ranges::find_if(buffer, [](uint8_t b) { return b != (StopOnAccess::kReadValue & 0xff); });
    EXPECT_EQ(static_cast<uint64_t>(first_unfilled - buffer.begin()), done);
}

// At CPL3 with IOPL 3, where PVM hosts run the guest natively and KVM takes the OUT on its fast
// path (RIP advances only on the next KVM_RUN).
TEST(KvmState, StopRightAfterUserModeOutReportsRipPastTheOut) {
    if (!kvm_usable()) GTEST_SKIP() << "needs /dev/kvm (read-write)";
    Vm vm;
    vm.SetUp();
    if (::testing::Test::HasFatalFailure()) return;
    write_long_mode_tables(vm.memory());
    const uint8_t code[] = {
        0xb0, 0x05,  // mov al, 5
        0xe6, 0xf4,  // out 0xf4, al   (stops the VM)
        0xeb, 0xfe,  // jmp $
    };
    CpuState entry = user_mode_entry();
    entry.rflags |= 3u << 12;  // IOPL 3
    CpuState after = vm.run(code, entry);
    EXPECT_EQ(after.rip, Vm::kCode + 4) << "past the OUT";
}

}  // namespace
}  // namespace strata
