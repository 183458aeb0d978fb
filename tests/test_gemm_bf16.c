/* test_gemm_bf16.c: rp_gemm_bf16 (fp32 operands rounded to bf16 while packed, fp32 sums) on each bf16 unit this
 * machine has (AMX, AVX512-BF16), on odd shapes: M, N, K not multiples of the 32 × 32 blocks or the 32-long k
 * blocks, K = 1, K longer than many k blocks, M taller than one packed row block, all four transpose
 * combinations, overwrite and accumulate, k in chunks, leading dimensions wider than the matrix, on 1, 2 and 3 threads.
 * Two bounds per element, mag = |C₀| + Σₖ |a_ik·b_kj|:
 *   the stated tolerance, against the fp32-input product (rp_gemm_f32_ref): each input is within u = 2⁻⁸
 *     relative of its bf16 rounding, a product within 2u + u², the fp32 sum adds (K+2)·2⁻²³:
 *     |fast − exact| <= (2·2⁻⁸ + 2⁻¹⁶ + (K+2)·2⁻²³)·mag;
 *   the kernel's own, against the bf16-input product in double (rp_gemm_bf16_ref): only the fp32 summation,
 *     |fast − ref| <= (K+2)·2⁻²³·mag, which truncating instead of rounding to nearest even, a wrong index or a lost
 *     k block breaks by orders of magnitude.
 * Also: the error against fp32 is not zero (inputs really are rounded); columns past N are never written; an
 * overwrite ignores NaN already in C; 1, 2 and 3 threads give bit-identical results; with no unit the call is
 * rp_gemm_f32's bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "tensor/gemm_bf16.h"
#include "tensor/gemm_f32.h"
#include "test_vectors.h"

static void fill(float *p, int64_t n) { for (int64_t i = 0; i < n; i++) p[i] = frand(); }

/* Σₖ |op(A)(i, k)·op(B)(k, j)|: the scale of element (i, j)'s rounding errors. */
static double abs_dot(int ta, int tb, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb, int64_t i, int64_t j) {
    double s = 0;
    for (int64_t k = 0; k < K; k++) s += fabs((double)(ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]));
    return s;
}

/* rp_gemm_bf16 into a copy of C0 (its M × N part NaN when overwriting, so a skipped element shows). */
static float *product(rp_bwd *bw, int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                      int64_t ldb, int acc, const float *C0, int64_t ldc) {
    float *F = malloc((size_t)(M * ldc) * 4);
    for (int64_t e = 0; e < M * ldc; e++) F[e] = !acc && e % ldc < N ? NAN : C0[e];
    CHECK(rp_gemm_bf16(bw, ta, tb, M, N, K, A, lda, B, ldb, acc, F, ldc) == RP_OK);
    return F;
}

typedef struct worst { double stated, own; } worst;

/* One shape on pools of 1..3 threads against both references; the worst errors in units of each bound. */
static worst one(rp_bwd *const *bw, int ta, int tb, int64_t M, int64_t N, int64_t K, int acc, const char *unit) {
    int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 7;
    int64_t na = (ta ? K : M) * lda, nb = (tb ? N : K) * ldb, nc = M * ldc;
    float *A = malloc((size_t)na * 4), *B = malloc((size_t)nb * 4), *C0 = malloc((size_t)nc * 4);
    float *R32 = malloc((size_t)nc * 4), *R16 = malloc((size_t)nc * 4), *F[3];
    fill(A, na); fill(B, nb); fill(C0, nc);
    memcpy(R32, C0, (size_t)nc * 4);
    memcpy(R16, C0, (size_t)nc * 4);
    rp_gemm_f32_ref(ta, tb, M, N, K, A, lda, B, ldb, acc, R32, ldc);
    rp_gemm_bf16_ref(ta, tb, M, N, K, A, lda, B, ldb, acc, R16, ldc);
    for (int t = 0; t < 3; t++) F[t] = product(bw[t], ta, tb, M, N, K, A, lda, B, ldb, acc, C0, ldc);
    worst w = { 0, 0 };
    int pad_ok = 1, same = 1;
    for (int64_t i = 0; i < M; i++) {
        const float *row = F[0] + i * ldc;
        same &= !memcmp(row, F[1] + i * ldc, (size_t)N * 4) && !memcmp(row, F[2] + i * ldc, (size_t)N * 4);
        for (int64_t j = N; j < ldc; j++) pad_ok &= row[j] == C0[i * ldc + j] && F[1][i * ldc + j] == C0[i * ldc + j];
        for (int64_t j = 0; j < N; j++) {
            double mag = (acc ? fabs(C0[i * ldc + j]) : 0) + abs_dot(ta, tb, K, A, lda, B, ldb, i, j);
            double sum_err = (double)(K + 2) * 0x1p-23 * mag + 1e-30, stated = (2 * 0x1p-8 + 0x1p-16) * mag + sum_err;
            double e32 = fabs((double)row[j] - R32[i * ldc + j]) / stated, e16 = fabs((double)row[j] - R16[i * ldc + j]) / sum_err;
            if (!(e32 <= w.stated)) w.stated = isnan(e32) ? INFINITY : e32;
            if (!(e16 <= w.own)) w.own = isnan(e16) ? INFINITY : e16;
        }
    }
    CHECK_MSG(w.stated <= 1.0, "%s ta %d tb %d M %lld N %lld K %lld acc %d: error vs the fp32 product %.3g of the stated bound", unit,
              ta, tb, (long long)M, (long long)N, (long long)K, acc, w.stated);
    CHECK_MSG(w.own <= 1.0, "%s ta %d tb %d M %lld N %lld K %lld acc %d: error vs the bf16-input product %.3g of the fp32-sum bound",
              unit, ta, tb, (long long)M, (long long)N, (long long)K, acc, w.own);
    CHECK_MSG(pad_ok, "%s ta %d tb %d M %lld N %lld K %lld: wrote past column N", unit, ta, tb, (long long)M, (long long)N, (long long)K);
    CHECK_MSG(same, "%s ta %d tb %d M %lld N %lld K %lld: 1, 2 and 3 threads differ", unit, ta, tb, (long long)M, (long long)N, (long long)K);
    free(A); free(B); free(C0); free(R32); free(R16);
    for (int t = 0; t < 3; t++) free(F[t]);
    return w;
}

