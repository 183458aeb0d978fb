/* l_jamba.c: require("repro.jamba"): Jamba-family configurations, their accounting and models for Lua.
 *   jamba.names()                     -> {"jamba-v0.1", ...}
 *   jamba.config(name | cfg [, overrides]) -> cfg (a table of every knob; checked: a bad knob raises naming it)
 *   jamba.count(cfg)                  -> {total=, active=, embed=, n_tensors=, n_attn=, n_mamba=, n_moe=, n_attn_moe=,
 *                                         n_mamba_moe=, kv_values_per_token=, mamba_state_values=}   (from the walk)
 *   jamba.attention_layers(cfg)       -> {i...}: the 1-based indices of its attention layers
 *   jamba.tensors(cfg)                -> {{name=, shape={...}, numel=, layer=, expert=}, ...}   (the walk itself)
 *   jamba.machine()                   -> {load1=, cpus=, gflops_wall=, gflops_cpu=}   (load average and one-thread FMA
 *                                       rate per wall- and per CPU-second now: how loaded a timing's machine was)
 *   jamba.new(cfg [, {seed=, backend="cpu"|"ref"}]) -> m  (userdata "repro.jamba"; fresh from-scratch init)
 *   m:info()                          -> cfg fields + n_params (counted as the model allocated them)
 *   m:score(ids)                      -> {lp...} (lp[i] = log p(ids[i+1] | ids[1..i])), aux (load-balancing loss)
 *   m:forward(ids)                    -> logits of the last token (list of vocab numbers), aux
 *   m:generate{tokens=, max_tokens=, temperature=, seed=} -> {ids}, {n_prompt=, tokens_per_s=}
 *   m:time_decode{context=, steps=, batch=, warmup=} -> median seconds per decoding step of `batch` sequences (one
 *                                       token each, one batched forward) after `context` cached tokens and `warmup`
 *                                       untimed steps (default 2: first touches of fresh caches), their caches' bytes
 *   m:time_prefill{tokens=}           -> seconds for a prompt of that many tokens
 *   m:attention_maps(ids, {layer=, positions={...}}) -> maps: maps[i][h] = {p...}, the softmax weights of head h
 *                                       of attention layer `layer` (1-based, counting every layer) from query
 *                                       position positions[i] (1-based) over key positions 1..n (0 after the query)
 *   m:close()
 *   jamba.trainer(cfg, {seed=, T=, aux_coef=, backend=, threads=}) -> tr  (userdata "repro.jamba_trainer": a fresh
 *                                       model of its own, trained from scratch; T = the longest step sequence;
 *                                       threads = n: a CPU pool of n threads of its own, so that step_all may run it
 *                                       beside other trainers)
 *   jamba.step_all({tr...}, {{ids...}...} [, {{mask...}...}]) -> {{loss={...}, aux=, max_inner=, max_resid=}...}:
 *                                       tr[i]:step(batches[i][b], masks[i][b]) for every micro-batch b, trainer i's
 *                                       in order, the trainers concurrently over the machine's threads (each needs
 *                                       threads = 1 or the reference backend); one list of per-micro-batch values each
 *   tr:step(ids [, mask])             -> loss, aux, max_inner, max_resid   (ids: T'+1 tokens, T' <= T; forward +
 *                                       backward, gradients added: call it once per micro-batch; mask: T' weights
 *                                       >= 0, mask[i] weighting the loss of predicting ids[i+1])
 *   tr:update{lr=, scale=, clip=, weight_decay=, beta1=, beta2=, eps=} -> gradient norm (AdamW, then zero grads)
 *   tr:score(ids)                     -> Σ log p(ids[i+1] | ids[1..i]) (nats), number of predicted tokens
 *   tr:predict(ids)                   -> {top...}, {lp...}: top[i] = the greedy next token after ids[1..i] (i <= n),
 *                                       lp[i] = log p(ids[i+1] | ids[1..i]) (i < n), one forward
 *   tr:attention_maps(ids, {layer=, positions=})  -> as m:attention_maps, for the trained weights
 *   tr:close()
 * Token ids are 0-based as in the model (no tokenizer: these models are randomly initialised). */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "lua/host.h"
#include "plugins/jamba/jamba.h"
#include "tensor/pool.h"

RP_LUA_MODULE(jamba, rp_luaopen_jamba);

#define JAMBA_CLASS "repro.jamba"

typedef struct field { const char *name; size_t off; int is_float; } field;
#define FI(x) { #x, offsetof(rp_jamba_config, x), 0 }
#define FF(x) { #x, offsetof(rp_jamba_config, x), 1 }
static const field FIELDS[] = {
    FI(n_layer), FI(block_len), FI(attn), FI(mamba), FI(attn_offset), FI(moe_every), FI(moe_offset), FI(n_experts),
    FI(top_k), FI(moe_renorm), FI(d_model), FI(n_head), FI(n_head_kv), FI(head_dim), FI(ffn_dim), FI(vocab),
    FI(d_state), FI(d_conv), FI(expand), FI(dt_rank), FI(conv_bias), FI(inner_norms), FI(rope), FI(tied),
    FF(rope_theta), FF(norm_eps), FF(init_std),
};
#define N_FIELDS (sizeof FIELDS / sizeof FIELDS[0])

