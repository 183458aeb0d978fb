/* l_eval.c: require("repro.eval"): evaluation tasks and scoring for Lua scripts.
 *   eval.tasks()                         -> list of task names
 *   eval.load(name [, {split=, mirror=}]) -> task (userdata "repro.eval.task")
 *   eval.task{name=, kind="mc"|"mc2"|"lastword", items={{context=|contexts=, choices=, gold=, truth=}}}
 *                                        -> task built from Lua data (the delimiter " " goes between)
 *   task:size(), task:name(), task:kind(), task:item(i) (1-based; a table), task:prefix(i, k [, seed])
 *   eval.evaluate(lm, task [, {shots=, limit=, seed=, ctx=, protocol="rolling"|"llamacpp", per_item=}])
 *                                        -> {n=, acc=, acc_stderr=, acc_norm=, ..., metrics={...}, items={...}}
 *   eval.perplexity(lm, text [, {ctx=, chunks=, protocol=}]) -> {ppl=, ppl_stderr=, mean_nll=, bpb=, ...}
 * `lm` is a model object from repro.model (once the engine provides rp_model_as_lm) or a Lua table
 * {n_ctx=, bos=, add_bos=, tokenize=function(text) -> {ids}, logprobs=function(seqs, from) -> {{lp}}[, {{greedy}}]}
 * where seqs[s] is a list of token ids, from[s] the 0-based position whose logits predict the first scored
 * token (as in eval/lm.h), and the result lists hold #seqs[s]-1-from[s] log-probabilities. Errors raised
 * inside those functions come back as Lua errors naming the function. Default seed: 1234 (as `repro eval`). */
#include "lua/host.h"
#include "eval/score.h"
#include "eval/task.h"
#if __has_include("lua/l_model.h")
#include "lua/l_model.h"   /* repro.model objects as rp_lm (engine binding) */
#define RP_EVAL_HAVE_MODEL 1
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

RP_LUA_MODULE(eval, rp_luaopen_eval);

#define TASK_CLASS "repro.eval.task"
#define DEFAULT_SEED 1234

static void task_release(void *p) { rp_task_free(p); }

static int fail(lua_State *L, rp_status st, const char *what) { return rp_lua_fail(L, st, what); }

/* --- an rp_lm backed by a Lua table ------------------------------------------------------------- */

typedef struct lua_lm { lua_State *L; int idx; } lua_lm;

static rp_status call_field(lua_lm *m, const char *fn, int nargs, int nres) {
    lua_State *L = m->L;
    lua_getfield(L, m->idx, fn);
    if (!lua_isfunction(L, -1)) { lua_pop(L, 1 + nargs); return rp_fail(RP_ERR_INVAL, "lm.%s is not a function", fn); }
    lua_insert(L, -1 - nargs);
    if (lua_pcall(L, nargs, nres, 0) != LUA_OK) {
        rp_status st = rp_fail(RP_ERR_INVAL, "lm.%s: %s", fn, lua_tostring(L, -1));
        lua_pop(L, 1);
        return st;
    }
    return RP_OK;
}

static rp_status lua_tokenize(void *ctx, const char *text, size_t len, int **ids, size_t *n) {
    lua_lm *m = ctx;
    lua_State *L = m->L;
    lua_pushlstring(L, text, len);
    RP_TRY(call_field(m, "tokenize", 1, 1));
    if (!lua_istable(L, -1)) { lua_pop(L, 1); return rp_fail(RP_ERR_INVAL, "lm.tokenize: did not return a table"); }
    size_t k = (size_t)rp_lua_rawlen(L, -1);
    int *v = malloc((k ? k : 1) * sizeof *v);
    if (!v) { lua_pop(L, 1); return rp_fail(RP_ERR_NOMEM, "out of memory"); }
    for (size_t i = 0; i < k; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        int isnum = lua_type(L, -1) == LUA_TNUMBER;
        double d = lua_tonumber(L, -1);
        lua_pop(L, 1);
        if (!isnum || d != floor(d) || d < 0 || d > 2147483647.0) {
            free(v);
            lua_pop(L, 1);
            return rp_fail(RP_ERR_INVAL, "lm.tokenize: entry %zu is not a token id", i + 1);
        }
        v[i] = (int)d;
    }
    lua_pop(L, 1);
    *ids = v;
    *n = k;
    return RP_OK;
}

