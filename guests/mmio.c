/*
 * mmio: MMIO round-trips through pc-testdev's 64 KiB scratch memory at 0xff000000 at widths 1, 2,
 * 4 and 8 (each access one instruction of that width), and the IOAPIC version register (index 1,
 * 82093AA datasheet §3.2.2: bits 23:16 = maximum redirection entry), which must show 24 pins.
 * Exit codes: 0 all passed; 1-4 scratch width 1/2/4/8 read back wrong; 5 neighbouring bytes
 * disturbed; 6 wrong IOAPIC pin count.
 */
#include "runtime/runtime.h"

#define SCRATCH 0xff000000ull

static unsigned failures;
static uint32_t first_failure;

static void check(bool ok, uint32_t code, const char* what, uint64_t got, uint64_t want) {
    if (ok) return;
    printf("mmio: %s: read %lx, expected %lx\n", what, got, want);
    if (!failures++) first_failure = code;
}

void guest_main(void) {
    mmio_write8(SCRATCH + 0x10, 0xa5);
    check(mmio_read8(SCRATCH + 0x10) == 0xa5, 1, "byte at 0x10", mmio_read8(SCRATCH + 0x10), 0xa5);
    mmio_write16(SCRATCH + 0x20, 0xbeef);
    check(mmio_read16(SCRATCH + 0x20) == 0xbeef, 2, "word at 0x20", mmio_read16(SCRATCH + 0x20), 0xbeef);
    mmio_write32(SCRATCH + 0x30, 0xdeadbeef);
    check(mmio_read32(SCRATCH + 0x30) == 0xdeadbeef, 3, "dword at 0x30", mmio_read32(SCRATCH + 0x30),
          0xdeadbeef);
    mmio_write64(SCRATCH + 0x40, 0x0123456789abcdefull);
    check(mmio_read64(SCRATCH + 0x40) == 0x0123456789abcdefull, 4, "qword at 0x40", mmio_read64(SCRATCH + 0x40),
          0x0123456789abcdefull);
    /* Narrow reads of the wide value: the scratch memory is little-endian bytes, not registers. */
    check(mmio_read8(SCRATCH + 0x40) == 0xef, 5, "byte 0 of the qword", mmio_read8(SCRATCH + 0x40), 0xef);
    check(mmio_read16(SCRATCH + 0x46) == 0x0123, 5, "word 3 of the qword", mmio_read16(SCRATCH + 0x46), 0x0123);
    /* The last qword of the 64 KiB window. */
    mmio_write64(SCRATCH + 0xfff8, 0xfeedfacecafef00dull);
    check(mmio_read64(SCRATCH + 0xfff8) == 0xfeedfacecafef00dull, 4, "qword at 0xfff8",
          mmio_read64(SCRATCH + 0xfff8), 0xfeedfacecafef00dull);

    uint32_t version = ioapic_read(1);
    unsigned pins = ((version >> 16) & 0xff) + 1;
    check(pins == 24, 6, "IOAPIC pins", pins, 24);

    if (failures) guest_exit(first_failure);
    printf("mmio: all round-trips passed, IOAPIC has %u pins\n", pins);
    guest_exit(0);
}
