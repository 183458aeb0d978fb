/* tokenizer.h: text <-> token ids for the models the engine runs.
 *
 * Two algorithms, chosen by the model:
 *  - byte-level BPE (GGUF tokenizer.ggml.model = "gpt2": SmolLM2, GPT-2, Llama 3 family): the text is split
 *    by the pre-tokenizer the GGUF names in tokenizer.ggml.pre (GPT-2's pattern; "smollm" and friends first
 *    split every digit apart), each piece's bytes are mapped to printable characters and merged by rank.
 *  - SentencePiece-style BPE with scores and byte fallback (GGUF "llama", llama2.c tokenizer.bin): a dummy
 *    leading space, spaces shown as U+2581 in GGUF vocabularies, highest-score merges first, characters
 *    missing from the vocabulary become <0xNN> byte tokens.
 * Results match llama.cpp's tokenizer (checked in tests/test_tokenizer.c against its outputs).
 *
 * Usage:
 *   rp_tokenizer *tok; rp_tokenizer_from_model_file(mf, &tok);       // or rp_tokenizer_load_llama2c(...)
 *   rp_tokens ids = {0};
 *   rp_tokenizer_encode(tok, text, strlen(text), RP_TOK_DEFAULT, &ids);   // appends to ids
 *   rp_buf out = {0}; rp_tokenizer_decode(tok, ids.ids, ids.n, 0, &out);  // appends bytes
 *   // streaming: for each new id, append rp_tokenizer_piece(tok, prev_id, id, &len) (len bytes)
 *   rp_tokens_free(&ids); rp_buf_free(&out); rp_tokenizer_free(tok);
 * A tokenizer is immutable after loading: one may be shared by threads. */
#ifndef RP_TOKENIZER_H
#define RP_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>
#include "model/model_file.h"
#include "util/buf.h"
#include "util/err.h"

typedef struct rp_tokenizer rp_tokenizer;

/* A growable array of token ids. Zero-initialize; free with rp_tokens_free. */
typedef struct rp_tokens { int32_t *ids; size_t n, cap; } rp_tokens;
/* Append one id. */
rp_status rp_tokens_push(rp_tokens *t, int32_t id);
/* Release the memory (the array is empty and reusable afterwards). */
void rp_tokens_free(rp_tokens *t);

typedef enum rp_tokenizer_kind { RP_TOKENIZER_BPE, RP_TOKENIZER_SPM } rp_tokenizer_kind;

/* Build the tokenizer a GGUF describes (tokenizer.ggml.* keys). The tokenizer copies what it needs: the
 * model file may be closed afterwards. Errors name the key that is missing or malformed. */
rp_status rp_tokenizer_from_model_file(const rp_model_file *f, rp_tokenizer **out);
/* Load a llama2.c tokenizer.bin (int32 max_token_length, then per token: f32 score, int32 length, bytes).
 * n_vocab: the model's vocabulary size, which the file must match exactly; 0 reads every record in the
 * file. Ids 0, 1, 2 are <unk>, BOS, EOS; "<0xNN>" pieces are byte-fallback tokens. */
rp_status rp_tokenizer_load_llama2c(const char *path, int n_vocab, rp_tokenizer **out);
/* The same from bytes in memory (copied; name is used in messages). */
rp_status rp_tokenizer_llama2c_from_memory(const void *data, size_t len, int n_vocab, const char *name, rp_tokenizer **out);
/* The tokenizer of an open model file: its GGUF keys, or for a llama2.c checkpoint the tokenizer .bin at
 * tokenizer_path (NULL: tokenizer.bin, else the first tok*.bin, beside the checkpoint) with n_vocab tokens. */
rp_status rp_tokenizer_for_model_file(const rp_model_file *f, const char *tokenizer_path, int n_vocab, rp_tokenizer **out);
/* Free; NULL is fine. */
void rp_tokenizer_free(rp_tokenizer *t);

/* Vocabulary size (ids are 0 .. n_vocab-1). */
int rp_tokenizer_n_vocab(const rp_tokenizer *t);
rp_tokenizer_kind rp_tokenizer_kind_of(const rp_tokenizer *t);
/* Beginning / end of sequence ids, -1 when the model has none. */
int rp_tokenizer_bos(const rp_tokenizer *t);
int rp_tokenizer_eos(const rp_tokenizer *t);
/* Whether the model adds BOS by default (tokenizer.ggml.add_bos_token; SPM defaults to yes, BPE to no). */
int rp_tokenizer_adds_bos(const rp_tokenizer *t);
/* Whether generation should stop at id: EOS, end-of-turn, or a control token such as <|im_end|>,
 * <|endoftext|>, <|eot_id|>, </s>, <end_of_turn>. */