static rp_status lua_logprobs(void *ctx, int nseq, const int *const *seqs, const size_t *lens, const size_t *from,
                              float *const *out, unsigned char *const *greedy) {
    lua_lm *m = ctx;
    lua_State *L = m->L;
    lua_createtable(L, nseq, 0);
    lua_createtable(L, nseq, 0);
    for (int s = 0; s < nseq; s++) {
        lua_createtable(L, (int)lens[s], 0);
        for (size_t i = 0; i < lens[s]; i++) { lua_pushinteger(L, seqs[s][i]); lua_rawseti(L, -2, (int)i + 1); }
        lua_rawseti(L, -3, s + 1);
        lua_pushinteger(L, (lua_Integer)from[s]);
        lua_rawseti(L, -2, s + 1);
    }
    RP_TRY(call_field(m, "logprobs", 2, 2));
    rp_status st = RP_OK;
    if (!lua_istable(L, -2)) st = rp_fail(RP_ERR_INVAL, "lm.logprobs: did not return a table");
    for (int s = 0; s < nseq && st == RP_OK; s++) {
        size_t want = lens[s] - 1 - from[s];
        lua_rawgeti(L, -2, s + 1);
        if (!lua_istable(L, -1) || (size_t)rp_lua_rawlen(L, -1) != want)
            st = rp_fail(RP_ERR_INVAL, "lm.logprobs: result %d is not a list of %zu numbers", s + 1, want);
        for (size_t i = 0; st == RP_OK && i < want; i++) {
            lua_rawgeti(L, -1, (int)i + 1);
            if (lua_type(L, -1) != LUA_TNUMBER) st = rp_fail(RP_ERR_INVAL, "lm.logprobs: result %d, entry %zu is not a number", s + 1, i + 1);
            out[s][i] = (float)lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        if (greedy && st == RP_OK) {
            int have = lua_istable(L, -1);
            if (have) lua_rawgeti(L, -1, s + 1);
            for (size_t i = 0; i < want; i++) {
                int g = 0;
                if (have && lua_istable(L, -1)) { lua_rawgeti(L, -1, (int)i + 1); g = lua_toboolean(L, -1); lua_pop(L, 1); }
                greedy[s][i] = (unsigned char)g;
            }
            if (have) lua_pop(L, 1);
        }
    }
    lua_pop(L, 2);
    return st;
}

/* The rp_lm for the argument at idx: a repro.model object (or its as_lm() table), scored in C, or a Lua
 * table LM called back through Lua; raises on anything else. */
static rp_lm check_lm(lua_State *L, int idx, lua_lm *holder) {
#ifdef RP_EVAL_HAVE_MODEL
    rp_lm native;
    if (rp_lua_model_lm(L, idx, &native)) return native;
#endif
    if (!lua_istable(L, idx)) luaL_argerror(L, idx, "a language model (repro.model object, or table with tokenize and logprobs) expected");
    holder->L = L;
    holder->idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    rp_lm lm = {.ctx = holder, .tokenize = lua_tokenize, .logprobs = lua_logprobs};
    lm.n_ctx = (int)rp_lua_field_integer(L, idx, "n_ctx", 0);
    lm.bos = (int)rp_lua_field_integer(L, idx, "bos", -1);
    lm.add_bos = rp_lua_field_bool(L, idx, "add_bos", 0);
    lm.n_vocab = (int)rp_lua_field_integer(L, idx, "n_vocab", 0);
    return lm;
}

/* --- tasks -------------------------------------------------------------------------------------- */

static const char *kind_name(rp_task_kind k) {
    switch (k) {
    case RP_TASK_MC: return "mc";
    case RP_TASK_MC2: return "mc2";
    case RP_TASK_LASTWORD: return "lastword";
    default: return "text";
    }
}

static int l_tasks(lua_State *L) {
    const char *const *n = rp_task_names();
    lua_newtable(L);
    for (int i = 0; n[i]; i++) { lua_pushstring(L, n[i]); lua_rawseti(L, -2, i + 1); }
    return 1;
}

static int t_size(lua_State *L) {
    rp_task *t = rp_lua_checkobj(L, 1, TASK_CLASS);
    lua_pushinteger(L, (lua_Integer)(t->kind == RP_TASK_TEXT ? t->text_len : t->n_items));
    return 1;
}

static int t_name(lua_State *L) { lua_pushstring(L, ((rp_task *)rp_lua_checkobj(L, 1, TASK_CLASS))->name); return 1; }
static int t_kind(lua_State *L) { lua_pushstring(L, kind_name(((rp_task *)rp_lua_checkobj(L, 1, TASK_CLASS))->kind)); return 1; }

static int t_text(lua_State *L) {
    rp_task *t = rp_lua_checkobj(L, 1, TASK_CLASS);
    if (t->kind != RP_TASK_TEXT) return luaL_error(L, "task %s has no text (it is a %s task)", t->name, kind_name(t->kind));
    lua_pushlstring(L, t->text, t->text_len);
    return 1;
}

static size_t check_index(lua_State *L, rp_task *t, int idx) {
    long long i = rp_lua_checkinteger(L, idx);
    if (i < 1 || (unsigned long long)i > t->n_items)
        luaL_error(L, "task %s: item %lld out of range 1..%zu", t->name, i, t->n_items);
    return (size_t)(i - 1);
}

static int t_item(lua_State *L) {
    rp_task *t = rp_lua_checkobj(L, 1, TASK_CLASS);
    const rp_task_item *it = &t->items[check_index(L, t, 2)];
    lua_newtable(L);
    if (it->context) { lua_pushstring(L, it->context); lua_setfield(L, -2, "context"); }
    lua_createtable(L, it->n_choices, 0);
    for (int c = 0; c < it->n_choices; c++) { lua_pushstring(L, it->choices[c]); lua_rawseti(L, -2, c + 1); }
    lua_setfield(L, -2, "choices");
    if (it->contexts) {
        lua_createtable(L, it->n_choices, 0);
        for (int c = 0; c < it->n_choices; c++) { lua_pushstring(L, it->contexts[c]); lua_rawseti(L, -2, c + 1); }
        lua_setfield(L, -2, "contexts");
    }
    if (it->truth) {
        lua_createtable(L, it->n_choices, 0);
        for (int c = 0; c < it->n_choices; c++) { lua_pushboolean(L, it->truth[c]); lua_rawseti(L, -2, c + 1); }
        lua_setfield(L, -2, "truth");
    }
    lua_pushinteger(L, it->gold + 1);
    lua_setfield(L, -2, "gold");
    lua_pushstring(L, t->groups[it->group].name);
    lua_setfield(L, -2, "group");
    return 1;
}

static int t_prefix(lua_State *L) {
    rp_task *t = rp_lua_checkobj(L, 1, TASK_CLASS);
    size_t i = check_index(L, t, 2);
    long long k = rp_lua_checkinteger(L, 3);
    long long seed = rp_lua_optinteger(L, 4, DEFAULT_SEED);
    if (k < 0 || k > 1000000) return luaL_error(L, "task:prefix: shots %lld out of range", k);
    rp_buf b = {0};
    rp_status st = rp_task_prefix(t, i, (int)k, (uint64_t)seed, &b);
    if (st != RP_OK) { rp_buf_free(&b); return fail(L, st, "task:prefix"); }
    lua_pushlstring(L, b.data ? b.data : "", b.len);
    rp_buf_free(&b);
    return 1;
}

static const luaL_Reg task_methods[] = {
    {"size", t_size}, {"name", t_name}, {"kind", t_kind}, {"item", t_item}, {"prefix", t_prefix}, {"text", t_text},
    {NULL, NULL}};

static int l_load(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    rp_task_opts o = {0};
    if (!lua_isnoneornil(L, 2)) {
        static const char *const keys[] = {"split", "mirror", NULL};
        rp_lua_check_keys(L, 2, "eval.load", keys);
        o.split = rp_lua_field_string(L, 2, "split", NULL);
        o.mirror = rp_lua_field_string(L, 2, "mirror", NULL);
    }
    rp_task *t;
    rp_status st = rp_task_load(name, &o, &t);
    if (st != RP_OK) return fail(L, st, "eval.load");
    rp_lua_newobj(L, TASK_CLASS, t, task_methods, task_release);
    return 1;
}

/* A list of strings at field key of the table at idx (count in *n); NULL when absent. Raises on bad entries. */
static const char **str_list(lua_State *L, int idx, const char *key, int *n) {
    lua_getfield(L, idx, key);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return NULL; }
    if (!lua_istable(L, -1)) luaL_error(L, "eval.task: field %s must be a list of strings", key);
    int k = (int)rp_lua_rawlen(L, -1);
    const char **v = lua_newuserdata(L, (size_t)(k ? k : 1) * sizeof *v);   /* freed by the GC */
    lua_insert(L, -2);
    for (int i = 0; i < k; i++) {
        lua_rawgeti(L, -1, i + 1);
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "eval.task: %s[%d] is not a string", key, i + 1);
        v[i] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);   /* the list; the userdata stays on the stack until the caller's frame ends */
    *n = k;
    return v;
}

