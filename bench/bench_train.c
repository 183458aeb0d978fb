/* bench_train.c: training benchmarks, each against references measured in the same run.
 *  1. The machine: fp32 FMA peak on 1 and 2 threads (bench_calib.h).
 *  2. AdamW over 134.5M f32 parameters (SmolLM2-135M's count) on 1 and 2 threads, as a fraction of the memory
 *     stream with its traffic (28 bytes per parameter) measured interleaved with it, against the textbook
 *     loop llm.c runs (measured here) and llm.c's ~85 ms on 1 thread (../shared/reference/perf.md, machine A),
 *     and a trainer's whole update (threaded Σ g², then AdamW zeroing the gradient in its pass).
 *  3. Whole training steps (forward + backward + AdamW) at SmolLM2-135M's shapes on 2 threads: full
 *     fine-tuning from a random init at 4 × 128 and 1 × 512 tokens, with the matmuls through OpenBLAS and then
 *     through our rp_gemm_f32 (the trainer's default; their tokens/s ratio printed), and, when REPRO_MIRROR holds the SmolLM2
 *     Q4_1 GGUF, LoRA (rank 8 on q, v) and QLoRA (NF4) on that quantized base at 4 × 128. Printed: seconds per
 *     step (median of the timed steps after one warm-up step), tokens/s, model FLOPs (6N + 6·L·C·T per token,
 *     N = the full model's parameters, as perf.md counts llm.c) as a fraction of the calibrated 2-thread peak,
 *     the same FLOPs per CPU-second of the process as a fraction of the 1-thread peak per CPU-second (a figure
 *     that other processes' load on a shared host does not move, since waiting for a core costs no CPU time),
 *     LoRA tokens/s ÷ full tokens/s, and each trainer's peak resident memory (VmHWM, reset before each).
 *  4. The same full steps with the trainer's precision "bf16" (the linears' products on the CPU's bf16 unit, AMX
 *     or AVX512-BF16: inputs rounded to bf16, fp32 sums), beside the fp32 steps of this run: the same model FLOPs
 *     against the same calibrated fp32 peak, a fraction the bf16 units can push past what fp32 FMAs could reach
 *     (they are not the units the peak measures), and bf16 tokens/s ÷ fp32 tokens/s. `bench_train bf16 [128|512]`
 *     runs only sections 1, 3 (ours) and 4.
 * Targets (issue 15): full step >= 60% of peak at 4 × 128, >= 50% at 1 × 512; LoRA >= 1.4x full tokens/s;
 * AdamW no slower than llm.c; peak memory full < 3 GiB, QLoRA < 1 GiB. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/blas_core.h"
#include "bench_calib.h"
#include "model/model_file.h"
#include "nn/adamw.h"
#include "nn/train_llama.h"
#include "tensor/gemm_bf16.h"
#include "tensor/gemm_f32.h"

#define STEPS 3   /* timed steps per configuration (after one warm-up step) */

static rp_train_precision precision = RP_TRAIN_FP32;   /* of the trainers bench_step builds (section 4 sets bf16) */

/* Peak resident set (kB) since the last reset, read from the process. */
static long vm_hwm_kb(void) {
    FILE *fp = fopen("/proc/self/status", "r");
    if (!fp) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, fp))
        if (!strncmp(line, "VmHWM:", 6)) kb = strtol(line + 6, NULL, 10);
    fclose(fp);
    return kb;
}

/* Reset the peak resident set to the current one (Linux >= 4.0); 0 when that is not possible. */
static int vm_hwm_reset(void) {
    FILE *fp = fopen("/proc/self/clear_refs", "w");
    if (!fp) return 0;
    int ok = fputs("5", fp) >= 0;
    return fclose(fp) == 0 && ok;
}

/* The traffic of an AdamW step without its arithmetic (read p, g, m, v; write p, m, v; one FMA each): the
 * memory stream's speed on this machine, the floor an update of 28 bytes per parameter can reach. */
typedef struct twin_job { float *p, *m, *v; const float *g; int64_t n; } twin_job;
static void twin_task(void *ctx, int ith, int nth, int thread) {
    twin_job *j = ctx;
    (void)thread;
    int64_t per = (j->n / nth + 15) / 16 * 16, a = per * ith, z = ith == nth - 1 ? j->n : a + per;
    const int64_t L = RP_FMA_LANES;
    for (int64_t i = a; i + L <= z; i += L) {
        bench_vf g = *(const bench_vf *)(j->g + i), m = *(bench_vf *)(j->m + i) * 0.5f + g, v = *(bench_vf *)(j->v + i) * 0.5f + g;
        *(bench_vf *)(j->m + i) = m;
        *(bench_vf *)(j->v + i) = v;
        *(bench_vf *)(j->p + i) = *(bench_vf *)(j->p + i) * 0.5f + (m + v);
    }
}

