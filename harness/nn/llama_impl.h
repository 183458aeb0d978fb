/* llama_impl.h: the inside of rp_model and rp_session, shared by llama.c, session.c and the adapters in nn/.
 * Not for other modules: they use llama.h. */
#ifndef RP_NN_LLAMA_IMPL_H
#define RP_NN_LLAMA_IMPL_H
#include "nn/llama.h"

typedef struct rp_layer {
    const float *attn_norm, *ffn_norm;                 /* [C] f32 */
    const rp_weight *wq, *wk, *wv, *wo;                /* [C,C] [Hkv·D,C] [Hkv·D,C] [C,C] */
    const rp_weight *w_gate, *w_up, *w_down;           /* [F,C] [F,C] [C,F] */
} rp_layer;

struct rp_model {
    rp_llama_config cfg;
    const rp_model_file *file;
    rp_model_file *owned_file;      /* set by rp_model_load */
    rp_tokenizer *tok;
    rp_backend *be;
    rp_layer *layers;               /* [L] */
    const rp_weight *tok_embd, *output;   /* output == tok_embd when tied */
    const float *out_norm;
    unsigned char *skip;            /* [L] */
    float **owned_norms;
    int n_owned_norms;
    rp_session *lm_session;         /* the session rp_model_as_lm scores with (lazily created) */
};

struct rp_session {
    rp_model *m;
    int n_ctx, n_batch, n_logits;
    int64_t n_past;
    int32_t *cached;                /* [n_ctx] the tokens whose keys/values the cache holds */
    float *kc, *vc;                 /* [L, n_ctx, Hkv·D] */
    float *x, *xb, *xb2, *q, *att, *hb, *hb2;   /* [n_batch, C] x3, [n_batch, C] x2, [n_batch, F] x2 */
    float *logits;                  /* [n_logits, V] */
    float *loss;                    /* [n_logits] */
    int32_t *pos;                   /* [n_batch] */
    const struct rp_pack *pack;     /* set only during a packed forward (pack.c): positions and attention segments */
};

#endif
