/* json.c: the JSON DOM behind json.h: a strict RFC 8259 recursive-descent parser, builders and a writer.
 * Invariants: the parser never reads past text+len (input need not be NUL-terminated); nesting deeper than
 * RP_JSON_MAX_DEPTH is an error, not a stack overflow; every string node holds valid UTF-8 followed by a
 * NUL (its length excludes the NUL; an escaped \u0000 may sit inside); a lone UTF-16 surrogate escape
 * (as some dataset dumps contain) becomes U+FFFD rather than failing the whole record. Raw bytes that are
 * not UTF-8 are an error. Numbers are doubles. Objects keep members in insertion order; a parsed object
 * with a repeated key answers rp_json_get with the last one. On failure rp_json_set / rp_json_push free
 * the value they were given, so `rp_json_set(o, "k", rp_json_new_string(s))` never leaks. */
#include "util/json.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RP_JSON_MAX_DEPTH 512

struct rp_json {
    rp_json_type type;
    union {
        int b;
        double num;
        struct { char *s; size_t len; } str;
        struct { rp_json **items; char **keys; size_t n, cap; } c;   /* keys only for objects */
    } u;
};

/* ---- nodes ---- */

static rp_json *node_new(rp_json_type t) {
    rp_json *j = calloc(1, sizeof *j);
    if (j) j->type = t;
    return j;
}

/* Free the node and its subtree. */
void rp_json_free(rp_json *j) {
    if (!j) return;
    if (j->type == RP_JSON_STRING) free(j->u.str.s);
    else if (j->type == RP_JSON_ARRAY || j->type == RP_JSON_OBJECT) {
        for (size_t i = 0; i < j->u.c.n; i++) {
            rp_json_free(j->u.c.items[i]);
            if (j->u.c.keys) free(j->u.c.keys[i]);
        }
        free(j->u.c.items);
        free(j->u.c.keys);
    }
    free(j);
}

/* Append (key may be NULL for arrays); takes ownership of key and val only on success. */
static rp_status container_add(rp_json *c, char *key, rp_json *val) {
    if (c->u.c.n == c->u.c.cap) {
        size_t cap = c->u.c.cap ? c->u.c.cap * 2 : 4;
        if (cap > ((size_t)-1) / sizeof(void *)) return rp_fail(RP_ERR_RANGE, "json: container too large");
        rp_json **items = realloc(c->u.c.items, cap * sizeof *items);
        if (!items) return rp_fail(RP_ERR_NOMEM, "json: out of memory");
        c->u.c.items = items;
        if (c->type == RP_JSON_OBJECT) {
            char **keys = realloc(c->u.c.keys, cap * sizeof *keys);
            if (!keys) return rp_fail(RP_ERR_NOMEM, "json: out of memory");
            c->u.c.keys = keys;
        }
        c->u.c.cap = cap;
    }
    c->u.c.items[c->u.c.n] = val;
    if (c->type == RP_JSON_OBJECT) c->u.c.keys[c->u.c.n] = key;
    c->u.c.n++;
    return RP_OK;
}

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at p (at most n bytes available), or 0 when invalid
 * (overlong forms, surrogates and code points above U+10FFFF are invalid). */
static size_t utf8_seq(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;
    if (c < 0xE0) return (n >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0;           /* overlong */
        if (c == 0xED && p[1] >= 0xA0) return 0;          /* UTF-16 surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0;           /* overlong */
        if (c == 0xF4 && p[1] >= 0x90) return 0;          /* above U+10FFFF */
        return 4;
    }
    return 0;
}

static size_t utf8_put(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- parser ---- */

typedef struct parser { const char *s; size_t n, i; int depth; } parser;

static rp_status perr(const parser *p, const char *what) {
    if (p->i >= p->n) return rp_fail(RP_ERR_FORMAT, "offset %zu: expected %s, found end of input", p->i, what);
    unsigned char c = (unsigned char)p->s[p->i];
    if (c >= 0x20 && c < 0x7F) return rp_fail(RP_ERR_FORMAT, "offset %zu: expected %s, found '%c'", p->i, what, c);
    return rp_fail(RP_ERR_FORMAT, "offset %zu: expected %s, found byte 0x%02x", p->i, what, c);
}

static void skip_ws(parser *p) {
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t') break;
        p->i++;
    }
}

