#include "devices/legacy/uart16550.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "fakes.hpp"

namespace strata {
namespace {

using testing::FakeIrqLine;
using testing::inb;
using testing::outb;

// Register offsets as the guest knows them.
constexpr uint64_t RBR = 0, THR = 0, IER = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;

struct Uart : ::testing::Test {
    FakeIrqLine irq;
    std::vector<uint8_t> sent;
    Uart16550 uart{irq, [this](std::span<const uint8_t> bytes) { sent.insert(sent.end(), bytes.begin(), bytes.end()); }};

    size_t receive(std::string_view text) {
        return uart.receive(std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
    }
    // What a driver does once it is ready for input: raise DTR and RTS (and OUT2 for interrupts).
    void raise_dtr_rts() { outb(uart, MCR, 0x0b); }
    std::string drain() {
        std::string got;
        while (inb(uart, LSR) & 0x01) got.push_back(static_cast<char>(inb(uart, RBR)));
        return got;
    }
};

// The probe of Linux's 8250_port.c autoconfig(), step by step, must end in "16550A".
TEST_F(Uart, LinuxAutoconfigDetects16550A) {
    // Existence test: IER keeps exactly its low four bits.
    uint8_t saved_ier = inb(uart, IER);
    outb(uart, IER, 0);
    EXPECT_EQ(inb(uart, IER) & 0x0f, 0);
    outb(uart, IER, 0x0f);
    EXPECT_EQ(inb(uart, IER) & 0x0f, 0x0f);
    outb(uart, IER, saved_ier);

    // Loopback check: MCR = LOOP | OUT2 | RTS must show DCD | CTS in MSR.
    uint8_t saved_mcr = inb(uart, MCR);
    outb(uart, MCR, 0x10 | 0x0a);
    EXPECT_EQ(inb(uart, MSR) & 0xf0, 0x90);
    outb(uart, MCR, saved_mcr);

    outb(uart, LCR, 0xbf);
    outb(uart, 2, 0);  // EFR in a 16650; FCR here
    outb(uart, LCR, 0);
    outb(uart, FCR, 0x01);
    EXPECT_EQ(inb(uart, IIR) >> 6, 3) << "FIFO bits of IIR: 3 means a 16550A";

    // autoconfig_16550a: EFR probes read IIR (nonzero), no NS SuperIO loop bit, not a 16750.
    outb(uart, LCR, 0x80);
    EXPECT_NE(inb(uart, 2), 0);
    outb(uart, LCR, 0xbf);
    EXPECT_NE(inb(uart, 2), 0);
    outb(uart, LCR, 0);
    uint8_t mcr = inb(uart, MCR);
    outb(uart, LCR, 0xe0);
    EXPECT_EQ((inb(uart, 2) ^ mcr) & 0x10, 0);
    outb(uart, LCR, 0);
    outb(uart, FCR, 0x01 | 0x20);
    EXPECT_EQ(inb(uart, IIR) >> 5, 6);
    outb(uart, FCR, 0x01);
    outb(uart, LCR, 0x80);
    outb(uart, FCR, 0x01 | 0x20);
    EXPECT_EQ(inb(uart, IIR) >> 5, 6) << "7 would mean a 16750";
    outb(uart, LCR, 0);
    outb(uart, IER, 0x40);  // UUE: XScale only
    EXPECT_EQ(inb(uart, IER) & 0x40, 0);
    EXPECT_NE(inb(uart, LSR), 0xff);
}

TEST_F(Uart, TransmitsToOutputAndReportsEmpty) {
    outb(uart, THR, 'h');
    outb(uart, THR, 'i');
    EXPECT_EQ(sent, (std::vector<uint8_t>{'h', 'i'}));
    EXPECT_EQ(inb(uart, LSR) & 0x60, 0x60);  // THRE and TEMT: what kvm-unit-tests polls
}

TEST_F(Uart, LoopbackReturnsTransmittedBytesAndModemLines) {
    outb(uart, MCR, 0x10);
    EXPECT_EQ(inb(uart, MSR) & 0xf0, 0);
    outb(uart, THR, 0x5a);
    EXPECT_TRUE(sent.empty());
    EXPECT_EQ(inb(uart, LSR) & 0x01, 1);
    EXPECT_EQ(inb(uart, RBR), 0x5a);
    outb(uart, MCR, 0x10 | 0x01 | 0x04);  // DTR → DSR, OUT1 → RI
    EXPECT_EQ(inb(uart, MSR) & 0xf0, 0x20 | 0x40);
    outb(uart, MCR, 0);
    EXPECT_EQ(inb(uart, MSR) & 0xb0, 0xb0) << "CTS, DSR, DCD asserted outside loopback";
}

TEST_F(Uart, DivisorLatchDoesNotDisturbIer) {
    outb(uart, IER, 0x05);
    outb(uart, LCR, 0x83);
    outb(uart, 0, 0x01);
    outb(uart, 1, 0x02);
    EXPECT_EQ(inb(uart, 0), 0x01);
    EXPECT_EQ(inb(uart, 1), 0x02);
    outb(uart, LCR, 0x03);
    EXPECT_EQ(inb(uart, IER), 0x05);
    EXPECT_EQ(inb(uart, LCR), 0x03);
    outb(uart, SCR, 0x77);
    EXPECT_EQ(inb(uart, SCR), 0x77);
}

TEST_F(Uart, ThreInterruptRaisedOnEnableClearedByIirAndRetriggeredByWrite) {
    outb(uart, IER, 0x02);
    EXPECT_TRUE(irq.level());
    EXPECT_EQ(inb(uart, IIR), 0x02);
    EXPECT_FALSE(irq.level()) << "reading IIR while THRE is reported acknowledges it";
    EXPECT_EQ(inb(uart, IIR), 0x01);
    irq.clear();
    outb(uart, THR, 'x');
    EXPECT_TRUE(irq.level()) << "THR empties again after the byte leaves";
    // Linux's startup THRE test: toggling ETBEI re-asserts it.
    EXPECT_EQ(inb(uart, IIR), 0x02);
    outb(uart, IER, 0);
    outb(uart, IER, 0x02);
    EXPECT_EQ(inb(uart, IIR) & 0x0f, 0x02);
}

TEST_F(Uart, ThrWriteClearsPendingThreWithAFreshEdge) {
    outb(uart, IER, 0x02);
    irq.clear();
    outb(uart, THR, 'x');
    EXPECT_EQ(irq.levels(), (std::vector<bool>{false, true}));
}

TEST_F(Uart, InterruptPrioritiesFollowTheDatasheet) {
    outb(uart, FCR, 0x01);
    outb(uart, IER, 0x0f);
    // Loopback drops CTS/DSR/DCD (modem status deltas); 17 looped-back bytes fill the FIFO and
    // overrun it (line status), leave received data, and THRE follows the last one.
    outb(uart, MCR, 0x10);
    for (int i = 0; i < 17; ++i) outb(uart, THR, 'a');
    EXPECT_EQ(inb(uart, IIR), 0xc6) << "line status first";
    EXPECT_EQ(inb(uart, LSR) & 0x03, 0x03) << "data ready and overrun";
    EXPECT_EQ(inb(uart, IIR), 0xc4) << "then received data (FIFO above trigger level 1)";
    outb(uart, IER, 0x0e);  // stop asking for received data
    EXPECT_EQ(inb(uart, IIR), 0xc2) << "then THRE";
    EXPECT_EQ(inb(uart, IIR), 0xc0) << "then modem status";
    EXPECT_NE(inb(uart, MSR) & 0x0f, 0);
    EXPECT_EQ(inb(uart, IIR), 0xc1);
    EXPECT_FALSE(irq.level());
}

TEST_F(Uart, FifoTriggerLevelSeparatesTimeoutFromDataAvailable) {
    outb(uart, FCR, 0x41);  // FIFO on, trigger level 4
    outb(uart, IER, 0x01);
    raise_dtr_rts();
    receive("ab");
    EXPECT_TRUE(irq.level());
    EXPECT_EQ(inb(uart, IIR), 0xcc) << "below the trigger level: character timeout";
    receive("cd");
    EXPECT_EQ(inb(uart, IIR), 0xc4) << "at the trigger level: received data available";
    for (char c : std::string_view("abcd")) EXPECT_EQ(inb(uart, RBR), c);
    EXPECT_EQ(inb(uart, LSR) & 0x01, 0);
    EXPECT_FALSE(irq.level());
}

TEST_F(Uart, BacklogFeedsPastedTextWithoutLoss) {
    std::string text(1000, 'x');
    for (size_t i = 0; i < text.size(); ++i) text[i] = static_cast<char>('a' + i % 26);
    raise_dtr_rts();
    for (uint8_t fcr : {uint8_t{0x00}, uint8_t{0xc1}}) {  // holding register only, then FIFO
        outb(uart, FCR, fcr);
        EXPECT_EQ(receive(text), text.size());
        EXPECT_EQ(drain(), text) << "FCR " << int{fcr};
        EXPECT_EQ(inb(uart, LSR) & 0x02, 0) << "no overrun";
    }
}

// Input that comes before the guest's driver is ready waits: the FIFO resets of its set-up
// cannot lose it, and it arrives once DTR and RTS are up (as "abcq" piped to the echo guest).
TEST_F(Uart, InputWaitsForDtrAndRtsAndSurvivesFifoResets) {
    EXPECT_EQ(receive("abcq"), 4u);
    EXPECT_EQ(inb(uart, LSR) & 0x01, 0) << "nothing before DTR and RTS";
    outb(uart, FCR, 0x07);  // FIFOs on and cleared
    outb(uart, MCR, 0x01);  // DTR alone (Linux's console set-up) is not enough
    EXPECT_EQ(inb(uart, LSR) & 0x01, 0);
    outb(uart, FCR, 0x00);  // the FIFO toggled off: cleared again
    outb(uart, FCR, 0xc1);
    raise_dtr_rts();
    EXPECT_EQ(drain(), "abcq");
    EXPECT_EQ(inb(uart, LSR) & 0x02, 0) << "no overrun";
}

TEST_F(Uart, LoopbackKeepsHostInputForLater) {
    raise_dtr_rts();
    outb(uart, MCR, 0x1b);  // loopback on
    receive("xy");
    outb(uart, THR, 'L');
    EXPECT_EQ(drain(), "L") << "only the looped-back byte";
    outb(uart, MCR, 0x0b);
    EXPECT_EQ(drain(), "xy");
}

// A full backlog takes no more (the host keeps the rest: back-pressure, never loss) and says
// when half of it is free again, once.
TEST_F(Uart, FullBacklogPushesBackAndTellsWhenThereIsRoom) {
    int notified = 0;
    uart.set_room_notifier([&] { ++notified; });
    std::vector<uint8_t> flood(Uart16550::kBacklogLimit + 100, 'z');
    EXPECT_EQ(uart.receive(flood), Uart16550::kBacklogLimit);
    EXPECT_EQ(uart.receive(flood), 0u);
    raise_dtr_rts();
    size_t count = 0;
    while (inb(uart, LSR) & 0x01) {
        EXPECT_EQ(inb(uart, RBR), 'z');
        ++count;
        // The FIFO-less holding register takes one byte from the backlog per read.
        if (count + 1 < Uart16550::kBacklogLimit / 2) {  // one byte waits in the holding register
            EXPECT_EQ(notified, 0) << count;
        }
    }
    EXPECT_EQ(count, Uart16550::kBacklogLimit);
    EXPECT_EQ(notified, 1);
    EXPECT_EQ(inb(uart, LSR) & 0x02, 0) << "no overrun: nothing was lost";
}

// A snapshot carries the registers, the received bytes in the FIFO and what the host sent beyond
// them: a UART restored from it interrupts and hands the guest every byte, in order.
TEST_F(Uart, ARestoredUartHasItsRegistersAndEveryByteNotYetRead) {
    outb(uart, FCR, 0x01);        // FIFOs on, trigger 1
    outb(uart, MCR, 0x0b);        // DTR, RTS, OUT2: ready to receive
    outb(uart, IER, 0x01);        // received-data interrupt
    outb(uart, SCR, 0x5a);
    ASSERT_EQ(receive("abcdefghijklmnopqrstuvwxyz"), 26u);  // 16 in the FIFO, 10 waiting
    ASSERT_TRUE(irq.level());

    FakeIrqLine restored_irq;
    std::vector<uint8_t> restored_sent;
    Uart16550 restored(restored_irq, [&](std::span<const uint8_t> b) { restored_sent.insert(restored_sent.end(), b.begin(), b.end()); });
    ASSERT_TRUE(restored.set_state(testing::through_snapshot(uart.state())));
    EXPECT_TRUE(restored_irq.level()) << "the received-data interrupt is up again";
    EXPECT_EQ(inb(restored, IER), 0x01);
    EXPECT_EQ(inb(restored, SCR), 0x5a);
    EXPECT_EQ(inb(restored, IIR) & 0xc0, 0xc0) << "FIFOs stay on";
    std::string got;
    while (inb(restored, LSR) & 0x01) got.push_back(static_cast<char>(inb(restored, RBR)));
    EXPECT_EQ(got, "abcdefghijklmnopqrstuvwxyz");
    EXPECT_FALSE(restored_irq.level());
    outb(restored, THR, 'x');
    EXPECT_EQ(restored_sent, std::vector<uint8_t>{'x'});
}

TEST_F(Uart, AStateNo16550HoldsIsRefusedAndChangesNothing) {
    Uart16550::State bad = uart.state();
    bad.ier = 0x10;
    auto refused = uart.set_state(bad);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("IER 0x10"), std::string::npos) << refused.error().message;
    bad = uart.state();
    bad.rx_fifo.assign(2, 'a');  // FIFOs off: a one-byte holding register
    EXPECT_FALSE(uart.set_state(bad));
    EXPECT_EQ(inb(uart, IER), 0);
    EXPECT_EQ(inb(uart, LSR) & 0x01, 0) << "no byte appeared";
}

}  // namespace
}  // namespace strata
