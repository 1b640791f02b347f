#include "cpu/soft/interpreter.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "cpu/soft/exec/exec.hpp"
#include "cpu/soft/interrupts.hpp"
#include "cpu/soft/mmu/code_pages.hpp"

namespace strata::soft {

namespace {

// How many times a block that jumps back to its start may loop inside its threaded code before
// the run loop looks at events again (up to 64 x 64 instructions).
constexpr unsigned kLoopBudget = 64;
// How many blocks one step may chain after the first (each chained block looks at the events
// itself, so this bounds only how deep one step's threaded code goes).
constexpr unsigned kChainBudget = 64;

FILE* trace_file() {
    static FILE* file = [] {
        const char* path = std::getenv("STRATA_SOFT_TRACE");
        return path && *path ? std::fopen(path, "w") : nullptr;
    }();
    return file;
}

}  // namespace

bool Interpreter::tracing() { return trace_file() != nullptr; }

Interpreter::Interpreter(Cpu& cpu) : cpu_(cpu), tracing_(tracing()) {
    unsigned threshold = Translator::threshold();
    if (threshold != Translator::kOff && !tracing_) translator_ = Translator::create(cpu);
    if (translator_) translate_at_ = threshold;
}

void Interpreter::trace() const {
    static std::mutex mutex;
    const Cpu& c = cpu_;
    const auto& r = c.gpr;
    std::lock_guard lock(mutex);
    fmt::print(trace_file(),
               "CPU={}\nRAX={:016x} RBX={:016x} RCX={:016x} RDX={:016x}\nRSI={:016x} RDI={:016x} RBP={:016x} "
               "RSP={:016x}\nR8 ={:016x} R9 ={:016x} R10={:016x} R11={:016x}\nR12={:016x} R13={:016x} R14={:016x} "
               "R15={:016x}\nRIP={:016x} RFL={:08x} CPL={}\n",
               c.index, r[0], r[3], r[1], r[2], r[6], r[7], r[5], r[4], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
               r[15], c.rip, static_cast<uint32_t>(c.rflags()), c.cpl);
}

CodeMode Interpreter::code_mode(const Cpu& cpu) {
    if (!cpu.protected_mode || cpu.v86) return CodeMode::Real16;
    if (cpu.code64) return CodeMode::Long64;
    if (cpu.long_mode) return cpu.code_bits == 32 ? CodeMode::Compat32 : CodeMode::Compat16;
    return cpu.code_bits == 32 ? CodeMode::Legacy32 : CodeMode::Legacy16;
}

// A link or a jump-cache entry holds while its tag, its TLB generation and its block's pages
// are unchanged; both were filled from a translation that was right then. While no code was
// written anywhere since the block was last found valid, its pages are unchanged too.
inline bool Interpreter::holds(BlockLink& link, uint64_t tag) {
    if (link.tag != tag || link.generation != jump_generation(cpu_, link.generation & 1)) return false;
    return link.code_writes == cpu_.code_pages->writes() || still_valid(link);
}

bool Interpreter::still_valid(BlockLink& link) {
    uint64_t writes = cpu_.code_pages->writes();
    if (!link.block->valid()) return false;
    link.code_writes = writes;  // read before valid(): a write after it changes the count
    return true;
}

// The common case inline (the last block's first link: a loop, a fall-through, a call's
// return), the rest out of line so that this path saves no registers.
inline Block* Interpreter::find_block(uint64_t linear) {
    uint64_t tag = jump_tag(linear, cpu_.exec_key);
    Block* last = last_;
    if (last && holds(last->links[0], tag)) [[likely]] return last_ = last->links[0].block;
    return find_block_slow(linear, tag);
}

Block* Interpreter::take_second_link(Block& last, uint64_t tag) {
    if (!holds(last.links[1], tag)) return nullptr;
    std::swap(last.links[0], last.links[1]);
    return last.links[0].block;
}

Block* Interpreter::find_block_slow(uint64_t linear, uint64_t tag) {
    Cpu& c = cpu_;
    Block* last = last_;
    if (last)
        if (Block* second = take_second_link(*last, tag)) return last_ = second;
    BlockLink found;
    uint64_t writes = c.code_pages->writes();  // before the block found below is checked or built
    JumpEntry& jump = jumps_[jump_slot(linear)];
    if (holds(jump, tag)) {
        found = jump;
    } else {
        ++jump_misses_;
        Cpu::Fetch fetch = c.translate_fetch(linear);
        if (!fetch.host) {
            last_ = nullptr;
            run_uncached(linear, fetch.phys);
            return nullptr;
        }
        uint64_t clears = cache_.clears();
        Block* block = find_or_build(linear, fetch);
        if (cache_.clears() != clears) {  // the arena was dropped: `last` is gone with it, and the translations
            forget_jumps();
            last = nullptr;
            if (translator_) translator_->reset();
        }
        last_ = block;
        // A block whose last instruction crosses into the next page has that page checked at
        // every lookup: it is never linked.
        if (block->second_page != ~0ull) return block;
        found = jump = {tag, jump_generation(c, fetch.global), block, writes};
    }
    if (last) {
        last->links[1] = last->links[0];
        last->links[0] = found;
    }
    return last_ = found.block;
}

void Interpreter::forget_jumps() {
    std::fill_n(jumps_.get(), kJumpEntries, JumpEntry{});
    last_ = nullptr;
}

Block* Interpreter::find_or_build(uint64_t linear, const Cpu::Fetch& fetch) {
    CodeMode mode = code_mode(cpu_);
    Block* block = cache_.find(fetch.phys, mode, cpu_.stack_bits);
    if (block && block->valid()) [[likely]] {
        if (block->second_page == ~0ull) return block;
        // The tail of the last instruction lies on the next linear page: it must still map to
        // the page the block was decoded from.
        Cpu::Fetch next = cpu_.translate_fetch((linear | 0xfff) + 1);
        if ((next.phys & ~0xfffull) == block->second_page) return block;
    }
    block = cache_.allocate(fetch.phys, mode, cpu_.stack_bits);
    try {
        build(*block, linear, fetch);
    } catch (...) {
        block->phys = ~0ull;  // fetching its first instruction faulted: no one may find it
        throw;
    }
    cache_.finish(*block);
    block->entry = block->insns[0].thread;
    block->first_length = block->insns[0].length;
    return block;
}

void Interpreter::build(Block& block, uint64_t linear, const Cpu::Fetch& fetch) {
    CodePages& pages = *cpu_.code_pages;
    std::atomic<uint32_t>* word = pages.word(fetch.phys);
    uint64_t epoch = pages.epoch();
    block.page_word[0] = word;
    block.seen_word[0] = pages.mark(*word);
    if (uint64_t now = pages.epoch(); now != epoch) {  // this page may be written through our TLB
        cpu_.code_epoch = now;  // read before the flush: a later change is seen at the next check
        cpu_.flush_tlb_writes();
    }

    CodeMode mode = code_mode(cpu_);
    unsigned offset = static_cast<unsigned>(linear & 0xfff);
    uint64_t rip = cpu_.rip;
    // Counts in the instruction decoded at `rip`, with its place in the block; true when IP wraps
    // around after it. Threaded code takes an instruction's RIP as the block's plus its offset,
    // unwrapped: such an instruction ends the block, which then runs one instruction at a time.
    auto append = [&block, &rip, this](Insn& insn) {
        insn.index = static_cast<uint8_t>(block.count);
        insn.offset = static_cast<uint16_t>(rip - cpu_.rip);
        insn.end = static_cast<uint16_t>(insn.offset + insn.length);
        ++block.count;
        return rip + insn.length > cpu_.ip_mask;
    };
    while (block.count < Block::kMaxInstructions) {
        Insn& insn = block.insns[block.count];
        std::span<const uint8_t> bytes(fetch.host + (offset - (linear & 0xfff)), 0x1000 - offset);
        DecodeResult r = decoder_.decode(mode, cpu_.stack_bits, bytes, insn);
        if (r.status == DecodeStatus::NeedMoreBytes) {
            if (block.count > 0) break;  // the crossing instruction starts a block of its own
            // The first instruction crosses the page end: fetch the next page too (this may
            // fault, as the instruction fetch would).
            Cpu::Fetch next = cpu_.translate_fetch((linear | 0xfff) + 1);
            uint8_t joined[ZYDIS_MAX_INSTRUCTION_LENGTH] = {};
            size_t first = bytes.size();
            std::memcpy(joined, bytes.data(), first);
            if (next.host) std::memcpy(joined + first, next.host, sizeof joined - first);
            else std::memset(joined + first, 0xff, sizeof joined - first);
            r = decoder_.decode(mode, cpu_.stack_bits, std::span<const uint8_t>(joined, sizeof joined), insn);
            if (std::atomic<uint32_t>* second = pages.word(next.phys)) {
                block.second_page = next.phys & ~0xfffull;
                block.page_word[1] = second;
                block.seen_word[1] = pages.mark(*second);
            }
            block.wraps = append(insn);
            break;
        }
        // Outside 64-bit mode the instruction must end within CS's limit; otherwise the block
        // stops before it and fetching it faults.
        if (!cpu_.code64 && rip + insn.length - 1 > cpu_.seg[CS].limit) {
            if (block.count == 0) raise_gp();
            break;
        }
        bool wraps = append(insn);
        offset += insn.length;
        rip += insn.length;
        if (wraps) {
            block.wraps = true;
            break;
        }
        // A block goes on past a conditional jump (a superblock with a side exit: the Jcc ends
        // the block when it jumps).
        if (r.status != DecodeStatus::Ok || (r.ends_block && !r.conditional_jump) || offset >= 0x1000) break;
    }
    // An instruction followed by a RIP-free one goes on to it without storing its RIP.
    for (unsigned i = 0; i + 1 < block.count; ++i)
        if (block.insns[i + 1].rip_free) block.insns[i].thread = block.insns[i].thread_no_rip;
    // A relative jump back to the block's first instruction (its target is the next RIP plus
    // imm, the block's start is the next RIP minus end) loops inside the threaded code. Not for
    // a block whose last instruction crosses into a page that is checked at every lookup.
    if (block.second_page != ~0ull || block.wraps) return;
    for (unsigned i = 0; i < block.count; ++i) {
        Insn& insn = block.insns[i];
        if (insn.osize != 2 && insn.imm == 0 - uint64_t{insn.end})
            if (Handler loop = loop_back_form(insn)) insn.thread = loop;
    }
}

// The run loop need not look at anything before the next block (see chain()).
void chain_block(Cpu& cpu) {
    if (cpu.chain_budget != 0) cpu.chainer->chain();
}

void Interpreter::chain() {
    Cpu& c = cpu_;
    if (events_->load(std::memory_order_relaxed) != 0 || kicked_->load(std::memory_order_relaxed) || c.halted ||
        c.interrupt_shadow != 0 || (c.flags.other & rflags::TF) || !c.code64 || c.code_pages->epoch() != c.code_epoch)
        return;
    uint64_t tag = jump_tag(c.rip, c.exec_key);
    if (!holds(last_->links[0], tag) && !take_second_link(*last_, tag)) return;
    const BlockLink& link = last_->links[0];
    // The block that ended is counted here (its exit instruction too, unless the sentinel);
    // run_block counts the last one of the chain.
    instructions_ += c.block_done;
    c.end_block = false;
    --c.chain_budget;
    ++blocks_run_;
    Block* next = link.block;
    last_ = next;
    count_run(*next);
    c.block_rip = c.rip;
    c.next_rip = c.rip + next->first_length;  // 64-bit mode: RIP does not wrap
    next->entry(c, *next->insns);
}

inline void Interpreter::run_block(Block& block, unsigned max_instructions) {
    Cpu& c = cpu_;
    bool single_step = (c.flags.other & rflags::TF) != 0;
    const Insn* insn = block.insns;
    ++blocks_run_;
    if (max_instructions >= block.count && !block.wraps) [[likely]] {
        // The whole block as threaded code (exec/exec.hpp): the first instruction's threaded
        // form runs them all, up to the sentinel or an instruction that ends the block, and
        // may go on to the blocks after it (chain()).
        c.block_rip = c.rip;
        c.next_rip = (c.rip + insn->length) & c.ip_mask;
        c.loop_budget = kLoopBudget;
        c.loop_instructions = 0;
        c.chain_budget = chain_budget_;
        count_run(block);
        block.entry(c, *insn);
        c.chain_budget = 0;
        instructions_ += c.loop_instructions + c.block_done;
        c.end_block = false;
    } else {
        // One at a time (a single step, an interrupt shadow, an IP that wraps), up to the limit.
        const Insn* end = insn + std::min<unsigned>(max_instructions, block.count);
        for (; insn != end; ++insn) {
            c.next_rip = (c.rip + insn->length) & c.ip_mask;
            insn->exec(c, *insn);
            c.rip = c.next_rip;
            ++instructions_;
            if (c.end_block) [[unlikely]] {
                c.end_block = false;
                break;
            }
        }
    }
    // A single step traps after the instruction (SDM vol. 3B §17.3.1.4), unless it was a
    // control transfer that cleared TF itself (IRET, an interrupt).
    if (single_step && (c.flags.other & rflags::TF)) {
        c.dr6 |= 1u << 14;  // BS
        deliver_event(c, vec::DB, EventKind::Trap);
    }
}

[[gnu::always_inline]] inline void Interpreter::step(unsigned max_instructions) {
    Cpu& c = cpu_;
    if (tracing_) [[unlikely]] {
        max_instructions = 1;
        trace();
    }
    try {
        // Some vCPU decoded from a page we may hold a write permission for: drop them all.
        if (uint64_t epoch = c.code_pages->epoch(); epoch != c.code_epoch) {
            c.code_epoch = epoch;
            c.flush_tlb_writes();
        }
        if (!c.code64 && c.rip > c.seg[CS].limit) raise_gp();
        uint64_t linear = c.code64 ? c.rip : (c.seg[CS].base + c.rip) & 0xffff'ffffull;
        Block* block = find_block(linear);
        if (!block) return;
        // The shadow of STI / MOV SS covers one instruction (SDM vol. 3A §6.8.3): that one runs
        // alone, so that the run loop can take an interrupt right after it.
        bool shadowed = c.interrupt_shadow != 0;
        run_block(*block, (shadowed || (c.flags.other & rflags::TF)) ? 1 : max_instructions);
        if (shadowed) c.interrupt_shadow = 0;
    } catch (const GuestFault& fault) {
        c.end_block = false;
        c.chain_budget = 0;
        deliver_fault(c, fault);
    }
}

void Interpreter::step() { step(Block::kMaxInstructions); }
void Interpreter::step_instruction() { step(1); }

void Interpreter::run_slice(unsigned blocks, const std::atomic<uint32_t>& events, const std::atomic<bool>& kicked) {
    events_ = &events;
    kicked_ = &kicked;
    cpu_.chainer = this;
    // Up to `blocks` steps and blocks: a step runs at least one block unless it delivers a fault
    // or runs an instruction from outside RAM, and chains no more than are left.
    uint64_t end = blocks_run_ + blocks;
    for (unsigned i = 0; i < blocks && blocks_run_ < end && !cpu_.halted; ++i) {
        chain_budget_ = tracing_ ? 0 : static_cast<unsigned>(std::min<uint64_t>(kChainBudget, end - blocks_run_ - 1));
        step(Block::kMaxInstructions);
        if (events.load(std::memory_order_relaxed) != 0 || kicked.load(std::memory_order_relaxed)) break;
    }
    chain_budget_ = 0;
}

// Code outside RAM (MMIO, unbacked addresses): decoded from what the bus returns, each time.
void Interpreter::run_uncached(uint64_t linear, uint64_t phys) {
    uint8_t bytes[ZYDIS_MAX_INSTRUCTION_LENGTH];
    unsigned first = std::min<unsigned>(sizeof bytes, 0x1000 - static_cast<unsigned>(linear & 0xfff));
    cpu_.phys_read(phys, bytes, first);
    if (first < sizeof bytes) {
        Cpu::Fetch next = cpu_.translate_fetch((linear | 0xfff) + 1);
        cpu_.phys_read(next.phys, bytes + first, static_cast<unsigned>(sizeof bytes - first));
    }
    Insn insn;
    decoder_.decode(code_mode(cpu_), cpu_.stack_bits, std::span<const uint8_t>(bytes, sizeof bytes), insn);
    ++instructions_;
    cpu_.next_rip = (cpu_.rip + insn.length) & cpu_.ip_mask;
    insn.exec(cpu_, insn);
    cpu_.rip = cpu_.next_rip;
    cpu_.end_block = false;
}

}  // namespace strata::soft
