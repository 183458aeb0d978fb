/* train_export.c: the glue between the trainer's export seam (rp_trainer_export: dense f32 weights, adapters
 * merged) and the GGUF writer: each weight is converted by rp_quantize_row to its target type as it arrives
 * and kept until the file is written; metadata comes from the base file (or the trainer's config), the
 * layer count from the trainer. Invariants: a tensor's target type is decided by its name alone (the base
 * file's type for that name, or the requested F16/F32); nothing is written unless every tensor converted;
 * all buffers are freed before returning. */
#include "nn/train_export.h"
#include "model/gguf_write.h"
#include "tensor/quant.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct export_ctx {
    rp_gguf_writer *w;
    const rp_model_file *base;
    rp_export_type type;
    void **bufs;      /* converted tensor data, owned until the write */
    int n, cap;
    char **names;     /* names written, to copy the base's other tensors afterwards */
} export_ctx;

/* Parse an export type name. */
rp_status rp_export_type_parse(const char *name, rp_export_type *out) {
    if (name && strcmp(name, "base") == 0) *out = RP_EXPORT_BASE;
    else if (name && strcmp(name, "f16") == 0) *out = RP_EXPORT_F16;
    else if (name && strcmp(name, "f32") == 0) *out = RP_EXPORT_F32;
    else return rp_fail(RP_ERR_INVAL, "export type '%s' (valid: base, f16, f32)", name ? name : "(null)");
    return RP_OK;
}

static rp_status keep(export_ctx *c, void *buf, const char *name) {
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 64;
        void **b = realloc(c->bufs, (size_t)cap * sizeof *b);
        if (b) c->bufs = b;
        char **nm = b ? realloc(c->names, (size_t)cap * sizeof *nm) : NULL;
        if (nm) c->names = nm;
        if (!b || !nm) { free(buf); return rp_fail(RP_ERR_NOMEM, "export: out of memory"); }
        c->cap = cap;
    }
    c->names[c->n] = strdup(name);
    c->bufs[c->n++] = buf;
    return c->names[c->n - 1] ? RP_OK : rp_fail(RP_ERR_NOMEM, "export: out of memory");
}

/* The sink: convert one merged weight [rows, cols] to its target type and add it to the writer. */
static rp_status put_weight(void *ud, const char *name, const float *data, int64_t rows, int64_t cols) {
    export_ctx *c = ud;
    const rp_weight *bw = c->base ? rp_model_file_weight(c->base, name) : NULL;
    int ndim = bw ? bw->ndim : rows == 1 ? 1 : 2;
    int64_t shape[4] = { rows, cols };
    if (bw) {
        int64_t n = 1;
        for (int i = 0; i < bw->ndim; i++) { n *= bw->shape[i]; shape[i] = bw->shape[i]; }
        if (n != rows * cols || bw->shape[bw->ndim - 1] != cols)
            return rp_fail(RP_ERR_INVAL, "export: tensor %s is [%lld, %lld] in the trainer but has another shape in %s", name,
                           (long long)rows, (long long)cols, rp_model_file_path(c->base));
    } else if (ndim == 1) shape[0] = cols;
    rp_dtype dt = RP_F32;
    if (c->type == RP_EXPORT_F16 && ndim > 1) dt = RP_F16;
    if (c->type == RP_EXPORT_BASE && bw) dt = bw->dtype;
    int bs = rp_dtype_block(dt);
    if (bs <= 0 || cols % bs)
        return rp_fail(RP_ERR_UNSUPPORTED, "export: tensor %s: rows of %lld values are not whole %s blocks", name, (long long)cols, rp_dtype_name(dt));
    size_t rb = rp_dtype_row_bytes(dt, cols), nbytes = rb * (size_t)rows;
    char *buf = malloc(nbytes ? nbytes : 1);
    if (!buf) return rp_fail(RP_ERR_NOMEM, "export: out of memory for tensor %s (%zu bytes)", name, nbytes);
    RP_TRY(keep(c, buf, name));
    for (int64_t r = 0; r < rows; r++) {
        rp_status st = rp_quantize_row(dt, data + r * cols, buf + (size_t)r * rb, cols);
        if (st != RP_OK) return rp_fail_ctx(st, "export: tensor %s (type %s of %s; export as f16 or f32 instead): ", name,
                                            rp_dtype_name(dt), c->base ? rp_model_file_path(c->base) : "the trainer");
    }
    return rp_gguf_writer_add_tensor(c->w, name, dt, ndim, shape, buf, nbytes);
}

