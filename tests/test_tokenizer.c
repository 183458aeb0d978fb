/* test_tokenizer.c: the tokenizers against llama.cpp's outputs (../shared/reference): SmolLM2's byte-level
 * BPE on 15 tricky strings (exact ids) and on three whole files (count + sha256 of the ids), stories260K's
 * tok512.bin on the TinyStories slice (count + sha256); decode(encode(x)) == x for every staged text file;
 * special-token parsing; streaming pieces; chat formatting; hostile tokenizer.bin files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model/tokenizer.h"
#include "util/json.h"
#include "util/sha256.h"
#include "../tests/check.h"

static const char *mirror(char *buf, size_t n, const char *rel) {
    const char *m = getenv("REPRO_MIRROR");
    if (!m) return NULL;
    snprintf(buf, n, "%s/%s", m, rel);
    FILE *f = fopen(buf, "rb");
    if (!f) return NULL;
    fclose(f);
    return buf;
}

/* The reference folder sits beside the data mirror (../shared/reference next to ../shared/data). */
static const char *reference(char *buf, size_t n, const char *rel) {
    const char *m = getenv("REPRO_MIRROR");
    if (!m) return NULL;
    snprintf(buf, n, "%s/../reference/%s", m, rel);
    FILE *f = fopen(buf, "rb");
    if (!f) return NULL;
    fclose(f);
    return buf;
}

static void ids_sha(const rp_tokens *t, char hex[65]) {
    rp_sha256_ctx c;
    rp_sha256_init(&c);
    for (size_t i = 0; i < t->n; i++) {
        uint8_t le[4] = {(uint8_t)t->ids[i], (uint8_t)(t->ids[i] >> 8), (uint8_t)(t->ids[i] >> 16), (uint8_t)(t->ids[i] >> 24)};
        rp_sha256_update(&c, le, 4);
    }
    uint8_t d[32];
    rp_sha256_final(&c, d);
    rp_sha256_hex(d, hex);
}

/* Tokenize a whole file and compare with llama.cpp's count and digest; also check the round trip. */
static void whole_file(const rp_tokenizer *tok, const char *rel, int flags, size_t want_n, const char *want_sha, const int32_t *first4) {
    char path[4096];
    rp_buf text = {0};
    if (!mirror(path, sizeof path, rel) || rp_read_file(path, &text) != RP_OK) { printf("skip [mirror]: %s not in REPRO_MIRROR\n", rel); return; }
    rp_tokens ids = {0};
    rp_status st = rp_tokenizer_encode(tok, text.data, text.len, flags, &ids);
    CHECK_MSG(st == RP_OK, "%s", rp_errmsg());
    char hex[65];
    ids_sha(&ids, hex);
    CHECK_MSG(ids.n == want_n, "%s: %zu tokens, llama.cpp %zu", rel, ids.n, want_n);
    CHECK_MSG(strcmp(hex, want_sha) == 0, "%s: sha256 %s, llama.cpp %s", rel, hex, want_sha);
    CHECK_MSG(ids.n >= 4 && ids.ids[0] == first4[0] && ids.ids[1] == first4[1] && ids.ids[2] == first4[2] && ids.ids[3] == first4[3],
              "%s: first ids %d %d %d %d", rel, ids.n > 0 ? ids.ids[0] : -1, ids.n > 1 ? ids.ids[1] : -1, ids.n > 2 ? ids.ids[2] : -1, ids.n > 3 ? ids.ids[3] : -1);
    rp_buf back = {0};
    st = rp_tokenizer_decode(tok, ids.ids, ids.n, 0, &back);
    CHECK_MSG(st == RP_OK && back.len == text.len && memcmp(back.data, text.data, text.len) == 0, "%s: decode(encode(x)) != x", rel);
    /* streaming pieces give the same bytes */
    rp_buf stream = {0};
    int prev = -1;
    for (size_t i = 0; i < ids.n; i++) {
        size_t len;
        const char *p = rp_tokenizer_piece(tok, prev, ids.ids[i], &len);
        if (p) rp_buf_append(&stream, p, len);
        prev = ids.ids[i];
    }
    CHECK_MSG(stream.len == text.len && memcmp(stream.data, text.data, text.len) == 0, "%s: streamed pieces differ from the text", rel);
    rp_buf_free(&stream);
    rp_buf_free(&back);
    rp_tokens_free(&ids);
    rp_buf_free(&text);
}

static const char *staged_texts[] = {
    "wikitext2/wiki.test.raw", "tinystories-valid-slice/tinystories_val.txt", "tinyshakespeare/input.txt",
    "hellaswag/hellaswag_val_full.txt", "mmlu/README.txt", "piqa/valid-labels.lst",
};

static void round_trips(const rp_tokenizer *tok, const char *name) {
    for (size_t k = 0; k < sizeof staged_texts / sizeof staged_texts[0]; k++) {
        char path[4096];
        rp_buf text = {0};
        if (!mirror(path, sizeof path, staged_texts[k]) || rp_read_file(path, &text) != RP_OK) { printf("skip [mirror]: %s\n", staged_texts[k]); continue; }
        rp_tokens ids = {0};
        rp_buf back = {0};
        rp_status st = rp_tokenizer_encode(tok, text.data, text.len, RP_TOK_NO_BOS, &ids);
        if (st == RP_OK) st = rp_tokenizer_decode(tok, ids.ids, ids.n, 0, &back);
        CHECK_MSG(st == RP_OK && back.len == text.len && memcmp(back.data, text.data, text.len) == 0,
                  "%s: round trip of %s failed (%zu -> %zu bytes)", name, staged_texts[k], text.len, back.len);
        rp_buf_free(&back);
        rp_tokens_free(&ids);
        rp_buf_free(&text);
    }
}

