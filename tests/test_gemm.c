/* test_gemm.c: rp_gemm_f32 (the training matmuls' own fp32 product) against rp_gemm_f32_ref, the plain triple
 * loop in double, on odd shapes: M, N, K not multiples of the 14 × 32 blocking, K = 1, K longer than one
 * k chunk, M taller than one and than four packed blocks (op(B) then packed once, shared), all four transpose combinations, overwrite and accumulate,
 * leading dimensions wider than the matrix. Tolerance: the float-summation bound, per element
 * |fast − ref| <= (K + 2) · 2⁻²³ · (|C₀| + Σₖ |a_ik · b_kj|), which a wrong index or a lost k breaks by
 * orders of magnitude. Also: columns past N and rows' padding are never written; an overwrite ignores NaN
 * already in C; 1, 2 and 3 threads give bit-identical results (the training resume relies on it). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "tensor/gemm_f32.h"
#include "test_vectors.h"

static void fill(float *p, int64_t n) { for (int64_t i = 0; i < n; i++) p[i] = frand(); }

/* One shape: fast on pools of 1..3 threads vs the reference; returns the worst error in units of the bound. */
static double one(rp_bwd *const *bw, int ta, int tb, int64_t M, int64_t N, int64_t K, int acc) {
    int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 7;
    int64_t na = (ta ? K : M) * lda, nb = (tb ? N : K) * ldb, nc = M * ldc;
    float *A = malloc((size_t)na * 4), *B = malloc((size_t)nb * 4), *C0 = malloc((size_t)nc * 4), *R = malloc((size_t)nc * 4);
    float *F[3];
    fill(A, na); fill(B, nb); fill(C0, nc);
    memcpy(R, C0, (size_t)nc * 4);
    rp_gemm_f32_ref(ta, tb, M, N, K, A, lda, B, ldb, acc, R, ldc);
    for (int t = 0; t < 3; t++) {
        F[t] = malloc((size_t)nc * 4);
        memcpy(F[t], C0, (size_t)nc * 4);
        if (!acc) for (int64_t i = 0; i < M; i++) for (int64_t j = 0; j < N; j++) F[t][i * ldc + j] = NAN;
        CHECK(rp_gemm_f32(bw[t], ta, tb, M, N, K, A, lda, B, ldb, acc, F[t], ldc) == RP_OK);
    }
    double worst = 0;
    int pad_ok = 1, same = 1;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < ldc; j++) {
            int64_t e = i * ldc + j;
            if (j >= N) { pad_ok &= F[0][e] == C0[e] && F[1][e] == C0[e] && F[2][e] == C0[e]; continue; }
            double mag = acc ? fabs(C0[e]) : 0;
            for (int64_t k = 0; k < K; k++)
                mag += fabs((double)(ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]));
            double bound = (double)(K + 2) * 0x1p-23 * mag + 1e-30, err = fabs((double)F[0][e] - R[e]);
            if (!(err <= bound)) worst = INFINITY;
            else if (err / bound > worst) worst = err / bound;
            same &= !memcmp(&F[0][e], &F[1][e], 4) && !memcmp(&F[0][e], &F[2][e], 4);
        }
    CHECK_MSG(worst <= 1.0, "ta %d tb %d M %lld N %lld K %lld acc %d: worst error %.3g of the bound", ta, tb, (long long)M,
              (long long)N, (long long)K, acc, worst);
    CHECK_MSG(pad_ok, "ta %d tb %d M %lld N %lld K %lld: wrote past column N", ta, tb, (long long)M, (long long)N, (long long)K);
    CHECK_MSG(same, "ta %d tb %d M %lld N %lld K %lld: 1, 2 and 3 threads differ", ta, tb, (long long)M, (long long)N, (long long)K);
    free(A); free(B); free(C0); free(R);
    for (int t = 0; t < 3; t++) free(F[t]);
    return worst;
}

int main(void) {
    rp_pool *pool[3] = { NULL, NULL, NULL };
    rp_bwd *bw[3] = { NULL, NULL, NULL };
    for (int t = 0; t < 3; t++) CHECK(rp_pool_new(t + 1, &pool[t]) == RP_OK && rp_bwd_new(pool[t], &bw[t]) == RP_OK);
    static const int64_t shapes[][3] = {
        { 1, 1, 1 }, { 13, 31, 1 }, { 14, 32, 2 }, { 15, 33, 7 }, { 29, 65, 300 }, { 100, 17, 513 },
        { 530, 40, 20 }, { 3, 200, 64 }, { 57, 96, 576 }, { 28, 64, 1 }, { 2100, 40, 300 },
    };
    double worst = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int v = 0; v < 8; v++) {
            double w = one(bw, v & 1, (v >> 1) & 1, shapes[s][0], shapes[s][1], shapes[s][2], v >> 2);
            if (w > worst) worst = w;
        }
    printf("# worst error %.3g of the float-summation bound over %zu shapes x 8 variants\n", worst, sizeof shapes / sizeof *shapes);
    /* K = 0: an empty sum overwrites C with zeros, or leaves it */
    float c[4] = { 1, 2, 3, 4 }, a = 1, b = 1;
    CHECK(rp_gemm_f32(bw[1], 0, 0, 2, 2, 0, &a, 1, &b, 2, 1, c, 2) == RP_OK && c[0] == 1 && c[3] == 4);
    CHECK(rp_gemm_f32(bw[1], 0, 0, 2, 2, 0, &a, 1, &b, 2, 0, c, 2) == RP_OK && c[0] == 0 && c[3] == 0);
    CHECK(rp_gemm_f32(bw[1], 0, 0, (int64_t)1 << 32, 2, 2, &a, 1, &b, 2, 0, c, 2) == RP_ERR_RANGE);
    for (int t = 0; t < 3; t++) { rp_bwd_free(bw[t]); rp_pool_free(pool[t]); }
    return checks_done("gemm");
}