static int l_task(lua_State *L) {
    static const char *const keys[] = {"name", "kind", "items", NULL};
    static const char *const ikeys[] = {"context", "contexts", "choices", "gold", "truth", NULL};
    rp_lua_check_keys(L, 1, "eval.task", keys);
    const char *name = rp_lua_field_string(L, 1, "name", "custom");
    const char *kind = rp_lua_field_string(L, 1, "kind", "mc");
    rp_task_kind k = !strcmp(kind, "mc") ? RP_TASK_MC : !strcmp(kind, "mc2") ? RP_TASK_MC2
                   : !strcmp(kind, "lastword") ? RP_TASK_LASTWORD : (rp_task_kind)-1;
    if ((int)k < 0) return luaL_error(L, "eval.task: kind '%s' is not one of mc, mc2, lastword", kind);
    lua_getfield(L, 1, "items");
    if (!lua_istable(L, -1)) return luaL_error(L, "eval.task: items must be a list of tables");
    int items = lua_gettop(L);
    rp_task *t;
    rp_status st = rp_task_new(name, k, "lua", &t);
    if (st != RP_OK) return fail(L, st, "eval.task");
    rp_lua_newobj(L, TASK_CLASS, t, task_methods, task_release);   /* owns t from here on, even on errors */
    int n = (int)rp_lua_rawlen(L, items);
    for (int i = 0; i < n; i++) {
        int top = lua_gettop(L);
        lua_rawgeti(L, items, i + 1);
        int it_idx = lua_gettop(L);
        if (!lua_istable(L, it_idx)) return luaL_error(L, "eval.task: items[%d] is not a table", i + 1);
        rp_lua_check_keys(L, it_idx, "eval.task item", ikeys);
        int nc = 0, nx = 0;
        const char **ch = str_list(L, it_idx, "choices", &nc);
        const char **cx = str_list(L, it_idx, "contexts", &nx);
        if (!ch) return luaL_error(L, "eval.task: items[%d].choices missing", i + 1);
        if (cx && nx != nc) return luaL_error(L, "eval.task: items[%d]: %d contexts for %d choices", i + 1, nx, nc);
        rp_task_item it = {.context = (char *)rp_lua_field_string(L, it_idx, "context", NULL), .contexts = (char **)cx,
                           .choices = (char **)ch, .n_choices = nc};
        it.gold = (int)rp_lua_field_integer(L, it_idx, "gold", 1) - 1;
        unsigned char *truth = NULL;
        lua_getfield(L, it_idx, "truth");
        if (!lua_isnil(L, -1)) {
            if (!lua_istable(L, -1) || (int)rp_lua_rawlen(L, -1) != nc) return luaL_error(L, "eval.task: items[%d].truth must list %d booleans", i + 1, nc);
            truth = lua_newuserdata(L, (size_t)(nc ? nc : 1));
            for (int c = 0; c < nc; c++) { lua_rawgeti(L, -2, c + 1); truth[c] = (unsigned char)lua_toboolean(L, -1); lua_pop(L, 1); }
            it.truth = truth;
            if (it.gold < 0) for (int c = nc - 1; c >= 0; c--) if (truth[c]) it.gold = c;
        }
        char where[64];
        snprintf(where, sizeof where, "eval.task: items[%d]", i + 1);
        if ((st = rp_task_add_item(t, &it, where)) != RP_OK) return fail(L, st, "eval.task");
        lua_settop(L, top);
    }
    return 1;
}

