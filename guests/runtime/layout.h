/* Constants shared by the runtime's assembly and C. */
#pragma once

#define GDT_KERNEL_CODE64 0x08
#define GDT_KERNEL_DATA 0x10
#define GDT_KERNEL_CODE32 0x18
#define GDT_USER_DATA 0x20
#define GDT_USER_CODE64 0x28
#define GDT_TSS 0x30

#define GDT_SIZE 0x40

#define BOOT_STACK_SIZE 16384

/* Where the smp guest copies its real-mode AP trampoline (SIPI vector 0x06). Below the loader's
 * boot structures (multiboot info at 0x10000) and above the real-mode IVT/BDA. */
#define AP_TRAMPOLINE 0x6000
#define AP_STACK_SIZE 4096
#define MAX_CPUS 64

#ifdef __ASSEMBLER__
/* From 32-bit protected mode on a flat segment to IA-32e compatibility mode on the shared identity
 * page tables: PAE, CR3, EFER.LME, then paging (Intel SDM vol. 3 §10.8.5). Clobbers EAX, ECX, EDX.
 * A far jump to a 64-bit code segment must follow. */
.macro ENTER_LONG_MODE
        movl $pml4, %eax
        movl %eax, %cr3
        movl %cr4, %eax
        orl $0x20, %eax                 /* CR4.PAE */
        movl %eax, %cr4
        movl $0xC0000080, %ecx          /* IA32_EFER */
        rdmsr
        orl $0x100, %eax                /* EFER.LME */
        wrmsr
        movl %cr0, %eax
        orl $0x80000001, %eax           /* CR0.PG | CR0.PE */
        movl %eax, %cr0
.endm
#endif
