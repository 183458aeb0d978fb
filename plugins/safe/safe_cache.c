/* safe_cache.c: the content-addressed cache of SAFE's LLM and search calls, in one SQLite table
 * (key = sha256 over length-prefixed fields of the request → response text, token counts, cost).
 * Answers are stored as soon as a batch returns, inside one transaction, so an interrupted run loses at
 * most the calls in flight. Only successful answers are cached; failures are retried by the next run.
 * Secrets never reach the table: keys and rows hold the backend name, settings and prompt/query only. */
#include "plugins/safe/safe.h"
#include "util/sha256.h"
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rp_safe_cache {
    sqlite3 *db;
    char *path;
    rp_safe_cache_stats stats;
};

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS safe_cache("
    " key TEXT PRIMARY KEY, kind TEXT NOT NULL, backend TEXT NOT NULL, request TEXT NOT NULL,"
    " response TEXT NOT NULL, prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,"
    " cost REAL NOT NULL DEFAULT 0, created REAL NOT NULL);";

static rp_status db_fail(sqlite3 *db, const char *path, const char *what) {
    return rp_fail(RP_ERR_DB, "%s: %s: %s", path ? path : "safe cache", what, db ? sqlite3_errmsg(db) : "cannot open");
}

rp_status rp_safe_cache_open(const char *path, rp_safe_cache **out) {
    *out = NULL;
    rp_safe_cache *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path))) { free(c); return rp_fail(RP_ERR_NOMEM, "out of memory"); }
    if (sqlite3_open(path, &c->db) != SQLITE_OK) {
        rp_status st = db_fail(c->db, path, "open");
        rp_safe_cache_close(c);
        return st;
    }
    sqlite3_busy_timeout(c->db, 10000);
    char *err = NULL;
    if (sqlite3_exec(c->db, schema, NULL, NULL, &err) != SQLITE_OK) {
        rp_status st = rp_fail(RP_ERR_DB, "%s: creating the cache table: %s", path, err ? err : "?");
        sqlite3_free(err);
        rp_safe_cache_close(c);
        return st;
    }
    *out = c;
    return RP_OK;
}

void rp_safe_cache_close(rp_safe_cache *c) {
    if (!c) return;
    sqlite3_close(c->db);
    free(c->path);
    free(c);
}

rp_safe_cache_stats rp_safe_cache_get_stats(const rp_safe_cache *c) { return c->stats; }

