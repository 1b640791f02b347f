// The integer ALU families on the soft CPU alone, for what the differential tests (64-bit CPL3)
// cannot reach: the decimal adjustments DAA, DAS, AAA, AAS, AAM, AAD of 32-bit protected mode
// (values from the SDM's pseudo-code and examples, and rows measured on the AMD EPYC reference in
// compatibility mode for the undefined flags), #DE of AAM 0, their #UD in 64-bit mode, and LOCK's
// atomicity between two vCPUs sharing guest memory.
#include <gtest/gtest.h>

#include <latch>
#include <thread>
#include <utility>

#include "cpu/soft/soft_fixture.hpp"

namespace strata::soft {
namespace {

constexpr uint64_t CF = rflags::CF, PF = rflags::PF, AF = rflags::AF, ZF = rflags::ZF, SF = rflags::SF,
                   OF = rflags::OF;
constexpr uint64_t kOSZAPC = OF | SF | ZF | AF | PF | CF;

// One run of an adjustment: AX (and BL) and the arithmetic flags before, AX and all six flags
// after. The flags the SDM leaves undefined are those the AMD reference gives (measured in
// compatibility mode): the soft engine reproduces them, so they are checked too.
struct Adjustment {
    const char* what;
    const char* hex;
    uint16_t ax;
    uint64_t flags;
    uint16_t ax_after;
    uint64_t flags_after;
    uint8_t bl = 0;
};

class AluLegacyTest : public SoftCpuFixture {
protected:
    void SetUp() override { enter_protected_mode(); }

