/* train_llama.c: the trainer of a Llama-family decoder (see train_llama.h): building it (weights from a model
 * file or initialised from scratch, converted or drawn on the thread pool in fixed slices; every buffer
 * planned for B × T), the forward pass saving each layer's
 * activations, the hand-written backward pass through the kernels of tensor/backward.h (llm.c's approach:
 * the architecture is fixed, so a tape would only add indirection), and the AdamW update. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn/train_impl.h"
#include "tensor/gemm_bf16.h"
#include "tensor/quant.h"

/* Zeroed, 64-byte aligned floats recorded for rp_trainer_free. */
float *tr_alloc(rp_trainer *tr, int64_t n) {
    if (n < 0 || (uint64_t)n > SIZE_MAX / sizeof(float) - 64) return NULL;
    if (tr->n_allocs == tr->cap_allocs) {
        int cap = tr->cap_allocs ? 2 * tr->cap_allocs : 256;
        void **a = realloc(tr->allocs, (size_t)cap * sizeof *a);
        if (!a) return NULL;
        tr->allocs = a;
        tr->cap_allocs = cap;
    }
    size_t bytes = ((size_t)(n ? n : 1) * sizeof(float) + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (!p) return NULL;
    memset(p, 0, bytes);
    tr->allocs[tr->n_allocs++] = p;
    return p;
}

/* Parse a training method name. */
rp_status rp_train_method_parse(const char *name, rp_train_method *out) {
    static const char *names[] = { "full", "lora", "qlora" };
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, names[i])) { *out = (rp_train_method)i; return RP_OK; }
    return rp_fail(RP_ERR_INVAL, "train: method '%s' unknown (full, lora, qlora)", name);
}

/* Parse a precision name. */
rp_status rp_train_precision_parse(const char *name, rp_train_precision *out) {
    if (!strcmp(name, "fp32")) { *out = RP_TRAIN_FP32; return RP_OK; }
    if (!strcmp(name, "bf16")) { *out = RP_TRAIN_BF16; return RP_OK; }
    return rp_fail(RP_ERR_INVAL, "train: precision '%s' unknown (fp32, bf16)", name);
}

static rp_status check_opts(const rp_train_opts *o, int from_scratch) {
    if (o->method != RP_TRAIN_FULL && o->method != RP_TRAIN_LORA && o->method != RP_TRAIN_QLORA)
        return rp_fail(RP_ERR_INVAL, "train: method %d unknown", (int)o->method);
    if (o->precision != RP_TRAIN_FP32 && o->precision != RP_TRAIN_BF16)
        return rp_fail(RP_ERR_INVAL, "train: precision %d unknown", (int)o->precision);
    if (from_scratch && o->method != RP_TRAIN_FULL) return rp_fail(RP_ERR_INVAL, "train: method lora/qlora needs a base model");
    if (o->B < 1 || o->T < 1 || (int64_t)o->B * o->T > (1 << 24))
        return rp_fail(RP_ERR_INVAL, "train: batch %d x %d (each >= 1, at most 2^24 tokens)", o->B, o->T);
    if (o->method != RP_TRAIN_FULL) {
        if (o->lora_rank < 1 || o->lora_rank > 4096) return rp_fail(RP_ERR_INVAL, "train: lora rank %d outside [1, 4096]", o->lora_rank);
        if (!(o->lora_alpha > 0)) return rp_fail(RP_ERR_INVAL, "train: lora alpha %g must be > 0", o->lora_alpha);
        if (!(o->lora_dropout >= 0 && o->lora_dropout < 1)) return rp_fail(RP_ERR_INVAL, "train: lora dropout %g outside [0, 1)", o->lora_dropout);
        int dummy;
        RP_TRY(tr_lora_is_target(o->lora_targets, "", &dummy));
    }
    return rp_adamw_check(&o->adamw);
}

static rp_status check_config(const rp_llama_config *c) {
    if (c->n_layer < 1 || c->dim < 1 || c->n_head < 1 || c->n_head_kv < 1 || c->head_dim < 1 || c->ffn_dim < 1 || c->vocab < 1)
        return rp_fail(RP_ERR_INVAL, "train: config has a non-positive size (layers %d dim %d heads %d/%d head_dim %d ffn %d vocab %d)",
                       c->n_layer, c->dim, c->n_head, c->n_head_kv, c->head_dim, c->ffn_dim, c->vocab);
    if (c->n_head % c->n_head_kv) return rp_fail(RP_ERR_INVAL, "train: %d heads not a multiple of %d kv heads", c->n_head, c->n_head_kv);
    if (c->rope_dim < 0 || c->rope_dim > c->head_dim || c->rope_dim % 2)
        return rp_fail(RP_ERR_INVAL, "train: rope_dim %d must be even and <= head_dim %d", c->rope_dim, c->head_dim);
    if (!(c->norm_eps > 0) || !(c->rope_base > 0)) return rp_fail(RP_ERR_INVAL, "train: norm_eps %g and rope_base %g must be > 0", c->norm_eps, c->rope_base);
    return RP_OK;
}

