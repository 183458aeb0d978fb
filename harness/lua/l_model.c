/* l_model.c: require("repro.model"): Llama-family models for Lua scripts.
 *   model.load(path_or_asset [, {tokenizer=, threads=, backend="cpu"|"ref"|"cuda" (default: $REPRO_DEVICE, else cpu), n_ctx=}]) -> m   (userdata "repro.model")
 *   m:info()                        -> {n_layer=, dim=, n_head=, n_head_kv=, head_dim=, ffn_dim=, vocab=, n_ctx=,
 *                                       context_len=, format=, bos=, eos=, add_bos=, chat=}
 *   m:tokenize(text [, {bos=, special=}]) -> {ids}        (bos: default the model's convention)
 *   m:detokenize(ids [, {special=}]) -> string
 *   m:chat_format({{role=, content=}...} [, {assistant=true}]) -> the conversation in the model's chat template
 *                                      (control tokens as text: tokenize with special=true, bos=false)
 *   m:generate{prompt= | tokens=, max_tokens=, temperature=, top_p=, seed=, stop={...}, chat=, batch=}
 *                                   -> text, {tokens=, n_prompt=, tokens_per_s=, stop_reason=}
 *       (a list of prompts (strings, or lists of ids with tokens=) -> {text...}, {info...}: decoded together,
 *        `batch` (default 8) sequences per forward with continuous batching; each equals its own call)
 *       (chat=true wraps prompt in the model's chat template as one user turn; seed default: the run's
 *        "model.generate" stream)
 *   m:score(ids [, from])           -> {lp...}: lp[i] = log p(ids[i+1] | ids[1..i]) for i = from+1 .. #ids-1
 *                                      (from: 0-based position as in eval/lm.h, default 0), plus a list of
 *                                      greedy flags as second result
 *   m:score{context=, continuation=} -> total log-likelihood of continuation after context, is_greedy
 *   m:hidden_states(ids [, {last=true}]) -> repro.tensor [n_layer+1, #ids, dim]: row l (1-based) is the
 *                                      input of layer l-1 (row n_layer+1 the final residual); with
 *                                      last=true [n_layer+1, dim], the last token's vectors
 *                                      (nested tables: h:totable())
 *   m:logits(ids)                   -> repro.tensor [#ids, vocab]: the logits at every position
 *   m:skip_layers{l, ...}           -> run with these 0-based layers skipped (no weight copied); {} clears
 *   m:as_lm()                       -> table for repro.eval ({n_ctx=, bos=, add_bos=, n_vocab=, tokenize=, logprobs=})
 *   m:close()                       (also on garbage collection / to-be-closed)
 * Errors from the engine are raised as Lua errors naming the method. */
#include <stdlib.h>
#include <string.h>
#include "lua/host.h"
#include "lua/l_model.h"
#include "lua/l_tensor.h"
#include "assets/model_resolve.h"
#include "nn/generate.h"
#include "nn/llama.h"
#include "eval/lm_model.h"

RP_LUA_MODULE(model, rp_luaopen_model);

#define MODEL_CLASS "repro.model"

typedef struct lmodel {
    rp_model *m;
    rp_session *s;          /* for generate / score / hidden_states */
    rp_backend *owned_be;   /* threads= made one */
} lmodel;

static void lmodel_release(void *p) {
    lmodel *x = p;
    rp_session_free(x->s);
    rp_model_free(x->m);
    rp_backend_cpu_free(x->owned_be);
    free(x);
}

static lmodel *check(lua_State *L) { return rp_lua_checkobj(L, 1, MODEL_CLASS); }
static const luaL_Reg *model_methods(void);

/* Token ids from a Lua list at idx (validated against the vocabulary). */
static int32_t *check_ids(lua_State *L, int idx, const rp_model *m, size_t *n) {
    luaL_checktype(L, idx, LUA_TTABLE);
    size_t len = (size_t)rp_lua_rawlen(L, idx);
    int32_t *ids = lua_newuserdata(L, (len ? len : 1) * sizeof *ids);   /* freed by the GC */
    int V = rp_model_config(m)->vocab;
    for (size_t i = 0; i < len; i++) {
        lua_rawgeti(L, idx, (int)i + 1);
        long long v = rp_lua_checkinteger(L, -1);
        if (v < 0 || v >= V) luaL_error(L, "token id %f at index %d outside the vocabulary [0, %d)", (double)v, (int)i + 1, V);
        ids[i] = (int32_t)v;
        lua_pop(L, 1);
    }
    *n = len;
    return ids;
}

