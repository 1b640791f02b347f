/*
 * echo: the console's input path. Sends back every byte COM1 receives (polling LSR.DR) until it
 * receives 'q', then prints "bye" and exits with 0 (status 1). Used by the console tests: piped
 * input, a terminal in raw mode, Ctrl-A x and signals while the guest waits for input.
 */
#include "runtime/runtime.h"

#define COM1 0x3f8
#define LSR_DATA_READY 0x01

void guest_main(void) {
    print("echo: ready\n");
    for (;;) {
        if (!(inb(COM1 + 5) & LSR_DATA_READY)) {
            cpu_pause();
            continue;
        }
        char c = (char)inb(COM1);
        if (c == 'q') break;
        serial_putc(c);
    }
    print("\nbye\n");
    guest_exit(0);
}
