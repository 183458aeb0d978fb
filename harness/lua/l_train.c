/* l_train.c: require("repro.train"): training Llama-family models from Lua (engine: nn/train_llama.h).
 *   train.new{ model = path_or_asset | config = {n_layer=, dim=, n_head=, n_head_kv=, ffn_dim=, vocab=, rope_base=,
 *              norm_eps=, tied=}, method = "full"|"lora"|"qlora", targets = "attn_q,attn_v" or {names},
 *              rank=, alpha=, dropout=, batch=B, seq_len=T, seed=, threads=, init_std=, bf16_base=false (lora: frozen
 *              f32 base linears stored as bf16, see train_llama.h), precision = "fp32"|"bf16" (the linears' products:
 *              bf16 inputs with fp32 sums on the CPU's bf16 unit; tr:info().precision says what ran),
 *              optimizer = {lr=, beta1=, beta2=, eps=, weight_decay=, clip=, schedule="constant"|"linear"|"cosine",
 *                           warmup=, total_steps=, lr_min=} }                              -> tr ("repro.train")
 *   A batch is {tokens = {{ids}, ...}, targets = {{ids}, ...}, mask = {{0|1}, ...}}: B rows of T; without
 *   targets each tokens row holds T+1 ids (inputs and their next tokens); mask (optional) 0 = not scored.
 *   tr:step(batch [, {loss = fn}])  -> loss, grad_norm, lr   (forward_backward + update)
 *   tr:forward_backward(batch [, {loss = fn}]) -> loss       (gradients accumulate until update)
 *   tr:update()                     -> grad_norm, lr         (AdamW at the schedule's lr, clipped)
 *   tr:eval(batch)                  -> loss, {seq_logp}      (no dropout, no gradients)
 *   tr:save(path) / tr:load(path)   adapters or weights + optimizer state + step
 *   tr:reset_optimizer()            AdamW moments and step count to zero, weights kept (a new run from here)
 *   tr:digest()                     -> sha256 hex of the trainable parameters (names and values): a content key
 *                                      for the weights a step trains (adapters only for LoRA/QLoRA)
 *   tr:info()                       -> {params=, step=, method=, batch=, seq_len=, n_layer=, dim=, vocab=, precision=}
 *   tr:export_gguf(path [, {type = "base"|"f16"|"f32"|"q4_0"|"q4_1"|"q8_0"|"q4_k"|"q6_k", tokenizer = path}])   the trained model (adapters merged)
 *                                      as a GGUF file: tensors in the base file's types (default), or F16 / F32;
 *                                      the base's metadata and tokenizer (a llama2.c checkpoint's tokenizer .bin,
 *                                      found beside it unless given, is written as keys; a model trained from
 *                                      scratch gets the llama2.c tokenizer .bin named by tokenizer=, if any)
 *   tr:close()
 *   train.progress(label, total [, unit]) -> p; p:update(done); p:done()   (a terminal line: rate, ETA)
 * loss = fn(seq_logp) gets the list of per-sequence summed log-probabilities of the scored targets and returns
 * the loss and the list of its derivatives by each (a plugin's objective, e.g. DPO). Seed default: the run's
 * "train" stream. Errors name the field and value. */
#include <stdlib.h>
#include <string.h>
#include "assets/model_resolve.h"
#include "lua/host.h"
#include "nn/llama.h"
#include "nn/train_export.h"
#include "nn/train_llama.h"
#include "util/progress.h"
#include "util/sha256.h"

RP_LUA_MODULE(train, rp_luaopen_train);

#define TRAIN_CLASS "repro.train"

typedef struct ltrain {
    rp_trainer *tr;
    rp_model_file *f;
    rp_lr_schedule sched;
    float clip;
    int B, T;
    int32_t *tok, *tgt, *stage;   /* stage: B·(T+1) ids or mask values as read from Lua */
    uint8_t *mask;
    const char *method;
} ltrain;

static void ltrain_release(void *p) {
    ltrain *x = p;
    rp_trainer_free(x->tr);
    rp_model_file_free(x->f);
    free(x->tok); free(x->tgt); free(x->stage); free(x->mask);
    free(x);
}

static ltrain *check(lua_State *L) { return rp_lua_checkobj(L, 1, TRAIN_CLASS); }

