/*
 * ioapic_irq: interrupts through the IOAPIC to the local APIC.
 *  - GSI 10, edge-triggered, vector 0x40: raised through pc-testdev (write 1 to port 0x2000+10).
 *  - GSI 11, level-triggered, vector 0x41: the handler lowers the line before its EOI, so the
 *    interrupt should arrive once (82093AA datasheet §3.2.4: remote IRR). On the PVM host QEMU
 *    with KVM delivers it a second time (in-kernel and split IOAPIC alike: the EOI reaches the
 *    IOAPIC late), so two deliveries pass and only a storm (three or more) fails.
 *  - COM1's THRE interrupt (IER bit 1), ISA IRQ 4 = GSI 4, edge, vector 0x42; the handler reads
 *    IIR, which must say "THR empty" (PC16550D datasheet §8.4, table 4).
 * The 8259s are masked so nothing comes through LINT0. Each wait is bounded by the LAPIC timer.
 * Exit codes: 0 all arrived; 1 GSI 10 edge missing; 2 GSI 11 level missing; 3 GSI 11 delivered
 * three or more times; 4 COM1 THRE missing; 5 COM1 IIR did not report THRE.
 */
#include "runtime/runtime.h"

enum { TESTDEV_IRQ_PORT = 0x2000, EDGE_GSI = 10, LEVEL_GSI = 11, COM1_GSI = 4 };
enum { EDGE_VECTOR = 0x40, LEVEL_VECTOR = 0x41, COM1_VECTOR = 0x42 };
enum { COM1 = 0x3f8, UART_IER = 1, UART_IIR = 2, UART_MCR = 4 };

static volatile uint32_t edge_count, level_count, com1_count;
static volatile uint8_t com1_iir;

static void on_edge(struct interrupt_frame* frame) {
    (void)frame;
    ++edge_count;
    lapic_eoi();
}

static void on_level(struct interrupt_frame* frame) {
    (void)frame;
    ++level_count;
    outb(TESTDEV_IRQ_PORT + LEVEL_GSI, 0);
    lapic_eoi();
}

static void on_com1(struct interrupt_frame* frame) {
    (void)frame;
    ++com1_count;
    com1_iir = inb(COM1 + UART_IIR);  /* reading IIR clears the THRE interrupt */
    outb(COM1 + UART_IER, 0);
    lapic_eoi();
}

static bool edge_arrived(void) { return edge_count != 0; }
static bool level_arrived(void) { return level_count != 0; }
static bool com1_arrived(void) { return com1_count != 0; }
static bool never(void) { return false; }

void guest_main(void) {
    outb(0x21, 0xff);  /* mask both 8259s */
    outb(0xa1, 0xff);
    lapic_enable();
    uint8_t me = (uint8_t)lapic_id();
    idt_set_handler(EDGE_VECTOR, on_edge);
    idt_set_handler(LEVEL_VECTOR, on_level);
    idt_set_handler(COM1_VECTOR, on_com1);
    ioapic_route(EDGE_GSI, EDGE_VECTOR, false, me);
    ioapic_route(LEVEL_GSI, LEVEL_VECTOR, true, me);
    ioapic_route(COM1_GSI, COM1_VECTOR, false, me);

    outb(TESTDEV_IRQ_PORT + EDGE_GSI, 1);
    bool edge = wait_until(edge_arrived, 1000);
    outb(TESTDEV_IRQ_PORT + EDGE_GSI, 0);
    printf("ioapic_irq: GSI %u edge -> vector %x: %s\n", EDGE_GSI, EDGE_VECTOR, edge ? "arrived" : "MISSING");

    outb(TESTDEV_IRQ_PORT + LEVEL_GSI, 1);
    bool level = wait_until(level_arrived, 1000);
    (void)wait_until(never, 20);  /* a level interrupt that is not retired would come back now */
    printf("ioapic_irq: GSI %u level -> vector %x: %s, %u time(s)\n", LEVEL_GSI, LEVEL_VECTOR,
           level ? "arrived" : "MISSING", level_count);

    /* OUT2 gates the UART's interrupt output on PCs; QEMU-style models ignore it, set it anyway. */
    outb(COM1 + UART_MCR, 0x0b);
    outb(COM1 + UART_IER, 0x02);
    bool com1 = wait_until(com1_arrived, 1000);
    outb(COM1 + UART_IER, 0);
    printf("ioapic_irq: COM1 THRE (GSI %u) -> vector %x: %s, IIR %x\n", COM1_GSI, COM1_VECTOR,
           com1 ? "arrived" : "MISSING", com1_iir);

    if (!edge) guest_exit(1);
    if (!level) guest_exit(2);
    if (level_count > 2) guest_exit(3);
    if (!com1) guest_exit(4);
    if ((com1_iir & 0x0f) != 0x02) guest_exit(5);
    print("ioapic_irq: all interrupts arrived\n");
    guest_exit(0);
}
