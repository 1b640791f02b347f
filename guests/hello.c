/*
 * hello: prints one line on COM1 and exits through isa-debug-exit with "exit=N" from the command
 * line, default 0 (status (N << 1) | 1, so 1 by default).
 */
#include "runtime/runtime.h"

void guest_main(void) {
    print("hello from the strata test guest\n");
    guest_exit((uint32_t)cmdline_u64("exit", 0));
}
