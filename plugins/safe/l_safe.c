/* l_safe.c: require("repro.safe"): SAFE for Lua scripts: F1@K, the data loaders, the parsers, the cache,
 * the search and LLM backends, and safe.rate (the pipeline). Only this file raises Lua errors; the C core
 * returns statuses. Objects (cache, backends, demos) are userdata with one idempotent release.
 * safe.rate borrows the objects it is given for the duration of the call only, so nothing in C keeps a
 * pointer to a Lua object between calls. */
#include "lua/host.h"
#include "lua/state.h"
#include "plugins/safe/safe.h"
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

RP_LUA_MODULE(safe, rp_luaopen_safe);

#define CLS_CACHE "safe.cache"
#define CLS_SEARCH "safe.search"
#define CLS_LLM "safe.llm"
#define CLS_DEMOS "safe.demos"

static int l_f1k(lua_State *L) {
    long s = (long)rp_lua_checkinteger(L, 1), ns = (long)rp_lua_checkinteger(L, 2), k = (long)rp_lua_checkinteger(L, 3);
    if (k < 1 || s < 0 || ns < 0)
        return luaL_error(L, "safe.f1k: need S >= 0, NS >= 0, K >= 1 (got %f, %f, %f)", (double)s, (double)ns, (double)k);
    lua_pushnumber(L, rp_safe_f1k(s, ns, k));
    return 1;
}

static int l_precision(lua_State *L) {
    double p = rp_safe_precision((long)rp_lua_checkinteger(L, 1), (long)rp_lua_checkinteger(L, 2));
    if (isnan(p)) lua_pushnil(L); else lua_pushnumber(L, p);
    return 1;
}

static long field_count(lua_State *L, int idx, const char *k) {
    lua_getfield(L, idx, k);
    long v = lua_isnil(L, -1) ? 0 : (long)rp_lua_checkinteger(L, -1);
    lua_pop(L, 1);
    return v;
}

static void set_num(lua_State *L, const char *k, double v) {
    if (isnan(v)) lua_pushnil(L); else lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

/* safe.summarize({{s=,ns=,ir=}, ...}, K) -> {n, n_prec, s, ns, ir, prec, recall, f1} */
static int l_summarize(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    long k = (long)rp_lua_checkinteger(L, 2);
    size_t n = rp_lua_rawlen(L, 1);
    rp_safe_counts *c = lua_newuserdata(L, (n ? n : 1) * sizeof *c);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 1, (int)i + 1);
        luaL_checktype(L, -1, LUA_TTABLE);
        int t = lua_gettop(L);
        c[i].s = field_count(L, t, "s"); c[i].ns = field_count(L, t, "ns"); c[i].ir = field_count(L, t, "ir");
        lua_pop(L, 1);
    }
    rp_safe_summary s;
    rp_status st = rp_safe_summarize(c, n, k, &s);
    if (st != RP_OK) return rp_lua_fail(L, st, "safe.summarize");
    lua_newtable(L);
    lua_pushnumber(L, (double)s.n); lua_setfield(L, -2, "n");
    lua_pushnumber(L, (double)s.n_prec); lua_setfield(L, -2, "n_prec");
    set_num(L, "s", s.s); set_num(L, "ns", s.ns); set_num(L, "ir", s.ir);
    set_num(L, "prec", s.prec); set_num(L, "recall", s.recall); set_num(L, "f1", s.f1);
    return 1;
}

static void push_prompts(lua_State *L, rp_safe_prompts *p) {
    lua_createtable(L, (int)p->n, 0);
    for (size_t i = 0; i < p->n; i++) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, p->items[i].topic); lua_setfield(L, -2, "topic");
        lua_pushstring(L, p->items[i].prompt); lua_setfield(L, -2, "prompt");
        lua_pushnumber(L, p->items[i].line); lua_setfield(L, -2, "line");
        lua_rawseti(L, -2, (int)i + 1);
    }
}

static int l_longfact(lua_State *L) {
    rp_safe_prompts p = {0};
    rp_status st = rp_safe_longfact_load(luaL_checkstring(L, 1), luaL_checkstring(L, 2), &p);
    if (st != RP_OK) { rp_safe_prompts_free(&p); return rp_lua_fail(L, st, "safe.longfact"); }
    push_prompts(L, &p);
    rp_safe_prompts_free(&p);
    return 1;
}