/* N(0, std²) values by Box-Muller over the counter hash, elements [a, z) of a tensor: the same seed gives the
 * same model, however the tensor is cut into tasks. */
static void init_normal(float *p, int64_t a, int64_t z, float std, uint64_t seed, uint64_t stream) {
    for (int64_t i = a; i < z; i++) {
        double u = ((double)(tr_hash(seed, stream, (uint64_t)i, 0) >> 11) + 1.0) * 0x1.0p-53;
        double v = (double)(tr_hash(seed, stream, (uint64_t)i, 1) >> 11) * 0x1.0p-53;
        p[i] = (float)(std * sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v));
    }
}

/* Building a weight on the pool: a random init (w == NULL) or a file weight's rows converted to f32 (out) or
 * re-stored as another type (dst, dst_t): each task a fixed slice, so the result does not depend on threads. */
typedef struct init_job {
    float *out;
    int64_t rows, cols;
    float std;
    uint64_t seed, stream;
    const char *w;       /* file rows, NULL for a random init */
    rp_dtype wt, dst_t;
    size_t ldw, ld_dst;
    char *dst;           /* non-NULL: re-store the rows as dst_t here instead of out */
    _Atomic int bad;     /* a row failed to convert; the caller redoes it to report why */
} init_job;

#define INIT_TASK 65536   /* elements per task */

static void init_task(void *ctx, int ith, int nth, int thread) {
    init_job *j = ctx;
    (void)nth; (void)thread;
    if (!j->w) {
        int64_t n = j->rows * j->cols, a = (int64_t)ith * INIT_TASK, z = a + INIT_TASK < n ? a + INIT_TASK : n;
        init_normal(j->out, a, z, j->std, j->seed, j->stream);
        return;
    }
    int64_t per = (INIT_TASK + j->cols - 1) / j->cols, r0 = (int64_t)ith * per, r1 = r0 + per < j->rows ? r0 + per : j->rows;
    float *row = j->dst ? malloc((size_t)j->cols * sizeof *row) : NULL;   /* build time only */
    if (j->dst && !row) { j->bad = 1; return; }
    for (int64_t r = r0; r < r1; r++) {
        float *o = j->dst ? row : j->out + r * j->cols;
        if (rp_dequantize_row(j->wt, j->w + (size_t)r * j->ldw, o, j->cols) != RP_OK ||
            (j->dst && rp_quantize_row(j->dst_t, row, j->dst + (size_t)r * j->ld_dst, j->cols) != RP_OK))
            j->bad = 1;
    }
    free(row);
}

/* Runs an init job over the trainer's pool; on a failed row, the first one is converted again here for its error. */
static rp_status init_run(rp_trainer *tr, init_job *j) {
    int64_t n = j->rows * j->cols, per = (INIT_TASK + j->cols - 1) / j->cols;   /* per: rows per task of a file weight */
    int tasks = (int)(j->w ? (j->rows + per - 1) / per : (n + INIT_TASK - 1) / INIT_TASK);
    if (tasks > 1) rp_pool_run(tr->pool, init_task, j, tasks);
    else if (tasks == 1) init_task(j, 0, 1, 0);
    if (!j->bad) return RP_OK;
    float *row = malloc((size_t)j->cols * sizeof *row);   /* build time only */
    if (!row) return rp_fail(RP_ERR_NOMEM, "train: out of memory");
    rp_status st = RP_OK;
    for (int64_t r = 0; r < j->rows && st == RP_OK; r++) {
        st = rp_dequantize_row(j->wt, j->w + (size_t)r * j->ldw, row, j->cols);
        if (st == RP_OK && j->dst) st = rp_quantize_row(j->dst_t, row, j->dst + (size_t)r * j->ld_dst, j->cols);
    }
    free(row);
    return st != RP_OK ? st : rp_fail(RP_ERR_NOMEM, "train: converting a weight's rows failed on a worker thread (out of memory)");
}

