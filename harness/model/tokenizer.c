/* tokenizer.c: loading tokenizers (from a GGUF's tokenizer.ggml.* keys or a llama2.c tokenizer.bin), the
 * vocabulary hash, special-token partitioning, encode dispatch, decode and streaming pieces.
 * The merge algorithms live in tok_bpe.c and tok_spm.c, chat formatting in chat.c.
 * Invariant: after loading nothing changes, so every function here is safe to call from several threads. */
#include "model/tokenizer_impl.h"
#include "model/unicode.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- id arrays ---- */

/* Append one id. */
rp_status rp_tokens_push(rp_tokens *t, int32_t id) {
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        int32_t *p = realloc(t->ids, cap * sizeof *p);
        if (!p) return rp_fail(RP_ERR_NOMEM, "out of memory for %zu token ids", cap);
        t->ids = p;
        t->cap = cap;
    }
    t->ids[t->n++] = id;
    return RP_OK;
}

/* Release the memory (the array is empty and reusable afterwards). */
void rp_tokens_free(rp_tokens *t) { free(t->ids); t->ids = NULL; t->n = t->cap = 0; }

/* ---- the merge heap and scratch space ---- */

static int pair_less(const rp_tok_pair *a, const rp_tok_pair *b) {
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

/* Push a candidate merge. */
rp_status rp_tok_heap_push(rp_tok_heap *h, rp_tok_pair p) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        rp_tok_pair *a = realloc(h->a, cap * sizeof *a);
        if (!a) return rp_fail(RP_ERR_NOMEM, "tokenizer: out of memory");
        h->a = a;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_less(&p, &h->a[parent])) break;
        h->a[i] = h->a[parent];
        i = parent;
    }
    h->a[i] = p;
    return RP_OK;
}

/* Pop the best candidate (the heap must not be empty). */
rp_tok_pair rp_tok_heap_pop(rp_tok_heap *h) {
    rp_tok_pair top = h->a[0], last = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && pair_less(&h->a[c + 1], &h->a[c])) c++;
        if (!pair_less(&h->a[c], &last)) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n) h->a[i] = last;
    return top;
}

/* Make room for n symbols. */
rp_status rp_tok_work_reserve(rp_tok_work *w, size_t n) {
    if (n <= w->cap) return RP_OK;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < n) cap *= 2;
    rp_tok_sym *s = realloc(w->sym, cap * sizeof *s);
    if (!s) return rp_fail(RP_ERR_NOMEM, "tokenizer: out of memory for %zu symbols", cap);
    w->sym = s;
    w->cap = cap;
    return RP_OK;
}

/* Release the scratch space. */
void rp_tok_work_free(rp_tok_work *w) { free(w->sym); free(w->heap.a); memset(w, 0, sizeof *w); }

/* ---- vocabulary ---- */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
    return h ^ (h >> 29);
}

/* Token id of a text (ids >= n_vocab are pseudo tokens), -1 when absent. */
int rp_tok_lookup(const rp_tokenizer *t, const char *s, size_t n) {
    size_t m = t->hcap - 1, h = (size_t)hash_bytes(s, n) & m;
    for (;;) {
        int32_t id = t->hidx[h];
        if (id < 0) return -1;
        if (t->len[id] == n && memcmp(t->arena + t->off[id], s, n) == 0) return id;
        h = (h + 1) & m;
    }
}

/* Insert id under its text; a later id with the same text replaces the earlier one (as llama.cpp does). */
void rp_tok_hash_insert(rp_tokenizer *t, int32_t id) {
    const char *s = t->arena + t->off[id];
    size_t n = t->len[id], m = t->hcap - 1, h = (size_t)hash_bytes(s, n) & m;
    for (;;) {
        int32_t o = t->hidx[h];
        if (o < 0) { t->hidx[h] = id; return; }
        if (t->len[o] == n && memcmp(t->arena + t->off[o], s, n) == 0) { t->hidx[h] = id; return; }
        h = (h + 1) & m;
    }
}

static rp_tokenizer *tok_new(void) {
    rp_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->bos = t->eos = t->unk = -1;
    for (int i = 0; i < 256; i++) t->byte_tok[i] = -1;
    return t;
}

