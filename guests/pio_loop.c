/*
 * pio_loop: the exit benchmark's guest. Runs "count=N" (default 1,000,000) guest accesses that
 * each cost one VM exit, then writes 0 to isa-debug-exit (status 1). "mode=" picks the access:
 *   mode=pio  (default) `out dx, al` to the unclaimed port 0x3000 at CPL3 with IOPL=3 (so `out`
 *             needs no I/O bitmap; Intel SDM vol. 1 §19.5.1). Under PVM, CPL3 code runs natively,
 *             so each `out` is one exit and nothing else. If IOPL=3 is not honoured at CPL3 (the
 *             `out` raises #GP), the loop runs at CPL0 instead and says so on COM1.
 *   mode=mmio `movb` to the unclaimed MMIO address 0xfe000000 at CPL3.
 *   mode=kpio the port loop at CPL0.
 * Prints nothing else: bench/bare_kvm_loop runs it too.
 */
#include "runtime/runtime.h"

enum { LOOP_PORT = 0x3000 };
#define LOOP_MMIO 0xfe000000ull

static uint8_t kernel_stack[4096] __attribute__((aligned(16)));
static uint8_t user_stack[4096] __attribute__((aligned(16)));
static uint64_t loop_count;
static bool mmio_mode;
static volatile bool loop_done;

/* One exit per iteration: a tight register-only loop. */
static void port_loop(uint64_t n) {
    __asm__ volatile(
        "test %0, %0\n\t"
        "jz 2f\n\t"
        "1: outb %%al, %%dx\n\t"
        "dec %0\n\t"
        "jnz 1b\n\t"
        "2:"
        : "+r"(n)
        : "a"(0), "d"(LOOP_PORT)
        : "memory");
}

static void mmio_loop(uint64_t n) {
    __asm__ volatile(
        "test %0, %0\n\t"
        "jz 2f\n\t"
        "1: movb %%al, (%%rdx)\n\t"
        "dec %0\n\t"
        "jnz 1b\n\t"
        "2:"
        : "+r"(n)
        : "a"(0), "d"(LOOP_MMIO)
        : "memory");
}

__attribute__((noreturn)) static void user_main(void) {
    if (mmio_mode) mmio_loop(loop_count);
    else port_loop(loop_count);
    loop_done = true;
    outl(0xf4, 0);
    for (;;) cpu_pause();
}

/* #GP from CPL3 on an `out`: the host does not let CPL3 use IOPL. If it was the loop's first
 * `out`, nothing was counted yet, so run the whole loop here at CPL0; if it was the final write
 * to isa-debug-exit (mmio mode, or count=0), just make that write. */
static void on_general_protection(struct interrupt_frame* frame) {
    if ((frame->cs & 3) != 3) {
        printf("pio_loop: #GP at CPL0, rip %lx error %lx\n", frame->rip, frame->error_code);
        guest_exit(GUEST_EXIT_UNEXPECTED_INTERRUPT);
    }
    if (loop_done) guest_exit(0);
    print("pio_loop: IOPL 3 is not honoured at CPL3 (out raised #GP); looping at CPL0\n");
    port_loop(loop_count);
    guest_exit(0);
}

void guest_main(void) {
    loop_count = cmdline_u64("count", 1000000);
    const char* mode = cmdline();
    bool kernel_mode = false;
    for (const char* p = mode; *p; ++p) {
        if (p[0] == 'm' && p[1] == 'o' && p[2] == 'd' && p[3] == 'e' && p[4] == '=') {
            mmio_mode = p[5] == 'm';
            kernel_mode = p[5] == 'k';
        }
    }
    if (kernel_mode) {
        port_loop(loop_count);
        guest_exit(0);
    }
    idt_set_handler(13, on_general_protection);
    tss_install((uint64_t)(kernel_stack + sizeof kernel_stack));
    uint64_t user_rsp = (uint64_t)(user_stack + sizeof user_stack) - 8;  /* as after a call */
    /* iretq pops RIP, CS, RFLAGS, RSP, SS; RFLAGS = IOPL 3 | reserved bit 1, interrupts off. */
    __asm__ volatile(
        "pushq %0\n\t"
        "pushq %1\n\t"
        "pushq %2\n\t"
        "pushq %3\n\t"
        "pushq %4\n\t"
        "iretq"
        :
        : "i"(GDT_USER_DATA | 3), "r"(user_rsp), "i"(0x3002), "i"(GDT_USER_CODE64 | 3), "r"((uint64_t)user_main)
        : "memory");
    __builtin_unreachable();
}