/* The file's weight `name`, checked to be [rows, cols] of a type we can dequantize. */
static rp_status file_weight(const rp_model_file *f, const char *name, int64_t rows, int64_t cols, const rp_weight **out) {
    const rp_weight *w = rp_model_file_weight(f, name);
    if (!w) return rp_fail(RP_ERR_NOTFOUND, "%s: weight %s missing", rp_model_file_path(f), name);
    int64_t r = w->ndim == 1 ? 1 : w->shape[0], c = w->shape[w->ndim - 1];
    if (w->ndim > 2 || r != rows || c != cols)
        return rp_fail(RP_ERR_FORMAT, "%s: weight %s has shape %lld x %lld, expected %lld x %lld", rp_model_file_path(f), name,
                       (long long)r, (long long)c, (long long)rows, (long long)cols);
    if (!rp_dtype_dequantizable(w->dtype))
        return rp_fail(RP_ERR_UNSUPPORTED, "%s: weight %s has type %s, which training cannot read", rp_model_file_path(f), name,
                       rp_dtype_name(w->dtype));
    *out = w;
    return RP_OK;
}

/* An f32 copy of a weight: dequantized from the file, or initialised (norm gains 1, matrices N(0, std²)). */
static rp_status f32_weight(rp_trainer *tr, const rp_model_file *f, const char *name, int64_t rows, int64_t cols,
                            float std, uint64_t stream, float **out) {
    float *p = tr_alloc(tr, rows * cols);
    if (!p) return rp_fail(RP_ERR_NOMEM, "train: out of memory for %s", name);
    if (f) {
        const rp_weight *w;
        RP_TRY(file_weight(f, name, rows, cols, &w));
        init_job j = { .out = p, .rows = rows, .cols = cols, .w = w->data, .wt = w->dtype, .ldw = rp_dtype_row_bytes(w->dtype, cols) };
        RP_TRY(init_run(tr, &j));
    } else if (std == 0) {
        for (int64_t i = 0; i < rows * cols; i++) p[i] = 1.0f;
    } else {
        init_job j = { .out = p, .rows = rows, .cols = cols, .std = std, .seed = tr->o.seed, .stream = stream };
        RP_TRY(init_run(tr, &j));
    }
    *out = p;
    return RP_OK;
}

/* A norm gain: trainable for full fine-tuning, a frozen f32 copy otherwise. */
static rp_status norm_weight(rp_trainer *tr, const rp_model_file *f, const char *name, float **w, float **dw) {
    int64_t C = tr->cfg.dim;
    RP_TRY(f32_weight(tr, f, name, 1, C, 0, 0, w));
    *dw = NULL;
    if (tr->o.method != RP_TRAIN_FULL) return RP_OK;
    if (!(*dw = tr_alloc(tr, C))) return rp_fail(RP_ERR_NOMEM, "train: out of memory for %s", name);
    return tr_add_param(tr, name, *w, *dw, C, 0);
}

/* Re-store a frozen F32/F16 linear as BF16 in trainer memory (rounded to nearest even). */
static rp_status to_bf16(rp_trainer *tr, tr_linear *l, const char *name) {
    size_t ld = rp_dtype_row_bytes(RP_BF16, l->in);
    char *dst = (char *)tr_alloc(tr, (int64_t)((ld * (size_t)l->out + sizeof(float) - 1) / sizeof(float)));
    if (!dst) return rp_fail(RP_ERR_NOMEM, "train: out of memory converting %s to bf16", name);
    init_job j = { .rows = l->out, .cols = l->in, .w = l->w, .wt = l->wt, .ldw = l->ldw, .dst = dst, .dst_t = RP_BF16, .ld_dst = ld };
    RP_TRY(init_run(tr, &j));
    l->w = dst; l->wt = RP_BF16; l->ldw = ld;
    return RP_OK;
}

/* Build one linear for the method: trainable f32, frozen as stored, or frozen NF4; plan its adapter. */
static rp_status make_linear(rp_trainer *tr, const rp_model_file *f, tr_linear *l, int id, const char *name,
                             const char *kind, int64_t out, int64_t in, float std) {
    l->id = id; l->in = in; l->out = out;
    if (tr->o.method == RP_TRAIN_FULL) {
        float *w;
        RP_TRY(f32_weight(tr, f, name, out, in, std, (uint64_t)id + 1, &w));
        l->w = w; l->wt = RP_F32; l->ldw = (size_t)in * sizeof(float);
        if (!(l->dw = tr_alloc(tr, out * in))) return rp_fail(RP_ERR_NOMEM, "train: out of memory for the gradient of %s", name);
        return tr_linear_plan(tr, l, name, 0);
    }
    const rp_weight *w;
    RP_TRY(file_weight(f, name, out, in, &w));
    l->w = w->data; l->wt = w->dtype; l->ldw = rp_dtype_row_bytes(w->dtype, in);
    if (tr->o.method == RP_TRAIN_LORA && tr->o.bf16_base && (w->dtype == RP_F32 || w->dtype == RP_F16))
        RP_TRY(to_bf16(tr, l, name));
    if (tr->o.method == RP_TRAIN_QLORA && in % RP_NF4_BLOCK == 0) {
        float *tmp = malloc((size_t)(out * in) * sizeof *tmp);   /* build time only */
        if (!tmp) return rp_fail(RP_ERR_NOMEM, "train: out of memory converting %s to nf4", name);
        init_job j = { .out = tmp, .rows = out, .cols = in, .w = w->data, .wt = w->dtype, .ldw = l->ldw };
        rp_status st = init_run(tr, &j);
        if (st == RP_OK) st = rp_nf4_quantize_pool(tmp, out, in, tr->pool, &l->nf4);
        free(tmp);
        RP_TRY(st);
    }
    int target;
    RP_TRY(tr_lora_is_target(tr->o.lora_targets, kind, &target));
    return tr_linear_plan(tr, l, name, target);
}