/* Free; NULL is fine. */
void rp_tokenizer_free(rp_tokenizer *t) {
    if (!t) return;
    free(t->arena); free(t->off); free(t->len); free(t->score); free(t->type); free(t->eog);
    free(t->hidx); free(t->mkey); free(t->mrank); free(t->mres); free(t->special);
    free(t->dec); free(t->doff); free(t->pairs); free(t->dlen); free(t->chat_system);
    free(t);
}

/* Allocate the per-token arrays for n tokens whose texts total bytes bytes. */
static rp_status alloc_vocab(rp_tokenizer *t, int n, size_t bytes, const char *name) {
    t->n_vocab = t->n_total = n;
    t->arena = malloc(bytes ? bytes : 1);
    t->off = malloc((size_t)n * sizeof *t->off);
    t->len = malloc((size_t)n * sizeof *t->len);
    t->score = calloc((size_t)n, sizeof *t->score);
    t->type = malloc((size_t)n);
    t->eog = calloc((size_t)n, 1);
    if (!t->arena || !t->off || !t->len || !t->score || !t->type || !t->eog)
        return rp_fail(RP_ERR_NOMEM, "%s: out of memory for %d tokens", name, n);
    memset(t->type, TT_NORMAL, (size_t)n);
    return RP_OK;
}

/* Whether text is a byte-fallback piece "<0xNN>"; *b gets the byte. */
static int parse_byte_piece(const char *s, size_t n, int *b) {
    if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return 0;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return 0;
        v = v * 16 + d;
    }
    *b = v;
    return 1;
}

