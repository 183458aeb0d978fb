/* backward.h: backward (gradient) kernels of the engine's ops, as plain functions on float pointers and
 * shapes, in two tables with one signature each: rp_bwd_ref (plain loops, double accumulators: what a
 * backward means) and rp_bwd_cpu (OpenBLAS sgemm split over the thread pool where it matters). Each
 * kernel is the adjoint of the forward op of the same name in ops_ref.c (same layouts, same arguments).
 * Invariants: every gradient output is ACCUMULATED into (+=), so a tensor used twice (a residual, a
 * shared embedding) gets the sum, and the caller zeroes gradients once per step; the inputs the forward
 * read are read again, never written; a NULL gradient pointer means "not wanted" and is skipped; the cpu
 * kernels allocate only per-thread scratch grown on first need (rp_bwd), so a training step loop
 * allocates nothing after the first step. Tests: tests/test_backward.c (finite differences, per op). */
#ifndef RP_BACKWARD_H
#define RP_BACKWARD_H
#include <stddef.h>
#include <stdint.h>
#include "tensor/dtype.h"
#include "tensor/pool.h"
#include "util/err.h"

/* The backward context: the thread pool (NULL: the caller's thread only) and per-thread scratch. */
typedef struct rp_bwd rp_bwd;
/* A backward context over pool (borrowed, may be NULL); free with rp_bwd_free. */
rp_status rp_bwd_new(rp_pool *pool, rp_bwd **out);
/* Release a backward context and its scratch. NULL is fine. */
void rp_bwd_free(rp_bwd *b);
/* Per-thread scratch of at least nbytes for thread `thread` (NULL when out of memory); reused across calls. */
void *rp_bwd_scratch(rp_bwd *b, int thread, size_t nbytes);
/* A buffer of at least nbytes shared by the threads of one kernel call (NULL when out of memory). */
void *rp_bwd_shared(rp_bwd *b, size_t nbytes);
/* The pool of a backward context (may be NULL). */
rp_pool *rp_bwd_pool(const rp_bwd *b);
/* Run fn over n_tasks tasks on b's pool, or on the caller's thread when b has none. */
void rp_bwd_run(rp_bwd *b, rp_pool_fn fn, void *ctx, int n_tasks);
/* Threads of b's pool (1 without a pool). */
int rp_bwd_threads(const rp_bwd *b);
/* Let b's F32 training matmuls (y = x·Wᵀ, dx, dW) round their inputs to bf16 and sum in fp32 on a bf16 unit
 * (gemm_bf16.h) where one is present (on != 0), or keep them fp32 (0, the default). */
void rp_bwd_set_bf16(rp_bwd *b, int on);
/* Whether b's F32 matmuls take the bf16 route (set, and a bf16 unit present). */
int rp_bwd_bf16(const rp_bwd *b);
/* [*a, *z) is part i of n of [0, N), its length rounded up to a multiple of align. */
void rp_bwd_split(int64_t N, int i, int n, int64_t align, int64_t *a, int64_t *z);

