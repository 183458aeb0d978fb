/* bench_eval_rate.c: evaluation at prefill speed (issue 23). Scores ARC-Challenge (SmolLM2-135M-Instruct
 * Q4_1, zero-shot, the path `repro eval` takes: rp_eval_task through rp_model_as_lm, packed forwards) and
 * counts the distinct tokens it had to score: each question's context once, then each choice's
 * continuation, as an independent count taken by a wrapper around the model's logprobs calls (a
 * sequence whose context equals the previous sequence's adds only its continuation). Prints distinct
 * tokens per second as a fraction of the pp512 rate of the same model and backend measured in this run
 * (before and after the scoring, median), on the wall clock and per CPU-second; goal >= 80%.
 * Usage: bench_eval_rate [--limit N]   (default 300 items, the seeded subset `repro eval --limit 300`
 * takes, and the full-set time is projected from it; --limit 0 scores all 1172 items, measures the full
 * time, and compares acc / acc_norm with lm-evaluation-harness 0.4.13 on the same file, from
 * shared/reference/smollm2/lm_eval.md: 24.40 / 26.54). Skips without the model and data in REPRO_MIRROR. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/blas_core.h"
#include "bench_calib.h"
#include "bench_model.h"
#include "eval/lm_model.h"
#include "eval/score.h"

#define FULL_ITEMS 1172              /* ARC-Challenge test set */
#define LMEVAL_ACC 24.40             /* lm_eval.md, arc_challenge (test), same Q4_1 file */
#define LMEVAL_ACC_NORM 26.54

/* The model's rp_lm with a tally of the distinct tokens its logprobs calls carried. */
typedef struct counting_lm { rp_lm inner; double tokens; } counting_lm;

static rp_status counting_logprobs(void *ctx, int nseq, const int *const *seqs, const size_t *lens, const size_t *from,
                                   float *const *out, unsigned char *const *greedy) {
    counting_lm *c = ctx;
    for (int s = 0; s < nseq; s++) {
        int shared = s > 0 && from[s] == from[s - 1] && lens[s - 1] > from[s] &&
                     !memcmp(seqs[s], seqs[s - 1], (from[s] + 1) * sizeof **seqs);   /* same context: tokens 0..from */
        c->tokens += shared ? (double)(lens[s] - from[s] - 1) : (double)lens[s];
    }
    return c->inner.logprobs(c->inner.ctx, nseq, seqs, lens, from, out, greedy);
}

static rp_status counting_tokenize(void *ctx, const char *text, size_t len, int **ids, size_t *n) {
    counting_lm *c = ctx;
    return c->inner.tokenize(c->inner.ctx, text, len, ids, n);
}

int main(int argc, char **argv) {
    rp_blas_core_ensure(argv);   /* OpenBLAS on its AVX2 kernels where it would not pick them (cli/blas_core.h) */
    size_t limit = 300;
    if (argc == 3 && !strcmp(argv[1], "--limit")) limit = (size_t)strtoul(argv[2], NULL, 10);
    else if (argc != 1) { fprintf(stderr, "usage: bench_eval_rate [--limit N]\n"); return 2; }
    const char *mirror = getenv("REPRO_MIRROR");
    char path[4096];
    snprintf(path, sizeof path, "%s/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf", mirror ? mirror : "");
    rp_model *m = NULL;
    rp_task *task = NULL;
    rp_task_opts to = { .mirror = mirror };
    if (!mirror || rp_model_load(path, NULL, &m) != RP_OK || rp_task_load("arc_challenge", &to, &task) != RP_OK) {
        printf("skip: bench_eval_rate needs SmolLM2-135M-Instruct Q4_1 and ARC-Challenge in REPRO_MIRROR (%s)\n", rp_errmsg());
        rp_model_free(m);
        return 0;
    }
    double l1 = 0;
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) { if (fscanf(la, "%lf", &l1) != 1) l1 = 0; fclose(la); }
    rp_session *s;
    if (rp_session_new(m, 1024, 512, 1, &s) != RP_OK) { fprintf(stderr, "%s\n", rp_errmsg()); return 1; }
    double pw[2], pc[2];
    bench_pp(m, s, 64, 1, NULL);   /* warm up */
    pw[0] = bench_pp(m, s, 512, 3, &pc[0]);

    counting_lm c = { rp_model_as_lm(m), 0 };
    rp_lm lm = c.inner;
    lm.ctx = &c;
    lm.logprobs = counting_logprobs;
    lm.tokenize = counting_tokenize;
    rp_eval_opts o = { .limit = limit, .seed = 1234 };
    rp_eval_result r;
    double t0 = now_s(), c0 = cpu_s();
    if (rp_eval_task(&lm, task, &o, &r) != RP_OK) { fprintf(stderr, "bench_eval_rate: %s\n", rp_errmsg()); return 1; }
    double wall = now_s() - t0, cpu = cpu_s() - c0;

    pw[1] = bench_pp(m, s, 512, 3, &pc[1]);
    double ppw = 0.5 * (pw[0] + pw[1]), ppc = 0.5 * (pc[0] + pc[1]);
    double rate = c.tokens / wall, ratec = c.tokens / cpu;
    const rp_metric *acc = rp_eval_metric(&r, "acc"), *accn = rp_eval_metric(&r, "acc_norm");
    printf("load average %.1f on %d CPUs (a shared machine moves wall-clock rates; the CPU-second ratio is steadier)\n", l1, rp_cpus_online());
    printf("pp512 (same model and backend, before / after scoring): %.1f / %.1f tok/s wall, %.1f / %.1f per CPU-second\n", pw[0], pw[1], pc[0], pc[1]);
    printf("ARC-Challenge, %zu items, 0-shot: %.0f distinct tokens in %.1f s (%.1f CPU-s): %.1f tok/s wall, %.1f per CPU-second\n",
           (size_t)r.n, c.tokens, wall, cpu, rate, ratec);
    printf("scoring rate / pp512 rate: %.0f%% wall, %.0f%% per CPU-second   (goal >= 80%%)\n", 100 * rate / ppw, 100 * ratec / ppc);
    if (r.n < FULL_ITEMS)
        printf("full set (%d items) projected from these %zu: %.0f s\n", FULL_ITEMS, (size_t)r.n, wall / (double)r.n * FULL_ITEMS);
    else
        printf("full set (%zu items) measured: %.1f s   [lm-eval on machine C: 308 s; goal <= 100 s there]\n", (size_t)r.n, wall);
    if (acc && accn) {
        printf("acc %.2f ± %.2f, acc_norm %.2f ± %.2f", 100 * acc->value, 100 * acc->stderr_, 100 * accn->value, 100 * accn->stderr_);
        if (r.n == FULL_ITEMS) {
            int same = fabs(100 * acc->value - LMEVAL_ACC) < 0.005 && fabs(100 * accn->value - LMEVAL_ACC_NORM) < 0.005;
            printf("   lm-eval 0.4.13 on the same file: %.2f / %.2f: %s", LMEVAL_ACC, LMEVAL_ACC_NORM, same ? "identical" : "DIFFERENT");
        } else printf("   (a seeded subset: lm-eval's full-set figures are not comparable)");
        printf("\n");
    }
    rp_session_free(s);
    rp_task_free(task);
    rp_model_free(m);
    return 0;
}
