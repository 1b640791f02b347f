/*
 * The runtime's C half: see runtime.h. Kept small on purpose: on hosts that emulate CPL0 code
 * (PVM) every instruction here costs about a microsecond.
 */
#include <stdarg.h>

#include "runtime.h"

extern uint32_t multiboot_magic;
extern uint32_t multiboot_info;
extern uint64_t gdt[];
extern const uint64_t isr_stubs[256];

/* gcc may emit calls to these even in freestanding code (struct copies, loops it recognizes). */
void* memcpy(void* restrict to, const void* restrict from, size_t n) {
    uint8_t* d = to;
    const uint8_t* s = from;
    while (n--) *d++ = *s++;
    return to;
}

void* memset(void* to, int value, size_t n) {
    uint8_t* d = to;
    while (n--) *d++ = (uint8_t)value;
    return to;
}

/* --- COM1 (16550A, spec: TI PC16550D datasheet, §8 register descriptions) --- */
enum { COM1 = 0x3f8, UART_THR = 0, UART_IER = 1, UART_FCR = 2, UART_LCR = 3, UART_MCR = 4, UART_LSR = 5 };
enum { LSR_THRE = 0x20 };

static void serial_init(void) {
    outb(COM1 + UART_IER, 0x00);
    outb(COM1 + UART_LCR, 0x80);  /* DLAB: divisor latch follows */
    outb(COM1 + 0, 0x01);         /* 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + UART_LCR, 0x03);  /* 8N1 */
    outb(COM1 + UART_FCR, 0x07);  /* FIFOs on and cleared */
    outb(COM1 + UART_MCR, 0x03);  /* DTR, RTS */
}

void serial_putc(char c) {
    /* A UART that never reports THRE must not hang the guest: give up waiting after a while. */
    for (int spins = 0; spins < 100000 && !(inb(COM1 + UART_LSR) & LSR_THRE); ++spins) cpu_pause();
    outb(COM1 + UART_THR, (uint8_t)c);
}

void print(const char* text) {
    while (*text) serial_putc(*text++);
}

