/* tok_spm.c: SentencePiece-style BPE as llama.cpp (and llama2.c) apply it: the text, with a dummy leading
 * space when asked and spaces written U+2581 for GGUF vocabularies, starts as one symbol per UTF-8
 * character; adjacent pairs whose concatenation is a vocabulary token merge highest score first (ties:
 * leftmost) through a heap (a malformed byte is a character of its own); a final symbol that is not a token (an unknown character) is written as its
 * bytes' <0xNN> tokens, or <unk> when the vocabulary has no byte tokens.
 * Symbols are substrings of one working buffer, so a pair's text is a slice of it: no copies. */
#include "model/tokenizer_impl.h"
#include "model/unicode.h"
#include <stdlib.h>
#include <string.h>

/* Bytes of the character at buf[i] (of n left): a valid UTF-8 sequence, else a single byte. llama.cpp trusts
 * the lead byte alone, which lets a stray lead byte swallow part of an escaped space; validating keeps
 * decode(encode(x)) == x for any bytes and changes nothing for valid UTF-8. */
static size_t char_len(const char *buf, size_t i, size_t n) {
    int l;
    rp_utf8_decode((const unsigned char *)buf + i, n - i, &l);
    return (size_t)l;
}

static rp_status try_pair(const rp_tokenizer *t, const char *buf, rp_tok_work *w, int left, int right) {
    if (left < 0 || right < 0) return RP_OK;
    const rp_tok_sym *l = &w->sym[left], *r = &w->sym[right];
    int id = rp_tok_lookup(t, buf + l->start, l->n + r->n);
    if (id < 0 || id >= t->n_vocab) return RP_OK;
    return rp_tok_heap_push(&w->heap, (rp_tok_pair){-(double)t->score[id], left, right, l->n + r->n, id});
}

/* Merge the symbols of buf[a, b) and append their ids. */
static rp_status spm_chunk(const rp_tokenizer *t, const char *buf, size_t a, size_t b, rp_tok_work *w, rp_tokens *out) {
    rp_status st = rp_tok_work_reserve(w, b - a);
    if (st != RP_OK) return st;
    int ns = 0;
    for (size_t i = a; i < b;) {
        size_t l = char_len(buf, i, b);
        w->sym[ns] = (rp_tok_sym){ns - 1, -1, i, l, -1};
        if (ns > 0) w->sym[ns - 1].next = ns;
        ns++;
        i += l;
    }
    w->heap.n = 0;
    for (int i = 0; i + 1 < ns && st == RP_OK; i++) st = try_pair(t, buf, w, i, i + 1);
    while (st == RP_OK && w->heap.n) {
        rp_tok_pair p = rp_tok_heap_pop(&w->heap);
        rp_tok_sym *l = &w->sym[p.left], *r = &w->sym[p.right];
        if (l->n == 0 || r->n == 0 || l->next != p.right || l->n + r->n != p.size) continue;   /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) w->sym[r->next].prev = p.left;
        st = try_pair(t, buf, w, l->prev, p.left);
        if (st == RP_OK) st = try_pair(t, buf, w, p.left, l->next);
    }
    for (int i = ns ? 0 : -1; i >= 0 && st == RP_OK; i = w->sym[i].next) {
        const rp_tok_sym *s = &w->sym[i];
        int id = rp_tok_lookup(t, buf + s->start, s->n);
        if (id >= 0 && id < t->n_vocab) { st = rp_tokens_push(out, id); continue; }
        for (size_t k = s->start; k < s->start + s->n && st == RP_OK; k++) {
            int32_t by = t->byte_tok[(unsigned char)buf[k]];
            if (by < 0) by = t->unk;
            if (by >= 0) st = rp_tokens_push(out, by);
            if (t->byte_tok[(unsigned char)buf[k]] < 0) break;   /* <unk> once for the whole character */
        }
    }
    return st;
}

/* Encode one span of ordinary text with SentencePiece-style BPE and append ids. */
rp_status rp_spm_encode(const rp_tokenizer *t, const char *text, size_t len, int prefix, rp_tok_work *w, rp_tokens *out) {
    /* working text: prefix + text, spaces escaped when the vocabulary uses U+2581 */
    size_t nsp = 0;
    if (t->escape_spaces) for (size_t i = 0; i < len; i++) nsp += text[i] == ' ';
    size_t cap = len + 2 * nsp + 3 + (prefix ? 3 : 0);
    char *buf = malloc(cap);
    if (!buf) return rp_fail(RP_ERR_NOMEM, "tokenizer: out of memory for %zu bytes", cap);
    size_t n = 0;
    const char *sp = t->escape_spaces ? "\xE2\x96\x81" : " ";
    size_t spn = t->escape_spaces ? 3 : 1;
    if (prefix) { memcpy(buf, sp, spn); n = spn; }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') { memcpy(buf + n, sp, spn); n += spn; }
        else buf[n++] = text[i];
    }
    rp_status st = RP_OK;
    /* Independent chunks: a merge result is a vocabulary token, so no symbol can ever span two adjacent bytes
     * that appear together in no token; cutting there gives the same ids with small heaps. */
    size_t a = 0;
    for (size_t i = 0; i < n && st == RP_OK;) {
        i += char_len(buf, i, n);   /* the next symbol starts here, exactly as spm_chunk will cut */
        if (i < n) {
            unsigned pr = (unsigned)(unsigned char)buf[i - 1] << 8 | (unsigned char)buf[i];
            if (t->pairs[pr >> 3] & (1u << (pr & 7))) continue;
        }
        st = spm_chunk(t, buf, a, i, w, out);
        a = i;
    }
    free(buf);
    return st;
}