static int l_benchmark(lua_State *L) {
    rp_safe_prompts p = {0};
    rp_status st = rp_safe_benchmark_load(luaL_checkstring(L, 1), &p);
    if (st != RP_OK) { rp_safe_prompts_free(&p); return rp_lua_fail(L, st, "safe.benchmark"); }
    push_prompts(L, &p);
    rp_safe_prompts_free(&p);
    return 1;
}

static const char *short_label(rp_safe_label l) {
    return l == RP_SAFE_SUPPORTED ? "S" : l == RP_SAFE_NOT_SUPPORTED ? "NS" : l == RP_SAFE_IRRELEVANT ? "IR" : "?";
}

/* safe.factscore(path) -> {{input, output, topic, abstained, facts = {{text, label, sentence}}}} */
static int l_factscore(lua_State *L) {
    rp_safe_factscore f = {0};
    rp_status st = rp_safe_factscore_load(luaL_checkstring(L, 1), &f);
    if (st != RP_OK) { rp_safe_factscore_free(&f); return rp_lua_fail(L, st, "safe.factscore"); }
    lua_createtable(L, (int)f.n, 0);
    for (size_t i = 0; i < f.n; i++) {
        rp_safe_fs_item *it = &f.items[i];
        lua_createtable(L, 0, 5);
        lua_pushstring(L, it->input); lua_setfield(L, -2, "input");
        lua_pushstring(L, it->output); lua_setfield(L, -2, "output");
        lua_pushstring(L, it->topic); lua_setfield(L, -2, "topic");
        lua_pushboolean(L, it->abstained); lua_setfield(L, -2, "abstained");
        lua_createtable(L, (int)it->n_facts, 0);
        for (size_t j = 0; j < it->n_facts; j++) {
            lua_createtable(L, 0, 3);
            lua_pushstring(L, it->facts[j].text); lua_setfield(L, -2, "text");
            lua_pushstring(L, short_label(it->facts[j].label)); lua_setfield(L, -2, "label");
            lua_pushnumber(L, (double)it->facts[j].sentence); lua_setfield(L, -2, "sentence");
            lua_rawseti(L, -2, (int)j + 1);
        }
        lua_setfield(L, -2, "facts");
        lua_rawseti(L, -2, (int)i + 1);
    }
    rp_safe_factscore_free(&f);
    return 1;
}

static void release_demos(void *p) { rp_safe_demos_free(p); free(p); }

static int l_demos(lua_State *L) {
    rp_safe_demos *d = calloc(1, sizeof *d);
    if (!d) return luaL_error(L, "out of memory");
    rp_status st = rp_safe_demos_load(luaL_checkstring(L, 1), d);
    if (st != RP_OK) { free(d); return rp_lua_fail(L, st, "safe.demos"); }
    static const luaL_Reg m[] = {{NULL, NULL}};
    rp_lua_newobj(L, CLS_DEMOS, d, m, release_demos);
    return 1;
}

static void push_list(lua_State *L, const rp_safe_strlist *l) {
    lua_createtable(L, (int)l->n, 0);
    for (size_t i = 0; i < l->n; i++) { lua_pushstring(L, l->items[i]); lua_rawseti(L, -2, (int)i + 1); }
}

static int l_split_sentences(lua_State *L) {
    size_t n;
    const char *t = luaL_checklstring(L, 1, &n);
    int skip = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
    rp_safe_strlist l = {0};
    rp_status st = rp_safe_split_sentences(t, n, skip, &l);
    if (st != RP_OK) { rp_safe_strlist_free(&l); return rp_lua_fail(L, st, "safe.split_sentences"); }
    push_list(L, &l);
    rp_safe_strlist_free(&l);
    return 1;
}

static int l_parse_facts(lua_State *L) {
    size_t n;
    const char *t = luaL_checklstring(L, 1, &n);
    rp_safe_strlist l = {0};
    rp_status st = rp_safe_parse_facts(t, n, &l);
    if (st != RP_OK) { rp_safe_strlist_free(&l); return rp_lua_fail(L, st, "safe.parse_facts"); }
    push_list(L, &l);
    rp_safe_strlist_free(&l);
    return 1;
}

static int l_parse_relevance(lua_State *L) {
    size_t n;
    const char *t = luaL_checklstring(L, 1, &n);
    lua_pushstring(L, rp_safe_label_name(rp_safe_parse_relevance(t, n)));
    return 1;
}

static int l_parse_rating(lua_State *L) {
    size_t n;
    const char *t = luaL_checklstring(L, 1, &n);
    lua_pushstring(L, rp_safe_label_name(rp_safe_parse_rating(t, n)));
    return 1;
}

