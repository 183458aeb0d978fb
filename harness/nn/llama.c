/* llama.c: building a Llama-family model over a model file: the config, per-layer weights as tensors in
 * backend buffers (on host-memory backends the buffers wrap the mmapped file, nothing is copied), the
 * tokenizer, the layer-skip mask.
 * Invariants: every weight the forward pass reads was found with the shape the config implies
 * (rp_model_file_llama_config checks them) and a dtype the backend supports for matmul; norm vectors are
 * f32 tensors in small buffers of their own; m->storages holds every buffer a view points into. */
#include "nn/llama_impl.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tensor/qdot.h"
#include "tensor/quant.h"

static rp_status keep_storage(rp_model *m, rp_storage *st) {
    if (m->n_storages == m->cap_storages) {
        int cap = m->cap_storages ? 2 * m->cap_storages : 64;
        rp_storage **p = realloc(m->storages, (size_t)cap * sizeof *p);
        if (!p) { rp_storage_release(st); return rp_fail(RP_ERR_NOMEM, "model: out of memory"); }
        m->storages = p;
        m->cap_storages = cap;
    }
    m->storages[m->n_storages++] = st;
    return RP_OK;
}

/* A weight as a tensor on the backend: on host memory the file's bytes are wrapped (no copy), elsewhere
 * they are copied into a buffer of the backend. */
static rp_status get_weight(rp_model *m, const char *name, rp_tensor *out) {
    const rp_weight *w = rp_model_file_weight(m->file, name);
    if (!w) return rp_fail(RP_ERR_FORMAT, "%s: weight %s missing", rp_model_file_path(m->file), name);
    if (!rp_backend_supports(m->be, RP_OP_MATMUL, &w->dtype, 1))
        return rp_fail(RP_ERR_UNSUPPORTED, "%s: weight %s has dtype %s, which backend %s cannot compute with",
                       rp_model_file_path(m->file), name, rp_dtype_name(w->dtype), m->be->name);
    rp_storage *st;
    if (m->be->ops->host_memory) RP_TRY(rp_storage_wrap(m->be, (void *)w->data, w->nbytes, &st));
    else RP_TRY(rp_storage_new(m->be, w->nbytes, &st));
    RP_TRY(keep_storage(m, st));
    RP_TRY(rp_tensor_init_view(out, st, 0, w->dtype, w->ndim, w->shape));
    if (!m->be->ops->host_memory) RP_TRY(rp_tensor_copy_in(out, 0, w->data, w->nbytes));
    return RP_OK;
}

/* The weight t repacked into the CPU decode layout (qdot.h) in a host buffer of its own, when the backend
 * computes on host memory with VNNI and t's dtype has that layout; *out stays NULL otherwise (or with
 * REPRO_PACKED=0, to compare against the plain layout). Costs a second copy of the weight's bytes. */
static rp_status get_packed(rp_model *m, const rp_tensor *t, const void **out) {
    *out = NULL;
    const char *e = getenv("REPRO_PACKED");
    if (!m->be->ops->host_memory || !rp_packed_fast() || !rp_packed_supported(t->dtype) || t->ndim != 2 || (e && !strcmp(e, "0")))
        return RP_OK;
    size_t ldw = (size_t)t->stride[0];
    rp_storage *st;
    RP_TRY(rp_storage_new(m->be, ldw * (size_t)t->shape[0], &st));
    RP_TRY(keep_storage(m, st));
    RP_TRY(rp_packed_repack(t->dtype, rp_tensor_data(t), st->data, t->shape[0], t->shape[1], ldw));
    *out = st->data;
    m->packed_bytes += ldw * (size_t)t->shape[0];
    return RP_OK;
}

static pthread_mutex_t layout_mu = PTHREAD_MUTEX_INITIALIZER;   /* serializes decode-layout builds (rare: once per model) */