static void push_ids(lua_State *L, const int32_t *ids, size_t n) {
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) { lua_pushinteger(L, ids[i]); lua_rawseti(L, -2, (int)i + 1); }
}

#define LOGIT_ROWS 64   /* rows of logits the binding's session computes per forward call */

static rp_session *session(lua_State *L, lmodel *x) {
    if (!x->s) {
        rp_status st = rp_session_new(x->m, 0, 512, LOGIT_ROWS, &x->s);
        if (st != RP_OK) rp_lua_fail(L, st, "model session");
    }
    return x->s;
}

static int l_load(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    rp_model_opts mo = { 0 };
    long long threads = 0, n_ctx = 0;
    /* Read every option before allocating: a bad option raises, and nothing may be held when it does. */
    if (lua_istable(L, 2)) {
        static const char *const keys[] = { "tokenizer", "threads", "backend", "n_ctx", NULL };
        rp_lua_check_keys(L, 2, "model.load", keys);
        mo.tokenizer_path = rp_lua_field_string(L, 2, "tokenizer", NULL);
        threads = rp_lua_field_integer(L, 2, "threads", 0);
        n_ctx = rp_lua_field_integer(L, 2, "n_ctx", 0);
        const char *bn = rp_lua_field_string(L, 2, "backend", NULL);
        if (bn && rp_backend_open(bn, &mo.backend) != RP_OK) return luaL_error(L, "model.load: backend '%s': %s", bn, rp_errmsg());
        if (threads < 0 || threads > 256) return luaL_error(L, "model.load: threads = %f out of range", (double)threads);
    }
    const char *dev = getenv("REPRO_DEVICE");   /* repro run --device: the run's backend when the script names none */
    if (!mo.backend && threads <= 0 && dev && *dev && rp_backend_open(dev, &mo.backend) != RP_OK)
        return luaL_error(L, "model.load: REPRO_DEVICE=%s: %s", dev, rp_errmsg());
    lmodel *x = calloc(1, sizeof *x);
    if (!x) return luaL_error(L, "model.load: out of memory");
    if (threads > 0) {
        rp_status st = rp_backend_cpu_new((int)threads, &x->owned_be);
        if (st != RP_OK) { free(x); return rp_lua_fail(L, st, "model.load"); }
        mo.backend = x->owned_be;
    }
    rp_status st = rp_model_load_named(path, &mo, &x->m);
    if (st != RP_OK) { rp_backend_cpu_free(x->owned_be); free(x); return rp_lua_fail(L, st, "model.load"); }
    if (n_ctx > 0 && (st = rp_session_new(x->m, (int)n_ctx, 512, 64, &x->s)) != RP_OK) { lmodel_release(x); return rp_lua_fail(L, st, "model.load"); }
    rp_lua_newobj(L, MODEL_CLASS, x, model_methods(), lmodel_release);
    return 1;
}

static int l_info(lua_State *L) {
    lmodel *x = check(L);
    const rp_llama_config *c = rp_model_config(x->m);
    const rp_tokenizer *tok = rp_model_tokenizer(x->m);
    lua_createtable(L, 0, 14);
#define SETI(k, v) (lua_pushinteger(L, (v)), lua_setfield(L, -2, k))
    SETI("n_layer", c->n_layer); SETI("dim", c->dim); SETI("n_head", c->n_head); SETI("n_head_kv", c->n_head_kv);
    SETI("head_dim", c->head_dim); SETI("ffn_dim", c->ffn_dim); SETI("vocab", c->vocab); SETI("context_len", c->context_len);
    SETI("n_ctx", x->s ? rp_session_n_ctx(x->s) : (c->context_len < 2048 ? c->context_len : 2048));
    SETI("bos", rp_tokenizer_bos(tok)); SETI("eos", rp_tokenizer_eos(tok));
#undef SETI
    lua_pushboolean(L, rp_tokenizer_adds_bos(tok)); lua_setfield(L, -2, "add_bos");
    lua_pushboolean(L, rp_tokenizer_chat_style(tok) != RP_CHAT_PLAIN); lua_setfield(L, -2, "chat");
    lua_pushstring(L, rp_model_file_format(rp_model_file_of(x->m))); lua_setfield(L, -2, "format");
    lua_pushstring(L, rp_model_backend(x->m)->name); lua_setfield(L, -2, "backend");
    return 1;
}

