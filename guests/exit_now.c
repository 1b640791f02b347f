/*
 * exit_now: exits through isa-debug-exit with 0 (status 1) at once, printing nothing. The startup
 * benchmark runs it to time a VMM from exec to exit.
 */
#include "runtime/runtime.h"

void guest_main(void) { guest_exit(0); }
