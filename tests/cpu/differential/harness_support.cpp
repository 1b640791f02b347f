// The differential harness's guest and runner: builds the long-mode CPL3 environment of
// harness.hpp in guest memory, runs a case on one engine and reads back what it left behind.
#include <gtest/gtest.h>

#include <cpuid.h>

#include <algorithm>
#include <condition_variable>
#include <chrono>
#include <cstring>
#include <mutex>

#include "base/bytes.hpp"
#include "cpu/differential/harness.hpp"
#include "cpu/soft/jit/translator.hpp"

namespace strata::differential {

bool host_is_amd() {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return false;
    char vendor[13] = {};
    std::memcpy(vendor, &ebx, 4);
    std::memcpy(vendor + 4, &edx, 4);
    std::memcpy(vendor + 8, &ecx, 4);
    return std::string(vendor) == "AuthenticAMD";
}

namespace {

using namespace layout;

// The supervisor side of the layout and the harness's own user pages (not visible to cases).
constexpr uint64_t kGdt = 0x1000, kTss = 0x1800, kIdt = 0x2000, kStubs = 0x3000;
constexpr uint64_t kKernelStack = 0x4000, kKernelStackTop = 0x5000;
constexpr uint64_t kPml4 = 0x8000, kPdpt = 0x9000, kPd = 0xa000, kPt = 0xb000;
constexpr uint64_t kHarnessCode = 0x2'0000;  // user read-only, executable: the routines below
constexpr uint64_t kPrologue = kHarnessCode, kEndRoutine = kHarnessCode + 0x100, kDumpRoutine = kHarnessCode + 0x200;
constexpr uint64_t kXmmPage = 0x4'5000;  // user read-write: XMM in and out
constexpr uint64_t kXmmIn = kXmmPage, kXmmOut = kXmmPage + 0x200;  // 16 XMM registers, then MXCSR
constexpr uint64_t kXmmBlockSize = 0x104;
constexpr uint64_t kDoorbell = 0x4'6000;          // user read-write, mapped to MMIO ...
constexpr uint64_t kDoorbellGpa = 0xd000'0000;    // ... here, in the PC's MMIO hole
constexpr uint64_t kMemorySize = 2 * 1024 * 1024;
constexpr uint64_t kPage = 0x1000;

// Doorbell values: the case reached its end, or raised an exception.
constexpr uint8_t kRangAtEnd = 1, kRangAtException = 2;

// GDT selectors (index << 3 | RPL).
constexpr uint16_t kKernelCode = 0x08, kUserData = 0x1b, kUserCode = 0x23, kTssSelector = 0x28;

// Page-table entry bits (SDM vol. 3A §4.5, table 4-19).
namespace pte {
constexpr uint64_t P = 1u << 0, RW = 1u << 1, US = 1u << 2, NX = 1ull << 63;
}

// Vectors for which the CPU pushes an error code (SDM vol. 3A §6.3.1, table 6-1).
constexpr bool has_error_code(unsigned vector) {
    return vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21 || vector == 29 ||
           vector == 30;
}

// The exception frame the stubs leave on the kernel stack: the stub's vector and error code, then
// what the CPU pushed (SDM vol. 3A §6.14.2, figure 6-9).
struct Frame {
    uint64_t vector, error_code, rip, cs, rflags, rsp, ss;
};
constexpr uint64_t kFrameAddress = kKernelStackTop - sizeof(Frame);

// Machine code of the harness's routines, encoded here so that they need no assembler.
class Emitter {
public:
    void bytes(std::initializer_list<uint8_t> b) { code_.insert(code_.end(), b); }
    void imm32(uint64_t value) {
        for (unsigned i = 0; i < 4; ++i) code_.push_back(static_cast<uint8_t>(value >> (8 * i)));
    }
    // An instruction `prefix [REX] 0F op` whose ModRM names register `reg` and the absolute
    // address `address` (ModRM.rm = 100, SIB = no base, no index: disp32).
    void absolute(std::initializer_list<uint8_t> prefix, uint8_t op, unsigned reg, uint64_t address) {
        bytes(prefix);
        if (reg >= 8) code_.push_back(0x44);  // REX.R
        bytes({0x0f, op, static_cast<uint8_t>(((reg & 7) << 3) | 4), 0x25});
        imm32(address);
    }
    void load_xmm(unsigned n, uint64_t address) { absolute({0xf3}, 0x6f, n, address); }   // movdqu xmmN, [a]
    void store_xmm(unsigned n, uint64_t address) { absolute({0xf3}, 0x7f, n, address); }  // movdqu [a], xmmN
    void ldmxcsr(uint64_t address) { absolute({}, 0xae, 2, address); }
    void stmxcsr(uint64_t address) { absolute({}, 0xae, 3, address); }
    void store_byte(uint64_t address, uint8_t value) {  // mov byte ptr [address], value
        bytes({0xc6, 0x04, 0x25});
        imm32(address);
        code_.push_back(value);
    }
    void jump(uint64_t from, uint64_t to) {  // jmp rel32, the instruction at `from`
        code_.push_back(0xe9);
        imm32(to - (from + code_.size() + 4));
    }
    void spin() { bytes({0xeb, 0xfe}); }  // jmp $
    [[nodiscard]] const std::vector<uint8_t>& code() const { return code_; }

private:
    std::vector<uint8_t> code_;
};

// Where a finished case's vCPU spins: at the end of the end routine or of the dump routine.
// Both save XMM and MXCSR for the harness, then ring the doorbell: an MMIO write, which wakes the
// harness from the engine's MMIO exit, on the vCPU thread. (Why not the engine's FPU state: KVM's
// KVM_GET_FPU/KVM_SET_FPU miss the registers while the XSAVE header marks the SSE state initial,
// which it does after any case that leaves XMM zero. Why not a port write: KVM's fast OUT path
// advances RIP only when the vCPU next enters KVM_RUN, and the harness stops the engine at once;
// an emulated MMIO write has advanced RIP before the exit, and the runner checks that it did.)
std::vector<uint8_t> finish_routine(uint8_t doorbell) {
    Emitter e;
    for (unsigned n = 0; n < 16; ++n) e.store_xmm(n, kXmmOut + 16 * n);
    e.stmxcsr(kXmmOut + 0x100);
    e.store_byte(kDoorbell, doorbell);
    e.spin();
    return e.code();
}
// Where the vCPU spins at the end of a finish routine, relative to its start.
uint64_t spin_offset() { return finish_routine(kRangAtEnd).size() - 2; }

std::vector<uint8_t> harness_code() {
    Emitter prologue;
    for (unsigned n = 0; n < 16; ++n) prologue.load_xmm(n, kXmmIn + 16 * n);
    prologue.ldmxcsr(kXmmIn + 0x100);
    prologue.jump(kPrologue, kCode);
    std::vector<uint8_t> page(kPage, 0xcc);
    std::ranges::copy(prologue.code(), page.begin());
    std::ranges::copy(finish_routine(kRangAtEnd), page.begin() + (kEndRoutine - kHarnessCode));
    std::ranges::copy(finish_routine(kRangAtException), page.begin() + (kDumpRoutine - kHarnessCode));
    return page;
}

// The exception stub of `vector` (CPL0): completes the frame with the vector (and a 0 error code
// where the CPU pushes none), then returns to the dump routine at CPL3 with the faulting RSP and
// RFLAGS, so that the general registers stay as the fault left them.
std::vector<uint8_t> exception_stub(unsigned vector) {
    Emitter e;
    if (!has_error_code(vector)) e.bytes({0x6a, 0x00});     // push 0
    e.bytes({0x6a, static_cast<uint8_t>(vector)});           // push vector
    e.bytes({0x6a, kUserData});                              // push SS
    e.bytes({0xff, 0x74, 0x24, 0x30});                       // push [rsp + 48]: the frame's RSP
    e.bytes({0xff, 0x74, 0x24, 0x30});                       // push [rsp + 48]: the frame's RFLAGS
    e.bytes({0x6a, kUserCode});                              // push CS
    e.bytes({0x68});                                         // push the dump routine's address
    e.imm32(kDumpRoutine);
    e.bytes({0x48, 0xcf});                                   // iretq
    return e.code();
}
constexpr uint64_t kStubSize = 32;

void put64(std::vector<uint8_t>& page, uint64_t offset, uint64_t value) {
    store_le(std::span(page).subspan(offset, 8), value);
}

// A segment descriptor (SDM vol. 3A §3.4.5) of a flat segment with access byte `access` and
// flags nibble `flags` (G, D/B, L, AVL).
uint64_t flat_descriptor(uint8_t access, uint8_t flags) {
    return 0xffffull | (uint64_t{access} << 40) | (0xfull << 48) | (uint64_t{flags} << 52);
}

// The harness's pages, as (address, bytes) to write before every case.
std::vector<std::pair<uint64_t, std::vector<uint8_t>>> system_pages() {
    std::vector<uint8_t> gdt(kPage, 0);
    put64(gdt, 0x08, flat_descriptor(0x9b, 0xa));  // kernel code: present, DPL0, execute/read, L, G
    put64(gdt, 0x10, flat_descriptor(0x93, 0xc));  // kernel data: read/write, D/B, G
    put64(gdt, 0x18, flat_descriptor(0xf3, 0xc));  // user data: DPL3
    put64(gdt, 0x20, flat_descriptor(0xfb, 0xa));  // user code: DPL3, L
    // The 64-bit TSS descriptor, busy as the task register says (SDM vol. 3A §7.2.3).
    constexpr uint64_t kTssLimit = 0x67;
    put64(gdt, 0x28, kTssLimit | ((kTss & 0xff'ffff) << 16) | (0x8bull << 40) | (((kTss >> 24) & 0xff) << 56));
    put64(gdt, 0x30, kTss >> 32);
    // The TSS (SDM vol. 3A §7.7, figure 7-11): RSP0, and no I/O permission bitmap.
    uint64_t tss = kTss - kGdt;
    put64(gdt, tss + 4, kKernelStackTop);
    store_le(std::span(gdt).subspan(tss + 0x66, 2), kTssLimit + 1);

    // Vectors 0-31 reach their stubs through 64-bit interrupt gates (SDM vol. 3A §6.14.1); #BP
    // and #OF are DPL3 so that INT3 and INTO from user mode reach them, as under an OS.
    std::vector<uint8_t> idt(kPage, 0), stubs(kPage, 0xcc);
    for (unsigned vector = 0; vector < 32; ++vector) {
        uint64_t stub = kStubs + vector * kStubSize;
        uint64_t dpl = (vector == 3 || vector == 4) ? 3 : 0;
        uint64_t low = (stub & 0xffff) | (uint64_t{kKernelCode} << 16) | (0xeull << 40) | (dpl << 45) |
                       (1ull << 47) | (((stub >> 16) & 0xffff) << 48);
        put64(idt, vector * 16, low);
        put64(idt, vector * 16 + 8, stub >> 32);
        std::ranges::copy(exception_stub(vector), stubs.begin() + static_cast<std::ptrdiff_t>(vector * kStubSize));
    }

    // Identity-mapped 4-level paging over the first 2 MiB with 4 KiB pages (SDM vol. 3A §4.5),
    // except the doorbell page. The upper levels allow everything; the page-table entries decide.
    std::vector<uint8_t> pml4(kPage, 0), pdpt(kPage, 0), pd(kPage, 0), pt(kPage, 0);
    put64(pml4, 0, kPdpt | pte::P | pte::RW | pte::US);
    put64(pdpt, 0, kPd | pte::P | pte::RW | pte::US);
    put64(pd, 0, kPt | pte::P | pte::RW | pte::US);
    auto map = [&](uint64_t address, uint64_t size, uint64_t flags) {
        for (uint64_t page = address; page < address + size; page += kPage) put64(pt, page / kPage * 8, page | flags);
    };
    map(kGdt, kPage, pte::P | pte::RW | pte::NX);  // GDT and TSS
    map(kIdt, kPage, pte::P | pte::RW | pte::NX);
    map(kStubs, kPage, pte::P);
    map(kKernelStack, kPage, pte::P | pte::RW | pte::NX);
    map(kCode, kCodeSize, pte::P | pte::RW | pte::US);
    map(kHarnessCode, kPage, pte::P | pte::US);
    map(kStack, kStackSize, pte::P | pte::RW | pte::US | pte::NX);
    map(kData, kDataSize, pte::P | pte::RW | pte::US | pte::NX);
    map(kReadOnly, kPage, pte::P | pte::US | pte::NX);
    map(kSupervisor, kPage, pte::P | pte::RW | pte::NX);
    map(kXmmPage, kPage, pte::P | pte::RW | pte::US | pte::NX);
    put64(pt, kDoorbell / kPage * 8, kDoorbellGpa | pte::P | pte::RW | pte::US | pte::NX);

    return {{kGdt, std::move(gdt)}, {kIdt, std::move(idt)}, {kStubs, std::move(stubs)},
            {kHarnessCode, harness_code()}, {kPml4, std::move(pml4)}, {kPdpt, std::move(pdpt)},
            {kPd, std::move(pd)}, {kPt, std::move(pt)}};
}

SegmentState user_segment(uint16_t selector, uint8_t type, bool code) {
    return {.base = 0, .limit = 0xffff'ffff, .selector = selector, .type = type, .present = true, .dpl = 3,
            .db = !code, .s = true, .l = code, .g = true};
}

// The case's entry state: CPL3 in 64-bit mode, paging, SSE usable (SDM vol. 3A §9.8.5 for the
// long-mode control-register set-up), at the prologue that loads XMM and MXCSR. IF is set as in
// any OS's user mode (PVM runs guest user mode with IF=1 whatever RFLAGS says: PUSHFQ shows it);
// nothing raises interrupts.
CpuState entry_state(const Case& c, const ExtendedCpuState& extended) {
    CpuState s;
    s.cs = user_segment(kUserCode, 0xb, true);
    s.ss = s.ds = s.es = s.fs = s.gs = user_segment(kUserData, 0x3, false);
    s.tr = {.base = kTss, .limit = 0x67, .selector = kTssSelector, .type = 0xb, .present = true, .dpl = 0,
            .db = false, .s = false, .l = false, .g = false};
    s.ldt = {.base = 0, .limit = 0, .selector = 0, .type = 0x2, .present = false, .dpl = 0, .db = false,
             .s = false, .l = false, .g = false, .avl = false, .unusable = true};
    s.gdt = {kGdt, 0x37};
    s.idt = {kIdt, 32 * 16 - 1};
    s.cr0 = cr0::PE | cr0::MP | cr0::ET | cr0::NE | cr0::WP | cr0::PG;
    s.cr3 = kPml4;
    s.cr4 = cr4::PAE | cr4::OSFXSR | cr4::OSXMMEXCPT;
    s.efer = efer::LME | efer::LMA | efer::NXE | efer::SCE;
    s.rip = kPrologue;
    s.rflags = 0x2 | flag::IF | (c.flags & (flag::kStatus | flag::DF));
    s[Gpr::Rsp] = kStackTop;
    for (auto [reg, value] : c.regs) s[reg] = value;

    ExtendedCpuState x = extended;
    x.fpu = FpuState{};  // FNINIT's x87 state; XMM and MXCSR come from the prologue
    x.events = PendingEvents{};
    x.mp_state = MpState::Runnable;
    s.extended = std::move(x);
    return s;
}

// The XMM_IN block of a case: XMM0-15, then MXCSR.
std::vector<uint8_t> xmm_in(const Case& c) {
    std::vector<uint8_t> block(kXmmBlockSize, 0);
    for (auto [index, value] : c.xmm) {
        if (index >= 16) continue;
        store_le(std::span(block).subspan(16 * index, 8), value.low);
        store_le(std::span(block).subspan(16 * index + 8, 8), value.high);
    }
    store_le(std::span(block).subspan(0x100, 4), c.mxcsr);
    return block;
}

// What wakes the runner: the doorbell the guest rings when it is done, or a stop an engine
// requests (triple fault, emulation failure). Both come on the vCPU thread.
class Wakeup final : public MachineControl, public BusDevice {
public:
    void request_stop(StopReason reason) override {
        std::lock_guard lock(mutex_);
        if (!reason_) reason_ = std::move(reason);
        woken_.notify_all();
    }
    void read(uint64_t, std::span<uint8_t> data) override { store_le(data, 0); }
    void write(uint64_t, std::span<const uint8_t> data) override {
        std::lock_guard lock(mutex_);
        if (rung_ == 0) rung_ = static_cast<uint8_t>(load_le(data));
        woken_.notify_all();
    }
    void reset() {
        std::lock_guard lock(mutex_);
        reason_.reset();
        rung_ = 0;
    }
    // Waits until the doorbell rang (its value) or a stop came or time ran out (0).
    uint8_t wait(std::chrono::steady_clock::duration timeout) {
        std::unique_lock lock(mutex_);
        woken_.wait_for(lock, timeout, [&] { return rung_ != 0 || reason_.has_value(); });
        return rung_;
    }
    [[nodiscard]] std::optional<StopReason> reason() {
        std::lock_guard lock(mutex_);
        return reason_;
    }

private:
    std::mutex mutex_;
    std::condition_variable woken_;
    uint8_t rung_ = 0;
    std::optional<StopReason> reason_;
};

std::vector<uint8_t> read_bytes(const GuestMemory& memory, uint64_t address, uint64_t size) {
    std::vector<uint8_t> bytes(size);
    if (!memory.read(address, bytes)) bytes.clear();
    return bytes;
}

}  // namespace

class Runner::Impl {
public:
    Impl(EngineKind kind, GuestMemory memory) : kind_(kind), memory_(std::move(memory)) {}

    Result<void> init() {
        if (auto r = mmio_.add(kDoorbellGpa, kPage, wakeup_, "doorbell"); !r) return r;
        auto engine = testing::make_engine(kind_, memory_, 1);
        if (!engine) return std::unexpected(engine.error());
        engine_ = std::move(*engine);
        auto state = engine_->vcpu_state(0);
        if (!state) return context(state.error(), "reading the vCPU's initial state");
        if (!state->extended) return fail("{} engine reports no extended vCPU state", engine_->name());
        extended_ = std::move(*state->extended);
        pages_ = system_pages();
        return {};
    }

    ~Impl() {
        if (engine_) {
            engine_->stop();
            engine_->join();
        }
    }

    [[nodiscard]] std::string_view engine_name() const { return engine_->name(); }

    Outcome run(const Case& c, std::span<const uint8_t> code) {
        Outcome outcome;
        if (code.size() > kCodeSize - kCaseExitSize) {
            outcome.failure = fmt::format("{} bytes of code do not fit the {:#x}-byte code area", code.size(), kCodeSize);
            return outcome;
        }
        if (auto r = write_memory(c, code); !r) {
            outcome.failure = r.error().message;
            return outcome;
        }
        wakeup_->reset();
        if (auto r = engine_->prepare_resume(entry_state(c, extended_)); !r) {
            outcome.failure = context(r.error(), "setting the entry state").error().message;
            return outcome;
        }
        if (auto r = engine_->start(platform_); !r) {
            outcome.failure = context(r.error(), "starting the vCPU").error().message;
            return outcome;
        }
        uint8_t rung = wakeup_->wait(std::chrono::seconds(10));
        engine_->stop();
        engine_->join();
        auto state = engine_->vcpu_state(0);
        if (!state) {
            outcome.failure = state.error().message;
            return outcome;
        }
        return read_outcome(c, code, rung, *state);
    }

private:
    // The case's code is followed by a jump to the end routine.
    static constexpr uint64_t kCaseExitSize = 5;

    Result<void> write_memory(const Case& c, std::span<const uint8_t> code) {
        for (const auto& [address, bytes] : pages_)
            if (auto r = memory_.write(address, bytes); !r) return r;
        std::vector<uint8_t> area(kCodeSize, 0);
        std::ranges::copy(code, area.begin());
        Emitter exit;
        exit.jump(kCode + code.size(), kEndRoutine);
        std::ranges::copy(exit.code(), area.begin() + static_cast<std::ptrdiff_t>(code.size()));
        if (auto r = memory_.write(kCode, area); !r) return r;
        std::vector<uint8_t> data(kDataSize, 0);
        std::copy_n(c.data.begin(), std::min<size_t>(c.data.size(), kDataSize), data.begin());
        if (auto r = memory_.write(kData, data); !r) return r;
        if (auto r = memory_.write(kStack, std::vector<uint8_t>(kStackSize, 0)); !r) return r;
        if (auto r = memory_.write(kReadOnly, std::vector<uint8_t>(kPage, 0xa5)); !r) return r;
        if (auto r = memory_.write(kSupervisor, std::vector<uint8_t>(kPage, 0x5a)); !r) return r;
        if (auto r = memory_.write(kKernelStack, std::vector<uint8_t>(kPage, 0)); !r) return r;
        std::vector<uint8_t> xmm(kPage, 0);
        std::ranges::copy(xmm_in(c), xmm.begin() + (kXmmIn - kXmmPage));
        return memory_.write(kXmmPage, xmm);
    }

    Outcome read_outcome(const Case& c, std::span<const uint8_t> code, uint8_t rung, const CpuState& state) {
        Outcome outcome;
        outcome.gpr = state.gpr;
        outcome.rflags = state.rflags;
        auto saved = read_bytes(memory_, kXmmOut, kXmmBlockSize);
        if (saved.size() == kXmmBlockSize) {
            for (size_t i = 0; i < 16; ++i)
                outcome.xmm[i] = {load_le(std::span(saved).subspan(16 * i, 8)),
                                  load_le(std::span(saved).subspan(16 * i + 8, 8))};
            outcome.mxcsr = static_cast<uint32_t>(load_le(std::span(saved).subspan(0x100, 4)));
        }
        outcome.data = read_bytes(memory_, kData, kDataSize);
        outcome.stack = read_bytes(memory_, kStack, kStackSize);
        outcome.rip = state.rip - kCode;

        if (rung == kRangAtEnd) {
            if (state.rip != kEndRoutine + spin_offset() || state.cs.selector != kUserCode)
                outcome.failure = fmt::format("the case ended at {:04x}:{:#x}, not in the end routine",
                                              state.cs.selector, state.rip);
            outcome.rip = code.size();
            return outcome;
        }
        if (rung == kRangAtException) {
            auto frame = memory_.read_obj<Frame>(kFrameAddress);
            if (!frame) {
                outcome.failure = frame.error().message;
                return outcome;
            }
            // A second exception inside the stub would have left its frame on the kernel stack
            // and returned to the dump routine with the kernel's RSP.
            if (frame->cs != kUserCode || state[Gpr::Rsp] != frame->rsp ||
                state.rip != kDumpRoutine + spin_offset())
                outcome.failure = fmt::format("exception {} at {:04x}:{:#x} (rsp {:#x}) not taken from the case",
                                              frame->vector, frame->cs, frame->rip, state[Gpr::Rsp]);
            outcome.rip = frame->rip - kCode;
            outcome.rflags = frame->rflags;
            outcome.exception = Exception{.vector = static_cast<uint8_t>(frame->vector),
                                          .error_code = frame->error_code, .cr2 = state.cr2};
            return outcome;
        }
        if (auto reason = wakeup_->reason())
            outcome.failure = fmt::format("the engine stopped the VM: {}", reason->detail);
        else
            outcome.failure = fmt::format("'{}' did not finish within 10 s (rip={:#x})", c.name, state.rip);
        return outcome;
    }

    EngineKind kind_;
    GuestMemory memory_;
    Bus pio_{"pio"}, mmio_{"mmio"};
    std::shared_ptr<Wakeup> wakeup_ = std::make_shared<Wakeup>();
    Platform platform_{memory_, pio_, mmio_, *wakeup_};
    std::unique_ptr<CpuEngine> engine_;
    ExtendedCpuState extended_;
    std::vector<std::pair<uint64_t, std::vector<uint8_t>>> pages_;
};

Result<std::unique_ptr<Runner>> Runner::create(EngineKind kind) {
    auto memory = GuestMemory::create(kMemorySize);
    if (!memory) return std::unexpected(memory.error());
    auto impl = std::make_unique<Impl>(kind, std::move(*memory));
    if (auto r = impl->init(); !r) return std::unexpected(r.error());
    return std::unique_ptr<Runner>(new Runner(std::move(impl)));
}

Runner::Runner(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Runner::~Runner() = default;

std::string_view Runner::engine_name() const { return impl_->engine_name(); }

Outcome Runner::run(const Case& c, std::span<const uint8_t> code) { return impl_->run(c, code); }

Result<std::vector<Outcome>> Runner::run_all(std::span<const Case> cases) {
    auto code = assemble(cases);
    if (!code) return std::unexpected(code.error());
    std::vector<Outcome> outcomes;
    outcomes.reserve(cases.size());
    for (size_t i = 0; i < cases.size(); ++i) outcomes.push_back(run(cases[i], (*code)[i]));
    return outcomes;
}

namespace {

// A runner whose soft engine translates every block before its first run (jit/translator.hpp),
// so that the translated code meets every case too.
Result<std::unique_ptr<Runner>> create_translating(EngineKind kind) {
    unsigned threshold = soft::Translator::threshold();
    soft::Translator::set_threshold(0);
    auto runner = Runner::create(kind);
    soft::Translator::set_threshold(threshold);
    return runner;
}

}  // namespace

void compare(EngineKind reference, EngineKind candidate, std::span<const Case> cases) {
    auto a = Runner::create(reference);
    if (!a) GTEST_SKIP() << engine_name(reference) << " engine unavailable: " << a.error().message;
    auto b = Runner::create(candidate);
    if (!b) GTEST_SKIP() << engine_name(candidate) << " engine unavailable: " << b.error().message;
    // The soft engine is compared twice: as threaded code and translated.
    std::unique_ptr<Runner> translated;
    if (candidate == EngineKind::Soft) {
        auto runner = create_translating(candidate);
        ASSERT_TRUE(runner) << runner.error().message;
        translated = std::move(*runner);
    }
    auto code = assemble(cases);
    ASSERT_TRUE(code) << code.error().message;
    // Names tell the two apart also when both runners are the same engine.
    std::string a_name = fmt::format("{}(a)", (*a)->engine_name()), b_name = fmt::format("{}(b)", (*b)->engine_name());
    if (reference != candidate) a_name = (*a)->engine_name(), b_name = (*b)->engine_name();
    std::string t_name = b_name + "-translated";
    constexpr size_t kReportedCases = 20;
    size_t differing = 0;
    for (size_t i = 0; i < cases.size(); ++i) {
        Outcome oa = (*a)->run(cases[i], (*code)[i]);
        Outcome ob = (*b)->run(cases[i], (*code)[i]);
        uint64_t unchecked = cases[i].undefined_flags | cases[i].model_flags;
        std::string differences = diff(oa, ob, unchecked, a_name, b_name);
        if (translated) {
            Outcome ot = translated->run(cases[i], (*code)[i]);
            // Undefined flags too: the translation must leave them as the threaded code does.
            std::string translation = diff(ob, ot, 0, b_name, t_name);
            if (!translation.empty())
                differences += translation + "--- " + t_name + ":\n" + describe(ot);
        }
        if (differences.empty()) continue;
        if (++differing > kReportedCases) continue;
        ADD_FAILURE() << "case '" << cases[i].name << "':\n"
                      << cases[i].code << "\n--- differences:\n"
                      << differences << "--- " << a_name << ":\n"
                      << describe(oa) << "--- " << b_name << ":\n"
                      << describe(ob);
    }
    if (differing > kReportedCases)
        ADD_FAILURE() << differing << " of " << cases.size() << " cases differ (the first " << kReportedCases
                      << " are shown)";
}

}  // namespace strata::differential
