/* db_metrics.c: the buffered metric writer and reader. Points are kept per series (run, metric name) in
 * memory; every RP_DB_BATCH points, once the oldest buffered point is about half a second old (checked
 * at each point against a clock thread's tick counter, and by rp_db_flush_due, which the Lua host calls
 * from a count hook), at run end and at close they go to the database in one immediate
 * transaction: one `metrics` row per series holding its points as two little-endian float64 arrays, so
 * every double (NaN payloads and ±Inf included) reads back bit for bit. Metric names are interned in
 * metric_names; a name's id is cached only once the transaction that found it committed.
 * Invariant: db->nbuf == sum of series[i].n. */
#include "db/db_internal.h"
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The flush clock: a detached thread advances `ticks` every RP_DB_TICK_MS. A metric call reads it with
 * one relaxed load (no system call, no lock), which keeps the per-point cost of the time-based flush nil.
 * clock_pid remembers which process started it: a forked child has no such thread and starts its own. */
static atomic_uint ticks;
static pid_t clock_pid;
static pthread_mutex_t clock_lock = PTHREAD_MUTEX_INITIALIZER;

static void *clock_main(void *arg) {
    (void)arg;
    struct timespec ts = { 0, RP_DB_TICK_MS * 1000000L };
    for (;;) {
        nanosleep(&ts, NULL);
        atomic_fetch_add_explicit(&ticks, 1, memory_order_relaxed);
    }
    return NULL;
}

void rp_db_clock_start(void) {
    pthread_mutex_lock(&clock_lock);
    if (clock_pid != getpid()) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, clock_main, NULL) == 0) clock_pid = getpid();
        pthread_attr_destroy(&a);   /* no thread: the count and end-of-run flushes still hold */
    }
    pthread_mutex_unlock(&clock_lock);
}

unsigned rp_db_clock_now(void) { return atomic_load_explicit(&ticks, memory_order_relaxed); }

void rp_db_pack_f64(const double *v, size_t n, unsigned char *out) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(out, v, n * 8);
#else
    for (size_t i = 0; i < n; i++) {
        uint64_t u; memcpy(&u, &v[i], 8);
        for (int b = 0; b < 8; b++) out[8 * i + b] = (unsigned char)(u >> (8 * b));
    }
#endif
}

void rp_db_unpack_f64(const unsigned char *in, size_t n, double *v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(v, in, n * 8);
#else
    for (size_t i = 0; i < n; i++) {
        uint64_t u = 0;
        for (int b = 0; b < 8; b++) u |= (uint64_t)in[8 * i + b] << (8 * b);
        memcpy(&v[i], &u, 8);
    }
#endif
}

static uint32_t hash_str(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* Grow the name hash table to twice its size and reinsert. */
static rp_status rehash(rp_db *db) {
    size_t cap = db->hash_cap ? db->hash_cap * 2 : 64;
    uint32_t *t = calloc(cap, sizeof *t);
    if (!t) return rp_fail(RP_ERR_NOMEM, "out of memory interning metric names");
    for (size_t i = 0; i < db->nnames; i++) {
        size_t j = hash_str(db->names[i].s) & (cap - 1);
        while (t[j]) j = (j + 1) & (cap - 1);
        t[j] = (uint32_t)i + 1;
    }
    free(db->name_hash);
    db->name_hash = t;
    db->hash_cap = cap;
    return RP_OK;
}

/* The index of name in db->names, adding it when new. */
static rp_status intern(rp_db *db, const char *name, uint32_t *idx) {
    if (db->hash_cap) {
        size_t j = hash_str(name) & (db->hash_cap - 1);
        for (; db->name_hash[j]; j = (j + 1) & (db->hash_cap - 1))
            if (!strcmp(db->names[db->name_hash[j] - 1].s, name)) { *idx = db->name_hash[j] - 1; return RP_OK; }
    }
    if (2 * (db->nnames + 1) > db->hash_cap) RP_TRY(rehash(db));
    if (db->nnames == db->capnames) {
        size_t cap = db->capnames ? 2 * db->capnames : 16;
        rp_db_name *p = realloc(db->names, cap * sizeof *p);
        if (!p) return rp_fail(RP_ERR_NOMEM, "out of memory interning metric names");
        db->names = p; db->capnames = cap;
    }
    char *s = strdup(name);
    if (!s) return rp_fail(RP_ERR_NOMEM, "out of memory interning metric names");
    db->names[db->nnames] = (rp_db_name){ s, 0 };
    size_t j = hash_str(name) & (db->hash_cap - 1);
    while (db->name_hash[j]) j = (j + 1) & (db->hash_cap - 1);
    db->name_hash[j] = (uint32_t)db->nnames + 1;
    *idx = (uint32_t)db->nnames++;
    return RP_OK;
}

/* The buffered series for (run, name), creating it when new. */
static rp_status find_series(rp_db *db, int64_t run, uint32_t name, rp_db_series **out) {
    if (db->last_series < db->nseries) {
        rp_db_series *s = &db->series[db->last_series];
        if (s->run_id == run && s->name == name) { *out = s; return RP_OK; }
    }
    for (size_t i = 0; i < db->nseries; i++)
        if (db->series[i].run_id == run && db->series[i].name == name) {
            db->last_series = i; *out = &db->series[i]; return RP_OK;
        }
    if (db->nseries == db->capseries) {
        size_t cap = db->capseries ? 2 * db->capseries : 16;
        rp_db_series *p = realloc(db->series, cap * sizeof *p);
        if (!p) return rp_fail(RP_ERR_NOMEM, "out of memory buffering metrics");
        db->series = p; db->capseries = cap;
    }
    db->series[db->nseries] = (rp_db_series){ .run_id = run, .name = name };
    db->last_series = db->nseries;
    *out = &db->series[db->nseries++];
    return RP_OK;
}

rp_status rp_db_metric(rp_db *db, int64_t run_id, const char *name, double step, double value) {
    if (!db || !name || !*name) return rp_fail(RP_ERR_INVAL, "rp_db_metric: a metric needs a name");
    uint32_t idx = 0;
    rp_db_series *s = NULL;
    RP_TRY(intern(db, name, &idx));
    RP_TRY(find_series(db, run_id, idx, &s));
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        double *a = realloc(s->steps, cap * sizeof *a);
        if (!a) return rp_fail(RP_ERR_NOMEM, "out of memory buffering metric %s", name);
        s->steps = a;
        double *b = realloc(s->vals, cap * sizeof *b);
        if (!b) return rp_fail(RP_ERR_NOMEM, "out of memory buffering metric %s", name);
        s->vals = b;
        s->cap = cap;
    }
    s->steps[s->n] = step;
    s->vals[s->n] = value;
    s->n++;
    if (!db->nbuf++) db->buf_tick = rp_db_clock_now();
    else if (db->nbuf >= RP_DB_BATCH || rp_db_clock_now() - db->buf_tick >= RP_DB_FLUSH_TICKS) return rp_db_flush(db);
    return RP_OK;
}