static int l_tokenize(lua_State *L) {
    lmodel *x = check(L);
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    int flags = RP_TOK_DEFAULT;
    if (lua_istable(L, 3)) {
        static const char *const keys[] = { "bos", "special", NULL };
        rp_lua_check_keys(L, 3, "tokenize", keys);
        lua_getfield(L, 3, "bos");
        if (!lua_isnil(L, -1)) flags = lua_toboolean(L, -1) ? RP_TOK_ADD_BOS : RP_TOK_NO_BOS;
        lua_pop(L, 1);
        if (rp_lua_field_bool(L, 3, "special", 0)) flags |= RP_TOK_PARSE_SPECIAL;
    }
    rp_tokens ids = { 0 };
    rp_status st = rp_tokenizer_encode(rp_model_tokenizer(x->m), text, len, flags, &ids);
    if (st != RP_OK) { rp_tokens_free(&ids); return rp_lua_fail(L, st, "tokenize"); }
    push_ids(L, ids.ids, ids.n);
    rp_tokens_free(&ids);
    return 1;
}

/* m:chat_format(messages [, {assistant=}]) -> string: the engine's chat formatting, as generate{chat=} uses it. */
static int l_chat_format(lua_State *L) {
    lmodel *x = check(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    int n = (int)rp_lua_rawlen(L, 2), add = 1;
    if (lua_istable(L, 3)) {
        static const char *const keys[] = { "assistant", NULL };
        rp_lua_check_keys(L, 3, "chat_format", keys);
        add = rp_lua_field_bool(L, 3, "assistant", 1);
    }
    rp_chat_msg *msgs = lua_newuserdata(L, (size_t)(n ? n : 1) * sizeof *msgs);   /* strings stay referenced by arg 2 */
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 2, i + 1);
        if (!lua_istable(L, -1)) return luaL_error(L, "chat_format: message %d is not a table", i + 1);
        lua_getfield(L, -1, "role");
        lua_getfield(L, -2, "content");
        msgs[i].role = lua_tostring(L, -2);
        msgs[i].content = lua_tostring(L, -1);
        if (!msgs[i].role || !msgs[i].content) return luaL_error(L, "chat_format: message %d needs string role and content", i + 1);
        lua_pop(L, 3);
    }
    rp_buf b = { 0 };
    rp_status st = rp_tokenizer_chat_format(rp_model_tokenizer(x->m), msgs, n, add, &b);
    if (st != RP_OK) { rp_buf_free(&b); return rp_lua_fail(L, st, "chat_format"); }
    lua_pushlstring(L, b.data ? b.data : "", b.len);
    rp_buf_free(&b);
    return 1;
}

static int l_detokenize(lua_State *L) {
    lmodel *x = check(L);
    size_t n;
    int32_t *ids = check_ids(L, 2, x->m, &n);
    int special = lua_istable(L, 3) ? rp_lua_field_bool(L, 3, "special", 0) : 0;
    rp_buf out = { 0 };
    rp_status st = rp_tokenizer_decode(rp_model_tokenizer(x->m), ids, n, special, &out);
    if (st != RP_OK) { rp_buf_free(&out); return rp_lua_fail(L, st, "detokenize"); }
    lua_pushlstring(L, out.data ? out.data : "", out.len);
    rp_buf_free(&out);
    return 1;
}