static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* Parse a string literal at p->i (which holds '"') into a fresh NUL-terminated buffer. */
static rp_status parse_string(parser *p, char **out, size_t *out_len) {
    size_t start = ++p->i;
    /* Fast scan: find the closing quote; if no escapes, copy once. Decoded length <= raw length. */
    size_t j = start;
    int esc = 0;
    while (j < p->n) {
        unsigned char c = (unsigned char)p->s[j];
        if (c == '"') break;
        if (c == '\\') { esc = 1; j += 2; continue; }
        j++;
    }
    if (j >= p->n) { p->i = p->n; return perr(p, "'\"' closing the string"); }
    size_t raw = j - start;
    char *buf = malloc(raw + 1);
    if (!buf) return rp_fail(RP_ERR_NOMEM, "json: out of memory for a %zu-byte string", raw);
    size_t o = 0;
    size_t i = start;
    const unsigned char *s = (const unsigned char *)p->s;
    while (i < j) {
        unsigned c = s[i];
        if (c == '\\' && esc) {
            if (i + 1 >= j) { p->i = i; free(buf); return perr(p, "an escape sequence"); }
            char e = (char)s[i + 1];
            i += 2;
            switch (e) {
            case '"': buf[o++] = '"'; break;
            case '\\': buf[o++] = '\\'; break;
            case '/': buf[o++] = '/'; break;
            case 'b': buf[o++] = '\b'; break;
            case 'f': buf[o++] = '\f'; break;
            case 'n': buf[o++] = '\n'; break;
            case 'r': buf[o++] = '\r'; break;
            case 't': buf[o++] = '\t'; break;
            case 'u': {
                unsigned cp;
                if (i + 4 > j || !hex4((const char *)s + i, &cp)) {
                    p->i = i; free(buf); return perr(p, "four hex digits after \\u");
                }
                i += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    unsigned lo;
                    if (i + 6 <= j && s[i] == '\\' && s[i + 1] == 'u' && hex4((const char *)s + i + 2, &lo) &&
                        lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        i += 6;
                    } else cp = 0xFFFD;                    /* lone high surrogate */
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) cp = 0xFFFD;   /* lone low surrogate */
                /* \uXXXX (6 raw bytes) decodes to at most 3 bytes; a pair (12) to 4: stays within raw. */
                o += utf8_put(buf + o, cp);
                break;
            }
            default:
                p->i = i - 1; free(buf); return perr(p, "an escape (one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)");
            }
        } else if (c < 0x20) {
            p->i = i; free(buf); return perr(p, "a string character (control characters must be escaped)");
        } else if (c < 0x80) {
            buf[o++] = (char)c;
            i++;
        } else {
            size_t k = utf8_seq(s + i, j - i);
            if (!k) { p->i = i; free(buf); return perr(p, "valid UTF-8 in a string"); }
            memcpy(buf + o, s + i, k);
            o += k;
            i += k;
        }
    }
    buf[o] = 0;
    p->i = j + 1;
    *out = buf;
    *out_len = o;
    return RP_OK;
}

