// The PC's two cascaded Intel 8259A programmable interrupt controllers, with the edge/level
// control registers (ELCR) of the PIIX south bridge, for engines without in-kernel interrupt
// controllers.
//
// State:    per chip: IRR, ISR, IMR, the levels of its eight input lines, ELCR, the vector base
//           (ICW2), the cascade byte (ICW3), the ICW1/ICW4 mode bits, the initialization step,
//           the IR that has the highest priority (rotation), and OCW3's read select, poll and
//           special mask mode. The slave's INT output is the master's IR2 line.
// Features: three windows the board places separately: master_port() (0x20-0x21), slave_port()
//           (0xa0-0xa1), elcr_port() (0x4d0-0x4d1, master then slave; IRQ 0-2, 8 and 13 are
//           always edge). ICW1-ICW4 (cascade or single mode, with or without ICW4, LTIM), OCW1,
//           OCW2 (non-specific and specific EOI with or without rotation, set priority, rotate in
//           auto-EOI mode), OCW3 (read IRR or ISR at the command port, poll, special mask mode),
//           auto-EOI, special fully nested mode. An edge-sensitive input latches a request on its
//           rising edge (so IrqLine::pulse() works, as with KVM's and QEMU's 8259s); a
//           level-sensitive one (ELCR bit or LTIM) requests while it is high. Fully nested
//           priority with rotation, the slave's requests through master IR2; acknowledge() is the
//           INTA cycle: the vector of the best request, moved into service on both chips for a
//           slave IRQ, or the spurious vector of IR7 (master, or slave through IR2) when the
//           request vanished (masked, or a level line lowered) before INTA.
//           Starts as PC firmware leaves the chips (see the constructor).
// Missing:  MCS-80/85 mode (ICW4 uPM = 0 still gives 8086 vectors); buffered mode (recorded
//           only); the slave answers for master IR2 whatever ID its ICW3 holds. input(2) goes
//           nowhere: the master's IR2 is the cascade (on an AT the ISA bus's IRQ2 pin is IRQ 9).
// Spec:     Intel 8259A datasheet (order 231468): "Interrupt Sequence", "Initialization Command
//           Words", "Operation Command Words", "Special Fully Nest Mode", "Edge and Level
//           Triggered Modes"; Intel 82371AB PIIX4 datasheet, ELCR1/ELCR2 registers; Linux
//           arch/x86/kernel/i8259.c for what a guest does with them.
//
// Concurrency: input lines change on device threads, the ports are accessed by vCPU threads and
// acknowledge() is called by the vCPU that takes the interrupt; one mutex guards the state. The
// INT output is never signalled with that mutex held: the thread that changed the state signals
// the new level after unlocking, and if another thread is signalling at that moment, that thread
// signals the newest level for both once its own call returns. So the output's set_level may call
// back into the pair (acknowledge() included), and the last level signalled is always the state's.
// Callers of acknowledge(), input().set_level() and the ports must not hold a lock that the
// output's set_level takes (acknowledge() lowers INT on the calling thread).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>

#include "bus/bus_device.hpp"
#include "bus/irq_line.hpp"
#include "devices/irqchip/apic_bus.hpp"

namespace strata {

class Pic8259Pair final : public ExtIntSource {
public:
    static constexpr uint64_t kMasterWindowSize = 2;  // 0x20 command, 0x21 data
    static constexpr uint64_t kSlaveWindowSize = 2;   // 0xa0 command, 0xa1 data
    static constexpr uint64_t kElcrWindowSize = 2;    // 0x4d0 master, 0x4d1 slave
    static constexpr unsigned kInputs = 16;           // ISA IRQ 0-15
    static constexpr unsigned kCascadeIr = 2;         // the slave's INT reaches master IR2

    // One 8259A as a snapshot holds it.
    struct ChipState {
        uint8_t irr = 0;                 // interrupt request register
        uint8_t isr = 0;                 // in-service register
        uint8_t imr = 0;                 // interrupt mask register (OCW1)
        uint8_t input_levels = 0;        // the IR lines as they are now (master IR2: the slave's INT)
        uint8_t elcr = 0;                // PIIX ELCR: 1 = level-sensitive IR
        uint8_t vector_base = 0;         // ICW2 T7-T3; IR n gives vector_base + n
        uint8_t cascade = 0;             // ICW3: master: IRs with a slave; slave: its ID
        uint8_t highest_priority_ir = 0; // rotation: this IR has priority 0, the one below it 7
        uint8_t init_step = 0;           // 0 initialized; 1, 2, 3: ICW2, ICW3, ICW4 expected next
        bool level_triggered = false;    // ICW1 LTIM: every IR is level-sensitive
        bool single = false;             // ICW1 SNGL: no cascade, no ICW3
        bool icw4_needed = false;        // ICW1 IC4
        bool mode_8086 = false;          // ICW4 uPM
        bool auto_eoi = false;           // ICW4 AEOI
        uint8_t buffered_mode = 0;       // ICW4 BUF and M/S (bits 3-2 of ICW4), recorded only
        bool special_fully_nested = false;  // ICW4 SFNM
        bool rotate_on_auto_eoi = false; // OCW2 "rotate in automatic EOI mode"
        bool read_isr = false;           // OCW3 RR/RIS: the command port reads ISR, else IRR
        bool poll = false;               // OCW3 P: the next read is a poll
        bool special_mask = false;       // OCW3 SMM
    };
    struct State {
        ChipState master;
        ChipState slave;
    };

    // `interrupt_output` is the master's INT pin (the local APICs' LINT0); it must outlive the
    // pair and is set only when its level changes, starting from low.
    // The chips start as SeaBIOS leaves them, and as the kvm engine programs KVM's (kvm_engine.cpp,
    // program_pics_as_firmware): initialized for 8086 mode with ICW4, the slave on IR2, vectors
    // 0x08-0x0f and 0x70-0x77, master IMR 0xfb (only the cascade open), slave IMR 0xf3 (IRQ 10
    // and 11 open, where PCI INTx lines go), every input edge-sensitive. Real-mode guests rely on
    // it (kvm-unit-tests' realmode raises IRQ 11 and expects vector 0x73).
    explicit Pic8259Pair(IrqLine& interrupt_output);
    ~Pic8259Pair() override;
    Pic8259Pair(const Pic8259Pair&) = delete;
    Pic8259Pair& operator=(const Pic8259Pair&) = delete;

    [[nodiscard]] std::shared_ptr<BusDevice> master_port() const { return master_port_; }
    [[nodiscard]] std::shared_ptr<BusDevice> slave_port() const { return slave_port_; }
    [[nodiscard]] std::shared_ptr<BusDevice> elcr_port() const { return elcr_port_; }

    // The line of ISA IRQ `irq` (0-15): 0-7 master IR0-7, 8-15 slave IR0-7. The lines live as
    // long as any of the pair's windows or the pair itself.
    [[nodiscard]] IrqLine& input(unsigned irq);

    // The INTA cycle (8259A datasheet "Interrupt Sequence").
    uint8_t acknowledge() override;

    [[nodiscard]] State state() const;
    // Restores a snapshot (reserved bits dropped) and signals the INT level it gives.
    void set_state(const State& state);

private:
    struct Core;  // defined in pic8259.cpp; shared by the three windows and the input lines

    std::shared_ptr<Core> core_;
    std::shared_ptr<BusDevice> master_port_;
    std::shared_ptr<BusDevice> slave_port_;
    std::shared_ptr<BusDevice> elcr_port_;
};

}  // namespace strata
