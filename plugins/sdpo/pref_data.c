/* pref_data.c: loaders for the staged preference data, one JSON object per line:
 *   ultrafeedback  {"prompt", "chosen", "rejected" (strings), "metadata": {"score_chosen", "score_rejected"}}
 *   orca           Azure DPO format: {"input": {"messages": [{role, content}...]}, "preferred_output": [{role:
 *                  "assistant", content}], "non_preferred_output": [...]} (Intel orca_dpo_pairs mapped by Microsoft)
 *   hh             HH-RLHF: {"chosen", "rejected"} full "\n\nHuman: ...\n\nAssistant: ..." transcripts that differ
 *                  in the final Assistant turn; their shared prefix, cut at its last Assistant marker, becomes the
 *                  prompt conversation (as TRL extracts it).
 * Invariants: every pair has at least one prompt message, the last one a user turn, and non-NULL responses; an
 * error names the file, the 1-based record (line) and the field, and leaves the pairs parsed before it. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "plugins/sdpo/sdpo.h"
#include "util/buf.h"
#include "util/json.h"

/* Parse a format name. */
rp_status rp_pref_format_parse(const char *name, rp_pref_format *out) {
    if (!name) return rp_fail(RP_ERR_INVAL, "preference format: missing (ultrafeedback, orca, hh)");
    if (!strcmp(name, "ultrafeedback")) *out = RP_PREF_ULTRAFEEDBACK;
    else if (!strcmp(name, "orca")) *out = RP_PREF_ORCA_AZURE;
    else if (!strcmp(name, "hh")) *out = RP_PREF_HH;
    else return rp_fail(RP_ERR_INVAL, "preference format '%s' is not one of ultrafeedback, orca, hh", name);
    return RP_OK;
}

static void pair_free(rp_pref_pair *p) {
    for (int i = 0; i < p->n_msgs; i++) { free(p->msgs[i].role); free(p->msgs[i].content); }
    free(p->msgs); free(p->chosen); free(p->rejected);
    memset(p, 0, sizeof *p);
}

/* Release the pairs. */
void rp_pref_set_free(rp_pref_set *set) {
    for (size_t i = 0; i < set->n; i++) pair_free(&set->pairs[i]);
    free(set->pairs);
    memset(set, 0, sizeof *set);
}

static char *dupn(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) { memcpy(d, s, n); d[n] = 0; }
    return d;
}

static rp_status add_msg(rp_pref_pair *p, const char *role, const char *content, size_t len) {
    rp_pref_msg *m = realloc(p->msgs, (size_t)(p->n_msgs + 1) * sizeof *m);
    if (!m) return rp_fail(RP_ERR_NOMEM, "out of memory");
    p->msgs = m;
    m[p->n_msgs].role = dupn(role, strlen(role));
    m[p->n_msgs].content = dupn(content, len);
    p->n_msgs++;
    if (!m[p->n_msgs - 1].role || !m[p->n_msgs - 1].content) return rp_fail(RP_ERR_NOMEM, "out of memory");
    return RP_OK;
}

