/*
 * pio: port I/O round-trips through pc-testdev's scratch port 0xe0 at widths 1, 2 and 4, and a read
 * of an unclaimed port, which must float to all ones as on a PC's ISA bus.
 * Exit codes: 0 all passed; 1-3 scratch width 1/2/4 read back wrong; 4-6 unclaimed port read at
 * width 1/2/4 not all ones.
 */
#include "runtime/runtime.h"

enum { SCRATCH_PORT = 0xe0, UNCLAIMED_PORT = 0x3100 };

static unsigned failures;
static uint32_t first_failure;

static void check(bool ok, uint32_t code, const char* what, uint32_t got, uint32_t want) {
    if (ok) return;
    printf("pio: %s: read %x, expected %x\n", what, got, want);
    if (!failures++) first_failure = code;
}

void guest_main(void) {
    static const uint8_t bytes[] = {0x5a, 0xa5, 0x00, 0xff};
    for (unsigned i = 0; i < sizeof bytes; ++i) {
        outb(SCRATCH_PORT, bytes[i]);
        uint8_t got = inb(SCRATCH_PORT);
        check(got == bytes[i], 1, "scratch byte", got, bytes[i]);
    }
    static const uint16_t words[] = {0x1234, 0xbeef, 0x0000, 0xffff};
    for (unsigned i = 0; i < sizeof words / sizeof words[0]; ++i) {
        outw(SCRATCH_PORT, words[i]);
        uint16_t got = inw(SCRATCH_PORT);
        check(got == words[i], 2, "scratch word", got, words[i]);
    }
    static const uint32_t longs[] = {0x12345678, 0xdeadbeef, 0x00000000, 0xffffffff};
    for (unsigned i = 0; i < sizeof longs / sizeof longs[0]; ++i) {
        outl(SCRATCH_PORT, longs[i]);
        uint32_t got = inl(SCRATCH_PORT);
        check(got == longs[i], 3, "scratch dword", got, longs[i]);
    }
    uint8_t b = inb(UNCLAIMED_PORT);
    check(b == 0xff, 4, "unclaimed byte", b, 0xff);
    uint16_t w = inw(UNCLAIMED_PORT);
    check(w == 0xffff, 5, "unclaimed word", w, 0xffff);
    uint32_t l = inl(UNCLAIMED_PORT);
    check(l == 0xffffffff, 6, "unclaimed dword", l, 0xffffffff);

    if (failures) guest_exit(first_failure);
    print("pio: all round-trips passed\n");
    guest_exit(0);
}
