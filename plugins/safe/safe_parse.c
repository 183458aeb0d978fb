/* safe_parse.c: sentence splitting and the parsers of each SAFE step's model output. Every function takes
 * (pointer, length) of arbitrary bytes, never reads past len, and reports "nothing found" instead of failing
 * on messy text; only allocation failures are errors. */
#include "plugins/safe/safe_text.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

rp_status rp_safe_strlist_push(rp_safe_strlist *l, const char *s, size_t len) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **p = realloc(l->items, cap * sizeof *p);
        if (!p) return rp_fail(RP_ERR_NOMEM, "out of memory growing a string list to %zu items", cap);
        l->items = p;
        l->cap = cap;
    }
    char *c = malloc(len + 1);
    if (!c) return rp_fail(RP_ERR_NOMEM, "out of memory copying a %zu-byte string", len);
    if (len) memcpy(c, s, len);
    c[len] = 0;
    l->items[l->n++] = c;
    return RP_OK;
}

void rp_safe_strlist_free(rp_safe_strlist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = l->cap = 0;
}

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

/* Trim [*b, *e) of ASCII whitespace. */
static void trim(const char *t, size_t *b, size_t *e) {
    while (*b < *e && is_space((unsigned char)t[*b])) (*b)++;
    while (*e > *b && is_space((unsigned char)t[*e - 1])) (*e)--;
}

static int starts_with(const char *s, size_t n, const char *pre) {
    size_t m = strlen(pre);
    return n >= m && memcmp(s, pre, m) == 0;
}

/* Words that end with a period without ending a sentence (titles, months, a few Latin forms). */
static const char *const abbreviations[] = {
    "Mr", "Mrs", "Ms", "Dr", "Prof", "Sr", "Jr", "St", "Mt", "Ft", "Gen", "Col", "Lt", "Sgt", "Capt", "Gov",
    "Sen", "Rep", "Rev", "Hon", "Pres", "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct",
    "Nov", "Dec", "No", "Nos", "Vol", "vs", "approx", "al", "cf", "ca", "Fig", "Ph", "Mx", "Messrs", NULL,
};

/* Whether the word ending just before the period at t[dot] prevents a sentence break. */
static int period_is_abbreviation(const char *t, size_t start, size_t dot) {
    size_t w = dot;
    while (w > start && !is_space((unsigned char)t[w - 1]) && t[w - 1] != '(' && t[w - 1] != '"') w--;
    size_t n = dot - w;
    if (n == 0) return 0;
    if (n == 1 && isupper((unsigned char)t[w])) return 1;          /* an initial: "J. R. R. Tolkien" */
    if (memchr(t + w, '.', n)) return 1;                            /* "U.S.", "e.g.", "a.m." */
    for (const char *const *a = abbreviations; *a; a++)
        if (strlen(*a) == n && memcmp(*a, t + w, n) == 0) return 1;
    return 0;
}

static int is_closer(unsigned char c) { return c == '"' || c == '\'' || c == ')' || c == ']'; }

/* Whether a sentence may start at t[i]: a capital, a digit, a quote or bracket, or a non-ASCII byte. */
static int can_open_sentence(unsigned char c) {
    return isupper(c) || isdigit(c) || c == '"' || c == '\'' || c == '(' || c == '[' || c >= 0x80;
}

static rp_status push_sentence(const char *t, size_t b, size_t e, int skip, int *n_seen, rp_safe_strlist *out) {
    trim(t, &b, &e);
    if (b == e) return RP_OK;
    int first = (*n_seen)++ == 0;
    if (skip && (starts_with(t + b, e - b, "Sure") || starts_with(t + b, e - b, "Please") ||
                 (first && starts_with(t + b, e - b, "Here are"))))
        return RP_OK;
    return rp_safe_strlist_push(out, t + b, e - b);
}

