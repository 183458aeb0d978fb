/* gemm_bf16.c: rp_gemm_bf16 (gemm_bf16.h): the unit chosen at run time and the split of C into tasks over the
 * backward context's pool. A task owns rows [m0, m1) × columns [n0, n1) of C (both multiples of 32 from the
 * origin, so the 32 × 32 blocks never move with the partition): for each block of up to mb rows and each chunk of
 * k (at most KB_CHUNK blocks of 32, equal chunks) it packs those rows of op(A) (kept in L2), then for each 32-column
 * strip packs the strip of op(B) and sweeps the block's 32 × 32 blocks of C with the unit's kernel
 * (gemm_bf16_x86.c, gemm_bf16_amx.c), C carrying the sum from chunk to chunk.
 * The grid (row parts × column parts = threads) is the one that packs the least: every column part packs its
 * rows of A again, every row block of a task its strips of B again.
 * Invariants: an element's sum (its order fixed by the kernel over the whole of k) never depends on the grid or
 * the thread count; scratch is per thread (rp_bwd_scratch), 64-byte aligned parts; without a bf16 unit (or off
 * x86-64) every call is rp_gemm_f32's. */
#include <math.h>
#include <stdatomic.h>
#include "tensor/gemm_bf16.h"
#include "tensor/gemm_bf16_impl.h"
#include "tensor/gemm_f32.h"
#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define A_BLOCK_BYTES ((int64_t)3 << 19)   /* packed rows of A per block: 1.5 MiB, within a 2 MiB L2 */
#define KB_CHUNK 32                        /* k blocks (of 32) per chunk at most: a 32-column strip of B is 64 KiB */

static atomic_int best_unit = -1;   /* detected once; -1: not yet */
static atomic_int cap_unit = RP_BF16_AMX;

static int detect(void) {
#if defined(__x86_64__) && defined(__linux__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") || !__builtin_cpu_supports("avx512bf16"))
        return RP_BF16_NONE;
    /* AMX: the CPU has it (CPUID 7.0 EDX bits 22 AMX-BF16, 24 AMX-TILE: read directly, as compilers disagree on the
     * feature names), and the kernel (Linux 5.16+) grants this process the tile data state */
    unsigned a, b, c, d;
    int amx = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 22 & 1) && (d >> 24 & 1);
    if (amx && syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0)
        return RP_BF16_AMX;
    return RP_BF16_AVX512;
#else
    return RP_BF16_NONE;
#endif
}

/* The best unit the machine and OS allow. */
rp_bf16_unit rp_gemm_bf16_best(void) {
    int u = atomic_load(&best_unit);
    if (u < 0) { u = detect(); atomic_store(&best_unit, u); }   /* a race only repeats the same detection */
    return (rp_bf16_unit)u;
}

/* The unit in use: the best one, capped by rp_gemm_bf16_use. */
rp_bf16_unit rp_gemm_bf16_unit(void) {
    int b = (int)rp_gemm_bf16_best(), c = atomic_load(&cap_unit);
    return (rp_bf16_unit)(b < c ? b : c);
}

/* A unit's name. */
const char *rp_gemm_bf16_unit_name(rp_bf16_unit u) {
    return u == RP_BF16_AMX ? "amx" : u == RP_BF16_AVX512 ? "avx512_bf16" : "none";
}

/* Cap the unit in use. */
rp_status rp_gemm_bf16_use(rp_bf16_unit u) {
    if (u < RP_BF16_NONE || u > RP_BF16_AMX) return rp_fail(RP_ERR_INVAL, "gemm_bf16: unit %d unknown", (int)u);
    if (u > rp_gemm_bf16_best())
        return rp_fail(RP_ERR_UNSUPPORTED, "gemm_bf16: unit %s asked, this machine has %s at best", rp_gemm_bf16_unit_name(u),
                       rp_gemm_bf16_unit_name(rp_gemm_bf16_best()));
    atomic_store(&cap_unit, (int)u);
    return RP_OK;
}

/* Whether a product of these dimensions takes the bf16 route. */
int rp_gemm_bf16_wanted(int64_t M, int64_t N, int64_t K) { return rp_gemm_bf16_unit() != RP_BF16_NONE && M >= 1 && N >= 32 && K >= 32; }

#if defined(__x86_64__)
typedef struct bf16_job {
    rp_bwd *b;
    int ta, tb, acc, amx, mt, nt, failed;
    int64_t M, N, K, lda, ldb, ldc, nkb, kcb, mb;   /* kcb: k blocks per chunk (the last chunk may be shorter) */
    const float *A, *B;
    float *C;
} bf16_job;

static int64_t up64(int64_t n) { return (n + 63) / 64 * 64; }