/* ---- cache ---- */

static void release_cache(void *p) { rp_safe_cache_close(p); }

static int cache_stats(lua_State *L) {
    rp_safe_cache *c = rp_lua_checkobj(L, 1, CLS_CACHE);
    rp_safe_cache_stats s = rp_safe_cache_get_stats(c);
    lua_createtable(L, 0, 9);
    lua_pushnumber(L, (double)s.llm_hits); lua_setfield(L, -2, "llm_hits");
    lua_pushnumber(L, (double)s.llm_misses); lua_setfield(L, -2, "llm_misses");
    lua_pushnumber(L, (double)s.search_hits); lua_setfield(L, -2, "search_hits");
    lua_pushnumber(L, (double)s.search_misses); lua_setfield(L, -2, "search_misses");
    lua_pushnumber(L, (double)s.stored); lua_setfield(L, -2, "stored");
    lua_pushnumber(L, (double)s.net_llm_calls); lua_setfield(L, -2, "net_llm_calls");
    lua_pushnumber(L, (double)s.net_search_calls); lua_setfield(L, -2, "net_search_calls");
    lua_pushnumber(L, (double)s.net_retries); lua_setfield(L, -2, "net_retries");
    lua_pushnumber(L, s.cost_spent); lua_setfield(L, -2, "cost_spent");
    lua_pushnumber(L, s.cost_saved); lua_setfield(L, -2, "cost_saved");
    return 1;
}

static int cache_count(lua_State *L) {
    lua_pushnumber(L, (double)rp_safe_cache_count(rp_lua_checkobj(L, 1, CLS_CACHE)));
    return 1;
}

static int cache_export(lua_State *L) {
    rp_status st = rp_safe_cache_export(rp_lua_checkobj(L, 1, CLS_CACHE), luaL_checkstring(L, 2));
    if (st != RP_OK) return rp_lua_fail(L, st, "cache:export");
    return 0;
}

static int cache_import(lua_State *L) {
    int64_t n = 0;
    rp_status st = rp_safe_cache_import(rp_lua_checkobj(L, 1, CLS_CACHE), luaL_checkstring(L, 2), &n);
    if (st != RP_OK) return rp_lua_fail(L, st, "cache:import");
    lua_pushnumber(L, (double)n);
    return 1;
}

static int cache_close(lua_State *L) { rp_lua_closeobj(L, 1, CLS_CACHE); return 0; }

static int l_cache(lua_State *L) {
    rp_safe_cache *c = NULL;
    rp_status st = rp_safe_cache_open(luaL_checkstring(L, 1), &c);
    if (st != RP_OK) return rp_lua_fail(L, st, "safe.cache");
    static const luaL_Reg m[] = {{"stats", cache_stats}, {"count", cache_count}, {"export", cache_export},
                                 {"import", cache_import}, {"close", cache_close}, {NULL, NULL}};
    rp_lua_newobj(L, CLS_CACHE, c, m, release_cache);
    return 1;
}

/* ---- backends ---- */

static void release_search(void *p) { rp_safe_search_release(p); free(p); }
static void release_llm(void *p) { rp_safe_llm_release(p); free(p); }

static int search_name(lua_State *L) { lua_pushstring(L, ((rp_safe_search *)rp_lua_checkobj(L, 1, CLS_SEARCH))->name); return 1; }
static int search_close(lua_State *L) { rp_lua_closeobj(L, 1, CLS_SEARCH); return 0; }

/* search:query(q, k) -> result string (a direct search, uncached; for tools and tests) */
static int search_query(lua_State *L) {
    rp_safe_search *s = rp_lua_checkobj(L, 1, CLS_SEARCH);
    rp_safe_query q = {.q = luaL_checkstring(L, 2), .k = (int)rp_lua_optinteger(L, 3, 3), .st = RP_ERR_INTERRUPTED};
    rp_status st = s->search(s->ctx, &q, 1);
    if (st == RP_OK && q.st != RP_OK) st = rp_fail(q.st, "%s", q.error);
    if (st != RP_OK) { rp_buf_free(&q.text); return rp_lua_fail(L, st, "search:query"); }
    lua_pushlstring(L, q.text.data ? q.text.data : "", q.text.len);
    rp_buf_free(&q.text);
    return 1;
}

