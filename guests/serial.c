/*
 * serial: prints a known multi-line text on COM1 (the e2e test compares stdout byte for byte),
 * then checks the 16550's loopback mode (MCR bit 4, PC16550D datasheet §8.6.5): transmitted bytes
 * come back in RBR instead of leaving the UART, and the MCR outputs show up in the MSR inputs.
 * Exit codes: 0 passed; 1 a byte did not come back (no LSR.DR); 2 a wrong byte came back;
 * 3 the modem status lines do not follow MCR.
 */
#include "runtime/runtime.h"

enum { COM1 = 0x3f8, RBR = 0, THR = 0, MCR = 4, LSR = 5, MSR = 6 };
enum { LSR_DATA_READY = 0x01, MCR_LOOP = 0x10, MCR_DTR = 0x01, MCR_RTS = 0x02, MCR_OUT2 = 0x08 };

static bool wait_data_ready(void) {
    for (int spins = 0; spins < 10000; ++spins)
        if (inb(COM1 + LSR) & LSR_DATA_READY) return true;
    return false;
}

static uint32_t check_loopback(void) {
    while (inb(COM1 + LSR) & LSR_DATA_READY) (void)inb(COM1 + RBR);
    outb(COM1 + MCR, MCR_LOOP | MCR_DTR | MCR_OUT2);
    /* Loopback wires DTR to DSR (MSR bit 5), RTS to CTS (bit 4), OUT2 to DCD (bit 7). */
    uint8_t msr = inb(COM1 + MSR);
    static const uint8_t bytes[] = {0x00, 0x55, 0xaa, 0xff, 'Z', '\n'};
    uint32_t result = 0;
    for (unsigned i = 0; i < sizeof bytes && !result; ++i) {
        outb(COM1 + THR, bytes[i]);
        if (!wait_data_ready()) {
            result = 1;
            break;
        }
        uint8_t got = inb(COM1 + RBR);
        if (got != bytes[i]) result = 2;
    }
    outb(COM1 + MCR, MCR_DTR | MCR_RTS);
    if (result == 1) print("serial: loopback byte never arrived\n");
    if (result == 2) print("serial: loopback returned a wrong byte\n");
    if (!result && (msr & 0xf0) != 0xa0) {
        printf("serial: loopback MSR %x, expected DCD|DSR (0xa0)\n", msr & 0xf0);
        result = 3;
    }
    return result;
}

void guest_main(void) {
    print("serial: the quick brown fox\n");
    print("serial: jumps over the lazy dog 0123456789\n");
    print("serial: tabs\tand symbols !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\n");
    uint32_t result = check_loopback();
    if (result) guest_exit(result);
    print("serial: loopback ok\n");
    guest_exit(0);
}