/* The prompt's ids into out: a list of ids (tokens=) or a string (prompt=, chat template when chat). */
static rp_status prompt_ids(lua_State *L, lmodel *x, int idx, int is_tokens, int chat, rp_tokens *out) {
    const rp_tokenizer *tok = rp_model_tokenizer(x->m);
    rp_status st = RP_OK;
    if (is_tokens) {
        size_t n;
        int32_t *t = check_ids(L, idx, x->m, &n);
        for (size_t i = 0; i < n && st == RP_OK; i++) st = rp_tokens_push(out, t[i]);
        lua_pop(L, 1);   /* check_ids' userdata */
        return st;
    }
    size_t len;
    const char *prompt = luaL_checklstring(L, idx, &len);
    if (chat) {
        rp_chat_msg msg = { "user", prompt };
        rp_buf b = { 0 };
        st = rp_tokenizer_chat_format(tok, &msg, 1, 1, &b);
        if (st == RP_OK) st = rp_tokenizer_encode(tok, b.data, b.len, RP_TOK_PARSE_SPECIAL | RP_TOK_NO_BOS, out);
        rp_buf_free(&b);
    } else {
        st = rp_tokenizer_encode(tok, prompt, len, RP_TOK_DEFAULT, out);
    }
    if (st == RP_OK && out->n == 0) st = rp_tokens_push(out, rp_tokenizer_bos(tok) >= 0 ? rp_tokenizer_bos(tok) : 0);
    return st;
}

/* text, {tokens=, n_prompt=, tokens_per_s=, stop_reason=} of one result. */
static void push_result(lua_State *L, const rp_generate_result *r) {
    lua_pushlstring(L, r->text.data ? r->text.data : "", r->text.len);
    lua_createtable(L, 0, 4);
    push_ids(L, r->tokens.ids, r->tokens.n);
    lua_setfield(L, -2, "tokens");
    lua_pushinteger(L, (lua_Integer)r->n_prompt); lua_setfield(L, -2, "n_prompt");
    lua_pushnumber(L, r->tokens_per_s); lua_setfield(L, -2, "tokens_per_s");
    lua_pushstring(L, r->stop_reason); lua_setfield(L, -2, "stop_reason");
}

/* A list of prompts (strings, or lists of ids with tokens=) at the top of the stack, generated together. */
static int generate_list(lua_State *L, lmodel *x, int is_tokens, int chat, const rp_generate_opts *o, int slots) {
    int list = lua_gettop(L), n = (int)rp_lua_rawlen(L, list);
    if (n == 0) { lua_newtable(L); lua_newtable(L); return 2; }
    rp_tokens *pr = lua_newuserdata(L, (size_t)n * sizeof *pr);   /* freed by the GC */
    rp_generate_opts *os = lua_newuserdata(L, (size_t)n * sizeof *os);
    rp_generate_result *res = lua_newuserdata(L, (size_t)n * sizeof *res);
    memset(pr, 0, (size_t)n * sizeof *pr);
    memset(res, 0, (size_t)n * sizeof *res);
    rp_status st = RP_OK;
    for (int i = 0; i < n && st == RP_OK; i++) {
        os[i] = *o;
        lua_rawgeti(L, list, i + 1);
        if (is_tokens ? !lua_istable(L, -1) : lua_type(L, -1) != LUA_TSTRING) {
            for (int k = 0; k <= i; k++) rp_tokens_free(&pr[k]);
            return luaL_error(L, "generate: %s[%d] must be %s", is_tokens ? "tokens" : "prompt", i + 1, is_tokens ? "a list of ids" : "a string");
        }
        st = prompt_ids(L, x, lua_gettop(L), is_tokens, chat, &pr[i]);
        lua_pop(L, 1);
    }
    const rp_llama_config *c = rp_model_config(x->m);
    size_t need = 0;
    for (int i = 0; i < n; i++) if (pr[i].n > need) need = pr[i].n;
    need += o->max_tokens > 0 ? (size_t)o->max_tokens : (size_t)c->context_len;
    int n_ctx = need < (size_t)c->context_len ? (int)need : c->context_len;
    if (st == RP_OK) st = rp_generate_batch(x->m, pr, n, os, slots, n_ctx, res);
    for (int i = 0; i < n; i++) rp_tokens_free(&pr[i]);
    if (st != RP_OK) {
        for (int i = 0; i < n; i++) rp_generate_result_free(&res[i]);
        return rp_lua_fail(L, st, "generate");
    }
    lua_createtable(L, n, 0);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        push_result(L, &res[i]);
        lua_rawseti(L, -3, i + 1);
        lua_rawseti(L, -3, i + 1);
        rp_generate_result_free(&res[i]);
    }
    return 2;
}