static rp_status build(rp_trainer *tr, const rp_model_file *f) {
    const rp_llama_config *c = &tr->cfg;
    int64_t C = c->dim, L = c->n_layer, QD = (int64_t)c->n_head * c->head_dim, KD = (int64_t)c->n_head_kv * c->head_dim;
    int64_t F = c->ffn_dim, V = c->vocab, BT = (int64_t)tr->o.B * tr->o.T;
    float std = tr->o.init_std > 0 ? tr->o.init_std : 0.02f, std_res = std / sqrtf(2.0f * (float)L);
    char name[96];
    if (tr->o.method == RP_TRAIN_FULL) {
        RP_TRY(f32_weight(tr, f, "token_embd.weight", V, C, std, 0, &tr->tok_embd));
        if (!(tr->d_tok_embd = tr_alloc(tr, V * C))) return rp_fail(RP_ERR_NOMEM, "train: out of memory for embeddings");
        RP_TRY(tr_add_param(tr, "token_embd.weight", tr->tok_embd, tr->d_tok_embd, V * C, 1));
    } else {
        const rp_weight *w;
        RP_TRY(file_weight(f, "token_embd.weight", V, C, &w));
        tr->embd_q = w->data; tr->embd_t = w->dtype; tr->embd_ld = rp_dtype_row_bytes(w->dtype, C);
    }
    if (!(tr->layers = calloc((size_t)L, sizeof *tr->layers))) return rp_fail(RP_ERR_NOMEM, "train: out of memory");
    for (int l = 0; l < L; l++) {
        tr_layer *y = &tr->layers[l];
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        RP_TRY(norm_weight(tr, f, name, &y->attn_norm, &y->d_attn_norm));
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        RP_TRY(norm_weight(tr, f, name, &y->ffn_norm, &y->d_ffn_norm));
        struct { tr_linear *lin; const char *kind; int64_t out, in; float std; } lins[7] = {
            { &y->q, "attn_q", QD, C, std }, { &y->k, "attn_k", KD, C, std }, { &y->v, "attn_v", KD, C, std },
            { &y->o, "attn_output", C, QD, std_res }, { &y->gate, "ffn_gate", F, C, std }, { &y->up, "ffn_up", F, C, std },
            { &y->down, "ffn_down", C, F, std_res },
        };
        for (int i = 0; i < 7; i++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, lins[i].kind);
            RP_TRY(make_linear(tr, f, lins[i].lin, l * 7 + i, name, lins[i].kind, lins[i].out, lins[i].in, lins[i].std));
        }
        float **acts[] = { &y->x_in, &y->xn1, &y->x_mid, &y->xn2 };
        for (int i = 0; i < 4; i++) if (!(*acts[i] = tr_alloc(tr, BT * C))) return rp_fail(RP_ERR_NOMEM, "train: out of memory for activations");
        if (!(y->qa = tr_alloc(tr, BT * QD)) || !(y->att = tr_alloc(tr, BT * QD)) || !(y->ka = tr_alloc(tr, BT * KD)) ||
            !(y->va = tr_alloc(tr, BT * KD)) || !(y->ga = tr_alloc(tr, BT * F)) || !(y->ua = tr_alloc(tr, BT * F)) ||
            !(y->ha = tr_alloc(tr, BT * F)))
            return rp_fail(RP_ERR_NOMEM, "train: out of memory for activations");
    }
    RP_TRY(norm_weight(tr, f, "output_norm.weight", &tr->out_norm, &tr->d_out_norm));
    tr_linear *h = &tr->head;
    h->id = (int)L * 7; h->in = C; h->out = V;
    if (c->tied_embeddings && tr->tok_embd) {
        h->w = tr->tok_embd; h->wt = RP_F32; h->ldw = (size_t)C * sizeof(float); h->dw = tr->d_tok_embd;
    } else if (c->tied_embeddings) {
        h->w = tr->embd_q; h->wt = tr->embd_t; h->ldw = tr->embd_ld;
    } else if (tr->o.method == RP_TRAIN_FULL) {
        RP_TRY(make_linear(tr, f, h, h->id, "output.weight", "output", V, C, std));
    } else {
        const rp_weight *w;
        RP_TRY(file_weight(f, "output.weight", V, C, &w));
        h->w = w->data; h->wt = w->dtype; h->ldw = rp_dtype_row_bytes(w->dtype, C);
    }
    int64_t wide = QD > F ? QD : F;
    if (C > wide) wide = C;
    int r = tr->o.method == RP_TRAIN_FULL ? 1 : tr->o.lora_rank;
    if (!(tr->pos = calloc((size_t)BT, sizeof *tr->pos)) || !(tr->x_out = tr_alloc(tr, BT * C)) || !(tr->xf = tr_alloc(tr, BT * C)) ||
        !(tr->logits = tr_alloc(tr, BT * V)) || !(tr->row_lse = tr_alloc(tr, BT)) || !(tr->row_loss = tr_alloc(tr, BT)) ||
        !(tr->rope_cos = tr_alloc(tr, (int64_t)tr->o.T * (c->rope_dim / 2))) ||
        !(tr->rope_sin = tr_alloc(tr, (int64_t)tr->o.T * (c->rope_dim / 2))) ||
        !(tr->row_dloss = tr_alloc(tr, BT)) || !(tr->dres = tr_alloc(tr, BT * C)) || !(tr->dxn = tr_alloc(tr, BT * C)) ||
        !(tr->dq = tr_alloc(tr, BT * QD)) || !(tr->datt = tr_alloc(tr, BT * QD)) || !(tr->dk = tr_alloc(tr, BT * KD)) ||
        !(tr->dv = tr_alloc(tr, BT * KD)) || !(tr->dg = tr_alloc(tr, BT * F)) || !(tr->du = tr_alloc(tr, BT * F)) ||
        !(tr->dh = tr_alloc(tr, BT * F)) || !(tr->dxa = tr_alloc(tr, BT * r)) || !(tr->dxd = tr_alloc(tr, BT * wide)) ||
        !(tr->seq_logp = calloc((size_t)tr->o.B, sizeof(double))) || !(tr->seq_dlogp = calloc((size_t)tr->o.B, sizeof(double))))
        return rp_fail(RP_ERR_NOMEM, "train: out of memory for %d x %d activations", tr->o.B, tr->o.T);
    return rp_rope_table(tr->rope_cos, tr->rope_sin, tr->o.T, c->rope_dim, c->rope_base);
}