rp_status rp_safe_split_sentences(const char *t, size_t len, int skip_boilerplate, rp_safe_strlist *out) {
    int n_seen = 0;
    size_t p = 0;
    while (p < len) {
        size_t pe = p;
        while (pe < len && t[pe] != '\n') pe++;
        size_t s = p;
        for (size_t i = p; i < pe; i++) {
            char c = t[i];
            if (c != '.' && c != '!' && c != '?') continue;
            size_t j = i + 1;
            while (j < pe && (t[j] == '.' || t[j] == '!' || t[j] == '?' || is_closer((unsigned char)t[j]))) j++;
            if (j < pe && !is_space((unsigned char)t[j])) continue;
            size_t k = j;
            while (k < pe && is_space((unsigned char)t[k])) k++;
            if (k < pe && !can_open_sentence((unsigned char)t[k])) continue;
            if (c == '.' && j == i + 1 && period_is_abbreviation(t, s, i)) continue;
            RP_TRY(push_sentence(t, s, j, skip_boilerplate, &n_seen, out));
            s = k;
            i = k > 0 ? k - 1 : k;
        }
        RP_TRY(push_sentence(t, s, pe, skip_boilerplate, &n_seen, out));
        p = pe + 1;
    }
    return RP_OK;
}

/* Items of lines opening with `bullet`; stops at the first unindented non-bullet line after an item. */
static rp_status parse_bullets(const char *t, size_t len, const char *bullet, rp_safe_strlist *out) {
    size_t bl = strlen(bullet), p = 0;
    while (p < len) {
        size_t e = p;
        while (e < len && t[e] != '\n') e++;
        size_t b = p, le = e;
        int indented = b < le && (t[b] == ' ' || t[b] == '\t');
        trim(t, &b, &le);
        if (le - b == bl - 1 && memcmp(t + b, bullet, bl - 1) == 0) {
            /* an empty item ("-" alone): nothing to keep */
        } else if (le - b >= bl && memcmp(t + b, bullet, bl) == 0) {
            size_t ib = b + bl, ie = le;
            trim(t, &ib, &ie);
            if (ib < ie) RP_TRY(rp_safe_strlist_push(out, t + ib, ie - ib));
        } else if (b < le && out->n > 0) {
            if (!indented) break;
            /* an indented continuation line: join it to the last item */
            char *last = out->items[out->n - 1];
            size_t ll = strlen(last), add = le - b;
            char *grown = realloc(last, ll + 1 + add + 1);
            if (!grown) return rp_fail(RP_ERR_NOMEM, "out of memory joining a fact line");
            grown[ll] = ' ';
            memcpy(grown + ll + 1, t + b, add);
            grown[ll + 1 + add] = 0;
            out->items[out->n - 1] = grown;
        }
        p = e + 1;
    }
    return RP_OK;
}

/* Items of lines opening with "N. " or "N) " (a numbered list); stops like parse_bullets. */
static rp_status parse_numbered(const char *t, size_t len, rp_safe_strlist *out) {
    size_t p = 0, before = out->n;
    while (p < len) {
        size_t e = p;
        while (e < len && t[e] != '\n') e++;
        size_t b = p, le = e, d;
        trim(t, &b, &le);
        for (d = b; d < le && d - b < 4 && isdigit((unsigned char)t[d]); d++) {}
        if (d > b && d + 1 < le && (t[d] == '.' || t[d] == ')') && t[d + 1] == ' ') {
            size_t ib = d + 2, ie = le;
            trim(t, &ib, &ie);
            if (ib < ie) RP_TRY(rp_safe_strlist_push(out, t + ib, ie - ib));
        } else if (b < le && out->n > before) {
            break;
        }
        p = e + 1;
    }
    return RP_OK;
}

rp_status rp_safe_parse_facts(const char *text, size_t len, rp_safe_strlist *out) {
    size_t before = out->n;
    RP_TRY(parse_bullets(text, len, "- ", out));
    if (out->n == before) RP_TRY(parse_bullets(text, len, "* ", out));
    if (out->n == before) RP_TRY(parse_numbered(text, len, out));
    return RP_OK;
}

static const char *find_sub(const char *t, size_t len, size_t from, const char *pat) {
    size_t m = strlen(pat);
    for (size_t i = from; i + m <= len; i++)
        if (memcmp(t + i, pat, m) == 0) return t + i;
    return NULL;
}