int64_t rp_safe_cache_count(rp_safe_cache *c) {
    sqlite3_stmt *s = NULL;
    int64_t n = -1;
    if (sqlite3_prepare_v2(c->db, "SELECT count(*) FROM safe_cache", -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

rp_status rp_safe_cache_export(rp_safe_cache *c, const char *path) {
    remove(path);
    sqlite3_stmt *s = NULL;
    rp_status st = RP_OK;
    if (sqlite3_prepare_v2(c->db, "VACUUM INTO ?", -1, &s, NULL) != SQLITE_OK) return db_fail(c->db, c->path, "export");
    sqlite3_bind_text(s, 1, path, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(s) != SQLITE_DONE) st = rp_fail(RP_ERR_DB, "exporting the cache to %s: %s", path, sqlite3_errmsg(c->db));
    sqlite3_finalize(s);
    return st;
}

rp_status rp_safe_cache_import(rp_safe_cache *c, const char *path, int64_t *n_new) {
    if (n_new) *n_new = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return rp_fail(RP_ERR_NOTFOUND, "importing a cache: %s: no such file", path);
    fclose(f);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(c->db, "ATTACH ? AS imp", -1, &s, NULL) != SQLITE_OK) return db_fail(c->db, c->path, "attach");
    sqlite3_bind_text(s, 1, path, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) return rp_fail(RP_ERR_DB, "importing a cache: %s: %s", path, sqlite3_errmsg(c->db));
    char *err = NULL;
    rp_status st = RP_OK;
    if (sqlite3_exec(c->db,
                     "INSERT OR IGNORE INTO main.safe_cache(key, kind, backend, request, response, prompt_tokens,"
                     " completion_tokens, cost, created) SELECT key, kind, backend, request, response, prompt_tokens,"
                     " completion_tokens, cost, created FROM imp.safe_cache", NULL, NULL, &err) != SQLITE_OK)
        st = rp_fail(RP_ERR_FORMAT, "importing a cache: %s: %s", path, err ? err : "?");
    else if (n_new) *n_new = sqlite3_changes(c->db);
    sqlite3_free(err);
    sqlite3_exec(c->db, "DETACH imp", NULL, NULL, NULL);
    return st;
}

/* ---- keys ---- */

static void put_field(rp_sha256_ctx *h, const char *s, size_t n) {
    char len[32];
    int m = snprintf(len, sizeof len, "%zu:", n);
    rp_sha256_update(h, len, (size_t)m);
    rp_sha256_update(h, s, n);
}

rp_status rp_safe_llm_key(const char *backend, const rp_safe_call *call, char hex[65]) {
    rp_sha256_ctx h;
    rp_sha256_init(&h);
    char num[96];
    put_field(&h, "llm", 3);
    put_field(&h, backend, strlen(backend));
    int m = snprintf(num, sizeof num, "%.17g/%d/%d", call->temperature, call->max_tokens, call->attempt);
    put_field(&h, num, (size_t)m);
    put_field(&h, call->prompt, strlen(call->prompt));
    uint8_t d[32];
    rp_sha256_final(&h, d);
    rp_sha256_hex(d, hex);
    return RP_OK;
}

rp_status rp_safe_search_key(const char *backend, const rp_safe_query *q, char hex[65]) {
    rp_sha256_ctx h;
    rp_sha256_init(&h);
    char num[32];
    put_field(&h, "search", 6);
    put_field(&h, backend, strlen(backend));
    int m = snprintf(num, sizeof num, "%d", q->k);
    put_field(&h, num, (size_t)m);
    put_field(&h, q->q, strlen(q->q));
    uint8_t d[32];
    rp_sha256_final(&h, d);
    rp_sha256_hex(d, hex);
    return RP_OK;
}

/* ---- lookups and stores ---- */

typedef struct hit { int found; long pt, ct; double cost; } hit;

static rp_status lookup(rp_safe_cache *c, const char *key, rp_buf *text, hit *h) {
    h->found = 0;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(c->db, "SELECT response, prompt_tokens, completion_tokens, cost FROM safe_cache WHERE key = ?",
                           -1, &s, NULL) != SQLITE_OK)
        return db_fail(c->db, c->path, "lookup");
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    rp_status st = RP_OK;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        rp_buf_clear(text);
        const void *p = sqlite3_column_blob(s, 0);
        st = rp_buf_append(text, p ? p : "", (size_t)sqlite3_column_bytes(s, 0));
        h->pt = (long)sqlite3_column_int64(s, 1);
        h->ct = (long)sqlite3_column_int64(s, 2);
        h->cost = sqlite3_column_double(s, 3);
        h->found = 1;
    } else if (rc != SQLITE_DONE) st = db_fail(c->db, c->path, "lookup");
    sqlite3_finalize(s);
    return st;
}

static rp_status store(rp_safe_cache *c, sqlite3_stmt *s, const char *key, const char *kind, const char *backend,
                       const char *request, const rp_buf *resp, long pt, long ct, double cost) {
    sqlite3_reset(s);
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, backend, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, request, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, resp->data ? resp->data : "", (int)resp->len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, pt);
    sqlite3_bind_int64(s, 7, ct);
    sqlite3_bind_double(s, 8, cost);
    sqlite3_bind_double(s, 9, (double)time(NULL));
    if (sqlite3_step(s) != SQLITE_DONE) return db_fail(c->db, c->path, "store");
    c->stats.stored++;
    return RP_OK;
}

