/* tok_bpe.c: byte-level BPE (GPT-2 style) as llama.cpp applies it to "gpt2" GGUF vocabularies.
 * 1. Pre-tokenize: PRE_DIGITS_GPT2 first cuts every \p{N} code point into its own span; then GPT-2's pattern
 *    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ splits each span into words
 *    (hand-written matcher, no regex engine; lookahead never crosses a span's end).
 * 2. Each word's bytes start as one symbol each (the token of the byte's printable character); adjacent pairs
 *    merge lowest rank first (ties: leftmost), through a heap, until no listed pair remains.
 * Merges are keyed by token ids: a merge result missing from the vocabulary gets a pseudo id (>= n_vocab)
 * so that later merges can build on it; a pseudo id left at the end is emitted as its bytes' tokens.
 * A byte whose character is missing from the vocabulary (SmolLM2 lacks 0xC0, 0xC1 and 0xF5..0xFF, which never
 * occur in UTF-8) is dropped, as llama.cpp drops it: <unk> would be a control token in the middle of text. */
#include "model/tokenizer_impl.h"
#include "model/unicode.h"
#include <stdlib.h>
#include <string.h>

/* GPT-2's printable stand-ins: bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for themselves; the other 68
 * bytes map, in increasing order, to U+0100 and up. */
static int self_char(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

/* The printable character byte-level BPE writes for byte b. */
uint32_t rp_bpe_byte_char(int b) {
    if (self_char(b)) return (uint32_t)b;
    int k = 0;
    for (int x = 0; x < b; x++) k += !self_char(x);
    return 0x100u + (uint32_t)k;
}

/* The byte a printable character stands for, -1 when it is not one of the 256. */
int rp_bpe_char_byte(uint32_t cp) {
    if (cp < 0x100) return self_char((int)cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68) return -1;
    int k = (int)(cp - 0x100);
    for (int x = 0; x < 256; x++)
        if (!self_char(x) && k-- == 0) return x;
    return -1;
}

static uint64_t mix(uint64_t k) { k ^= k >> 33; k *= 0xff51afd7ed558ccdull; k ^= k >> 33; return k; }

/* BPE merge of two ids: 1 and rank / result when the pair merges. */
int rp_tok_merge(const rp_tokenizer *t, int32_t a, int32_t b, int32_t *rank, int32_t *res) {
    if (!t->mcap || a < 0 || b < 0) return 0;
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t m = t->mcap - 1, h = (size_t)mix(key) & m;
    while (t->mkey[h] != ~0ull) {
        if (t->mkey[h] == key) { *rank = t->mrank[h]; *res = t->mres[h]; return 1; }
        h = (h + 1) & m;
    }
    return 0;
}

/* Append a pseudo token (a merge result missing from the vocabulary) with text a+b. */
static rp_status add_pseudo(rp_tokenizer *t, const char *a, size_t na, const char *b, size_t nb, int32_t *id) {
    size_t end = t->n_total ? t->off[t->n_total - 1] + t->len[t->n_total - 1] : 0;
    char *arena = realloc(t->arena, end + na + nb + 1);
    size_t *off = realloc(t->off, ((size_t)t->n_total + 1) * sizeof *off);
    uint32_t *len = off ? realloc(t->len, ((size_t)t->n_total + 1) * sizeof *len) : NULL;
    if (arena) t->arena = arena;
    if (off) t->off = off;
    if (len) t->len = len;
    if (!arena || !off || !len) return rp_fail(RP_ERR_NOMEM, "tokenizer: out of memory");
    /* a and b are the caller's copies, never inside the arena that realloc may move */
    memcpy(t->arena + end, a, na);
    memcpy(t->arena + end + na, b, nb);
    t->off[t->n_total] = end;
    t->len[t->n_total] = (uint32_t)(na + nb);
    *id = t->n_total++;
    return RP_OK;
}

/* Build the merge table from tokenizer.ggml.merges ("left right" strings, rank = position). */
rp_status rp_bpe_load_merges(rp_tokenizer *t, const rp_model_file *f) {
    const char *path = rp_model_file_path(f);
    int64_t n = rp_model_file_meta_array_len(f, "tokenizer.ggml.merges");
    if (n < 0) return rp_fail(RP_ERR_FORMAT, "%s: missing metadata tokenizer.ggml.merges (needed by a gpt2 tokenizer)", path);
    if (n > (1 << 24)) return rp_fail(RP_ERR_FORMAT, "%s: tokenizer.ggml.merges has %lld entries", path, (long long)n);
    size_t cap = 1024;
    while (cap < (size_t)n * 2 + 1) cap *= 2;
    t->mkey = malloc(cap * sizeof *t->mkey);
    t->mrank = malloc(cap * sizeof *t->mrank);
    t->mres = malloc(cap * sizeof *t->mres);
    if (!t->mkey || !t->mrank || !t->mres) return rp_fail(RP_ERR_NOMEM, "%s: out of memory for %lld merges", path, (long long)n);
    memset(t->mkey, 0xff, cap * sizeof *t->mkey);
    t->mcap = cap;
    RP_TRY(rp_tok_hash_build(t, (size_t)n));   /* room for one pseudo token per merge */
    char *tmp = NULL;
    size_t tmpcap = 0;
    rp_status st = RP_OK;
    for (int64_t i = 0; i < n && st == RP_OK; i++) {
        size_t len;
        const char *s = rp_model_file_meta_array_string(f, "tokenizer.ggml.merges", i, &len);
        if (!s) { st = rp_fail(RP_ERR_FORMAT, "%s: tokenizer.ggml.merges is not an array of strings", path); break; }
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp) { st = rp_fail(RP_ERR_FORMAT, "%s: tokenizer.ggml.merges[%lld] = \"%.*s\" is not \"left right\"", path, (long long)i, (int)(len < 64 ? len : 64), s); break; }
        size_t na = (size_t)(sp - s), nb = len - na - 1;
        int32_t a = rp_tok_lookup(t, s, na), b = rp_tok_lookup(t, sp + 1, nb);
        if (a < 0 || b < 0) continue;           /* can never apply: no symbol carries that text */
        if (tmpcap < len) {
            char *p = realloc(tmp, len);
            if (!p) { st = rp_fail(RP_ERR_NOMEM, "%s: out of memory", path); break; }
            tmp = p;
            tmpcap = len;
        }
        memcpy(tmp, s, na);
        memcpy(tmp + na, sp + 1, nb);
        int32_t r = rp_tok_lookup(t, tmp, na + nb);
        if (r < 0) {
            st = add_pseudo(t, tmp, na, tmp + na, nb, &r);
            if (st != RP_OK) break;
            rp_tok_hash_insert(t, r);
        }
        uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
        size_t m = cap - 1, h = (size_t)mix(key) & m;
        while (t->mkey[h] != ~0ull && t->mkey[h] != key) h = (h + 1) & m;
        if (t->mkey[h] == key) continue;        /* a duplicate pair keeps its first (best) rank */
        t->mkey[h] = key;
        t->mrank[h] = (int32_t)i;
        t->mres[h] = r;
    }
    free(tmp);
    return st;
}