/* --- scoring ------------------------------------------------------------------------------------ */

typedef struct item_sink { lua_State *L; int tbl; int n; } item_sink;

static void on_item(void *arg, size_t item, const double *ll, int n, int pred, int pred_norm) {
    item_sink *s = arg;
    lua_State *L = s->L;
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)item + 1);
    lua_setfield(L, -2, "index");
    lua_createtable(L, n, 0);
    for (int c = 0; c < n; c++) { lua_pushnumber(L, ll[c]); lua_rawseti(L, -2, c + 1); }
    lua_setfield(L, -2, "ll");
    lua_pushinteger(L, pred + 1);
    lua_setfield(L, -2, "pred");
    lua_pushinteger(L, pred_norm + 1);
    lua_setfield(L, -2, "pred_norm");
    lua_rawseti(L, s->tbl, ++s->n);
}

static void push_num(lua_State *L, const char *k, double v) { lua_pushnumber(L, v); lua_setfield(L, -2, k); }

static int l_evaluate(lua_State *L) {
    lua_lm holder;
    rp_lm lm = check_lm(L, 1, &holder);
    rp_task *t = rp_lua_checkobj(L, 2, TASK_CLASS);
    rp_eval_opts o = {.seed = DEFAULT_SEED};
    int per_item = 0;
    if (!lua_isnoneornil(L, 3)) {
        static const char *const keys[] = {"shots", "limit", "seed", "ctx", "protocol", "per_item", NULL};
        rp_lua_check_keys(L, 3, "eval.evaluate", keys);
        long long shots = rp_lua_field_integer(L, 3, "shots", 0), limit = rp_lua_field_integer(L, 3, "limit", 0);
        long long ctx = rp_lua_field_integer(L, 3, "ctx", 0);
        if (shots < 0 || shots > 1000000) return luaL_error(L, "eval.evaluate: shots %lld out of range", shots);
        if (limit < 0) return luaL_error(L, "eval.evaluate: limit %lld is negative", limit);
        if (ctx < 0 || ctx > 1 << 24) return luaL_error(L, "eval.evaluate: ctx %lld out of range", ctx);
        o.shots = (int)shots;
        o.limit = (size_t)limit;
        o.ctx = (int)ctx;
        o.seed = (uint64_t)rp_lua_field_integer(L, 3, "seed", DEFAULT_SEED);
        const char *p = rp_lua_field_string(L, 3, "protocol", "rolling");
        if (!strcmp(p, "llamacpp")) o.protocol = RP_PPL_LLAMACPP;
        else if (strcmp(p, "rolling")) return luaL_error(L, "eval.evaluate: protocol '%s' is not rolling or llamacpp", p);
        per_item = rp_lua_field_bool(L, 3, "per_item", 0);
    }
    item_sink sink = {L, 0, 0};
    if (per_item) {
        lua_newtable(L);
        sink.tbl = lua_gettop(L);
        o.on_item = on_item;
        o.on_item_arg = &sink;
    }
    rp_eval_result r;
    rp_status st = rp_eval_task(&lm, t, &o, &r);
    if (st != RP_OK) return fail(L, st, "eval.evaluate");
    lua_newtable(L);
    lua_pushstring(L, t->name);
    lua_setfield(L, -2, "task");
    lua_pushinteger(L, (lua_Integer)r.n);
    lua_setfield(L, -2, "n");
    lua_createtable(L, r.n_metrics, 0);
    for (int i = 0; i < r.n_metrics; i++) {
        lua_createtable(L, 0, 4);
        lua_pushstring(L, r.m[i].name);
        lua_setfield(L, -2, "name");
        push_num(L, "value", r.m[i].value);
        push_num(L, "stderr", r.m[i].stderr_);
        lua_pushinteger(L, r.m[i].direction);
        lua_setfield(L, -2, "direction");
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "metrics");
    for (int i = 0; i < r.n_metrics; i++) {
        char k[64];
        push_num(L, r.m[i].name, r.m[i].value);
        snprintf(k, sizeof k, "%s_stderr", r.m[i].name);
        push_num(L, k, r.m[i].stderr_);
    }
    if (per_item) {
        lua_pushvalue(L, sink.tbl);
        lua_setfield(L, -2, "items");
    }
    return 1;
}

