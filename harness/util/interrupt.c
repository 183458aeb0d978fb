/* interrupt.c: the stop flag behind interrupt.h (a sig_atomic_t, written only by rp_interrupt_request). */
#include "util/interrupt.h"
#include <signal.h>

static volatile sig_atomic_t requested;

void rp_interrupt_request(void) { requested = 1; }

int rp_interrupt_pending(void) { return requested != 0; }
