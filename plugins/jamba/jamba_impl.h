/* jamba_impl.h: the model's and cache's insides, shared by jamba_model.c (allocation, initialisation)
 * and jamba_forward.c (forward, scoring, generation). Internal to the plugin.
 * Shapes (row-major, [out, in] for linears as in the checkpoints): see rp_jamba_walk. ff_n is the number
 * of feed-forward networks of the layer (n_experts for MoE, else 1). */
#ifndef RP_JAMBA_IMPL_H
#define RP_JAMBA_IMPL_H
#include "plugins/jamba/jamba.h"

typedef struct jamba_layer {
    int attn, moe, ff_n;
    float *in_norm, *ff_norm;                          /* [d] */
    float *wq, *wk, *wv, *wo;                          /* attention */
    float *in_proj, *conv_w, *conv_b, *x_proj, *dt_w, *dt_b, *A_log, *Dskip, *out_proj, *dt_norm, *b_norm, *c_norm;
    float *router;                                     /* [E, d] */
    float **gate, **up, **down;                        /* ff_n each: [F, d], [F, d], [d, F] */
} jamba_layer;

typedef struct jamba_alloc { float *p; int64_t n; } jamba_alloc;

/* An attention-map request (rp_jamba_attention_maps): while the model's cap points at one, the forward
 * writes layer `layer`'s probabilities for the query positions qpos[nq] into out [nq, n_head, n] (zeros
 * past each query); p is n doubles of work space. */
typedef struct jamba_capture { int layer, nq; int64_t n; const int *qpos; float *out; double *p; } jamba_capture;

struct rp_jamba_model {
    rp_jamba_config cfg;
    jamba_capture *cap;                                /* NULL except inside rp_jamba_attention_maps */
    rp_jamba_layer_times *times;                       /* NULL unless a benchmark times the layer kinds */
    rp_backend *be;                                    /* borrowed: the op table the forward runs on */
    jamba_layer *layers;
    float *embed, *final_norm, *lm_head;               /* lm_head == embed when tied */
    jamba_alloc *allocs;                               /* every parameter buffer, for counting and freeing */
    int n_allocs, cap_allocs;
    int64_t n_params;
};

/* Per-forward working memory, grown (never shrunk) to the largest T seen. */
typedef struct jamba_scratch {
    int T;
    float *h, *u, *mix, *q, *att, *scores, *kb, *vb;   /* kb, vb: new K/V rows before they go to their caches */
    float *xz, *x, *z, *xc, *dbc, *dtr, *Bm, *Cm, *dt, *y, *A;
    float *rl, *probs, *w, *xg, *g, *up, *yo;
    int32_t *idx, *tok, *slot, *pos;
    int64_t *offsets;
} jamba_scratch;

struct rp_jamba_cache {
    const rp_jamba_model *m;
    int n_ctx, pos;
    float **k, **v, **conv, **ssm;                     /* per layer, NULL where the layer has none: k, v
                                                          [n_ctx, kv]; conv [d_inner, d_conv-1]; ssm [d_inner, N] */
    int64_t bytes;
    jamba_scratch s;
};

/* Free the scratch buffers (idempotent). */
void rp_jamba_scratch_free(jamba_scratch *s);

#endif
