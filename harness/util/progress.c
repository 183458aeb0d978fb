/* progress.c: terminal progress line with rate and ETA. Time from CLOCK_MONOTONIC; byte counts are shown
 * with binary prefixes, other units as plain numbers. */
#include "util/progress.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct rp_progress {
    char label[64], unit[16];
    double total, done, t0, last_draw;
    int tty;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fmt_amount(char *out, size_t n, double v, const char *unit) {
    if (strcmp(unit, "B") == 0) {
        const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
        int i = 0;
        while (v >= 1024 && i < 4) { v /= 1024; i++; }
        snprintf(out, n, "%.1f %s", v, u[i]);
    } else {
        snprintf(out, n, "%.0f %s", v, unit);
    }
}

rp_progress *rp_progress_new(const char *label, double total, const char *unit) {
    rp_progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    snprintf(p->unit, sizeof p->unit, "%s", unit ? unit : "");
    p->total = total;
    p->t0 = now_s();
    p->tty = isatty(2) && !getenv("REPRO_NO_PROGRESS");
    return p;
}

static void draw(rp_progress *p, int final) {
    double el = now_s() - p->t0;
    double rate = el > 0 ? p->done / el : 0;
    char done[32], rs[32];
    fmt_amount(done, sizeof done, p->done, p->unit);
    fmt_amount(rs, sizeof rs, rate, p->unit);
    if (p->total > 0 && !final) {
        double eta = rate > 0 ? (p->total - p->done) / rate : 0;
        fprintf(stderr, "\r%s %5.1f%% %s, %s/s, ETA %.0fs   ", p->label, 100.0 * p->done / p->total, done, rs, eta);
    } else {
        fprintf(stderr, "\r%s %s, %s/s, %.1fs%s", p->label, done, rs, el, final ? "        \n" : "   ");
    }
    fflush(stderr);
}

void rp_progress_update(rp_progress *p, double done) {
    if (!p) return;
    p->done = done;
    if (!p->tty) return;
    double t = now_s();
    if (t - p->last_draw < 0.1) return;
    p->last_draw = t;
    draw(p, 0);
}

void rp_progress_done(rp_progress *p) {
    if (!p) return;
    if (p->tty) draw(p, 1);
    free(p);
}