static void push_config(lua_State *L, const rp_jamba_config *c) {
    lua_createtable(L, 0, (int)N_FIELDS + 1);
    lua_pushstring(L, c->name);
    lua_setfield(L, -2, "name");
    for (size_t i = 0; i < N_FIELDS; i++) {
        const char *p = (const char *)c + FIELDS[i].off;
        if (FIELDS[i].is_float) lua_pushnumber(L, *(const float *)p);
        else lua_pushinteger(L, *(const int *)p);
        lua_setfield(L, -2, FIELDS[i].name);
    }
}

/* Apply the fields of the table at idx onto c, rejecting unknown keys. */
static void apply_fields(lua_State *L, int idx, rp_jamba_config *c) {
    static const char *keys[N_FIELDS + 2];
    keys[0] = "name";
    for (size_t i = 0; i < N_FIELDS; i++) keys[i + 1] = FIELDS[i].name;
    keys[N_FIELDS + 1] = NULL;
    rp_lua_check_keys(L, idx, "jamba config", keys);
    const char *name = rp_lua_field_string(L, idx, "name", NULL);
    if (name) snprintf(c->name, sizeof c->name, "%s", name);
    for (size_t i = 0; i < N_FIELDS; i++) {
        char *p = (char *)c + FIELDS[i].off;
        if (FIELDS[i].is_float) *(float *)p = (float)rp_lua_field_number(L, idx, FIELDS[i].name, *(float *)p);
        else {
            long long v = rp_lua_field_integer(L, idx, FIELDS[i].name, *(int *)p);
            if (v < -1000000000LL || v > 1000000000LL) luaL_error(L, "jamba config: %s = %f out of range", FIELDS[i].name, (double)v);
            *(int *)p = (int)v;
        }
    }
}

/* A checked configuration from the argument at idx: a name, or a table (with a name: that config, then overrides). */
static rp_jamba_config check_config(lua_State *L, int idx) {
    rp_jamba_config c;
    memset(&c, 0, sizeof c);
    if (lua_type(L, idx) == LUA_TSTRING) {
        if (rp_jamba_config_get(lua_tostring(L, idx), &c) != RP_OK) rp_lua_fail(L, RP_ERR_NOTFOUND, "jamba.config");
    } else {
        luaL_checktype(L, idx, LUA_TTABLE);
        const char *name = rp_lua_field_string(L, idx, "name", NULL);
        if (!name) luaL_error(L, "jamba config: a table needs the name of the configuration it starts from");
        if (rp_jamba_config_get(name, &c) != RP_OK) snprintf(c.name, sizeof c.name, "%s", name);   /* custom: every field given */
        apply_fields(L, idx, &c);
    }
    if (rp_jamba_config_check(&c) != RP_OK) rp_lua_fail(L, RP_ERR_INVAL, "jamba.config");
    return c;
}

static int l_names(lua_State *L) {
    lua_newtable(L);
    int i = 0;
    for (const char *const *n = rp_jamba_config_names(); *n; n++) { lua_pushstring(L, *n); lua_rawseti(L, -2, ++i); }
    return 1;
}

static int l_config(lua_State *L) {
    rp_jamba_config c = check_config(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        apply_fields(L, 2, &c);
        if (rp_jamba_config_check(&c) != RP_OK) rp_lua_fail(L, RP_ERR_INVAL, "jamba.config");
    }
    push_config(L, &c);
    return 1;
}

#define SETI(k, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, k))

static int l_count(lua_State *L) {
    rp_jamba_config c = check_config(L, 1);
    rp_jamba_counts k;
    rp_jamba_count(&c, &k);
    lua_newtable(L);
    SETI("total", k.total); SETI("active", k.active); SETI("embed", k.embed); SETI("n_tensors", k.n_tensors);
    SETI("n_attn", k.n_attn); SETI("n_mamba", k.n_mamba); SETI("n_moe", k.n_moe); SETI("n_attn_moe", k.n_attn_moe);
    SETI("n_mamba_moe", k.n_mamba_moe); SETI("kv_values_per_token", k.kv_values_per_token);
    SETI("mamba_state_values", k.mamba_state_values);
    return 1;
}

static int l_attention_layers(lua_State *L) {
    rp_jamba_config c = check_config(L, 1);
    lua_newtable(L);
    for (int i = 0, k = 0; i < c.n_layer; i++)
        if (rp_jamba_layer_is_attn(&c, i)) { lua_pushinteger(L, i + 1); lua_rawseti(L, -2, ++k); }
    return 1;
}

