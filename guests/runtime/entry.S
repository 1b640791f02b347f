/*
 * Guest runtime entry: multiboot v1 header, the 32-bit entry state the multiboot loader gives us
 * (protected mode, paging off, EAX = 0x2BADB002, EBX = multiboot info), and the switch to long
 * mode. Spec: Multiboot 0.6.96 §3.1 (header), §3.2 (machine state); Intel SDM vol. 3 §10.8.5
 * (initializing IA-32e mode).
 *
 * Everything the switch needs (GDT, identity page tables for 4 GiB) is built at assembly time, so
 * the CPL0 work before C runs is a few dozen instructions: hosts that emulate CPL0 code (PVM) pay
 * per instruction.
 */
#include "layout.h"

#define MULTIBOOT_MAGIC 0x1BADB002
#define MULTIBOOT_FLAGS 0x00000003  /* bit 0: page-align modules, bit 1: want memory info */

        .section .multiboot, "a"
        .balign 4
        .long MULTIBOOT_MAGIC
        .long MULTIBOOT_FLAGS
        .long -(MULTIBOOT_MAGIC + MULTIBOOT_FLAGS)

        .section .text.entry, "ax"
        .code32
        .globl _start
_start:
        cli
        movl %eax, multiboot_magic
        movl %ebx, multiboot_info
        movl $boot_stack_top, %esp
        lgdt gdt_pointer
        ENTER_LONG_MODE
        ljmp $GDT_KERNEL_CODE64, $start64

        .code64
start64:
        movw $GDT_KERNEL_DATA, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movw %ax, %fs
        movw %ax, %gs
        movabsq $boot_stack_top, %rsp
        xorl %ebp, %ebp
        call runtime_start              /* never returns */
1:      cli
        hlt
        jmp 1b

/* --- Data the entry needs --- */
        .section .data
        .balign 8
        .globl multiboot_magic, multiboot_info
multiboot_magic: .long 0
multiboot_info:  .long 0

        .balign 16
        .globl gdt, gdt_pointer
gdt:
        .quad 0                          /* 0x00 null */
        .quad 0x00af9a000000ffff         /* 0x08 kernel code, 64-bit */
        .quad 0x00cf92000000ffff         /* 0x10 kernel data */
        .quad 0x00cf9a000000ffff         /* 0x18 kernel code, 32-bit (AP trampoline) */
        .quad 0x00cff2000000ffff         /* 0x20 user data (DPL 3) */
        .quad 0x00affa000000ffff         /* 0x28 user code, 64-bit (DPL 3) */
        .quad 0, 0                       /* 0x30 TSS, filled by tss_install() */
gdt_end:
        .if gdt_end - gdt - GDT_SIZE
        .error "GDT_SIZE in layout.h does not match the GDT"
        .endif
/* lgdt reads 6 bytes in 32-bit mode and 10 in 64-bit mode; the base is below 4 GiB either way. */
gdt_pointer:
        .word GDT_SIZE - 1
        .quad gdt

/* Identity map of the low 4 GiB with 2 MiB pages, user-accessible (pio_loop runs at CPL3).
 * The top GiB holds the MMIO hole (IOAPIC, LAPIC, pc-testdev), mapped uncached (PCD|PWT). */
#define PTE_PRESENT_RW_USER 0x7
#define PTE_LARGE 0x80
#define PTE_UNCACHED 0x18
        .section .data.page_tables, "aw"
        .balign 4096
        .globl pml4
pml4:
        .quad pdpt + PTE_PRESENT_RW_USER
        .fill 511, 8, 0
pdpt:
        .quad page_directories + 0x0000 + PTE_PRESENT_RW_USER
        .quad page_directories + 0x1000 + PTE_PRESENT_RW_USER
        .quad page_directories + 0x2000 + PTE_PRESENT_RW_USER
        .quad page_directories + 0x3000 + PTE_PRESENT_RW_USER
        .fill 508, 8, 0
page_directories:
        .set page, 0
        .rept 1536
        .quad (page << 21) | PTE_LARGE | PTE_PRESENT_RW_USER
        .set page, page + 1
        .endr
        .rept 512
        .quad (page << 21) | PTE_LARGE | PTE_UNCACHED | PTE_PRESENT_RW_USER
        .set page, page + 1
        .endr

        .section .bss
        .balign 16
        .globl boot_stack_top
boot_stack:
        .skip BOOT_STACK_SIZE
boot_stack_top:
