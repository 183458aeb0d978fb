/* tokenizer_find.c: the tokenizer that goes with an open model file: a GGUF's own tokenizer keys, or, for a
 * llama2.c checkpoint (which has none), the tokenizer .bin given or found beside it (tokenizer.bin, else the
 * first tok*.bin). Shared by model loading and the exports that write the tokenizer into a GGUF. */
#include "model/tokenizer.h"
#include <dirent.h>
#include <stdio.h>
#include <string.h>

/* The tokenizer file of a llama2.c checkpoint: tokenizer.bin or tok*.bin beside it. */
static rp_status find_llama2c_tokenizer(const char *model_path, char *out, size_t cap) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", model_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    snprintf(out, cap, "%s/tokenizer.bin", dir);
    FILE *fp = fopen(out, "rb");
    if (fp) { fclose(fp); return RP_OK; }
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            if (strncmp(e->d_name, "tok", 3) == 0 && n > 4 && strcmp(e->d_name + n - 4, ".bin") == 0) {
                snprintf(out, cap, "%s/%s", dir, e->d_name);
                closedir(d);
                return RP_OK;
            }
        }
        closedir(d);
    }
    return rp_fail(RP_ERR_NOTFOUND, "%s: llama2.c checkpoint without a tokenizer: no tokenizer.bin or tok*.bin in %s (pass a tokenizer path)", model_path, dir);
}

/* The tokenizer of an open model file (GGUF keys, or a llama2.c tokenizer .bin: tokenizer_path or found). */
rp_status rp_tokenizer_for_model_file(const rp_model_file *f, const char *tokenizer_path, int n_vocab, rp_tokenizer **out) {
    *out = NULL;
    if (strcmp(rp_model_file_format(f), "llama2c") != 0) return rp_tokenizer_from_model_file(f, out);
    char tp[4200];
    if (tokenizer_path) snprintf(tp, sizeof tp, "%s", tokenizer_path);
    else RP_TRY(find_llama2c_tokenizer(rp_model_file_path(f), tp, sizeof tp));
    return rp_tokenizer_load_llama2c(tp, n_vocab, out);
}