static int l_generate(lua_State *L) {
    lmodel *x = check(L);
    static const char *const keys[] = { "prompt", "tokens", "max_tokens", "temperature", "top_p", "seed", "stop", "chat", "batch", NULL };
    luaL_checktype(L, 2, LUA_TTABLE);
    rp_lua_check_keys(L, 2, "generate", keys);
    rp_generate_opts o = { 0 };
    o.max_tokens = (int)rp_lua_field_integer(L, 2, "max_tokens", 128);
    o.temperature = (float)rp_lua_field_number(L, 2, "temperature", 0.0);
    o.top_p = (float)rp_lua_field_number(L, 2, "top_p", 1.0);
    int slots = (int)rp_lua_field_integer(L, 2, "batch", 8);
    if (slots < 1 || slots > 64) return luaL_error(L, "generate: batch = %d, expected 1..64", slots);
    lua_getfield(L, 2, "seed");
    o.seed = lua_isnil(L, -1) ? rp_lua_seed(L, "model.generate") : (unsigned long long)rp_lua_checkinteger(L, -1);
    lua_pop(L, 1);
    const char *stops[16];
    lua_getfield(L, 2, "stop");
    if (lua_istable(L, -1)) {
        int n = (int)rp_lua_rawlen(L, -1);
        if (n > 16) return luaL_error(L, "generate: at most 16 stop strings");
        for (int i = 0; i < n; i++) { lua_rawgeti(L, -1, i + 1); stops[i] = luaL_checkstring(L, -1); lua_pop(L, 1); }
        o.stop = stops;
        o.n_stop = n;
    } else if (!lua_isnil(L, -1)) return luaL_error(L, "generate: stop must be a list of strings");
    /* the stop table stays on the stack while generating, keeping its strings alive */
    int chat = rp_lua_field_bool(L, 2, "chat", 0);
    lua_getfield(L, 2, "tokens");
    int is_tokens = lua_istable(L, -1);
    if (!is_tokens) { lua_pop(L, 1); lua_getfield(L, 2, "prompt"); }
    int is_list = lua_istable(L, -1);
    if (is_list && is_tokens) {   /* tokens: a list of ids, or a list of such lists */
        lua_rawgeti(L, -1, 1);
        is_list = lua_istable(L, -1);
        lua_pop(L, 1);
    }
    if (is_list) return generate_list(L, x, is_tokens, chat, &o, slots);
    if (!is_tokens && lua_isnil(L, -1)) { lua_pop(L, 1); lua_pushliteral(L, ""); }
    rp_tokens ids = { 0 };
    rp_status st = prompt_ids(L, x, lua_gettop(L), is_tokens, chat, &ids);
    if (st != RP_OK) { rp_tokens_free(&ids); return rp_lua_fail(L, st, "generate"); }
    rp_session *s = session(L, x);
    rp_session_reset(s);
    rp_generate_result r;
    st = rp_generate(s, ids.ids, ids.n, &o, &r);
    rp_tokens_free(&ids);
    if (st != RP_OK) { rp_generate_result_free(&r); return rp_lua_fail(L, st, "generate"); }
    push_result(L, &r);
    rp_generate_result_free(&r);
    return 2;
}

