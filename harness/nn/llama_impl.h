/* llama_impl.h: the inside of rp_model and rp_session, shared by llama.c, session.c and generate.c.
 * Not for other modules: they use llama.h.
 * Every weight and every activation is an rp_tensor (tensor/tensor.h) on a storage of the model's
 * backend: the views are plain structs (no reference of their own); the model's `storages` and the
 * session's `buf` hold the references and outlive them. */
#ifndef RP_NN_LLAMA_IMPL_H
#define RP_NN_LLAMA_IMPL_H
#include "nn/llama.h"
#include "tensor/tensor.h"

typedef struct rp_layer {
    rp_tensor attn_norm, ffn_norm;                     /* [C] f32 */
    rp_tensor wq, wk, wv, wo;                          /* [C,C] [Hkv·D,C] [Hkv·D,C] [C,C] */
    rp_tensor w_gate, w_up, w_down;                    /* [F,C] [F,C] [C,F] */
    /* the same weights in the CPU decode layout (tensor/qdot.h rp_packed_*), made by rp_model_decode_layout
     * when decoding first needs them; NULL until then and when none */
    const void *pq, *pk, *pv, *po, *p_gate, *p_up, *p_down;
} rp_layer;

struct rp_model {
    rp_llama_config cfg;
    const rp_model_file *file;
    rp_model_file *owned_file;      /* set by rp_model_load */
    rp_tokenizer *tok;
    rp_backend *be;
    rp_layer *layers;               /* [L] */
    rp_tensor tok_embd, output;     /* [V,C] each; output is tok_embd's view when tied */
    rp_tensor out_norm;             /* [C] f32 */
    const void *p_output;           /* output (or tied tok_embd) in the decode layout, or NULL */
    unsigned char *skip;            /* [L] */
    rp_storage **storages;          /* the buffers the views above live in: wrapped file bytes, norms */
    int n_storages, cap_storages;
    rp_session *lm_session;         /* rp_model_scoring_session (lazily created) */
    int packed_done;                /* rp_model_decode_layout has run (the p* fields are final) */
    size_t packed_bytes;            /* bytes of the decode-layout copies */
};

/* Build the decode-layout copies of the matmul weights once (a no-op afterwards, and where the backend or
 * the dtypes have no such layout): called by the forward pass before its first few-row matmul, so loading
 * for scoring, evaluation or training does not pay the copy. Not thread-safe (a model's forward calls run
 * on one thread at a time). */
rp_status rp_model_decode_layout(rp_model *m);

struct rp_session {
    rp_model *m;
    int n_ctx, n_batch, n_logits;
    int64_t n_past;
    int32_t *cached;                /* host [n_ctx]: the tokens whose keys/values the cache holds */
    rp_storage *buf;                /* one backend buffer holding every tensor below */
    rp_tensor kc, vc;               /* [L, n_ctx, Hkv·D] */
    rp_tensor x, xb, xb2, q, att;   /* [n_batch, C] */
    rp_tensor hb, hb2;              /* [n_batch, F] */
    rp_tensor logits;               /* [n_logits, V]: rows of the last forward call */
    rp_tensor loss;                 /* [n_logits] f32 */
    rp_tensor ids, pos;             /* [n_batch] i32: the piece's tokens and positions */
    rp_tensor tgt, best;            /* [n_logits] i32: scoring targets, argmax per row */
    int64_t logit_rows;             /* rows of logits the last forward call wrote (0, 1 or T) */
    float *host_loss;               /* host [n_logits] */
    int32_t *host_best;             /* host [n_logits] */
    float *host_logits;             /* host [V]: what generation samples from */
    int32_t *host_pos;              /* host [n_batch]: positions before they are copied in */
    const struct rp_pack *pack;     /* set only during a packed forward (pack.c): positions and attention segments */
    rp_session *const *seqs;        /* set only during rp_session_step: row t belongs to seqs[t] (its own cache) */
};

#endif