static void push_tensor(void *ud, const rp_jamba_tensor *t) {
    lua_State *L = ud;
    lua_createtable(L, 0, 5);
    lua_pushstring(L, t->name); lua_setfield(L, -2, "name");
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) { lua_pushinteger(L, (lua_Integer)t->shape[i]); lua_rawseti(L, -2, i + 1); }
    lua_setfield(L, -2, "shape");
    SETI("numel", t->numel); SETI("layer", t->layer); SETI("expert", t->expert);
    lua_rawseti(L, -2, (int)rp_lua_rawlen(L, -2) + 1);
}

static int l_tensors(lua_State *L) {
    rp_jamba_config c = check_config(L, 1);
    lua_newtable(L);
    rp_jamba_walk(&c, push_tensor, L);
    return 1;
}

static void model_release(void *p) { rp_jamba_model_free(p); }
static rp_jamba_model *check_model(lua_State *L) { return rp_lua_checkobj(L, 1, JAMBA_CLASS); }

static int32_t *check_ids(lua_State *L, int idx, const rp_jamba_model *m, int *n) {
    luaL_checktype(L, idx, LUA_TTABLE);
    int len = (int)rp_lua_rawlen(L, idx), V = rp_jamba_model_config(m)->vocab;
    int32_t *ids = lua_newuserdata(L, (size_t)(len ? len : 1) * sizeof *ids);
    for (int i = 0; i < len; i++) {
        lua_rawgeti(L, idx, i + 1);
        long long v = rp_lua_checkinteger(L, -1);
        if (v < 0 || v >= V) luaL_error(L, "token id %f at index %d outside the vocabulary [0, %d)", (double)v, i + 1, V);
        ids[i] = (int32_t)v;
        lua_pop(L, 1);
    }
    *n = len;
    return ids;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const luaL_Reg *model_methods(void);

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int l_machine(lua_State *L) {
    rp_jamba_machine mc;
    rp_jamba_machine_probe(&mc);
    lua_createtable(L, 0, 4);
    lua_pushnumber(L, mc.load1); lua_setfield(L, -2, "load1");
    lua_pushinteger(L, rp_cpus_online()); lua_setfield(L, -2, "cpus");   /* what load1 is measured against */
    lua_pushnumber(L, mc.gflops_wall); lua_setfield(L, -2, "gflops_wall");
    lua_pushnumber(L, mc.gflops_cpu); lua_setfield(L, -2, "gflops_cpu");
    return 1;
}

static int l_new(lua_State *L) {
    rp_jamba_config c = check_config(L, 1);
    rp_backend *be = NULL;
    unsigned long long seed = rp_lua_seed(L, "jamba.init");
    if (lua_istable(L, 2)) {
        static const char *const keys[] = { "seed", "backend", NULL };
        rp_lua_check_keys(L, 2, "jamba.new", keys);
        seed = (unsigned long long)rp_lua_field_integer(L, 2, "seed", (long long)seed);
        const char *bn = rp_lua_field_string(L, 2, "backend", NULL);
        if (bn && !(be = rp_backend_by_name(bn))) luaL_error(L, "jamba.new: unknown backend '%s' (cpu, ref)", bn);
    }
    rp_jamba_model *m = NULL;
    rp_status st = rp_jamba_model_new(&c, seed, be, &m);
    if (st != RP_OK) return rp_lua_fail(L, st, "jamba.new");
    rp_lua_newobj(L, JAMBA_CLASS, m, model_methods(), model_release);
    return 1;
}

/* m:attention_maps / tr:attention_maps on model m: ids at index 2, options at 3 (see the header). */
static int push_attention_maps(lua_State *L, rp_jamba_model *m) {
    int n;
    int32_t *ids = check_ids(L, 2, m, &n);
    luaL_checktype(L, 3, LUA_TTABLE);
    static const char *const keys[] = { "layer", "positions", NULL };
    rp_lua_check_keys(L, 3, "attention_maps", keys);
    long long layer = rp_lua_field_integer(L, 3, "layer", 0);
    lua_getfield(L, 3, "positions");
    if (!lua_istable(L, -1)) return luaL_error(L, "attention_maps: positions must be a list of 1-based query positions");
    int nq = (int)rp_lua_rawlen(L, -1);
    if (nq < 1) return luaL_error(L, "attention_maps: positions is empty");
    int *qpos = lua_newuserdata(L, (size_t)nq * sizeof *qpos);
    for (int i = 0; i < nq; i++) {
        lua_rawgeti(L, -2, i + 1);
        long long v = rp_lua_checkinteger(L, -1);   /* rejects fractions on both runtimes */
        if (v < 1 || v > n) return luaL_error(L, "attention_maps: positions[%d] = %lld outside [1, %d]", i + 1, v, n);
        qpos[i] = (int)v - 1;
        lua_pop(L, 1);
    }
    const int H = rp_jamba_model_config(m)->n_head;
    float *out = lua_newuserdata(L, (size_t)nq * (size_t)H * (size_t)n * sizeof *out);
    if (layer < 1 || layer > rp_jamba_model_config(m)->n_layer)
        return luaL_error(L, "attention_maps: layer %lld outside [1, %d]", layer, rp_jamba_model_config(m)->n_layer);
    rp_status st = rp_jamba_attention_maps(m, ids, n, (int)layer - 1, qpos, nq, out);
    if (st != RP_OK) return rp_lua_fail(L, st, "attention_maps");
    lua_createtable(L, nq, 0);
    for (int i = 0; i < nq; i++) {
        lua_createtable(L, H, 0);
        for (int h = 0; h < H; h++) {
            lua_createtable(L, n, 0);
            for (int j = 0; j < n; j++) { lua_pushnumber(L, out[((size_t)i * H + h) * n + j]); lua_rawseti(L, -2, j + 1); }
            lua_rawseti(L, -2, h + 1);
        }
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_attention_maps(lua_State *L) { return push_attention_maps(L, check_model(L)); }

static int l_info(lua_State *L) {
    rp_jamba_model *m = check_model(L);
    push_config(L, rp_jamba_model_config(m));
    SETI("n_params", rp_jamba_model_n_params(m));
    return 1;
}

static int l_score(lua_State *L) {
    rp_jamba_model *m = check_model(L);
    int n;
    int32_t *ids = check_ids(L, 2, m, &n);
    double *lp = lua_newuserdata(L, (size_t)(n > 1 ? n - 1 : 1) * sizeof *lp), aux = 0;
    rp_status st = rp_jamba_score(m, ids, n, lp, &aux);
    if (st != RP_OK) return rp_lua_fail(L, st, "jamba score");
    lua_createtable(L, n - 1, 0);
    for (int i = 0; i < n - 1; i++) { lua_pushnumber(L, lp[i]); lua_rawseti(L, -2, i + 1); }
    lua_pushnumber(L, aux);
    return 2;
}

static int l_forward(lua_State *L) {
    rp_jamba_model *m = check_model(L);
    int n, V = rp_jamba_model_config(m)->vocab;
    int32_t *ids = check_ids(L, 2, m, &n);
    float *logits = lua_newuserdata(L, (size_t)V * sizeof *logits);
    rp_jamba_cache *k = NULL;
    double aux = 0;
    rp_status st = rp_jamba_cache_new(m, n > 0 ? n : 1, &k);
    if (st == RP_OK) st = rp_jamba_forward(m, k, ids, n, logits, 1, &aux);
    rp_jamba_cache_free(k);
    if (st != RP_OK) return rp_lua_fail(L, st, "jamba forward");
    lua_createtable(L, V, 0);
    for (int i = 0; i < V; i++) { lua_pushnumber(L, logits[i]); lua_rawseti(L, -2, i + 1); }
    lua_pushnumber(L, aux);
    return 2;
}

static int l_generate(lua_State *L) {
    rp_jamba_model *m = check_model(L);
    static const char *const keys[] = { "tokens", "max_tokens", "temperature", "seed", NULL };
    luaL_checktype(L, 2, LUA_TTABLE);
    rp_lua_check_keys(L, 2, "generate", keys);
    int max_new = (int)rp_lua_field_integer(L, 2, "max_tokens", 16);
    float temp = (float)rp_lua_field_number(L, 2, "temperature", 0.0);
    lua_getfield(L, 2, "seed");
    unsigned long long seed = lua_isnil(L, -1) ? rp_lua_seed(L, "jamba.generate") : (unsigned long long)rp_lua_checkinteger(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 2, "tokens");
    int n;
    int32_t *ids = check_ids(L, lua_gettop(L), m, &n);
    if (max_new < 0 || max_new > 1000000) return luaL_error(L, "generate: max_tokens %d outside [0, 1000000]", max_new);
    int32_t *out = lua_newuserdata(L, (size_t)(max_new ? max_new : 1) * sizeof *out);
    int n_out = 0;
    double t0 = now_s();
    rp_status st = rp_jamba_generate(m, ids, n, max_new, temp, seed, out, &n_out);
    double dt = now_s() - t0;
    if (st != RP_OK) return rp_lua_fail(L, st, "jamba generate");
    lua_createtable(L, n_out, 0);
    for (int i = 0; i < n_out; i++) { lua_pushinteger(L, out[i]); lua_rawseti(L, -2, i + 1); }
    lua_newtable(L);
    SETI("n_prompt", n);
    lua_pushnumber(L, dt > 0 ? n_out / dt : 0); lua_setfield(L, -2, "tokens_per_s");
    return 2;
}

static int l_time_decode(lua_State *L) {
    rp_jamba_model *m = check_model(L);
    static const char *const keys[] = { "context", "steps", "batch", "warmup", NULL };
    luaL_checktype(L, 2, LUA_TTABLE);
    rp_lua_check_keys(L, 2, "time_decode", keys);
    long long ctx = rp_lua_field_integer(L, 2, "context", 0), steps = rp_lua_field_integer(L, 2, "steps", 8);
    long long batch = rp_lua_field_integer(L, 2, "batch", 1), warm = rp_lua_field_integer(L, 2, "warmup", 2);
    if (ctx < 0 || ctx > 1 << 24 || steps < 1 || steps > 1 << 20 || batch < 1 || batch > 4096 || warm < 0 || warm > 1 << 10)
        return luaL_error(L, "time_decode: context %f outside [0, 2^24], steps %f outside [1, 2^20], batch %f outside [1, 4096] or warmup %f outside [0, 1024]",
                          (double)ctx, (double)steps, (double)batch, (double)warm);
    /* userdata before the caches: raising here leaks nothing */
    double *dt = lua_newuserdata(L, (size_t)steps * sizeof *dt);
    rp_jamba_cache **ks = lua_newuserdata(L, (size_t)batch * sizeof *ks);
    int32_t *toks = lua_newuserdata(L, (size_t)batch * sizeof *toks);
    memset(ks, 0, (size_t)batch * sizeof *ks);
    rp_status st = RP_OK;
    for (long long i = 0; st == RP_OK && i < batch; i++) {
        st = rp_jamba_cache_new(m, (int)(ctx + warm + steps), &ks[i]);
        if (st == RP_OK) st = rp_jamba_cache_fill(ks[i], (int)ctx, 12345 + (uint64_t)i);
        toks[i] = (int32_t)((1 + i) % rp_jamba_model_config(m)->vocab);
    }
    for (long long i = 0; st == RP_OK && i < warm; i++) st = rp_jamba_decode_batch(m, ks, (int)batch, toks, NULL);   /* first touches */
    for (long long i = 0; st == RP_OK && i < steps; i++) {
        double t0 = now_s();
        st = rp_jamba_decode_batch(m, ks, (int)batch, toks, NULL);
        dt[i] = now_s() - t0;
    }
    int64_t bytes = 0;
    for (long long i = 0; i < batch; i++) { bytes += ks[i] ? rp_jamba_cache_bytes(ks[i]) : 0; rp_jamba_cache_free(ks[i]); }
    if (st != RP_OK) return rp_lua_fail(L, st, "time_decode");
    qsort(dt, (size_t)steps, sizeof *dt, cmp_double);   /* the median step: a shared host's stalls fall outside */
    lua_pushnumber(L, steps % 2 ? dt[steps / 2] : 0.5 * (dt[steps / 2 - 1] + dt[steps / 2]));
    lua_pushinteger(L, (lua_Integer)bytes);
    return 2;
}
static int l_time_prefill(lua_State *L) {
    rp_jamba_model *m = check_model(L);
    static const char *const keys[] = { "tokens", NULL };
    luaL_checktype(L, 2, LUA_TTABLE);
    rp_lua_check_keys(L, 2, "time_prefill", keys);
    long long n = rp_lua_field_integer(L, 2, "tokens", 128);
    if (n < 1 || n > 1 << 20) return luaL_error(L, "time_prefill: tokens %f outside [1, 2^20]", (double)n);
    int32_t *ids = lua_newuserdata(L, (size_t)n * sizeof *ids);
    int V = rp_jamba_model_config(m)->vocab;
    for (long long i = 0; i < n; i++) ids[i] = (int32_t)((i * 7919 + 1) % V);
    rp_jamba_cache *k = NULL;
    rp_status st = rp_jamba_cache_new(m, (int)n, &k);
    double t0 = now_s();
    if (st == RP_OK) st = rp_jamba_forward(m, k, ids, (int)n, NULL, 1, NULL);
    double dt = now_s() - t0;
    rp_jamba_cache_free(k);
    if (st != RP_OK) return rp_lua_fail(L, st, "time_prefill");
    lua_pushnumber(L, dt);
    return 1;
}

static int l_close(lua_State *L) { rp_lua_closeobj(L, 1, JAMBA_CLASS); return 0; }

/* ---- the trainer: owns its model, so the model outlives every use the trainer makes of it ---- */
#define TRAINER_CLASS "repro.jamba_trainer"
/* own: a CPU backend private to this trainer (the threads= option), freed after its model; concurrent: its
 * steps may run beside other trainers' (own backend, or the stateless reference backend). */
typedef struct ltrainer { rp_jamba_model *m; rp_jamba_trainer *t; rp_backend *own; int concurrent; } ltrainer;

static void trainer_release(void *p) {
    ltrainer *x = p;
    rp_jamba_trainer_free(x->t);
    rp_jamba_model_free(x->m);
    rp_backend_cpu_free(x->own);
    free(x);
}
static ltrainer *check_trainer(lua_State *L) { return rp_lua_checkobj(L, 1, TRAINER_CLASS); }
static const luaL_Reg *trainer_methods(void);

static int l_trainer(lua_State *L) {
    rp_jamba_config c = check_config(L, 1);
    unsigned long long seed = rp_lua_seed(L, "jamba.trainer");
    long long T = 128;
    double aux_coef = 0.001;   /* the released model's router aux-loss coefficient (HF config) */
    long long threads = 0;
    rp_backend *be = NULL;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        static const char *const keys[] = { "seed", "T", "aux_coef", "backend", "threads", NULL };
        rp_lua_check_keys(L, 2, "jamba.trainer", keys);
        seed = (unsigned long long)rp_lua_field_integer(L, 2, "seed", (long long)seed);
        T = rp_lua_field_integer(L, 2, "T", T);
        aux_coef = rp_lua_field_number(L, 2, "aux_coef", aux_coef);
        threads = rp_lua_field_integer(L, 2, "threads", 0);
        const char *bn = rp_lua_field_string(L, 2, "backend", NULL);
        if (bn && !(be = rp_backend_by_name(bn))) luaL_error(L, "jamba.trainer: unknown backend '%s' (cpu, ref)", bn);
    }
    if (T < 1 || T > 1 << 16) return luaL_error(L, "jamba.trainer: T = %f outside [1, 65536]", (double)T);
    if (threads < 0 || threads > 64) return luaL_error(L, "jamba.trainer: threads = %f outside [0, 64]", (double)threads);
    if (!be) be = rp_backend_default();
    ltrainer *x = calloc(1, sizeof *x);
    if (!x) return luaL_error(L, "jamba.trainer: out of memory");
    rp_status st = RP_OK;
    if (threads > 0 && strcmp(be->name, "cpu") == 0) {   /* a private pool; the reference backend is stateless already */
        st = rp_backend_cpu_new((int)threads, &x->own);
        be = x->own;
    }
    x->concurrent = x->own || strcmp(be->name, "ref") == 0;
    if (st == RP_OK) st = rp_jamba_model_new(&c, seed, be, &x->m);
    if (st == RP_OK) st = rp_jamba_trainer_new(x->m, (int)T, (float)aux_coef, &x->t);
    if (st != RP_OK) { trainer_release(x); return rp_lua_fail(L, st, "jamba.trainer"); }
    rp_lua_newobj(L, TRAINER_CLASS, x, trainer_methods(), trainer_release);
    return 1;
}

/* The loss weights at stack index idx (a table) for n - 1 predicted tokens, in a userdata buffer it pushes. */
static float *check_mask(lua_State *L, int idx, int n, const char *what) {
    if (idx < 0) idx = lua_gettop(L) + idx + 1;   /* absolute: the buffer is pushed below (no lua_absindex in LuaJIT) */
    luaL_checktype(L, idx, LUA_TTABLE);
    int len = (int)rp_lua_rawlen(L, idx);
    if (len != n - 1) luaL_error(L, "%s: mask has %d weights for %d predicted tokens", what, len, n - 1);
    float *mask = lua_newuserdata(L, (size_t)(len ? len : 1) * sizeof *mask);
    for (int i = 0; i < len; i++) {
        lua_rawgeti(L, idx, i + 1);
        mask[i] = (float)luaL_checknumber(L, -1);
        lua_pop(L, 1);
    }
    return mask;
}

static int l_tr_step(lua_State *L) {
    ltrainer *x = check_trainer(L);
    int n, has_mask = !lua_isnoneornil(L, 3);   /* before check_ids pushes its buffer */
    int32_t *ids = check_ids(L, 2, x->m, &n);
    if (n < 2) return luaL_error(L, "trainer step: need at least two tokens (got %d)", n);
    float *mask = has_mask ? check_mask(L, 3, n, "trainer step") : NULL;
    rp_jamba_train_stats st;
    rp_status s = rp_jamba_trainer_forward_backward_masked(x->t, ids, n - 1, mask, &st);
    if (s != RP_OK) return rp_lua_fail(L, s, "trainer step");
    lua_pushnumber(L, st.loss); lua_pushnumber(L, st.aux); lua_pushnumber(L, st.max_inner); lua_pushnumber(L, st.max_resid);
    return 4;
}

static int l_tr_update(lua_State *L) {
    ltrainer *x = check_trainer(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    static const char *const keys[] = { "lr", "scale", "clip", "weight_decay", "beta1", "beta2", "eps", NULL };
    rp_lua_check_keys(L, 2, "trainer update", keys);
    double lr = rp_lua_field_number(L, 2, "lr", -1), scale = rp_lua_field_number(L, 2, "scale", 1), clip = rp_lua_field_number(L, 2, "clip", 1);
    rp_adamw o = { (float)rp_lua_field_number(L, 2, "beta1", 0.9), (float)rp_lua_field_number(L, 2, "beta2", 0.95),
                   (float)rp_lua_field_number(L, 2, "eps", 1e-8), (float)rp_lua_field_number(L, 2, "weight_decay", 0.1) };
    if (!(lr > 0) || !(scale > 0)) return luaL_error(L, "trainer update: lr = %f and scale = %f must be > 0", lr, scale);
    double gn = 0;
    rp_status st = rp_jamba_trainer_update(x->t, &o, (float)lr, (float)scale, (float)clip, &gn);
    if (st != RP_OK) return rp_lua_fail(L, st, "trainer update");
    lua_pushnumber(L, gn);
    return 1;
}

static int l_tr_score(lua_State *L) {
    ltrainer *x = check_trainer(L);
    int n;
    int32_t *ids = check_ids(L, 2, x->m, &n);
    double *lp = lua_newuserdata(L, (size_t)(n > 1 ? n - 1 : 1) * sizeof *lp), sum = 0;
    rp_status st = rp_jamba_score(x->m, ids, n, lp, NULL);
    if (st != RP_OK) return rp_lua_fail(L, st, "trainer score");
    for (int i = 0; i < n - 1; i++) sum += lp[i];
    lua_pushnumber(L, sum);
    lua_pushinteger(L, n - 1);
    return 2;
}

static int l_tr_predict(lua_State *L) {
    ltrainer *x = check_trainer(L);
    int n;
    int32_t *ids = check_ids(L, 2, x->m, &n);
    if (n < 2) return luaL_error(L, "trainer predict: need at least two tokens (got %d)", n);
    int32_t *top = lua_newuserdata(L, (size_t)n * sizeof *top);
    double *lp = lua_newuserdata(L, (size_t)(n - 1) * sizeof *lp);
    rp_status st = rp_jamba_predict(x->m, ids, n, lp, top, NULL);
    if (st != RP_OK) return rp_lua_fail(L, st, "trainer predict");
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) { lua_pushinteger(L, top[i]); lua_rawseti(L, -2, i + 1); }
    lua_createtable(L, n - 1, 0);
    for (int i = 0; i < n - 1; i++) { lua_pushnumber(L, lp[i]); lua_rawseti(L, -2, i + 1); }
    return 2;
}

static int l_tr_attention_maps(lua_State *L) { return push_attention_maps(L, check_trainer(L)->m); }

static int l_tr_close(lua_State *L) { rp_lua_closeobj(L, 1, TRAINER_CLASS); return 0; }

/* ---- jamba.step_all: one training step's micro-batches of several trainers, the trainers side by side ---- */
typedef struct step_job {
    ltrainer *x;
    int nb;                                  /* micro-batches */
    int32_t **ids; int *n; float **mask;     /* each micro-batch: n[b] tokens, mask NULL or n[b] - 1 weights */
    rp_jamba_train_stats *st;
    rp_status status; int failed_at;         /* the first failure, with its message */
    char msg[512];
} step_job;

/* One trainer's micro-batches, in order (a pool task). */
static void step_task(void *ctx, int task, int n_tasks, int thread) {
    step_job *j = (step_job *)ctx + task;
    for (int b = 0; b < j->nb; b++) {
        rp_status s = rp_jamba_trainer_forward_backward_masked(j->x->t, j->ids[b], j->n[b] - 1, j->mask[b], &j->st[b]);
        if (s != RP_OK) { j->status = s; j->failed_at = b; snprintf(j->msg, sizeof j->msg, "%s", rp_errmsg()); return; }
    }
}

/* The pool step_all spreads trainers over (the machine's threads; REPRO_THREADS sets them); NULL when it
 * could not be made: the trainers then run one after another. Lives as long as the process. */
static rp_pool *step_pool;
static void step_pool_make(void) { if (rp_pool_new(0, &step_pool) != RP_OK) step_pool = NULL; }

/* The table at stack index t's element i (1-based), type-checked, pushed. */
static void push_element(lua_State *L, int t, int i, const char *what) {
    lua_rawgeti(L, t, i);
    if (!lua_istable(L, -1)) luaL_error(L, "jamba.step_all: %s[%d] is a %s (a table expected)", what, i, luaL_typename(L, -1));
}

/* jamba.step_all(trainers, batches [, masks]) -> per trainer {loss={...}, aux=, max_inner=, max_resid=}:
 * tr:step for every micro-batch batches[i][b] (mask masks[i][b]) of trainer i, the trainers concurrently. */
static int l_step_all(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    int has_masks = !lua_isnoneornil(L, 3);
    if (has_masks) luaL_checktype(L, 3, LUA_TTABLE);
    int nt = (int)rp_lua_rawlen(L, 1);
    if (nt < 1 || (int)rp_lua_rawlen(L, 2) != nt)
        return luaL_error(L, "jamba.step_all: %d trainers and %d batches (need one batch list per trainer, at least one)", nt, (int)rp_lua_rawlen(L, 2));
    step_job *jobs = lua_newuserdata(L, (size_t)nt * sizeof *jobs);
    memset(jobs, 0, (size_t)nt * sizeof *jobs);
    for (int i = 0; i < nt; i++) {
        lua_rawgeti(L, 1, i + 1);
        ltrainer *x = rp_lua_checkobj(L, -1, TRAINER_CLASS);
        lua_pop(L, 1);
        if (!x->concurrent && nt > 1)
            return luaL_error(L, "jamba.step_all: trainer %d shares the default CPU backend's threads (make it with threads = 1)", i + 1);
        for (int k = 0; k < i; k++)
            if (jobs[k].x == x) return luaL_error(L, "jamba.step_all: trainers %d and %d are the same trainer", k + 1, i + 1);
        jobs[i].x = x;
        push_element(L, 2, i + 1, "batches");
        int bi = lua_gettop(L), nb = (int)rp_lua_rawlen(L, bi), mi = 0;
        if (nb < 1) return luaL_error(L, "jamba.step_all: batches[%d] is empty", i + 1);
        if (has_masks) {
            lua_rawgeti(L, 3, i + 1);
            mi = lua_gettop(L);
            if (lua_isnil(L, mi)) mi = 0;
            else if (!lua_istable(L, mi))   /* masks[i][b] nil: no mask for that micro-batch */
                return luaL_error(L, "jamba.step_all: masks[%d] is a %s (a table of up to %d masks expected)", i + 1, luaL_typename(L, mi), nb);
        }
        luaL_checkstack(L, 2 * nb + 16, "jamba.step_all");   /* below: 4 buffers, then per micro-batch ids and mask buffers */
        jobs[i].nb = nb;
        jobs[i].ids = lua_newuserdata(L, (size_t)nb * sizeof *jobs[i].ids);
        jobs[i].n = lua_newuserdata(L, (size_t)nb * sizeof *jobs[i].n);
        jobs[i].mask = lua_newuserdata(L, (size_t)nb * sizeof *jobs[i].mask);
        jobs[i].st = lua_newuserdata(L, (size_t)nb * sizeof *jobs[i].st);
        for (int b = 0; b < nb; b++) {
            lua_rawgeti(L, bi, b + 1);
            jobs[i].ids[b] = check_ids(L, lua_gettop(L), x->m, &jobs[i].n[b]);
            lua_remove(L, -2);   /* the id list; its buffer stays on the stack (alive until we return) */
            if (jobs[i].n[b] < 2) return luaL_error(L, "jamba.step_all: batches[%d][%d] has %d tokens (need at least two)", i + 1, b + 1, jobs[i].n[b]);
            jobs[i].mask[b] = NULL;
            if (mi) {
                lua_rawgeti(L, mi, b + 1);
                if (lua_isnil(L, -1)) lua_pop(L, 1);
                else { jobs[i].mask[b] = check_mask(L, lua_gettop(L), jobs[i].n[b], "jamba.step_all"); lua_remove(L, -2); }
            }
        }
    }
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, step_pool_make);
    if (step_pool && nt > 1) rp_pool_run(step_pool, step_task, jobs, nt);
    else for (int i = 0; i < nt; i++) step_task(jobs, i, nt, 0);
    for (int i = 0; i < nt; i++)
        if (jobs[i].status != RP_OK)
            return luaL_error(L, "jamba.step_all: trainer %d, micro-batch %d: %s (%s)", i + 1, jobs[i].failed_at + 1, jobs[i].msg,
                              rp_status_name(jobs[i].status));
    lua_createtable(L, nt, 0);
    static const char *const names[] = { "loss", "aux", "max_inner", "max_resid" };
    for (int i = 0; i < nt; i++) {
        lua_createtable(L, 0, 4);
        for (int f = 0; f < 4; f++) {
            lua_createtable(L, jobs[i].nb, 0);
            for (int b = 0; b < jobs[i].nb; b++) {
                const rp_jamba_train_stats *st = &jobs[i].st[b];
                lua_pushnumber(L, f == 0 ? st->loss : f == 1 ? st->aux : f == 2 ? st->max_inner : st->max_resid);
                lua_rawseti(L, -2, b + 1);
            }
            lua_setfield(L, -2, names[f]);
        }
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}
static const luaL_Reg TRAINER_METHODS[] = {
    { "step", l_tr_step }, { "update", l_tr_update }, { "score", l_tr_score }, { "predict", l_tr_predict },
    { "attention_maps", l_tr_attention_maps }, { "close", l_tr_close }, { NULL, NULL },
};
static const luaL_Reg *trainer_methods(void) { return TRAINER_METHODS; }

static const luaL_Reg METHODS[] = {
    { "info", l_info }, { "score", l_score }, { "forward", l_forward }, { "generate", l_generate },
    { "time_decode", l_time_decode }, { "time_prefill", l_time_prefill }, { "attention_maps", l_attention_maps }, { "close", l_close }, { NULL, NULL },
};
static const luaL_Reg *model_methods(void) { return METHODS; }

/* The module table. */
int rp_luaopen_jamba(lua_State *L) {
    static const luaL_Reg fns[] = {
        { "names", l_names }, { "config", l_config }, { "count", l_count }, { "tensors", l_tensors }, { "attention_layers", l_attention_layers }, { "new", l_new }, { "machine", l_machine },
        { "trainer", l_trainer }, { "step_all", l_step_all }, { NULL, NULL },
    };
    rp_lua_newlib(L, fns);
    return 1;
}