static rp_status parse_number(parser *p, double *out) {
    size_t st = p->i, i = p->i;
    const char *s = p->s;
    int neg = 0;
    if (i < p->n && s[i] == '-') { neg = 1; i++; }
    if (i >= p->n || s[i] < '0' || s[i] > '9') { p->i = i; return perr(p, "a digit"); }
    uint64_t mant = 0;
    int ndig = 0;
    if (s[i] == '0') { i++; ndig = 1; }
    else while (i < p->n && s[i] >= '0' && s[i] <= '9') { if (ndig < 19) mant = mant * 10 + (uint64_t)(s[i] - '0'); ndig++; i++; }
    int simple = 1;
    if (i < p->n && s[i] == '.') {
        simple = 0;
        i++;
        if (i >= p->n || s[i] < '0' || s[i] > '9') { p->i = i; return perr(p, "a digit after '.'"); }
        while (i < p->n && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < p->n && (s[i] == 'e' || s[i] == 'E')) {
        simple = 0;
        i++;
        if (i < p->n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->n || s[i] < '0' || s[i] > '9') { p->i = i; return perr(p, "a digit in the exponent"); }
        while (i < p->n && s[i] >= '0' && s[i] <= '9') i++;
    }
    p->i = i;
    if (simple && ndig <= 15) {                      /* exact in a double */
        *out = neg ? -(double)mant : (double)mant;
        if (neg && mant == 0) *out = -0.0;
        return RP_OK;
    }
    size_t len = i - st;
    char small[64];
    char *tmp = len < sizeof small ? small : malloc(len + 1);
    if (!tmp) return rp_fail(RP_ERR_NOMEM, "json: out of memory for a %zu-digit number", len);
    memcpy(tmp, s + st, len);
    tmp[len] = 0;
    *out = strtod(tmp, NULL);                        /* grammar already checked; overflow gives +-HUGE_VAL */
    if (tmp != small) free(tmp);
    return RP_OK;
}

static int match_lit(parser *p, const char *lit, size_t n) {
    if (p->n - p->i < n || memcmp(p->s + p->i, lit, n) != 0) return 0;
    p->i += n;
    return 1;
}

static rp_status parse_value(parser *p, rp_json **out);

static rp_status parse_container(parser *p, rp_json **out, int is_obj) {
    if (++p->depth > RP_JSON_MAX_DEPTH)
        return rp_fail(RP_ERR_FORMAT, "offset %zu: expected at most %d nested arrays/objects", p->i, RP_JSON_MAX_DEPTH);
    rp_json *c = node_new(is_obj ? RP_JSON_OBJECT : RP_JSON_ARRAY);
    if (!c) return rp_fail(RP_ERR_NOMEM, "json: out of memory");
    p->i++;
    skip_ws(p);
    char close = is_obj ? '}' : ']';
    if (p->i < p->n && p->s[p->i] == close) { p->i++; p->depth--; *out = c; return RP_OK; }
    for (;;) {
        char *key = NULL;
        size_t klen;
        rp_status st;
        if (is_obj) {
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != '"') { rp_json_free(c); return perr(p, "a string key"); }
            if ((st = parse_string(p, &key, &klen)) != RP_OK) { rp_json_free(c); return st; }
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') { free(key); rp_json_free(c); return perr(p, "':' after an object key"); }
            p->i++;
        }
        rp_json *v = NULL;
        if ((st = parse_value(p, &v)) != RP_OK) { free(key); rp_json_free(c); return st; }
        if ((st = container_add(c, key, v)) != RP_OK) { free(key); rp_json_free(v); rp_json_free(c); return st; }
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') { p->i++; continue; }
        if (p->i < p->n && p->s[p->i] == close) { p->i++; break; }
        rp_json_free(c);
        return perr(p, is_obj ? "',' or '}' in an object" : "',' or ']' in an array");
    }
    p->depth--;
    *out = c;
    return RP_OK;
}