static void push_search(lua_State *L, rp_safe_search *s) {
    static const luaL_Reg m[] = {{"name", search_name}, {"query", search_query}, {"close", search_close}, {NULL, NULL}};
    rp_lua_newobj(L, CLS_SEARCH, s, m, release_search);
}

static int l_bm25_build(lua_State *L) {
    int64_t n = 0;
    rp_status st = rp_safe_bm25_build(luaL_checkstring(L, 1), luaL_checkstring(L, 2), &n);
    if (st != RP_OK) return rp_lua_fail(L, st, "safe.bm25_build");
    lua_pushnumber(L, (double)n);
    return 1;
}

static int l_bm25(lua_State *L) {
    rp_safe_search *s = calloc(1, sizeof *s);
    if (!s) return luaL_error(L, "out of memory");
    rp_status st = rp_safe_bm25_new(luaL_checkstring(L, 1), s);
    if (st != RP_OK) { free(s); return rp_lua_fail(L, st, "safe.bm25"); }
    push_search(L, s);
    return 1;
}

static int llm_name(lua_State *L) { lua_pushstring(L, ((rp_safe_llm *)rp_lua_checkobj(L, 1, CLS_LLM))->name); return 1; }
static int llm_close(lua_State *L) { rp_lua_closeobj(L, 1, CLS_LLM); return 0; }

/* llm:complete(prompt, {temperature=, max_tokens=, choices={...}}) -> text, prompt_tokens, completion_tokens
 * (uncached); choices: the allowed answers of a label step (a scoring backend answers with one of them) */
static int llm_complete(lua_State *L) {
    rp_safe_llm *l = rp_lua_checkobj(L, 1, CLS_LLM);
    rp_safe_call c = {.prompt = luaL_checkstring(L, 2), .temperature = 0, .max_tokens = 512, .st = RP_ERR_INTERRUPTED};
    const char *choices[16];
    if (lua_istable(L, 3)) {
        static const char *const valid[] = {"temperature", "max_tokens", "choices", NULL};
        rp_lua_check_keys(L, 3, "llm:complete options", valid);
        c.temperature = rp_lua_field_number(L, 3, "temperature", 0);
        c.max_tokens = (int)rp_lua_field_integer(L, 3, "max_tokens", 512);
        lua_getfield(L, 3, "choices");   /* stays on the stack: keeps the strings alive */
        if (!lua_isnil(L, -1)) {
            luaL_checktype(L, -1, LUA_TTABLE);
            size_t n = rp_lua_rawlen(L, -1);
            if (n < 1 || n > 16) return luaL_error(L, "llm:complete: choices must list 1 to 16 strings (got %d)", (int)n);
            for (size_t i = 0; i < n; i++) {
                lua_rawgeti(L, -1, (int)i + 1);
                if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "llm:complete: choice %d is not a string", (int)i + 1);
                choices[i] = lua_tostring(L, -1);
                lua_pop(L, 1);
            }
            c.choices = choices;
            c.n_choices = (int)n;
        }
    }
    rp_status st = l->complete(l->ctx, &c, 1);
    if (st == RP_OK && c.st != RP_OK) st = rp_fail(c.st, "%s", c.error);
    if (st != RP_OK) { rp_buf_free(&c.text); return rp_lua_fail(L, st, "llm:complete"); }
    lua_pushlstring(L, c.text.data ? c.text.data : "", c.text.len);
    lua_pushnumber(L, (double)c.prompt_tokens);
    lua_pushnumber(L, (double)c.completion_tokens);
    rp_buf_free(&c.text);
    return 3;
}

void rp_safe_lua_push_llm(lua_State *L, rp_safe_llm *l);
/* Push an LLM backend (heap-allocated, owned by the new userdata) as a Lua object. */
void rp_safe_lua_push_llm(lua_State *L, rp_safe_llm *l) {
    static const luaL_Reg m[] = {{"name", llm_name}, {"complete", llm_complete}, {"close", llm_close}, {NULL, NULL}};
    rp_lua_newobj(L, CLS_LLM, l, m, release_llm);
}

/* ---- the pipeline ---- */

static int stop_requested(void *ud) { (void)ud; return rp_lua_interrupted(); }

static const char *const rate_keys[] = {"cache", "replay", "llm_name", "search_name", "demos", "n_queries", "k_results",
                                        "max_retries", "max_failures", "max_tokens", "temp_split", "temp_other", "max_batch",
                                        "skip_boilerplate", "query_fallback", NULL};

