// The soft CPU's MMU: page walks in each paging mode, accessed/dirty bits, the #PF error codes
// and CR2, the TLB's flush rules, MMIO and code-page tracking — through Cpu's accessors.
#include <gtest/gtest.h>

#include "bus/bus_device.hpp"
#include "cpu/soft/soft_fixture.hpp"

namespace strata::soft {
namespace {

constexpr uint64_t kPt = 0x4000;       // a page table for the 4 KiB pages of 2 MiB-4 MiB
constexpr uint64_t kPageRo = 0x20'1000;  // read-only, user
constexpr uint64_t kPageSup = 0x20'2000; // supervisor only
constexpr uint64_t kPageNx = 0x20'3000;  // no execute
constexpr uint64_t kPageAbsent = 0x20'4000;
constexpr uint64_t kPageRw = 0x20'5000;

class MmuTest : public SoftCpuFixture {
protected:
    void SetUp() override { enter(0); }
    void enter(unsigned cpl) {
        enter_long_mode(cpl);
        // 2 MiB - 4 MiB through 4 KiB pages.
        write64(kPd + 8, kPt | 7);
        for (uint64_t i = 0; i < 512; ++i) write64(kPt + i * 8, (0x20'0000 + (i << 12)) | 7);
        write64(kPt + 1 * 8, kPageRo | 5);                 // P, U
        write64(kPt + 2 * 8, kPageSup | 3);                // P, RW
        write64(kPt + 3 * 8, kPageNx | 7 | (1ull << 63));  // P, RW, U, XD
        write64(kPt + 4 * 8, 0);
        cpu.flush_tlb(true);
    }
    uint64_t pte(uint64_t page) { return read64(kPt + ((page - 0x20'0000) >> 12) * 8); }

    template <class F>
    GuestFault fault(F&& access) {
        try {
            access();
        } catch (const GuestFault& f) {
            return f;
        }
        ADD_FAILURE() << "no fault";
        return {};
    }
};

TEST_F(MmuTest, ReadAndWriteSetAccessedThenDirty) {
    EXPECT_EQ(pte(kPageRw) & 0x60, 0u);
    (void)cpu.read<uint32_t>(DS, kPageRw + 8);
    EXPECT_EQ(pte(kPageRw) & 0x60, 0x20u) << "A set, D clear after a read";
    cpu.write<uint32_t>(DS, kPageRw + 8, 0x1234'5678);
    EXPECT_EQ(pte(kPageRw) & 0x60, 0x60u) << "D set after a write";
    EXPECT_EQ(memory().read_obj<uint32_t>(kPageRw + 8).value(), 0x1234'5678u);
}

TEST_F(MmuTest, UserWriteToReadOnlyPageFaultsWithErrorCodeAndCr2) {
    enter(3);
    GuestFault f = fault([&] { cpu.write<uint8_t>(DS, kPageRo + 0x10, 1); });
    EXPECT_EQ(f.vector, vec::PF);
    EXPECT_EQ(f.error_code, pf::P | pf::W | pf::U);
    EXPECT_EQ(cpu.cr2, kPageRo + 0x10);
    EXPECT_EQ(memory().read_obj<uint8_t>(kPageRo + 0x10).value(), 0u) << "nothing written";
}

TEST_F(MmuTest, SupervisorWriteToReadOnlyPageFollowsCr0Wp) {
    GuestFault f = fault([&] { cpu.write<uint8_t>(DS, kPageRo, 1); });
    EXPECT_EQ(f.error_code, pf::P | pf::W);
    cpu.cr0 &= ~cr0::WP;
    cpu.flush_tlb(true);
    cpu.write<uint8_t>(DS, kPageRo, 1);
    EXPECT_EQ(memory().read_obj<uint8_t>(kPageRo).value(), 1u);
}

TEST_F(MmuTest, UserAccessToSupervisorPageAndAbsentPage) {
    enter(3);
    EXPECT_EQ(fault([&] { (void)cpu.read<uint8_t>(DS, kPageSup); }).error_code, pf::P | pf::U);
    EXPECT_EQ(fault([&] { (void)cpu.read<uint8_t>(DS, kPageAbsent + 4); }).error_code, pf::U);
    EXPECT_EQ(cpu.cr2, kPageAbsent + 4);
}

TEST_F(MmuTest, FetchFromNoExecutePageFaultsWithInstructionBit) {
    GuestFault f = fault([&] { (void)cpu.translate_fetch(kPageNx); });
    EXPECT_EQ(f.error_code, pf::P | pf::I);
}

TEST_F(MmuTest, AccessCrossingIntoAbsentPageFaultsBeforeWriting) {
    GuestFault f = fault([&] { cpu.write<uint32_t>(DS, kPageAbsent - 2, 0xffff'ffff); });
    EXPECT_EQ(f.vector, vec::PF);
    EXPECT_EQ(cpu.cr2, kPageAbsent);
    EXPECT_EQ(memory().read_obj<uint16_t>(kPageAbsent - 2).value(), 0u);
}

TEST_F(MmuTest, TlbKeepsStaleTranslationUntilInvlpg) {
    (void)cpu.read<uint8_t>(DS, kPageRw);
    write64(kPt + 5 * 8, 0);  // unmap without flushing: the TLB may still translate
    EXPECT_NO_THROW((void)cpu.read<uint8_t>(DS, kPageRw));
    cpu.flush_tlb_page(kPageRw);
    EXPECT_EQ(fault([&] { (void)cpu.read<uint8_t>(DS, kPageRw); }).error_code, 0u);
}

TEST_F(MmuTest, InvlpgDropsEveryPieceOfALargePage) {
    // 0-2 MiB is one 2 MiB page: two 4 KiB pieces of it get cached, then it is unmapped and
    // INVLPG names one address in it; neither piece may translate afterwards.
    (void)cpu.read<uint8_t>(DS, 0x8000);
    (void)cpu.read<uint8_t>(DS, 0x1f'0000);
    write64(kPd, 0);
    cpu.flush_tlb_page(0x8000);
    EXPECT_EQ(fault([&] { (void)cpu.read<uint8_t>(DS, 0x1f'0000); }).vector, vec::PF);
}

// The interpreter finds the block at a linear address through the last block's links and a
// jump cache, which must follow the TLB: code reached at the same linear address after its
// page was remapped is the new page's once the TLB flush rules say so.
class JumpCacheTest : public MmuTest {
protected:
    static constexpr uint64_t kLinear = 0x20'6000, kCodeA = 0x50'0000, kCodeB = 0x50'1000;
    static constexpr uint64_t kTrampoline = kCodeAddress + 0x800;

    void SetUp() override {
        MmuTest::SetUp();
        load(kCodeA, hex_bytes("b8 01 00 00 00"));  // mov eax, 1
        load(kCodeB, hex_bytes("b8 02 00 00 00"));  // mov eax, 2
        // jmp kLinear: the trampoline's block links to the block at kLinear.
        auto rel = static_cast<uint32_t>(kLinear - (kTrampoline + 5));
        load(kTrampoline, {0xe9, static_cast<uint8_t>(rel), static_cast<uint8_t>(rel >> 8),
                           static_cast<uint8_t>(rel >> 16), static_cast<uint8_t>(rel >> 24)});
    }
    void map(uint64_t phys, uint64_t extra = 0) { write64(kPt + 6 * 8, phys | 7 | extra); }
    // Jumps to kLinear from the trampoline, runs the instruction there and returns EAX.
    uint64_t run_mapped() {
        cpu.gpr[0] = 0;
        cpu.rip = kTrampoline;
        run_until(kLinear + 5);
        return cpu.gpr[0];
    }
    void run_at_code_address(const std::string& hex) {
        cpu.rip = kCodeAddress;
        run_code(hex);
    }
};

TEST_F(JumpCacheTest, Cr3LoadRemapsNonGlobalCode) {
    map(kCodeA);
    EXPECT_EQ(run_mapped(), 1u);
    EXPECT_EQ(run_mapped(), 1u);  // through the trampoline's link
    map(kCodeB);
    run_at_code_address("0f 20 d8 0f 22 d8");  // mov rax, cr3; mov cr3, rax
    EXPECT_EQ(run_mapped(), 2u);
}

TEST_F(JumpCacheTest, GlobalCodeSurvivesCr3LoadUntilInvlpg) {
    cpu.cr4 |= cr4::PGE;
    cpu.flush_tlb(true);
    map(kCodeA, 1u << 8);  // G
    EXPECT_EQ(run_mapped(), 1u);
    map(kCodeB, 1u << 8);
    run_at_code_address("0f 20 d8 0f 22 d8");  // mov rax, cr3; mov cr3, rax
    EXPECT_EQ(run_mapped(), 1u) << "a global translation survives a CR3 load (SDM vol. 3A 4.10.4.1)";
    cpu.gpr[3] = kLinear;
    run_at_code_address("0f 01 3b");  // invlpg [rbx]
    EXPECT_EQ(run_mapped(), 2u);
}

TEST_F(JumpCacheTest, PrivilegeChangeRechecksTheFetch) {
    map(kCodeA);
    write64(kPt + 6 * 8, kCodeA | 3);  // a supervisor page
    cpu.flush_tlb(true);
    EXPECT_EQ(run_mapped(), 1u);
    // CPL 3 without any TLB flush (as an IRET would leave it): the same linear address must
    // not run from the cached block.
    for (unsigned s : {CS, SS}) {
        cpu.seg[s].dpl = 3;
        cpu.seg[s].selector |= 3;
    }
    cpu.refresh_mode();
    cpu.gpr[0] = 0;
    cpu.rip = kTrampoline;
    cpu.cr2 = 0;
    try {
        interpreter.step_instruction();  // the jump, a supervisor page run at CPL 3 here too
        interpreter.step_instruction();
    } catch (const TripleFault&) {
        // no IDT here: the #PF cannot be delivered
    }
    EXPECT_EQ(cpu.gpr[0], 0u);
    EXPECT_EQ(cpu.cr2, kLinear);
}

TEST_F(MmuTest, NonCanonicalAddressIsGeneralProtection) {
    GuestFault f = fault([&] { (void)cpu.read<uint8_t>(DS, 0x0000'8000'0000'0000ull); });
    EXPECT_EQ(f.vector, vec::GP);
    GuestFault s = fault([&] { (void)cpu.read<uint8_t>(SS, 0x0000'8000'0000'0000ull); });
    EXPECT_EQ(s.vector, vec::SS);
}

class Scratch : public BusDevice {
public:
    void read(uint64_t offset, std::span<uint8_t> data) override {
        for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(offset + i);
    }
    void write(uint64_t offset, std::span<const uint8_t> data) override {
        last_offset = offset;
        last_size = data.size();
    }
    uint64_t last_offset = 0;
    size_t last_size = 0;
};

TEST_F(MmuTest, MmioReachesTheBusEveryTime) {
    auto device = std::make_shared<Scratch>();
    ASSERT_TRUE(mmio.add(0xd000'0000, 0x1000, device, "scratch"));
    // Map linear 0x30'0000 (PD entry 1 covers 2-4 MiB; use a 2 MiB page at 0x40'0000) to MMIO.
    write64(kPd + 2 * 8, 0xd000'0000 | 0x83);
    cpu.flush_tlb(true);
    EXPECT_EQ(cpu.read<uint32_t>(DS, 0x40'0010), 0x1312'1110u);
    cpu.write<uint16_t>(DS, 0x40'0020, 7);
    EXPECT_EQ(device->last_offset, 0x20u);
    EXPECT_EQ(device->last_size, 2u);
    cpu.write<uint16_t>(DS, 0x40'0030, 7);
    EXPECT_EQ(device->last_offset, 0x30u) << "not cached in the TLB";
}

TEST_F(MmuTest, WriteToCodePageChangesItsGeneration) {
    CodePages pages(memory());
    cpu.code_pages = &pages;
    auto* word = pages.word(kPageRw);
    ASSERT_NE(word, nullptr);
    cpu.write<uint8_t>(DS, kPageRw, 1);  // cache a write permission
    uint32_t seen = pages.mark(*word);
    cpu.flush_tlb_writes();  // what the executor does when the epoch moves
    cpu.write<uint8_t>(DS, kPageRw + 1, 2);
    EXPECT_NE(word->load(), seen);
}

TEST_F(MmuTest, LegacyPagingModes) {
    // 32-bit paging: PDE 0 → page table at 0x5000 mapping linear 0x1000 to physical 0x7000.
    enter_protected_mode();
    write64(0x6000, 0);  // page directory at 0x6000
    ASSERT_TRUE(memory().write_obj<uint32_t>(0x6000, 0x5000 | 7));
    ASSERT_TRUE(memory().write_obj<uint32_t>(0x5000 + 4, 0x7000 | 7));
    ASSERT_TRUE(memory().write_obj<uint32_t>(0x7000 + 4, 0xabcd));
    cpu.cr3 = 0x6000;
    cpu.cr0 |= cr0::PG;
    cpu.flush_tlb(true);
    try {
        EXPECT_EQ(cpu.read<uint32_t>(DS, 0x1004), 0xabcdu);
    } catch (const GuestFault& f) {
        FAIL() << "fault " << int(f.vector) << " code " << f.error_code;
    }
    // PAE: PDPTE 0 → PD at 0x8000 → 2 MiB page 0 → physical 0.
    ASSERT_TRUE(memory().write_obj<uint64_t>(0x9000, 0x8000 | 1));
    ASSERT_TRUE(memory().write_obj<uint64_t>(0x8000, 0x83));
    cpu.cr3 = 0x9000;
    cpu.cr4 |= cr4::PAE;
    cpu.flush_tlb(true);
    try {
        EXPECT_EQ(cpu.read<uint32_t>(DS, 0x7004), 0xabcdu);
    } catch (const GuestFault& f) {
        FAIL() << "fault " << int(f.vector) << " code " << f.error_code;
    }
}

}  // namespace
}  // namespace strata::soft
