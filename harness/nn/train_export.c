/* train_export.c: the glue between the trainer's export seam (rp_trainer_export: dense f32 weights, adapters
 * merged) and the GGUF writer: each weight is converted by rp_quantize_row to its target type as it arrives (rows
 * spread over a thread pool; a row equal to the base row dequantized keeps the base's bytes when the type is the
 * base's) and kept until the file is written; metadata comes from the base file (or the trainer's config), the
 * layer count from the trainer. Invariants: a tensor's target type is decided by its name and shape alone (the
 * base file's type for that name, or the requested type with its fallback when rows are not whole blocks); the
 * bytes do not depend on the thread count; nothing is written unless every tensor converted; all buffers and the
 * pool are freed before returning. */
#include "nn/train_export.h"
#include "model/gguf_write.h"
#include "tensor/pool.h"
#include "tensor/quant.h"
#include "util/progress.h"
#include <math.h>
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
    rp_pool *pool;
    rp_progress *prog;
    double done;      /* weights converted so far */
    rp_export_report rep;
} export_ctx;

static const struct { const char *name; rp_export_type type; rp_dtype dt; } TYPES[] = {
    { "base", RP_EXPORT_BASE, RP_F32 }, { "f16", RP_EXPORT_F16, RP_F16 }, { "f32", RP_EXPORT_F32, RP_F32 },
    { "q4_0", RP_EXPORT_Q4_0, RP_Q4_0 }, { "q4_1", RP_EXPORT_Q4_1, RP_Q4_1 }, { "q8_0", RP_EXPORT_Q8_0, RP_Q8_0 },
    { "q4_k", RP_EXPORT_Q4_K, RP_Q4_K }, { "q6_k", RP_EXPORT_Q6_K, RP_Q6_K },
};

/* Parse an export type name. */
rp_status rp_export_type_parse(const char *name, rp_export_type *out) {
    for (size_t i = 0; name && i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (strcmp(name, TYPES[i].name) == 0) { *out = TYPES[i].type; return RP_OK; }
    return rp_fail(RP_ERR_INVAL, "export type '%s' (valid: base, f16, f32, q4_0, q4_1, q8_0, q4_k, q6_k)", name ? name : "(null)");
}

/* general.file_type (llama.cpp's llama_ftype: the type most matrices have) for a requested type. */
static int ftype_of(rp_export_type t) {
    switch (t) {
    case RP_EXPORT_F16: return 1;
    case RP_EXPORT_Q4_0: return 2;
    case RP_EXPORT_Q4_1: return 3;
    case RP_EXPORT_Q8_0: return 7;
    case RP_EXPORT_Q4_K: return 15;   /* MOSTLY_Q4_K_M */
    case RP_EXPORT_Q6_K: return 18;
    default: return 0;
    }
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

typedef struct conv_job {
    rp_dtype dt;
    const float *data;
    int64_t rows, cols;
    size_t rb;
    char *out;
    const uint8_t *base;    /* the base's rows of the same type, or NULL */
    float *scratch;         /* cols floats per thread (base rows dequantized) */
    int64_t *kept;          /* per task: rows that kept the base's bytes */
    rp_status *st;          /* per task */
} conv_job;

enum { CONV_TASKS = 64 };

/* Whether a merged row is the base row (y, dequantized) up to the rounding of another dequantization order: every
 * value within 1e-6 of the row's largest magnitude, far below any quantized type's step (q8_0's is 1/127 of it). */
static int same_row(const float *y, const float *x, int64_t n) {
    float amax = 0;
    for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(y[i]));
    for (int64_t i = 0; i < n; i++)
        if (!(fabsf(y[i] - x[i]) <= 1e-6f * amax)) return 0;
    return 1;
}

static void conv_task(void *ctx, int task, int n_tasks, int thread) {
    conv_job *j = ctx;
    int64_t r0 = j->rows * task / n_tasks, r1 = j->rows * (task + 1) / n_tasks;
    float *y = j->scratch ? j->scratch + (size_t)thread * (size_t)j->cols : NULL;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->data + r * j->cols;
        char *dst = j->out + (size_t)r * j->rb;
        if (j->base && rp_dequantize_row(j->dt, j->base + (size_t)r * j->rb, y, j->cols) == RP_OK && same_row(y, x, j->cols)) {
            memcpy(dst, j->base + (size_t)r * j->rb, j->rb);   /* unchanged: the base's own blocks */
            j->kept[task]++;
            continue;
        }
        rp_status st = rp_quantize_row(j->dt, x, dst, j->cols);
        if (st != RP_OK) {
            j->st[task] = rp_fail_ctx(st, "row %lld: ", (long long)r);
            return;
        }
    }
}

