/* bench_gemm.c: the training matmuls at SmolLM2-135M's shapes (M = 512 tokens; out × in = 576 × 576 for q and o,
 * 192 × 576 for k and v, 1536 × 576 for gate and up, 576 × 1536 for down, 49152 × 576 for the tied head), each
 * of the three variants (y = x·Wᵀ, dx += dy·W, dW += dyᵀ·x), on 2 threads: our rp_gemm_f32 against OpenBLAS
 * split over the same pool the way the trainer split it before (single-threaded sgemm per slice of C),
 * interleaved round by round so both see the same load. Printed: GFLOP/s of each (best of ROUNDS), ours ÷
 * OpenBLAS, and each as a fraction of the fp32 FMA peak calibrated in the same run (bench_calib.h); then the
 * same on 1 thread per CPU-second (process CPU time), the figure other processes' load on a shared host moves
 * least (waiting for a core costs no CPU time).
 * The bf16 route (rp_gemm_bf16: inputs rounded to bf16, fp32 sums) is timed in the same rounds on each bf16 unit
 * the machine has (AMX tiles, AVX512-BF16): its GFLOP/s, its ratio to ours, and its fraction of the same fp32
 * peak, a fraction that can pass 100% since those units are not the fp32 FMA the peak calibrates. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include "cli/blas_core.h"
#include "bench_calib.h"
#include "tensor/gemm_bf16.h"
#include "tensor/gemm_f32.h"

#define ROUNDS 5

typedef struct blas_job {
    int ta, tb, acc, split_rows;
    int64_t M, N, K, lda, ldb, ldc;
    const float *A, *B;
    float *C;
} blas_job;

/* One slice of C (rows or columns) through a single-threaded sgemm. */
static void blas_task(void *ctx, int ith, int nth, int thread) {
    blas_job *j = ctx;
    (void)thread;
    int64_t a, z;
    rp_bwd_split(j->split_rows ? j->M : j->N, ith, nth, 16, &a, &z);
    if (a >= z) return;
    CBLAS_TRANSPOSE ta = j->ta ? CblasTrans : CblasNoTrans, tb = j->tb ? CblasTrans : CblasNoTrans;
    if (j->split_rows)
        cblas_sgemm(CblasRowMajor, ta, tb, (int)(z - a), (int)j->N, (int)j->K, 1.0f, j->A + (j->ta ? a : a * j->lda), (int)j->lda,
                    j->B, (int)j->ldb, j->acc ? 1.0f : 0.0f, j->C + a * j->ldc, (int)j->ldc);
    else
        cblas_sgemm(CblasRowMajor, ta, tb, (int)j->M, (int)(z - a), (int)j->K, 1.0f, j->A, (int)j->lda,
                    j->B + (j->tb ? a * j->ldb : a), (int)j->ldb, j->acc ? 1.0f : 0.0f, j->C + a, (int)j->ldc);
}

static float *randbuf(int64_t n) {
    float *p = aligned_alloc(64, ((size_t)n * 4 + 63) / 64 * 64);
    if (!p) { fprintf(stderr, "bench_gemm: out of memory\n"); exit(1); }
    for (int64_t i = 0; i < n; i++) p[i] = (float)((i * 7919) % 2001) * 1e-3f - 1.0f;
    return p;
}

/* Seconds of one rp_gemm_bf16 call on unit u (clock clk). */
static double time_bf16(rp_bwd *bw, rp_bf16_unit u, double (*clk)(void), int ta, int tb, int64_t M, int64_t N, int64_t K,
                        const float *A, int64_t lda, const float *B, int64_t ldb, int acc, float *C, int64_t ldc) {
    if (rp_gemm_bf16_use(u) != RP_OK) exit(1);
    double t0 = clk();
    if (rp_gemm_bf16(bw, ta, tb, M, N, K, A, lda, B, ldb, acc, C, ldc) != RP_OK) exit(1);
    return clk() - t0;
}