static rp_status parse_value(parser *p, rp_json **out) {
    skip_ws(p);
    if (p->i >= p->n) return perr(p, "a value");
    char c = p->s[p->i];
    rp_json *j;
    switch (c) {
    case '{': return parse_container(p, out, 1);
    case '[': return parse_container(p, out, 0);
    case '"': {
        char *s; size_t n;
        RP_TRY(parse_string(p, &s, &n));
        if (!(j = node_new(RP_JSON_STRING))) { free(s); return rp_fail(RP_ERR_NOMEM, "json: out of memory"); }
        j->u.str.s = s; j->u.str.len = n;
        *out = j;
        return RP_OK;
    }
    case 't': case 'f': case 'n': {
        rp_json_type t; int b = 0;
        if (match_lit(p, "true", 4)) { t = RP_JSON_BOOL; b = 1; }
        else if (match_lit(p, "false", 5)) t = RP_JSON_BOOL;
        else if (match_lit(p, "null", 4)) t = RP_JSON_NULL;
        else return perr(p, "a value (true, false or null)");
        if (!(j = node_new(t))) return rp_fail(RP_ERR_NOMEM, "json: out of memory");
        j->u.b = b;
        *out = j;
        return RP_OK;
    }
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            double v = 0;
            RP_TRY(parse_number(p, &v));
            if (!(j = node_new(RP_JSON_NUMBER))) return rp_fail(RP_ERR_NOMEM, "json: out of memory");
            j->u.num = v;
            *out = j;
            return RP_OK;
        }
        return perr(p, "a value");
    }
}

/* Parse exactly one JSON value (surrounded by optional whitespace) from len bytes of text. */
rp_status rp_json_parse(const char *text, size_t len, rp_json **out) {
    *out = NULL;
    if (!text && len) return rp_fail(RP_ERR_INVAL, "json: NULL text");
    parser p = { text ? text : "", len, 0, 0 };
    rp_json *j = NULL;
    RP_TRY(parse_value(&p, &j));
    skip_ws(&p);
    if (p.i != p.n) { rp_json_free(j); return perr(&p, "end of input after the value"); }
    *out = j;
    return RP_OK;
}

/* ---- accessors ---- */

/* The node's type (NULL reads as null). */
rp_json_type rp_json_typeof(const rp_json *j) { return j ? j->type : RP_JSON_NULL; }

/* Member of an object by key; the last one wins when a parsed object repeats a key. */
const rp_json *rp_json_get(const rp_json *j, const char *key) {
    if (!j || j->type != RP_JSON_OBJECT || !key) return NULL;
    for (size_t i = j->u.c.n; i-- > 0;)
        if (strcmp(j->u.c.keys[i], key) == 0) return j->u.c.items[i];
    return NULL;
}

/* Number of elements (arrays) or members (objects). */
size_t rp_json_len(const rp_json *j) {
    return (j && (j->type == RP_JSON_ARRAY || j->type == RP_JSON_OBJECT)) ? j->u.c.n : 0;
}

/* i-th element of an array, or i-th member value of an object. */
const rp_json *rp_json_at(const rp_json *j, size_t i) {
    return (i < rp_json_len(j)) ? j->u.c.items[i] : NULL;
}

/* i-th key of an object. */
const char *rp_json_key_at(const rp_json *j, size_t i) {
    return (j && j->type == RP_JSON_OBJECT && i < j->u.c.n) ? j->u.c.keys[i] : NULL;
}

/* String value, or fallback when j is not a string. */
const char *rp_json_str(const rp_json *j, const char *fallback) {
    return (j && j->type == RP_JSON_STRING) ? j->u.str.s : fallback;
}

/* String value with its byte length (NULL when j is not a string). */
const char *rp_json_strn(const rp_json *j, size_t *len) {
    if (!j || j->type != RP_JSON_STRING) { if (len) *len = 0; return NULL; }
    if (len) *len = j->u.str.len;
    return j->u.str.s;
}

/* Number value, or fallback. */
double rp_json_num(const rp_json *j, double fallback) {
    return (j && j->type == RP_JSON_NUMBER) ? j->u.num : fallback;
}

/* Boolean value, or fallback. */
int rp_json_bool(const rp_json *j, int fallback) {
    return (j && j->type == RP_JSON_BOOL) ? j->u.b : fallback;
}

/* Walk a dotted path; numeric parts index arrays, other parts name object members. */
const rp_json *rp_json_path(const rp_json *j, const char *path) {
    if (!path) return NULL;
    const char *s = path;
    char part[256];
    while (j && *s) {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        if (n >= sizeof part) return NULL;
        memcpy(part, s, n);
        part[n] = 0;
        if (j->type == RP_JSON_ARRAY) {
            if (n == 0 || n > 18) return NULL;
            size_t idx = 0;
            for (size_t k = 0; k < n; k++) {
                if (part[k] < '0' || part[k] > '9') return NULL;
                idx = idx * 10 + (size_t)(part[k] - '0');
            }
            j = rp_json_at(j, idx);
        } else j = rp_json_get(j, part);
        s += n;
        if (*s == '.') s++;
    }
    return j;
}

