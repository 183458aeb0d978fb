/* train_merge.c: a trained model as dense f32 weights, LoRA adapters merged in: W' = W + (alpha/r)·B·A, the
 * base dequantized from the file's type or from NF4 (QLoRA). rp_trainer_export hands every weight of the model
 * (GGUF names and shapes: token_embd, the norms, the seven linears of each block, output when untied) to a
 * sink one at a time, which is the seam a GGUF writer (harness/model/gguf_write.c) plugs into; nothing here
 * writes files. Dropout is a training-time mask only, so the merged model is the adapter model in eval mode.
 * Invariants: the trainer is not modified; one weight's buffer (the largest linear or the embedding table)
 * is allocated per export call and freed before it returns. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn/train_impl.h"
#include "tensor/quant.h"

/* out[out, in] = the linear's base weight as f32, plus scale·B·A when it has an adapter. */
static rp_status merged_linear(const tr_linear *l, float *out) {
    for (int64_t r = 0; r < l->out; r++) {
        if (l->nf4) rp_nf4_dequantize(l->nf4, r, 0, l->in, out + r * l->in);
        else RP_TRY(rp_dequantize_row(l->wt, (const char *)l->w + (size_t)r * l->ldw, out + r * l->in, l->in));
    }
    if (l->r)   /* B[out, r] · A[r, in] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)l->out, (int)l->in, l->r, l->scale, l->B, l->r, l->A, (int)l->in,
                    1.0f, out, (int)l->in);
    return RP_OK;
}

/* The embedding table as f32 into out[V, C]. */
static rp_status embedding(const rp_trainer *tr, float *out) {
    int64_t V = tr->cfg.vocab, C = tr->cfg.dim;
    if (tr->tok_embd) { memcpy(out, tr->tok_embd, (size_t)(V * C) * sizeof *out); return RP_OK; }
    for (int64_t r = 0; r < V; r++) RP_TRY(rp_dequantize_row(tr->embd_t, (const char *)tr->embd_q + (size_t)r * tr->embd_ld, out + r * C, C));
    return RP_OK;
}

/* Every weight of the model, dense f32 with adapters merged, handed to sink in GGUF order and names. */
rp_status rp_trainer_export(const rp_trainer *tr, rp_weight_sink sink, void *ud) {
    const rp_llama_config *c = &tr->cfg;
    int64_t V = c->vocab, C = c->dim, big = V * C;
    for (int l = 0; l < c->n_layer; l++) {
        const tr_layer *y = &tr->layers[l];
        const tr_linear *ls[7] = { &y->q, &y->k, &y->v, &y->o, &y->gate, &y->up, &y->down };
        for (int i = 0; i < 7; i++) if (ls[i]->out * ls[i]->in > big) big = ls[i]->out * ls[i]->in;
    }
    float *buf = malloc((size_t)big * sizeof *buf);
    if (!buf) return rp_fail(RP_ERR_NOMEM, "export: out of memory for a %lld-float weight", (long long)big);
    static const char *kinds[7] = { "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down" };
    char name[96];
    rp_status st = embedding(tr, buf);
    if (st == RP_OK) st = sink(ud, "token_embd.weight", buf, V, C);
    for (int l = 0; l < c->n_layer && st == RP_OK; l++) {
        const tr_layer *y = &tr->layers[l];
        const tr_linear *ls[7] = { &y->q, &y->k, &y->v, &y->o, &y->gate, &y->up, &y->down };
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        st = sink(ud, name, y->attn_norm, 1, C);
        for (int i = 0; i < 7 && st == RP_OK; i++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, kinds[i]);
            st = merged_linear(ls[i], buf);
            if (st == RP_OK) st = sink(ud, name, buf, ls[i]->out, ls[i]->in);
        }
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        if (st == RP_OK) st = sink(ud, name, y->ffn_norm, 1, C);
    }
    if (st == RP_OK) st = sink(ud, "output_norm.weight", tr->out_norm, 1, C);
    if (st == RP_OK && !c->tied_embeddings) {
        st = merged_linear(&tr->head, buf);
        if (st == RP_OK) st = sink(ud, "output.weight", buf, V, C);
    }
    free(buf);
    return st;
}

/* The logits [B·T, V] of the last rp_trainer_eval. */
const float *rp_trainer_logits(const rp_trainer *tr) { return tr->logits; }