/* llm.c's update as plain C, one thread: the textbook AdamW loop (bias-corrected moments, decoupled decay). */
static void __attribute__((noinline)) textbook_adamw(float *p, const float *g, float *m, float *v, int64_t n, int t, float lr,
                                                      float b1, float b2, float eps, float wd) {
    for (int64_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        float mh = m[i] / (1.0f - powf(b1, (float)t)), vh = v[i] / (1.0f - powf(b2, (float)t));
        p[i] -= lr * (mh / (sqrtf(vh) + eps) + wd * p[i]);
    }
}

#define ROUNDS 5
static void bench_adamw(void) {
    const int64_t n = 134515008;   /* SmolLM2-135M parameters */
    float *p = malloc((size_t)n * 4), *g = malloc((size_t)n * 4), *m = calloc((size_t)n, 4), *v = calloc((size_t)n, 4);
    if (!p || !g || !m || !v) { fprintf(stderr, "bench_train: out of memory for %lld parameters\n", (long long)n); exit(1); }
    for (int64_t i = 0; i < n; i++) { p[i] = (float)(i % 1000) * 1e-3f; g[i] = (float)((i * 7) % 1000) * 1e-3f - 0.5f; }
    rp_adamw o = { 0.9f, 0.95f, 1e-8f, 0.1f };
    double gb = 28.0 * (double)n / 1e9, tt[ROUNDS];
    /* CPU time, not wall time: on a shared host a memory-bound loop mostly waits for a core, which costs no CPU time */
    for (int r = 0; r <= ROUNDS; r++) {   /* the textbook loop: what llm.c's update does, measured here */
        double t0 = cpu_s();
        textbook_adamw(p, g, m, v, n, r + 1, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f);
        if (r) tt[r - 1] = cpu_s() - t0;
    }
    double text_s = median(tt, ROUNDS);
    printf("AdamW as a plain C loop (llm.c's update), 1 thread: %.1f CPU-ms; llm.c's own figure: about 85 ms on machine A (perf.md), "
           "where 28 B/param at its 1-thread STREAM triad (28.6 GB/s) would take %.0f ms\n", text_s * 1e3, gb / 28.6 * 1e3);
    for (int nth = 1; nth <= 2; nth++) {
        rp_pool *pool = NULL;
        if (rp_pool_new(nth, &pool) != RP_OK) exit(1);
        double tw[ROUNDS], ta[ROUNDS], tz[ROUNDS];
        twin_job tj = { p, m, v, g, n };
        for (int r = 0; r <= ROUNDS; r++) {   /* interleaved, so that both see the same load */
            double t0 = cpu_s();
            rp_pool_run(pool, twin_task, &tj, nth);
            double t1 = cpu_s();
            if (rp_adamw_update(&o, pool, p, g, m, v, n, r + 1, 1e-4f, 1.0f, 1) != RP_OK) exit(1);
            double t2 = cpu_s();
            double ss = rp_grad_sumsq_pool(pool, g, n);   /* a training step's update: norm, then AdamW zeroing g */
            if (rp_adamw_update_zero(&o, pool, p, g, m, v, n, r + 1, 1e-4f, (float)(1.0 / (sqrt(ss) + 1.0)), 1) != RP_OK) exit(1);
            double t3 = cpu_s();
            for (int64_t i = 0; i < n; i++) g[i] = (float)((i * 7) % 1000) * 1e-3f - 0.5f;
            if (r) { tw[r - 1] = t1 - t0; ta[r - 1] = t2 - t1; tz[r - 1] = t3 - t2; }
        }
        double w = median(tw, ROUNDS), a = median(ta, ROUNDS), z = median(tz, ROUNDS);
        printf("AdamW over %lld params, %d thread%s: %.1f CPU-ms (median of %d; %.1f GB/s per CPU-second) = %.0f%% of the speed of "
               "the same traffic without arithmetic (%.1f CPU-ms); vs the plain loop %.2fx, vs llm.c's 85 ms %.2fx; a trainer's whole "
               "update (norm + AdamW zeroing the gradient) %.1f CPU-ms\n",
               (long long)n, nth, nth > 1 ? "s" : "", a * 1e3, ROUNDS, gb / a, 100.0 * w / a, w * 1e3, text_s / a, 0.085 / a,
               z * 1e3);
        rp_pool_free(pool);
    }
    free(p); free(g); free(m); free(v);
}

