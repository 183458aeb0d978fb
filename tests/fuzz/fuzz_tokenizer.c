/* fuzz_tokenizer.c: libFuzzer target for the tokenizers. The first byte picks what the rest is:
 *   0: a llama2.c tokenizer.bin (parsed, then used to encode and decode a fixed text and the bytes themselves);
 *   1, 2, 3: text for the byte-level BPE (SmolLM2), SentencePiece (tok512.bin) and Llama-2 GGUF tokenizers,
 *            which must give decode(encode(x)) == x byte for byte (abort otherwise), with and without special
 *            token parsing, and streaming pieces that concatenate to the same bytes.
 * The real tokenizers come from REPRO_MIRROR; absent that, modes 1-3 fall back to mode 0. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static rp_tokenizer *toks[4];
static uint8_t representable[4][256];   /* bytes that survive an encode/decode round trip on their own */
static int loaded;

static void find_representable(int k) {
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        rp_tokens ids = {0};
        rp_buf out = {0};
        if (rp_tokenizer_encode(toks[k], &c, 1, RP_TOK_NO_BOS, &ids) == RP_OK && rp_tokenizer_decode(toks[k], ids.ids, ids.n, 0, &out) == RP_OK)
            representable[k][b] = out.len == 1 && out.data[0] == c;
        rp_tokens_free(&ids);
        rp_buf_free(&out);
    }
}

static void load(void) {
    loaded = 1;
    const char *m = getenv("REPRO_MIRROR");
    if (!m) return;
    char p[4096];
    rp_model_file *f = NULL;
    snprintf(p, sizeof p, "%s/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf", m);
    if (rp_model_file_open(p, &f) == RP_OK) rp_tokenizer_from_model_file(f, &toks[1]);
    rp_model_file_free(f);
    snprintf(p, sizeof p, "%s/stories260K/tok512.bin", m);
    rp_tokenizer_load_llama2c(p, 512, &toks[2]);
    f = NULL;
    snprintf(p, sizeof p, "%s/gguf-tiny-random-llama/llama-2-tiny-random.gguf", m);
    if (rp_model_file_open(p, &f) == RP_OK) rp_tokenizer_from_model_file(f, &toks[3]);
    rp_model_file_free(f);
    for (int k = 1; k < 4; k++)
        if (toks[k]) find_representable(k);
}

static void exercise(const rp_tokenizer *t, const char *text, size_t len, int check) {
    for (int flags = 0; flags < 2; flags++) {
        rp_tokens ids = {0};
        if (rp_tokenizer_encode(t, text, len, flags ? RP_TOK_PARSE_SPECIAL | RP_TOK_ADD_BOS : RP_TOK_NO_BOS, &ids) != RP_OK) abort();
        rp_buf out = {0}, stream = {0};
        if (rp_tokenizer_decode(t, ids.ids, ids.n, flags, &out) != RP_OK) abort();
        int prev = -1;
        for (size_t i = 0; i < ids.n; i++) {
            size_t n;
            const char *p = rp_tokenizer_piece(t, prev, ids.ids[i], &n);
            if (!p) abort();
            rp_buf_append(&stream, p, n);
            prev = ids.ids[i];
        }
        if (check && !flags) {
            if (out.len != len || (len && memcmp(out.data, text, len) != 0)) abort();
            if (stream.len != len || (len && memcmp(stream.data, text, len) != 0)) abort();
        }
        rp_buf_free(&out);
        rp_buf_free(&stream);
        rp_tokens_free(&ids);
    }
    rp_chat_msg msg[2] = {{"system", "s"}, {"user", ""}};
    char *z = malloc(len + 1);
    memcpy(z, text, len);
    z[len] = 0;
    msg[1].content = z;
    rp_buf chat = {0};
    if (rp_tokenizer_chat_format(t, msg, 2, 1, &chat) != RP_OK) abort();
    rp_buf_free(&chat);
    free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!loaded) load();
    if (size < 1) return 0;
    int mode = data[0] & 3;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    if (mode && toks[mode]) {
        int check = 1;
        for (size_t i = 0; i < len; i++) check &= representable[mode][(uint8_t)text[i]];
        /* GGUF SentencePiece vocabularies write ' ' as U+2581: a literal U+2581 in the text comes back a space */
        if (mode == 3 && memmem(text, len, "\xe2\x96\x81", 3)) check = 0;
        exercise(toks[mode], text, len, check);
        return 0;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (len) memcpy(copy, text, len);
    rp_tokenizer *t = NULL;
    if (rp_tokenizer_llama2c_from_memory(copy, len, 0, "fuzz.bin", &t) == RP_OK) {
        exercise(t, "Once upon a time, <s> 123 \xe2\x96\x81 caf\xc3\xa9", 29, 0);
        exercise(t, (const char *)copy, len, 0);
        rp_tokenizer_free(t);
    }
    free(copy);
    return 0;
}