/* The backward op table. Shapes use llm.c's letters; y = forward output, dy = its gradient. */
typedef struct rp_bwd_ops {
    const char *name;
    /* y[M,N] = x[M,K] · W[N,K]ᵀ (+ b[N]): dx += dy·W, dw += dyᵀ·x (F32 weights only; quantized weights are
     * constants, so dw must be NULL for them), db += column sums of dy. */
    rp_status (*matmul)(rp_bwd *b, float *dx, float *dw, float *db, const float *dy, const float *x, int64_t M,
                        int64_t K, const void *w, rp_dtype wt, size_t w_row_bytes, int64_t N);
    /* out[T,C] = table[ids[t]] (F32 table): dtable[ids[t]] += dout[t]. */
    rp_status (*embed)(rp_bwd *b, float *dtable, int64_t V, int64_t C, const int32_t *ids, int64_t T, const float *dout);
    /* out = x / rms(x) * w per row of C: dx, dw (either may be NULL). */
    rp_status (*rmsnorm)(rp_bwd *b, float *dx, float *dw, const float *dout, const float *x, const float *w, int64_t T,
                         int64_t C, float eps);
    /* RoPE is in place on x[T,H,D]; its backward rotates the gradient dx back in place (the inverse rotation). */
    rp_status (*rope)(rp_bwd *b, float *dx, int64_t T, int H, int D, int rope_dim, const int32_t *pos, float base, int neox);
    /* Causal grouped-query attention (forward: rp_ref_attention): q[T,H,D]; k, v rows of kv_stride floats for
     * positions [0, pos0+T), kv head g at g*D; out[T,H,D]. dk, dv have k's layout. */
    rp_status (*attention)(rp_bwd *b, float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                           const float *v, int64_t T, int64_t pos0, int H, int Hkv, int D, int64_t kv_stride, float scale);
    /* out = silu(gate) * up (up may be NULL: out = silu(gate)). */
    rp_status (*swiglu)(rp_bwd *b, float *dgate, float *dup, const float *dout, const float *gate, const float *up, int64_t n);
    /* y = softmax(x) per row of n: dx += y ∘ (dy − ⟨dy, y⟩). */
    rp_status (*softmax)(rp_bwd *b, float *dx, const float *dy, const float *y, int64_t rows, int64_t n);
    /* y = log_softmax(x) per row: dx += dy − exp(y) · Σ dy. */
    rp_status (*log_softmax)(rp_bwd *b, float *dx, const float *dy, const float *y, int64_t rows, int64_t n);
    /* loss[r] = logsumexp(logits[r]) − logits[r][target[r]]: dlogits[r] += dloss[r] · mask[r] · (softmax − onehot).
     * dloss NULL means 1 for every row; mask NULL means every row scored (a masked row gets no gradient). */
    rp_status (*cross_entropy)(rp_bwd *b, float *dlogits, const float *logits, const int32_t *target, const float *dloss,
                               const uint8_t *mask, int64_t rows, int64_t n);
    /* out[i] = x[idx[i]] (rows of C): dx[idx[i]] += dout[i]. */
    rp_status (*gather_rows)(rp_bwd *b, float *dx, int64_t rows_x, int64_t C, const int32_t *idx, int64_t n, const float *dout);
    /* out[idx[i]] += weight[i] · x[i]: dx[i] += weight[i] · dout[idx[i]], dweight[i] += ⟨dout[idx[i]], x[i]⟩. */
    rp_status (*scatter_add_rows)(rp_bwd *b, float *dx, float *dweight, const float *dout, int64_t rows_out,
                                  const float *x, int64_t C, const int32_t *idx, const float *weight, int64_t n);
    /* Causal depthwise conv from a zero state (forward: conv1d_causal with state NULL): x, dout [T,C]; w [C,K]:
     * dx, dw, db (backward_ssm.c). */
    rp_status (*conv1d_causal)(rp_bwd *b, float *dx, float *dw, float *db, const float *dout, const float *x,
                               int64_t T, int64_t C, const float *w, int K);
    /* Selective scan from a zero state (forward: selective_scan with h zeros): u, dt, dy [T,D]; A [D,N];
     * B, Cm [T,N]; Dp [D] or NULL: du, ddt, dA, dB, dC, dDp (backward_ssm.c; cpu: ssm.c). ckpt: NULL
     * (recomputed), or what the same backend's forward saved there with these inputs (backend.h). */
    rp_status (*selective_scan)(rp_bwd *b, float *du, float *ddt, float *dA, float *dB, float *dC, float *dDp,
                                const float *dy, const float *u, const float *dt, const float *A, const float *B,
                                const float *Cm, const float *Dp, int64_t T, int64_t D, int64_t N, const float *ckpt);
} rp_bwd_ops;