/* safe.rate(llm|nil, search|nil, items, opts) -> results: one table per item with the counts and `record`
 * (the JSON text of everything done for it). items: {{question=, response=, facts={...}|nil}, ...}. */
static int l_rate(lua_State *L) {
    rp_safe_llm *llm = lua_isnil(L, 1) ? NULL : rp_lua_checkobj(L, 1, CLS_LLM);
    rp_safe_search *search = lua_isnil(L, 2) ? NULL : rp_lua_checkobj(L, 2, CLS_SEARCH);
    luaL_checktype(L, 3, LUA_TTABLE);
    if (lua_isnoneornil(L, 4)) { lua_settop(L, 3); lua_newtable(L); }
    luaL_checktype(L, 4, LUA_TTABLE);
    rp_lua_check_keys(L, 4, "safe.rate options", rate_keys);
    rp_safe_config cfg = rp_safe_config_default();
    cfg.n_queries = (int)rp_lua_field_integer(L, 4, "n_queries", cfg.n_queries);
    cfg.k_results = (int)rp_lua_field_integer(L, 4, "k_results", cfg.k_results);
    cfg.max_retries = (int)rp_lua_field_integer(L, 4, "max_retries", cfg.max_retries);
    cfg.max_failures = (int)rp_lua_field_integer(L, 4, "max_failures", cfg.max_failures);
    cfg.max_tokens = (int)rp_lua_field_integer(L, 4, "max_tokens", cfg.max_tokens);
    cfg.temp_split = rp_lua_field_number(L, 4, "temp_split", cfg.temp_split);
    cfg.temp_other = rp_lua_field_number(L, 4, "temp_other", cfg.temp_other);
    cfg.max_batch = (size_t)rp_lua_field_integer(L, 4, "max_batch", 0);
    cfg.skip_boilerplate = rp_lua_field_bool(L, 4, "skip_boilerplate", 1);
    cfg.query_fallback = rp_lua_field_bool(L, 4, "query_fallback", 0);
    cfg.should_stop = stop_requested;
    int replay = rp_lua_field_bool(L, 4, "replay", 0);
    lua_getfield(L, 4, "cache");
    rp_safe_cache *cache = lua_isnil(L, -1) ? NULL : rp_lua_checkobj(L, -1, CLS_CACHE);
    lua_pop(L, 1);
    lua_getfield(L, 4, "demos");
    rp_safe_demos *demos = lua_isnil(L, -1) ? NULL : rp_lua_checkobj(L, -1, CLS_DEMOS);
    lua_pop(L, 1);
    if (replay && !cache) return luaL_error(L, "safe.rate: replay needs a cache");
    if (!cache && (!llm || !search)) return luaL_error(L, "safe.rate: needs an LLM and a search backend (or a cache in replay mode)");
    /* items: strings stay alive on the Lua stack's tables for the call */
    size_t n = rp_lua_rawlen(L, 3);
    rp_safe_item *items = lua_newuserdata(L, (n ? n : 1) * sizeof *items);
    memset(items, 0, (n ? n : 1) * sizeof *items);
    int anchor = lua_gettop(L);
    lua_newtable(L);   /* keeps fact arrays alive */
    int keep = lua_gettop(L);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 3, (int)i + 1);
        if (!lua_istable(L, -1)) return luaL_error(L, "safe.rate: item %d is not a table", (int)i + 1);
        int it = lua_gettop(L);
        static const char *const valid[] = {"question", "response", "facts", NULL};
        rp_lua_check_keys(L, it, "safe.rate item", valid);
        lua_getfield(L, it, "question"); items[i].question = lua_tostring(L, -1); lua_pop(L, 1);
        lua_getfield(L, it, "response"); items[i].response = lua_tostring(L, -1); lua_pop(L, 1);
        if (!items[i].question || !items[i].response) return luaL_error(L, "safe.rate: item %d needs question and response strings", (int)i + 1);
        lua_getfield(L, it, "facts");
        if (lua_istable(L, -1)) {
            size_t nf = rp_lua_rawlen(L, -1);
            const char **fs = lua_newuserdata(L, (nf ? nf : 1) * sizeof *fs);
            for (size_t f = 0; f < nf; f++) {
                lua_rawgeti(L, -2, (int)f + 1);
                fs[f] = lua_tostring(L, -1);
                if (!fs[f]) return luaL_error(L, "safe.rate: item %d fact %d is not a string", (int)i + 1, (int)f + 1);
                lua_pop(L, 1);
            }
            items[i].facts = fs;
            items[i].n_facts = nf;
            lua_rawseti(L, keep, (int)i + 1);
        }
        lua_pop(L, 2);
    }
    (void)anchor;
    rp_safe_llm cl = {0}, *use_llm = llm;
    rp_safe_search cs = {0}, *use_search = search;
    rp_status st = RP_OK;
    if (cache) {
        snprintf(cl.name, sizeof cl.name, "%s", rp_lua_field_string(L, 4, "llm_name", llm ? llm->name : "replay"));
        snprintf(cs.name, sizeof cs.name, "%s", rp_lua_field_string(L, 4, "search_name", search ? search->name : "replay"));
        st = rp_safe_llm_cached(cache, llm, replay, &cl);
        if (st == RP_OK) st = rp_safe_search_cached(cache, search, replay, &cs);
        use_llm = &cl;
        use_search = &cs;
    }
    rp_safe_result *res = calloc(n ? n : 1, sizeof *res);
    if (!res) st = rp_fail(RP_ERR_NOMEM, "out of memory");
    if (st == RP_OK) st = rp_safe_rate(&cfg, use_llm, use_search, demos, items, n, res);
    rp_safe_llm_release(&cl);
    rp_safe_search_release(&cs);
    if (st != RP_OK) {
        for (size_t i = 0; res && i < n; i++) rp_safe_result_free(&res[i]);
        free(res);
        return rp_lua_fail(L, st, "safe.rate");
    }
    lua_createtable(L, (int)n, 0);
    rp_buf js = {0};
    for (size_t i = 0; i < n; i++) {
        rp_safe_result *r = &res[i];
        lua_createtable(L, 0, 14);
        lua_pushnumber(L, (double)r->counts.s); lua_setfield(L, -2, "supported");
        lua_pushnumber(L, (double)r->counts.ns); lua_setfield(L, -2, "not_supported");
        lua_pushnumber(L, (double)r->counts.ir); lua_setfield(L, -2, "irrelevant");
        lua_pushnumber(L, (double)r->n_unparsed); lua_setfield(L, -2, "unparsed");
        lua_pushnumber(L, (double)r->n_failed); lua_setfield(L, -2, "failed");
        lua_pushnumber(L, (double)r->n_facts); lua_setfield(L, -2, "facts_total");
        lua_pushnumber(L, (double)r->llm_calls); lua_setfield(L, -2, "llm_calls");
        lua_pushnumber(L, (double)r->searches); lua_setfield(L, -2, "searches");
        lua_pushnumber(L, (double)r->retries); lua_setfield(L, -2, "retries");
        lua_pushnumber(L, (double)r->net_retries); lua_setfield(L, -2, "net_retries");
        lua_pushnumber(L, (double)r->failures); lua_setfield(L, -2, "transport_failures");
        lua_pushnumber(L, (double)r->cached_calls); lua_setfield(L, -2, "cached_calls");
        lua_pushnumber(L, r->cost); lua_setfield(L, -2, "cost");
        lua_createtable(L, (int)r->n_facts, 0);
        for (size_t f = 0; f < r->n_facts; f++) {
            lua_pushstring(L, r->facts[f].failed ? "failed" : rp_safe_label_name(r->facts[f].label));
            lua_rawseti(L, -2, (int)f + 1);
        }
        lua_setfield(L, -2, "labels");
        if (rp_safe_result_json(r, &items[i], &js) == RP_OK) { lua_pushlstring(L, js.data, js.len); lua_setfield(L, -2, "record"); }
        lua_rawseti(L, -2, (int)i + 1);
        rp_safe_result_free(r);
    }
    rp_buf_free(&js);
    free(res);
    return 1;
}