/* Specials sort longest text first (then by id) so that the partition prefers the longest match. */
typedef struct len_id { uint32_t len; int32_t id; } len_id;
static int cmp_special_len(const void *a, const void *b) {
    const len_id *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* (Re)build the text hash with room for extra more entries: every id but control and user-defined ones. */
rp_status rp_tok_hash_build(rp_tokenizer *t, size_t extra) {
    size_t cap = 1024;
    while (cap < ((size_t)t->n_total + extra) * 2 + 1) cap *= 2;
    free(t->hidx);
    t->hidx = malloc(cap * sizeof *t->hidx);
    if (!t->hidx) return rp_fail(RP_ERR_NOMEM, "tokenizer: out of memory for the vocabulary hash");
    t->hcap = cap;
    memset(t->hidx, 0xff, cap * sizeof *t->hidx);
    for (int i = 0; i < t->n_total; i++)
        if (i >= t->n_vocab || (t->type[i] != TT_CONTROL && t->type[i] != TT_USER)) rp_tok_hash_insert(t, i);
    return RP_OK;
}

/* Everything derived from texts and types: hash, specials, byte tokens, decoded pieces, eog flags. */
static rp_status finish(rp_tokenizer *t, const char *name) {
    RP_TRY(rp_tok_hash_build(t, 0));
    int nspecial = 0;
    for (int i = 0; i < t->n_vocab; i++)
        if ((t->type[i] == TT_CONTROL || t->type[i] == TT_USER) && t->len[i]) nspecial++;
    free(t->special);
    t->special = malloc((size_t)(nspecial ? nspecial : 1) * sizeof *t->special);
    len_id *tmp = malloc((size_t)(nspecial ? nspecial : 1) * sizeof *tmp);
    if (!t->special || !tmp) { free(tmp); return rp_fail(RP_ERR_NOMEM, "%s: out of memory", name); }
    t->nspecial = 0;
    for (int i = 0; i < t->n_vocab; i++)
        if ((t->type[i] == TT_CONTROL || t->type[i] == TT_USER) && t->len[i]) {
            tmp[t->nspecial++] = (len_id){t->len[i], i};
            t->special_first[(unsigned char)t->arena[t->off[i]]] = 1;
        }
    qsort(tmp, (size_t)t->nspecial, sizeof *tmp, cmp_special_len);
    for (int k = 0; k < t->nspecial; k++) t->special[k] = tmp[k].id;
    free(tmp);

    /* SPM: which adjacent byte pairs occur inside some token (a merge can never join across any other) */
    if (t->kind == RP_TOKENIZER_SPM) {
        free(t->pairs);
        t->pairs = calloc(65536 / 8, 1);
        if (!t->pairs) return rp_fail(RP_ERR_NOMEM, "%s: out of memory", name);
        for (int i = 0; i < t->n_total; i++) {
            if (i < t->n_vocab && (t->type[i] == TT_CONTROL || t->type[i] == TT_USER)) continue;
            const unsigned char *s = (const unsigned char *)t->arena + t->off[i];
            for (uint32_t k = 1; k < t->len[i]; k++) {
                unsigned pr = (unsigned)s[k - 1] << 8 | s[k];
                t->pairs[pr >> 3] |= (uint8_t)(1u << (pr & 7));
            }
        }
    }

    /* byte tokens */
    for (int b = 0; b < 256; b++) {
        if (t->kind == RP_TOKENIZER_BPE) {
            char u[4];
            uint32_t cp = rp_bpe_byte_char(b);
            int n = cp < 0x80 ? (u[0] = (char)cp, 1) : (u[0] = (char)(0xC0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3F)), 2);
            t->byte_tok[b] = rp_tok_lookup(t, u, (size_t)n);
            if (t->byte_tok[b] >= t->n_vocab) t->byte_tok[b] = -1;
        } else {
            char p[7];
            snprintf(p, sizeof p, "<0x%02X>", b);
            t->byte_tok[b] = rp_tok_lookup(t, p, 6);
        }
    }

    /* decoded bytes of every real id; decoding never lengthens a text (U+2581 -> ' ', a BPE character -> its
     * byte, "<0xNN>" -> one byte), so the texts' total size bounds the buffer */
    size_t total = 0;
    for (int i = 0; i < t->n_vocab; i++) total += t->len[i];
    t->dec = malloc(total ? total : 1);
    t->doff = malloc((size_t)t->n_vocab * sizeof *t->doff);
    t->dlen = malloc((size_t)t->n_vocab * sizeof *t->dlen);
    if (!t->dec || !t->doff || !t->dlen) return rp_fail(RP_ERR_NOMEM, "%s: out of memory", name);
    size_t pos = 0;
    for (int i = 0; i < t->n_vocab; i++) {
        const unsigned char *s = (const unsigned char *)t->arena + t->off[i];
        size_t n = t->len[i], start = pos;
        int b;
        if (t->type[i] == TT_CONTROL || t->type[i] == TT_USER) {
            memcpy(t->dec + pos, s, n);
            pos += n;
        } else if (t->kind == RP_TOKENIZER_SPM && t->type[i] == TT_BYTE && parse_byte_piece((const char *)s, n, &b)) {
            t->dec[pos++] = (char)b;
        } else if (t->kind == RP_TOKENIZER_SPM) {
            for (size_t k = 0; k < n;) {
                if (t->escape_spaces && k + 3 <= n && s[k] == 0xE2 && s[k + 1] == 0x96 && s[k + 2] == 0x81) { t->dec[pos++] = ' '; k += 3; }
                else t->dec[pos++] = (char)s[k++];
            }
        } else {
            for (size_t k = 0; k < n;) {
                int l;
                uint32_t cp = rp_utf8_decode(s + k, n - k, &l);
                int byte = rp_bpe_char_byte(cp);
                if (byte >= 0) t->dec[pos++] = (char)byte;
                else { memcpy(t->dec + pos, s + k, (size_t)l); pos += (size_t)l; }
                k += (size_t)l;
            }
        }
        t->doff[i] = start;
        t->dlen[i] = (uint32_t)(pos - start);
    }

    /* end of generation */
    static const char *eog_names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                      "<|end_of_text|>", "<|eom_id|>", "</s>", "<EOT>"};
    if (t->eos >= 0) t->eog[t->eos] = 1;
    for (int k = 0; k < t->nspecial; k++) {
        int id = t->special[k];
        for (size_t j = 0; j < sizeof eog_names / sizeof eog_names[0]; j++)
            if (t->len[id] == strlen(eog_names[j]) && memcmp(t->arena + t->off[id], eog_names[j], t->len[id]) == 0) t->eog[id] = 1;
    }
    return RP_OK;
}

