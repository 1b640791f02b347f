/*
 * s3: ACPI S3 sleep and resume. Copies a real-mode resume stub to RESUME_STUB, points the FACS
 * firmware waking vector at it, enables the RTC wake event (PM1_EN.RTC_EN) and an RTC alarm
 * for every second, and writes SLP_TYP=S3|SLP_EN to PM1a_CNT. The machine must stop the CPUs, wake
 * at the alarm and restart the boot CPU in real mode at the vector, where the stub exits through
 * isa-debug-exit with RESUMED (status 85). Any way back into this code is a failure:
 *   1  the write to PM1a_CNT returned (the machine did not sleep)
 *   2  no FACS at the address Strata's ACPI tables put it
 */
#include "runtime/runtime.h"

#define FACS 0xe0040u                 /* Strata's ACPI tables: right after the RSDP */
#define FACS_WAKING_VECTOR (FACS + 12)
#define PM1A_EVT 0x600
#define PM1A_CNT 0x604
#define PM1_RTC_EN 0x400
#define SLP_TYP_S3 (1u << 10)
#define SLP_EN (1u << 13)
#define RESUME_STUB 0x7000
#define RESUMED 42

static uint8_t rtc_read(uint8_t reg) {
    outb(0x70, reg);
    return inb(0x71);
}

static void rtc_write(uint8_t reg, uint8_t value) {
    outb(0x70, reg);
    outb(0x71, value);
}

void guest_main(void) {
    /* 16-bit code: mov eax, RESUMED; mov dx, 0xf4; out dx, eax; hlt; jmp hlt */
    static const uint8_t stub[] = {0x66, 0xb8, RESUMED, 0, 0, 0, 0xba, 0xf4, 0x00, 0x66, 0xef, 0xf4, 0xeb, 0xfd};
    const volatile char* facs = (const volatile char*)(uintptr_t)FACS;
    if (facs[0] != 'F' || facs[1] != 'A' || facs[2] != 'C' || facs[3] != 'S') guest_exit(2);
    memcpy((void*)(uintptr_t)RESUME_STUB, stub, sizeof(stub));
    *(volatile uint32_t*)(uintptr_t)FACS_WAKING_VECTOR = RESUME_STUB;

    outw(PM1A_EVT + 2, PM1_RTC_EN);
    rtc_read(0x0c);                /* clear pending RTC flags */
    rtc_write(0x01, 0xc0);         /* alarm seconds: don't care */
    rtc_write(0x03, 0xc0);         /* alarm minutes: don't care */
    rtc_write(0x05, 0xc0);         /* alarm hours: don't care */
    rtc_write(0x0b, (uint8_t)(rtc_read(0x0b) | 0x20)); /* AIE */
    print("s3: sleeping\n");
    outw(PM1A_CNT, SLP_TYP_S3 | SLP_EN);
    for (int i = 0; i < 1000; ++i) cpu_pause();
    guest_exit(1);
}
