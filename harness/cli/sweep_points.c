/* sweep_points.c: expanding a sweep's axes and points file into its list of points (sweep_points.h).
 * The order is the points file's lines (or one empty point), each crossed with the axes, the first axis
 * varying fastest, so a sweep's point indices are stable for the same command line. */
#include "cli/sweep_points.h"
#include "util/buf.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct axis { char *key; char **vals; size_t n; } axis;

/* Parse a whole decimal integer. */
static int parse_i64(const char *s, int64_t *v) {
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end) return 0;
    *v = x;
    return 1;
}

/* Append a value to an axis. */
static rp_status axis_push(axis *a, const char *v, size_t len) {
    char **g = realloc(a->vals, (a->n + 1) * sizeof *g);
    if (!g) return rp_fail(RP_ERR_NOMEM, "out of memory");
    a->vals = g;
    if (!(a->vals[a->n] = strndup(v, len))) return rp_fail(RP_ERR_NOMEM, "out of memory");
    a->n++;
    return RP_OK;
}

/* key=v1,v2 or key=a..b into an axis. */
static rp_status parse_axis(const char *arg, axis *a) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) return rp_fail(RP_ERR_INVAL, "'%s': expected key=v1,v2,... or key=a..b", arg);
    if (!(a->key = strndup(arg, (size_t)(eq - arg)))) return rp_fail(RP_ERR_NOMEM, "out of memory");
    const char *v = eq + 1, *dots = strstr(v, "..");
    if (dots && !strchr(v, ',')) {
        char lo_s[32], hi_s[32];
        int64_t lo, hi;
        snprintf(lo_s, sizeof lo_s, "%.*s", (int)(dots - v), v);
        snprintf(hi_s, sizeof hi_s, "%s", dots + 2);
        if (!parse_i64(lo_s, &lo) || !parse_i64(hi_s, &hi) || hi < lo || hi - lo >= 100000)
            return rp_fail(RP_ERR_INVAL, "'%s': a range is a..b with integers a <= b (at most 100000 values)", arg);
        for (int64_t x = lo; x <= hi; x++) {
            char s[32];
            int n = snprintf(s, sizeof s, "%lld", (long long)x);
            RP_TRY(axis_push(a, s, (size_t)n));
        }
        return RP_OK;
    }
    for (const char *p = v;;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (!len) return rp_fail(RP_ERR_INVAL, "'%s': empty value in the list", arg);
        RP_TRY(axis_push(a, p, len));
        if (!c) break;
        p = c + 1;
    }
    return RP_OK;
}

/* Add pair key=value to a point; a seed pair becomes the point's seed. */
static rp_status point_add(rp_point *p, const char *key, size_t klen, const char *value, const char *where) {
    if (klen == 4 && !strncmp(key, "seed", 4)) {
        if (!parse_i64(value, &p->seed)) return rp_fail(RP_ERR_INVAL, "%s: seed must be an integer, got '%s'", where, value);
        return RP_OK;
    }
    for (size_t i = 0; i < p->n; i++)
        if (strlen(p->kv[i].key) == klen && !strncmp(p->kv[i].key, key, klen))
            return rp_fail(RP_ERR_INVAL, "%s: param '%.*s' given twice for one point", where, (int)klen, key);
    rp_kv *g = realloc(p->kv, (p->n + 1) * sizeof *g);
    if (!g) return rp_fail(RP_ERR_NOMEM, "out of memory");
    p->kv = g;
    p->kv[p->n].key = strndup(key, klen);
    p->kv[p->n].value = strdup(value);
    if (!p->kv[p->n].key || !p->kv[p->n].value) return rp_fail(RP_ERR_NOMEM, "out of memory");
    p->n++;
    return RP_OK;
}

/* Free a point's pairs. */
static void point_free(rp_point *p) {
    for (size_t i = 0; i < p->n; i++) { free(p->kv[i].key); free(p->kv[i].value); }
    free(p->kv);
    p->kv = NULL; p->n = 0;
}