/* safe.generate(llm|nil, prompts, {cache=, replay=, llm_name=, temperature=0, max_tokens=1024, max_batch=})
 * -> list of {text, prompt_tokens, completion_tokens, cost, cached} or {error=} per prompt, in order, each
 * with net_retries (HTTP-level retries made for it).
 * Responses to benchmark prompts, through the same cache as SAFE's calls. */
static int l_generate(lua_State *L) {
    rp_safe_llm *llm = lua_isnil(L, 1) ? NULL : rp_lua_checkobj(L, 1, CLS_LLM);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (lua_isnoneornil(L, 3)) { lua_settop(L, 2); lua_newtable(L); }
    luaL_checktype(L, 3, LUA_TTABLE);
    static const char *const valid[] = {"cache", "replay", "llm_name", "temperature", "max_tokens", "max_batch", NULL};
    rp_lua_check_keys(L, 3, "safe.generate options", valid);
    int replay = rp_lua_field_bool(L, 3, "replay", 0);
    double temp = rp_lua_field_number(L, 3, "temperature", 0);
    int max_tokens = (int)rp_lua_field_integer(L, 3, "max_tokens", 1024);
    size_t max_batch = (size_t)rp_lua_field_integer(L, 3, "max_batch", 0);
    lua_getfield(L, 3, "cache");
    rp_safe_cache *cache = lua_isnil(L, -1) ? NULL : rp_lua_checkobj(L, -1, CLS_CACHE);
    lua_pop(L, 1);
    if (!llm && !(cache && replay)) return luaL_error(L, "safe.generate: needs an LLM (or a cache in replay mode)");
    size_t n = rp_lua_rawlen(L, 2);
    rp_safe_call *calls = lua_newuserdata(L, (n ? n : 1) * sizeof *calls);
    memset(calls, 0, (n ? n : 1) * sizeof *calls);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 2, (int)i + 1);
        calls[i].prompt = lua_tostring(L, -1);
        if (!calls[i].prompt) return luaL_error(L, "safe.generate: prompt %d is not a string", (int)i + 1);
        lua_pop(L, 1);   /* the string stays alive in the prompts table */
        calls[i].temperature = temp;
        calls[i].max_tokens = max_tokens;
        calls[i].st = RP_ERR_INTERRUPTED;
    }
    rp_safe_llm cl = {0}, *use = llm;
    rp_status st = RP_OK;
    if (cache) {
        snprintf(cl.name, sizeof cl.name, "%s", rp_lua_field_string(L, 3, "llm_name", llm ? llm->name : "replay"));
        st = rp_safe_llm_cached(cache, llm, replay, &cl);
        use = &cl;
    }
    size_t step = max_batch ? max_batch : (n ? n : 1);
    for (size_t i = 0; st == RP_OK && i < n; i += step) {
        if (rp_lua_interrupted()) { st = rp_fail(RP_ERR_INTERRUPTED, "safe.generate: interrupted"); break; }
        st = use->complete(use->ctx, calls + i, n - i < step ? n - i : step);
    }
    rp_safe_llm_release(&cl);
    if (st != RP_OK) { rp_safe_calls_free(calls, n); return rp_lua_fail(L, st, "safe.generate"); }
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 5);
        if (calls[i].st == RP_OK) {
            lua_pushlstring(L, calls[i].text.data ? calls[i].text.data : "", calls[i].text.len); lua_setfield(L, -2, "text");
            lua_pushnumber(L, (double)calls[i].prompt_tokens); lua_setfield(L, -2, "prompt_tokens");
            lua_pushnumber(L, (double)calls[i].completion_tokens); lua_setfield(L, -2, "completion_tokens");
            lua_pushnumber(L, calls[i].cost); lua_setfield(L, -2, "cost");
            lua_pushboolean(L, calls[i].cached); lua_setfield(L, -2, "cached");
        } else {
            lua_pushstring(L, calls[i].error); lua_setfield(L, -2, "error");
        }
        lua_pushnumber(L, (double)calls[i].net_retries); lua_setfield(L, -2, "net_retries");
        lua_rawseti(L, -2, (int)i + 1);
    }
    rp_safe_calls_free(calls, n);
    return 1;
}