/* Build a trainer. */
rp_status rp_trainer_new(const rp_model_file *f, const rp_llama_config *cfg, const rp_train_opts *opts, rp_trainer **out) {
    *out = NULL;
    RP_TRY(check_opts(opts, f == NULL));
    rp_trainer *tr = calloc(1, sizeof *tr);
    if (!tr) return rp_fail(RP_ERR_NOMEM, "train: out of memory");
    tr->o = *opts;
    rp_status st = f ? rp_model_file_llama_config(f, &tr->cfg) : RP_OK;
    if (!f) {
        if (!cfg) st = rp_fail(RP_ERR_INVAL, "train: neither a model file nor a config");
        else tr->cfg = *cfg;
    }
    if (st == RP_OK) st = check_config(&tr->cfg);
    if (st == RP_OK) st = rp_pool_new(opts->n_threads, &tr->pool);
    if (st == RP_OK) st = rp_bwd_new(tr->pool, &tr->bw);
    if (st == RP_OK) rp_bwd_set_bf16(tr->bw, opts->precision == RP_TRAIN_BF16);
    if (st == RP_OK) st = build(tr, f);
    if (st != RP_OK) { rp_trainer_free(tr); return st; }
    *out = tr;
    return RP_OK;
}

/* Release a trainer and everything it planned. */
void rp_trainer_free(rp_trainer *tr) {
    if (!tr) return;
    if (tr->layers)
        for (int l = 0; l < tr->cfg.n_layer; l++) {
            tr_linear *ls[7] = { &tr->layers[l].q, &tr->layers[l].k, &tr->layers[l].v, &tr->layers[l].o, &tr->layers[l].gate,
                                 &tr->layers[l].up, &tr->layers[l].down };
            for (int i = 0; i < 7; i++) rp_nf4_free(ls[i]->nf4);
        }
    for (int i = 0; i < tr->n_allocs; i++) free(tr->allocs[i]);
    free(tr->allocs); free(tr->layers); free(tr->pos); free(tr->seq_logp); free(tr->seq_dlogp);
    rp_bwd_free(tr->bw);
    rp_pool_free(tr->pool);
    free(tr);
}

