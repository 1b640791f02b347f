/*
 * smp: starts the application processors with INIT-SIPI-SIPI (MultiProcessor Spec 1.4 appendix
 * B.4; Intel SDM vol. 3 §8.4.4.1) and waits until each has reached long mode and checked in.
 * The expected CPU count is "cpus=N" from the command line, else QEMU fw_cfg key 0x05
 * (FW_CFG_NB_CPUS, u16 little-endian; selector port 0x510, data port 0x511).
 * Output: "smp: expecting N CPUs (from fw_cfg|from the command line; fw_cfg says M)", then
 * "smp: N of N CPUs up (APIC ids ...)". Exit codes: 0 all up; 1 fewer arrived and none is
 * stuck half-way; 2 more arrived than expected; 3 an AP ran the trampoline but never reached
 * ap_main; 4 two CPUs report the same APIC id; 5 no usable CPU count.
 */
#include "runtime/runtime.h"

extern const uint8_t ap_trampoline_start[], ap_trampoline_end[];
extern const uint32_t ap_real_mode_count_offset;

static volatile uint32_t cpus_up = 1;  /* the BSP */
static volatile uint32_t apic_ids[MAX_CPUS];
static uint32_t expected;

/* Called by each AP on its own stack (smp_trampoline.S). */
void ap_main(uint32_t index) {
    idt_load();
    apic_ids[index + 1] = lapic_id();
    __atomic_fetch_add(&cpus_up, 1, __ATOMIC_SEQ_CST);
    for (;;) __asm__ volatile("cli; hlt");
}

static uint32_t fw_cfg_cpu_count(void) {
    outw(0x510, 0x05);
    uint32_t low = inb(0x511);
    return low | (uint32_t)inb(0x511) << 8;
}

static bool all_up(void) { return __atomic_load_n(&cpus_up, __ATOMIC_SEQ_CST) >= expected; }
static bool never(void) { return false; }

static void send_ipi_to_all_but_self(uint32_t command) {
    lapic_write(LAPIC_ICR_HIGH, 0);
    lapic_write(LAPIC_ICR_LOW, (3u << 18) | command);  /* destination shorthand: all excluding self */
    for (int spins = 0; spins < 1000 && (lapic_read(LAPIC_ICR_LOW) & (1u << 12)); ++spins) cpu_pause();
}

void guest_main(void) {
    uint32_t from_fw_cfg = fw_cfg_cpu_count();
    expected = (uint32_t)cmdline_u64("cpus", from_fw_cfg);
    if (expected == 0 || expected > MAX_CPUS) {
        printf("smp: no usable CPU count (fw_cfg says %u)\n", from_fw_cfg);
        guest_exit(5);
    }
    bool from_cmdline = cmdline_u64("cpus", 0) != 0;
    printf("smp: expecting %u CPUs (from %s; fw_cfg says %u)\n", expected, from_cmdline ? "the command line" : "fw_cfg",
           from_fw_cfg);
    apic_ids[0] = lapic_id();
    outb(0x21, 0xff);  /* mask both 8259s: only the LAPIC timer should wake us */
    outb(0xa1, 0xff);
    lapic_enable();

    volatile uint32_t* real_mode_count = (volatile uint32_t*)(uintptr_t)(AP_TRAMPOLINE + ap_real_mode_count_offset);
    if (expected > 1) {
        memcpy((void*)(uintptr_t)AP_TRAMPOLINE, ap_trampoline_start, (size_t)(ap_trampoline_end - ap_trampoline_start));
        send_ipi_to_all_but_self(0x4500);  /* INIT, level assert */
        (void)wait_until(never, 10);
        for (int i = 0; i < 2; ++i) {
            send_ipi_to_all_but_self(0x4600 | (AP_TRAMPOLINE >> 12));  /* STARTUP, vector 0x06 */
            (void)wait_until(never, 1);
        }
        (void)wait_until(all_up, 5000);
    }
    /* Give any AP beyond the expected count a moment to show up too. */
    (void)wait_until(never, 20);

    uint32_t up = __atomic_load_n(&cpus_up, __ATOMIC_SEQ_CST);
    uint32_t started = expected > 1 ? *real_mode_count : 0;
    if (up < expected) {
        printf("smp: only %u of %u CPUs up (%u APs entered the trampoline)\n", up, expected, started);
        guest_exit(started + 1 > up ? 3 : 1);
    }
    if (up > expected) {
        printf("smp: %u CPUs up, expected %u\n", up, expected);
        guest_exit(2);
    }
    /* Sort the APIC ids so the line does not depend on arrival order. */
    uint32_t ids[MAX_CPUS];
    for (uint32_t i = 0; i < up; ++i) {
        uint32_t id = apic_ids[i], j = i;
        for (; j > 0 && ids[j - 1] > id; --j) ids[j] = ids[j - 1];
        ids[j] = id;
    }
    printf("smp: %u of %u CPUs up (APIC ids", up, expected);
    for (uint32_t i = 0; i < up; ++i) printf(" %u", ids[i]);
    print(")\n");
    for (uint32_t i = 1; i < up; ++i)
        if (ids[i] == ids[i - 1]) guest_exit(4);
    guest_exit(0);
}