/* The type a matrix of rows of cols values is written in, for a requested type (with llama.cpp-like fallbacks). */
static rp_dtype target_type(export_ctx *c, const rp_weight *bw, int ndim, int64_t cols, const char *name) {
    if (c->type == RP_EXPORT_BASE) return bw ? bw->dtype : RP_F32;
    if (ndim < 2) return RP_F32;
    rp_dtype dt = RP_F32;
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++) if (TYPES[i].type == c->type) dt = TYPES[i].dt;
    if (cols % rp_dtype_block(dt) == 0) return dt;
    rp_dtype fb = (dt == RP_Q4_K || dt == RP_Q6_K) && cols % RP_QK == 0 ? RP_Q8_0 : RP_F16;
    if (c->rep.n_fallback++ == 0) snprintf(c->rep.first_fallback, sizeof c->rep.first_fallback, "%s", name);
    return fb;
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
    rp_dtype dt = target_type(c, bw, ndim, cols, name);
    int bs = rp_dtype_block(dt);
    if (bs <= 0 || cols % bs)
        return rp_fail(RP_ERR_UNSUPPORTED, "export: tensor %s: rows of %lld values are not whole %s blocks", name, (long long)cols, rp_dtype_name(dt));
    size_t rb = rp_dtype_row_bytes(dt, cols), nbytes = rb * (size_t)rows;
    char *buf = malloc(nbytes ? nbytes : 1);
    if (!buf) return rp_fail(RP_ERR_NOMEM, "export: out of memory for tensor %s (%zu bytes)", name, nbytes);
    RP_TRY(keep(c, buf, name));
    int nt = rp_pool_size(c->pool);
    conv_job j = { .dt = dt, .data = data, .rows = rows, .cols = cols, .rb = rb, .out = buf };
    int64_t kept[CONV_TASKS] = {0};
    rp_status sts[CONV_TASKS] = {0};
    j.kept = kept;
    j.st = sts;
    if (bw && bw->dtype == dt && bw->nbytes == nbytes && rp_dtype_dequantizable(dt)) {
        j.base = bw->data;
        j.scratch = malloc((size_t)nt * (size_t)cols * sizeof *j.scratch);
        if (!j.scratch) return rp_fail(RP_ERR_NOMEM, "export: out of memory for tensor %s", name);
    }
    int tasks = rows < CONV_TASKS ? (int)rows : CONV_TASKS;
    rp_pool_run(c->pool, conv_task, &j, tasks);
    free(j.scratch);
    int64_t nkept = 0;
    for (int t = 0; t < tasks; t++) {
        nkept += kept[t];
        if (sts[t] != RP_OK)
            return rp_fail_ctx(sts[t], "export: tensor %s (type %s of %s; export as f16 or f32 instead): ", name, rp_dtype_name(dt),
                               c->base ? rp_model_file_path(c->base) : "the trainer");
    }
    c->rep.n_tensors++;
    c->rep.n_copied_rows_tensors += nkept == rows;
    c->done += (double)rows * (double)cols;
    rp_progress_update(c->prog, c->done);
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
        RP_TRY(rp_gguf_writer_set_int(c->w, "general.file_type", RP_GGUF_U32, ftype_of(c->type)));
    if (tok && (!c->base || rp_model_file_meta_type(c->base, "tokenizer.ggml.model") == RP_META_NONE))
        RP_TRY(rp_tokenizer_write_gguf(tok, c->w));
    RP_TRY(rp_trainer_export(tr, put_weight, c));
    return copy_rest(c);
}

/* All the weights of the model (for the progress display's total). */
static double model_weights(const rp_llama_config *g) {
    double C = g->dim, q = (double)g->n_head * g->head_dim, kv = (double)g->n_head_kv * g->head_dim, F = g->ffn_dim;
    return g->n_layer * (2 * C * q + 2 * C * kv + 3 * C * F + 2 * C) + C + (double)g->vocab * C * (g->tied_embeddings ? 1 : 2);
}

/* Write the trained model as GGUF with options (see train_export.h). */
rp_status rp_trainer_write_gguf_opts(const rp_trainer *tr, const rp_model_file *base, const rp_tokenizer *tok,
                                     const rp_export_opts *opts, const char *path, rp_export_report *rep) {
    rp_export_opts o = opts ? *opts : (rp_export_opts){ .type = RP_EXPORT_BASE };
    export_ctx c = { .base = base, .type = o.type, .w = rp_gguf_writer_new() };
    if (!c.w) return rp_fail(RP_ERR_NOMEM, "export: out of memory");
    rp_status st = rp_pool_new(o.n_threads, &c.pool);
    if (st == RP_OK) {
        c.prog = rp_progress_new("export", model_weights(rp_trainer_config(tr)), "w");
        st = build(&c, tr, tok);
        rp_progress_done(c.prog);
    }
    if (st == RP_OK) st = rp_gguf_writer_write(c.w, path);
    rp_gguf_writer_free(c.w);
    rp_pool_free(c.pool);
    for (int i = 0; i < c.n; i++) { free(c.bufs[i]); free(c.names[i]); }
    free(c.bufs);
    free(c.names);
    if (rep) *rep = c.rep;
    return st == RP_OK ? RP_OK : rp_fail_ctx(st, "exporting the trained model to %s: ", path);
}

/* Write the trained model as GGUF (see train_export.h). */
rp_status rp_trainer_write_gguf(const rp_trainer *tr, const rp_model_file *base, const rp_tokenizer *tok, rp_export_type type,
                                const char *path) {
    rp_export_opts o = { .type = type };
    return rp_trainer_write_gguf_opts(tr, base, tok, &o, path, NULL);
}
