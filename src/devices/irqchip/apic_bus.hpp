// How interrupt messages travel between the interrupt controllers of a PC without in-kernel ones:
// the IOAPIC and MSI-capable devices send messages to the local APICs over the APIC bus (the
// system bus since P6), the 8259 pair drives LINT0 of the local APICs (virtual-wire mode) and
// answers the interrupt-acknowledge cycle of an ExtINT, and a local APIC's EOI of a
// level-triggered vector goes back to the IOAPIC (its remote IRR).
//
// The soft engine implements LocalApicSet over its vCPUs' local APICs; the board wires its own
// 8259 pair and IOAPIC to it (machine/board.cpp).
// Spec: Intel SDM vol. 3A §11.6 (ICR, delivery modes), §11.11 (MSI address and data format);
// 82093AA IOAPIC datasheet §3.2.4 (redirection table); 8259A datasheet (INTA cycle).
#pragma once

#include <cstdint>
#include <optional>

#include "bus/irq_line.hpp"

namespace strata {

class LocalApic;

enum class DeliveryMode : uint8_t {
    Fixed = 0,
    LowestPriority = 1,
    Smi = 2,
    Nmi = 4,
    Init = 5,
    StartUp = 6,
    ExtInt = 7,
};

// The ICR's destination shorthand (SDM vol. 3A §11.6.1): IPIs only; IOAPIC and MSI messages use None.
enum class DestinationShorthand : uint8_t {
    None = 0,
    Self = 1,
    AllIncludingSelf = 2,
    AllExcludingSelf = 3,
};

// One interrupt message, as an IOAPIC redirection entry, an MSI or an IPI sends it.
struct ApicMessage {
    uint8_t vector = 0;
    DeliveryMode mode = DeliveryMode::Fixed;
    bool logical = false;       // destination mode: logical (true) or physical APIC ID
    uint32_t destination = 0;   // APIC ID (0xff broadcast in xAPIC physical mode) or logical mask
    bool level_triggered = false;
    bool assert = true;         // level: assert (INIT level de-assert is the one "false" in use)
    DestinationShorthand shorthand = DestinationShorthand::None;
    // The local APIC that sent an IPI (what Self and AllExcludingSelf refer to); null for IOAPIC
    // and MSI messages.
    const LocalApic* source = nullptr;
    // The destination is a 32-bit x2APIC one (an IPI from an APIC in x2APIC mode, SDM §11.12.9):
    // 0xffffffff is the broadcast. Otherwise it is 8 bits wide and 0xff is the broadcast.
    bool x2apic_destination = false;

    // The message an MSI write of `data` to `address` (0xFEExxxxx) makes (SDM vol. 3A §11.11.1-2).
    static ApicMessage from_msi(uint64_t address, uint32_t data) {
        ApicMessage m;
        m.vector = static_cast<uint8_t>(data & 0xff);
        m.mode = static_cast<DeliveryMode>((data >> 8) & 7);
        m.level_triggered = (data >> 15) & 1;
        m.assert = ((data >> 14) & 1) != 0 || !m.level_triggered;
        m.logical = (address >> 2) & 1;
        m.destination = static_cast<uint32_t>((address >> 12) & 0xff);
        return m;
    }
};

// Where messages go: the local APICs of every vCPU.
class ApicBus {
public:
    virtual ~ApicBus() = default;
    virtual void send(const ApicMessage& message) = 0;
};

// The 8259 pair as a local APIC's LINT0 sees it in ExtINT mode.
class ExtIntSource {
public:
    virtual ~ExtIntSource() = default;
    // The interrupt-acknowledge cycle: the vector of the highest-priority pending request (moved
    // into service), or the spurious vector IRQ7/IRQ15 gives when none is pending any more.
    virtual uint8_t acknowledge() = 0;
};

// The IOAPIC as a local APIC's EOI of a level-triggered interrupt reaches it.
class EoiListener {
public:
    virtual ~EoiListener() = default;
    virtual void end_of_interrupt(uint8_t vector) = 0;
};

// What an engine without in-kernel interrupt controllers supplies: its local APICs.
class LocalApicSet : public ApicBus {
public:
    // The 8259 pair's INT output, wired to LINT0 of every local APIC.
    virtual IrqLine& lint0() = 0;
    // Connects the board's 8259 pair (ExtINT acknowledge) and IOAPIC (EOI); before any vCPU runs.
    virtual void connect(ExtIntSource& pic, EoiListener& ioapic) = 0;
};

}  // namespace strata