/* Read an optional id key into *out, checking its range. */
static rp_status meta_id(const rp_model_file *f, const char *key, int n, int *out) {
    int64_t v;
    if (rp_model_file_meta_type(f, key) == RP_META_NONE) return RP_OK;
    if (!rp_model_file_meta_int(f, key, &v)) return rp_fail(RP_ERR_FORMAT, "%s: metadata %s is not an integer", rp_model_file_path(f), key);
    if (v < -1 || v >= n) return rp_fail(RP_ERR_FORMAT, "%s: metadata %s = %lld outside the vocabulary (%d tokens)", rp_model_file_path(f), key, (long long)v, n);
    *out = (int)v;
    return RP_OK;
}

static int meta_flag(const rp_model_file *f, const char *key, int def) {
    int64_t v;
    return rp_model_file_meta_int(f, key, &v) ? v != 0 : def;
}

static rp_status load_gguf(rp_tokenizer *t, const rp_model_file *f) {
    const char *path = rp_model_file_path(f);
    const char *model = rp_model_file_meta_string(f, "tokenizer.ggml.model");
    if (!model) return rp_fail(RP_ERR_FORMAT, "%s: missing metadata tokenizer.ggml.model", path);
    if (strcmp(model, "gpt2") == 0) t->kind = RP_TOKENIZER_BPE;
    else if (strcmp(model, "llama") == 0) t->kind = RP_TOKENIZER_SPM;
    else return rp_fail(RP_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model = \"%s\" (supported: gpt2, llama)", path, model);
    int64_t n = rp_model_file_meta_array_len(f, "tokenizer.ggml.tokens");
    if (n < 1 || n > (1 << 24)) return rp_fail(RP_ERR_FORMAT, "%s: tokenizer.ggml.tokens: %s (%lld entries)", path,
                                              n < 0 ? "missing or not an array" : "bad vocabulary size", (long long)n);
    size_t bytes = 0, len;
    for (int64_t i = 0; i < n; i++) {
        if (!rp_model_file_meta_array_string(f, "tokenizer.ggml.tokens", i, &len))
            return rp_fail(RP_ERR_FORMAT, "%s: tokenizer.ggml.tokens is not an array of strings", path);
        if (len > (1u << 20)) return rp_fail(RP_ERR_FORMAT, "%s: tokenizer.ggml.tokens[%lld] is %zu bytes long", path, (long long)i, len);
        bytes += len;
    }
    RP_TRY(alloc_vocab(t, (int)n, bytes, path));
    size_t pos = 0;
    for (int64_t i = 0; i < n; i++) {
        const char *s = rp_model_file_meta_array_string(f, "tokenizer.ggml.tokens", i, &len);
        memcpy(t->arena + pos, s, len);
        t->off[i] = pos;
        t->len[i] = (uint32_t)len;
        pos += len;
    }
    if (rp_model_file_meta_type(f, "tokenizer.ggml.token_type") != RP_META_NONE) {
        if (rp_model_file_meta_array_len(f, "tokenizer.ggml.token_type") != n)
            return rp_fail(RP_ERR_FORMAT, "%s: tokenizer.ggml.token_type has %lld entries, tokens has %lld", path,
                           (long long)rp_model_file_meta_array_len(f, "tokenizer.ggml.token_type"), (long long)n);
        for (int64_t i = 0; i < n; i++) {
            int64_t v;
            if (!rp_model_file_meta_array_int(f, "tokenizer.ggml.token_type", i, &v) || v < 0 || v > TT_BYTE)
                return rp_fail(RP_ERR_FORMAT, "%s: tokenizer.ggml.token_type[%lld] is not a token type (0..6)", path, (long long)i);
            t->type[i] = v == TT_UNDEF ? TT_NORMAL : (uint8_t)v;
        }
    }
    if (rp_model_file_meta_type(f, "tokenizer.ggml.scores") != RP_META_NONE) {
        if (rp_model_file_meta_array_len(f, "tokenizer.ggml.scores") != n)
            return rp_fail(RP_ERR_FORMAT, "%s: tokenizer.ggml.scores has %lld entries, tokens has %lld", path,
                           (long long)rp_model_file_meta_array_len(f, "tokenizer.ggml.scores"), (long long)n);
        for (int64_t i = 0; i < n; i++) {
            double v;
            if (!rp_model_file_meta_array_float(f, "tokenizer.ggml.scores", i, &v))
                return rp_fail(RP_ERR_FORMAT, "%s: tokenizer.ggml.scores[%lld] is not a number", path, (long long)i);
            t->score[i] = (float)v;
        }
    }
    RP_TRY(meta_id(f, "tokenizer.ggml.bos_token_id", (int)n, &t->bos));
    RP_TRY(meta_id(f, "tokenizer.ggml.eos_token_id", (int)n, &t->eos));
    RP_TRY(meta_id(f, "tokenizer.ggml.unknown_token_id", (int)n, &t->unk));
    int eot = -1;
    RP_TRY(meta_id(f, "tokenizer.ggml.eot_token_id", (int)n, &eot));
    int spm = t->kind == RP_TOKENIZER_SPM;
    t->add_bos = meta_flag(f, "tokenizer.ggml.add_bos_token", spm);
    t->add_space_prefix = meta_flag(f, "tokenizer.ggml.add_space_prefix", spm);
    t->escape_spaces = spm;
    if (!spm) {
        const char *pre = rp_model_file_meta_string(f, "tokenizer.ggml.pre");
        static const char *digit_pre[] = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"};
        static const char *gpt2_pre[] = {"default", "gpt-2", "gpt2", "mpt", "olmo", "jais"};
        int found = !pre;
        t->pre = PRE_GPT2;
        for (size_t i = 0; pre && i < sizeof digit_pre / sizeof digit_pre[0]; i++)
            if (strcmp(pre, digit_pre[i]) == 0) { t->pre = PRE_DIGITS_GPT2; found = 1; }
        for (size_t i = 0; pre && i < sizeof gpt2_pre / sizeof gpt2_pre[0]; i++)
            if (strcmp(pre, gpt2_pre[i]) == 0) found = 1;
        if (!found) return rp_fail(RP_ERR_UNSUPPORTED, "%s: tokenizer.ggml.pre = \"%s\" is not a supported pre-tokenizer (supported: gpt2, smollm, starcoder, refact, command-r, codeshell, exaone, minerva, mpt, olmo, jais)", path, pre);
        RP_TRY(rp_bpe_load_merges(t, f));
        RP_TRY(finish(t, path));
    } else {
        for (int i = 0; i < (int)n; i++) {
            int b;
            if (t->type[i] == TT_NORMAL && parse_byte_piece(t->arena + t->off[i], t->len[i], &b) && !rp_model_file_meta_type(f, "tokenizer.ggml.token_type"))
                t->type[i] = TT_BYTE;
        }
        RP_TRY(finish(t, path));
    }
    if (eot >= 0) t->eog[eot] = 1;
    return rp_chat_detect(t, rp_model_file_meta_string(f, "tokenizer.chat_template"));
}