/* One task's rows × columns of C. */
static void bf16_task(void *ctx, int task, int n_tasks, int thread) {
    bf16_job *j = ctx;
    (void)n_tasks;
    int64_t m0, m1, n0, n1;
    rp_bwd_split(j->M, task / j->nt, j->mt, 32, &m0, &m1);
    rp_bwd_split(j->N, task % j->nt, j->nt, 32, &n0, &n1);
    if (m0 >= m1 || n0 >= n1) return;
    int64_t mb = m1 - m0 < j->mb ? (m1 - m0 + 31) / 32 * 32 : j->mb;
    int64_t a_bytes = up64(mb * j->kcb * 32 * 2), b_bytes = up64(32 * j->kcb * 32 * 2);
    char *scratch = rp_bwd_scratch(j->b, thread, (size_t)(a_bytes + b_bytes + 32 * 32 * 4));
    if (!scratch) { j->failed = 1; return; }
    uint16_t *ap = (uint16_t *)scratch, *bp = (uint16_t *)(scratch + a_bytes);
    float *cbuf = (float *)(scratch + a_bytes + b_bytes);
    if (j->amx) rp_gemm_bf16_amx_begin();
    for (int64_t ic = m0; ic < m1; ic += mb) {
        int64_t mc = m1 - ic < mb ? m1 - ic : mb;
        for (int64_t kb0 = 0; kb0 < j->nkb; kb0 += j->kcb) {
            int64_t nk = j->nkb - kb0 < j->kcb ? j->nkb - kb0 : j->kcb;
            int acc = j->acc || kb0 > 0;
            rp_gemm_bf16_pack_a(j->ta, j->A, j->lda, ic, mc, (mc + 31) / 32 * 2, j->K, kb0, nk, ap);
            for (int64_t jc = n0; jc < n1; jc += 32) {
                int nc = n1 - jc < 32 ? (int)(n1 - jc) : 32;
                rp_gemm_bf16_pack_b(j->tb, j->B, j->ldb, jc, nc, j->K, kb0, nk, bp);
                for (int64_t ir = 0; ir < mc; ir += 32) {
                    const uint16_t *a = ap + (ir / 16) * nk * RP_BF16_TILE;
                    float *c = j->C + (ic + ir) * j->ldc + jc;
                    int rows = mc - ir < 32 ? (int)(mc - ir) : 32;
                    if (j->amx) rp_gemm_bf16_block_amx(a, bp, nk, c, j->ldc, rows, nc, acc, cbuf);
                    else rp_gemm_bf16_block_avx512(a, bp, nk, c, j->ldc, rows, nc, acc);
                }
            }
        }
    }
    if (j->amx) rp_gemm_bf16_amx_end();
}

/* Elements packed (a transposing pack counted twice) with r row parts × c column parts: A's rows once per
 * column part, B's columns once per row block of each row part. */
static double pack_cost(const bf16_job *j, int r, int c) {
    int64_t rows = (j->M + r - 1) / r, blocks = r * ((rows + j->mb - 1) / j->mb);
    return (double)c * (double)j->M * (double)j->K * (j->ta ? 2 : 1) + (double)blocks * (double)j->K * (double)j->N * (j->tb ? 2 : 1);
}

/* The grid (mt × nt = n, each part at least 32 wide) that packs the least; 1 × 1 when none fits. */
static void choose_grid(const bf16_job *j, int n, int *mt, int *nt) {
    *mt = 1; *nt = 1;
    double best = INFINITY;
    for (int r = 1; r <= n; r++) {
        int c = n / r;
        if (r * c != n || (r > 1 && j->M < (int64_t)r * 32) || (c > 1 && j->N < (int64_t)c * 32)) continue;
        double cost = pack_cost(j, r, c);
        if (cost < best) { best = cost; *mt = r; *nt = c; }
    }
}
#endif

/* The bf16-input product on the unit in use (rp_gemm_f32 without one). */
rp_status rp_gemm_bf16(rp_bwd *b, int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                       const float *B, int64_t ldb, int accumulate, float *C, int64_t ldc) {
    if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX) return rp_fail(RP_ERR_RANGE, "gemm_bf16: dimension over 2^31");
    rp_bf16_unit u = rp_gemm_bf16_unit();
    if (u == RP_BF16_NONE || K <= 0) return rp_gemm_f32(b, ta, tb, M, N, K, A, lda, B, ldb, accumulate, C, ldc);
    if (M <= 0 || N <= 0) return RP_OK;
#if defined(__x86_64__)
    int64_t nkb = (K + 31) / 32, chunks = (nkb + KB_CHUNK - 1) / KB_CHUNK, kcb = (nkb + chunks - 1) / chunks;
    int64_t mb = A_BLOCK_BYTES / (kcb * 32 * 2) / 32 * 32;
    bf16_job j = { .b = b, .ta = ta, .tb = tb, .acc = accumulate, .amx = u == RP_BF16_AMX, .M = M, .N = N, .K = K, .lda = lda,
                   .ldb = ldb, .ldc = ldc, .nkb = nkb, .kcb = kcb, .mb = mb < 32 ? 32 : mb, .A = A, .B = B, .C = C };
    choose_grid(&j, rp_bwd_threads(b), &j.mt, &j.nt);
    rp_bwd_run(b, bf16_task, &j, j.mt * j.nt);
    if (j.failed) return rp_fail(RP_ERR_NOMEM, "gemm_bf16: out of memory for packed tiles");
    return RP_OK;
#else
    return rp_gemm_f32(b, ta, tb, M, N, K, A, lda, B, ldb, accumulate, C, ldc);
#endif
}