/* Merge the bytes of one word and append its ids. */
static rp_status bpe_word(const rp_tokenizer *t, const unsigned char *s, size_t n, rp_tok_work *w, rp_tokens *out) {
    if (n == 1)   /* the common case of punctuation and spaces */
        return t->byte_tok[s[0]] >= 0 ? rp_tokens_push(out, t->byte_tok[s[0]]) : RP_OK;
    RP_TRY(rp_tok_work_reserve(w, n));
    rp_tok_sym *sym = w->sym;
    for (size_t i = 0; i < n; i++)
        sym[i] = (rp_tok_sym){(int)i - 1, i + 1 < n ? (int)i + 1 : -1, i, 1, t->byte_tok[s[i]]};
    w->heap.n = 0;
    int32_t rank, res;
    for (size_t i = 0; i + 1 < n; i++)
        if (rp_tok_merge(t, sym[i].id, sym[i + 1].id, &rank, &res))
            RP_TRY(rp_tok_heap_push(&w->heap, (rp_tok_pair){rank, (int)i, (int)i + 1, 2, res}));
    while (w->heap.n) {
        rp_tok_pair p = rp_tok_heap_pop(&w->heap);
        rp_tok_sym *l = &sym[p.left], *r = &sym[p.right];
        if (l->n == 0 || r->n == 0 || l->next != p.right || l->n + r->n != p.size) continue;   /* stale */
        l->id = p.id;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = p.left;
        if (l->prev >= 0 && rp_tok_merge(t, sym[l->prev].id, l->id, &rank, &res))
            RP_TRY(rp_tok_heap_push(&w->heap, (rp_tok_pair){rank, l->prev, p.left, sym[l->prev].n + l->n, res}));
        if (l->next >= 0 && rp_tok_merge(t, l->id, sym[l->next].id, &rank, &res))
            RP_TRY(rp_tok_heap_push(&w->heap, (rp_tok_pair){rank, p.left, l->next, l->n + sym[l->next].n, res}));
    }
    for (int i = 0; i >= 0; i = sym[i].next) {
        if (sym[i].id >= 0 && sym[i].id < t->n_vocab) { RP_TRY(rp_tokens_push(out, sym[i].id)); continue; }
        for (size_t k = sym[i].start; k < sym[i].start + sym[i].n; k++)   /* pseudo or missing: byte by byte */
            if (t->byte_tok[s[k]] >= 0) RP_TRY(rp_tokens_push(out, t->byte_tok[s[k]]));
    }
    return RP_OK;
}