static rp_status build_layout(rp_model *m) {
    for (int l = 0; l < m->cfg.n_layer; l++) {
        rp_layer *L = &m->layers[l];
        const rp_tensor *ws[7] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down };
        const void **ps[7] = { &L->pq, &L->pk, &L->pv, &L->po, &L->p_gate, &L->p_up, &L->p_down };
        for (int i = 0; i < 7; i++) if (!*ps[i]) RP_TRY(get_packed(m, ws[i], ps[i]));   /* a failed call resumes where it stopped */
    }
    if (!m->p_output) RP_TRY(get_packed(m, &m->output, &m->p_output));
    return RP_OK;
}

/* Build every decode-layout copy once (see llama_impl.h); safe when several threads decode on one model: the
 * first builds under a lock, the others wait for it, and packed_done is published with release order. */
rp_status rp_model_decode_layout(rp_model *m) {
    if (__atomic_load_n(&m->packed_done, __ATOMIC_ACQUIRE)) return RP_OK;
    pthread_mutex_lock(&layout_mu);
    rp_status st = RP_OK;
    if (!__atomic_load_n(&m->packed_done, __ATOMIC_RELAXED) && (st = build_layout(m)) == RP_OK)
        __atomic_store_n(&m->packed_done, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&layout_mu);
    return st;
}

/* Bytes of the decode-layout copies built so far. */
size_t rp_model_decode_layout_bytes(const rp_model *m) { return m->packed_bytes; }

/* A norm vector as an f32 tensor in a buffer of its own (dequantized when the file stores another dtype). */
static rp_status get_norm(rp_model *m, const char *name, rp_tensor *out) {
    const rp_weight *w = rp_model_file_weight(m->file, name);
    if (!w) return rp_fail(RP_ERR_FORMAT, "%s: weight %s missing", rp_model_file_path(m->file), name);
    int64_t n = w->shape[w->ndim - 1];
    if (w->ndim != 1 || n != m->cfg.dim)
        return rp_fail(RP_ERR_FORMAT, "%s: norm %s has shape [%lld], [%d] expected", rp_model_file_path(m->file), name, (long long)n, m->cfg.dim);
    float *f = malloc((size_t)n * sizeof *f);
    if (!f) return rp_fail(RP_ERR_NOMEM, "model: out of memory");
    rp_status st = rp_dequantize_row(w->dtype, w->data, f, n);
    rp_storage *sto = NULL;
    if (st == RP_OK) st = rp_storage_new(m->be, (size_t)n * sizeof *f, &sto);
    if (st == RP_OK) st = keep_storage(m, sto);
    if (st == RP_OK) st = rp_tensor_init_view(out, sto, 0, RP_F32, 1, &n);
    if (st == RP_OK) st = rp_tensor_copy_in(out, 0, f, (size_t)n * sizeof *f);
    free(f);
    return st;
}

/* Build a model over f (borrowed). */
rp_status rp_model_new(const rp_model_file *f, rp_backend *be, rp_model **out) {
    rp_model *m = calloc(1, sizeof *m);
    if (!m) return rp_fail(RP_ERR_NOMEM, "model: out of memory");
    m->file = f;
    m->be = be ? be : rp_backend_default();
    rp_status st = rp_model_file_llama_config(f, &m->cfg);
    if (st != RP_OK) { free(m); return st; }
    const rp_llama_config *c = &m->cfg;
    if (c->n_head * c->head_dim != c->dim || c->rope_dim > c->head_dim || c->rope_dim % 2) {
        st = rp_fail(RP_ERR_FORMAT, "%s: heads %d x head size %d != dim %d or rope dims %d invalid", rp_model_file_path(f),
                     c->n_head, c->head_dim, c->dim, c->rope_dim);
        free(m);
        return st;
    }
    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    m->skip = calloc((size_t)c->n_layer, 1);
    if (!m->layers || !m->skip) { rp_model_free(m); return rp_fail(RP_ERR_NOMEM, "model: out of memory"); }
    char name[96];
#define W(field, fmt) do { snprintf(name, sizeof name, fmt, l); st = get_weight(m, name, &L->field); if (st) goto fail; } while (0)
    for (int l = 0; l < c->n_layer; l++) {
        rp_layer *L = &m->layers[l];
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        if ((st = get_norm(m, name, &L->attn_norm))) goto fail;
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        if ((st = get_norm(m, name, &L->ffn_norm))) goto fail;
        W(wq, "blk.%d.attn_q.weight");
        W(wk, "blk.%d.attn_k.weight");
        W(wv, "blk.%d.attn_v.weight");
        W(wo, "blk.%d.attn_output.weight");
        W(w_gate, "blk.%d.ffn_gate.weight");
        W(w_up, "blk.%d.ffn_up.weight");
        W(w_down, "blk.%d.ffn_down.weight");
    }
#undef W
    if ((st = get_weight(m, "token_embd.weight", &m->tok_embd))) goto fail;
    if ((st = rp_backend_require(m->be, RP_OP_EMBED, &m->tok_embd.dtype, 1))) goto fail;
    if ((st = get_norm(m, "output_norm.weight", &m->out_norm))) goto fail;
    if (c->tied_embeddings) m->output = m->tok_embd;
    else if ((st = get_weight(m, "output.weight", &m->output))) goto fail;
    *out = m;
    return RP_OK;
fail:
    rp_model_free(m);
    return st;
}

