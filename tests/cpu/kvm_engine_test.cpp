// The kvm engine against real KVM: a few instructions of 32-bit guest code whose port I/O and
// MMIO must arrive at the buses, and whose debug-exit write must stop the VM. Needs /dev/kvm.
#include "cpu/kvm/kvm_engine.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "base/bytes.hpp"
#include "base/checked.hpp"

namespace strata {
namespace {

bool kvm_usable() {
    int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) return false;
    ::close(fd);
    return true;
}

struct Access {
    uint64_t address;
    uint64_t value;
    size_t size;
    bool write;
};

// Records accesses; reads return 0x11223344...; a write to offset 0 of the "exit" device stops.
class Recorder : public BusDevice {
public:
    explicit Recorder(std::vector<Access>& log) : log_(log) {}
    void read(uint64_t offset, std::span<uint8_t> data) override {
        store_le(data, 0x1122334455667788ull);
        log_.push_back({offset, load_le(data), data.size(), false});
    }
    void write(uint64_t offset, std::span<const uint8_t> data) override {
        log_.push_back({offset, load_le(data), data.size(), true});
    }

private:
    std::vector<Access>& log_;
};

class StopRecorder : public MachineControl {
public:
    void request_stop(StopReason reason) override {
        std::lock_guard lock(mutex_);
        if (!reason_) reason_ = std::move(reason);
        if (engine) engine->stop();
        stopped_.notify_all();
    }
    StopReason wait() {
        std::unique_lock lock(mutex_);
        stopped_.wait_for(lock, std::chrono::seconds(60), [&] { return reason_.has_value(); });
        return reason_.value_or(StopReason{StopKind::HostError, 0, "timed out"});
    }
    CpuEngine* engine = nullptr;

private:
    std::mutex mutex_;
    std::condition_variable stopped_;
    std::optional<StopReason> reason_;
};

class DebugExitDevice : public BusDevice {
public:
    explicit DebugExitDevice(MachineControl& control) : control_(control) {}
    void read(uint64_t, std::span<uint8_t> data) override { store_le(data, 0); }
    void write(uint64_t, std::span<const uint8_t> data) override {
        control_.request_stop({StopKind::DebugExit, static_cast<uint32_t>(load_le(data)), "debug exit"});
    }

private:
    MachineControl& control_;
};

CpuState protected_mode_at(uint64_t rip) {
    CpuState state;
    state.cs = flat_code32();
    state.ds = state.es = state.fs = state.gs = state.ss = flat_data(0x18);
    state.cr0 = cr0::PE | cr0::ET;
    state.rip = rip;
    state[Gpr::Rsp] = 0x8000;
    return state;
}

// What a run of guest code left behind: how it stopped and what reached the buses.
struct GuestRun {
    StopReason reason;
    std::vector<Access> pio;   // accesses to ports 0x80-0x87
    std::vector<Access> mmio;  // accesses to [0xd0000000, 0xd0000100)
};

// Runs `code`, placed at 0x1000, from `state` on `cpus` vCPUs until it stops (debug-exit at 0xf4).
GuestRun run_guest(std::span<const uint8_t> code, CpuState state = protected_mode_at(0x1000), unsigned cpus = 1) {
    GuestRun run;
    auto memory = GuestMemory::create(16 * MiB);
    EXPECT_TRUE(memory);
    EXPECT_TRUE(memory->write(0x1000, code));
    Bus pio("pio"), mmio("mmio");
    StopRecorder control;
    EXPECT_TRUE(pio.add(0x80, 8, std::make_shared<Recorder>(run.pio), "recorder"));
    EXPECT_TRUE(pio.add(0xf4, 4, std::make_shared<DebugExitDevice>(control), "debug-exit"));
    EXPECT_TRUE(mmio.add(0xd000'0000, 0x100, std::make_shared<Recorder>(run.mmio), "mmio recorder"));
    auto engine = kvm::KvmEngine::create(*memory, cpus);
    if (!engine) {
        ADD_FAILURE() << engine.error().message;
        return run;
    }
    control.engine = engine->get();
    EXPECT_TRUE((*engine)->set_boot_state(state));
    Platform platform{*memory, pio, mmio, control};
    EXPECT_TRUE((*engine)->start(platform));
    run.reason = control.wait();
    (*engine)->join();
    return run;
}

TEST(KvmEngine, PortIoAndMmioReachTheBusesAndDebugExitStops) {
    if (!kvm_usable()) GTEST_SKIP() << "needs /dev/kvm (read-write)";
    const uint8_t code[] = {
        0xb0, 0x42,                          // mov al, 0x42
        0xe6, 0x80,                          // out 0x80, al
        0xb8, 0x78, 0x56, 0x34, 0x12,        // mov eax, 0x12345678
        0xa3, 0x00, 0x00, 0x00, 0xd0,        // mov [0xd0000000], eax
        0xa1, 0x10, 0x00, 0x00, 0xd0,        // mov eax, [0xd0000010]
        0xe7, 0x81,                          // out 0x81, eax
        0xb0, 0x05,                          // mov al, 5
        0xe6, 0xf4,                          // out 0xf4, al
        0xf4, 0xeb, 0xfd,                    // hlt; jmp hlt
    };
    GuestRun run = run_guest(code);
    EXPECT_EQ(run.reason.kind, StopKind::DebugExit) << run.reason.detail;
    EXPECT_EQ(run.reason.value, 5u);
    EXPECT_EQ(run.reason.exit_status(), 11);
    ASSERT_EQ(run.pio.size(), 2u);
    EXPECT_TRUE(run.pio[0].write);
    EXPECT_EQ(run.pio[0].value, 0x42u);
    EXPECT_EQ(run.pio[0].size, 1u);
    EXPECT_EQ(run.pio[1].address, 1u);
    EXPECT_EQ(run.pio[1].value, 0x55667788u);  // what the MMIO read returned
    EXPECT_EQ(run.pio[1].size, 4u);
    ASSERT_EQ(run.mmio.size(), 2u);
    EXPECT_TRUE(run.mmio[0].write);
    EXPECT_EQ(run.mmio[0].value, 0x12345678u);
    EXPECT_FALSE(run.mmio[1].write);
    EXPECT_EQ(run.mmio[1].address, 0x10u);
}

TEST(KvmEngine, TripleFaultIsReportedWithRegisters) {
    if (!kvm_usable()) GTEST_SKIP() << "needs /dev/kvm (read-write)";
    const uint8_t code[] = {0x0f, 0x0b};  // ud2 with an empty IDT: #UD → #DF → shutdown
    CpuState state = protected_mode_at(0x1000);
    state.idt = {0, 0};
    GuestRun run = run_guest(code, state);
    EXPECT_EQ(run.reason.kind, StopKind::TripleFault) << run.reason.detail;
    EXPECT_EQ(run.reason.exit_status(), 4);
    EXPECT_NE(run.reason.detail.find("rip=0000000000001000"), std::string::npos) << run.reason.detail;
}

TEST(KvmEngine, GuestSeesThePolicysCpuid) {
    if (!kvm_usable()) GTEST_SKIP() << "needs /dev/kvm (read-write)";
    const uint8_t code[] = {
        0xb8, 0x01, 0x00, 0x00, 0x00,  // mov eax, 1
        0x0f, 0xa2,                    // cpuid
        0x89, 0xc8,                    // mov eax, ecx
        0xe7, 0x80,                    // out 0x80, eax
        0x89, 0xd8,                    // mov eax, ebx
        0xe7, 0x84,                    // out 0x84, eax
        0xb0, 0x00, 0xe6, 0xf4,        // mov al, 0; out 0xf4, al
        0xf4,                          // hlt
    };
    GuestRun run = run_guest(code, protected_mode_at(0x1000), 2);
    ASSERT_EQ(run.reason.kind, StopKind::DebugExit) << run.reason.detail;
    ASSERT_EQ(run.pio.size(), 2u);
    uint64_t ecx = run.pio[0].value, ebx = run.pio[1].value;
    EXPECT_TRUE(ecx & (1u << 31)) << "hypervisor bit";
    EXPECT_EQ((ebx >> 16) & 0xff, 2u) << "two logical processors";
    EXPECT_EQ(ebx >> 24, 0u) << "the boot CPU's APIC id";
    if (kvm::host_kvm_is_pvm()) {
        EXPECT_FALSE(ecx & (1u << 13)) << "CMPXCHG16B hidden on PVM";
    }
}

TEST(KvmEngine, VcpusStartWithFirmwareMsrs) {
    if (!kvm_usable()) GTEST_SKIP() << "needs /dev/kvm (read-write)";
    const uint8_t code[] = {
        0xb9, 0xff, 0x02, 0x00, 0x00,  // mov ecx, 0x2ff (IA32_MTRR_DEF_TYPE)
        0x0f, 0x32,                    // rdmsr
        0xe7, 0x80,                    // out 0x80, eax
        0xb0, 0x00, 0xe6, 0xf4,        // mov al, 0; out 0xf4, al
        0xf4,                          // hlt
    };
    GuestRun run = run_guest(code);
    ASSERT_EQ(run.reason.kind, StopKind::DebugExit) << run.reason.detail;
    ASSERT_EQ(run.pio.size(), 1u);
    EXPECT_EQ(run.pio[0].value, (1u << 11) | 6u) << "MTRRs enabled, default type write-back";
}

// The whole vCPU state an engine reports: the SSE state the host set and the MSR and debug register
// the guest set are in it, and setting it on a vCPU of another VM gives that vCPU the same state.
TEST(KvmEngine, VcpuStateCarriesWhatTheGuestSetAndMovesToAnotherVm) {
    if (!kvm_usable()) GTEST_SKIP() << "needs /dev/kvm (read-write)";
    // (SSE state is set from the host: PVM hosts cannot emulate SSE instructions at CPL0.)
    const uint8_t code[] = {
        0xb9, 0x75, 0x01, 0x00, 0x00,  // mov ecx, 0x175 (IA32_SYSENTER_ESP)
        0xb8, 0xef, 0xbe, 0xad, 0xde,  // mov eax, 0xdeadbeef
        0x31, 0xd2,                    // xor edx, edx
        0x0f, 0x30,                    // wrmsr
        0xb8, 0x00, 0x20, 0x00, 0x00,  // mov eax, 0x2000
        0x0f, 0x23, 0xc0,              // mov dr0, eax
        0xb0, 0x00, 0xe6, 0xf4,        // mov al, 0; out 0xf4, al
        0xf4,                          // hlt
    };
    auto memory = GuestMemory::create(16 * MiB);
    ASSERT_TRUE(memory);
    ASSERT_TRUE(memory->write(0x1000, code));
    Bus pio("pio"), mmio("mmio");
    StopRecorder control;
    ASSERT_TRUE(pio.add(0xf4, 4, std::make_shared<DebugExitDevice>(control), "debug-exit"));
    auto engine = kvm::KvmEngine::create(*memory, 1);
    ASSERT_TRUE(engine) << engine.error().message;
    control.engine = engine->get();
    ASSERT_TRUE((*engine)->set_boot_state(protected_mode_at(0x1000)));
    auto initial = (*engine)->vcpu_state(0);
    ASSERT_TRUE(initial && initial->extended);
    for (uint8_t i = 0; i < 16; ++i) initial->extended->fpu.xmm[3][i] = static_cast<uint8_t>(0xa0 + i);
    ASSERT_TRUE((*engine)->set_vcpu_state(0, *initial));
    auto before = (*engine)->vcpu_state(0);
    ASSERT_TRUE(before);
    EXPECT_EQ(before->extended->fpu.xmm, initial->extended->fpu.xmm) << "read back as set";
    EXPECT_EQ(before->extended->fpu.fcw, initial->extended->fpu.fcw);
    EXPECT_EQ(before->extended->fpu.mxcsr, initial->extended->fpu.mxcsr);
    Platform platform{*memory, pio, mmio, control};
    ASSERT_TRUE((*engine)->start(platform));
    StopReason reason = control.wait();
    (*engine)->join();
    ASSERT_EQ(reason.kind, StopKind::DebugExit) << reason.detail;

    auto state = (*engine)->vcpu_state(0);
    ASSERT_TRUE(state) << state.error().message;
    ASSERT_TRUE(state->extended);
    const ExtendedCpuState& x = *state->extended;
    EXPECT_EQ(x.fpu.xmm[3], initial->extended->fpu.xmm[3]);
    EXPECT_EQ(x.debug.dr[0], 0x2000u);
    auto sysenter_esp = std::ranges::find(x.msrs, 0x175u, &MsrValue::index);
    ASSERT_NE(sysenter_esp, x.msrs.end());
    EXPECT_EQ(sysenter_esp->value, 0xdeadbeefu);
    EXPECT_FALSE((*engine)->vcpu_state(1)) << "only one vCPU";

    auto other = kvm::KvmEngine::create(*memory, 1);
    ASSERT_TRUE(other) << other.error().message;
    ASSERT_TRUE((*other)->set_vcpu_state(0, *state));
    auto moved = (*other)->vcpu_state(0);
    ASSERT_TRUE(moved) << moved.error().message;
    EXPECT_EQ(moved->rip, state->rip);
    EXPECT_EQ(moved->gpr, state->gpr);
    EXPECT_EQ(moved->cr4, state->cr4);
    EXPECT_EQ(moved->extended->fpu.xmm, x.fpu.xmm);
    EXPECT_EQ(moved->extended->fpu.st, x.fpu.st);
    EXPECT_EQ(moved->extended->fpu.fcw, x.fpu.fcw);
    EXPECT_EQ(moved->extended->fpu.mxcsr, x.fpu.mxcsr);
    EXPECT_EQ(moved->extended->debug.dr, x.debug.dr);
    EXPECT_EQ(moved->extended->mp_state, x.mp_state);
    auto moved_esp = std::ranges::find(moved->extended->msrs, 0x175u, &MsrValue::index);
    ASSERT_NE(moved_esp, moved->extended->msrs.end());
    EXPECT_EQ(moved_esp->value, 0xdeadbeefu);
    // The LAPIC page moved too: its ID register (0x20) and the LINT0/LINT1 set-up (0x350, 0x360).
    for (size_t offset : {size_t{0x20}, size_t{0x350}, size_t{0x360}})
        EXPECT_EQ(load_le(std::span(moved->extended->lapic).subspan(offset, 4)),
                  load_le(std::span(x.lapic).subspan(offset, 4)))
            << offset;
}

// A stop may come at any moment relative to start(): before it, while it starts one vCPU after
// another, or after it. Every vCPU must stop, whichever it is, or join() would wait forever: the
// watchdog turns that hang into a failure. Before the fix, a stop between two vCPUs' starts was
// forgotten by the later ones.
TEST(KvmEngine, StopAtAnyMomentOfStartStopsEveryVcpu) {
    if (!kvm_usable()) GTEST_SKIP() << "needs /dev/kvm (read-write)";
    auto memory = GuestMemory::create(2 * MiB);
    ASSERT_TRUE(memory);
    const uint8_t spin[] = {0xeb, 0xfe};  // jmp $
    ASSERT_TRUE(memory->write(0x1000, spin));
    Bus pio("pio"), mmio("mmio");
    StopRecorder control;
    Platform platform{*memory, pio, mmio, control};

    constexpr int kRounds = 120;
    std::mt19937 random(12345);
    for (int round = 0; round < kRounds; ++round) {
        unsigned cpus = 1 + static_cast<unsigned>(round % 4);
        auto engine = kvm::KvmEngine::create(*memory, cpus);
        ASSERT_TRUE(engine) << engine.error().message;
        ASSERT_TRUE((*engine)->set_boot_state(protected_mode_at(0x1000)));

        // Round 0 mod 5 stops before start(); the others race a stopper thread against it,
        // from at once to a few hundred microseconds later.
        auto delay = std::chrono::microseconds(random() % 400);
        std::atomic<bool> go{false};
        std::thread stopper;
        if (round % 5 == 0) {
            (*engine)->stop();
        } else {
            stopper = std::thread([&] {
                while (!go) std::this_thread::yield();
                auto until = std::chrono::steady_clock::now() + delay;
                while (std::chrono::steady_clock::now() < until) {}
                (*engine)->stop();
            });
        }
        go = true;
        ASSERT_TRUE((*engine)->start(platform));
        if (stopper.joinable()) stopper.join();

        auto joined = std::async(std::launch::async, [&] { (*engine)->join(); });
        if (joined.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
            ADD_FAILURE() << "round " << round << " (" << cpus << " vCPUs, stop after " << delay.count()
                          << " us): a vCPU kept running after stop()";
            (*engine)->stop();  // free the stuck thread so that the test can end
            joined.wait();
            return;
        }
    }
}

}  // namespace
}  // namespace strata