/* The code points of one span, with classes; OOR marks "past the span's end" for the lookaheads. */
enum { OOR = 8 };
typedef struct cps { uint32_t *cp; uint8_t *cls; size_t *off; size_t n, cap; } cps;

static rp_status cps_fill(cps *c, const unsigned char *s, size_t len) {
    if (c->cap < len + 1) {
        size_t cap = len + 1;
        uint32_t *cp = realloc(c->cp, cap * sizeof *cp);
        if (cp) c->cp = cp;
        uint8_t *cls = realloc(c->cls, cap);
        if (cls) c->cls = cls;
        size_t *off = realloc(c->off, cap * sizeof *off);
        if (off) c->off = off;
        if (!cp || !cls || !off) return rp_fail(RP_ERR_NOMEM, "tokenizer: out of memory for %zu code points", cap);
        c->cap = cap;
    }
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int l;
        uint32_t cp = rp_utf8_decode(s + i, len - i, &l);
        c->cp[n] = cp;
        c->cls[n] = (uint8_t)rp_unicode_class(cp);
        c->off[n] = i;
        n++;
        i += (size_t)l;
    }
    c->off[n] = len;
    c->n = n;
    return RP_OK;
}

/* GPT-2's pattern over code points [a, b): emit each word through bpe_word. */
static rp_status gpt2_split(const rp_tokenizer *t, const unsigned char *s, const cps *c, size_t a, size_t b, rp_tok_work *w, rp_tokens *out) {
    const uint32_t *cp = c->cp;
    const uint8_t *cls = c->cls;
    const int LNS = RP_UC_LETTER | RP_UC_NUMBER | RP_UC_SPACE;
    size_t i = a;
    while (i < b) {
        size_t j = i + 1;
        uint32_t ch = cp[i];
        if (ch == '\'' && i + 1 < b) {
            uint32_t n1 = cp[i + 1], n2 = i + 2 < b ? cp[i + 2] : 0;
            if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') j = i + 2;
            else if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) j = i + 3;
        }
        if (j == i + 1) {
            int f2 = ch == ' ' ? (i + 1 < b ? cls[i + 1] : OOR) : cls[i];
            size_t k = i + (ch == ' ');
            if (f2 & RP_UC_LETTER) { while (k < b && (cls[k] & RP_UC_LETTER)) k++; j = k; }
            else if (f2 & RP_UC_NUMBER) { while (k < b && (cls[k] & RP_UC_NUMBER)) k++; j = k; }
            else if (!(f2 & (LNS | OOR))) { while (k < b && !(cls[k] & LNS)) k++; j = k; }
            else {
                k = i;
                while (k < b && (cls[k] & RP_UC_SPACE)) k++;
                if (k - i > 1 && k < b) j = k - 1;      /* \s+(?!\S): leave the last space to the next word */
                else if (k > i) j = k;                  /* \s+ */
            }
        }
        RP_TRY(bpe_word(t, s + c->off[i], c->off[j] - c->off[i], w, out));
        i = j;
    }
    return RP_OK;
}

/* Encode one span of ordinary text with byte-level BPE and append ids. */
rp_status rp_bpe_encode(const rp_tokenizer *t, const char *text, size_t len, rp_tok_work *w, rp_tokens *out) {
    const unsigned char *s = (const unsigned char *)text;
    cps c = {0};
    rp_status st = cps_fill(&c, s, len);
    if (st == RP_OK && t->pre == PRE_DIGITS_GPT2) {
        size_t a = 0;
        for (size_t i = 0; i < c.n && st == RP_OK; i++) {
            if (!(c.cls[i] & RP_UC_NUMBER)) continue;
            if (i > a) st = gpt2_split(t, s, &c, a, i, w, out);
            if (st == RP_OK) st = gpt2_split(t, s, &c, i, i + 1, w, out);
            a = i + 1;
        }
        if (st == RP_OK && c.n > a) st = gpt2_split(t, s, &c, a, c.n, w, out);
    } else if (st == RP_OK) {
        st = gpt2_split(t, s, &c, 0, c.n, w, out);
    }
    free(c.cp); free(c.cls); free(c.off);
    return st;
}
