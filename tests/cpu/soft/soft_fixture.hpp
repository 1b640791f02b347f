// A soft CPU on its own for unit tests of instruction families: guest RAM, empty buses, a
// recording MachineControl, and helpers that put the CPU in real, 32-bit protected or 64-bit
// long mode (identity-mapped), load raw instruction bytes and run them instruction by
// instruction. Tests use the real Cpu, decoder, MMU and handlers; only the platform is fake.
//
//     class ArithTest : public SoftCpuFixture {};
//     TEST_F(ArithTest, AddSetsCarry) {
//         enter_long_mode();
//         cpu.gpr[0] = ~0ull; cpu.gpr[3] = 1;
//         run_code("48 01 d8");        // add rax, rbx
//         EXPECT_EQ(cpu.gpr[0], 0u);
//         EXPECT_TRUE(cpu.flags.cf());
//     }
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "bus/bus.hpp"
#include "cpu/soft/cpu.hpp"
#include "cpu/soft/interpreter.hpp"
#include "cpu/soft/interrupts.hpp"
#include "cpu/soft/mmu/code_pages.hpp"

namespace strata::soft {

class RecordingControl : public MachineControl {
public:
    void request_stop(StopReason reason) override {
        std::lock_guard lock(mutex_);
        if (!stop) stop = std::move(reason);
    }
    std::optional<StopReason> stop;

private:
    std::mutex mutex_;
};

inline std::vector<uint8_t> hex_bytes(const std::string& text) {
    std::vector<uint8_t> out;
    std::istringstream in(text);
    std::string byte;
    while (in >> byte) out.push_back(static_cast<uint8_t>(std::stoul(byte, nullptr, 16)));
    return out;
}

class SoftCpuFixture : public ::testing::Test {
protected:
    static constexpr uint64_t kRamSize = 16 << 20;
    static constexpr uint64_t kCodeAddress = 0x10'0000;  // 1 MiB
    static constexpr uint64_t kPml4 = 0x1000, kPdpt = 0x2000, kPd = 0x3000;

    SoftCpuFixture()
        : memory_(GuestMemory::create(kRamSize).value()),
          platform_{memory_, pio, mmio, control},
          pages_(memory_),
          interpreter(cpu) {
        cpu.memory = &memory_;
        cpu.platform = &platform_;
        cpu.code_pages = &pages_;
    }

    const GuestMemory& memory() const { return memory_; }

    // Real mode at CS:IP with DS = ES = SS = FS = GS = 0.
    void enter_real_mode(uint16_t cs = 0x1000, uint16_t ip = 0) {
        CpuState s = real_mode_at((uint32_t{cs} << 4) + ip);
        s.cs.selector = cs;
        s.cs.base = uint64_t{cs} << 4;
        s.rip = ip;
        cpu.set_state(s);
    }
    // 32-bit protected mode, flat 4 GiB segments, no paging, CPL 0.
    void enter_protected_mode() {
        CpuState s;
        s.cs = flat_code32();
        s.ds = s.es = s.fs = s.gs = s.ss = flat_data(0x18);
        s.cr0 = cr0::PE | cr0::ET | cr0::NE;
        s.rip = kCodeAddress;
        cpu.set_state(s);
    }
    // 64-bit mode at privilege `cpl`, the first GiB identity-mapped with user-writable 2 MiB pages.
    void enter_long_mode(unsigned cpl = 0) {
        write64(kPml4, kPdpt | 7);
        write64(kPdpt, kPd | 7);
        for (uint64_t i = 0; i < 512; ++i) write64(kPd + i * 8, (i << 21) | 0x87);
        CpuState s;
        s.cs = flat_code64();
        s.ds = s.es = s.fs = s.gs = s.ss = flat_data(0x18);
        s.cs.dpl = s.ss.dpl = static_cast<uint8_t>(cpl);
        s.cs.selector = static_cast<uint16_t>(s.cs.selector | cpl);
        s.ss.selector = static_cast<uint16_t>(s.ss.selector | cpl);
        s.cr0 = cr0::PE | cr0::MP | cr0::ET | cr0::NE | cr0::WP | cr0::PG;
        s.cr3 = kPml4;
        s.cr4 = cr4::PAE | cr4::OSFXSR | cr4::OSXMMEXCPT;
        s.efer = efer::LME | efer::LMA | efer::NXE | efer::SCE;
        s.rip = kCodeAddress;
        cpu.set_state(s);
    }

    void write64(uint64_t gpa, uint64_t value) { ASSERT_TRUE(memory_.write_obj(gpa, value)); }
    uint64_t read64(uint64_t gpa) { return memory_.read_obj<uint64_t>(gpa).value(); }
    // Writes guest memory as a device would: blocks decoded from these pages are dropped.
    void load(uint64_t gpa, const std::vector<uint8_t>& bytes) {
        ASSERT_TRUE(memory_.write(gpa, bytes));
        for (uint64_t page = gpa & ~0xfffull; page < gpa + bytes.size(); page += 0x1000) pages_.written(page);
    }

    // Loads `hex` at the current CS:RIP and runs until RIP is past it (at most `limit`
    // instructions; a loop that never gets there fails the test). Exceptions are delivered
    // through the guest's IDT as usual.
    void run_code(const std::string& hex, unsigned limit = 100000) {
        std::vector<uint8_t> bytes = hex_bytes(hex);
        uint64_t linear = cpu.code64 ? cpu.rip : cpu.seg[CS].base + cpu.rip;
        load(linear, bytes);  // identity mapping or no paging: linear == physical
        run_until(cpu.rip + bytes.size(), limit);
    }
    void run_until(uint64_t rip, unsigned limit = 100000) {
        for (unsigned i = 0; i < limit; ++i) {
            if (cpu.rip == rip) return;
            interpreter.step_instruction();
        }
        ADD_FAILURE() << "RIP did not reach " << std::hex << rip << " in " << std::dec << limit
                      << " instructions (RIP is " << std::hex << cpu.rip << ")";
    }
    // Runs one instruction and returns the exception it raised, if it raised one, by catching
    // it before delivery.
    std::optional<GuestFault> fault_of(const std::string& hex) {
        std::vector<uint8_t> bytes = hex_bytes(hex);
        uint64_t linear = cpu.code64 ? cpu.rip : cpu.seg[CS].base + cpu.rip;
        load(linear, bytes);
        Decoder decoder;
        Insn insn;
        decoder.decode(Interpreter::code_mode(cpu), cpu.stack_bits, bytes, insn);
        cpu.next_rip = (cpu.rip + insn.length) & cpu.ip_mask;
        try {
            insn.exec(cpu, insn);
        } catch (const GuestFault& f) {
            return f;
        }
        cpu.rip = cpu.next_rip;
        return std::nullopt;
    }

    Bus pio{"port I/O"};
    Bus mmio{"MMIO"};
    RecordingControl control;

private:
    GuestMemory memory_;
    Platform platform_;
    CodePages pages_;

protected:
    Cpu cpu;
    Interpreter interpreter;
};

}  // namespace strata::soft
