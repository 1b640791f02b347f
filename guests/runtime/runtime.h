/*
 * The guest test kernels' runtime: port and MMIO access, COM1 output, the isa-debug-exit port,
 * the IDT, the local APIC and IOAPIC, the multiboot command line, and timed waits.
 *
 * A test guest defines `void guest_main(void)` and ends with guest_exit(code): the VMM then exits
 * with status (code << 1) | 1. Codes 0x70-0x7f are the runtime's own (see GUEST_EXIT_*).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

/* Exit codes the runtime itself uses. */
#define GUEST_EXIT_UNEXPECTED_INTERRUPT 0x70  /* an exception or an interrupt with no handler */
#define GUEST_EXIT_RETURNED 0x71              /* guest_main returned */
#define GUEST_EXIT_BAD_BOOT 0x72              /* not entered through a multiboot loader */

void* memcpy(void* restrict to, const void* restrict from, size_t n);
void* memset(void* to, int value, size_t n);

/* --- Port I/O --- */
static inline void outb(uint16_t port, uint8_t value) { __asm__ volatile("outb %0, %1" ::"a"(value), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t value) { __asm__ volatile("outw %0, %1" ::"a"(value), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t value) { __asm__ volatile("outl %0, %1" ::"a"(value), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) {
    uint8_t value;
    __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}
static inline uint16_t inw(uint16_t port) {
    uint16_t value;
    __asm__ volatile("inw %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}
static inline uint32_t inl(uint16_t port) {
    uint32_t value;
    __asm__ volatile("inl %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

/* --- MMIO: one instruction of exactly the given width, so the VMM sees that access size --- */
static inline void mmio_write8(uint64_t addr, uint8_t v) { __asm__ volatile("movb %0, (%1)" ::"q"(v), "r"(addr) : "memory"); }
static inline void mmio_write16(uint64_t addr, uint16_t v) { __asm__ volatile("movw %0, (%1)" ::"r"(v), "r"(addr) : "memory"); }
static inline void mmio_write32(uint64_t addr, uint32_t v) { __asm__ volatile("movl %0, (%1)" ::"r"(v), "r"(addr) : "memory"); }
static inline void mmio_write64(uint64_t addr, uint64_t v) { __asm__ volatile("movq %0, (%1)" ::"r"(v), "r"(addr) : "memory"); }
static inline uint8_t mmio_read8(uint64_t addr) {
    uint8_t v;
    __asm__ volatile("movb (%1), %0" : "=q"(v) : "r"(addr) : "memory");
    return v;
}
static inline uint16_t mmio_read16(uint64_t addr) {
    uint16_t v;
    __asm__ volatile("movw (%1), %0" : "=r"(v) : "r"(addr) : "memory");
    return v;
}
static inline uint32_t mmio_read32(uint64_t addr) {
    uint32_t v;
    __asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(addr) : "memory");
    return v;
}
static inline uint64_t mmio_read64(uint64_t addr) {
    uint64_t v;
    __asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(addr) : "memory");
    return v;
}

static inline void cpu_pause(void) { __asm__ volatile("pause"); }
static inline uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/* --- Console (COM1, polled) and exit --- */
void serial_putc(char c);
void print(const char* text);
/* %s %c %d %u %x with an optional l or ll; %% */
void printf(const char* format, ...) __attribute__((format(printf, 1, 2)));
/* Writes `code` to the isa-debug-exit port (4 bytes at 0xf4), then halts forever. */
__attribute__((noreturn)) void guest_exit(uint32_t code);

/* --- Multiboot command line --- */
const char* cmdline(void);
/* The value of "key=N" (decimal or 0x hex) in the command line, or `fallback`. */
uint64_t cmdline_u64(const char* key, uint64_t fallback);

/* --- Interrupts --- */
struct interrupt_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rdi, rsi, rbp, rbx, rdx, rcx, rax;
    uint64_t vector, error_code;
    uint64_t rip, cs, rflags, rsp, ss;
};
typedef void (*interrupt_handler)(struct interrupt_frame* frame);
/* Exceptions and unhandled vectors print the frame and exit with GUEST_EXIT_UNEXPECTED_INTERRUPT. */
void idt_set_handler(uint8_t vector, interrupt_handler handler);
/* Loads the shared IDT on this CPU (the boot CPU does it before guest_main). */
void idt_load(void);
static inline void irq_enable(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void irq_disable(void) { __asm__ volatile("cli" ::: "memory"); }

/* --- Local APIC (xAPIC at 0xfee00000) and IOAPIC (0xfec00000) --- */
#define LAPIC_BASE 0xfee00000ull
#define IOAPIC_BASE 0xfec00000ull
enum lapic_reg {
    LAPIC_ID = 0x20,
    LAPIC_VERSION = 0x30,
    LAPIC_TPR = 0x80,
    LAPIC_EOI = 0xb0,
    LAPIC_SVR = 0xf0,
    LAPIC_ICR_LOW = 0x300,
    LAPIC_ICR_HIGH = 0x310,
    LAPIC_LVT_TIMER = 0x320,
    LAPIC_TIMER_INITIAL = 0x380,
    LAPIC_TIMER_CURRENT = 0x390,
    LAPIC_TIMER_DIVIDE = 0x3e0,
};
static inline uint32_t lapic_read(enum lapic_reg reg) { return mmio_read32(LAPIC_BASE + reg); }
static inline void lapic_write(enum lapic_reg reg, uint32_t v) { mmio_write32(LAPIC_BASE + reg, v); }
static inline uint32_t lapic_id(void) { return lapic_read(LAPIC_ID) >> 24; }
static inline void lapic_eoi(void) { lapic_write(LAPIC_EOI, 0); }
/* Software-enables the local APIC (SVR bit 8, spurious vector 0xff) and accepts all priorities. */
void lapic_enable(void);
uint32_t ioapic_read(uint8_t index);
void ioapic_write(uint8_t index, uint32_t value);
/* Programs redirection entry `gsi`: fixed delivery, physical destination `apic_id`, active high. */
void ioapic_route(unsigned gsi, uint8_t vector, bool level_triggered, uint8_t apic_id);

/* Halts (with interrupts on, woken every millisecond by the LAPIC timer) until done() is true or
 * about timeout_ms have passed; returns done(). The LAPIC must be enabled. */
bool wait_until(bool (*done)(void), uint32_t timeout_ms);

/* Loads the TSS (RSP0 = `kernel_stack_top`) so that interrupts from CPL3 find a stack. */
void tss_install(uint64_t kernel_stack_top);

/* Entry points the runtime calls. */
void guest_main(void);
