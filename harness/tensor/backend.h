/* backend.h: the op table every compute backend implements (cpu now, cuda later) and the entry points
 * that dispatch through it. A backend owns its memory: buffers come from its alloc, host code moves bytes
 * in and out only through copy_from_host / copy_to_host (a memcpy on the CPU; a device copy elsewhere)
 * and waits with sync. Kernels take pointers into the backend's own buffers with explicit sizes
 * (row-major, densely packed rows unless a stride is given); the tensor-level checks live in ops.h.
 * Invariants: every op has an rp_op value and a name (rp_op_name), and RP_OP_COUNT counts them; an op a
 * backend lacks is a NULL slot (or supports_op says no for its dtypes), and calling it returns
 * RP_ERR_UNSUPPORTED naming the backend and the op (never a silent fallback or copy); the "ref" backend
 * holds the plain reference implementation of every op, which every backend is tested against, op by op
 * from the enum (tests/test_ops.c). Only backends with host_memory set may wrap host bytes (an mmapped
 * model file) as a buffer without copying.
 * Activations are f32; weights may be any dequantizable dtype. Shape letters: T tokens, C channels,
 * N output features, K reduced dimension, H heads, D head size, V vocabulary. */
#ifndef RP_BACKEND_H
#define RP_BACKEND_H
#include <stddef.h>
#include <stdint.h>
#include "tensor/dtype.h"
#include "tensor/pool.h"
#include "util/err.h"

typedef struct rp_backend rp_backend;

/* Every op of the table, in table order after the memory functions. Adding an op: a slot below, a value
 * here, its name in backend.c, a reference kernel in ops_ref.c and a case in tests/test_ops.c. */
typedef enum rp_op {
    RP_OP_MATMUL, RP_OP_MATMUL_MULTI, RP_OP_EMBED, RP_OP_RMSNORM, RP_OP_ROPE, RP_OP_ATTENTION, RP_OP_SWIGLU,
    RP_OP_ADD, RP_OP_SOFTMAX, RP_OP_LOG_SOFTMAX, RP_OP_CROSS_ENTROPY, RP_OP_ARGMAX, RP_OP_GATHER_ROWS,
    RP_OP_SCATTER_ADD_ROWS, RP_OP_CONV1D_CAUSAL, RP_OP_SELECTIVE_SCAN,
    RP_OP_COUNT
} rp_op;

/* One of several matmuls that share their input (matmul_multi): y[M,N] = x · W[N,K]ᵀ. wp, when not NULL, is
 * the same weight in the CPU decode layout (tensor/qdot.h rp_packed_*, same ldw), which backends may use
 * for calls of at most RP_MATMUL_PACKED_ROWS rows (decoding) and otherwise ignore. */
#define RP_MATMUL_MAX_PARTS 4
#define RP_MATMUL_PACKED_ROWS 16
typedef struct rp_matmul_part { float *y; const void *w; rp_dtype wt; size_t ldw; int64_t N; const void *wp; } rp_matmul_part;

/* The selective scan's checkpoints (its ckpt argument): the states every RP_SCAN_CKPT_STEPS steps, for
 * channels rounded up to a multiple of 16. */
#define RP_SCAN_CKPT_STEPS 16
static inline size_t rp_scan_ckpt_floats(int64_t T, int64_t D, int64_t N) {
    return (size_t)((T + RP_SCAN_CKPT_STEPS - 1) / RP_SCAN_CKPT_STEPS) * (size_t)((D + 15) / 16 * 16) * (size_t)N;
}

