/* train_impl.h: the trainer's internals shared by train_llama.c (model, step), train_linear.c (a linear
 * layer with its frozen or trainable base and optional LoRA adapter) and train_ckpt.c (checkpoints).
 * Not part of the public API. Every buffer here is allocated when the trainer is built (rp_trainer_new). */
#ifndef RP_NN_TRAIN_IMPL_H
#define RP_NN_TRAIN_IMPL_H
#include "nn/train_llama.h"
#include "tensor/backward.h"
#include "tensor/nf4.h"

#define TR_MAX_PARAMS 4096

/* A trainable tensor: values, gradient, AdamW moments, all of n floats. */
typedef struct tr_param { char name[80]; float *p, *g, *m, *v; int64_t n; int decay; } tr_param;

/* One linear layer y[M, out] = x[M, in] · Wᵀ (+ scale · dropout(x) · Aᵀ · Bᵀ). */
typedef struct tr_linear {
    int id;                        /* position among the model's linears (dropout stream) */
    int64_t in, out;
    rp_dtype wt;                   /* base weight: F32 (trainable when dw) or a GGUF type (frozen) */
    const void *w;
    size_t ldw;
    rp_nf4 *nf4;                   /* QLoRA: the base as NF4 (owned), w unused */
    float *dw;                     /* full fine-tuning: gradient of an F32 base */
    int r;                         /* LoRA rank (0: no adapter) */
    float scale, dropout;
    float *A, *B, *dA, *dB;        /* A[r, in], B[out, r] */
    float *xa;                     /* [BT, r] activations: scale · dropout(x) · Aᵀ */
    float *xd;                     /* [BT, in] dropout(x) (only when dropout > 0) */
} tr_linear;

typedef struct tr_layer {
    float *attn_norm, *ffn_norm, *d_attn_norm, *d_ffn_norm;   /* [C]; gradients NULL when frozen */
    tr_linear q, k, v, o, gate, up, down;
    /* activations [BT, ·] */
    float *x_in, *xn1, *qa, *ka, *va, *att, *x_mid, *xn2, *ga, *ua, *ha;
} tr_layer;

struct rp_trainer {
    rp_llama_config cfg;
    rp_train_opts o;
    rp_pool *pool;
    rp_bwd *bw;
    /* weights */
    float *tok_embd, *d_tok_embd;  /* f32 table [V, C] (full) or NULL with the frozen table below */
    const void *embd_q;            /* frozen table as the file has it */
    rp_dtype embd_t;
    size_t embd_ld;
    float *out_norm, *d_out_norm;
    tr_linear head;
    tr_layer *layers;
    /* planned activations and scratch */
    int32_t *pos;                  /* [BT] position of each row in its sequence */
    float *x_out, *xf, *logits, *row_lse, *row_loss, *row_dloss;   /* logits [BT, V] become their gradient in backward */
    float *rope_cos, *rope_sin;    /* [T, rope_dim/2] RoPE table of positions 0..T-1 */
    float *dres, *dxn, *dq, *dk, *dv, *datt, *dg, *du, *dh, *dxa, *dxd;
    double *seq_logp, *seq_dlogp;
    /* bookkeeping */
    tr_param params[TR_MAX_PARAMS];
    int n_params;
    void **allocs;
    int n_allocs, cap_allocs;
    int n_accum;                   /* forward_backward calls since the last update */
    int64_t step;                  /* optimizer steps taken */
    int training;                  /* dropout on (forward_backward) or off (eval) */
};

/* Zeroed 64-byte-aligned floats owned by the trainer (NULL when out of memory). */
float *tr_alloc(rp_trainer *tr, int64_t n);
/* Forward of a linear over M rows: y = x·Wᵀ (+ the adapter's term), saving what its backward needs. */
rp_status tr_linear_forward(rp_trainer *tr, tr_linear *l, const float *x, float *y, int64_t M);
/* Backward of a linear: dx += dy·W (+ the adapter's), dw / dA / dB += their gradients. */
rp_status tr_linear_backward(rp_trainer *tr, tr_linear *l, const float *dy, const float *x, float *dx, int64_t M);
/* Register a trainable tensor (values p, gradient g) and allocate its AdamW moments. */
rp_status tr_add_param(rp_trainer *tr, const char *name, float *p, float *g, int64_t n, int decay);
/* Plan a linear's adapter and activations for the trainer's method (rank 0: no adapter). */
rp_status tr_linear_plan(rp_trainer *tr, tr_linear *l, const char *name, int lora);
/* Whether a linear named like "blk.3.attn_q.weight" is a LoRA target of targets (a comma list); an unknown
 * name in the list is an error naming it. */
rp_status tr_lora_is_target(const char *targets, const char *kind, int *out);
/* A uniform 64-bit hash of (seed, a, b, c): the trainer's counter-based random numbers. */
uint64_t tr_hash(uint64_t seed, uint64_t a, uint64_t b, uint64_t c);

#endif
