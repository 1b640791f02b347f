// The 16550A UART (COM1 on the PC board): the guest's console.
//
// State:    IER, LCR, MCR, SCR, divisor latch, LSR error bits, MSR deltas, a 16-byte RX FIFO
//           (1 byte when FIFOs are off), the THRE interrupt latch, and a host-side input backlog;
//           state()/set_state() for snapshots.
// Features: DLAB; FIFOs enabled by FCR with IIR bits 7:6 = 11; RX trigger levels 1/4/8/14;
//           interrupt priorities line status > received data / character timeout > THRE > modem
//           status; THRE interrupt raised when ETBEI is set with THR empty and after each
//           transmitted byte, cleared by reading IIR while it is the reported source or by writing
//           THR; loopback (MCR bit 4) looping THR to RBR and RTS/DTR/OUT1/OUT2 to CTS/DSR/RI/DCD,
//           so that Linux's 8250 autoconfig detects a 16550A; CTS/DSR/DCD asserted otherwise.
//           Host input goes to a backlog of up to kBacklogLimit bytes that refills the RX FIFO as
//           the guest drains it, but only while the guest asserts DTR and RTS outside loopback
//           (hardware flow control), so that input sent before the guest's driver is ready is kept,
//           not lost to its FIFO resets. A full backlog takes no more: receive() says how much it
//           took, and the room notifier tells the host when it may send again. Host input is
//           never dropped.
// Missing:  baud-rate timing (bytes move instantly, so THR/TSR are always empty); the character
//           timeout is reported as soon as the FIFO holds fewer bytes than the trigger level and
//           the host has nothing more, instead of after four character times; parity, framing and
//           break are never produced; OUT2 does not gate the interrupt (as in QEMU). A wider
//           access is taken as consecutive byte registers (ISA splitting); string I/O must reach
//           the device one element at a time.
// Spec:     National Semiconductor PC16550D datasheet (§8 registers, Table II interrupt control);
//           Linux drivers/tty/serial/8250/8250_port.c autoconfig() for what detection checks.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "base/state_stream.hpp"
#include "bus/bus_device.hpp"
#include "bus/irq_line.hpp"
#include "devices/console_input.hpp"

namespace strata {

class Uart16550 final : public BusDevice, public ConsoleInput {
public:
    static constexpr uint64_t kWindowSize = 8;
    static constexpr size_t kFifoSize = 16;
    static constexpr size_t kBacklogLimit = 64 * 1024;

    using Output = std::function<void(std::span<const uint8_t>)>;

    // `output` receives the bytes the guest transmits; it is called without the device's lock
    // held, so it may block or call receive().
    Uart16550(IrqLine& irq, Output output);

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // Host input (console thread): takes as many of `bytes` as the backlog has room for and
    // returns that count. When it took fewer than offered, the room notifier is called once the
    // guest has drained half the backlog.
    size_t receive(std::span<const uint8_t> bytes) override;
    // Called without the device's lock, from the vCPU thread that read the UART.
    void set_room_notifier(std::function<void()> notifier) override;

    // For snapshots: the registers, the RX FIFO and the host backlog (input the guest has not
    // read yet belongs to the VM and goes with it); the interrupt line follows from them.
    struct State {
        uint8_t ier = 0, lcr = 0, mcr = 0, scr = 0, fcr = 0, lsr_errors = 0, msr = 0;
        uint16_t divisor = 12;
        bool thr_interrupt = false;
        std::vector<uint8_t> rx_fifo;
        std::vector<uint8_t> backlog;
        void encode(StateWriter& out) const;
        static State decode(StateReader& in);
    };
    [[nodiscard]] State state() const;
    // Fails, changing nothing, on what no 16550 holds (IER or MCR bits it lacks, FCR bits it does
    // not keep, more received bytes than its FIFO has room for).
    Result<void> set_state(const State& state);

private:
    // Register offsets (PC16550D Table II); the same offset means different registers for
    // reads and writes, and offsets 0/1 become the divisor latch while LCR.DLAB is set.
    enum class Reg : uint8_t {
        Data = 0,        // RBR (read) / THR (write); DLL with DLAB
        IntEnable = 1,   // IER; DLM with DLAB
        IntIdent = 2,    // IIR (read) / FCR (write)
        LineControl = 3,
        ModemControl = 4,
        LineStatus = 5,
        ModemStatus = 6,
        Scratch = 7,
    };

    uint8_t read_register(uint8_t offset);
    void write_register(uint8_t offset, uint8_t value, std::optional<uint8_t>& transmitted);
    [[nodiscard]] uint8_t interrupt_identification() const;
    [[nodiscard]] size_t rx_capacity() const;
    [[nodiscard]] size_t rx_trigger_level() const;
    [[nodiscard]] bool receiver_ready() const;
    void refill_rx();
    void push_rx(uint8_t byte);
    void set_modem_inputs(uint8_t status);
    void update_irq();

    IrqLine& irq_;
    Output output_;
    mutable std::mutex mutex_;  // the registers
    std::mutex output_mutex_;  // keeps transmitted bytes in order once mutex_ is released

    uint8_t ier_ = 0;
    uint8_t lcr_ = 0;
    uint8_t mcr_ = 0;
    uint8_t scr_ = 0;
    uint8_t fcr_ = 0;           // FIFO enable and trigger bits as last written
    uint8_t lsr_errors_ = 0;    // OE/PE/FE/BI, cleared by reading LSR
    uint8_t msr_ = 0;           // status bits 7:4 and delta bits 3:0
    uint16_t divisor_ = 12;     // 9600 baud from the 1.8432 MHz clock
    bool thr_interrupt_ = false;
    bool irq_level_ = false;
    std::deque<uint8_t> rx_fifo_;
    std::deque<uint8_t> backlog_;
    bool host_waiting_ = false;  // receive() refused bytes; notify when there is room
    std::function<void()> room_notifier_;
};

}  // namespace strata
