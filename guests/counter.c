/*
 * counter: counts on COM1, one "counter: N" line every "interval=T" TSC ticks (default 20,000,000:
 * 20 ms under the soft engine, whose TSC counts guest nanoseconds), up to "count=N" lines (0, the
 * default: forever), then exits through isa-debug-exit with 0. The control API's tests pause it
 * (the lines stop), resume it (they go on from the next number) and stop or kill it. Waiting is
 * measured from the previous line, so time that passes while the VM is paused does not make it
 * print a burst of lines. With "tsc=1" each line ends in " tsc=T", the TSC when it was printed:
 * the tests check that a pause does not show up in it (guest time does not jump on resume).
 */
#include "runtime/runtime.h"

void guest_main(void) {
    uint64_t interval = cmdline_u64("interval", 20000000);
    uint64_t count = cmdline_u64("count", 0);
    bool show_tsc = cmdline_u64("tsc", 0) != 0;
    for (uint64_t n = 1; count == 0 || n <= count; ++n) {
        uint64_t start = rdtsc();
        while (rdtsc() - start < interval) cpu_pause();
        if (show_tsc) printf("counter: %lu tsc=%lu\n", n, rdtsc());
        else printf("counter: %lu\n", n);
    }
    guest_exit(0);
}