/* Dequantizes columns [c0, c0+n) (block-aligned) of row r of the weight w into y. */
typedef void (*rp_row_deq_fn)(const void *w, int64_t r, int64_t c0, int64_t n, float *y);
/* A matmul with a weight W[rows, cols] that exists only as rows to dequantize: forward (backward = 0)
 * out[M, rows] = in[M, cols] · Wᵀ (overwritten); backward (backward = 1) out[M, cols] += in[M, rows] · W.
 * Tiles of weight rows go through per-thread scratch into sgemm, split over b's pool so that each weight
 * is dequantized once; align is the weight's block size. b is required (its pool may be NULL). */
rp_status rp_cpu_matmul_tiled(rp_bwd *b, float *out, const float *in, int64_t M, int64_t rows, int64_t cols,
                              int64_t align, rp_row_deq_fn deq, const void *w, int backward);
/* The training forward matmul y[M,N] = x[M,K] · Wᵀ for F32 (sgemm over the pool) and the dequantizable
 * GGUF types (rp_cpu_matmul_tiled); the adjoint of rp_bwd_cpu.matmul. */
rp_status rp_cpu_matmul_forward(rp_bwd *b, float *y, const float *x, int64_t M, int64_t K, const void *w, rp_dtype wt,
                                size_t w_row_bytes, int64_t N);

/* The training forward of causal GQA attention (rp_ref_attention's meaning and layouts): one head per task
 * with sgemm, scores in per-thread scratch, so a training step allocates nothing. */
rp_status rp_cpu_attention_forward(rp_bwd *b, float *out, const float *q, const float *k, const float *v, int64_t T,
                                   int64_t pos0, int H, int Hkv, int D, int64_t kv_stride, float scale);
/* The same over nseq sequences laid one after another (sequence s: q, out from row s·T, k, v from row s·(pos0 + T)),
 * all (sequence, head) pairs in one pool run: one barrier instead of nseq, and B·H tasks to balance. */
rp_status rp_cpu_attention_forward_seqs(rp_bwd *b, int nseq, float *out, const float *q, const float *k, const float *v,
                                        int64_t T, int64_t pos0, int H, int Hkv, int D, int64_t kv_stride, float scale);
/* rp_bwd_cpu.attention over nseq sequences laid out as in rp_cpu_attention_forward_seqs, in one pool run. */
rp_status rp_cpu_attention_backward_seqs(rp_bwd *b, int nseq, float *dq, float *dk, float *dv, const float *dout,
                                         const float *q, const float *k, const float *v, int64_t T, int64_t pos0, int H,
                                         int Hkv, int D, int64_t kv_stride, float scale);

/* Row-wise training kernels split over b's pool (rows_cpu.c), each meaning what its rp_ref_* namesake does. */
rp_status rp_cpu_rmsnorm_forward(rp_bwd *b, float *out, const float *x, const float *w, int64_t T, int64_t C, float eps);
rp_status rp_cpu_swiglu_forward(rp_bwd *b, float *out, const float *gate, const float *up, int64_t n);
/* cs, sn [npos, rope_dim/2]: cos and sin of position p times base^(-2i/rope_dim), for rp_cpu_rope_apply. */
rp_status rp_rope_table(float *cs, float *sn, int64_t npos, int rope_dim, float base);
/* RoPE in place on x[T, H, D] at positions pos (each in [0, npos)) from the table; inverse rotates back (backward). */
rp_status rp_cpu_rope_apply(rp_bwd *b, float *x, int64_t T, int H, int D, int rope_dim, const int32_t *pos, const float *cs,
                            const float *sn, int64_t npos, int neox, int inverse);
/* loss[r] per row (0 where mask[r] == 0); lse (may be NULL) keeps each scored row's log-sum-exp. */
rp_status rp_cpu_cross_entropy_forward(rp_bwd *b, float *loss, float *lse, const float *logits, const int32_t *target,
                                       const uint8_t *mask, int64_t rows, int64_t n);
