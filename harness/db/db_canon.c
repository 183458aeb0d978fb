/* db_canon.c: canonical JSON text for params, so that runs with the same params compare equal as text
 * whatever order the script's table iterated in (Lua 5.4 seeds its string hashes per state): object
 * keys sorted bytewise at every depth, compact, numbers as the JSON writer prints them. */
#include "db/registry.h"
#include "util/json.h"
#include <stdlib.h>
#include <string.h>

/* A deep copy of j with every object's keys in sorted order (NULL when out of memory). */
static rp_json *sorted_copy(const rp_json *j);

static int cmp_keys(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static rp_json *sorted_copy(const rp_json *j) {
    switch (rp_json_typeof(j)) {
    case RP_JSON_NULL: return rp_json_new_null();
    case RP_JSON_BOOL: return rp_json_new_bool(rp_json_bool(j, 0));
    case RP_JSON_NUMBER: return rp_json_new_number(rp_json_num(j, 0));
    case RP_JSON_STRING: { size_t n; const char *s = rp_json_strn(j, &n); return rp_json_new_stringn(s, n); }
    case RP_JSON_ARRAY: {
        rp_json *a = rp_json_new_array();
        for (size_t i = 0; a && i < rp_json_len(j); i++) {
            rp_json *c = sorted_copy(rp_json_at(j, i));
            if (!c || rp_json_push(a, c) != RP_OK) { rp_json_free(a); return NULL; }
        }
        return a;
    }
    case RP_JSON_OBJECT: {
        size_t n = rp_json_len(j);
        const char **keys = malloc((n ? n : 1) * sizeof *keys);
        rp_json *o = keys ? rp_json_new_object() : NULL;
        for (size_t i = 0; o && i < n; i++) keys[i] = rp_json_key_at(j, i);
        if (o) qsort(keys, n, sizeof *keys, cmp_keys);
        for (size_t i = 0; o && i < n; i++) {
            if (i && !strcmp(keys[i], keys[i - 1])) continue;   /* a repeated key: get() answers the last one */
            rp_json *c = sorted_copy(rp_json_get(j, keys[i]));
            if (!c || rp_json_set(o, keys[i], c) != RP_OK) { rp_json_free(o); o = NULL; }
        }
        free(keys);
        return o;
    }
    }
    return NULL;
}

rp_status rp_db_canonical_json(const char *json, rp_buf *out) {
    rp_json *j = NULL;
    RP_TRY(rp_json_parse(json, strlen(json), &j));
    rp_json *c = sorted_copy(j);
    rp_json_free(j);
    if (!c) return rp_fail(RP_ERR_NOMEM, "out of memory canonicalizing JSON");
    rp_status st = rp_json_write(c, out, 0);
    rp_json_free(c);
    return st;
}