/* Build the tokenizer a GGUF describes (tokenizer.ggml.* keys). */
rp_status rp_tokenizer_from_model_file(const rp_model_file *f, rp_tokenizer **out) {
    *out = NULL;
    rp_tokenizer *t = tok_new();
    if (!t) return rp_fail(RP_ERR_NOMEM, "out of memory");
    rp_status st = load_gguf(t, f);
    if (st != RP_OK) { rp_tokenizer_free(t); return st; }
    *out = t;
    return RP_OK;
}

static rp_status load_llama2c(rp_tokenizer *t, const unsigned char *p, size_t size, int n_vocab, const char *name) {
    if (n_vocab < 0 || n_vocab > (1 << 24)) return rp_fail(RP_ERR_INVAL, "%s: vocabulary size %d out of range", name, n_vocab);
    if (size < 4) return rp_fail(RP_ERR_FORMAT, "%s: %zu bytes, too short for a llama2.c tokenizer header", name, size);
    int32_t maxlen;
    memcpy(&maxlen, p, 4);
    if (maxlen < 0 || maxlen > (1 << 20)) return rp_fail(RP_ERR_FORMAT, "%s: max_token_length %d out of range", name, maxlen);
    /* first pass: count and validate records */
    size_t pos = 4, bytes = 0;
    int n = 0;
    while (pos < size && (n_vocab == 0 || n < n_vocab)) {
        if (size - pos < 8) return rp_fail(RP_ERR_FORMAT, "%s: token %d: record header at offset %zu runs past the end of the file (%zu bytes)", name, n, pos, size);
        int32_t len;
        memcpy(&len, p + pos + 4, 4);
        if (len < 0 || (size_t)len > size - pos - 8)
            return rp_fail(RP_ERR_FORMAT, "%s: token %d: length %d at offset %zu runs past the end of the file (%zu bytes)", name, n, len, pos + 4, size);
        pos += 8 + (size_t)len;
        bytes += (size_t)len;
        if (++n > (1 << 24)) return rp_fail(RP_ERR_FORMAT, "%s: more than %d tokens", name, 1 << 24);
    }
    if (n_vocab && n < n_vocab) return rp_fail(RP_ERR_FORMAT, "%s: holds %d tokens, the model needs %d", name, n, n_vocab);
    if (pos != size) return rp_fail(RP_ERR_FORMAT, "%s: %zu bytes left after %d tokens (vocabulary size mismatch?)", name, size - pos, n);
    if (n == 0) return rp_fail(RP_ERR_FORMAT, "%s: no tokens", name);
    t->kind = RP_TOKENIZER_SPM;
    RP_TRY(alloc_vocab(t, n, bytes, name));
    pos = 4;
    size_t apos = 0;
    for (int i = 0; i < n; i++) {
        int32_t len;
        float sc;
        memcpy(&sc, p + pos, 4);
        memcpy(&len, p + pos + 4, 4);
        memcpy(t->arena + apos, p + pos + 8, (size_t)len);
        t->off[i] = apos;
        t->len[i] = (uint32_t)len;
        t->score[i] = sc;
        int b;
        if (i == 0) t->type[i] = TT_UNKNOWN;
        else if (i <= 2) t->type[i] = TT_CONTROL;
        else if (parse_byte_piece(t->arena + apos, (size_t)len, &b)) t->type[i] = TT_BYTE;
        apos += (size_t)len;
        pos += 8 + (size_t)len;
    }
    t->unk = 0;
    t->bos = n > 1 ? 1 : -1;
    t->eos = n > 2 ? 2 : -1;
    t->add_bos = 1;
    t->add_space_prefix = 1;
    t->escape_spaces = 0;
    RP_TRY(finish(t, name));
    return rp_chat_detect(t, NULL);
}

