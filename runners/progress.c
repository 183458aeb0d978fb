/* progress.c: the sweep's progress line: points done / total, running, failed, rate and ETA. On a
 * terminal it is redrawn in place; otherwise a line is printed when a point ends, so logs
 * stay short. Skipped (already finished) points count as done and are excluded from the rate. */
#include "runners/runner.h"
#include <stdio.h>
#include <time.h>
#include <unistd.h>

double rp_sweep_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void rp_sweep_progress_start(rp_sweep_progress *p, const rp_plan *plan) {
    *p = (rp_sweep_progress){ .total = plan->total, .skipped = plan->total - plan->n, .t0 = rp_sweep_now(),
                              .tty = isatty(2), .shown_done = (size_t)-1, .shown_running = (size_t)-1 };
}

void rp_sweep_progress_show(rp_sweep_progress *p) {
    if (!p->tty && p->done == p->shown_done && (p->done || p->running == p->shown_running)) return;
    p->shown_done = p->done; p->shown_running = p->running;
    double el = rp_sweep_now() - p->t0;
    char eta[48] = "ETA --";
    size_t left = p->total - p->skipped - p->done;
    if (p->done > 0) {
        double s = el / (double)p->done * (double)left;
        snprintf(eta, sizeof eta, "ETA %dm%02ds", (int)(s / 60), (int)s % 60);
    }
    fprintf(stderr, "%ssweep: %zu/%zu done (%zu skipped), %zu running, %zu failed, %.2f points/s, %s%s",
            p->tty ? "\r\033[K" : "", p->done + p->skipped, p->total, p->skipped, p->running, p->failed,
            el > 0 ? (double)p->done / el : 0.0, eta, p->tty ? "" : "\n");
}

void rp_sweep_progress_end(rp_sweep_progress *p) {
    if (p->tty) fputc('\n', stderr);
}
