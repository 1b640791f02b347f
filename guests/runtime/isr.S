/*
 * One stub per IDT vector: push a zero error code where the CPU does not push one (Intel SDM
 * vol. 3 §6.13, table 6-1: vectors 8, 10-14, 17, 21, 29 and 30 have one), push the vector, save
 * the general registers and call isr_dispatch(struct interrupt_frame*). isr_stubs[] lists the
 * stub addresses for idt_init().
 */
        .section .rodata.isr_stubs, "a"
        .balign 8
        .globl isr_stubs
isr_stubs:

        .text
        .code64
        .set vector, 0
        .rept 256
1:
        .if (vector == 8) || ((vector >= 10) && (vector <= 14)) || (vector == 17) || (vector == 21) || (vector == 29) || (vector == 30)
        .else
        pushq $0
        .endif
        pushq $vector
        jmp isr_common
        .pushsection .rodata.isr_stubs, "a"
        .quad 1b
        .popsection
        .set vector, vector + 1
        .endr

isr_common:
        pushq %rax
        pushq %rcx
        pushq %rdx
        pushq %rbx
        pushq %rbp
        pushq %rsi
        pushq %rdi
        pushq %r8
        pushq %r9
        pushq %r10
        pushq %r11
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        movq %rsp, %rdi
        /* The SysV ABI wants a 16-byte aligned stack at the call; the CPU aligned it to 16 before
         * pushing its frame in 64-bit mode, and we pushed 22 quadwords since. */
        call isr_dispatch
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %r11
        popq %r10
        popq %r9
        popq %r8
        popq %rdi
        popq %rsi
        popq %rbp
        popq %rbx
        popq %rdx
        popq %rcx
        popq %rax
        addq $16, %rsp                  /* vector and error code */
        iretq