static const rp_llama_config smollm2 = {
    .n_layer = 30, .dim = 576, .n_head = 9, .n_head_kv = 3, .head_dim = 64, .ffn_dim = 1536, .vocab = 49152, .rope_dim = 64,
    .rope_neox = 0, .rope_base = 100000.0f, .norm_eps = 1e-5f, .context_len = 2048, .tied_embeddings = 1,
};

/* One configuration: build, one warm-up step, STEPS timed steps; returns tokens/s (0 on failure). */
static double bench_step(const char *label, const rp_model_file *f, rp_train_method method, int B, int T, double n_full,
                         double peak, double peak_cpu) {
    rp_train_opts o = { .method = method, .B = B, .T = T, .lora_rank = 8, .lora_alpha = 16, .lora_targets = "attn_q,attn_v",
                        .adamw = { 0.9f, 0.95f, 1e-8f, 0.1f }, .seed = 1, .n_threads = 2, .precision = precision };
    int reset = vm_hwm_reset();
    double t0 = now_s();
    rp_trainer *tr = NULL;
    if (rp_trainer_new(f, f ? NULL : &smollm2, &o, &tr) != RP_OK) {
        printf("%s: %s\n", label, rp_errmsg());
        return 0;
    }
    double build_s = now_s() - t0;
    const rp_llama_config *c = rp_trainer_config(tr);
    int64_t BT = (int64_t)B * T;
    int32_t *tok = malloc((size_t)BT * sizeof *tok), *tgt = malloc((size_t)BT * sizeof *tgt);
    for (int64_t i = 0; i < BT; i++) { tok[i] = (int32_t)((i * 7919) % c->vocab); tgt[i] = (int32_t)((i * 104729 + 13) % c->vocab); }
    double t[STEPS], tc[STEPS], loss = 0, gn = 0;
    for (int s = 0; s <= STEPS; s++) {
        double a = now_s(), ac = cpu_s();
        if (rp_trainer_forward_backward(tr, tok, tgt, NULL, B, T, NULL, NULL, &loss) != RP_OK ||
            rp_trainer_update(tr, 1e-4f, 1.0f, &gn) != RP_OK) {
            printf("%s: %s\n", label, rp_errmsg());
            break;
        }
        if (s) { t[s - 1] = now_s() - a; tc[s - 1] = cpu_s() - ac; }
    }
    double s = median(t, STEPS), sc = median(tc, STEPS), tps = (double)BT / s;
    double flops_tok = 6.0 * n_full + 6.0 * c->n_layer * c->dim * (double)T;
    long hwm = vm_hwm_kb();
    printf("%-30s %6.2f s/step %6.1f tokens/s  model FLOPs %5.1f GFLOP/s = %5.1f%% of the 2-thread peak; per CPU-second "
           "%5.1f%% of the 1-thread peak (%.2f CPU-s/step)  trainable %.1fM, loss %.3f, build %.1f s, peak RSS %s%.2f GiB\n",
           label, s, tps, flops_tok * tps / 1e9, 100.0 * flops_tok * tps / 1e9 / peak,
           100.0 * flops_tok * (double)BT / sc / 1e9 / peak_cpu, sc, (double)rp_trainer_n_params(tr) / 1e6, loss, build_s,
           reset ? "" : "since start ", (double)hwm / (1024.0 * 1024.0));
    free(tok); free(tgt);
    rp_trainer_free(tr);
    return tps;
}

