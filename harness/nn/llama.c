/* llama.c: building a Llama-family model over a model file: the config, per-layer weight lookups (kept
 * as pointers into the file), the tokenizer, the layer-skip mask.
 * Invariants: every weight the forward pass reads was found with the shape the config implies
 * (rp_model_file_llama_config checks them) and a dtype the backend can dequantize; norm vectors are f32
 * (a copy is made only when the file stores them otherwise). */
#include "nn/llama_impl.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tensor/quant.h"

static rp_status get_weight(rp_model *m, const char *name, const rp_weight **out) {
    const rp_weight *w = rp_model_file_weight(m->file, name);
    if (!w) return rp_fail(RP_ERR_FORMAT, "%s: weight %s missing", rp_model_file_path(m->file), name);
    if (!rp_dtype_dequantizable(w->dtype))
        return rp_fail(RP_ERR_UNSUPPORTED, "%s: weight %s has dtype %s, which the engine cannot compute with",
                       rp_model_file_path(m->file), name, rp_dtype_name(w->dtype));
    *out = w;
    return RP_OK;
}

/* A norm vector as f32: in place when stored as f32, else a converted copy kept by the model. */
static rp_status get_norm(rp_model *m, const char *name, const float **out) {
    const rp_weight *w;
    RP_TRY(get_weight(m, name, &w));
    int64_t n = w->shape[w->ndim - 1];
    if (w->ndim != 1 || n != m->cfg.dim)
        return rp_fail(RP_ERR_FORMAT, "%s: norm %s has shape [%lld], [%d] expected", rp_model_file_path(m->file), name, (long long)n, m->cfg.dim);
    if (w->dtype == RP_F32) { *out = w->data; return RP_OK; }
    float *copy = malloc((size_t)n * sizeof *copy);
    if (!copy) return rp_fail(RP_ERR_NOMEM, "model: out of memory");
    rp_status st = rp_dequantize_row(w->dtype, w->data, copy, n);
    if (st != RP_OK) { free(copy); return st; }
    m->owned_norms[m->n_owned_norms++] = copy;
    *out = copy;
    return RP_OK;
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
    m->owned_norms = calloc((size_t)(2 * c->n_layer + 1), sizeof *m->owned_norms);
    if (!m->layers || !m->skip || !m->owned_norms) { rp_model_free(m); return rp_fail(RP_ERR_NOMEM, "model: out of memory"); }
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
    if ((st = get_norm(m, "output_norm.weight", &m->out_norm))) goto fail;
    if (c->tied_embeddings) m->output = m->tok_embd;
    else if ((st = get_weight(m, "output.weight", &m->output))) goto fail;
    *out = m;
    return RP_OK;
fail:
    rp_model_free(m);
    return st;
}

/* The tokenizer file of a llama2.c checkpoint: the option, else tokenizer.bin or tok*.bin beside it. */
static rp_status find_llama2c_tokenizer(const char *model_path, char *out, size_t cap) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", model_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    snprintf(out, cap, "%s/tokenizer.bin", dir);
    FILE *fp = fopen(out, "rb");
    if (fp) { fclose(fp); return RP_OK; }
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            if (strncmp(e->d_name, "tok", 3) == 0 && n > 4 && strcmp(e->d_name + n - 4, ".bin") == 0) {
                snprintf(out, cap, "%s/%s", dir, e->d_name);
                closedir(d);
                return RP_OK;
            }
        }
        closedir(d);
    }
    return rp_fail(RP_ERR_NOTFOUND, "%s: llama2.c checkpoint without a tokenizer: no tokenizer.bin or tok*.bin in %s (pass a tokenizer path)", model_path, dir);
}

/* Open, build and attach the tokenizer. */
rp_status rp_model_load(const char *path, const rp_model_opts *opts, rp_model **out) {
    rp_model_file *f;
    RP_TRY(rp_model_file_open(path, &f));
    rp_model *m;
    rp_status st = rp_model_new(f, opts ? opts->backend : NULL, &m);
    if (st != RP_OK) { rp_model_file_free(f); return st; }
    m->owned_file = f;
    if (strcmp(rp_model_file_format(f), "llama2c") == 0) {
        char tp[4200];
        if (opts && opts->tokenizer_path) snprintf(tp, sizeof tp, "%s", opts->tokenizer_path);
        else if ((st = find_llama2c_tokenizer(path, tp, sizeof tp)) != RP_OK) { rp_model_free(m); return st; }
        st = rp_tokenizer_load_llama2c(tp, m->cfg.vocab, &m->tok);
    } else {
        st = rp_tokenizer_from_model_file(f, &m->tok);
    }
    if (st != RP_OK) { rp_model_free(m); return st; }
    *out = m;
    return RP_OK;
}

/* Free the model and what it owns. */
void rp_model_free(rp_model *m) {
    if (!m) return;
    rp_session_free(m->lm_session);
    for (int i = 0; i < m->n_owned_norms; i++) free(m->owned_norms[i]);
    free(m->owned_norms);
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
/* Switch backend. */
void rp_model_set_backend(rp_model *m, rp_backend *be) { m->be = be ? be : rp_backend_default(); }

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