static void test_smollm2(void) {
    char path[4096], ref[4096];
    if (!mirror(path, sizeof path, "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")) { printf("skip [mirror]: SmolLM2 GGUF not in REPRO_MIRROR\n"); return; }
    rp_model_file *mf = NULL;
    rp_status st = rp_model_file_open(path, &mf);
    CHECK_MSG(st == RP_OK, "%s", rp_errmsg());
    if (st != RP_OK) return;
    rp_tokenizer *tok = NULL;
    st = rp_tokenizer_from_model_file(mf, &tok);
    rp_model_file_free(mf);   /* the tokenizer must not need the file any more */
    CHECK_MSG(st == RP_OK, "%s", rp_errmsg());
    if (st != RP_OK) return;
    CHECK(rp_tokenizer_n_vocab(tok) == 49152 && rp_tokenizer_kind_of(tok) == RP_TOKENIZER_BPE);
    CHECK(rp_tokenizer_bos(tok) == 1 && rp_tokenizer_eos(tok) == 2 && !rp_tokenizer_adds_bos(tok));
    CHECK(rp_tokenizer_is_eog(tok, 2) && rp_tokenizer_is_eog(tok, 0) && !rp_tokenizer_is_eog(tok, 1) && !rp_tokenizer_is_eog(tok, 100));
    CHECK(rp_tokenizer_find(tok, "<|im_start|>", 12) == 1);

    /* the 15 reference strings */
    rp_buf jl = {0};
    if (!reference(ref, sizeof ref, "smollm2/tokenize.jsonl") || rp_read_file(ref, &jl) != RP_OK) printf("skip [mirror]: tokenize.jsonl\n");
    else {
        int lines = 0;
        for (char *line = jl.data, *nl; line && *line; line = nl ? nl + 1 : NULL) {
            nl = strchr(line, '\n');
            size_t n = nl ? (size_t)(nl - line) : strlen(line);
            rp_json *j = NULL;
            if (rp_json_parse(line, n, &j) != RP_OK) { CHECK_MSG(0, "bad jsonl line: %s", rp_errmsg()); break; }
            size_t tlen;
            const char *text = rp_json_strn(rp_json_get(j, "text"), &tlen);
            const rp_json *want = rp_json_get(j, "tokens");
            rp_tokens ids = {0};
            st = rp_tokenizer_encode(tok, text, tlen, RP_TOK_DEFAULT, &ids);
            int same = st == RP_OK && ids.n == rp_json_len(want);
            for (size_t i = 0; same && i < ids.n; i++) same = ids.ids[i] == (int32_t)rp_json_num(rp_json_at(want, i), -1);
            CHECK_MSG(same, "tokenize \"%s\": got %zu ids (first %d), llama.cpp %zu", text, ids.n, ids.n ? ids.ids[0] : -1, rp_json_len(want));
            if (!same) {
                fprintf(stderr, "  ours:");
                for (size_t i = 0; i < ids.n; i++) fprintf(stderr, " %d", ids.ids[i]);
                fprintf(stderr, "\n");
            }
            rp_buf back = {0};
            rp_tokenizer_decode(tok, ids.ids, ids.n, 0, &back);
            CHECK_MSG(back.len == tlen && memcmp(back.data, text, tlen) == 0, "round trip of \"%s\"", text);
            rp_buf_free(&back);
            rp_tokens_free(&ids);
            rp_json_free(j);
            lines++;
        }
        CHECK(lines == 15);
    }
    rp_buf_free(&jl);

    /* special tokens: parsed only when asked */
    rp_tokens ids = {0};
    const char *s = "<|im_start|>user\nhi<|im_end|>";
    st = rp_tokenizer_encode(tok, s, strlen(s), RP_TOK_PARSE_SPECIAL, &ids);
    CHECK(st == RP_OK && ids.n == 5 && ids.ids[0] == 1 && ids.ids[4] == 2);
    rp_tokens plain = {0};
    rp_tokenizer_encode(tok, "user\nhi", 7, 0, &plain);
    CHECK(plain.n == 3 && ids.n == 5 && memcmp(plain.ids, ids.ids + 1, 3 * sizeof(int32_t)) == 0);
    rp_buf out = {0};
    rp_tokenizer_decode(tok, ids.ids, ids.n, 1, &out);
    CHECK(strcmp(out.data, s) == 0);
    rp_buf_clear(&out);
    rp_tokenizer_decode(tok, ids.ids, ids.n, 0, &out);
    CHECK(strcmp(out.data, "user\nhi") == 0);
    rp_tokens_free(&plain);
    rp_tokens_free(&ids);
    CHECK(rp_tokenizer_encode(tok, "x", 1, RP_TOK_ADD_BOS, &ids) == RP_OK && ids.n == 2 && ids.ids[0] == 1);
    rp_tokens_free(&ids);
    /* bytes the vocabulary cannot show (never valid UTF-8) are dropped, not turned into <|endoftext|> */
    CHECK(rp_tokenizer_encode(tok, "a\xff\xf7" "b", 4, 0, &ids) == RP_OK && ids.n == 2);
    rp_tokens_free(&ids);

    /* chat: ChatML with the default system prompt */
    CHECK(rp_tokenizer_chat_style(tok) == RP_CHAT_CHATML);
    CHECK(strcmp(rp_tokenizer_chat_default_system(tok), "You are a helpful AI assistant named SmolLM, trained by Hugging Face") == 0);
    rp_chat_msg msgs[1] = {{"user", "What is the capital of France?"}};
    rp_buf_clear(&out);
    CHECK(rp_tokenizer_chat_format(tok, msgs, 1, 1, &out) == RP_OK);
    CHECK(strcmp(out.data, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                           "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n") == 0);
    rp_chat_msg bad[1] = {{"robot", "x"}};
    CHECK(rp_tokenizer_chat_format(tok, bad, 1, 1, &out) == RP_ERR_INVAL && strstr(rp_errmsg(), "robot"));

    /* llama.cpp's prompt tokens (plain and ChatML prompts) and its decoded continuations */
    if (!reference(ref, sizeof ref, "smollm2/greedy_q4_1.jsonl") || rp_read_file(ref, &jl) != RP_OK) printf("skip [mirror]: greedy_q4_1.jsonl\n");
    else {
        int lines = 0, chats = 0;
        for (char *line = jl.data, *nl; line && *line; line = nl ? nl + 1 : NULL) {
            nl = strchr(line, '\n');
            rp_json *j = NULL;
            if (rp_json_parse(line, nl ? (size_t)(nl - line) : strlen(line), &j) != RP_OK) { CHECK_MSG(0, "bad jsonl line: %s", rp_errmsg()); break; }
            size_t plen;
            const char *prompt = rp_json_strn(rp_json_get(j, "prompt"), &plen);
            int special = rp_json_bool(rp_json_get(j, "parse_special"), 0);
            const rp_json *want = rp_json_get(j, "prompt_tokens"), *gen = rp_json_get(j, "generated");
            rp_tokens ids = {0};
            CHECK(rp_tokenizer_encode(tok, prompt, plen, special ? RP_TOK_PARSE_SPECIAL : 0, &ids) == RP_OK);
            int same = ids.n == rp_json_len(want);
            for (size_t i = 0; same && i < ids.n; i++) same = ids.ids[i] == (int32_t)rp_json_num(rp_json_at(want, i), -1);
            CHECK_MSG(same, "prompt tokens of \"%.40s\"", prompt);
            /* the chat prompts are what our ChatML formatting writes for their user message */
            const char *u = strstr(prompt, "<|im_start|>user\n");
            if (special && u) {
                u += strlen("<|im_start|>user\n");
                const char *e = strstr(u, "<|im_end|>");
                char msg[512];
                snprintf(msg, sizeof msg, "%.*s", (int)(e ? e - u : 0), u);
                rp_chat_msg m = {"user", msg};
                rp_buf_clear(&out);
                CHECK(rp_tokenizer_chat_format(tok, &m, 1, 1, &out) == RP_OK && out.len == plen && memcmp(out.data, prompt, plen) == 0);
                chats++;
            }
            rp_tokens_free(&ids);
            for (size_t i = 0; i < rp_json_len(gen); i++) rp_tokens_push(&ids, (int32_t)rp_json_num(rp_json_at(gen, i), -1));
            rp_buf_clear(&out);
            size_t clen;
            const char *cont = rp_json_strn(rp_json_get(j, "continuation"), &clen);
            CHECK(rp_tokenizer_decode(tok, ids.ids, ids.n, 0, &out) == RP_OK);
            CHECK_MSG(out.len == clen && memcmp(out.data, cont, clen) == 0, "continuation of \"%.40s\": \"%s\"", prompt, out.data);
            rp_tokens_free(&ids);
            rp_json_free(j);
            lines++;
        }
        CHECK(lines == 6 && chats == 2);
    }
    rp_buf_free(&jl);
    rp_buf_free(&out);

    /* whole files, as README.md gives them (llama-tokenize --no-parse-special, no BOS) */
    whole_file(tok, "wikitext2/wiki.test.raw", RP_TOK_DEFAULT, 304830, "f1fc968436f59cc521729ce7380120ad247797684b8eb530062c486b00d9bc13", (int32_t[]){446, 6356, 389, 9226});
    whole_file(tok, "tinystories-valid-slice/tinystories_val.txt", RP_TOK_DEFAULT, 193745, "8fdcafc70bdc46dd6c6d009af01a7f793bfcc8262904a1cd87258a8fd66c6041", (int32_t[]){8103, 320, 30, 23204});
    whole_file(tok, "tinyshakespeare/input.txt", RP_TOK_DEFAULT, 341094, "48e900acd0e3537dce2baff773d0ba71fb54ce6c3890c24ddd5386963002b140", (int32_t[]){5345, 32062, 42, 198});
    round_trips(tok, "smollm2");
    rp_tokenizer_free(tok);
}