int rp_tokenizer_is_eog(const rp_tokenizer *t, int id);
/* Id of a token given its exact vocabulary text (e.g. "<|im_start|>"), -1 when absent. */
int rp_tokenizer_find(const rp_tokenizer *t, const char *text, size_t len);
/* The raw vocabulary text of id (as stored: byte-level BPE shows bytes as printable characters, SPM shows
 * spaces as U+2581); NULL when id is out of range. Not NUL-terminated: use *len. */
const char *rp_tokenizer_token_text(const rp_tokenizer *t, int id, size_t *len);

enum {
    RP_TOK_DEFAULT = 0,         /* add BOS when the model does (rp_tokenizer_adds_bos) */
    RP_TOK_ADD_BOS = 1,         /* always add BOS (if the model has one) */
    RP_TOK_NO_BOS = 2,          /* never add BOS */
    RP_TOK_PARSE_SPECIAL = 4,   /* control tokens written in the text ("<|im_start|>") become their ids;
                                   without it they are tokenized as ordinary text */
};
/* Tokenize len bytes of text and append the ids to out. flags: RP_TOK_* ORed. Any bytes are accepted: SPM
 * writes characters it lacks as <0xNN> byte tokens (or <unk> without them); byte-level BPE drops the few
 * bytes its vocabulary cannot show (for SmolLM2 0xC0, 0xC1, 0xF5..0xFF, never valid UTF-8), as llama.cpp
 * does; and GGUF SentencePiece vocabularies write ' ' as U+2581, so a literal U+2581 in the text decodes
 * as a space. Apart from those two cases decode(encode(x)) == x for any bytes. */
rp_status rp_tokenizer_encode(const rp_tokenizer *t, const char *text, size_t len, int flags, rp_tokens *out);
/* Append the text of n ids to out. SPM: the dummy leading space of the first piece is removed, so
 * decode(encode(x)) == x. special != 0 renders control tokens (BOS, <|im_end|>) as their text; otherwise
 * they produce nothing. Ids out of range are an error. */
rp_status rp_tokenizer_decode(const rp_tokenizer *t, const int32_t *ids, size_t n, int special, rp_buf *out);
/* Streaming decode: the bytes id contributes after prev (prev = -1 at the start of the text). SPM: a leading
 * space is dropped when prev is -1 or BOS, as llama2.c prints. Control tokens give "" (len 0); ids out of
 * range give NULL. The bytes may be a partial UTF-8 character (byte tokens): print them as they come. */
const char *rp_tokenizer_piece(const rp_tokenizer *t, int prev, int id, size_t *len);

/* Chat formatting. */
typedef struct rp_chat_msg { const char *role; const char *content; } rp_chat_msg;   /* role: "system", "user", "assistant" */
typedef enum rp_chat_style { RP_CHAT_PLAIN, RP_CHAT_CHATML, RP_CHAT_LLAMA2 } rp_chat_style;
/* The style detected from tokenizer.chat_template (ChatML when it uses <|im_start|>, Llama-2 for [INST],
 * plain otherwise, including models without a template). */
rp_chat_style rp_tokenizer_chat_style(const rp_tokenizer *t);
/* The default system prompt the template injects when the conversation has none ("" when none). */
const char *rp_tokenizer_chat_default_system(const rp_tokenizer *t);
/* Append the prompt for a conversation to out, ending with the assistant's turn opening when add_assistant
 * is set. The text contains control tokens as text: encode it with RP_TOK_PARSE_SPECIAL and RP_TOK_NO_BOS
 * (the Llama-2 style writes its own "<s>"; ChatML uses none). */
rp_status rp_tokenizer_chat_format(const rp_tokenizer *t, const rp_chat_msg *msgs, int n, int add_assistant, rp_buf *out);

/* Write a SentencePiece-style tokenizer as GGUF tokenizer.ggml.* keys (model "llama", tokens with spaces as
 * U+2581, scores, token types, special ids, add-BOS / space-prefix flags) into a GGUF writer, so an exported
 * llama2.c model carries its tokenizer; byte-level BPE gives RP_ERR_UNSUPPORTED (copy its GGUF's keys). */
typedef struct rp_gguf_writer rp_gguf_writer;
rp_status rp_tokenizer_write_gguf(const rp_tokenizer *t, rp_gguf_writer *w);

#endif
