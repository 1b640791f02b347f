/*
 * The smp guest's AP start-up code. The BSP copies ap_trampoline_start..ap_trampoline_end to
 * AP_TRAMPOLINE (0x6000) and sends SIPI with vector 0x06, so each AP starts in real mode at
 * CS:IP = 0x0600:0000 (Intel SDM vol. 3 §8.4.4.1; MultiProcessor Spec 1.4 appendix B.4).
 * The AP counts itself in ap_real_mode_count (so the BSP can tell "never started" from "stuck on
 * the way"), loads the shared GDT, enters protected mode and then long mode on the BSP's page
 * tables, takes a stack of its own and calls ap_main(index).
 */
#include "runtime/layout.h"

/* Where a trampoline label ends up once copied. */
#define TR(label) (AP_TRAMPOLINE + (label) - ap_trampoline_start)

        .section .rodata.ap_trampoline, "a"
        .globl ap_trampoline_start, ap_trampoline_end, ap_real_mode_count_offset
        .code16
ap_trampoline_start:
        cli
        cld
        xorw %ax, %ax
        movw %ax, %ds
        lock incl TR(ap_real_mode_count)
        lgdtl TR(trampoline_gdt_pointer)
        movl %cr0, %eax
        orl $1, %eax                    /* CR0.PE */
        movl %eax, %cr0
        ljmpl $GDT_KERNEL_CODE32, $TR(trampoline_32)

        .code32
trampoline_32:
        movw $GDT_KERNEL_DATA, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        ENTER_LONG_MODE
        ljmp $GDT_KERNEL_CODE64, $ap_start64

        .balign 8
trampoline_gdt_pointer:
        .word GDT_SIZE - 1
        .long gdt
        .balign 4
ap_real_mode_count:
        .long 0
ap_trampoline_end:

        .balign 4
ap_real_mode_count_offset:
        .long ap_real_mode_count - ap_trampoline_start

        .text
        .code64
ap_start64:
        movw $GDT_KERNEL_DATA, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movl $1, %eax
        lock xaddl %eax, ap_next_index(%rip)
        cmpl $MAX_CPUS, %eax            /* more APs than stacks: park this one */
        jae 2f
        movl %eax, %edi                 /* ap_main(index) */
        leal 1(%eax), %eax
        imull $AP_STACK_SIZE, %eax
        leaq ap_stacks(%rip), %rsp
        addq %rax, %rsp
        call ap_main
2:      cli
        hlt
        jmp 2b

        .data
        .balign 4
ap_next_index:
        .long 0

        .bss
        .balign 16
        .globl ap_stacks
ap_stacks:
        .skip AP_STACK_SIZE * MAX_CPUS