/* The precision the products run in. */
const char *rp_trainer_precision(const rp_trainer *tr) {
    if (tr->o.precision != RP_TRAIN_BF16) return "fp32";
    switch (rp_gemm_bf16_unit()) {
    case RP_BF16_AMX: return "bf16 (amx)";
    case RP_BF16_AVX512: return "bf16 (avx512_bf16)";
    default: return "fp32 (no bf16 unit)";
    }
}

/* Model configuration. */
const rp_llama_config *rp_trainer_config(const rp_trainer *tr) { return &tr->cfg; }

/* Trainable parameter count. */
int64_t rp_trainer_n_params(const rp_trainer *tr) {
    int64_t n = 0;
    for (int i = 0; i < tr->n_params; i++) n += tr->params[i].n;
    return n;
}

/* Optimizer steps taken. */
int64_t rp_trainer_step_count(const rp_trainer *tr) { return tr->step; }

/* The i-th trainable tensor. */
const char *rp_trainer_param(rp_trainer *tr, int i, float **p, float **g, int64_t *n) {
    if (i < 0 || i >= tr->n_params) return NULL;
    *p = tr->params[i].p; *g = tr->params[i].g; *n = tr->params[i].n;
    return tr->params[i].name;
}

static rp_status check_batch(const rp_trainer *tr, const int32_t *tokens, const int32_t *targets, const uint8_t *mask, int B, int T) {
    if (B < 1 || T < 1 || B > tr->o.B || T > tr->o.T)
        return rp_fail(RP_ERR_INVAL, "train: batch %d x %d outside the planned %d x %d", B, T, tr->o.B, tr->o.T);
    for (int64_t i = 0; i < (int64_t)B * T; i++) {
        if (tokens[i] < 0 || tokens[i] >= tr->cfg.vocab)
            return rp_fail(RP_ERR_RANGE, "train: token %d at sequence %lld position %lld outside vocabulary [0, %d)", tokens[i],
                           (long long)(i / T), (long long)(i % T), tr->cfg.vocab);
        if ((!mask || mask[i]) && (targets[i] < 0 || targets[i] >= tr->cfg.vocab))
            return rp_fail(RP_ERR_RANGE, "train: target %d at sequence %lld position %lld outside vocabulary [0, %d)", targets[i],
                           (long long)(i / T), (long long)(i % T), tr->cfg.vocab);
    }
    return RP_OK;
}

/* The forward pass over B × T tokens, leaving every activation the backward pass reads. */
static rp_status forward(rp_trainer *tr, const int32_t *tokens, const int32_t *targets, const uint8_t *mask, int B, int T) {
    const rp_llama_config *c = &tr->cfg;
    int64_t C = c->dim, M = (int64_t)B * T, D = c->head_dim, KD = c->n_head_kv * D, F = c->ffn_dim, V = c->vocab;
    float scale = 1.0f / sqrtf((float)D);
    for (int64_t i = 0; i < M; i++) tr->pos[i] = (int32_t)(i % T);
    float *x = tr->layers[0].x_in;
    for (int64_t i = 0; i < M; i++) {
        if (tr->tok_embd) memcpy(x + i * C, tr->tok_embd + (int64_t)tokens[i] * C, (size_t)C * sizeof(float));
        else RP_TRY(rp_dequantize_row(tr->embd_t, (const char *)tr->embd_q + (size_t)tokens[i] * tr->embd_ld, x + i * C, C));
    }
    for (int l = 0; l < c->n_layer; l++) {
        tr_layer *y = &tr->layers[l];
        float *next = l + 1 < c->n_layer ? tr->layers[l + 1].x_in : tr->x_out;
        RP_TRY(rp_cpu_rmsnorm_forward(tr->bw, y->xn1, y->x_in, y->attn_norm, M, C, c->norm_eps));
        RP_TRY(tr_linear_forward(tr, &y->q, y->xn1, y->qa, M));
        RP_TRY(tr_linear_forward(tr, &y->k, y->xn1, y->ka, M));
        RP_TRY(tr_linear_forward(tr, &y->v, y->xn1, y->va, M));
        RP_TRY(rp_cpu_rope_apply(tr->bw, y->qa, M, c->n_head, (int)D, c->rope_dim, tr->pos, tr->rope_cos, tr->rope_sin, T,
                                 c->rope_neox, 0));
        RP_TRY(rp_cpu_rope_apply(tr->bw, y->ka, M, c->n_head_kv, (int)D, c->rope_dim, tr->pos, tr->rope_cos, tr->rope_sin, T,
                                 c->rope_neox, 0));
        RP_TRY(rp_cpu_attention_forward_seqs(tr->bw, B, y->att, y->qa, y->ka, y->va, T, 0, c->n_head, c->n_head_kv, (int)D, KD,
                                             scale));
        RP_TRY(tr_linear_forward(tr, &y->o, y->att, y->x_mid, M));
        for (int64_t i = 0; i < M * C; i++) y->x_mid[i] += y->x_in[i];
        RP_TRY(rp_cpu_rmsnorm_forward(tr->bw, y->xn2, y->x_mid, y->ffn_norm, M, C, c->norm_eps));
        RP_TRY(tr_linear_forward(tr, &y->gate, y->xn2, y->ga, M));
        RP_TRY(tr_linear_forward(tr, &y->up, y->xn2, y->ua, M));
        RP_TRY(rp_cpu_swiglu_forward(tr->bw, y->ha, y->ga, y->ua, M * F));
        RP_TRY(tr_linear_forward(tr, &y->down, y->ha, next, M));
        for (int64_t i = 0; i < M * C; i++) next[i] += y->x_mid[i];
    }
    RP_TRY(rp_cpu_rmsnorm_forward(tr->bw, tr->xf, tr->x_out, tr->out_norm, M, C, c->norm_eps));
    RP_TRY(tr_linear_forward(tr, &tr->head, tr->xf, tr->logits, M));
    return rp_cpu_cross_entropy_forward(tr->bw, tr->row_loss, tr->row_lse, tr->logits, targets, mask, M, V);
}

