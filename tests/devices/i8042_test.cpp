#include "devices/legacy/i8042.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "fakes.hpp"

namespace strata {
namespace {

using testing::FakeIrqLine;
using testing::FakeMachineControl;
using testing::inb;
using testing::outb;

constexpr uint8_t kOutputFull = 0x01, kAuxData = 0x20, kTimeout = 0x40;

struct Ps2 : ::testing::Test {
    FakeIrqLine keyboard_irq, aux_irq;
    FakeMachineControl control;
    I8042 i8042{keyboard_irq, aux_irq, control};
    BusDevice& data = *i8042.data_port();
    BusDevice& command = *i8042.command_port();

    std::vector<uint8_t> drain() {
        std::vector<uint8_t> bytes;
        while (inb(command, 0) & kOutputFull) bytes.push_back(inb(data, 0));
        return bytes;
    }
};

TEST_F(Ps2, SelfTestAnswers55AndRaisesIrq1) {
    outb(command, 0, 0xaa);
    EXPECT_EQ(inb(command, 0) & (kOutputFull | 0x04 | 0x08), kOutputFull | 0x04 | 0x08);  // OBF, SYS, last=command
    EXPECT_TRUE(keyboard_irq.level());
    EXPECT_EQ(inb(data, 0), 0x55);
    EXPECT_FALSE(keyboard_irq.level());
    EXPECT_EQ(inb(command, 0) & kOutputFull, 0);
    outb(command, 0, 0xab);
    outb(command, 0, 0xa9);
    EXPECT_EQ(drain(), (std::vector<uint8_t>{0x00, 0x00}));
}

TEST_F(Ps2, CommandByteReadWriteGatesInterrupts) {
    outb(command, 0, 0x60);
    outb(data, 0, 0x00);  // no interrupts
    outb(command, 0, 0x20);
    EXPECT_FALSE(keyboard_irq.level());
    EXPECT_EQ(inb(data, 0), 0x00);
    outb(command, 0, 0x60);
    outb(data, 0, 0x01);
    outb(command, 0, 0x20);
    EXPECT_TRUE(keyboard_irq.level());
    EXPECT_EQ(inb(data, 0), 0x01);
}

TEST_F(Ps2, EnableDisableKeyboardAndAuxBits) {
    outb(command, 0, 0xad);
    outb(command, 0, 0xa8);
    outb(command, 0, 0x20);
    uint8_t byte = inb(data, 0);
    EXPECT_EQ(byte & 0x30, 0x10);
    outb(command, 0, 0xae);
    outb(command, 0, 0xa7);
    outb(command, 0, 0x20);
    EXPECT_EQ(inb(data, 0) & 0x30, 0x20);
}

TEST_F(Ps2, KeyboardCommands) {
    outb(data, 0, 0xff);
    EXPECT_EQ(drain(), (std::vector<uint8_t>{0xfa, 0xaa}));
    outb(data, 0, 0xf2);
    EXPECT_EQ(drain(), (std::vector<uint8_t>{0xfa, 0xab, 0x83}));
    outb(data, 0, 0xed);
    outb(data, 0, 0x07);
    EXPECT_EQ(drain(), (std::vector<uint8_t>{0xfa, 0xfa}));
    outb(data, 0, 0xf0);
    outb(data, 0, 0x00);
    EXPECT_EQ(drain(), (std::vector<uint8_t>{0xfa, 0xfa, 0x02}));
    outb(data, 0, 0xf3);
    outb(data, 0, 0x20);
    outb(data, 0, 0xf5);
    outb(data, 0, 0xf4);
    outb(data, 0, 0x42);  // unknown: acknowledged
    EXPECT_EQ(drain(), (std::vector<uint8_t>{0xfa, 0xfa, 0xfa, 0xfa, 0xfa}));
    EXPECT_TRUE(control.stops().empty());
}

TEST_F(Ps2, KeyboardInputIsDroppedWhileDisabled) {
    const uint8_t press[] = {0x1e};
    i8042.keyboard_input(press);
    EXPECT_EQ(drain(), (std::vector<uint8_t>{0x1e}));
    outb(command, 0, 0xad);
    i8042.keyboard_input(press);
    EXPECT_TRUE(drain().empty());
}

TEST_F(Ps2, PulseFeRequestsReset) {
    outb(command, 0, 0xff);  // pulses no line
    EXPECT_TRUE(control.stops().empty());
    outb(command, 0, 0xfe);
    ASSERT_EQ(control.stops().size(), 1u);
    EXPECT_EQ(control.stops()[0].kind, StopKind::Reset);
}

TEST_F(Ps2, OutputPortBitZeroClearedResets) {
    outb(command, 0, 0xd0);
    EXPECT_EQ(inb(data, 0) & 0x03, 0x03);  // running, A20 on
    outb(command, 0, 0xd1);
    outb(data, 0, 0x03);
    EXPECT_TRUE(control.stops().empty());
    outb(command, 0, 0xd1);
    outb(data, 0, 0x02);
    ASSERT_EQ(control.stops().size(), 1u);
    EXPECT_EQ(control.stops()[0].kind, StopKind::Reset);
}

TEST_F(Ps2, AuxWithoutMouseTimesOutOnIrq12) {
    outb(command, 0, 0x60);
    outb(data, 0, 0x03);  // keyboard and aux interrupts
    outb(command, 0, 0xd4);
    outb(data, 0, 0xff);  // reset the (absent) mouse
    uint8_t status = inb(command, 0);
    EXPECT_EQ(status & (kOutputFull | kAuxData | kTimeout), kOutputFull | kAuxData | kTimeout);
    EXPECT_TRUE(aux_irq.level());
    EXPECT_FALSE(keyboard_irq.level());
    EXPECT_EQ(inb(data, 0), 0xfe);
    EXPECT_FALSE(aux_irq.level());
    EXPECT_EQ(inb(command, 0) & kTimeout, 0);
    // The aux loopback Linux uses to test IRQ12 delivery.
    outb(command, 0, 0xd3);
    outb(data, 0, 0x5a);
    EXPECT_TRUE(aux_irq.level());
    EXPECT_EQ(inb(command, 0) & kAuxData, kAuxData);
    EXPECT_EQ(inb(data, 0), 0x5a);
}

// Bytes the guest has not read yet and the command byte go with a snapshot.
TEST_F(Ps2, ARestoredControllerHasItsPendingBytesAndIrq) {
    outb(data, 0, 0xf2);  // identify: fa ab 83
    ASSERT_TRUE(keyboard_irq.level());
    FakeIrqLine restored_keyboard, restored_aux;
    FakeMachineControl restored_control;
    I8042 restored{restored_keyboard, restored_aux, restored_control};
    ASSERT_TRUE(restored.set_state(testing::through_snapshot(i8042.state())));
    EXPECT_TRUE(restored_keyboard.level());
    std::vector<uint8_t> bytes;
    while (inb(*restored.command_port(), 0) & kOutputFull) bytes.push_back(inb(*restored.data_port(), 0));
    EXPECT_EQ(bytes, (std::vector<uint8_t>{0xfa, 0xab, 0x83}));
    EXPECT_FALSE(restored_keyboard.level());
}

TEST_F(Ps2, AnOutputQueueOverItsLimitIsRefused) {
    I8042::State bad = i8042.state();
    bad.output.resize(257);
    EXPECT_FALSE(i8042.set_state(bad));
    StateWriter out;
    out.u32(100'000);  // a queue length no decoder may believe
    StateReader reader(out.view(), "i8042");
    (void)I8042::State::decode(reader);
    EXPECT_FALSE(reader.finish());
}

}  // namespace
}  // namespace strata