static int l_score(lua_State *L) {
    lmodel *x = check(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    rp_session *s = session(L, x);
    lua_getfield(L, 2, "context");
    int by_text = lua_isstring(L, -1);
    lua_pop(L, 1);
    if (by_text) {
        static const char *const keys[] = { "context", "continuation", NULL };
        rp_lua_check_keys(L, 2, "score", keys);
        const char *ctx = rp_lua_field_string(L, 2, "context", ""), *cont = rp_lua_field_string(L, 2, "continuation", "");
        /* as lm-evaluation-harness: tokenize context and context + continuation; the continuation is what
         * the whole adds after the context's tokens (tokenizing it alone would add a second dummy space) */
        const rp_tokenizer *tok = rp_model_tokenizer(x->m);
        size_t lc = strlen(ctx), lt = strlen(cont);
        char *whole = malloc(lc + lt + 1);
        rp_tokens a = { 0 }, w = { 0 };
        rp_status st = whole ? RP_OK : rp_fail(RP_ERR_NOMEM, "out of memory");
        if (st == RP_OK) {
            memcpy(whole, ctx, lc);
            memcpy(whole + lc, cont, lt + 1);
            st = rp_tokenizer_encode(tok, ctx, lc, RP_TOK_DEFAULT, &a);
        }
        if (st == RP_OK) st = rp_tokenizer_encode(tok, whole, lc + lt, RP_TOK_DEFAULT, &w);
        free(whole);
        size_t nctx = a.n < w.n ? a.n : w.n, nb = w.n - nctx;
        if (st == RP_OK && nb == 0) st = rp_fail(RP_ERR_INVAL, "empty continuation");
        if (st == RP_OK && nctx == 0) st = rp_fail(RP_ERR_INVAL, "empty context for a model without BOS");
        float *lp = NULL;
        unsigned char *gr = NULL;
        if (st == RP_OK) {
            lp = malloc(nb * sizeof *lp);
            gr = malloc(nb);
            if (!lp || !gr) st = rp_fail(RP_ERR_NOMEM, "out of memory");
            else st = rp_session_score(s, w.ids, (int64_t)w.n, (int64_t)nctx - 1, lp, gr);
        }
        double ll = 0;
        int greedy = 1;
        for (size_t i = 0; st == RP_OK && i < nb; i++) { ll += lp[i]; greedy &= gr[i]; }
        rp_tokens_free(&a); rp_tokens_free(&w); free(lp); free(gr);
        if (st != RP_OK) return rp_lua_fail(L, st, "score");
        lua_pushnumber(L, ll);
        lua_pushboolean(L, greedy);
        return 2;
    }
    long long from = rp_lua_optinteger(L, 3, 0);   /* before check_ids pushes its buffer (at 3 when from is absent) */
    size_t n;
    int32_t *ids = check_ids(L, 2, x->m, &n);
    if (from < 0 || (n > 0 && (size_t)from > n - 1)) return luaL_error(L, "score: from = %f outside [0, %d]", (double)from, (int)(n ? n - 1 : 0));
    size_t want = n > (size_t)from + 1 ? n - 1 - (size_t)from : 0;
    float *lp = lua_newuserdata(L, (want ? want : 1) * sizeof *lp);
    unsigned char *gr = lua_newuserdata(L, want ? want : 1);
    rp_status st = rp_session_score(s, ids, (int64_t)n, from, lp, gr);
    if (st != RP_OK) return rp_lua_fail(L, st, "score");
    lua_createtable(L, (int)want, 0);
    for (size_t i = 0; i < want; i++) { lua_pushnumber(L, lp[i]); lua_rawseti(L, -2, (int)i + 1); }
    lua_createtable(L, (int)want, 0);
    for (size_t i = 0; i < want; i++) { lua_pushboolean(L, gr[i]); lua_rawseti(L, -2, (int)i + 1); }
    return 2;
}

static int l_hidden_states(lua_State *L) {
    lmodel *x = check(L);
    size_t n;
    int32_t *ids = check_ids(L, 2, x->m, &n);
    int last = 0;
    if (lua_istable(L, 3)) {
        static const char *const keys[] = { "last", NULL };
        rp_lua_check_keys(L, 3, "hidden_states", keys);
        last = rp_lua_field_bool(L, 3, "last", 0);
    }
    if (n == 0) return luaL_error(L, "hidden_states: no tokens");
    const rp_llama_config *c = rp_model_config(x->m);
    rp_session *s = session(L, x);
    if (n > 512) return luaL_error(L, "hidden_states: %d tokens (at most 512 per call)", (int)n);
    int64_t LL = (int64_t)c->n_layer + 1, C = c->dim, T = (int64_t)n;
    int64_t shape[3] = { LL, T, C };
    rp_tensor *h = rp_lua_new_tensor(L, 3, shape);   /* [L+1, T, C] */
    rp_session_reset(s);
    rp_status st = rp_session_forward(s, ids, T, RP_LOGITS_NONE, NULL, rp_tensor_data(h));
    if (st != RP_OK) return rp_lua_fail(L, st, "hidden_states");
    if (!last) return 1;
    int64_t lshape[2] = { LL, C };
    rp_tensor *hl = rp_lua_new_tensor(L, 2, lshape);   /* [L+1, C]: the last token's rows */
    const float *src = rp_tensor_data(h);
    float *dst = rp_tensor_data(hl);
    for (int64_t l = 0; l < LL; l++) memcpy(dst + l * C, src + (l * T + T - 1) * C, (size_t)C * sizeof(float));
    return 1;
}

/* m:logits(ids) -> tensor [#ids, vocab]: the logits at every position (in pieces of the session's rows). */
static int l_logits(lua_State *L) {
    lmodel *x = check(L);
    size_t n;
    int32_t *ids = check_ids(L, 2, x->m, &n);
    if (n == 0) return luaL_error(L, "logits: no tokens");
    rp_session *s = session(L, x);
    if ((int)n > rp_session_n_ctx(s)) return luaL_error(L, "logits: %d tokens exceed the context of %d", (int)n, rp_session_n_ctx(s));
    int64_t V = rp_model_config(x->m)->vocab, shape[2] = { (int64_t)n, V };
    rp_tensor *t = rp_lua_new_tensor(L, 2, shape);
    float *out = rp_tensor_data(t);
    rp_session_reset(s);
    for (int64_t i = 0; i < (int64_t)n; i += LOGIT_ROWS) {
        int64_t k = (int64_t)n - i < LOGIT_ROWS ? (int64_t)n - i : LOGIT_ROWS;
        rp_status st = rp_session_forward(s, ids + i, k, RP_LOGITS_ALL, out + i * V, NULL);
        if (st != RP_OK) return rp_lua_fail(L, st, "logits");
    }
    return 1;
}

static int l_skip_layers(lua_State *L) {
    lmodel *x = check(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    int nl = rp_model_config(x->m)->n_layer;
    unsigned char *mask = lua_newuserdata(L, (size_t)nl);
    memset(mask, 0, (size_t)nl);
    int n = (int)rp_lua_rawlen(L, 2);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 2, i + 1);
        long long l = rp_lua_checkinteger(L, -1);
        if (l < 0 || l >= nl) return luaL_error(L, "skip_layers: layer %f outside [0, %d)", (double)l, nl);
        mask[l] = 1;
        lua_pop(L, 1);
    }
    rp_status st = rp_model_set_skip(x->m, mask, nl);
    if (st != RP_OK) return rp_lua_fail(L, st, "skip_layers");
    if (x->s) rp_session_reset(x->s);
    return 0;
}

