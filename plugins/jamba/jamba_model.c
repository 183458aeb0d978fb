/* jamba_model.c: building a Jamba-family model in memory: one buffer per checkpoint tensor, sized here
 * from the layer's own shapes (what the forward multiplies with) and counted as allocated, so the count
 * can be checked against the configuration's tensor walk; the spec's from-scratch initialisation; and
 * the hybrid cache. Invariant: n_params is the sum of the sizes of the buffers the model owns. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "plugins/jamba/jamba_impl.h"

/* splitmix64: the initialisation's deterministic stream. */
static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double uniform(uint64_t *s) { return ((next_u64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
static void fill_normal(float *p, int64_t n, float std, uint64_t *s) {
    for (int64_t i = 0; i < n; i += 2) {
        double r = sqrt(-2 * log(uniform(s))), a = 2 * M_PI * uniform(s);
        p[i] = (float)(std * r * cos(a));
        if (i + 1 < n) p[i + 1] = (float)(std * r * sin(a));
    }
}
static void fill_uniform(float *p, int64_t n, float bound, uint64_t *s) {
    for (int64_t i = 0; i < n; i++) p[i] = (float)((2 * uniform(s) - 1) * bound);
}
static void fill_const(float *p, int64_t n, float v) { for (int64_t i = 0; i < n; i++) p[i] = v; }

/* A parameter buffer of n floats, recorded for counting and freeing; NULL on failure. */
static float *param(rp_jamba_model *m, int64_t n) {
    if (m->n_allocs == m->cap_allocs) {
        int cap = m->cap_allocs ? 2 * m->cap_allocs : 256;
        jamba_alloc *a = realloc(m->allocs, (size_t)cap * sizeof *a);
        if (!a) return NULL;
        m->allocs = a; m->cap_allocs = cap;
    }
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p) return NULL;
    m->allocs[m->n_allocs++] = (jamba_alloc){ p, n };
    m->n_params += n;
    return p;
}

#define P(dst, n) do { if (!((dst) = param(m, (n)))) goto nomem; } while (0)

static rp_status build_layer(rp_jamba_model *m, int i, uint64_t *s) {
    const rp_jamba_config *c = &m->cfg;
    const int64_t d = c->d_model, F = c->ffn_dim, Di = rp_jamba_d_inner(c), N = c->d_state, R = c->dt_rank, K = c->d_conv;
    const float std = c->init_std;
    jamba_layer *L = &m->layers[i];
    L->attn = rp_jamba_layer_is_attn(c, i);
    L->moe = rp_jamba_layer_is_moe(c, i);
    L->ff_n = L->moe ? c->n_experts : 1;
    P(L->in_norm, d); fill_const(L->in_norm, d, 1);
    if (L->attn) {
        int64_t q = (int64_t)c->n_head * c->head_dim, kv = (int64_t)c->n_head_kv * c->head_dim;
        P(L->wq, q * d); fill_normal(L->wq, q * d, std, s);
        P(L->wk, kv * d); fill_normal(L->wk, kv * d, std, s);
        P(L->wv, kv * d); fill_normal(L->wv, kv * d, std, s);
        P(L->wo, d * q); fill_normal(L->wo, d * q, std, s);
    } else {
        P(L->in_proj, 2 * Di * d); fill_normal(L->in_proj, 2 * Di * d, std, s);
        P(L->conv_w, Di * K); fill_uniform(L->conv_w, Di * K, 1.0f / sqrtf((float)K), s);   /* PyTorch Conv1d default */
        if (c->conv_bias) { P(L->conv_b, Di); fill_uniform(L->conv_b, Di, 1.0f / sqrtf((float)K), s); }
        P(L->x_proj, (R + 2 * N) * Di); fill_normal(L->x_proj, (R + 2 * N) * Di, std, s);
        P(L->dt_w, Di * R); fill_uniform(L->dt_w, Di * R, 1.0f / sqrtf((float)R), s);
        P(L->dt_b, Di);
        for (int64_t k = 0; k < Di; k++) {     /* dt log-uniform in [1e-3, 1e-1], floored at 1e-4; b = softplus^-1(dt) */
            double dt = exp(log(1e-3) + uniform(s) * (log(1e-1) - log(1e-3)));
            if (dt < 1e-4) dt = 1e-4;
            L->dt_b[k] = (float)(dt + log(-expm1(-dt)));
        }
        P(L->A_log, Di * N);
        for (int64_t k = 0; k < Di; k++) for (int64_t n = 0; n < N; n++) L->A_log[k * N + n] = logf((float)(n + 1));
        P(L->Dskip, Di); fill_const(L->Dskip, Di, 1);
        P(L->out_proj, d * Di); fill_normal(L->out_proj, d * Di, std, s);
        if (c->inner_norms) {
            P(L->dt_norm, R); fill_const(L->dt_norm, R, 1);
            P(L->b_norm, N); fill_const(L->b_norm, N, 1);
            P(L->c_norm, N); fill_const(L->c_norm, N, 1);
        }
    }
    P(L->ff_norm, d); fill_const(L->ff_norm, d, 1);
    if (L->moe) { P(L->router, c->n_experts * d); fill_normal(L->router, c->n_experts * d, std, s); }
    L->gate = calloc((size_t)L->ff_n, sizeof *L->gate);
    L->up = calloc((size_t)L->ff_n, sizeof *L->up);
    L->down = calloc((size_t)L->ff_n, sizeof *L->down);
    if (!L->gate || !L->up || !L->down) goto nomem;
    for (int e = 0; e < L->ff_n; e++) {
        P(L->gate[e], F * d); fill_normal(L->gate[e], F * d, std, s);
        P(L->up[e], F * d); fill_normal(L->up[e], F * d, std, s);
        P(L->down[e], d * F); fill_normal(L->down[e], d * F, std, s);
    }
    return RP_OK;
nomem:
    return rp_fail(RP_ERR_NOMEM, "jamba model '%s': out of memory building layer %d", c->name, i);
}

rp_status rp_jamba_model_new(const rp_jamba_config *c, uint64_t seed, rp_backend *be, rp_jamba_model **out) {
    *out = NULL;
    RP_TRY(rp_jamba_config_check(c));
    rp_jamba_model *m = calloc(1, sizeof *m);
    if (!m) return rp_fail(RP_ERR_NOMEM, "jamba model: out of memory");
    m->cfg = *c;
    m->be = be ? be : rp_backend_default();
    if (!m->be) { free(m); return rp_fail(RP_ERR_UNSUPPORTED, "jamba model: no compute backend available"); }
    if (!m->be->ops->host_memory) {   /* its weights and activations are host arrays the ops read directly */
        const char *bn = m->be->name;
        free(m);
        return rp_fail(RP_ERR_UNSUPPORTED, "jamba model: backend %s computes on device buffers; this model keeps host arrays (use cpu or ref)", bn);
    }
    uint64_t s = seed ^ 0x6a09e667f3bcc909ull;
    const int64_t d = c->d_model, V = c->vocab;
    rp_status st = RP_OK;
    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) goto nomem;
    P(m->embed, V * d); fill_normal(m->embed, V * d, c->init_std, &s);
    for (int i = 0; i < c->n_layer && st == RP_OK; i++) st = build_layer(m, i, &s);
    if (st != RP_OK) { rp_jamba_model_free(m); return st; }
    P(m->final_norm, d); fill_const(m->final_norm, d, 1);
    if (c->tied) m->lm_head = m->embed;
    else { P(m->lm_head, V * d); fill_normal(m->lm_head, V * d, c->init_std, &s); }
    *out = m;
    return RP_OK;
nomem:
    rp_jamba_model_free(m);
    return rp_fail(RP_ERR_NOMEM, "jamba model '%s': out of memory", c->name);
}

void rp_jamba_model_free(rp_jamba_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_allocs; i++) free(m->allocs[i].p);
    if (m->layers)
        for (int i = 0; i < m->cfg.n_layer; i++) { free(m->layers[i].gate); free(m->layers[i].up); free(m->layers[i].down); }
    free(m->allocs);
    free(m->layers);
    free(m);
}

