/* safe_search.c: search backends without a network: Serper's response format turned into SAFE's result
 * string, and a local BM25 index (SQLite FTS5) over a folder of text files. The index records a digest of
 * its passages, which goes into the backend's name, so cached results from another corpus never match. */
#include "plugins/safe/safe.h"
#include "util/json.h"
#include "util/sha256.h"
#include <ctype.h>
#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char rp_safe_no_result[] = "No good search result was found.";

/* Append a piece, separated by one space, with newlines turned into spaces. */
static rp_status piece(rp_buf *o, const char *s) {
    if (!s || !*s) return RP_OK;
    if (o->len) RP_TRY(rp_buf_append(o, " ", 1));
    for (const char *p = s; *p; p++) RP_TRY(rp_buf_append(o, (*p == '\n' || *p == '\r') ? " " : p, 1));
    return RP_OK;
}

/* A JSON scalar as text (strings as is, numbers formatted), or NULL. */
static const char *scalar(const rp_json *v, char *tmp, size_t n) {
    if (!v) return NULL;
    if (rp_json_typeof(v) == RP_JSON_STRING) return rp_json_str(v, NULL);
    if (rp_json_typeof(v) == RP_JSON_NUMBER) { snprintf(tmp, n, "%.15g", rp_json_num(v, 0)); return tmp; }
    return NULL;
}

rp_status rp_safe_serper_parse(const char *body, size_t len, int k, rp_buf *out) {
    rp_buf_clear(out);
    rp_json *j = NULL;
    rp_status st = rp_json_parse(body, len, &j);
    if (st != RP_OK) return rp_fail_ctx(st, "Serper response: ");
    if (rp_json_typeof(j) != RP_JSON_OBJECT) { rp_json_free(j); return rp_fail(RP_ERR_FORMAT, "Serper response: not a JSON object"); }
    char tmp[64], tmp2[64];
    const rp_json *ab = rp_json_get(j, "answerBox");
    /* Serper always sends an "organic" list (empty when nothing matched); a body with neither it nor an
     * answer box or knowledge graph is a broken answer to retry, not "no results" to cache for good */
    const rp_json *org = rp_json_get(j, "organic"), *kg = rp_json_get(j, "knowledgeGraph");
    if (!(org && rp_json_typeof(org) == RP_JSON_ARRAY) && !(ab && rp_json_typeof(ab) == RP_JSON_OBJECT) &&
        !(kg && rp_json_typeof(kg) == RP_JSON_OBJECT)) {
        rp_json_free(j);
        return rp_fail(RP_ERR_FORMAT, "Serper response: no \"organic\" list, answerBox or knowledgeGraph (%zu bytes: %.*s)", len, (int)(len < 80 ? len : 80), body);
    }
    /* an answer box answers alone, in this order of preference */
    if (ab && rp_json_typeof(ab) == RP_JSON_OBJECT) {
        const char *a = scalar(rp_json_get(ab, "answer"), tmp, sizeof tmp), *sn = scalar(rp_json_get(ab, "snippet"), tmp2, sizeof tmp2);
        const rp_json *hl = rp_json_get(ab, "snippetHighlighted");
        if (a && *a) st = piece(out, a);
        else if (sn && *sn) st = piece(out, sn);
        else if (hl && rp_json_typeof(hl) == RP_JSON_ARRAY && rp_json_len(hl) > 0)
            for (size_t i = 0; st == RP_OK && i < rp_json_len(hl); i++) st = piece(out, rp_json_str(rp_json_at(hl, i), NULL));
        else if (hl) st = piece(out, rp_json_str(hl, NULL));
        if (st != RP_OK || out->len) { rp_json_free(j); if (st == RP_OK && !out->data) st = rp_buf_append(out, "", 0); return st; }
    }
    if (kg && rp_json_typeof(kg) == RP_JSON_OBJECT) {
        const char *title = rp_json_str(rp_json_get(kg, "title"), NULL), *type = rp_json_str(rp_json_get(kg, "type"), NULL);
        rp_buf line = {0};
        if (st == RP_OK && title && type) { st = rp_buf_printf(&line, "%s: %s.", title, type); if (st == RP_OK) st = piece(out, line.data); }
        if (st == RP_OK) st = piece(out, rp_json_str(rp_json_get(kg, "description"), NULL));
        const rp_json *at = rp_json_get(kg, "attributes");
        if (at && rp_json_typeof(at) == RP_JSON_OBJECT)
            for (size_t i = 0; st == RP_OK && i < rp_json_len(at); i++) {
                const char *v = scalar(rp_json_at(at, i), tmp, sizeof tmp);
                if (!v) continue;
                rp_buf_clear(&line);
                st = rp_buf_printf(&line, "%s%s%s: %s.", title ? title : "", title ? " " : "", rp_json_key_at(at, i), v);
                if (st == RP_OK) st = piece(out, line.data);
            }
        rp_buf_free(&line);
    }
    if (org && rp_json_typeof(org) == RP_JSON_ARRAY) {
        rp_buf line = {0};
        for (size_t i = 0; st == RP_OK && i < rp_json_len(org) && (int)i < k; i++) {
            const rp_json *r = rp_json_at(org, i);
            st = piece(out, rp_json_str(rp_json_get(r, "snippet"), NULL));
            const rp_json *at = rp_json_get(r, "attributes");
            if (at && rp_json_typeof(at) == RP_JSON_OBJECT)
                for (size_t a = 0; st == RP_OK && a < rp_json_len(at); a++) {
                    const char *v = scalar(rp_json_at(at, a), tmp, sizeof tmp);
                    if (!v) continue;
                    rp_buf_clear(&line);
                    st = rp_buf_printf(&line, "%s: %s.", rp_json_key_at(at, a), v);
                    if (st == RP_OK) st = piece(out, line.data);
                }
        }
        rp_buf_free(&line);
    }
    rp_json_free(j);
    if (st == RP_OK && out->len == 0) st = rp_buf_puts(out, rp_safe_no_result);
    return st;
}