/* Copy of a point (pairs duplicated). */
static rp_status point_copy(const rp_point *src, rp_point *dst) {
    *dst = (rp_point){ NULL, 0, src->seed };
    char where[] = "points";
    for (size_t i = 0; i < src->n; i++) RP_TRY(point_add(dst, src->kv[i].key, strlen(src->kv[i].key), src->kv[i].value, where));
    return RP_OK;
}

/* Append a point to the list (taking it over). */
static rp_status list_push(rp_point_list *l, rp_point *p) {
    rp_point *g = realloc(l->p, (l->n + 1) * sizeof *g);
    if (!g) return rp_fail(RP_ERR_NOMEM, "out of memory");
    l->p = g;
    l->p[l->n++] = *p;
    return RP_OK;
}

/* The base points: one per non-empty line of the points file. */
static rp_status read_points_file(const char *path, rp_point_list *base) {
    rp_buf b = {0};
    RP_TRY(rp_read_file(path, &b));
    rp_status st = RP_OK;
    int lineno = 0;
    for (char *line = b.data; st == RP_OK && line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        rp_point p = { NULL, 0, 1 };
        int words = 0;
        char *save = NULL;
        for (char *w = strtok_r(line, " \t\r", &save); st == RP_OK && w; w = strtok_r(NULL, " \t\r", &save)) {
            char where[4200];
            snprintf(where, sizeof where, "%s:%d", path, lineno);
            char *eq = strchr(w, '=');
            if (!eq || eq == w) st = rp_fail(RP_ERR_INVAL, "%s: expected key=value, got '%s'", where, w);
            else st = point_add(&p, w, (size_t)(eq - w), eq + 1, where);
            words++;
        }
        if (st == RP_OK && words) st = list_push(base, &p);
        else point_free(&p);
        line = nl ? nl + 1 : NULL;
    }
    rp_buf_free(&b);
    if (st == RP_OK && !base->n) st = rp_fail(RP_ERR_INVAL, "%s: no points (each line: key=value ...)", path);
    return st;
}

rp_status rp_sweep_points_build(char **args, int nargs, const char *points_file, rp_point_list *out) {
    *out = (rp_point_list){0};
    rp_point_list base = {0};
    axis *axes = calloc((size_t)nargs + 1, sizeof *axes);
    if (!axes) return rp_fail(RP_ERR_NOMEM, "out of memory");
    rp_status st = RP_OK;
    for (int i = 0; st == RP_OK && i < nargs; i++) st = parse_axis(args[i], &axes[i]);
    if (st == RP_OK) {
        if (points_file) st = read_points_file(points_file, &base);
        else { rp_point empty = { NULL, 0, 1 }; st = list_push(&base, &empty); }
    }
    size_t combos = 1;
    for (int a = 0; a < nargs; a++) combos *= axes[a].n;
    if (st == RP_OK && combos * base.n > 1000000) st = rp_fail(RP_ERR_INVAL, "the sweep has %zu points (more than 1000000)", combos * base.n);
    for (size_t b = 0; st == RP_OK && b < base.n; b++) {
        for (size_t c = 0; st == RP_OK && c < combos; c++) {
            rp_point p;
            st = point_copy(&base.p[b], &p);
            size_t k = c;
            for (int a = 0; st == RP_OK && a < nargs; a++) {
                st = point_add(&p, axes[a].key, strlen(axes[a].key), axes[a].vals[k % axes[a].n], args[a]);
                k /= axes[a].n;
            }
            if (st == RP_OK) st = list_push(out, &p);
            else point_free(&p);
        }
    }
    for (int a = 0; a < nargs; a++) {
        free(axes[a].key);
        for (size_t v = 0; v < axes[a].n; v++) free(axes[a].vals[v]);
        free(axes[a].vals);
    }
    free(axes);
    rp_sweep_points_free(&base);
    if (st != RP_OK) rp_sweep_points_free(out);
    return st;
}

void rp_sweep_points_free(rp_point_list *l) {
    for (size_t j = 0; j < l->n; j++) point_free(&l->p[j]);
    free(l->p);
    *l = (rp_point_list){0};
}