/* In place: logits[r] := dloss[r]·(softmax(logits[r]) − onehot(target[r])) (dloss NULL: 1; masked rows 0). */
rp_status rp_cpu_cross_entropy_grad(rp_bwd *b, float *logits, const float *lse, const int32_t *target, const float *dloss,
                                    const uint8_t *mask, int64_t rows, int64_t n);
rp_status rp_cpu_rmsnorm_backward(rp_bwd *b, float *dx, float *dw, const float *dout, const float *x, const float *w,
                                  int64_t T, int64_t C, float eps);
rp_status rp_cpu_rope_backward(rp_bwd *b, float *dx, int64_t T, int H, int D, int rope_dim, const int32_t *pos, float base,
                               int neox);
rp_status rp_cpu_swiglu_backward(rp_bwd *b, float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                                 int64_t n);
rp_status rp_cpu_cross_entropy_backward(rp_bwd *b, float *dlogits, const float *logits, const int32_t *target,
                                        const float *dloss, const uint8_t *mask, int64_t rows, int64_t n);

extern const rp_bwd_ops rp_bwd_ref;
extern const rp_bwd_ops rp_bwd_cpu;

/* Reference kernels the cpu table reuses where a plain loop is already memory-bound. */
rp_status rp_ref_embed_backward(rp_bwd *b, float *dtable, int64_t V, int64_t C, const int32_t *ids, int64_t T,
                                const float *dout);
rp_status rp_ref_rmsnorm_backward(rp_bwd *b, float *dx, float *dw, const float *dout, const float *x, const float *w,
                                  int64_t T, int64_t C, float eps);
rp_status rp_ref_rope_backward(rp_bwd *b, float *dx, int64_t T, int H, int D, int rope_dim, const int32_t *pos,
                               float base, int neox);
rp_status rp_ref_swiglu_backward(rp_bwd *b, float *dgate, float *dup, const float *dout, const float *gate,
                                 const float *up, int64_t n);
rp_status rp_ref_softmax_backward(rp_bwd *b, float *dx, const float *dy, const float *y, int64_t rows, int64_t n);
rp_status rp_ref_log_softmax_backward(rp_bwd *b, float *dx, const float *dy, const float *y, int64_t rows, int64_t n);
rp_status rp_ref_cross_entropy_backward(rp_bwd *b, float *dlogits, const float *logits, const int32_t *target,
                                        const float *dloss, const uint8_t *mask, int64_t rows, int64_t n);
rp_status rp_ref_gather_rows_backward(rp_bwd *b, float *dx, int64_t rows_x, int64_t C, const int32_t *idx, int64_t n,
                                      const float *dout);
/* The Mamba sequence ops' kernels (backward_ssm.c; the cpu scan backward is rp_ssm_scan_backward, ssm.h). */
rp_status rp_ref_conv1d_causal_backward(rp_bwd *b, float *dx, float *dw, float *db, const float *dout, const float *x,
                                        int64_t T, int64_t C, const float *w, int K);
rp_status rp_cpu_conv1d_causal_backward(rp_bwd *b, float *dx, float *dw, float *db, const float *dout, const float *x,
                                        int64_t T, int64_t C, const float *w, int K);
rp_status rp_ref_selective_scan_backward(rp_bwd *b, float *du, float *ddt, float *dA, float *dB, float *dC, float *dDp,
                                         const float *dy, const float *u, const float *dt, const float *A,
                                         const float *B, const float *Cm, const float *Dp, int64_t T, int64_t D,
                                         int64_t N, const float *ckpt);
rp_status rp_ref_scatter_add_rows_backward(rp_bwd *b, float *dx, float *dweight, const float *dout, int64_t rows_out,
                                           const float *x, int64_t C, const int32_t *idx, const float *weight, int64_t n);

#endif