/* A record-level error: "<file>: record N: field 'F': why". */
#define BAD(field, ...) rec_fail(name, rec, field, __VA_ARGS__)
static rp_status rec_fail(const char *name, int64_t rec, const char *field, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static rp_status rec_fail(const char *name, int64_t rec, const char *field, const char *fmt, ...) {
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return rp_fail(RP_ERR_FORMAT, "%s: record %lld: field '%s': %s", name, (long long)rec, field, why);
}

static const char *need_str(const rp_json *o, const char *key) {
    const rp_json *v = rp_json_get(o, key);
    return v && rp_json_typeof(v) == RP_JSON_STRING ? rp_json_str(v, NULL) : NULL;
}

static rp_status parse_ultrafeedback(const rp_json *o, const char *name, int64_t rec, rp_pref_pair *p) {
    const char *prompt = need_str(o, "prompt"), *c = need_str(o, "chosen"), *r = need_str(o, "rejected");
    if (!prompt) return BAD("prompt", "missing or not a string");
    if (!c) return BAD("chosen", "missing or not a string");
    if (!r) return BAD("rejected", "missing or not a string");
    RP_TRY(add_msg(p, "user", prompt, strlen(prompt)));
    p->chosen = dupn(c, strlen(c));
    p->rejected = dupn(r, strlen(r));
    const rp_json *md = rp_json_get(o, "metadata");
    const rp_json *sc = rp_json_get(md, "score_chosen"), *sr = rp_json_get(md, "score_rejected");
    if (md && (rp_json_typeof(md) != RP_JSON_OBJECT))
        return BAD("metadata", "not an object");
    if ((sc && rp_json_typeof(sc) != RP_JSON_NUMBER)) return BAD("metadata.score_chosen", "not a number");
    if ((sr && rp_json_typeof(sr) != RP_JSON_NUMBER)) return BAD("metadata.score_rejected", "not a number");
    p->score = sc && sr ? rp_json_num(sc, 0) - rp_json_num(sr, 0) : NAN;
    return RP_OK;
}

static const char *one_output(const rp_json *o, const char *key) {
    const rp_json *a = rp_json_get(o, key);
    if (!a || rp_json_typeof(a) != RP_JSON_ARRAY || rp_json_len(a) < 1) return NULL;
    const rp_json *m = rp_json_at(a, rp_json_len(a) - 1);
    return rp_json_typeof(m) == RP_JSON_OBJECT && !strcmp(rp_json_str(rp_json_get(m, "role"), ""), "assistant")
               ? need_str(m, "content") : NULL;
}

static rp_status parse_orca(const rp_json *o, const char *name, int64_t rec, rp_pref_pair *p) {
    const rp_json *msgs = rp_json_path(o, "input.messages");
    if (!msgs || rp_json_typeof(msgs) != RP_JSON_ARRAY || rp_json_len(msgs) < 1)
        return BAD("input.messages", "missing, not a list, or empty");
    for (size_t i = 0; i < rp_json_len(msgs); i++) {
        const rp_json *m = rp_json_at(msgs, i);
        const char *role = m && rp_json_typeof(m) == RP_JSON_OBJECT ? need_str(m, "role") : NULL;
        const char *content = m && rp_json_typeof(m) == RP_JSON_OBJECT ? need_str(m, "content") : NULL;
        char field[64];
        snprintf(field, sizeof field, "input.messages.%zu", i);
        if (!role || (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant")))
            return BAD(field, "role missing or not system/user/assistant");
        if (!content) return BAD(field, "content missing or not a string");
        RP_TRY(add_msg(p, role, content, strlen(content)));
    }
    if (strcmp(p->msgs[p->n_msgs - 1].role, "user")) return BAD("input.messages", "the last message is not a user turn");
    const char *c = one_output(o, "preferred_output"), *r = one_output(o, "non_preferred_output");
    if (!c) return BAD("preferred_output", "missing, or its last item is not an assistant message with string content");
    if (!r) return BAD("non_preferred_output", "missing, or its last item is not an assistant message with string content");
    p->chosen = dupn(c, strlen(c));
    p->rejected = dupn(r, strlen(r));
    p->score = NAN;
    return RP_OK;
}

static const char *rfind(const char *s, size_t n, const char *pat) {
    size_t m = strlen(pat);
    if (n < m) return NULL;
    for (size_t i = n - m + 1; i-- > 0;) if (!memcmp(s + i, pat, m)) return s + i;
    return NULL;
}

static const char *skip_space(const char *s) { return *s == ' ' ? s + 1 : s; }

static rp_status parse_hh(const rp_json *o, const char *name, int64_t rec, rp_pref_pair *p) {
    static const char H[] = "\n\nHuman:", A[] = "\n\nAssistant:";
    size_t lc, lr;
    const rp_json *jc = rp_json_get(o, "chosen"), *jr = rp_json_get(o, "rejected");
    if (!jc || rp_json_typeof(jc) != RP_JSON_STRING) return BAD("chosen", "missing or not a string");
    if (!jr || rp_json_typeof(jr) != RP_JSON_STRING) return BAD("rejected", "missing or not a string");
    const char *c = rp_json_strn(jc, &lc), *r = rp_json_strn(jr, &lr);
    /* the prompt is the shared prefix cut back to its last Assistant marker (a response may itself contain
     * "\n\nAssistant:", so the chosen transcript's last marker is not always the prompt's end) */
    size_t common = 0;
    while (common < lc && common < lr && c[common] == r[common]) common++;
    if (!rfind(c, lc, A)) return BAD("chosen", "no \"\\n\\nAssistant:\" turn");
    const char *last = rfind(c, common, A);
    if (!last) return BAD("rejected", "does not share the chosen transcript's prompt");
    size_t plen = (size_t)(last - c) + strlen(A);
    /* the prompt's turns: alternating Human / Assistant blocks up to the final Assistant marker */
    const char *s = c, *end = last;
    if (strncmp(s, H, strlen(H))) return BAD("chosen", "does not start with \"\\n\\nHuman:\"");
    while (s < end) {
        int human = !strncmp(s, H, strlen(H));
        const char *body = skip_space(s + (human ? strlen(H) : strlen(A)));
        const char *nh = body, *next = end;
        while (nh < end) {
            if (!strncmp(nh, H, strlen(H)) || !strncmp(nh, A, strlen(A))) { next = nh; break; }
            nh++;
        }
        if (body > next) body = next;
        RP_TRY(add_msg(p, human ? "user" : "assistant", body, (size_t)(next - body)));
        s = next;
    }
    if (strcmp(p->msgs[p->n_msgs - 1].role, "user")) return BAD("chosen", "the prompt does not end with a Human turn");
    const char *rc = skip_space(c + plen), *rr = skip_space(r + plen);
    p->chosen = dupn(rc, lc - (size_t)(rc - c));
    p->rejected = dupn(rr, lr - (size_t)(rr - r));
    p->score = NAN;
    return RP_OK;
}

/* Parse JSONL preference records into set. */
rp_status rp_pref_parse(const char *text, size_t len, rp_pref_format fmt, const char *name, rp_pref_set *set) {
    int64_t rec = 0;
    size_t i = 0;
    while (i < len) {
        const char *line = text + i;
        const char *nl = memchr(line, '\n', len - i);
        size_t n = nl ? (size_t)(nl - line) : len - i;
        i += n + (nl ? 1 : 0);
        rec++;
        size_t k = 0;
        while (k < n && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) k++;
        if (k == n) continue;
        rp_json *o = NULL;
        if (rp_json_parse(line, n, &o) != RP_OK)
            return rp_fail(RP_ERR_FORMAT, "%s: record %lld: not JSON (%s)", name, (long long)rec, rp_errmsg());
        if (rp_json_typeof(o) != RP_JSON_OBJECT) {
            rp_json_free(o);
            return rp_fail(RP_ERR_FORMAT, "%s: record %lld: not a JSON object", name, (long long)rec);
        }
        rp_pref_pair p = { 0 };
        p.record = rec;
        rp_status st = fmt == RP_PREF_ULTRAFEEDBACK ? parse_ultrafeedback(o, name, rec, &p)
                     : fmt == RP_PREF_ORCA_AZURE ? parse_orca(o, name, rec, &p) : parse_hh(o, name, rec, &p);
        rp_json_free(o);
        if (st == RP_OK && (!p.chosen || !p.rejected)) st = rp_fail(RP_ERR_NOMEM, "out of memory");
        if (st == RP_OK && set->n == set->cap) {
            size_t cap = set->cap ? set->cap * 2 : 64;
            rp_pref_pair *np = realloc(set->pairs, cap * sizeof *np);
            if (!np) st = rp_fail(RP_ERR_NOMEM, "out of memory");
            else { set->pairs = np; set->cap = cap; }
        }
        if (st != RP_OK) { pair_free(&p); return st; }
        set->pairs[set->n++] = p;
    }
    return RP_OK;
}

/* Read a (possibly gzipped) JSONL file and parse its records. */
rp_status rp_pref_load(const char *path, rp_pref_format fmt, rp_pref_set *set) {
    gzFile g = gzopen(path, "rb");
    if (!g) return rp_fail(RP_ERR_IO, "%s: cannot open", path);
    rp_buf b = { 0 };
    char chunk[65536];
    int n;
    rp_status st = RP_OK;
    while ((n = gzread(g, chunk, sizeof chunk)) > 0)
        if ((st = rp_buf_append(&b, chunk, (size_t)n)) != RP_OK) break;
    int errnum = 0;
    const char *gerr = n < 0 ? gzerror(g, &errnum) : NULL;
    gzclose(g);
    if (st == RP_OK && gerr) st = rp_fail(RP_ERR_FORMAT, "%s: damaged gzip data (%s)", path, gerr);
    if (st == RP_OK) st = rp_pref_parse(b.data ? b.data : "", b.len, fmt, path, set);
    rp_buf_free(&b);
    return st;
}
