/* progress.h: a one-line progress display for long work (done/total, rate, ETA) on stderr, drawn only
 * when stderr is a terminal and at most ~10 times a second; silent otherwise (logs and CI stay clean). */
#ifndef RP_PROGRESS_H
#define RP_PROGRESS_H

typedef struct rp_progress rp_progress;

/* Start a display; total <= 0 means unknown. unit names what is counted ("tok", "B", "facts"). */
rp_progress *rp_progress_new(const char *label, double total, const char *unit);
/* Report the amount done so far (absolute, not an increment). */
void rp_progress_update(rp_progress *p, double done);
/* Finish the line (prints the final rate) and free; NULL is fine. */
void rp_progress_done(rp_progress *p);

#endif