static const char *const openai_keys[] = {"base_url", "model", "api_key_env", "price_in", "price_out", "max_concurrent",
                                          "rpm", "tpm", "max_retries", "timeout", "backoff", NULL};

/* safe.openai{base_url=, model=, api_key_env=, price_in=, price_out=, max_concurrent=, rpm=, tpm=, max_retries=,
 * timeout=, backoff=} -> llm: any OpenAI-compatible chat-completions endpoint. */
static int l_openai(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    rp_lua_check_keys(L, 1, "safe.openai", openai_keys);
    rp_safe_openai_config c = {
        .base_url = rp_lua_field_string(L, 1, "base_url", NULL), .model = rp_lua_field_string(L, 1, "model", NULL),
        .api_key_env = rp_lua_field_string(L, 1, "api_key_env", NULL),
        .price_in_per_m = rp_lua_field_number(L, 1, "price_in", 0), .price_out_per_m = rp_lua_field_number(L, 1, "price_out", 0),
        .max_concurrent = (int)rp_lua_field_integer(L, 1, "max_concurrent", 4),
        .requests_per_min = rp_lua_field_number(L, 1, "rpm", 0), .tokens_per_min = rp_lua_field_number(L, 1, "tpm", 0),
        .max_retries = (int)rp_lua_field_integer(L, 1, "max_retries", 5), .timeout_s = rp_lua_field_number(L, 1, "timeout", 120),
        .backoff_base_s = rp_lua_field_number(L, 1, "backoff", 0.5)};
    rp_safe_llm *l = calloc(1, sizeof *l);
    if (!l) return luaL_error(L, "out of memory");
    rp_status st = rp_safe_openai_new(&c, l);
    if (st != RP_OK) { free(l); return rp_lua_fail(L, st, "safe.openai"); }
    rp_safe_lua_push_llm(L, l);
    return 1;
}

