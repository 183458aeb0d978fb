/* fuzz_gguf.c: libFuzzer target for the model-file parsers (GGUF, and llama2.c for anything that is not
 * GGUF): parse from memory, then touch every accessor the engine uses, so that any offset the parser
 * accepted but should not have shows up under AddressSanitizer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "model/model_file.h"
#include "model/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a private copy so reads past the end are caught even when libFuzzer's buffer is larger */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    rp_model_file *f = NULL;
    if (rp_model_file_open_memory(copy, size, "fuzz.gguf", &f) == RP_OK) {
        volatile uint8_t sink = 0;
        for (int i = 0; i < rp_model_file_n_weights(f); i++) {
            const rp_weight *w = rp_model_file_weight_at(f, i);
            if (w->nbytes) sink ^= ((const uint8_t *)w->data)[0] ^ ((const uint8_t *)w->data)[w->nbytes - 1];
            if (rp_model_file_weight(f, w->name) != w) abort();
        }
        for (int i = 0; i < rp_model_file_n_meta(f); i++) {
            const char *k = rp_model_file_meta_key_at(f, i);
            int64_t iv; double fv; size_t len;
            rp_model_file_meta_int(f, k, &iv);
            rp_model_file_meta_float(f, k, &fv);
            const char *s = rp_model_file_meta_string(f, k);
            if (s) sink ^= (uint8_t)strlen(s);
            int64_t n = rp_model_file_meta_array_len(f, k);
            for (int64_t j = 0; j < n && j < 64; j++) {
                const char *e = rp_model_file_meta_array_string(f, k, j, &len);
                if (e && len) sink ^= (uint8_t)(e[0] ^ e[len - 1]);
                rp_model_file_meta_array_int(f, k, j, &iv);
                rp_model_file_meta_array_float(f, k, j, &fv);
            }
        }
        rp_llama_config cfg;
        rp_model_file_llama_config(f, &cfg);
        /* the tokenizer metadata is as hostile as the rest */
        rp_tokenizer *tok = NULL;
        if (rp_tokenizer_from_model_file(f, &tok) == RP_OK) {
            static const char text[] = "<|im_start|>Hello  world 123 don't caf\xc3\xa9 \xff\n";
            rp_tokens ids = {0};
            rp_buf out = {0};
            if (rp_tokenizer_encode(tok, text, sizeof text - 1, RP_TOK_PARSE_SPECIAL, &ids) != RP_OK) abort();
            if (rp_tokenizer_decode(tok, ids.ids, ids.n, 1, &out) != RP_OK) abort();
            rp_chat_msg m = {"user", "hi"};
            if (rp_tokenizer_chat_format(tok, &m, 1, 1, &out) != RP_OK) abort();
            rp_tokens_free(&ids);
            rp_buf_free(&out);
            rp_tokenizer_free(tok);
        }
        (void)sink;
        rp_model_file_free(f);
    }
    free(copy);
    return 0;
}