/* The loss of the batch from the per-row cross-entropies, and each row's weight in it (row_dloss). */
static rp_status loss_of(rp_trainer *tr, const uint8_t *mask, int B, int T, rp_seq_loss_fn fn, void *ud, double *loss) {
    int64_t M = (int64_t)B * T, scored = 0;
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int t = 0; t < T; t++) {
            int64_t i = (int64_t)b * T + t;
            if (!mask || mask[i]) { s -= tr->row_loss[i]; scored++; }
        }
        tr->seq_logp[b] = s;
    }
    if (!scored) return rp_fail(RP_ERR_INVAL, "train: the batch has no scored position (mask all 0)");
    if (!fn) {
        double sum = 0;
        for (int b = 0; b < B; b++) sum -= tr->seq_logp[b];
        *loss = sum / (double)scored;
        for (int64_t i = 0; i < M; i++) tr->row_dloss[i] = (float)(1.0 / (double)scored);
        return RP_OK;
    }
    RP_TRY(fn(ud, tr->seq_logp, B, loss, tr->seq_dlogp));
    for (int64_t i = 0; i < M; i++) tr->row_dloss[i] = (float)-tr->seq_dlogp[i / T];
    return RP_OK;
}

#define ZERO(p, n) memset((p), 0, (size_t)(n) * sizeof(float))

/* The backward pass, in the reverse order of forward, accumulating into every gradient. */
static rp_status backward(rp_trainer *tr, const int32_t *tokens, const int32_t *targets, const uint8_t *mask, int B, int T) {
    const rp_llama_config *c = &tr->cfg;
    const rp_bwd_ops *k = &rp_bwd_cpu;
    int64_t C = c->dim, M = (int64_t)B * T, D = c->head_dim, QD = c->n_head * D, KD = c->n_head_kv * D, F = c->ffn_dim, V = c->vocab;
    float scale = 1.0f / sqrtf((float)D);
    float *dlogits = tr->logits;   /* the gradient overwrites the logits (nothing reads them after this) */
    RP_TRY(rp_cpu_cross_entropy_grad(tr->bw, dlogits, tr->row_lse, targets, tr->row_dloss, mask, M, V));
    ZERO(tr->dxn, M * C);
    RP_TRY(tr_linear_backward(tr, &tr->head, dlogits, tr->xf, tr->dxn, M));
    ZERO(tr->dres, M * C);
    RP_TRY(k->rmsnorm(tr->bw, tr->dres, tr->d_out_norm, tr->dxn, tr->x_out, tr->out_norm, M, C, c->norm_eps));
    for (int l = c->n_layer - 1; l >= 0; l--) {
        tr_layer *y = &tr->layers[l];
        ZERO(tr->dh, M * F);
        RP_TRY(tr_linear_backward(tr, &y->down, tr->dres, y->ha, tr->dh, M));
        ZERO(tr->dg, M * F); ZERO(tr->du, M * F);
        RP_TRY(k->swiglu(tr->bw, tr->dg, tr->du, tr->dh, y->ga, y->ua, M * F));
        ZERO(tr->dxn, M * C);
        RP_TRY(tr_linear_backward(tr, &y->gate, tr->dg, y->xn2, tr->dxn, M));
        RP_TRY(tr_linear_backward(tr, &y->up, tr->du, y->xn2, tr->dxn, M));
        RP_TRY(k->rmsnorm(tr->bw, tr->dres, y->d_ffn_norm, tr->dxn, y->x_mid, y->ffn_norm, M, C, c->norm_eps));
        ZERO(tr->datt, M * QD);
        RP_TRY(tr_linear_backward(tr, &y->o, tr->dres, y->att, tr->datt, M));
        ZERO(tr->dq, M * QD); ZERO(tr->dk, M * KD); ZERO(tr->dv, M * KD);
        RP_TRY(rp_cpu_attention_backward_seqs(tr->bw, B, tr->dq, tr->dk, tr->dv, tr->datt, y->qa, y->ka, y->va, T, 0, c->n_head,
                                              c->n_head_kv, (int)D, KD, scale));
        RP_TRY(rp_cpu_rope_apply(tr->bw, tr->dq, M, c->n_head, (int)D, c->rope_dim, tr->pos, tr->rope_cos, tr->rope_sin, T,
                                 c->rope_neox, 1));
        RP_TRY(rp_cpu_rope_apply(tr->bw, tr->dk, M, c->n_head_kv, (int)D, c->rope_dim, tr->pos, tr->rope_cos, tr->rope_sin, T,
                                 c->rope_neox, 1));
        ZERO(tr->dxn, M * C);
        RP_TRY(tr_linear_backward(tr, &y->q, tr->dq, y->xn1, tr->dxn, M));
        RP_TRY(tr_linear_backward(tr, &y->k, tr->dk, y->xn1, tr->dxn, M));
        RP_TRY(tr_linear_backward(tr, &y->v, tr->dv, y->xn1, tr->dxn, M));
        RP_TRY(k->rmsnorm(tr->bw, tr->dres, y->d_attn_norm, tr->dxn, y->x_in, y->attn_norm, M, C, c->norm_eps));
    }
    if (tr->d_tok_embd) RP_TRY(k->embed(tr->bw, tr->d_tok_embd, V, C, tokens, M, tr->dres));
    return RP_OK;
}