/* Open, build and attach the tokenizer. */
rp_status rp_model_load(const char *path, const rp_model_opts *opts, rp_model **out) {
    rp_model_file *f;
    RP_TRY(rp_model_file_open(path, &f));
    rp_model *m;
    rp_status st = rp_model_new(f, opts ? opts->backend : NULL, &m);
    if (st != RP_OK) { rp_model_file_free(f); return st; }
    m->owned_file = f;
    st = rp_tokenizer_for_model_file(f, opts ? opts->tokenizer_path : NULL, m->cfg.vocab, &m->tok);
    if (st != RP_OK) { rp_model_free(m); return st; }
    *out = m;
    return RP_OK;
}

/* Free the model and what it owns. */
void rp_model_free(rp_model *m) {
    if (!m) return;
    rp_session_free(m->lm_session);
    for (int i = 0; i < m->n_storages; i++) rp_storage_release(m->storages[i]);
    free(m->storages);
    free(m->layers);
    free(m->skip);
    rp_tokenizer_free(m->tok);
    rp_model_file_free(m->owned_file);
    free(m);
}

/* Config accessor. */
const rp_llama_config *rp_model_config(const rp_model *m) { return &m->cfg; }
/* Tokenizer accessor. */
const rp_tokenizer *rp_model_tokenizer(const rp_model *m) { return m->tok; }
/* File accessor. */
const rp_model_file *rp_model_file_of(const rp_model *m) { return m->file; }
/* Backend accessor. */
rp_backend *rp_model_backend(const rp_model *m) { return m->be; }
/* Switch backend: only between backends that share host memory (the weights stay where they are). */
rp_status rp_model_set_backend(rp_model *m, rp_backend *be) {
    if (!be) be = rp_backend_default();
    if (be != m->be && !(be->ops->host_memory && m->be->ops->host_memory))
        return rp_fail(RP_ERR_UNSUPPORTED, "model: moving weights from backend %s to %s is not implemented (load the model on %s)",
                       m->be->name, be->name, be->name);
    m->be = be;
    return RP_OK;
}

/* Install or clear the layer-skip mask. */
rp_status rp_model_set_skip(rp_model *m, const unsigned char *skip, int n) {
    if (!skip) { memset(m->skip, 0, (size_t)m->cfg.n_layer); return RP_OK; }
    if (n != m->cfg.n_layer) return rp_fail(RP_ERR_INVAL, "skip mask: %d entries for %d layers", n, m->cfg.n_layer);
    for (int l = 0; l < n; l++) m->skip[l] = skip[l] ? 1 : 0;
    return RP_OK;
}

/* Whether layer l is skipped. */
int rp_model_layer_skipped(const rp_model *m, int l) { return l >= 0 && l < m->cfg.n_layer && m->skip[l]; }

/* The model's scoring session, created on first use. */
rp_status rp_model_scoring_session(rp_model *m, int n_ctx, int n_logits, rp_session **out) {
    if (!m->lm_session) RP_TRY(rp_session_new(m, n_ctx, 512, n_logits, &m->lm_session));
    *out = m->lm_session;
    return RP_OK;
}