static void print_unsigned(uint64_t value, unsigned base) {
    char digits[24];
    int n = 0;
    do {
        unsigned d = (unsigned)(value % base);
        digits[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        value /= base;
    } while (value);
    while (n) serial_putc(digits[--n]);
}

void printf(const char* format, ...) {
    va_list args;
    va_start(args, format);
    for (const char* p = format; *p; ++p) {
        if (*p != '%') {
            serial_putc(*p);
            continue;
        }
        int longs = 0;
        while (*++p == 'l') ++longs;
        switch (*p) {
            case 's': print(va_arg(args, const char*)); break;
            case 'c': serial_putc((char)va_arg(args, int)); break;
            case 'd': {
                int64_t v = longs ? va_arg(args, int64_t) : va_arg(args, int);
                if (v < 0) {
                    serial_putc('-');
                    print_unsigned((uint64_t)0 - (uint64_t)v, 10);
                } else {
                    print_unsigned((uint64_t)v, 10);
                }
                break;
            }
            case 'u': print_unsigned(longs ? va_arg(args, uint64_t) : va_arg(args, unsigned), 10); break;
            case 'x': print_unsigned(longs ? va_arg(args, uint64_t) : va_arg(args, unsigned), 16); break;
            case '%': serial_putc('%'); break;
            case '\0': --p; break;
            default: serial_putc('?'); break;
        }
    }
    va_end(args);
}

void guest_exit(uint32_t code) {
    outl(0xf4, code);
    /* Without the isa-debug-exit device nothing happens: stop here. */
    for (;;) __asm__ volatile("cli; hlt");
}

/* --- Multiboot command line (Multiboot 0.6.96 §3.3: flags bit 2, cmdline at offset 16) --- */
static const char* command_line = "";

const char* cmdline(void) { return command_line; }

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n'; }

uint64_t cmdline_u64(const char* key, uint64_t fallback) {
    for (const char* p = command_line; *p;) {
        while (is_space(*p)) ++p;
        const char* k = key;
        const char* q = p;
        while (*k && *q == *k) ++q, ++k;
        if (!*k && *q == '=') {
            ++q;
            unsigned base = 10;
            if (q[0] == '0' && (q[1] == 'x' || q[1] == 'X')) base = 16, q += 2;
            uint64_t value = 0;
            bool any = false;
            for (;; ++q) {
                unsigned d;
                if (*q >= '0' && *q <= '9') d = (unsigned)(*q - '0');
                else if (base == 16 && *q >= 'a' && *q <= 'f') d = (unsigned)(*q - 'a' + 10);
                else if (base == 16 && *q >= 'A' && *q <= 'F') d = (unsigned)(*q - 'A' + 10);
                else break;
                value = value * base + d;
                any = true;
            }
            return any ? value : fallback;
        }
        while (*p && !is_space(*p)) ++p;
    }
    return fallback;
}

/* --- IDT (Intel SDM vol. 3 §6.14.1: 64-bit interrupt gate descriptors) --- */
struct idt_entry {
    uint16_t offset_low, selector;
    uint8_t ist, type_attributes;
    uint16_t offset_middle;
    uint32_t offset_high, reserved;
};
static struct idt_entry idt[256] __attribute__((aligned(16)));
static interrupt_handler handlers[256];

static void idt_set_gate(uint8_t vector) {
    uint64_t stub = isr_stubs[vector];
    idt[vector] = (struct idt_entry){
        .offset_low = (uint16_t)stub,
        .selector = GDT_KERNEL_CODE64,
        .type_attributes = 0x8e,  /* present, DPL 0, 64-bit interrupt gate */
        .offset_middle = (uint16_t)(stub >> 16),
        .offset_high = (uint32_t)(stub >> 32),
    };
}

void idt_load(void) {
    struct __attribute__((packed)) { uint16_t limit; uint64_t base; } pointer = {sizeof idt - 1, (uint64_t)idt};
    __asm__ volatile("lidt %0" ::"m"(pointer));
}

static void idt_init(void) {
    /* Only the exceptions now; other vectors get a gate when a handler is installed. */
    for (unsigned v = 0; v < 32; ++v) idt_set_gate((uint8_t)v);
    idt_set_gate(0xff);  /* LAPIC spurious vector */
    idt_load();
}

void idt_set_handler(uint8_t vector, interrupt_handler handler) {
    handlers[vector] = handler;
    idt_set_gate(vector);
}

void isr_dispatch(struct interrupt_frame* frame) {
    if (frame->vector < 256 && handlers[frame->vector]) {
        handlers[frame->vector](frame);
        return;
    }
    if (frame->vector == 0xff) return;  /* spurious: no EOI (Intel SDM vol. 3 §10.9) */
    printf("unexpected interrupt: vector %u error %lx rip %lx cs %lx rflags %lx\n", (unsigned)frame->vector,
           frame->error_code, frame->rip, frame->cs, frame->rflags);
    guest_exit(GUEST_EXIT_UNEXPECTED_INTERRUPT);
}

/* --- Local APIC and IOAPIC (Intel SDM vol. 3 ch. 10; 82093AA IOAPIC datasheet §3.1) --- */
void lapic_enable(void) {
    lapic_write(LAPIC_SVR, 0x100 | 0xff);
    lapic_write(LAPIC_TPR, 0);
}

uint32_t ioapic_read(uint8_t index) {
    mmio_write32(IOAPIC_BASE + 0x00, index);  /* IOREGSEL */
    return mmio_read32(IOAPIC_BASE + 0x10);   /* IOWIN */
}

void ioapic_write(uint8_t index, uint32_t value) {
    mmio_write32(IOAPIC_BASE + 0x00, index);
    mmio_write32(IOAPIC_BASE + 0x10, value);
}

void ioapic_route(unsigned gsi, uint8_t vector, bool level_triggered, uint8_t apic_id) {
    uint8_t index = (uint8_t)(0x10 + 2 * gsi);
    ioapic_write((uint8_t)(index + 1), (uint32_t)apic_id << 24);
    ioapic_write(index, vector | (level_triggered ? 1u << 15 : 0));
}

/* --- Timed waits on the LAPIC timer (periodic, 1 ms at the 1 GHz APIC bus KVM and QEMU model) --- */
#define TIMER_VECTOR 0xfe
static volatile uint32_t timer_ticks;

static void timer_tick(struct interrupt_frame* frame) {
    (void)frame;
    ++timer_ticks;
    lapic_eoi();
}

bool wait_until(bool (*done)(void), uint32_t timeout_ms) {
    idt_set_handler(TIMER_VECTOR, timer_tick);
    timer_ticks = 0;
    lapic_write(LAPIC_TIMER_DIVIDE, 0xb);  /* divide by 1 */
    lapic_write(LAPIC_LVT_TIMER, (1u << 17) | TIMER_VECTOR);  /* periodic */
    lapic_write(LAPIC_TIMER_INITIAL, 1000000);
    bool result;
    for (;;) {
        irq_disable();
        result = done();
        if (result || timer_ticks >= timeout_ms) break;
        /* sti's one-instruction interrupt shadow makes "sti; hlt" atomic: no wakeup is lost. */
        __asm__ volatile("sti; hlt" ::: "memory");
    }
    lapic_write(LAPIC_TIMER_INITIAL, 0);
    lapic_write(LAPIC_LVT_TIMER, 1u << 16);  /* masked */
    return result;
}

/* --- TSS (Intel SDM vol. 3 §7.7: 64-bit TSS; RSP0 at offset 4) --- */
static uint32_t tss[26] __attribute__((aligned(16)));

void tss_install(uint64_t kernel_stack_top) {
    tss[1] = (uint32_t)kernel_stack_top;
    tss[2] = (uint32_t)(kernel_stack_top >> 32);
    tss[25] = (uint32_t)sizeof tss << 16;  /* I/O map base beyond the limit: no bitmap */
    uint64_t base = (uint64_t)tss, limit = sizeof tss - 1;
    gdt[GDT_TSS / 8] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
                       ((limit >> 16 & 0xf) << 48) | ((base >> 24 & 0xff) << 56);
    gdt[GDT_TSS / 8 + 1] = base >> 32;
    __asm__ volatile("ltr %w0" ::"r"((uint16_t)GDT_TSS));
}

/* Called by entry.S in long mode on the boot stack. */
__attribute__((noreturn)) void runtime_start(void) {
    serial_init();
    idt_init();
    if (multiboot_magic != 0x2BADB002) {
        print("runtime: not entered by a multiboot loader\n");
        guest_exit(GUEST_EXIT_BAD_BOOT);
    }
    const uint32_t* info = (const uint32_t*)(uintptr_t)multiboot_info;
    if (info && (info[0] & (1u << 2)) && info[4]) command_line = (const char*)(uintptr_t)info[4];
    guest_main();
    guest_exit(GUEST_EXIT_RETURNED);
}