/* lm:tokenize(text) for the table as_lm returns (upvalue 1: the model userdata). */
static int lm_tokenize(lua_State *L) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_settop(L, 2);
    lua_newtable(L);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "bos");
    return l_tokenize(L);
}

/* lm.logprobs(seqs, from) -> {{lp}}, {{greedy}}: the repro.eval table-LM protocol. */
static int lm_logprobs(lua_State *L) {
    lmodel *x = rp_lua_checkobj(L, lua_upvalueindex(1), MODEL_CLASS);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    rp_session *s = session(L, x);
    int nseq = (int)rp_lua_rawlen(L, 1);
    lua_createtable(L, nseq, 0);
    lua_createtable(L, nseq, 0);
    int out_lp = lua_gettop(L) - 1, out_gr = lua_gettop(L);
    for (int i = 0; i < nseq; i++) {
        lua_rawgeti(L, 1, i + 1);
        size_t n;
        int32_t *ids = check_ids(L, lua_gettop(L), x->m, &n);
        lua_rawgeti(L, 2, i + 1);
        long long from = rp_lua_checkinteger(L, -1);
        lua_pop(L, 1);
        if (from < 0 || (size_t)from >= (n ? n : 1)) return luaL_error(L, "logprobs: from[%d] = %f outside the sequence", i + 1, (double)from);
        size_t want = n - 1 - (size_t)from;
        float *lp = lua_newuserdata(L, (want ? want : 1) * sizeof *lp);
        unsigned char *gr = lua_newuserdata(L, want ? want : 1);
        rp_status st = rp_session_score(s, ids, (int64_t)n, from, lp, gr);
        if (st != RP_OK) return rp_lua_fail(L, st, "logprobs");
        lua_createtable(L, (int)want, 0);
        lua_createtable(L, (int)want, 0);
        for (size_t k = 0; k < want; k++) {
            lua_pushnumber(L, lp[k]); lua_rawseti(L, -3, (int)k + 1);
            lua_pushboolean(L, gr[k]); lua_rawseti(L, -2, (int)k + 1);
        }
        lua_rawseti(L, out_gr, i + 1);
        lua_rawseti(L, out_lp, i + 1);
        lua_pop(L, 4);   /* sequence table, ids, lp, gr buffers */
    }
    return 2;
}

