/* ops_ref.h: the plain reference kernels (the "ref" backend's op table). Other CPU backends reuse the ones
 * they have no faster version of; tests compare every faster kernel against these. Signatures: backend.h. */
#ifndef RP_OPS_REF_H
#define RP_OPS_REF_H
#include "tensor/backend.h"

extern const rp_backend_ops rp_ref_ops;

rp_status rp_ref_matmul(rp_backend *be, float *y, const float *x, int64_t M, int64_t K, const void *w, rp_dtype wt,
                        size_t w_row_bytes, int64_t N);
rp_status rp_ref_matmul_multi(rp_backend *be, const float *x, int64_t M, int64_t K, const rp_matmul_part *parts, int n);
rp_status rp_ref_embed(rp_backend *be, float *out, const void *table, rp_dtype dt, size_t row_bytes, int64_t V,
                       int64_t C, const int32_t *ids, int64_t T);
rp_status rp_ref_rmsnorm(rp_backend *be, float *out, const float *x, const float *w, int64_t T, int64_t C, float eps);
rp_status rp_ref_rope(rp_backend *be, float *x, int64_t T, int H, int D, int rope_dim, const int32_t *pos, float base,
                      int neox);
rp_status rp_ref_attention(rp_backend *be, float *out, const float *q, const float *k, const float *v, int64_t T,
                           int64_t pos0, int H, int Hkv, int D, int64_t kv_stride, float scale);
/* p[j] = exp(scale·⟨qv, key j⟩ − max) for the nk keys at kh + j·kv_stride (D floats each); returns Σ p[j]. */
double rp_ref_attention_weights(const float *qv, const float *kh, int64_t kv_stride, int D, int64_t nk, float scale,
                                double *p);
rp_status rp_ref_swiglu(rp_backend *be, float *out, const float *gate, const float *up, int64_t n);
rp_status rp_ref_add(rp_backend *be, float *y, const float *a, const float *b, int64_t n);
rp_status rp_ref_softmax(rp_backend *be, float *x, int64_t rows, int64_t n);
rp_status rp_ref_log_softmax(rp_backend *be, float *out, const float *x, int64_t rows, int64_t n);
rp_status rp_ref_cross_entropy(rp_backend *be, float *loss, const float *logits, const int32_t *target, int64_t rows,
                               int64_t n);
rp_status rp_ref_gather_rows(rp_backend *be, float *out, const float *x, int64_t rows_x, int64_t C, const int32_t *idx,
                             int64_t n);
rp_status rp_ref_scatter_add_rows(rp_backend *be, float *out, int64_t rows_out, const float *x, int64_t C,
                                  const int32_t *idx, const float *weight, int64_t n);
rp_status rp_ref_conv1d_causal(rp_backend *be, float *out, const float *x, int64_t T, int64_t C, const float *w,
                               const float *b, int K, float *state);
rp_status rp_ref_selective_scan(rp_backend *be, float *y, const float *u, const float *dt, const float *A,
                                const float *B, const float *Cm, const float *Dp, int64_t T, int64_t D, int64_t N,
                                float *h, float *ckpt);
rp_status rp_ref_argmax(rp_backend *be, int32_t *out, const float *x, int64_t rows, int64_t n);
/* Host memory for CPU backends (zero-filled, 64-byte aligned), its copies (memcpy) and sync (nothing to wait for). */
void *rp_cpu_alloc(rp_backend *be, size_t nbytes);
void rp_cpu_free(rp_backend *be, void *p);
rp_status rp_cpu_copy(rp_backend *be, void *dst, const void *src, size_t nbytes);
rp_status rp_cpu_sync(rp_backend *be);

#endif