/* One B × T field of a batch (rows of `len` values) into out; returns the number of rows. */
static int read_rows(lua_State *L, int idx, const char *field, int want_len, int max_rows, int32_t *out, int is_mask) {
    lua_getfield(L, idx, field);
    if (!lua_istable(L, -1)) luaL_error(L, "train batch: field '%s' must be a list of rows", field);
    int n = (int)rp_lua_rawlen(L, -1);
    if (n < 1 || n > max_rows) luaL_error(L, "train batch: '%s' has %d rows (1..%d planned)", field, n, max_rows);
    for (int b = 0; b < n; b++) {
        lua_rawgeti(L, -1, b + 1);
        if (!lua_istable(L, -1) || (int)rp_lua_rawlen(L, -1) != want_len)
            luaL_error(L, "train batch: %s row %d must be a list of %d values", field, b + 1, want_len);
        for (int t = 0; t < want_len; t++) {
            lua_rawgeti(L, -1, t + 1);
            if (is_mask && lua_isboolean(L, -1)) out[b * want_len + t] = lua_toboolean(L, -1);
            else out[b * want_len + t] = (int32_t)rp_lua_checkinteger(L, -1);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return n;
}

/* Parse a batch table at idx into the planned buffers; sets *B, *T and whether there is a mask. */
static void read_batch(lua_State *L, int idx, ltrain *x, int *B, int *T, int *has_mask) {
    static const char *const keys[] = { "tokens", "targets", "mask", NULL };
    luaL_checktype(L, idx, LUA_TTABLE);
    rp_lua_check_keys(L, idx, "train batch", keys);
    lua_getfield(L, idx, "tokens");
    if (!lua_istable(L, -1)) luaL_error(L, "train batch: field 'tokens' must be a list of rows");
    lua_rawgeti(L, -1, 1);
    int len = lua_istable(L, -1) ? (int)rp_lua_rawlen(L, -1) : 0;
    lua_pop(L, 2);
    lua_getfield(L, idx, "targets");
    int has_targets = !lua_isnil(L, -1);
    lua_pop(L, 1);
    int t = has_targets ? len : len - 1;
    if (t < 1 || t > x->T) luaL_error(L, "train batch: rows of %d tokens (%s; at most %d planned)", len,
                                      has_targets ? "with targets" : "T+1 without targets", x->T);
    int32_t *stage = has_targets ? x->tok : x->stage;
    int n = read_rows(L, idx, "tokens", len, x->B, stage, 0);
    if (has_targets) {
        if (read_rows(L, idx, "targets", t, x->B, x->tgt, 0) != n) luaL_error(L, "train batch: targets and tokens differ in rows");
    } else {
        for (int b = 0; b < n; b++)
            for (int i = 0; i < t; i++) { x->tok[b * t + i] = stage[b * len + i]; x->tgt[b * t + i] = stage[b * len + i + 1]; }
    }
    lua_getfield(L, idx, "mask");
    *has_mask = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (*has_mask) {
        int rows = read_rows(L, idx, "mask", t, x->B, x->stage, 1);
        for (int i = 0; i < rows * t; i++) x->mask[i] = x->stage[i] != 0;
        if (rows != n) luaL_error(L, "train batch: mask and tokens differ in rows");
    }
    *B = n;
    *T = t;
}

typedef struct lua_loss { lua_State *L; int fn; } lua_loss;

/* The plugin loss as a Lua function: fn({seq_logp}) -> loss, {dloss/dseq_logp}. */
static rp_status call_lua_loss(void *ud, const double *lp, int B, double *loss, double *dlp) {
    lua_loss *c = ud;
    lua_State *L = c->L;
    lua_pushvalue(L, c->fn);
    lua_createtable(L, B, 0);
    for (int b = 0; b < B; b++) { lua_pushnumber(L, lp[b]); lua_rawseti(L, -2, b + 1); }
    if (lua_pcall(L, 1, 2, 0) != LUA_OK) {
        rp_status st = rp_fail(RP_ERR_INVAL, "loss function: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return st;
    }
    if (!lua_isnumber(L, -2) || !lua_istable(L, -1) || (int)rp_lua_rawlen(L, -1) != B) {
        lua_pop(L, 2);
        return rp_fail(RP_ERR_INVAL, "loss function: must return a number and a list of %d derivatives", B);
    }
    *loss = lua_tonumber(L, -2);
    for (int b = 0; b < B; b++) { lua_rawgeti(L, -1, b + 1); dlp[b] = lua_tonumber(L, -1); lua_pop(L, 1); }
    lua_pop(L, 2);
    return RP_OK;
}

static double fwd_bwd(lua_State *L, ltrain *x) {
    int B, T, has_mask;
    read_batch(L, 2, x, &B, &T, &has_mask);
    lua_loss ll = { L, 0 };
    if (lua_istable(L, 3)) {
        static const char *const keys[] = { "loss", NULL };
        rp_lua_check_keys(L, 3, "train step options", keys);
        lua_getfield(L, 3, "loss");
        if (!lua_isnil(L, -1)) { luaL_checktype(L, -1, LUA_TFUNCTION); ll.fn = lua_gettop(L); }
        else lua_pop(L, 1);
    }
    double loss;
    rp_status st = rp_trainer_forward_backward(x->tr, x->tok, x->tgt, has_mask ? x->mask : NULL, B, T, ll.fn ? call_lua_loss : NULL,
                                               &ll, &loss);
    if (st != RP_OK) rp_lua_fail(L, st, "train step");
    return loss;
}

static int update(lua_State *L, ltrain *x) {
    float lr = rp_lr_at(&x->sched, rp_trainer_step_count(x->tr));
    double gn;
    rp_status st = rp_trainer_update(x->tr, lr, x->clip, &gn);
    if (st != RP_OK) rp_lua_fail(L, st, "train update");
    lua_pushnumber(L, gn);
    lua_pushnumber(L, lr);
    return 2;
}

/* tr:forward_backward(batch [, opts]) -> loss */
static int l_forward_backward(lua_State *L) {
    lua_pushnumber(L, fwd_bwd(L, check(L)));
    return 1;
}

/* tr:update() -> grad_norm, lr */
static int l_update(lua_State *L) { return update(L, check(L)); }

/* tr:step(batch [, opts]) -> loss, grad_norm, lr */
static int l_step(lua_State *L) {
    ltrain *x = check(L);
    double loss = fwd_bwd(L, x);
    lua_pushnumber(L, loss);
    update(L, x);
    return 3;
}

/* tr:eval(batch) -> loss, {seq_logp} */
static int l_eval(lua_State *L) {
    ltrain *x = check(L);
    int B, T, has_mask;
    read_batch(L, 2, x, &B, &T, &has_mask);
    double loss, *lp = lua_newuserdata(L, (size_t)B * sizeof *lp);
    rp_status st = rp_trainer_eval(x->tr, x->tok, x->tgt, has_mask ? x->mask : NULL, B, T, &loss, lp);
    if (st != RP_OK) rp_lua_fail(L, st, "train eval");
    lua_pushnumber(L, loss);
    lua_createtable(L, B, 0);
    for (int b = 0; b < B; b++) { lua_pushnumber(L, lp[b]); lua_rawseti(L, -2, b + 1); }
    return 2;
}

/* tr:save(path) */
static int l_save(lua_State *L) {
    rp_status st = rp_trainer_save(check(L)->tr, luaL_checkstring(L, 2));
    if (st != RP_OK) rp_lua_fail(L, st, "train save");
    return 0;
}

/* tr:load(path) */
static int l_load(lua_State *L) {
    rp_status st = rp_trainer_load(check(L)->tr, luaL_checkstring(L, 2));
    if (st != RP_OK) rp_lua_fail(L, st, "train load");
    return 0;
}

/* tr:reset_optimizer() */
static int l_reset_optimizer(lua_State *L) {
    rp_trainer_reset_optimizer(check(L)->tr);
    return 0;
}

/* tr:info() -> table */
static int l_info(lua_State *L) {
    ltrain *x = check(L);
    const rp_llama_config *c = rp_trainer_config(x->tr);
    lua_createtable(L, 0, 9);
    lua_pushinteger(L, (lua_Integer)rp_trainer_n_params(x->tr)); lua_setfield(L, -2, "params");
    lua_pushinteger(L, (lua_Integer)rp_trainer_step_count(x->tr)); lua_setfield(L, -2, "step");
    lua_pushstring(L, x->method); lua_setfield(L, -2, "method");
    lua_pushinteger(L, x->B); lua_setfield(L, -2, "batch");
    lua_pushinteger(L, x->T); lua_setfield(L, -2, "seq_len");
    lua_pushinteger(L, c->n_layer); lua_setfield(L, -2, "n_layer");
    lua_pushinteger(L, c->dim); lua_setfield(L, -2, "dim");
    lua_pushinteger(L, c->vocab); lua_setfield(L, -2, "vocab");
    lua_pushstring(L, rp_trainer_precision(x->tr)); lua_setfield(L, -2, "precision");
    return 1;
}

/* tr:digest() -> hex: sha256 over every trainable tensor's name, length and values. */
static int l_digest(lua_State *L) {
    ltrain *x = check(L);
    rp_sha256_ctx c;
    rp_sha256_init(&c);
    float *p, *g;
    int64_t n;
    const char *name;
    for (int i = 0; (name = rp_trainer_param(x->tr, i, &p, &g, &n)) != NULL; i++) {
        rp_sha256_update(&c, name, strlen(name) + 1);
        rp_sha256_update(&c, &n, sizeof n);
        rp_sha256_update(&c, p, (size_t)n * sizeof *p);
    }
    uint8_t d[32];
    char hex[65];
    rp_sha256_final(&c, d);
    rp_sha256_hex(d, hex);
    lua_pushstring(L, hex);
    return 1;
}

/* tr:export_gguf(path [, {type=, tokenizer=}]) */
static int l_export_gguf(lua_State *L) {
    static const char *const keys[] = { "type", "tokenizer", NULL };
    ltrain *x = check(L);
    const char *path = luaL_checkstring(L, 2), *tpath = NULL, *tname = "base";
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        rp_lua_check_keys(L, 3, "train export_gguf", keys);
        tname = rp_lua_field_string(L, 3, "type", "base");
        tpath = rp_lua_field_string(L, 3, "tokenizer", NULL);
    }
    rp_export_type type;
    rp_status st = rp_export_type_parse(tname, &type);
    if (st != RP_OK) return rp_lua_fail(L, st, "train export_gguf");
    rp_tokenizer *tok = NULL;
    int vocab = rp_trainer_config(x->tr)->vocab;
    if (x->f && (tpath || rp_model_file_meta_type(x->f, "tokenizer.ggml.model") == RP_META_NONE))
        st = rp_tokenizer_for_model_file(x->f, tpath, vocab, &tok);
    else if (tpath) st = rp_tokenizer_load_llama2c(tpath, vocab, &tok);   /* from scratch: a llama2.c tokenizer .bin */
    if (st == RP_OK) st = rp_trainer_write_gguf(x->tr, x->f, tok, type, path);
    rp_tokenizer_free(tok);
    if (st != RP_OK) return rp_lua_fail(L, st, "train export_gguf");
    return 0;
}

/* tr:close() */
static int l_close(lua_State *L) { rp_lua_closeobj(L, 1, TRAIN_CLASS); return 0; }

/* The model configuration of a from-scratch trainer, from the table at idx. */
static void read_config(lua_State *L, int idx, rp_llama_config *c) {
    static const char *const keys[] = { "n_layer", "dim", "n_head", "n_head_kv", "ffn_dim", "vocab", "rope_base", "norm_eps", "tied", NULL };
    luaL_checktype(L, idx, LUA_TTABLE);
    rp_lua_check_keys(L, idx, "train config", keys);
    memset(c, 0, sizeof *c);
    c->n_layer = (int)rp_lua_field_integer(L, idx, "n_layer", 0);
    c->dim = (int)rp_lua_field_integer(L, idx, "dim", 0);
    c->n_head = (int)rp_lua_field_integer(L, idx, "n_head", 0);
    c->n_head_kv = (int)rp_lua_field_integer(L, idx, "n_head_kv", c->n_head);
    c->ffn_dim = (int)rp_lua_field_integer(L, idx, "ffn_dim", 0);
    c->vocab = (int)rp_lua_field_integer(L, idx, "vocab", 0);
    c->rope_base = (float)rp_lua_field_number(L, idx, "rope_base", 10000.0);
    c->norm_eps = (float)rp_lua_field_number(L, idx, "norm_eps", 1e-5);
    c->tied_embeddings = rp_lua_field_bool(L, idx, "tied", 0);
    if (c->n_head < 1 || c->dim % c->n_head) luaL_error(L, "train config: dim %d is not a multiple of n_head %d", c->dim, c->n_head);
    c->head_dim = c->dim / c->n_head;
    c->rope_dim = c->head_dim;
    c->context_len = 1 << 20;
}

/* The optimizer and schedule from the table at idx (may be nil). */
static void read_optimizer(lua_State *L, int idx, rp_train_opts *o, rp_lr_schedule *s, float *clip) {
    static const char *const keys[] = { "lr", "beta1", "beta2", "eps", "weight_decay", "clip", "schedule", "warmup", "total_steps",
                                        "lr_min", NULL };
    o->adamw = (rp_adamw){ 0.9f, 0.999f, 1e-8f, 0.0f };
    *s = (rp_lr_schedule){ RP_LR_CONSTANT, 1e-3f, 0, 0, 1 };
    *clip = 1.0f;
    if (lua_isnil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    rp_lua_check_keys(L, idx, "train optimizer", keys);
    o->adamw.beta1 = (float)rp_lua_field_number(L, idx, "beta1", 0.9);
    o->adamw.beta2 = (float)rp_lua_field_number(L, idx, "beta2", 0.999);
    o->adamw.eps = (float)rp_lua_field_number(L, idx, "eps", 1e-8);
    o->adamw.weight_decay = (float)rp_lua_field_number(L, idx, "weight_decay", 0.0);
    *clip = (float)rp_lua_field_number(L, idx, "clip", 1.0);
    s->lr = (float)rp_lua_field_number(L, idx, "lr", 1e-3);
    s->lr_min = (float)rp_lua_field_number(L, idx, "lr_min", 0.0);
    s->warmup = rp_lua_field_integer(L, idx, "warmup", 0);
    s->total = rp_lua_field_integer(L, idx, "total_steps", 0);
    rp_status st = rp_lr_kind_parse(rp_lua_field_string(L, idx, "schedule", "constant"), &s->kind);
    if (st != RP_OK) rp_lua_fail(L, st, "train optimizer");
    if (s->kind == RP_LR_CONSTANT && s->total == 0) s->total = s->warmup > 0 ? s->warmup : 1;
    if (s->kind != RP_LR_CONSTANT && s->total == 0) luaL_error(L, "train optimizer: schedule '%s' needs total_steps",
                                                                rp_lua_field_string(L, idx, "schedule", ""));
    if ((st = rp_lr_check(s)) != RP_OK) rp_lua_fail(L, st, "train optimizer");
}

/* train.new{...} -> tr */
static int l_new(lua_State *L) {
    static const char *const keys[] = { "model", "config", "method", "targets", "rank", "alpha", "dropout", "batch", "seq_len",
                                        "seed", "threads", "init_std", "optimizer", "bf16_base", "precision", NULL };
    luaL_checktype(L, 1, LUA_TTABLE);
    rp_lua_check_keys(L, 1, "train.new", keys);
    rp_train_opts o = { 0 };
    const char *method = rp_lua_field_string(L, 1, "method", "full");
    rp_status st = rp_train_method_parse(method, &o.method);
    if (st != RP_OK) rp_lua_fail(L, st, "train.new");
    o.B = (int)rp_lua_field_integer(L, 1, "batch", 1);
    o.T = (int)rp_lua_field_integer(L, 1, "seq_len", 0);
    o.lora_rank = (int)rp_lua_field_integer(L, 1, "rank", 8);
    o.lora_alpha = (float)rp_lua_field_number(L, 1, "alpha", 16.0);
    o.lora_dropout = (float)rp_lua_field_number(L, 1, "dropout", 0.0);
    o.init_std = (float)rp_lua_field_number(L, 1, "init_std", 0.02);
    o.n_threads = (int)rp_lua_field_integer(L, 1, "threads", 0);
    lua_getfield(L, 1, "bf16_base");
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) luaL_error(L, "train.new: bf16_base must be true or false");
    o.bf16_base = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if ((st = rp_train_precision_parse(rp_lua_field_string(L, 1, "precision", "fp32"), &o.precision)) != RP_OK) rp_lua_fail(L, st, "train.new");
    lua_getfield(L, 1, "seed");
    o.seed = lua_isnil(L, -1) ? rp_lua_seed(L, "train") : (uint64_t)rp_lua_checkinteger(L, -1);
    lua_pop(L, 1);
    /* targets: a comma string or a list of names, kept as one string on the Lua stack while building */
    lua_getfield(L, 1, "targets");
    if (lua_istable(L, -1)) {
        int tbl = lua_gettop(L);
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (int i = 1; i <= (int)rp_lua_rawlen(L, tbl); i++) {
            lua_rawgeti(L, tbl, i);
            const char *s = luaL_checkstring(L, -1);
            lua_pop(L, 1);
            if (i > 1) luaL_addchar(&b, ',');
            luaL_addstring(&b, s);
        }
        luaL_pushresult(&b);
    } else if (!lua_isnil(L, -1)) {
        luaL_checkstring(L, -1);
    }
    o.lora_targets = lua_isnil(L, -1) ? NULL : lua_tostring(L, -1);   /* stays on the stack until return */
    rp_lr_schedule sched;
    float clip;
    lua_getfield(L, 1, "optimizer");
    read_optimizer(L, lua_gettop(L), &o, &sched, &clip);
    lua_pop(L, 1);
    ltrain *x = calloc(1, sizeof *x);
    if (!x) return luaL_error(L, "train.new: out of memory");
    x->sched = sched; x->clip = clip; x->method = method[0] == 'f' ? "full" : method[0] == 'l' ? "lora" : "qlora";
    rp_llama_config cfg;
    const rp_llama_config *cp = NULL;
    lua_getfield(L, 1, "model");
    if (!lua_isnil(L, -1)) {
        char path[4096];
        st = rp_model_resolve(luaL_checkstring(L, -1), path, sizeof path);
        if (st == RP_OK) st = rp_model_file_open(path, &x->f);
    }
    lua_pop(L, 1);
    if (st == RP_OK && !x->f) {
        lua_getfield(L, 1, "config");
        if (lua_isnil(L, -1)) { free(x); return luaL_error(L, "train.new: give model = path_or_asset or config = {...}"); }
        read_config(L, lua_gettop(L), &cfg);
        lua_pop(L, 1);
        cp = &cfg;
    }
    if (st == RP_OK) st = rp_trainer_new(x->f, cp, &o, &x->tr);
    if (st == RP_OK) {
        x->B = o.B; x->T = o.T;
        x->tok = malloc((size_t)o.B * (size_t)(o.T + 1) * sizeof *x->tok);
        x->tgt = malloc((size_t)o.B * (size_t)o.T * sizeof *x->tgt);
        x->stage = malloc((size_t)o.B * (size_t)(o.T + 1) * sizeof *x->stage);
        x->mask = malloc((size_t)o.B * (size_t)o.T);
        if (!x->tok || !x->tgt || !x->stage || !x->mask) st = rp_fail(RP_ERR_NOMEM, "out of memory for the batch buffers");
    }
    if (st != RP_OK) { ltrain_release(x); return rp_lua_fail(L, st, "train.new"); }
    static const luaL_Reg methods[] = { { "step", l_step }, { "forward_backward", l_forward_backward }, { "update", l_update },
                                        { "eval", l_eval }, { "save", l_save }, { "load", l_load }, { "reset_optimizer", l_reset_optimizer },
                                        { "info", l_info }, { "digest", l_digest }, { "export_gguf", l_export_gguf }, { "close", l_close },
                                        { NULL, NULL } };
    rp_lua_newobj(L, TRAIN_CLASS, x, methods, ltrain_release);
    return 1;
}

#define PROGRESS_CLASS "repro.train.progress"

static void progress_release(void *p) { rp_progress_done(p); }

/* p:update(done) */
static int l_progress_update(lua_State *L) {
    rp_progress_update(rp_lua_checkobj(L, 1, PROGRESS_CLASS), luaL_checknumber(L, 2));
    return 0;
}

/* p:done() (prints the final rate) */
static int l_progress_done(lua_State *L) { rp_lua_closeobj(L, 1, PROGRESS_CLASS); return 0; }

/* train.progress(label, total [, unit]) -> p: a terminal progress line (done/total, rate, ETA), silent when
 * stderr is not a terminal. */
static int l_progress(lua_State *L) {
    const char *label = luaL_checkstring(L, 1), *unit = luaL_optstring(L, 3, "steps");
    double total = luaL_checknumber(L, 2);
    rp_progress *p = rp_progress_new(label, total, unit);
    if (!p) return luaL_error(L, "train.progress: out of memory");
    static const luaL_Reg methods[] = { { "update", l_progress_update }, { "done", l_progress_done }, { NULL, NULL } };
    rp_lua_newobj(L, PROGRESS_CLASS, p, methods, progress_release);
    return 1;
}

/* The module table. */
int rp_luaopen_train(lua_State *L) {
    static const luaL_Reg fns[] = { { "new", l_new }, { "progress", l_progress }, { NULL, NULL } };
    rp_lua_newlib(L, fns);
    return 1;
}