const rp_jamba_config *rp_jamba_model_config(const rp_jamba_model *m) { return &m->cfg; }
int64_t rp_jamba_model_n_params(const rp_jamba_model *m) { return m->n_params; }

/* The model's buffer for a walk entry (by the entry's role), or NULL when the model has none. */
static float *buffer_for(rp_jamba_model *m, const rp_jamba_tensor *t) {
    static const struct { const char *suffix; size_t off; } ROLES[] = {
        { "input_layernorm.weight", offsetof(jamba_layer, in_norm) }, { "pre_ff_layernorm.weight", offsetof(jamba_layer, ff_norm) },
        { "q_proj.weight", offsetof(jamba_layer, wq) }, { "k_proj.weight", offsetof(jamba_layer, wk) },
        { "v_proj.weight", offsetof(jamba_layer, wv) }, { "o_proj.weight", offsetof(jamba_layer, wo) },
        { "in_proj.weight", offsetof(jamba_layer, in_proj) }, { "conv1d.weight", offsetof(jamba_layer, conv_w) },
        { "conv1d.bias", offsetof(jamba_layer, conv_b) }, { "x_proj.weight", offsetof(jamba_layer, x_proj) },
        { "dt_proj.weight", offsetof(jamba_layer, dt_w) }, { "dt_proj.bias", offsetof(jamba_layer, dt_b) },
        { "A_log", offsetof(jamba_layer, A_log) }, { "mamba.D", offsetof(jamba_layer, Dskip) },
        { "out_proj.weight", offsetof(jamba_layer, out_proj) }, { "dt_layernorm.weight", offsetof(jamba_layer, dt_norm) },
        { "b_layernorm.weight", offsetof(jamba_layer, b_norm) }, { "c_layernorm.weight", offsetof(jamba_layer, c_norm) },
        { "router.weight", offsetof(jamba_layer, router) },
    };
    size_t len = strlen(t->name);
    if (t->layer < 0) {
        if (strcmp(t->name, "model.embed_tokens.weight") == 0) return m->embed;
        if (strcmp(t->name, "model.final_layernorm.weight") == 0) return m->final_norm;
        if (strcmp(t->name, "lm_head.weight") == 0) return m->lm_head;
        return NULL;
    }
    jamba_layer *L = &m->layers[t->layer];
    int e = t->expert < 0 ? 0 : t->expert;
    if (e >= L->ff_n) return NULL;
    if (strstr(t->name, "gate_proj")) return L->gate[e];
    if (strstr(t->name, "up_proj")) return L->up[e];
    if (strstr(t->name, "down_proj")) return L->down[e];
    for (size_t r = 0; r < sizeof ROLES / sizeof ROLES[0]; r++) {
        size_t sl = strlen(ROLES[r].suffix);
        if (len >= sl && strcmp(t->name + len - sl, ROLES[r].suffix) == 0) return *(float **)((char *)L + ROLES[r].off);
    }
    return NULL;
}