static const char *const serper_keys[] = {"url", "api_key_env", "price", "max_concurrent", "rpm", "max_retries", "timeout",
                                          "backoff", NULL};

/* safe.serper{url=, api_key_env=, price=, max_concurrent=, rpm=, max_retries=, timeout=, backoff=} -> search */
static int l_serper(lua_State *L) {
    if (lua_isnoneornil(L, 1)) { lua_settop(L, 0); lua_newtable(L); }
    luaL_checktype(L, 1, LUA_TTABLE);
    rp_lua_check_keys(L, 1, "safe.serper", serper_keys);
    rp_safe_serper_config c = {
        .url = rp_lua_field_string(L, 1, "url", NULL), .api_key_env = rp_lua_field_string(L, 1, "api_key_env", NULL),
        .price_per_query = rp_lua_field_number(L, 1, "price", 0.001),
        .max_concurrent = (int)rp_lua_field_integer(L, 1, "max_concurrent", 4),
        .requests_per_min = rp_lua_field_number(L, 1, "rpm", 0), .max_retries = (int)rp_lua_field_integer(L, 1, "max_retries", 5),
        .timeout_s = rp_lua_field_number(L, 1, "timeout", 60), .backoff_base_s = rp_lua_field_number(L, 1, "backoff", 0.5)};
    rp_safe_search *s = calloc(1, sizeof *s);
    if (!s) return luaL_error(L, "out of memory");
    rp_status st = rp_safe_serper_new(&c, s);
    if (st != RP_OK) { free(s); return rp_lua_fail(L, st, "safe.serper"); }
    push_search(L, s);
    return 1;
}

/* safe.local_model(path, {ctx=, score_labels=false}) -> llm: the local model in this process, without HTTP;
 * score_labels answers the label steps by log-likelihood (rp_safe_local_new) */
static int l_local_model(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    int n_ctx = 0, score = 0;
    if (lua_istable(L, 2)) {
        static const char *const valid[] = {"ctx", "score_labels", NULL};
        rp_lua_check_keys(L, 2, "safe.local_model options", valid);
        n_ctx = (int)rp_lua_field_integer(L, 2, "ctx", 0);
        score = rp_lua_field_bool(L, 2, "score_labels", 0);
    }
    rp_safe_llm *l = calloc(1, sizeof *l);
    if (!l) return luaL_error(L, "out of memory");
    rp_status st = rp_safe_local_new(path, n_ctx, score, l);
    if (st != RP_OK) { free(l); return rp_lua_fail(L, st, "safe.local_model"); }
    rp_safe_lua_push_llm(L, l);
    return 1;
}

int rp_luaopen_safe(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"f1k", l_f1k}, {"precision", l_precision}, {"summarize", l_summarize}, {"longfact", l_longfact},
        {"benchmark", l_benchmark}, {"factscore", l_factscore}, {"demos", l_demos},
        {"split_sentences", l_split_sentences}, {"parse_facts", l_parse_facts}, {"parse_relevance", l_parse_relevance},
        {"parse_rating", l_parse_rating}, {"cache", l_cache}, {"bm25_build", l_bm25_build}, {"bm25", l_bm25},
        {"rate", l_rate}, {"generate", l_generate}, {"local_model", l_local_model}, {NULL, NULL}};
    rp_lua_newlib(L, fns);
    lua_pushcfunction(L, l_openai);
    lua_setfield(L, -2, "openai");
    lua_pushcfunction(L, l_serper);
    lua_setfield(L, -2, "serper");
    lua_pushstring(L, rp_safe_postamble);
    lua_setfield(L, -2, "postamble");
    return 1;
}