/* ---- BM25 over a folder ---- */

static int wanted_file(const char *name) {
    size_t n = strlen(name);
    return name[0] != '.' && ((n > 4 && strcmp(name + n - 4, ".txt") == 0) || (n > 3 && strcmp(name + n - 3, ".md") == 0));
}

/* Collect text file paths under dir (recursively), sorted for a stable digest. */
static rp_status collect(const char *dir, rp_safe_strlist *paths, int depth) {
    if (depth > 16) return RP_OK;
    DIR *d = opendir(dir);
    if (!d) return rp_fail(RP_ERR_NOTFOUND, "%s: cannot open the documents folder", dir);
    rp_status st = RP_OK;
    struct dirent *de;
    rp_buf p = {0};
    while (st == RP_OK && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        rp_buf_clear(&p);
        st = rp_buf_printf(&p, "%s/%s", dir, de->d_name);
        struct stat sb;
        if (st != RP_OK || stat(p.data, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) st = collect(p.data, paths, depth + 1);
        else if (S_ISREG(sb.st_mode) && wanted_file(de->d_name)) st = rp_safe_strlist_push(paths, p.data, p.len);
    }
    closedir(d);
    rp_buf_free(&p);
    return st;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static rp_status exec_sql(sqlite3 *db, const char *path, const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        rp_status st = rp_fail(RP_ERR_DB, "%s: %s", path, err ? err : sqlite3_errmsg(db));
        sqlite3_free(err);
        return st;
    }
    return RP_OK;
}

/* Insert one passage (title = file's base name) and feed the digest. */
static rp_status add_passage(sqlite3_stmt *ins, rp_sha256_ctx *h, const char *title, const char *s, size_t n, int64_t *count) {
    while (n && isspace((unsigned char)*s)) { s++; n--; }
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (n == 0) return RP_OK;
    sqlite3_reset(ins);
    sqlite3_bind_text(ins, 1, title, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 2, s, (int)n, SQLITE_STATIC);
    if (sqlite3_step(ins) != SQLITE_DONE) return rp_fail(RP_ERR_DB, "inserting a passage: %s", sqlite3_errmsg(sqlite3_db_handle(ins)));
    rp_sha256_update(h, title, strlen(title) + 1);
    rp_sha256_update(h, s, n);
    rp_sha256_update(h, "", 1);
    (*count)++;
    return RP_OK;
}

/* Passages of a file: paragraphs (blank-line separated), long ones cut at ~120 words on a word boundary. */
static rp_status index_file(sqlite3_stmt *ins, rp_sha256_ctx *h, const char *path, int64_t *count) {
    rp_buf b = {0};
    RP_TRY(rp_read_file(path, &b));
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char title[256];
    snprintf(title, sizeof title, "%s", base);
    char *dot = strrchr(title, '.');
    if (dot) *dot = 0;
    for (char *c = title; *c; c++) if (*c == '_') *c = ' ';
    rp_status st = RP_OK;
    size_t p = 0;
    while (st == RP_OK && p < b.len) {
        /* paragraph [p, e) ends at a blank line */
        size_t e = p;
        while (e < b.len && !(b.data[e] == '\n' && e + 1 < b.len && (b.data[e + 1] == '\n' || b.data[e + 1] == '\r'))) e++;
        size_t s = p, words = 0;
        for (size_t i = p; st == RP_OK && i < e; i++) {
            if (isspace((unsigned char)b.data[i]) && i > s && !isspace((unsigned char)b.data[i - 1])) words++;
            if (words >= 120) { st = add_passage(ins, h, title, b.data + s, i - s, count); s = i; words = 0; }
        }
        if (st == RP_OK) st = add_passage(ins, h, title, b.data + s, e - s, count);
        p = e + 1;
    }
    rp_buf_free(&b);
    return st;
}

rp_status rp_safe_bm25_build(const char *index_path, const char *docs_dir, int64_t *n_passages) {
    if (n_passages) *n_passages = 0;
    rp_safe_strlist paths = {0};
    rp_status st = collect(docs_dir, &paths, 0);
    if (st == RP_OK && paths.n == 0) st = rp_fail(RP_ERR_NOTFOUND, "%s: no .txt or .md documents to index", docs_dir);
    if (st != RP_OK) { rp_safe_strlist_free(&paths); return st; }
    qsort(paths.items, paths.n, sizeof *paths.items, cmp_str);
    remove(index_path);
    sqlite3 *db = NULL;
    if (sqlite3_open(index_path, &db) != SQLITE_OK) {
        st = rp_fail(RP_ERR_DB, "%s: %s", index_path, db ? sqlite3_errmsg(db) : "cannot open");
        sqlite3_close(db);
        rp_safe_strlist_free(&paths);
        return st;
    }
    st = exec_sql(db, index_path, "BEGIN; CREATE VIRTUAL TABLE passages USING fts5(title, body, tokenize='porter unicode61');"
                                  "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);");
    sqlite3_stmt *ins = NULL;
    if (st == RP_OK && sqlite3_prepare_v2(db, "INSERT INTO passages(title, body) VALUES (?, ?)", -1, &ins, NULL) != SQLITE_OK)
        st = rp_fail(RP_ERR_DB, "%s: %s", index_path, sqlite3_errmsg(db));
    rp_sha256_ctx h;
    rp_sha256_init(&h);
    int64_t count = 0;
    for (size_t i = 0; st == RP_OK && i < paths.n; i++) st = index_file(ins, &h, paths.items[i], &count);
    sqlite3_finalize(ins);
    if (st == RP_OK) {
        uint8_t d[32];
        char hex[65], sql[256];
        rp_sha256_final(&h, d);
        rp_sha256_hex(d, hex);
        snprintf(sql, sizeof sql, "INSERT INTO meta VALUES ('digest', '%.16s'); INSERT INTO meta VALUES ('passages', '%lld'); COMMIT;",
                 hex, (long long)count);
        st = exec_sql(db, index_path, sql);
    }
    sqlite3_close(db);
    rp_safe_strlist_free(&paths);
    if (st == RP_OK && n_passages) *n_passages = count;
    return st;
}

typedef struct bm25 { sqlite3 *db; sqlite3_stmt *q; } bm25;

static void bm25_release(void *ctx) {
    bm25 *b = ctx;
    sqlite3_finalize(b->q);
    sqlite3_close(b->db);
    free(b);
}

/* The query's words as an FTS5 OR-expression of quoted terms (no operator in the input survives). */
static rp_status fts_query(const char *q, rp_buf *out) {
    rp_buf_clear(out);
    for (size_t i = 0; q[i];) {
        while (q[i] && !isalnum((unsigned char)q[i]) && (unsigned char)q[i] < 0x80) i++;
        size_t b = i;
        while (q[i] && (isalnum((unsigned char)q[i]) || (unsigned char)q[i] >= 0x80)) i++;
        if (i > b) {
            if (out->len) RP_TRY(rp_buf_puts(out, " OR "));
            RP_TRY(rp_buf_printf(out, "\"%.*s\"", (int)(i - b), q + b));
        }
    }
    return RP_OK;
}

static rp_status bm25_search(void *ctx, rp_safe_query *qs, size_t n) {
    bm25 *b = ctx;
    rp_buf expr = {0};
    for (size_t i = 0; i < n; i++) {
        rp_safe_query *x = &qs[i];
        rp_buf_clear(&x->text);
        x->cost = 0;
        rp_status st = fts_query(x->q ? x->q : "", &expr);
        if (st == RP_OK && expr.len) {
            sqlite3_reset(b->q);
            sqlite3_bind_text(b->q, 1, expr.data, (int)expr.len, SQLITE_STATIC);
            sqlite3_bind_int(b->q, 2, x->k);
            int rc;
            while (st == RP_OK && (rc = sqlite3_step(b->q)) == SQLITE_ROW) {
                if (x->text.len) st = rp_buf_puts(&x->text, " ");
                if (st == RP_OK) st = rp_buf_printf(&x->text, "%s: %s", (const char *)sqlite3_column_text(b->q, 0),
                                                    (const char *)sqlite3_column_text(b->q, 1));
            }
            if (st == RP_OK && rc != SQLITE_DONE) st = rp_fail(RP_ERR_DB, "BM25 query \"%s\": %s", expr.data, sqlite3_errmsg(b->db));
        }
        if (st == RP_OK && x->text.len == 0) st = rp_buf_puts(&x->text, rp_safe_no_result);
        x->st = st;
        if (st != RP_OK) snprintf(x->error, sizeof x->error, "%s", rp_errmsg());
    }
    rp_buf_free(&expr);
    return RP_OK;
}

rp_status rp_safe_bm25_new(const char *index_path, rp_safe_search *out) {
    memset(out, 0, sizeof *out);
    bm25 *b = calloc(1, sizeof *b);
    if (!b) return rp_fail(RP_ERR_NOMEM, "out of memory");
    rp_status st = RP_OK;
    if (sqlite3_open_v2(index_path, &b->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        st = rp_fail(RP_ERR_NOTFOUND, "BM25 index %s: %s", index_path, b->db ? sqlite3_errmsg(b->db) : "cannot open");
    sqlite3_stmt *m = NULL;
    char digest[32] = "", count[32] = "";
    if (st == RP_OK && sqlite3_prepare_v2(b->db, "SELECT key, value FROM meta", -1, &m, NULL) != SQLITE_OK)
        st = rp_fail(RP_ERR_FORMAT, "BM25 index %s: not an index built by rp_safe_bm25_build (%s)", index_path, sqlite3_errmsg(b->db));
    while (st == RP_OK && sqlite3_step(m) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(m, 0), *v = (const char *)sqlite3_column_text(m, 1);
        if (k && v && strcmp(k, "digest") == 0) snprintf(digest, sizeof digest, "%s", v);
        if (k && v && strcmp(k, "passages") == 0) snprintf(count, sizeof count, "%s", v);
    }
    sqlite3_finalize(m);
    if (st == RP_OK && !digest[0]) st = rp_fail(RP_ERR_FORMAT, "BM25 index %s: no digest in meta", index_path);
    if (st == RP_OK && sqlite3_prepare_v2(b->db, "SELECT title, body FROM passages WHERE passages MATCH ? ORDER BY bm25(passages) LIMIT ?",
                                          -1, &b->q, NULL) != SQLITE_OK)
        st = rp_fail(RP_ERR_FORMAT, "BM25 index %s: %s", index_path, sqlite3_errmsg(b->db));
    if (st != RP_OK) { bm25_release(b); return st; }
    out->ctx = b;
    snprintf(out->name, sizeof out->name, "bm25:%s:%s", digest, count);
    out->search = bm25_search;
    out->release = bm25_release;
    return RP_OK;
}