static int l_perplexity(lua_State *L) {
    lua_lm holder;
    rp_lm lm = check_lm(L, 1, &holder);
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    long long ctx = 512, chunks = 0;
    int llama = 0;
    if (!lua_isnoneornil(L, 3)) {
        static const char *const keys[] = {"ctx", "chunks", "protocol", NULL};
        rp_lua_check_keys(L, 3, "eval.perplexity", keys);
        ctx = rp_lua_field_integer(L, 3, "ctx", 512);
        chunks = rp_lua_field_integer(L, 3, "chunks", 0);
        const char *p = rp_lua_field_string(L, 3, "protocol", "rolling");
        if (!strcmp(p, "llamacpp")) llama = 1;
        else if (strcmp(p, "rolling")) return luaL_error(L, "eval.perplexity: protocol '%s' is not rolling or llamacpp", p);
    }
    if (ctx < 2 || ctx > 1 << 24) return luaL_error(L, "eval.perplexity: ctx %lld out of range", ctx);
    if (chunks < 0 || chunks > 1 << 30) return luaL_error(L, "eval.perplexity: chunks %lld out of range", chunks);
    rp_ppl_result r;
    rp_status st = llama ? rp_eval_perplexity_llamacpp(&lm, text, len, (int)ctx, (int)chunks, &r, NULL, NULL)
                         : rp_eval_perplexity_rolling(&lm, text, len, (int)ctx, &r, NULL, NULL);
    if (st != RP_OK) return fail(L, st, "eval.perplexity");
    lua_newtable(L);
    push_num(L, "ppl", r.ppl);
    push_num(L, "ppl_stderr", r.ppl_stderr);
    push_num(L, "mean_nll", r.mean_nll);
    push_num(L, "bpb", r.bpb);
    push_num(L, "word_ppl", r.word_ppl);
    lua_pushinteger(L, (lua_Integer)r.n_scored); lua_setfield(L, -2, "n_scored");
    lua_pushinteger(L, (lua_Integer)r.n_tokens); lua_setfield(L, -2, "n_tokens");
    lua_pushinteger(L, (lua_Integer)r.n_chunks); lua_setfield(L, -2, "n_chunks");
    return 1;
}

/* The module table. */
int rp_luaopen_eval(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"tasks", l_tasks}, {"load", l_load}, {"task", l_task}, {"evaluate", l_evaluate}, {"perplexity", l_perplexity},
        {NULL, NULL}};
    rp_lua_newlib(L, fns);
    return 1;
}