/* The llama2.c tokenizer from bytes in memory. */
rp_status rp_tokenizer_llama2c_from_memory(const void *data, size_t len, int n_vocab, const char *name, rp_tokenizer **out) {
    *out = NULL;
    rp_tokenizer *t = tok_new();
    if (!t) return rp_fail(RP_ERR_NOMEM, "out of memory");
    rp_status st = load_llama2c(t, data, len, n_vocab, name ? name : "<memory>");
    if (st != RP_OK) { rp_tokenizer_free(t); return st; }
    *out = t;
    return RP_OK;
}

/* Load a llama2.c tokenizer.bin. */
rp_status rp_tokenizer_load_llama2c(const char *path, int n_vocab, rp_tokenizer **out) {
    rp_buf b = {0};
    *out = NULL;
    RP_TRY(rp_read_file(path, &b));
    rp_status st = rp_tokenizer_llama2c_from_memory(b.data, b.len, n_vocab, path, out);
    rp_buf_free(&b);
    return st;
}

/* ---- queries ---- */

/* Vocabulary size. */
int rp_tokenizer_n_vocab(const rp_tokenizer *t) { return t->n_vocab; }
/* BPE or SPM. */
rp_tokenizer_kind rp_tokenizer_kind_of(const rp_tokenizer *t) { return t->kind; }
/* BOS id or -1. */
int rp_tokenizer_bos(const rp_tokenizer *t) { return t->bos; }
/* EOS id or -1. */
int rp_tokenizer_eos(const rp_tokenizer *t) { return t->eos; }
/* Whether BOS is added by default. */
int rp_tokenizer_adds_bos(const rp_tokenizer *t) { return t->add_bos; }
/* Whether generation stops at id. */
int rp_tokenizer_is_eog(const rp_tokenizer *t, int id) { return id >= 0 && id < t->n_vocab && t->eog[id]; }