typedef struct rp_backend_ops {
    /* 1 when buffers are plain host memory (host bytes may be wrapped as buffers, copies are memcpy). */
    int host_memory;
    /* A buffer the backend computes on (zero-filled); NULL on failure. */
    void *(*alloc)(rp_backend *be, size_t nbytes);
    void (*free)(rp_backend *be, void *p);
    /* Copy nbytes between a host pointer and a buffer of this backend (offsets are the caller's). */
    rp_status (*copy_to_host)(rp_backend *be, void *host_dst, const void *src, size_t nbytes);
    rp_status (*copy_from_host)(rp_backend *be, void *dst, const void *host_src, size_t nbytes);
    /* Wait until every op issued so far has finished (a no-op on the CPU backends, which run synchronously). */
    rp_status (*sync)(rp_backend *be);
    /* Whether the backend runs op on operands of these dtypes (for matmul / matmul_multi / embed: the
     * weight dtype; other ops: f32); NULL means every non-NULL slot, f32 and every dequantizable dtype. */
    int (*supports_op)(const rp_backend *be, rp_op op, const rp_dtype *dtypes, int n_dtypes);
    /* y[M,N] = x[M,K] · W[N,K]ᵀ; W rows of dtype wt, w_row_bytes apart. */
    rp_status (*matmul)(rp_backend *be, float *y, const float *x, int64_t M, int64_t K,
                        const void *w, rp_dtype wt, size_t w_row_bytes, int64_t N);
    /* n (<= RP_MATMUL_MAX_PARTS) matmuls with the same x[M,K] in one call (one thread dispatch when decoding). */
    rp_status (*matmul_multi)(rp_backend *be, const float *x, int64_t M, int64_t K, const rp_matmul_part *parts, int n);
    /* out[T,C] = rows ids[t] of table[V,C] (any dequantizable dtype); an id outside [0, V) is RP_ERR_RANGE. */
    rp_status (*embed)(rp_backend *be, float *out, const void *table, rp_dtype dt, size_t row_bytes,
                       int64_t V, int64_t C, const int32_t *ids, int64_t T);
    /* out[T,C] = x / sqrt(mean(x²) + eps) * w (w may be NULL: no scale). out may equal x. */
    rp_status (*rmsnorm)(rp_backend *be, float *out, const float *x, const float *w, int64_t T, int64_t C, float eps);
    /* Rotary embedding in place on x[T, H·D] at positions pos[T]; the first rope_dim dims of each head rotate,
     * pairs (2i, 2i+1) when neox == 0, (i, i + rope_dim/2) when neox == 1; angle pos · base^(-2i/rope_dim). */
    rp_status (*rope)(rp_backend *be, float *x, int64_t T, int H, int D, int rope_dim, const int32_t *pos,
                      float base, int neox);
    /* Causal attention: query t (row t of q[T, H·D]) sits at position pos0 + t and attends to cache rows
     * 0 .. pos0 + t of k, v (rows kv_stride floats apart, head g at column g·D; H is a multiple of Hkv,
     * query head h reads kv head h / (H/Hkv)); out[T, H·D]; scores scaled by scale. */
    rp_status (*attention)(rp_backend *be, float *out, const float *q, const float *k, const float *v,
                           int64_t T, int64_t pos0, int H, int Hkv, int D, int64_t kv_stride, float scale);
    /* out[n] = silu(gate) · up; out may alias either input. up == NULL gives plain silu. */
    rp_status (*swiglu)(rp_backend *be, float *out, const float *gate, const float *up, int64_t n);
    /* y[n] = a + b (may alias). */
    rp_status (*add)(rp_backend *be, float *y, const float *a, const float *b, int64_t n);
    /* Row-wise softmax in place on x[rows, n]. */
    rp_status (*softmax)(rp_backend *be, float *x, int64_t rows, int64_t n);
    /* Row-wise log-softmax: out[rows, n] (may equal x). */
    rp_status (*log_softmax)(rp_backend *be, float *out, const float *x, int64_t rows, int64_t n);
    /* loss[r] = -log softmax(logits[r])[target[r]]; a target outside [0, n) is RP_ERR_RANGE. */
    rp_status (*cross_entropy)(rp_backend *be, float *loss, const float *logits, const int32_t *target,
                               int64_t rows, int64_t n);
    /* out[r] = the index of the largest x[r, :] (the first one on ties), r < rows. */
    rp_status (*argmax)(rp_backend *be, int32_t *out, const float *x, int64_t rows, int64_t n);
    /* out[i, :] = x[idx[i], :] for i < n (x has rows_x rows of C). */
    rp_status (*gather_rows)(rp_backend *be, float *out, const float *x, int64_t rows_x, int64_t C,
                             const int32_t *idx, int64_t n);
    /* out[idx[i], :] += (weight ? weight[i] : 1) · x[i, :] for i < n (out has rows_out rows of C). */
    rp_status (*scatter_add_rows)(rp_backend *be, float *out, int64_t rows_out, const float *x, int64_t C,
                                  const int32_t *idx, const float *weight, int64_t n);
    /* Causal depthwise conv: out[t,c] = b[c] + Σ_k w[c,k] · x[t-K+1+k, c], x before t = 0 taken from
     * state[c, K-1] (the previous K-1 inputs, oldest first; zeros when state is NULL); state is updated to
     * the last K-1 inputs when not NULL. x, out: [T, C]; w: [C, K]; b may be NULL. */
    rp_status (*conv1d_causal)(rp_backend *be, float *out, const float *x, int64_t T, int64_t C,
                               const float *w, const float *b, int K, float *state);
    /* Mamba selective scan over T steps for channels D and state size N:
     * h[d,n] = exp(dt[t,d] · A[d,n]) · h[d,n] + dt[t,d] · B[t,n] · u[t,d];  y[t,d] = Σ_n Cm[t,n] · h[d,n] + Dp[d] · u[t,d].
     * h[D,N] is the state, read and updated (zeros for a fresh sequence); Dp may be NULL. ckpt: NULL, or
     * rp_scan_ckpt_floats(T, D, N) floats where the forward of a training step saves what its backend's
     * backward (rp_bwd_ops.selective_scan, given the same pointer) reads back instead of recomputing it: the
     * cpu backend, the state at the start of every RP_SCAN_CKPT_STEPS steps; the others leave it unused. */
    rp_status (*selective_scan)(rp_backend *be, float *y, const float *u, const float *dt, const float *A,
                                const float *B, const float *Cm, const float *Dp, int64_t T, int64_t D,
                                int64_t N, float *h, float *ckpt);
} rp_backend_ops;