int main(int argc, char **argv) {
    rp_blas_core_ensure(argv);   /* OpenBLAS on its AVX2 kernels where it would not pick them (cli/blas_core.h) */
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* `bench_train steps [128|512]`: the full steps only, both matmul routes; `bench_train own`: only ours (profiling) */
    int bf16_only = argc > 1 && !strcmp(argv[1], "bf16");
    int steps_only = argc > 1 && (!strcmp(argv[1], "steps") || !strcmp(argv[1], "own") || bf16_only);
    int own_only = argc > 1 && (!strcmp(argv[1], "own") || bf16_only);
    rp_pool *p1 = NULL, *p2 = NULL;
    if (rp_pool_new(1, &p1) != RP_OK || rp_pool_new(2, &p2) != RP_OK) return 1;
    double peak1 = fma_peak(p1, 1, 0), peak2 = fma_peak(p2, 2, 0), peak_cpu = fma_peak(p1, 1, 1);
    rp_pool_free(p1); rp_pool_free(p2);
    printf("calibrated fp32 FMA peak: %.0f GFLOP/s on 1 thread, %.0f on 2, %.0f per CPU-second (perf.md machine A: 117 / 233); "
           "on a shared host the per-CPU-second fractions below are the ones other engineers' load does not move\n",
           peak1, peak2, peak_cpu);
    if (!steps_only) bench_adamw();
    /* the full model's parameter count, as perf.md counts llm.c's FLOPs (tied embeddings counted once) */
    const rp_llama_config *c = &smollm2;
    double n_full = (double)c->vocab * c->dim + c->n_layer * (2.0 * c->dim + (double)c->dim * c->n_head * c->head_dim * 2 +
                    (double)c->dim * c->n_head_kv * c->head_dim * 2 + 3.0 * c->dim * c->ffn_dim) + c->dim;
    printf("training steps at SmolLM2-135M shapes (%.1fM parameters), 2 threads; llm.c: 51.5 tokens/s at 4 x 128 and 29.1 at "
           "1 x 512 on machine A (perf.md); targets: >= 60%% / 50%% of peak, LoRA >= 1.4x full, full < 3 GiB, QLoRA < 1 GiB\n",
           n_full / 1e6);
    /* the same steps with the matmuls through OpenBLAS (the reference) and through rp_gemm_f32, in this run */
    /* a second argument 128 or 512 keeps only that shape (a shorter locked run on a shared host) */
    int only = argc > 2 ? atoi(argv[2]) : 0, do128 = only != 512, do512 = only != 128;
    double blas = 0, blas512 = 0, full = 0, full512 = 0;
    if (!own_only) {
        rp_gemm_f32_select(0);
        if (do128) blas = bench_step("full, 4 x 128 (OpenBLAS)", NULL, RP_TRAIN_FULL, 4, 128, n_full, peak2, peak_cpu);
        if (do512) blas512 = bench_step("full, 1 x 512 (OpenBLAS)", NULL, RP_TRAIN_FULL, 1, 512, n_full, peak2, peak_cpu);
        rp_gemm_f32_select(1);
    }
    if (do128) full = bench_step("full, 4 x 128", NULL, RP_TRAIN_FULL, 4, 128, n_full, peak2, peak_cpu);
    if (do512) full512 = bench_step("full, 1 x 512", NULL, RP_TRAIN_FULL, 1, 512, n_full, peak2, peak_cpu);
    if (blas > 0 && full > 0) printf("own gemm / OpenBLAS tokens/s at 4 x 128: %.2fx\n", full / blas);
    if (blas512 > 0 && full512 > 0) printf("own gemm / OpenBLAS tokens/s at 1 x 512: %.2fx\n", full512 / blas512);
    if (bf16_only || !steps_only) {
        rp_bf16_unit u = rp_gemm_bf16_unit();
        char l128[64], l512[64];
        snprintf(l128, sizeof l128, "full, 4 x 128, bf16 (%s)", rp_gemm_bf16_unit_name(u));
        snprintf(l512, sizeof l512, "full, 1 x 512, bf16 (%s)", rp_gemm_bf16_unit_name(u));
        precision = RP_TRAIN_BF16;
        double b128 = do128 ? bench_step(l128, NULL, RP_TRAIN_FULL, 4, 128, n_full, peak2, peak_cpu) : 0;
        double b512 = do512 ? bench_step(l512, NULL, RP_TRAIN_FULL, 1, 512, n_full, peak2, peak_cpu) : 0;
        precision = RP_TRAIN_FP32;
        if (u == RP_BF16_NONE) printf("no bf16 unit here: the bf16 steps above ran in fp32\n");
        if (b128 > 0 && full > 0) printf("bf16 / fp32 tokens/s at 4 x 128: %.2fx (%% of peak above: model FLOPs against the fp32 peak, on bf16 units)\n", b128 / full);
        if (b512 > 0 && full512 > 0) printf("bf16 / fp32 tokens/s at 1 x 512: %.2fx\n", b512 / full512);
    }
    if (steps_only) return 0;
    const char *m = getenv("REPRO_MIRROR");
    char path[4096];
    snprintf(path, sizeof path, "%s/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf", m ? m : ".");
    rp_model_file *f = NULL;
    if (!m || rp_model_file_open(path, &f) != RP_OK) {
        printf("skip [mirror]: LoRA / QLoRA steps need REPRO_MIRROR with smollm2-135m-instruct\n");
        return 0;
    }
    double lora = bench_step("lora r8 q,v on Q4_1, 4 x 128", f, RP_TRAIN_LORA, 4, 128, n_full, peak2, peak_cpu);
    double qlora = bench_step("qlora r8 q,v (NF4), 4 x 128", f, RP_TRAIN_QLORA, 4, 128, n_full, peak2, peak_cpu);
    if (full > 0 && lora > 0)
        printf("LoRA tokens/s / full tokens/s = %.2fx, QLoRA %.2fx (target >= 1.4x)\n", lora / full, qlora / full);
    rp_model_file_free(f);
    return 0;
}