/* Id of a token given its exact vocabulary text, -1 when absent. */
int rp_tokenizer_find(const rp_tokenizer *t, const char *text, size_t len) {
    int id = rp_tok_lookup(t, text, len);
    if (id >= 0 && id < t->n_vocab) return id;
    for (int k = 0; k < t->nspecial; k++) {
        int s = t->special[k];
        if (t->len[s] == len && memcmp(t->arena + t->off[s], text, len) == 0) return s;
    }
    return -1;
}

/* Raw vocabulary text of id. */
const char *rp_tokenizer_token_text(const rp_tokenizer *t, int id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    *len = t->len[id];
    return t->arena + t->off[id];
}

/* ---- encode ---- */

static rp_status encode_raw(const rp_tokenizer *t, const char *s, size_t n, int prefix, rp_tok_work *w, rp_tokens *out) {
    if (t->kind == RP_TOKENIZER_BPE) return rp_bpe_encode(t, s, n, w, out);
    return rp_spm_encode(t, s, n, prefix, w, out);
}

/* Tokenize len bytes of text and append the ids to out. */
rp_status rp_tokenizer_encode(const rp_tokenizer *t, const char *text, size_t len, int flags, rp_tokens *out) {
    int add_bos = flags & RP_TOK_ADD_BOS ? 1 : flags & RP_TOK_NO_BOS ? 0 : t->add_bos;
    if (add_bos && t->bos >= 0) RP_TRY(rp_tokens_push(out, t->bos));
    int parse = (flags & RP_TOK_PARSE_SPECIAL) != 0;
    rp_tok_work w = {0};
    rp_status st = RP_OK;
    int prev_special = 1;
    size_t start = 0, i = 0;
    while (i < len && st == RP_OK) {
        int hit = -1;
        if (t->special_first[(unsigned char)text[i]]) {
            for (int k = 0; k < t->nspecial; k++) {
                int id = t->special[k];
                if (!parse && t->type[id] != TT_USER) continue;
                if (t->len[id] <= len - i && memcmp(text + i, t->arena + t->off[id], t->len[id]) == 0) { hit = id; break; }
            }
        }
        if (hit < 0) { i++; continue; }
        if (i > start) {
            st = encode_raw(t, text + start, i - start, t->add_space_prefix && prev_special, &w, out);
            prev_special = 0;
        }
        if (st == RP_OK) st = rp_tokens_push(out, hit);
        prev_special = 1;
        i += t->len[hit];
        start = i;
    }
    if (st == RP_OK && len > start) st = encode_raw(t, text + start, len - start, t->add_space_prefix && prev_special, &w, out);
    rp_tok_work_free(&w);
    return st;
}

/* ---- decode ---- */

static int is_special(const rp_tokenizer *t, int id) { return t->type[id] == TT_CONTROL || t->type[id] == TT_USER; }

/* Streaming decode: the bytes id contributes after prev. */
const char *rp_tokenizer_piece(const rp_tokenizer *t, int prev, int id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    if (t->type[id] == TT_CONTROL) { *len = 0; return ""; }
    const char *s = t->dec + t->doff[id];
    size_t n = t->dlen[id];
    if (t->kind == RP_TOKENIZER_SPM && t->add_space_prefix && (prev < 0 || prev == t->bos) && n && s[0] == ' ' && t->type[id] != TT_BYTE) { s++; n--; }
    *len = n;
    return s;
}

/* Append the text of n ids to out. */
rp_status rp_tokenizer_decode(const rp_tokenizer *t, const int32_t *ids, size_t n, int special, rp_buf *out) {
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= t->n_vocab) return rp_fail(RP_ERR_RANGE, "decode: token id %d at position %zu outside the vocabulary (%d tokens)", id, i, t->n_vocab);
        if (t->type[id] == TT_CONTROL) {
            if (special) RP_TRY(rp_buf_append(out, t->dec + t->doff[id], t->dlen[id]));
            continue;
        }
        const char *s = t->dec + t->doff[id];
        size_t len = t->dlen[id];
        if (first && t->kind == RP_TOKENIZER_SPM && t->add_space_prefix && len && s[0] == ' ' && !is_special(t, id)) { s++; len--; }
        first = 0;
        RP_TRY(rp_buf_append(out, s, len));
    }
    return RP_OK;
}