typedef struct each_ctx {
    rp_jamba_model *m;
    void (*fn)(void *ud, const rp_jamba_tensor *t, float *data, int64_t allocated);
    void *ud;
} each_ctx;
static void each_one(void *ud, const rp_jamba_tensor *t) {
    each_ctx *x = ud;
    float *p = buffer_for(x->m, t);
    int64_t n = -1;
    for (int i = 0; p && i < x->m->n_allocs; i++) if (x->m->allocs[i].p == p) { n = x->m->allocs[i].n; break; }
    x->fn(x->ud, t, p, n);
}

void rp_jamba_model_each(rp_jamba_model *m, void (*fn)(void *ud, const rp_jamba_tensor *t, float *data, int64_t allocated), void *ud) {
    each_ctx x = { m, fn, ud };
    rp_jamba_walk(&m->cfg, each_one, &x);
}

/* ---- cache ---- */

rp_status rp_jamba_cache_new(const rp_jamba_model *m, int n_ctx, rp_jamba_cache **out) {
    *out = NULL;
    const rp_jamba_config *c = &m->cfg;
    if (n_ctx < 1) return rp_fail(RP_ERR_INVAL, "jamba cache: n_ctx must be >= 1 (got %d)", n_ctx);
    rp_jamba_cache *k = calloc(1, sizeof *k);
    if (!k) return rp_fail(RP_ERR_NOMEM, "jamba cache: out of memory");
    k->m = m; k->n_ctx = n_ctx;
    int nl = c->n_layer;
    k->k = calloc((size_t)nl, sizeof *k->k); k->v = calloc((size_t)nl, sizeof *k->v);
    k->conv = calloc((size_t)nl, sizeof *k->conv); k->ssm = calloc((size_t)nl, sizeof *k->ssm);
    if (!k->k || !k->v || !k->conv || !k->ssm) goto nomem;
    const int64_t kv = (int64_t)c->n_head_kv * c->head_dim, Di = rp_jamba_d_inner(c);
    for (int i = 0; i < nl; i++) {
        if (m->layers[i].attn) {
            k->k[i] = calloc((size_t)(n_ctx * kv), sizeof(float)); k->v[i] = calloc((size_t)(n_ctx * kv), sizeof(float));
            if (!k->k[i] || !k->v[i]) goto nomem;
            k->bytes += 2 * n_ctx * kv * (int64_t)sizeof(float);
        } else {
            k->conv[i] = calloc((size_t)((c->d_conv - 1) * Di + 1), sizeof(float));
            k->ssm[i] = calloc((size_t)(Di * c->d_state), sizeof(float));
            if (!k->conv[i] || !k->ssm[i]) goto nomem;
            k->bytes += ((c->d_conv - 1) * Di + Di * c->d_state) * (int64_t)sizeof(float);
        }
    }
    *out = k;
    return RP_OK;
nomem:
    rp_jamba_cache_free(k);
    return rp_fail(RP_ERR_NOMEM, "jamba cache: out of memory for %d tokens", n_ctx);
}