rp_status rp_db_flush_due(rp_db *db) {
    if (!db || !db->nbuf || rp_db_clock_now() - db->buf_tick < RP_DB_FLUSH_TICKS) return RP_OK;
    return rp_db_flush(db);
}

/* The metric_names id of name (inserting it), inside the caller's transaction. */
static rp_status name_id(rp_db *db, const char *name, int64_t *id) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->sq, "INSERT INTO metric_names(name) VALUES (?) "
                                "ON CONFLICT(name) DO UPDATE SET name=excluded.name RETURNING id", -1, &st, NULL);
    if (rc != SQLITE_OK) return rp_db_fail(db, rc, "interning a metric name");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? RP_OK : rp_db_fail(db, rc, "interning a metric name");
}

rp_status rp_db_flush(rp_db *db) {
    if (!db) return rp_fail(RP_ERR_INVAL, "rp_db_flush: NULL database");
    if (!db->nbuf) return RP_OK;
    size_t maxn = 0;
    for (size_t i = 0; i < db->nseries; i++) if (db->series[i].n > maxn) maxn = db->series[i].n;
    unsigned char *tmp = malloc(8 * maxn);
    uint8_t *fresh = calloc(db->nnames, 1);    /* names whose id this transaction found */
    if (!tmp || !fresh) { free(tmp); free(fresh); return rp_fail(RP_ERR_NOMEM, "out of memory writing metrics"); }
    rp_status st = rp_db_exec(db, "BEGIN IMMEDIATE", "writing metrics");
    for (size_t i = 0; st == RP_OK && i < db->nseries; i++) {
        rp_db_series *s = &db->series[i];
        if (!s->n) continue;
        rp_db_name *nm = &db->names[s->name];
        if (!nm->id) { st = name_id(db, nm->s, &nm->id); fresh[s->name] = 1; }
        if (st != RP_OK) break;
        sqlite3_stmt *ins = db->ins_chunk;
        sqlite3_bind_int64(ins, 1, s->run_id);
        sqlite3_bind_int64(ins, 2, nm->id);
        sqlite3_bind_int64(ins, 3, (int64_t)s->n);
        rp_db_pack_f64(s->steps, s->n, tmp);
        sqlite3_bind_blob(ins, 4, tmp, (int)(8 * s->n), SQLITE_TRANSIENT);
        rp_db_pack_f64(s->vals, s->n, tmp);
        sqlite3_bind_blob(ins, 5, tmp, (int)(8 * s->n), SQLITE_TRANSIENT);
        int rc = sqlite3_step(ins);
        sqlite3_reset(ins);
        if (rc != SQLITE_DONE) st = rp_db_fail(db, rc, "writing metrics");
    }
    if (st == RP_OK) st = rp_db_exec(db, "COMMIT", "committing metrics");
    if (st != RP_OK) {
        sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
        for (size_t i = 0; i < db->nnames; i++) if (fresh[i]) db->names[i].id = 0;   /* ids were rolled back */
    } else {
        /* Drop the series; keep the one last used (its arrays) for the common single-series case. */
        for (size_t i = 0; i < db->nseries; i++) db->series[i].n = 0;
        db->nbuf = 0;
        if (db->nseries > 64) {   /* many stale series: release them */
            for (size_t i = 0; i < db->nseries; i++) { free(db->series[i].steps); free(db->series[i].vals); }
            db->nseries = 0;
        }
    }
    free(tmp);
    free(fresh);
    return st;
}