static const char insert_sql[] =
    "INSERT OR REPLACE INTO safe_cache(key, kind, backend, request, response, prompt_tokens, completion_tokens, cost,"
    " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";

/* ---- the wrappers ---- */

/* Index of an earlier miss in miss[0..nm) with the same key as call i, or SIZE_MAX: identical requests in
 * one batch go out once and share the answer. */
static size_t same_key_miss(char (*keys)[65], const size_t *miss, size_t nm, size_t i) {
    for (size_t j = 0; j < nm; j++)
        if (strcmp(keys[miss[j]], keys[i]) == 0) return j;
    return SIZE_MAX;
}

typedef struct cached_llm { rp_safe_cache *c; rp_safe_llm *inner; int replay; char name[160]; } cached_llm;

static rp_status cached_complete(void *vctx, rp_safe_call *calls, size_t n) {
    cached_llm *w = vctx;
    rp_safe_cache *c = w->c;
    char (*keys)[65] = malloc((n ? n : 1) * sizeof *keys);
    size_t *miss = malloc((n ? n : 1) * sizeof *miss);
    size_t *dup = malloc((n ? n : 1) * sizeof *dup), nd = 0;   /* pairs (call, miss slot) answered by an earlier miss */
    size_t *dup_of = malloc((n ? n : 1) * sizeof *dup_of);
    rp_safe_call *sub = NULL;
    rp_status st = (!keys || !miss || !dup || !dup_of) ? rp_fail(RP_ERR_NOMEM, "out of memory") : RP_OK;
    size_t nm = 0;
    for (size_t i = 0; st == RP_OK && i < n; i++) {
        rp_safe_llm_key(w->name, &calls[i], keys[i]);
        size_t prev = same_key_miss(keys, miss, nm, i);
        if (prev != SIZE_MAX) { dup[nd] = i; dup_of[nd++] = prev; continue; }
        hit h;
        st = lookup(c, keys[i], &calls[i].text, &h);
        if (st != RP_OK) break;
        if (h.found) {
            calls[i].prompt_tokens = h.pt; calls[i].completion_tokens = h.ct; calls[i].cost = h.cost;
            calls[i].st = RP_OK; calls[i].error[0] = 0; calls[i].cached = 1;
            c->stats.llm_hits++;
            c->stats.cost_saved += h.cost;
        } else {
            miss[nm++] = i;
            c->stats.llm_misses++;
        }
    }
    if (st == RP_OK && nm && (w->replay || !w->inner)) {
        const char *p = calls[miss[0]].prompt;
        st = rp_fail(RP_ERR_NOTFOUND, "replay: %zu LLM call(s) not in the cache (backend %s; first: attempt %d, prompt %zu bytes "
                     "starting \"%.60s\")", nm, w->name, calls[miss[0]].attempt, strlen(p), p);
    }
    if (st == RP_OK && nm) {
        sub = calloc(nm, sizeof *sub);
        if (!sub) st = rp_fail(RP_ERR_NOMEM, "out of memory");
        for (size_t j = 0; st == RP_OK && j < nm; j++) {
            sub[j] = calls[miss[j]];
            sub[j].cached = 0;
            sub[j].st = RP_ERR_INTERRUPTED;   /* until the backend answers it: never cache an unanswered call */
            snprintf(sub[j].error, sizeof sub[j].error, "not answered");
        }
        if (st == RP_OK) {
            c->stats.net_llm_calls += nm;
            rp_status ist = w->inner->complete(w->inner->ctx, sub, nm);
            sqlite3_stmt *s = NULL;
            int tx = sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
            if (sqlite3_prepare_v2(c->db, insert_sql, -1, &s, NULL) != SQLITE_OK) st = db_fail(c->db, c->path, "store");
            for (size_t j = 0; j < nm; j++) {
                calls[miss[j]] = sub[j];   /* hand the answer (and its buffer) back */
                c->stats.net_retries += (uint64_t)sub[j].net_retries;
                if (st == RP_OK && sub[j].st == RP_OK) {
                    c->stats.cost_spent += sub[j].cost;
                    st = store(c, s, keys[miss[j]], "llm", w->name, sub[j].prompt, &sub[j].text, sub[j].prompt_tokens,
                               sub[j].completion_tokens, sub[j].cost);
                }
            }
            sqlite3_finalize(s);
            if (tx && sqlite3_exec(c->db, st == RP_OK ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK && st == RP_OK)
                st = db_fail(c->db, c->path, "commit");
            for (size_t d = 0; st == RP_OK && d < nd; d++) {
                rp_safe_call *src = &calls[miss[dup_of[d]]], *dst = &calls[dup[d]];
                dst->st = src->st;
                memcpy(dst->error, src->error, sizeof dst->error);
                dst->prompt_tokens = src->prompt_tokens; dst->completion_tokens = src->completion_tokens; dst->cost = src->cost;
                dst->cached = 1;
                rp_buf_clear(&dst->text);
                if (src->st == RP_OK) { st = rp_buf_append(&dst->text, src->text.data ? src->text.data : "", src->text.len); c->stats.llm_hits++; }
            }
            if (st == RP_OK) st = ist;
        }
    }
    free(sub); free(keys); free(miss); free(dup); free(dup_of);
    return st;
}

static void cached_release(void *ctx) { free(ctx); }

rp_status rp_safe_llm_cached(rp_safe_cache *c, rp_safe_llm *inner, int replay, rp_safe_llm *out) {
    char given[160];
    snprintf(given, sizeof given, "%s", out->name);
    memset(out, 0, sizeof *out);
    if (!inner && !replay) return rp_fail(RP_ERR_INVAL, "cached LLM: no backend and not in replay mode");
    cached_llm *w = calloc(1, sizeof *w);
    if (!w) return rp_fail(RP_ERR_NOMEM, "out of memory");
    w->c = c; w->inner = inner; w->replay = replay;
    /* the cache keys on the inner backend's name; replay without a backend keys on the name given in out */
    snprintf(w->name, sizeof w->name, "%s", inner ? inner->name : given);
    out->ctx = w;
    snprintf(out->name, sizeof out->name, "%s", w->name);
    out->complete = cached_complete;
    out->release = cached_release;
    return RP_OK;
}

typedef struct cached_search { rp_safe_cache *c; rp_safe_search *inner; int replay; char name[160]; } cached_search;

static rp_status cached_search_do(void *vctx, rp_safe_query *qs, size_t n) {
    cached_search *w = vctx;
    rp_safe_cache *c = w->c;
    char (*keys)[65] = malloc((n ? n : 1) * sizeof *keys);
    size_t *miss = malloc((n ? n : 1) * sizeof *miss);
    size_t *dup = malloc((n ? n : 1) * sizeof *dup), nd = 0;
    size_t *dup_of = malloc((n ? n : 1) * sizeof *dup_of);
    rp_safe_query *sub = NULL;
    rp_status st = (!keys || !miss || !dup || !dup_of) ? rp_fail(RP_ERR_NOMEM, "out of memory") : RP_OK;
    size_t nm = 0;
    for (size_t i = 0; st == RP_OK && i < n; i++) {
        rp_safe_search_key(w->name, &qs[i], keys[i]);
        size_t prev = same_key_miss(keys, miss, nm, i);
        if (prev != SIZE_MAX) { dup[nd] = i; dup_of[nd++] = prev; continue; }
        hit h;
        st = lookup(c, keys[i], &qs[i].text, &h);
        if (st != RP_OK) break;
        if (h.found) {
            qs[i].cost = h.cost; qs[i].st = RP_OK; qs[i].error[0] = 0; qs[i].cached = 1;
            c->stats.search_hits++;
            c->stats.cost_saved += h.cost;
        } else {
            miss[nm++] = i;
            c->stats.search_misses++;
        }
    }
    if (st == RP_OK && nm && (w->replay || !w->inner))
        st = rp_fail(RP_ERR_NOTFOUND, "replay: %zu search(es) not in the cache (backend %s; first: \"%.80s\")", nm, w->name,
                     qs[miss[0]].q);
    if (st == RP_OK && nm) {
        sub = calloc(nm, sizeof *sub);
        if (!sub) st = rp_fail(RP_ERR_NOMEM, "out of memory");
        for (size_t j = 0; st == RP_OK && j < nm; j++) {
            sub[j] = qs[miss[j]];
            sub[j].cached = 0;
            sub[j].st = RP_ERR_INTERRUPTED;
            snprintf(sub[j].error, sizeof sub[j].error, "not answered");
        }
        if (st == RP_OK) {
            c->stats.net_search_calls += nm;
            rp_status ist = w->inner->search(w->inner->ctx, sub, nm);
            sqlite3_stmt *s = NULL;
            int tx = sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
            if (sqlite3_prepare_v2(c->db, insert_sql, -1, &s, NULL) != SQLITE_OK) st = db_fail(c->db, c->path, "store");
            for (size_t j = 0; j < nm; j++) {
                qs[miss[j]] = sub[j];
                c->stats.net_retries += (uint64_t)sub[j].net_retries;
                if (st == RP_OK && sub[j].st == RP_OK) {
                    c->stats.cost_spent += sub[j].cost;
                    st = store(c, s, keys[miss[j]], "search", w->name, sub[j].q, &sub[j].text, 0, 0, sub[j].cost);
                }
            }
            sqlite3_finalize(s);
            if (tx && sqlite3_exec(c->db, st == RP_OK ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK && st == RP_OK)
                st = db_fail(c->db, c->path, "commit");
            for (size_t d = 0; st == RP_OK && d < nd; d++) {
                rp_safe_query *src = &qs[miss[dup_of[d]]], *dst = &qs[dup[d]];
                dst->st = src->st;
                memcpy(dst->error, src->error, sizeof dst->error);
                dst->cost = src->cost;
                dst->cached = 1;
                rp_buf_clear(&dst->text);
                if (src->st == RP_OK) { st = rp_buf_append(&dst->text, src->text.data ? src->text.data : "", src->text.len); c->stats.search_hits++; }
            }
            if (st == RP_OK) st = ist;
        }
    }
    free(sub); free(keys); free(miss); free(dup); free(dup_of);
    return st;
}

rp_status rp_safe_search_cached(rp_safe_cache *c, rp_safe_search *inner, int replay, rp_safe_search *out) {
    char given[160];
    snprintf(given, sizeof given, "%s", out->name);
    memset(out, 0, sizeof *out);
    if (!inner && !replay) return rp_fail(RP_ERR_INVAL, "cached search: no backend and not in replay mode");
    cached_search *w = calloc(1, sizeof *w);
    if (!w) return rp_fail(RP_ERR_NOMEM, "out of memory");
    w->c = c; w->inner = inner; w->replay = replay;
    snprintf(w->name, sizeof w->name, "%s", inner ? inner->name : given);
    out->ctx = w;
    snprintf(out->name, sizeof out->name, "%s", w->name);
    out->search = cached_search_do;
    out->release = cached_release;
    return RP_OK;
}

void rp_safe_llm_release(rp_safe_llm *l) {
    if (!l) return;
    if (l->release && l->ctx) l->release(l->ctx);
    memset(l, 0, sizeof *l);
}

void rp_safe_search_release(rp_safe_search *s) {
    if (!s) return;
    if (s->release && s->ctx) s->release(s->ctx);
    memset(s, 0, sizeof *s);
}

void rp_safe_calls_free(rp_safe_call *c, size_t n) { for (size_t i = 0; i < n; i++) rp_buf_free(&c[i].text); }
void rp_safe_queries_free(rp_safe_query *q, size_t n) { for (size_t i = 0; i < n; i++) rp_buf_free(&q[i].text); }
