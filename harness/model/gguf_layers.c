/* gguf_layers.c: a model file without some of its decoder layers, written as a GGUF file that llama.cpp-compatible
 * readers load (what layer pruning and `repro export --drop` write). The kept blocks are renumbered 0..L'-1 in
 * their original order, <arch>.block_count says L', every tensor keeps its stored type and bytes (quantized
 * blocks are copied, never re-quantized), and "repro.prune.dropped" records the original indices. Metadata is
 * copied by rp_gguf_writer_copy_all_meta; a source without tokenizer keys (a llama2.c checkpoint) gets its
 * tokenizer .bin (found beside it) written as keys, so the file stands alone.
 * Invariant: nothing is written unless every kept tensor and key was accepted (the writer renames a
 * complete temporary file into place). */
#include "model/gguf_layers.h"
#include "model/gguf_write.h"
#include "model/tokenizer.h"
#include "util/buf.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The layer index of a "blk.<i>.<rest>" name (and where <rest> starts), or -1 for other tensors. */
static int block_of(const char *name, const char **rest) {
    if (strncmp(name, "blk.", 4) != 0) return -1;
    char *end;
    long i = strtol(name + 4, &end, 10);
    if (end == name + 4 || *end != '.' || i < 0 || i > 1000000) return -1;
    *rest = end + 1;
    return (int)i;
}

static rp_status build(rp_gguf_writer *w, const rp_model_file *f, const unsigned char *drop, int L, int kept) {
    RP_TRY(rp_gguf_writer_copy_all_meta(w, f));
    if (rp_model_file_meta_type(f, "tokenizer.ggml.model") == RP_META_NONE) {   /* llama2.c: its tokenizer.bin as keys */
        rp_tokenizer *tok;
        RP_TRY(rp_tokenizer_for_model_file(f, NULL, rp_model_file_weight(f, "token_embd.weight")->shape[0], &tok));
        rp_status st = rp_tokenizer_write_gguf(tok, w);
        rp_tokenizer_free(tok);
        RP_TRY(st);
    }
    const char *arch = rp_model_file_meta_string(f, "general.architecture");
    char key[256];
    snprintf(key, sizeof key, "%s.block_count", arch ? arch : "llama");
    RP_TRY(rp_gguf_writer_set_int(w, key, RP_GGUF_U32, kept));
    rp_buf list = {0};
    rp_status st = RP_OK;
    for (int l = 0; l < L && st == RP_OK; l++)
        if (drop[l]) st = rp_buf_printf(&list, "%s%d", list.len ? "," : "", l);
    if (st == RP_OK) st = rp_gguf_writer_set_string(w, "repro.prune.dropped", list.data ? list.data : "", list.len);
    rp_buf_free(&list);
    RP_TRY(st);
    int *renum = malloc((size_t)L * sizeof *renum);
    if (!renum) return rp_fail(RP_ERR_NOMEM, "dropping layers: out of memory");
    for (int l = 0, k = 0; l < L; l++) renum[l] = drop[l] ? -1 : k++;
    for (int i = 0; i < rp_model_file_n_weights(f) && st == RP_OK; i++) {
        const rp_weight *wt = rp_model_file_weight_at(f, i);
        const char *rest;
        int b = block_of(wt->name, &rest);
        char name[512];
        if (b >= L) { st = rp_fail(RP_ERR_FORMAT, "%s: tensor %s: block %d past the layer count %d", rp_model_file_path(f), wt->name, b, L); break; }
        if (b >= 0 && renum[b] < 0) continue;
        if (b >= 0) snprintf(name, sizeof name, "blk.%d.%s", renum[b], rest);
        else snprintf(name, sizeof name, "%s", wt->name);
        st = rp_gguf_writer_add_tensor(w, name, wt->dtype, wt->ndim, wt->shape, wt->data, wt->nbytes);
    }
    free(renum);
    return st;
}

/* Write f without the layers drop marks (see gguf_layers.h). */
rp_status rp_gguf_write_without_layers(const rp_model_file *f, const unsigned char *drop, int n, const char *path) {
    rp_llama_config cfg;
    RP_TRY(rp_model_file_llama_config(f, &cfg));
    if (n != cfg.n_layer)
        return rp_fail(RP_ERR_INVAL, "dropping layers: a mask of %d layers for %s, which has %d", n, rp_model_file_path(f), cfg.n_layer);
    int kept = 0;
    for (int l = 0; l < n; l++) kept += !drop[l];
    if (kept == 0) return rp_fail(RP_ERR_INVAL, "dropping all %d layers of %s leaves no model", n, rp_model_file_path(f));
    rp_gguf_writer *w = rp_gguf_writer_new();
    if (!w) return rp_fail(RP_ERR_NOMEM, "dropping layers: out of memory");
    rp_status st = build(w, f, drop, n, kept);
    if (st == RP_OK) st = rp_gguf_writer_write(w, path);
    rp_gguf_writer_free(w);
    return st == RP_OK ? RP_OK : rp_fail_ctx(st, "exporting %s to %s: ", rp_model_file_path(f), path);
}