/* Forward and backward on a batch, accumulating gradients. */
rp_status rp_trainer_forward_backward(rp_trainer *tr, const int32_t *tokens, const int32_t *targets, const uint8_t *mask,
                                      int B, int T, rp_seq_loss_fn loss_fn, void *ud, double *loss) {
    RP_TRY(check_batch(tr, tokens, targets, mask, B, T));
    tr->training = 1;
    RP_TRY(forward(tr, tokens, targets, mask, B, T));
    RP_TRY(loss_of(tr, mask, B, T, loss_fn, ud, loss));
    RP_TRY(backward(tr, tokens, targets, mask, B, T));
    tr->n_accum++;
    return RP_OK;
}

/* Forward only, without dropout. */
rp_status rp_trainer_eval(rp_trainer *tr, const int32_t *tokens, const int32_t *targets, const uint8_t *mask, int B, int T,
                          double *loss, double *seq_logp) {
    RP_TRY(check_batch(tr, tokens, targets, mask, B, T));
    tr->training = 0;
    RP_TRY(forward(tr, tokens, targets, mask, B, T));
    RP_TRY(loss_of(tr, mask, B, T, NULL, NULL, loss));
    if (seq_logp) memcpy(seq_logp, tr->seq_logp, (size_t)B * sizeof *seq_logp);
    return RP_OK;
}

/* Zero every gradient. */
void rp_trainer_zero_grad(rp_trainer *tr) {
    for (int i = 0; i < tr->n_params; i++) ZERO(tr->params[i].g, tr->params[i].n);
    tr->n_accum = 0;
}

/* Average, clip, step AdamW, zero. */
rp_status rp_trainer_update(rp_trainer *tr, float lr, float max_norm, double *grad_norm) {
    if (!tr->n_accum) return rp_fail(RP_ERR_INVAL, "train: update without a forward_backward since the last one");
    if (!(lr >= 0) || !isfinite(lr)) return rp_fail(RP_ERR_INVAL, "train: learning rate %g", lr);
    double ss = 0;
    for (int i = 0; i < tr->n_params; i++) ss += rp_grad_sumsq_pool(tr->pool, tr->params[i].g, tr->params[i].n);
    double norm = sqrt(ss) / tr->n_accum;
    if (grad_norm) *grad_norm = norm;
    if (!isfinite(norm)) {
        rp_trainer_zero_grad(tr);
        return rp_fail(RP_ERR_RANGE, "train: gradient norm is %g at step %lld (not finite); step skipped", norm, (long long)tr->step + 1);
    }
    float gs = rp_grad_clip_scale(norm, max_norm) / (float)tr->n_accum;
    tr->step++;
    for (int i = 0; i < tr->n_params; i++) {
        tr_param *q = &tr->params[i];
        RP_TRY(rp_adamw_update_zero(&tr->o.adamw, tr->pool, q->p, q->g, q->m, q->v, q->n, tr->step, lr, gs, q->decay));
    }
    tr->n_accum = 0;   /* the update zeroed every gradient in its pass */
    return RP_OK;
}