static void test_stories260k(void) {
    char path[4096];
    if (!mirror(path, sizeof path, "stories260K/tok512.bin")) { printf("skip [mirror]: tok512.bin not in REPRO_MIRROR\n"); return; }
    rp_tokenizer *tok = NULL;
    rp_status st = rp_tokenizer_load_llama2c(path, 512, &tok);
    CHECK_MSG(st == RP_OK, "%s", rp_errmsg());
    if (st != RP_OK) return;
    CHECK(rp_tokenizer_n_vocab(tok) == 512 && rp_tokenizer_bos(tok) == 1 && rp_tokenizer_eos(tok) == 2 && rp_tokenizer_adds_bos(tok));
    size_t len;
    const char *t403 = rp_tokenizer_token_text(tok, 403, &len);
    CHECK(t403 && len == 5 && memcmp(t403, " Once", 5) == 0);
    /* llama2.c prints a piece after BOS without its leading space */
    const char *p = rp_tokenizer_piece(tok, 1, 403, &len);
    CHECK(p && len == 4 && memcmp(p, "Once", 4) == 0);
    p = rp_tokenizer_piece(tok, 403, 407, &len);
    CHECK(p && len == 5 && memcmp(p, " upon", 5) == 0);
    p = rp_tokenizer_piece(tok, 400, 3 + '\n', &len);   /* byte token <0x0A> */
    CHECK(p && len == 1 && p[0] == '\n');
    rp_tokens ids = {0};
    CHECK(rp_tokenizer_encode(tok, "Once upon", 9, RP_TOK_DEFAULT, &ids) == RP_OK);
    CHECK(ids.n == 3 && ids.ids[0] == 1 && ids.ids[1] == 403 && ids.ids[2] == 407);
    rp_tokens_free(&ids);
    CHECK(rp_tokenizer_chat_style(tok) == RP_CHAT_PLAIN);
    whole_file(tok, "tinystories-valid-slice/tinystories_val.txt", RP_TOK_NO_BOS, 393018, "2da76ff0e7286c67790d8b7ce7f969a160101f1df817112861f9bd47b92913b9", (int32_t[]){301, 427, 309, 426});
    round_trips(tok, "tok512");
    /* the wrong vocabulary size is refused with both sizes named */
    rp_tokenizer *t2 = NULL;
    CHECK(rp_tokenizer_load_llama2c(path, 32000, &t2) == RP_ERR_FORMAT && strstr(rp_errmsg(), "holds 512 tokens, the model needs 32000"));
    CHECK(rp_tokenizer_load_llama2c(path, 500, &t2) == RP_ERR_FORMAT && strstr(rp_errmsg(), "left after 500 tokens"));
    rp_tokenizer_free(tok);
}