/* The content of the fenced block opening at t[a - 3] and closing at t[z]: a one-word opening line is a
 * language tag when a body follows; trimmed bounds go to *b, *e. */
static void block_content(const char *t, size_t a, size_t z, size_t *b, size_t *e) {
    size_t le = a;
    while (le < z && t[le] != '\n') le++;
    size_t tb = a, te = le, bb = le, be = z;
    trim(t, &tb, &te);
    trim(t, &bb, &be);
    int one_word = tb < te;
    for (size_t i = tb; i < te; i++)
        if (!(isalnum((unsigned char)t[i]) || t[i] == '_' || t[i] == '-' || t[i] == '+')) one_word = 0;
    *b = a;
    *e = z;
    if (one_word && bb < be) *b = bb, *e = be;
    trim(t, b, e);
}

rp_status rp_safe_parse_code_block(const char *t, size_t len, rp_buf *out, int *found) {
    rp_buf_clear(out);
    *found = 0;
    size_t from = 0;
    for (;;) {
        const char *open = find_sub(t, len, from, "```");
        if (!open) return RP_OK;
        size_t a = (size_t)(open - t) + 3;
        const char *close = find_sub(t, len, a, "```");
        if (!close) return RP_OK;
        size_t z = (size_t)(close - t), b, e;
        block_content(t, a, z, &b, &e);
        if (b < e) {
            RP_TRY(rp_buf_append(out, t + b, e - b));
            *found = 1;
            return RP_OK;
        }
        from = z + 3;   /* an empty block: look at the next one */
    }
}

rp_status rp_safe_parse_bracket(const char *t, size_t len, rp_buf *out, int *found) {
    rp_buf_clear(out);
    *found = 0;
    const char *o = memchr(t, '[', len);
    if (!o) return RP_OK;
    size_t a = (size_t)(o - t) + 1;
    const char *c = memchr(t + a, ']', len - a);
    if (!c) return RP_OK;
    size_t z = (size_t)(c - t);
    int pending_space = 0;
    for (size_t i = a; i < z; i++) {
        unsigned char ch = (unsigned char)t[i];
        if (ch < 0x80 && ispunct(ch)) continue;
        if (is_space(ch)) { pending_space = out->len > 0; continue; }
        if (pending_space) { RP_TRY(rp_buf_append(out, " ", 1)); pending_space = 0; }
        RP_TRY(rp_buf_append(out, &t[i], 1));
    }
    if (!out->data) RP_TRY(rp_buf_append(out, "", 0));
    *found = 1;
    return RP_OK;
}

const char *rp_safe_label_name(rp_safe_label l) {
    switch (l) {
    case RP_SAFE_UNPARSED: return "unparsed";
    case RP_SAFE_SUPPORTED: return "supported";
    case RP_SAFE_NOT_SUPPORTED: return "not_supported";
    case RP_SAFE_IRRELEVANT: return "irrelevant";
    case RP_SAFE_RELEVANT: return "relevant";
    }
    return "unknown";
}

/* Match the first bracket's content against two exact labels. */
static rp_safe_label bracket_label(const char *t, size_t len, const char *a, rp_safe_label la, const char *b,
                                   rp_safe_label lb) {
    rp_buf tmp = {0};
    int found = 0;
    rp_safe_label r = RP_SAFE_UNPARSED;
    if (rp_safe_parse_bracket(t, len, &tmp, &found) == RP_OK && found) {
        if (strcmp(tmp.data, a) == 0) r = la;
        else if (strcmp(tmp.data, b) == 0) r = lb;
    }
    rp_buf_free(&tmp);
    return r;
}

rp_safe_label rp_safe_parse_relevance(const char *text, size_t len) {
    return bracket_label(text, len, "Foo", RP_SAFE_RELEVANT, "Not Foo", RP_SAFE_IRRELEVANT);
}

rp_safe_label rp_safe_parse_rating(const char *text, size_t len) {
    return bracket_label(text, len, "Supported", RP_SAFE_SUPPORTED, "Not Supported", RP_SAFE_NOT_SUPPORTED);
}
