/* gemm_bf16_ref.c: the plain reference of rp_gemm_bf16 (gemm_bf16.h): each input rounded to bf16 as the fast
 * kernels' packing does (round to nearest even), then a triple loop with a double accumulator per element. No
 * threads, no blocking, no allocation. */
#include "tensor/gemm_bf16.h"
#include "tensor/quant.h"

static double bf(float x) { return (double)rp_bf16_to_f32(rp_f32_to_bf16(x)); }

/* The reference bf16-input product: C (+)= op(A)·op(B) element by element. */
void rp_gemm_bf16_ref(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                      int64_t ldb, int accumulate, float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = accumulate ? (double)C[i * ldc + j] : 0.0;
            for (int64_t k = 0; k < K; k++) s += bf(ta ? A[k * lda + i] : A[i * lda + k]) * bf(tb ? B[j * ldb + k] : B[k * ldb + j]);
            C[i * ldc + j] = (float)s;
        }
}