/* Every shape on a pool of nth threads: wall clock (cpu 0) or process CPU time (cpu 1, one thread). */
static void run(int nth, int cpu) {
    rp_pool *pool = NULL;
    rp_bwd *bw = NULL;
    if (rp_pool_new(nth, &pool) != RP_OK || rp_bwd_new(pool, &bw) != RP_OK) exit(1);
    double peak = fma_peak(pool, nth, cpu);
    double (*clk)(void) = cpu ? cpu_s : now_s;
    printf("calibrated fp32 FMA peak on %d thread%s: %.0f GFLOP/s%s; M = 512 tokens, best of %d rounds, interleaved\n", nth,
           nth > 1 ? "s" : "", peak, cpu ? " per CPU-second" : "", ROUNDS);
    int units = (int)rp_gemm_bf16_best();   /* bf16 units timed: AMX and AVX512-BF16 (2), AVX512-BF16 (1), none (0) */
    printf("%-8s %-14s %-6s %9s %9s %7s %8s %8s", "layer", "variant", "shape", "ours", "openblas", "ratio", "ours%pk", "blas%pk");
    for (int u = units; u >= 1; u--) printf(" %11s %6s %7s", rp_gemm_bf16_unit_name((rp_bf16_unit)u), "/ours", "%pk");
    printf("\n");
    static const struct { const char *name; int64_t out, in; } layers[] = {
        { "q/o", 576, 576 }, { "k/v", 192, 576 }, { "gate/up", 1536, 576 }, { "down", 576, 1536 }, { "head", 49152, 576 },
    };
    const int64_t T = 512;
    double sum_ours = 0, sum_blas = 0, flops_all = 0, sum_bf[3] = { 0, 0, 0 };
    for (size_t l = 0; l < sizeof layers / sizeof *layers; l++) {
        int64_t OUT = layers[l].out, IN = layers[l].in;
        float *W = randbuf(OUT * IN), *X = randbuf(T * IN), *DY = randbuf(T * OUT), *Y = randbuf(T * OUT), *DX = randbuf(T * IN),
              *DW = randbuf(OUT * IN);
        struct { const char *v; int ta, tb, acc, rows; int64_t M, N, K, lda, ldb, ldc; const float *A, *B; float *C; } var[3] = {
            { "y = x W^T", 0, 1, 0, 0, T, OUT, IN, IN, IN, OUT, X, W, Y },
            { "dx += dy W", 0, 0, 1, 0, T, IN, OUT, OUT, IN, IN, DY, W, DX },
            { "dW += dy^T x", 1, 0, 1, 1, OUT, IN, T, OUT, IN, IN, DY, X, DW },
        };
        for (int v = 0; v < 3; v++) {
            double to[ROUNDS], tb[ROUNDS], tbf[3][ROUNDS], fl = 2.0 * (double)var[v].M * (double)var[v].N * (double)var[v].K;
            blas_job bj = { var[v].ta, var[v].tb, var[v].acc, var[v].rows, var[v].M, var[v].N, var[v].K, var[v].lda, var[v].ldb,
                            var[v].ldc, var[v].A, var[v].B, var[v].C };
            for (int r = 0; r <= ROUNDS; r++) {
                double t0 = clk();
                if (rp_gemm_f32(bw, var[v].ta, var[v].tb, var[v].M, var[v].N, var[v].K, var[v].A, var[v].lda, var[v].B, var[v].ldb,
                                var[v].acc, var[v].C, var[v].ldc) != RP_OK) exit(1);
                double t1 = clk();
                rp_pool_run(pool, blas_task, &bj, nth);
                double t2 = clk();
                if (r) { to[r - 1] = t1 - t0; tb[r - 1] = t2 - t1; }
                for (int u = units; u >= 1; u--) {
                    double t = time_bf16(bw, (rp_bf16_unit)u, clk, var[v].ta, var[v].tb, var[v].M, var[v].N, var[v].K, var[v].A,
                                         var[v].lda, var[v].B, var[v].ldb, var[v].acc, var[v].C, var[v].ldc);
                    if (r) tbf[u][r - 1] = t;
                }
            }
            double bo = to[0], bb = tb[0];
            for (int r = 1; r < ROUNDS; r++) { if (to[r] < bo) bo = to[r]; if (tb[r] < bb) bb = tb[r]; }
            double go = fl / bo / 1e9, gb = fl / bb / 1e9;
            char shape[32];
            snprintf(shape, sizeof shape, "%lldx%lldx%lld", (long long)var[v].M, (long long)var[v].N, (long long)var[v].K);
            printf("%-8s %-14s %-16s %7.1f %9.1f %7.2fx %7.1f%% %7.1f%%", layers[l].name, var[v].v, shape, go, gb, go / gb,
                   100 * go / peak, 100 * gb / peak);
            for (int u = units; u >= 1; u--) {
                double bu = tbf[u][0];
                for (int r = 1; r < ROUNDS; r++) if (tbf[u][r] < bu) bu = tbf[u][r];
                printf(" %11.1f %5.2fx %6.0f%%", fl / bu / 1e9, bo / bu, 100 * fl / bu / 1e9 / peak);
                sum_bf[u] += bu;
            }
            printf("\n");
            sum_ours += bo; sum_blas += bb; flops_all += fl;
        }
        free(W); free(X); free(DY); free(Y); free(DX); free(DW);
    }
    printf("all 15 shapes once: ours %.1f GFLOP/s (%.1f%% of peak), OpenBLAS %.1f (%.1f%%), ratio %.2fx\n", flops_all / sum_ours / 1e9,
           100 * flops_all / sum_ours / 1e9 / peak, flops_all / sum_blas / 1e9, 100 * flops_all / sum_blas / 1e9 / peak,
           sum_blas / sum_ours);
    for (int u = units; u >= 1; u--)
        printf("all 15 shapes once, bf16 inputs on %s: %.1f GFLOP/s (%.0f%% of the fp32 peak, on bf16 units), %.2fx ours\n",
               rp_gemm_bf16_unit_name((rp_bf16_unit)u), flops_all / sum_bf[u] / 1e9, 100 * flops_all / sum_bf[u] / 1e9 / peak,
               sum_ours / sum_bf[u]);
    if (units && rp_gemm_bf16_use((rp_bf16_unit)units) != RP_OK) exit(1);
    rp_bwd_free(bw);
    rp_pool_free(pool);
}

int main(int argc, char **argv) {
    (void)argc;
    rp_blas_core_ensure(argv);   /* OpenBLAS on its AVX2 kernels where it would not pick them (cli/blas_core.h) */
    setvbuf(stdout, NULL, _IOLBF, 0);
    run(2, 0);
    run(1, 1);
    return 0;
}