static void test_hostile(void) {
    /* max_len, then records {score, len, bytes} */
    unsigned char buf[64];
    int32_t maxlen = 4, len = 1000;
    float sc = 0;
    memcpy(buf, &maxlen, 4);
    memcpy(buf + 4, &sc, 4);
    memcpy(buf + 8, &len, 4);
    rp_tokenizer *t = NULL;
    CHECK(rp_tokenizer_llama2c_from_memory(buf, 16, 0, "evil.bin", &t) == RP_ERR_FORMAT && strstr(rp_errmsg(), "evil.bin: token 0: length 1000"));
    len = -5;
    memcpy(buf + 8, &len, 4);
    CHECK(rp_tokenizer_llama2c_from_memory(buf, 16, 0, "evil.bin", &t) == RP_ERR_FORMAT && strstr(rp_errmsg(), "length -5"));
    CHECK(rp_tokenizer_llama2c_from_memory(buf, 2, 0, "evil.bin", &t) == RP_ERR_FORMAT && strstr(rp_errmsg(), "too short"));
    CHECK(rp_tokenizer_llama2c_from_memory(buf, 10, 0, "evil.bin", &t) == RP_ERR_FORMAT && strstr(rp_errmsg(), "runs past the end"));
    /* a tiny valid vocabulary without byte tokens: unknown characters become <unk> (id 0), never a crash */
    unsigned char v[128];
    size_t n = 0;
    const char *toks[] = {"<unk>", "<s>", "</s>", " ", "a", " a"};
    memcpy(v, &maxlen, 4); n = 4;
    for (int i = 0; i < 6; i++) {
        float s = (float)i;
        int32_t l = (int32_t)strlen(toks[i]);
        memcpy(v + n, &s, 4); memcpy(v + n + 4, &l, 4); memcpy(v + n + 8, toks[i], (size_t)l);
        n += 8 + (size_t)l;
    }
    CHECK(rp_tokenizer_llama2c_from_memory(v, n, 6, "mini.bin", &t) == RP_OK);
    if (t) {
        rp_tokens ids = {0};
        CHECK(rp_tokenizer_encode(t, "a\x80" "a", 3, RP_TOK_NO_BOS, &ids) == RP_OK);
        CHECK(ids.n == 3 && ids.ids[0] == 5 && ids.ids[1] == 0 && ids.ids[2] == 4);
        int32_t badid = 77;
        rp_buf out = {0};
        CHECK(rp_tokenizer_decode(t, &badid, 1, 0, &out) == RP_ERR_RANGE);
        rp_buf_free(&out);
        rp_tokens_free(&ids);
        rp_tokenizer_free(t);
    }
}

/* Llama 2's vocabulary twice: the GGUF (U+2581 for spaces, typed tokens) and llama2.c's tokenizer.bin (plain
 * spaces, types inferred) must give the same ids; "Hello world" is [1, 15043, 3186] in Llama 2. */
