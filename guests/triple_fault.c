/*
 * triple_fault: loads an empty IDT and executes ud2. #UD cannot be delivered (vector beyond the
 * IDT limit gives #GP), neither can the #GP, so the double fault escalates to a triple fault
 * (Intel SDM vol. 3 §6.15, interrupt 8) and the VMM sees a shutdown. Never exits by itself.
 */
#include "runtime/runtime.h"

void guest_main(void) {
    print("triple_fault: loading an empty IDT and raising #UD\n");
    struct __attribute__((packed)) { uint16_t limit; uint64_t base; } empty = {0, 0};
    __asm__ volatile("lidt %0; ud2" ::"m"(empty));
    guest_exit(1);  /* not reached on a correct CPU */
}