void rp_jamba_cache_free(rp_jamba_cache *k) {
    if (!k) return;
    for (int i = 0; i < k->m->cfg.n_layer; i++) {
        if (k->k) free(k->k[i]);
        if (k->v) free(k->v[i]);
        if (k->conv) free(k->conv[i]);
        if (k->ssm) free(k->ssm[i]);
    }
    free(k->k); free(k->v); free(k->conv); free(k->ssm);
    rp_jamba_scratch_free(&k->s);
    free(k);
}

void rp_jamba_cache_reset(rp_jamba_cache *k) {
    const rp_jamba_config *c = &k->m->cfg;
    const int64_t Di = rp_jamba_d_inner(c);
    for (int i = 0; i < c->n_layer; i++)
        if (k->conv[i]) {
            memset(k->conv[i], 0, (size_t)((c->d_conv - 1) * Di) * sizeof(float));
            memset(k->ssm[i], 0, (size_t)(Di * c->d_state) * sizeof(float));
        }
    k->pos = 0;
}

rp_status rp_jamba_cache_fill(rp_jamba_cache *k, int pos, uint64_t seed) {
    if (pos < 0 || pos > k->n_ctx) return rp_fail(RP_ERR_RANGE, "jamba cache fill: position %d outside [0, %d]", pos, k->n_ctx);
    const rp_jamba_config *c = &k->m->cfg;
    const int64_t kv = (int64_t)c->n_head_kv * c->head_dim, Di = rp_jamba_d_inner(c);
    uint64_t s = seed;
    rp_jamba_cache_reset(k);
    for (int i = 0; i < c->n_layer; i++) {
        if (k->k[i]) { fill_uniform(k->k[i], pos * kv, 0.1f, &s); fill_uniform(k->v[i], pos * kv, 0.1f, &s); }
        if (k->conv[i] && pos > 0) {
            fill_uniform(k->conv[i], (c->d_conv - 1) * Di, 0.1f, &s);
            fill_uniform(k->ssm[i], Di * c->d_state, 0.1f, &s);
        }
    }
    k->pos = pos;
    return RP_OK;
}

int rp_jamba_cache_pos(const rp_jamba_cache *k) { return k->pos; }
int64_t rp_jamba_cache_bytes(const rp_jamba_cache *k) { return k->bytes; }
