/* tokenizer_impl.h: the inside of rp_tokenizer, shared by tokenizer.c (loading, lookup, decode, special
 * tokens), tok_bpe.c (byte-level BPE and its pre-tokenizers), tok_spm.c (SentencePiece-style BPE) and
 * chat.c. Not for other modules.
 * Invariants: texts of ids 0 .. n_vocab+n_pseudo-1 live in arena at off[i], len[i]; ids >= n_vocab are
 * "pseudo" tokens (BPE merge results missing from the vocabulary), never returned to callers; the text
 * hash holds every normal / byte / unused / pseudo token, the special list every control and user-defined
 * token; dec holds each real id's decoded bytes. */
#ifndef RP_TOKENIZER_IMPL_H
#define RP_TOKENIZER_IMPL_H
#include "model/tokenizer.h"

/* GGUF token types. */
enum { TT_UNDEF = 0, TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };
/* Pre-tokenizers. */
enum { PRE_GPT2, PRE_DIGITS_GPT2 };

struct rp_tokenizer {
    rp_tokenizer_kind kind;
    int n_vocab, n_total;           /* real ids, real + pseudo */
    char *arena;                    /* token texts, back to back */
    size_t *off;
    uint32_t *len;
    float *score;                   /* SPM merge scores (n_vocab) */
    uint8_t *type;                  /* TT_* (n_vocab) */
    uint8_t *eog;                   /* end-of-generation flags (n_vocab) */
    int bos, eos, unk;
    int add_bos, add_space_prefix;
    int escape_spaces;              /* SPM from GGUF: ' ' is written U+2581 in the vocabulary */
    int pre;                        /* PRE_* (BPE) */
    int32_t *hidx;                  /* text -> id open-addressing table, -1 empty */
    size_t hcap;
    int32_t byte_tok[256];          /* BPE: id of each byte's printable character; SPM: <0xNN> id (-1 none) */
    uint8_t *pairs;                 /* SPM: bit (a << 8 | b) set when some token has bytes a, b adjacent (8 KiB) */
    uint64_t *mkey;                 /* BPE merges: (left id << 32 | right id) -> rank, result; key ~0 empty */
    int32_t *mrank, *mres;
    size_t mcap;
    int32_t *special;               /* control + user-defined ids, longest text first */
    int nspecial;
    uint8_t special_first[256];     /* whether some special token text starts with this byte */
    char *dec;                      /* decoded bytes of each real id */
    size_t *doff;
    uint32_t *dlen;
    rp_chat_style chat;
    char *chat_system;              /* default system prompt ("" when none) */
};

/* (Re)build the text hash with room for extra more ids; insert one id (its text must stay put). */
rp_status rp_tok_hash_build(rp_tokenizer *t, size_t extra);
void rp_tok_hash_insert(rp_tokenizer *t, int32_t id);
/* Token id of a text (ids >= n_vocab are pseudo tokens), -1 when absent. */
int rp_tok_lookup(const rp_tokenizer *t, const char *s, size_t n);
/* BPE merge of two ids: 1 and rank / result when the pair merges. */
int rp_tok_merge(const rp_tokenizer *t, int32_t a, int32_t b, int32_t *rank, int32_t *res);

/* A symbol of the merge loops: a substring [start, start+n) of the working text carrying a token id. */
typedef struct rp_tok_sym { int prev, next; size_t start, n; int32_t id; } rp_tok_sym;
/* A candidate merge of symbols left and right: smaller key first, then smaller left. */
typedef struct rp_tok_pair { double key; int left, right; size_t size; int32_t id; } rp_tok_pair;
typedef struct rp_tok_heap { rp_tok_pair *a; size_t n, cap; } rp_tok_heap;
rp_status rp_tok_heap_push(rp_tok_heap *h, rp_tok_pair p);
rp_tok_pair rp_tok_heap_pop(rp_tok_heap *h);

/* Scratch space reused across the words of one encode call. */
typedef struct rp_tok_work { rp_tok_sym *sym; size_t cap; rp_tok_heap heap; } rp_tok_work;
rp_status rp_tok_work_reserve(rp_tok_work *w, size_t n);
void rp_tok_work_free(rp_tok_work *w);

/* Encode one span of ordinary text (no special tokens) and append ids.
 * BPE: pre-tokenize then merge. SPM: prefix is whether to add the dummy leading space. */
rp_status rp_bpe_encode(const rp_tokenizer *t, const char *text, size_t len, rp_tok_work *w, rp_tokens *out);
rp_status rp_spm_encode(const rp_tokenizer *t, const char *text, size_t len, int prefix, rp_tok_work *w, rp_tokens *out);
/* BPE: build the merge table from tokenizer.ggml.merges; the byte <-> character map. */
rp_status rp_bpe_load_merges(rp_tokenizer *t, const rp_model_file *f);
/* The printable character (as a code point) byte-level BPE writes for byte b, and the inverse (-1 if none). */
uint32_t rp_bpe_byte_char(int b);
int rp_bpe_char_byte(uint32_t cp);
/* Chat: inspect tokenizer.chat_template (NULL when the model has none). */
rp_status rp_chat_detect(rp_tokenizer *t, const char *tmpl);

#endif