struct rp_backend {
    const char *name;          /* "cpu", "ref", "cuda" */
    const rp_backend_ops *ops;
    rp_pool *pool;             /* CPU backends: the threads kernels split work over */
    void *impl;                /* backend-private state (scratch buffers, device handles) */
};

/* The fast CPU backend (threads sized to the machine, SIMD, OpenBLAS); created on first use. */
rp_backend *rp_backend_cpu(void);
/* The plain reference CPU backend: single-threaded, obvious loops. */
rp_backend *rp_backend_ref(void);
/* The backend to use by default: "ref" when REPRO_REFERENCE=1 (forces the reference path), else "cpu". */
rp_backend *rp_backend_default(void);
/* A separate fast CPU backend with its own pool of n_threads (<= 0: the machine's cores), e.g. to compare
 * thread counts; free it with rp_backend_cpu_free. */
rp_status rp_backend_cpu_new(int n_threads, rp_backend **out);
void rp_backend_cpu_free(rp_backend *be);
/* Backend by name ("cpu", "ref", "cuda"); NULL when unknown or unavailable (rp_backend_open says why). */
rp_backend *rp_backend_by_name(const char *name);
/* Backend by name, or an error naming the valid names or why the backend cannot start (no GPU, no CUDA). */
rp_status rp_backend_open(const char *name, rp_backend **out);

/* The op's name as written in the table ("matmul", "rmsnorm"); "?" outside [0, RP_OP_COUNT). */
const char *rp_op_name(rp_op op);
/* Whether be runs op on operands of dtypes (n of them; see supports_op above). */
int rp_backend_supports(const rp_backend *be, rp_op op, const rp_dtype *dtypes, int n_dtypes);
/* RP_OK when be runs op on those dtypes, else RP_ERR_UNSUPPORTED naming the backend, the op and the dtype. */
rp_status rp_backend_require(const rp_backend *be, rp_op op, const rp_dtype *dtypes, int n_dtypes);
/* Host <-> backend copies and sync through the table (memcpy on the CPU backends). */
rp_status rp_backend_copy_to_host(rp_backend *be, void *host_dst, const void *src, size_t nbytes);
rp_status rp_backend_copy_from_host(rp_backend *be, void *dst, const void *host_src, size_t nbytes);
rp_status rp_backend_sync(rp_backend *be);

/* Dispatch helpers: call the op or fail with RP_ERR_UNSUPPORTED "backend X lacks op Y". */
#define RP_BACKEND_CALL(be, op, ...) \
    ((be)->ops->op ? (be)->ops->op((be), __VA_ARGS__) : rp_backend_lacks((be), #op))
/* The error for a missing op. */
rp_status rp_backend_lacks(const rp_backend *be, const char *op);

#endif