/* ---- builders ---- */

/* A new empty object. */
rp_json *rp_json_new_object(void) { return node_new(RP_JSON_OBJECT); }
/* A new empty array. */
rp_json *rp_json_new_array(void) { return node_new(RP_JSON_ARRAY); }

/* A new string node holding a copy of n bytes of s. */
rp_json *rp_json_new_stringn(const char *s, size_t n) {
    if (!s && n) return NULL;
    if (n == (size_t)-1) return NULL;
    rp_json *j = node_new(RP_JSON_STRING);
    char *c = malloc(n + 1);
    if (!j || !c) { free(j); free(c); return NULL; }
    if (n) memcpy(c, s, n);
    c[n] = 0;
    j->u.str.s = c;
    j->u.str.len = n;
    return j;
}

/* A new string node holding a copy of s (NULL gives null). */
rp_json *rp_json_new_string(const char *s) { return s ? rp_json_new_stringn(s, strlen(s)) : rp_json_new_null(); }

/* A new number node. */
rp_json *rp_json_new_number(double v) {
    rp_json *j = node_new(RP_JSON_NUMBER);
    if (j) j->u.num = v;
    return j;
}

/* A new boolean node (any non-zero v is true). */
rp_json *rp_json_new_bool(int v) {
    rp_json *j = node_new(RP_JSON_BOOL);
    if (j) j->u.b = v != 0;
    return j;
}

/* A new null node. */
rp_json *rp_json_new_null(void) { return node_new(RP_JSON_NULL); }

/* Set obj[key] = val, replacing (and freeing) an existing value; val is freed on failure. */
rp_status rp_json_set(rp_json *obj, const char *key, rp_json *val) {
    if (!val) return rp_fail(RP_ERR_NOMEM, "json: setting '%s': no value (allocation failed)", key ? key : "");
    if (!obj || obj->type != RP_JSON_OBJECT || !key) {
        rp_json_free(val);
        return rp_fail(RP_ERR_INVAL, "json: setting '%s' on a non-object", key ? key : "(null)");
    }
    for (size_t i = 0; i < obj->u.c.n; i++)
        if (strcmp(obj->u.c.keys[i], key) == 0) {
            rp_json_free(obj->u.c.items[i]);
            obj->u.c.items[i] = val;
            return RP_OK;
        }
    char *k = strdup(key);
    if (!k) { rp_json_free(val); return rp_fail(RP_ERR_NOMEM, "json: out of memory"); }
    rp_status st = container_add(obj, k, val);
    if (st != RP_OK) { free(k); rp_json_free(val); }
    return st;
}

/* Append val to arr; val is freed on failure. */
rp_status rp_json_push(rp_json *arr, rp_json *val) {
    if (!val) return rp_fail(RP_ERR_NOMEM, "json: push: no value (allocation failed)");
    if (!arr || arr->type != RP_JSON_ARRAY) { rp_json_free(val); return rp_fail(RP_ERR_INVAL, "json: push on a non-array"); }
    rp_status st = container_add(arr, NULL, val);
    if (st != RP_OK) rp_json_free(val);
    return st;
}

/* ---- writer ---- */

/* Append s as a quoted JSON string: control characters, '"' and '\' escaped; bytes that are not valid
 * UTF-8 become \ufffd so the output is always valid JSON. */