/* Every shape and variant on the unit in use. */
static void unit_checks(rp_bwd *const *bw, const char *unit) {
    static const int64_t shapes[][3] = {
        { 1, 1, 1 }, { 13, 31, 1 }, { 16, 32, 2 }, { 15, 33, 7 }, { 29, 65, 300 }, { 100, 17, 513 },
        { 33, 47, 31 }, { 64, 64, 64 }, { 3, 200, 64 }, { 57, 96, 576 }, { 28, 64, 1 },
    };
    worst all = { 0, 0 };
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int v = 0; v < 8; v++) {
            worst w = one(bw, v & 1, (v >> 1) & 1, shapes[s][0], shapes[s][1], shapes[s][2], v >> 2, unit);
            all.stated = fmax(all.stated, w.stated); all.own = fmax(all.own, w.own);
        }
    /* k in two chunks of 32 blocks and more rows than one packed block of A (768 rows at such chunks), for the two
     * variants that transpose while packing (y = x·Wᵀ and dW = dyᵀ·x) */
    worst w = one(bw, 0, 1, 800, 24, 2048, 1, unit);
    all.stated = fmax(all.stated, w.stated); all.own = fmax(all.own, w.own);
    w = one(bw, 1, 0, 800, 24, 2048, 0, unit);
    all.stated = fmax(all.stated, w.stated); all.own = fmax(all.own, w.own);
    CHECK_MSG(all.stated > 1e-3, "%s: error vs the fp32 product only %.3g of the bound: were the inputs rounded to bf16?", unit, all.stated);
    printf("# %s: worst error %.3g of the stated bf16 bound (vs fp32 inputs), %.3g of the fp32-sum bound (vs bf16 inputs)\n", unit,
           all.stated, all.own);
}

int main(void) {
    rp_pool *pool[3] = { NULL, NULL, NULL };
    rp_bwd *bw[3] = { NULL, NULL, NULL };
    for (int t = 0; t < 3; t++) CHECK(rp_pool_new(t + 1, &pool[t]) == RP_OK && rp_bwd_new(pool[t], &bw[t]) == RP_OK);
    rp_bf16_unit best = rp_gemm_bf16_best();
    printf("# best bf16 unit here: %s\n", rp_gemm_bf16_unit_name(best));
    for (int u = RP_BF16_AMX; u >= RP_BF16_AVX512; u--) {
        if (u > (int)best) { printf("skip: no %s unit on this machine (or the OS refused the tile state)\n", rp_gemm_bf16_unit_name(u)); continue; }
        CHECK(rp_gemm_bf16_use((rp_bf16_unit)u) == RP_OK && rp_gemm_bf16_unit() == (rp_bf16_unit)u);
        unit_checks(bw, rp_gemm_bf16_unit_name(u));
    }
    /* no unit: rp_gemm_f32's product, bit for bit, and the route is not wanted */
    CHECK(rp_gemm_bf16_use(RP_BF16_NONE) == RP_OK && !rp_gemm_bf16_wanted(64, 64, 64));
    float A[40 * 50], B[50 * 60], C1[40 * 60], C2[40 * 60];
    fill(A, 40 * 50); fill(B, 50 * 60);
    CHECK(rp_gemm_bf16(bw[1], 0, 0, 40, 60, 50, A, 50, B, 60, 0, C1, 60) == RP_OK);
    CHECK(rp_gemm_f32(bw[1], 0, 0, 40, 60, 50, A, 50, B, 60, 0, C2, 60) == RP_OK);
    CHECK_MSG(!memcmp(C1, C2, sizeof C1), "with no bf16 unit the product is not rp_gemm_f32's");
    if (best < RP_BF16_AMX) CHECK(rp_gemm_bf16_use(RP_BF16_AMX) == RP_ERR_UNSUPPORTED);
    CHECK(rp_gemm_bf16_use(best) == RP_OK);
    CHECK(rp_gemm_bf16_wanted(64, 64, 64) == (best != RP_BF16_NONE) && !rp_gemm_bf16_wanted(64, 8, 64));
    /* K = 0 (an empty sum overwrites with zeros or leaves C) and dimensions over 2^31 */
    float c[4] = { 1, 2, 3, 4 }, a = 1, b = 1;
    CHECK(rp_gemm_bf16(bw[1], 0, 0, 2, 2, 0, &a, 1, &b, 2, 1, c, 2) == RP_OK && c[0] == 1 && c[3] == 4);
    CHECK(rp_gemm_bf16(bw[1], 0, 0, 2, 2, 0, &a, 1, &b, 2, 0, c, 2) == RP_OK && c[0] == 0 && c[3] == 0);
    CHECK(rp_gemm_bf16(bw[1], 0, 0, (int64_t)1 << 32, 2, 2, &a, 1, &b, 2, 0, c, 2) == RP_ERR_RANGE);
    for (int t = 0; t < 3; t++) { rp_bwd_free(bw[t]); rp_pool_free(pool[t]); }
    return checks_done("gemm_bf16");
}