    void check(const Adjustment& a) {
        SCOPED_TRACE(a.what);
        cpu.gpr[0] = 0xabcd'0000'5555'0000 | a.ax;
        cpu.gpr[3] = a.bl;
        cpu.set_rflags((cpu.rflags() & ~kOSZAPC) | a.flags);
        cpu.rip = kCodeAddress;
        load(kCodeAddress, std::vector<uint8_t>(16, 0x90));  // no bytes of the previous row after this one's
        run_code(a.hex);
        EXPECT_EQ(cpu.gpr[0] & 0xffff, a.ax_after);
        EXPECT_EQ(cpu.gpr[0] >> 16, 0xabcd'0000'5555u) << "only AX changes";
        EXPECT_EQ(cpu.rflags() & kOSZAPC, a.flags_after);
    }
};

// DAA (SDM "DAA", Operation): +6 when the low digit is not decimal or AF, +60H when AL was above
// 99H or CF. OF is undefined: AMD gives that of the add of the adjustment.
// LazyFlags::condition<cc>() for a condition chosen at run time.
template <unsigned... kCc>
bool compiled_condition(const LazyFlags& flags, unsigned cc, std::integer_sequence<unsigned, kCc...>) {
    bool result = false;
    ((cc == kCc ? (result = flags.condition<kCc>(), 0) : 0), ...);
    return result;
}

// Every condition read from the lazy state of a CMP/SUB or a logic instruction (the shortcuts
// of LazyFlags::condition) is the condition of the materialized flags.
TEST(LazyFlagsTest, ConditionsAfterSubtractMatchTheMaterializedFlags) {
    uint64_t seed = 0x9e37'79b9'7f4a'7c15;
    auto next = [&seed] {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        return seed;
    };
    for (int i = 0; i < 20000; ++i) {
        unsigned size = 1u << (i % 4);
        uint64_t m = LazyFlags::mask(size);
        uint64_t a = next() & m, b = (i % 3 == 0 ? a + (next() % 3) - 1 : next()) & m;
        LazyFlags sub, logic;
        sub.set(CcOp::Sub, size, (a - b) & m, a, b);
        logic.set_logic(size, a & b);
        for (const LazyFlags* lazy : {&sub, &logic}) {
            LazyFlags materialized;
            materialized.assign(lazy->value());
            for (unsigned cc = 0; cc < 16; ++cc) {
                ASSERT_EQ(lazy->condition(cc), materialized.condition(cc)) << "size " << size << " a " << a << " b " << b << " cc " << cc;
                ASSERT_EQ(compiled_condition(*lazy, cc, std::make_integer_sequence<unsigned, 16>{}), materialized.condition(cc))
                    << "size " << size << " a " << a << " b " << b << " cc " << cc;
            }
        }
    }
}

TEST_F(AluLegacyTest, Daa) {
    for (const Adjustment& a : {
             // The SDM's example: 79H + 35H = AEH; DAA gives 14H with CF (decimal 79 + 35 = 114).
             Adjustment{"add al, bl; daa", "00 d8 27", 0x79, 0, 0x14, CF | PF | AF, 0x35},
             Adjustment{"low digit 0xf", "27", 0x0f, 0, 0x15, AF},
             Adjustment{"AF from the add (08H + 09H = 11H)", "27", 0x11, AF, 0x17, PF | AF},
             Adjustment{"CF from the add (90H + 90H = 120H)", "27", 0x20, CF, 0x80, CF | SF | OF},
             Adjustment{"both digits", "27", 0x9a, 0, 0x00, CF | PF | AF | ZF},
             Adjustment{"nothing to adjust", "27", 0x99, 0, 0x99, PF | SF},
         })
        check(a);
}

// DAS (SDM "DAS", Operation): unlike DAA its second step has no ELSE, so a borrow out of the
// low-digit adjustment stays in CF. OF is undefined: AMD gives that of the subtraction.
TEST_F(AluLegacyTest, Das) {
    for (const Adjustment& a : {
             // The SDM's example: 35H - 47H = EEH; DAS gives 88H with CF (decimal 35 - 47 = -12 + 100).
             Adjustment{"sub al, bl; das", "28 d8 2f", 0x35, 0, 0x88, CF | PF | AF | SF, 0x47},
             Adjustment{"borrow of the low digit kept", "2f", 0x03, AF, 0xfd, CF | AF | SF},
             Adjustment{"nothing to adjust", "2f", 0x42, 0, 0x42, PF},
         })
        check(a);
}

// AAA / AAS (SDM "AAA", "AAS"): AX + 106H / AX - 106H when the low digit is not decimal or AF, then
// AL AND 0FH; CF = AF = adjusted. OF, SF, ZF, PF are undefined: AMD gives those of the 16-bit add.
TEST_F(AluLegacyTest, AaaAndAas) {
    for (const Adjustment& a : {
             Adjustment{"8 + 9 = 11H; aaa gives unpacked 17", "00 d8 37", 0x0008, 0, 0x0107, CF | PF | AF, 9},
             Adjustment{"aaa: a decimal digit needs nothing", "37", 0x0305, 0, 0x0305, PF},
             Adjustment{"aaa adds 106H to AX as a whole: AL = FAH carries into AH", "37", 0x00fa, 0, 0x0200,
                        CF | PF | AF},
             Adjustment{"12 - 5 = 0x1fd; aas gives unpacked 7", "28 d8 3f", 0x0102, 0, 0x0007, CF | AF, 5},
             Adjustment{"aas: AL below 6 borrows from AH once more", "3f", 0x0203, AF, 0x000d, CF | AF},
             Adjustment{"aas: a decimal digit needs nothing", "3f", 0x0409, 0, 0x0409, PF},
         })
        check(a);
}

// AAM imm8 (SDM "AAM"): AH = AL / imm8, AL = AL MOD imm8; SF, ZF, PF by AL, and AMD clears the
// undefined OF, AF, CF. AAD imm8 (SDM "AAD"): AL = AL + AH * imm8, AH = 0; OF, AF, CF as the 8-bit
// add on AMD.
TEST_F(AluLegacyTest, AamAndAad) {
    for (const Adjustment& a : {
             Adjustment{"7 * 9 = 63; aam gives 6, 3", "f6 e3 d4 0a", 0x07, kOSZAPC, 0x0603, PF, 9},
             Adjustment{"aam 16 splits nibbles", "d4 10", 0x00a7, 0, 0x0a07, 0},
             Adjustment{"aad joins 6, 3 into 63", "d5 0a", 0x0603, kOSZAPC, 0x003f, PF},
             Adjustment{"aad 16 joins nibbles", "d5 10", 0x0a0b, 0, 0x00ab, SF},
             Adjustment{"aad: 9 + 25 * 10 carries out of AL", "d5 0a", 0x1909, 0, 0x0003, CF | PF | AF},
         })
        check(a);
}

TEST_F(AluLegacyTest, AamByZeroIsDivideError) {
    cpu.gpr[0] = 0x1234;
    std::optional<GuestFault> fault = fault_of("d4 00");
    ASSERT_TRUE(fault);
    EXPECT_EQ(fault->vector, vec::DE);
    EXPECT_EQ(cpu.gpr[0], 0x1234u) << "AX unchanged";
}

TEST_F(AluLegacyTest, DecimalAdjustmentsAreInvalidIn64BitMode) {
    enter_long_mode();
    for (const char* hex : {"27", "2f", "37", "3f", "d4 0a", "d5 0a"}) {
        std::optional<GuestFault> fault = fault_of(hex);
        ASSERT_TRUE(fault) << hex;
        EXPECT_EQ(fault->vector, vec::UD) << hex;
    }
}

// --- LOCK between vCPUs ---

// Two vCPUs over the same guest memory each run LOCK INC on one dword many times; no increment is
// lost. (Without the compare-exchange, two host threads interleaving read and write lose many.)
class AluLockTest : public SoftCpuFixture {};

TEST_F(AluLockTest, LockedIncrementsFromTwoVcpusAreExact) {
    enter_long_mode();
    constexpr uint64_t kCounter = 0x20'0000;
    constexpr unsigned kIncrements = 200'000;
    load(kCodeAddress, hex_bytes("f0 ff 03"));  // lock inc dword ptr [rbx]
    write64(kCounter, 0);
    cpu.gpr[3] = kCounter;

    Platform platform{memory(), pio, mmio, control};
    CodePages pages(memory());
    Cpu second;
    second.memory = &memory();
    second.platform = &platform;
    second.code_pages = &pages;
    second.set_state(cpu.state());
    Interpreter second_interpreter(second);

    std::latch start(2);  // both threads increment at the same time
    auto increment = [&start](Cpu& vcpu, Interpreter& executor) {
        start.arrive_and_wait();
        for (unsigned i = 0; i < kIncrements; ++i) {
            vcpu.rip = kCodeAddress;
            executor.step_instruction();
        }
    };
    std::thread other([&] { increment(second, second_interpreter); });
    increment(cpu, interpreter);
    other.join();
    EXPECT_EQ(memory().read_obj<uint32_t>(kCounter).value(), 2 * kIncrements);
}

// LOCK with a register destination (F0 01 D8, lock add eax, ebx) is #UD.
TEST_F(AluLockTest, LockWithRegisterDestinationIsInvalid) {
    enter_long_mode();
    std::optional<GuestFault> fault = fault_of("f0 01 d8");
    ASSERT_TRUE(fault);
    EXPECT_EQ(fault->vector, vec::UD);
}

}  // namespace
}  // namespace strata::soft
