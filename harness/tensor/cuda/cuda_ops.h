/* cuda_ops.h: the CUDA backend's entry points, implemented in the .cu files of harness/tensor/cuda/ (compiled by nvcc
 * when the build finds it, RP_CUDA=1) and wired into an op table by tensor/backend_cuda.c. Every op has
 * the signature of its slot in rp_backend_ops (backend.h): pointers are device buffers of this backend
 * (index arrays included), sizes are explicit, and an error is a status with a message, never an abort.
 * Invariants: every kernel runs on the legacy default stream, so ops issued from the host run in issue
 * order and a copy to the host (cudaMemcpy) waits for all of them; ops that validate indices (embed,
 * cross_entropy, gather_rows, scatter_add_rows) read a device error flag back, which synchronizes; the
 * only per-call memory is the backend's grow-only scratch (dequantized weight tiles), guarded by a mutex
 * so two host threads never share it at once. */
#ifndef RP_TENSOR_CUDA_OPS_H
#define RP_TENSOR_CUDA_OPS_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "tensor/backend.h"
#include "tensor/backward.h"

/* Start the runtime on the first visible GPU (REPRO_CUDA_DEVICE=i picks another, as CUDA_VISIBLE_DEVICES=i): RP_ERR_UNSUPPORTED with the
 * runtime's reason when there is none. Idempotent; the result of the first call is kept. */
rp_status rp_cuda_init(void);
/* The GPU's name, memory, compute capability and driver version as one line (after a successful init). */
const char *rp_cuda_device_desc(void);

void *rp_cuda_alloc(rp_backend *be, size_t nbytes);
void rp_cuda_free(rp_backend *be, void *p);
rp_status rp_cuda_copy_to_host(rp_backend *be, void *host_dst, const void *src, size_t nbytes);
rp_status rp_cuda_copy_from_host(rp_backend *be, void *dst, const void *host_src, size_t nbytes);
rp_status rp_cuda_sync(rp_backend *be);
/* The kernels' per-element dequantizer run on the host: y[0..n) = elements 0..n-1 of a row of dtype t (no GPU
 * needed), so tests check the device code's block layouts against rp_dequantize_row anywhere. */
rp_status rp_cuda_dequant_host(rp_dtype t, const void *row, float *y, int64_t n);
/* Weight dtypes of matmul / matmul_multi / embed: f32, f16, bf16, q4_0, q4_1, q8_0, q4_K, q6_K; others f32. */
int rp_cuda_supports_op(const rp_backend *be, rp_op op, const rp_dtype *dtypes, int n_dtypes);

rp_status rp_cuda_matmul(rp_backend *be, float *y, const float *x, int64_t M, int64_t K, const void *w, rp_dtype wt,
                         size_t w_row_bytes, int64_t N);
rp_status rp_cuda_matmul_multi(rp_backend *be, const float *x, int64_t M, int64_t K, const rp_matmul_part *parts, int n);
rp_status rp_cuda_embed(rp_backend *be, float *out, const void *table, rp_dtype dt, size_t row_bytes, int64_t V,
                        int64_t C, const int32_t *ids, int64_t T);
rp_status rp_cuda_rmsnorm(rp_backend *be, float *out, const float *x, const float *w, int64_t T, int64_t C, float eps);
rp_status rp_cuda_rope(rp_backend *be, float *x, int64_t T, int H, int D, int rope_dim, const int32_t *pos, float base,
                       int neox);
rp_status rp_cuda_attention(rp_backend *be, float *out, const float *q, const float *k, const float *v, int64_t T,
                            int64_t pos0, int H, int Hkv, int D, int64_t kv_stride, float scale);
rp_status rp_cuda_swiglu(rp_backend *be, float *out, const float *gate, const float *up, int64_t n);
rp_status rp_cuda_add(rp_backend *be, float *y, const float *a, const float *b, int64_t n);
rp_status rp_cuda_softmax(rp_backend *be, float *x, int64_t rows, int64_t n);
rp_status rp_cuda_log_softmax(rp_backend *be, float *out, const float *x, int64_t rows, int64_t n);
rp_status rp_cuda_cross_entropy(rp_backend *be, float *loss, const float *logits, const int32_t *target, int64_t rows,
                                int64_t n);
rp_status rp_cuda_argmax(rp_backend *be, int32_t *out, const float *x, int64_t rows, int64_t n);
rp_status rp_cuda_gather_rows(rp_backend *be, float *out, const float *x, int64_t rows_x, int64_t C, const int32_t *idx,
                              int64_t n);
rp_status rp_cuda_scatter_add_rows(rp_backend *be, float *out, int64_t rows_out, const float *x, int64_t C,
                                   const int32_t *idx, const float *weight, int64_t n);
rp_status rp_cuda_conv1d_causal(rp_backend *be, float *out, const float *x, int64_t T, int64_t C, const float *w,
                                const float *b, int K, float *state);
rp_status rp_cuda_selective_scan(rp_backend *be, float *y, const float *u, const float *dt, const float *A,
                                 const float *B, const float *Cm, const float *Dp, int64_t T, int64_t D, int64_t N,
                                 float *h, float *ckpt);

/* The backward table on the GPU (cuda_backward.cu): rp_bwd_ref's meaning with every pointer a buffer of this backend. */
extern const rp_bwd_ops rp_bwd_cuda;

#ifdef __cplusplus
}
#endif
#endif