/* llama metadata from the trainer's configuration (always: the trainer's layer count wins over the base's). */
static rp_status config_meta(rp_gguf_writer *w, const rp_llama_config *cfg, const rp_model_file *base) {
    const char *arch = base ? rp_model_file_meta_string(base, "general.architecture") : NULL;
    if (!arch) { arch = "llama"; RP_TRY(rp_gguf_writer_set_string(w, "general.architecture", arch, strlen(arch))); }
    char key[160];
    const struct { const char *k; int64_t v; } ints[] = {
        { "block_count", cfg->n_layer }, { "embedding_length", cfg->dim }, { "feed_forward_length", cfg->ffn_dim },
        { "attention.head_count", cfg->n_head }, { "attention.head_count_kv", cfg->n_head_kv },
        { "rope.dimension_count", cfg->rope_dim }, { "context_length", cfg->context_len }, { "vocab_size", cfg->vocab },
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        snprintf(key, sizeof key, "%s.%s", arch, ints[i].k);
        if (base && i > 0 && rp_model_file_meta_type(base, key) != RP_META_NONE) continue;   /* the base's, with its type */
        RP_TRY(rp_gguf_writer_set_int(w, key, RP_GGUF_U32, ints[i].v));
    }
    if (base) return RP_OK;
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    RP_TRY(rp_gguf_writer_set_float(w, key, RP_GGUF_F32, cfg->rope_base));
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    RP_TRY(rp_gguf_writer_set_float(w, key, RP_GGUF_F32, cfg->norm_eps));
    return cfg->rope_neox ? rp_gguf_writer_set_int(w, "repro.rope_neox", RP_GGUF_U32, 1) : RP_OK;
}

/* The base's tensors the trainer does not hold (e.g. rope_freqs.weight), copied as they are. */
static rp_status copy_rest(export_ctx *c) {
    for (int i = 0; c->base && i < rp_model_file_n_weights(c->base); i++) {
        const rp_weight *bw = rp_model_file_weight_at(c->base, i);
        int seen = 0;
        for (int j = 0; j < c->n && !seen; j++) seen = strcmp(c->names[j], bw->name) == 0;
        if (!seen) RP_TRY(rp_gguf_writer_add_tensor(c->w, bw->name, bw->dtype, bw->ndim, bw->shape, bw->data, bw->nbytes));
    }
    return RP_OK;
}

static rp_status build(export_ctx *c, const rp_trainer *tr, const rp_tokenizer *tok) {
    const rp_llama_config *cfg = rp_trainer_config(tr);
    if (c->base) RP_TRY(rp_gguf_writer_copy_all_meta(c->w, c->base));
    RP_TRY(config_meta(c->w, cfg, c->base));
    if (c->type != RP_EXPORT_BASE || !c->base)
        RP_TRY(rp_gguf_writer_set_int(c->w, "general.file_type", RP_GGUF_U32, c->type == RP_EXPORT_F16 ? 1 : 0));
    if (tok && (!c->base || rp_model_file_meta_type(c->base, "tokenizer.ggml.model") == RP_META_NONE))
        RP_TRY(rp_tokenizer_write_gguf(tok, c->w));
    RP_TRY(rp_trainer_export(tr, put_weight, c));
    return copy_rest(c);
}

/* Write the trained model as GGUF (see train_export.h). */
rp_status rp_trainer_write_gguf(const rp_trainer *tr, const rp_model_file *base, const rp_tokenizer *tok, rp_export_type type,
                                const char *path) {
    export_ctx c = { .base = base, .type = type, .w = rp_gguf_writer_new() };
    if (!c.w) return rp_fail(RP_ERR_NOMEM, "export: out of memory");
    rp_status st = build(&c, tr, tok);
    if (st == RP_OK) st = rp_gguf_writer_write(c.w, path);
    rp_gguf_writer_free(c.w);
    for (int i = 0; i < c.n; i++) { free(c.bufs[i]); free(c.names[i]); }
    free(c.bufs);
    free(c.names);
    return st == RP_OK ? RP_OK : rp_fail_ctx(st, "exporting the trained model to %s: ", path);
}