static int l_as_lm(lua_State *L) {
    lmodel *x = check(L);
    rp_lm lm = rp_model_as_lm(x->m);
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, x->s ? rp_session_n_ctx(x->s) : lm.n_ctx); lua_setfield(L, -2, "n_ctx");
    lua_pushinteger(L, lm.bos); lua_setfield(L, -2, "bos");
    lua_pushboolean(L, lm.add_bos); lua_setfield(L, -2, "add_bos");
    lua_pushinteger(L, lm.n_vocab); lua_setfield(L, -2, "n_vocab");
    lua_pushvalue(L, 1); lua_pushcclosure(L, lm_tokenize, 1); lua_setfield(L, -2, "tokenize");
    lua_pushvalue(L, 1); lua_pushcclosure(L, lm_logprobs, 1); lua_setfield(L, -2, "logprobs");
    lua_pushvalue(L, 1); lua_setfield(L, -2, "model");   /* keeps the model alive; lets C code find it */
    return 1;
}

static const luaL_Reg *model_methods(void) {
    static const luaL_Reg methods[] = {
        { "info", l_info }, { "tokenize", l_tokenize }, { "detokenize", l_detokenize }, { "generate", l_generate },
        { "chat_format", l_chat_format },
        { "score", l_score }, { "hidden_states", l_hidden_states }, { "logits", l_logits }, { "skip_layers", l_skip_layers }, { "as_lm", l_as_lm },
        { NULL, NULL },
    };
    return methods;
}

/* The rp_lm of a repro.model object at idx (or of an as_lm table holding one in its `model` field). */
int rp_lua_model_lm(lua_State *L, int idx, rp_lm *out) {
    if (idx < 0) idx = lua_gettop(L) + idx + 1;
    int found = 0;
    if (lua_istable(L, idx)) {
        lua_getfield(L, idx, "model");
        idx = lua_gettop(L);
        found = 1;
    }
    lmodel *x = NULL;
    if (lua_isuserdata(L, idx) && lua_getmetatable(L, idx)) {
        luaL_getmetatable(L, MODEL_CLASS);
        if (lua_rawequal(L, -1, -2)) x = rp_lua_checkobj(L, idx, MODEL_CLASS);
        lua_pop(L, 2);
    }
    if (found) lua_pop(L, 1);
    if (!x) return 0;
    *out = rp_model_as_lm(x->m);
    return 1;
}

/* The module table. */
int rp_luaopen_model(lua_State *L) {
    static const luaL_Reg fns[] = { { "load", l_load }, { NULL, NULL } };
    rp_lua_newlib(L, fns);
    return 1;
}
