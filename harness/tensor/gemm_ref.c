/* gemm_ref.c: the plain reference of rp_gemm_f32 (gemm_f32.h): a triple loop with a double accumulator
 * per element, what the fast kernel is checked against. No threads, no blocking, no allocation. */
#include "tensor/gemm_f32.h"

/* The reference product: C (+)= op(A)·op(B) element by element. */
void rp_gemm_f32_ref(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                     int64_t ldb, int accumulate, float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = accumulate ? (double)C[i * ldc + j] : 0.0;
            for (int64_t k = 0; k < K; k++)
                s += (double)(ta ? A[k * lda + i] : A[i * lda + k]) * (double)(tb ? B[j * ldb + k] : B[k * ldb + j]);
            C[i * ldc + j] = (float)s;
        }
}
