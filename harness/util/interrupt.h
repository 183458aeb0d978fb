/* interrupt.h: the process-wide "stop when you can" flag. Signal handlers set it (async-signal-safe);
 * long C loops (evaluation, perplexity, pipelines) poll it between units of work and return
 * RP_ERR_INTERRUPTED, so a killed run unwinds, keeps what it logged, and is recorded as killed. */
#ifndef RP_INTERRUPT_H
#define RP_INTERRUPT_H

/* Ask long-running work to stop (safe to call from a signal handler). */
void rp_interrupt_request(void);
/* Whether a stop was requested. */
int rp_interrupt_pending(void);

#endif