void rp_db_metrics_free(rp_db *db) {
    for (size_t i = 0; i < db->nseries; i++) { free(db->series[i].steps); free(db->series[i].vals); }
    free(db->series);
    for (size_t i = 0; i < db->nnames; i++) free(db->names[i].s);
    free(db->names);
    free(db->name_hash);
    db->series = NULL; db->names = NULL; db->name_hash = NULL;
    db->nseries = db->nnames = db->hash_cap = db->nbuf = 0;
}

rp_status rp_db_get_metric_points(rp_db *db, int64_t run_id, const char *name, double **steps, double **values, size_t *n) {
    *steps = *values = NULL;
    *n = 0;
    if (!db || !name) return rp_fail(RP_ERR_INVAL, "rp_db_get_metric_points: NULL argument");
    RP_TRY(rp_db_flush(db));
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->sq, "SELECT m.n, m.steps, m.vals FROM metrics m JOIN metric_names k ON k.id = m.name_id "
                                "WHERE m.run_id = ? AND k.name = ? ORDER BY m.id", -1, &st, NULL);
    if (rc != SQLITE_OK) return rp_db_fail(db, rc, "reading a metric");
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    rp_status s = RP_OK;
    size_t cap = 0;
    while (s == RP_OK && (rc = rp_db_step(st)) == SQLITE_ROW) {
        int64_t k = sqlite3_column_int64(st, 0);
        int bs = sqlite3_column_bytes(st, 1), bv = sqlite3_column_bytes(st, 2);
        if (k < 0 || (int64_t)bs != 8 * k || (int64_t)bv != 8 * k) {
            s = rp_fail(RP_ERR_FORMAT, "%s: metrics of run %lld, %s: a chunk says %lld points but holds %d/%d bytes",
                        db->path, (long long)run_id, name, (long long)k, bs, bv);
            break;
        }
        if (*n + (size_t)k > cap) {
            size_t nc = cap ? cap : 1024;
            while (nc < *n + (size_t)k) nc *= 2;
            double *a = realloc(*steps, nc * sizeof *a);
            if (a) *steps = a;
            double *b = a ? realloc(*values, nc * sizeof *b) : NULL;
            if (b) *values = b;
            if (!a || !b) { s = rp_fail(RP_ERR_NOMEM, "out of memory reading metric %s", name); break; }
            cap = nc;
        }
        if (k) {
            rp_db_unpack_f64(sqlite3_column_blob(st, 1), (size_t)k, *steps + *n);
            rp_db_unpack_f64(sqlite3_column_blob(st, 2), (size_t)k, *values + *n);
        }
        *n += (size_t)k;
    }
    if (s == RP_OK && rc != SQLITE_DONE) s = rp_db_fail(db, rc, "reading a metric");
    sqlite3_finalize(st);
    if (s != RP_OK) { free(*steps); free(*values); *steps = *values = NULL; *n = 0; }
    return s;
}

rp_status rp_db_json_real(rp_buf *out, double v) {
    if (isnan(v)) return rp_buf_puts(out, "\"nan\"");
    if (isinf(v)) return rp_buf_puts(out, v > 0 ? "\"inf\"" : "\"-inf\"");
    return rp_buf_printf(out, "%.17g", v);
}

rp_status rp_db_get_metric(rp_db *db, int64_t run_id, const char *name, rp_buf *out_json) {
    double *s, *v;
    size_t n;
    RP_TRY(rp_db_get_metric_points(db, run_id, name, &s, &v, &n));
    rp_status st = rp_buf_puts(out_json, "[");
    for (size_t i = 0; st == RP_OK && i < n; i++) {
        st = rp_buf_puts(out_json, i ? ",[" : "[");
        if (st == RP_OK) st = rp_db_json_real(out_json, s[i]);
        if (st == RP_OK) st = rp_buf_puts(out_json, ",");
        if (st == RP_OK) st = rp_db_json_real(out_json, v[i]);
        if (st == RP_OK) st = rp_buf_puts(out_json, "]");
    }
    if (st == RP_OK) st = rp_buf_puts(out_json, "]");
    free(s); free(v);
    return st;
}