rp_status rp_json_quote(rp_buf *out, const char *s, size_t n) {
    static const char hexd[] = "0123456789abcdef";
    RP_TRY(rp_buf_append(out, "\"", 1));
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0, i = 0;                       /* bytes u[i-run, i) wait to be copied verbatim */
    while (i < n) {
        unsigned c = u[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x7F) { i++; run++; continue; }
        if (c >= 0x80) {
            size_t k = utf8_seq(u + i, n - i);
            if (k) { i += k; run += k; continue; }
        }
        RP_TRY(rp_buf_append(out, u + i - run, run));
        run = 0;
        char e[8];
        size_t el = 2;
        e[0] = '\\';
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        default:
            if (c >= 0x80) memcpy(e, "\\ufffd", 6);   /* invalid UTF-8 byte */
            else { e[1] = 'u'; e[2] = '0'; e[3] = '0'; e[4] = hexd[c >> 4]; e[5] = hexd[c & 15]; }
            el = 6;
        }
        RP_TRY(rp_buf_append(out, e, el));
        i++;
    }
    RP_TRY(rp_buf_append(out, u + i - run, run));
    return rp_buf_append(out, "\"", 1);
}

static rp_status write_number(rp_buf *out, double v) {
    if (!isfinite(v)) return rp_buf_append(out, "null", 4);
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        if (v == 0 && signbit(v)) return rp_buf_append(out, "-0", 2);
        char d[24], *e = d + sizeof d, *q = e;
        uint64_t u = (uint64_t)fabs(v);
        do { *--q = (char)('0' + u % 10); u /= 10; } while (u);
        if (v < 0) *--q = '-';
        return rp_buf_append(out, q, (size_t)(e - q));
    }
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.15g", v);          /* shortest of 15/16/17 digits that round-trips */
    if (strtod(tmp, NULL) != v) {
        snprintf(tmp, sizeof tmp, "%.16g", v);
        if (strtod(tmp, NULL) != v) snprintf(tmp, sizeof tmp, "%.17g", v);
    }
    return rp_buf_puts(out, tmp);
}

static rp_status write_indent(rp_buf *out, int pretty, int depth) {
    if (!pretty) return RP_OK;
    RP_TRY(rp_buf_append(out, "\n", 1));
    for (int k = 0; k < depth; k++) RP_TRY(rp_buf_append(out, "  ", 2));
    return RP_OK;
}

static rp_status write_value(const rp_json *j, rp_buf *out, int pretty, int depth) {
    if (depth > RP_JSON_MAX_DEPTH)
        return rp_fail(RP_ERR_RANGE, "json: writing a value nested deeper than %d", RP_JSON_MAX_DEPTH);
    switch (rp_json_typeof(j)) {
    case RP_JSON_NULL: return rp_buf_append(out, "null", 4);
    case RP_JSON_BOOL: return j->u.b ? rp_buf_append(out, "true", 4) : rp_buf_append(out, "false", 5);
    case RP_JSON_NUMBER: return write_number(out, j->u.num);
    case RP_JSON_STRING: return rp_json_quote(out, j->u.str.s, j->u.str.len);
    case RP_JSON_ARRAY: case RP_JSON_OBJECT: {
        int obj = j->type == RP_JSON_OBJECT;
        RP_TRY(rp_buf_append(out, obj ? "{" : "[", 1));
        for (size_t i = 0; i < j->u.c.n; i++) {
            if (i) RP_TRY(rp_buf_append(out, ",", 1));
            RP_TRY(write_indent(out, pretty, depth + 1));
            if (obj) {
                RP_TRY(rp_json_quote(out, j->u.c.keys[i], strlen(j->u.c.keys[i])));
                RP_TRY(rp_buf_append(out, pretty ? ": " : ":", pretty ? 2 : 1));
            }
            RP_TRY(write_value(j->u.c.items[i], out, pretty, depth + 1));
        }
        if (j->u.c.n) RP_TRY(write_indent(out, pretty, depth));
        return rp_buf_append(out, obj ? "}" : "]", 1);
    }
    }
    return rp_fail(RP_ERR_INVAL, "json: bad node type");
}

/* Serialize j (appending to out). */
rp_status rp_json_write(const rp_json *j, rp_buf *out, int pretty) {
    return write_value(j, out, pretty, 0);
}