static void test_llama2_vocab(void) {
    char p1[4096], p2[4096];
    if (!mirror(p1, sizeof p1, "gguf-tiny-random-llama/llama-2-tiny-random.gguf") || !mirror(p2, sizeof p2, "llama2c-tokenizer-32k/tokenizer.bin")) {
        printf("skip [mirror]: Llama 2 vocabularies not in REPRO_MIRROR\n");
        return;
    }
    rp_model_file *mf = NULL;
    rp_tokenizer *a = NULL, *b = NULL;
    CHECK(rp_model_file_open(p1, &mf) == RP_OK && rp_tokenizer_from_model_file(mf, &a) == RP_OK);
    rp_model_file_free(mf);
    CHECK(rp_tokenizer_load_llama2c(p2, 32000, &b) == RP_OK);
    if (!a || !b) { rp_tokenizer_free(a); rp_tokenizer_free(b); return; }
    CHECK(rp_tokenizer_kind_of(a) == RP_TOKENIZER_SPM && rp_tokenizer_adds_bos(a) && rp_tokenizer_chat_style(a) == RP_CHAT_PLAIN);
    rp_tokens x = {0}, y = {0};
    CHECK(rp_tokenizer_encode(a, "Hello world", 11, RP_TOK_DEFAULT, &x) == RP_OK);
    CHECK(x.n == 3 && x.ids[0] == 1 && x.ids[1] == 15043 && x.ids[2] == 3186);
    rp_tokens_free(&x);
    const char *files[] = {"wikitext2/wiki.test.raw", "tinyshakespeare/input.txt"};
    for (int k = 0; k < 2; k++) {
        char path[4096];
        rp_buf text = {0};
        if (!mirror(path, sizeof path, files[k]) || rp_read_file(path, &text) != RP_OK) continue;
        CHECK(rp_tokenizer_encode(a, text.data, text.len, RP_TOK_DEFAULT, &x) == RP_OK);
        CHECK(rp_tokenizer_encode(b, text.data, text.len, RP_TOK_DEFAULT, &y) == RP_OK);
        CHECK_MSG(x.n == y.n && memcmp(x.ids, y.ids, x.n * sizeof *x.ids) == 0, "%s: GGUF %zu ids, tokenizer.bin %zu ids", files[k], x.n, y.n);
        rp_buf back = {0};
        CHECK(rp_tokenizer_decode(a, x.ids, x.n, 0, &back) == RP_OK && back.len == text.len && memcmp(back.data, text.data, text.len) == 0);
        rp_buf_free(&back);
        rp_tokens_free(&x);
        rp_tokens_free(&y);
        rp_buf_free(&text);
    }
    rp_tokenizer_free(a);
    rp_tokenizer_free(b);
}

/* A hand-made byte-level BPE vocabulary (tests/fuzz/corpus/gguf/gpt2-tokenizer.gguf: ids 3..258 are the 256
 * byte characters in byte order, 259.. "He", "ll", "Hell", "Hello", "Ġw", "Ġwo" from the merges listed
 * there): the ids follow by hand from GPT-2's rules and the "smollm" digit split. */
static void test_tiny_bpe(void) {
    rp_model_file *mf = NULL;
    rp_tokenizer *t = NULL;
    if (rp_model_file_open("tests/fuzz/corpus/gguf/gpt2-tokenizer.gguf", &mf) != RP_OK) { printf("skip: run from the repository root\n"); return; }
    CHECK_MSG(rp_tokenizer_from_model_file(mf, &t) == RP_OK, "%s", rp_errmsg());
    rp_model_file_free(mf);
    if (!t) return;
    const char *s = "Hello world<|im_end|> 12 Hell";
    rp_tokens ids = {0};
    CHECK(rp_tokenizer_encode(t, s, strlen(s), RP_TOK_PARSE_SPECIAL, &ids) == RP_OK);
    int32_t want[] = {262, 264, 3 + 'r', 3 + 'l', 3 + 'd', 2, 3 + ' ', 3 + '1', 3 + '2', 3 + ' ', 261};
    CHECK(ids.n == sizeof want / sizeof want[0] && memcmp(ids.ids, want, sizeof want) == 0);
    CHECK(rp_tokenizer_chat_style(t) == RP_CHAT_CHATML && strcmp(rp_tokenizer_chat_default_system(t), "You are a test") == 0);
    rp_tokens_free(&ids);
    rp_tokenizer_free(t);
}

int main(void) {
    test_tiny_bpe();
    test_llama2_vocab();
    test_hostile();
    test_stories260k();
    test_smollm2();
    return checks_done("tokenizer");
}
