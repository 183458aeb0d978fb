/* jamba_count.c: the tensor lists a configuration implies (parameters, in the released checkpoints' names
 * and shapes; and the cache of one sequence) and the accounting over them: total and active parameters,
 * layer census, KV values per token, Mamba state per sequence. Table 1 and Figure 2 come from here.
 * Invariant: every count is a sum over the walk; no closed formula is used. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "plugins/jamba/jamba.h"

static void emit(rp_jamba_tensor_fn fn, void *ud, int layer, int expert, int ndim, int64_t d0, int64_t d1, int64_t d2,
                 const char *fmt, ...) {
    rp_jamba_tensor t;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t.name, sizeof t.name, fmt, ap);
    va_end(ap);
    t.layer = layer; t.expert = expert; t.ndim = ndim;
    t.shape[0] = d0; t.shape[1] = ndim > 1 ? d1 : 1; t.shape[2] = ndim > 2 ? d2 : 1;
    t.numel = t.shape[0] * t.shape[1] * t.shape[2];
    fn(ud, &t);
}

void rp_jamba_walk(const rp_jamba_config *c, rp_jamba_tensor_fn fn, void *ud) {
    const int64_t d = c->d_model, F = c->ffn_dim, Di = rp_jamba_d_inner(c), N = c->d_state, R = c->dt_rank;
    emit(fn, ud, -1, -1, 2, c->vocab, d, 0, "model.embed_tokens.weight");
    for (int i = 0; i < c->n_layer; i++) {
        emit(fn, ud, i, -1, 1, d, 0, 0, "model.layers.%d.input_layernorm.weight", i);
        if (rp_jamba_layer_is_attn(c, i)) {
            int64_t q = (int64_t)c->n_head * c->head_dim, kv = (int64_t)c->n_head_kv * c->head_dim;
            emit(fn, ud, i, -1, 2, q, d, 0, "model.layers.%d.self_attn.q_proj.weight", i);
            emit(fn, ud, i, -1, 2, kv, d, 0, "model.layers.%d.self_attn.k_proj.weight", i);
            emit(fn, ud, i, -1, 2, kv, d, 0, "model.layers.%d.self_attn.v_proj.weight", i);
            emit(fn, ud, i, -1, 2, d, q, 0, "model.layers.%d.self_attn.o_proj.weight", i);
        } else {
            emit(fn, ud, i, -1, 2, 2 * Di, d, 0, "model.layers.%d.mamba.in_proj.weight", i);
            emit(fn, ud, i, -1, 3, Di, 1, c->d_conv, "model.layers.%d.mamba.conv1d.weight", i);
            if (c->conv_bias) emit(fn, ud, i, -1, 1, Di, 0, 0, "model.layers.%d.mamba.conv1d.bias", i);
            emit(fn, ud, i, -1, 2, R + 2 * N, Di, 0, "model.layers.%d.mamba.x_proj.weight", i);
            emit(fn, ud, i, -1, 2, Di, R, 0, "model.layers.%d.mamba.dt_proj.weight", i);
            emit(fn, ud, i, -1, 1, Di, 0, 0, "model.layers.%d.mamba.dt_proj.bias", i);
            emit(fn, ud, i, -1, 2, Di, N, 0, "model.layers.%d.mamba.A_log", i);
            emit(fn, ud, i, -1, 1, Di, 0, 0, "model.layers.%d.mamba.D", i);
            emit(fn, ud, i, -1, 2, d, Di, 0, "model.layers.%d.mamba.out_proj.weight", i);
            if (c->inner_norms) {
                emit(fn, ud, i, -1, 1, R, 0, 0, "model.layers.%d.mamba.dt_layernorm.weight", i);
                emit(fn, ud, i, -1, 1, N, 0, 0, "model.layers.%d.mamba.b_layernorm.weight", i);
                emit(fn, ud, i, -1, 1, N, 0, 0, "model.layers.%d.mamba.c_layernorm.weight", i);
            }
        }
        emit(fn, ud, i, -1, 1, d, 0, 0, "model.layers.%d.pre_ff_layernorm.weight", i);
        if (rp_jamba_layer_is_moe(c, i)) {
            emit(fn, ud, i, -1, 2, c->n_experts, d, 0, "model.layers.%d.feed_forward.router.weight", i);
            for (int e = 0; e < c->n_experts; e++) {
                emit(fn, ud, i, e, 2, F, d, 0, "model.layers.%d.feed_forward.experts.%d.gate_proj.weight", i, e);
                emit(fn, ud, i, e, 2, F, d, 0, "model.layers.%d.feed_forward.experts.%d.up_proj.weight", i, e);
                emit(fn, ud, i, e, 2, d, F, 0, "model.layers.%d.feed_forward.experts.%d.down_proj.weight", i, e);
            }
        } else {
            emit(fn, ud, i, -1, 2, F, d, 0, "model.layers.%d.feed_forward.gate_proj.weight", i);
            emit(fn, ud, i, -1, 2, F, d, 0, "model.layers.%d.feed_forward.up_proj.weight", i);
            emit(fn, ud, i, -1, 2, d, F, 0, "model.layers.%d.feed_forward.down_proj.weight", i);
        }
    }
    emit(fn, ud, -1, -1, 1, d, 0, 0, "model.final_layernorm.weight");
    if (!c->tied) emit(fn, ud, -1, -1, 2, c->vocab, d, 0, "lm_head.weight");
}

void rp_jamba_walk_cache(const rp_jamba_config *c, int64_t n_ctx, int conv_rows, rp_jamba_tensor_fn fn, void *ud) {
    const int64_t Di = rp_jamba_d_inner(c), kv = (int64_t)c->n_head_kv * c->head_dim;
    for (int i = 0; i < c->n_layer; i++) {
        if (rp_jamba_layer_is_attn(c, i)) {
            emit(fn, ud, i, -1, 2, n_ctx, kv, 0, "cache.layers.%d.key", i);
            emit(fn, ud, i, -1, 2, n_ctx, kv, 0, "cache.layers.%d.value", i);
        } else {
            emit(fn, ud, i, -1, 2, Di, conv_rows, 0, "cache.layers.%d.conv_state", i);
            emit(fn, ud, i, -1, 2, Di, c->d_state, 0, "cache.layers.%d.ssm_state", i);
        }
    }
}

typedef struct count_ctx { const rp_jamba_config *c; rp_jamba_counts *o; int64_t kv_one, kv_cache_two; } count_ctx;

static void count_param(void *ud, const rp_jamba_tensor *t) {
    count_ctx *x = ud;
    x->o->n_tensors++;
    x->o->total += t->numel;
    if (t->expert < x->c->top_k) x->o->active += t->numel;   /* experts are equal-sized: any K of them */
    if (t->layer < 0 && t->ndim == 2) x->o->embed += t->numel;
}
static void count_kv(void *ud, const rp_jamba_tensor *t) {
    count_ctx *x = ud;
    if (strstr(t->name, ".key") || strstr(t->name, ".value")) x->kv_one += t->numel;     /* n_ctx = 1 */
}
static void count_state(void *ud, const rp_jamba_tensor *t) {
    count_ctx *x = ud;
    if (strstr(t->name, "_state")) x->kv_cache_two += t->numel;
}

void rp_jamba_count(const rp_jamba_config *c, rp_jamba_counts *out) {
    memset(out, 0, sizeof *out);
    count_ctx x = { c, out, 0, 0 };
    rp_jamba_walk(c, count_param, &x);
    rp_jamba_walk_cache(c, 1, c->d_conv, count_kv, &x);
    rp_jamba_walk_cache(c, 1, c->d_conv, count_state, &x);
    out->kv_values_per_token = x.kv_one;
    out->mamba_state_values = x.kv_cache_two;
    for (int i = 0; i < c->n_layer; i++) {
        int a = rp_jamba_layer_is_attn(c, i), e = rp_jamba_layer_is_moe(c, i);
        out->n_attn += a; out->n_mamba += !a; out->n_moe += e;
        out->n_attn_moe += a && e; out->n_mamba_moe += !a && e;
    }
}
