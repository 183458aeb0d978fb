/* prune_export.c: a pruned model as a GGUF file that llama.cpp-compatible readers load. The kept blocks are
 * renumbered 0..L'-1 in their original order, <arch>.block_count says L', every tensor keeps its stored
 * type and bytes (quantized blocks are copied, never re-quantized), and "repro.prune.dropped" records the
 * original indices. Metadata of a GGUF source is copied with its types; a llama2.c or safetensors source's
 * synthesized integers and floats are written as u32 and f32, the types llama.cpp reads those keys as.
 * Invariant: nothing is written unless every kept tensor and key was accepted (the writer renames a
 * complete temporary file into place). */
#include "prune.h"
#include "model/gguf_write.h"
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

/* One metadata entry of a non-GGUF source, with the types llama.cpp expects. */
static rp_status copy_converted(rp_gguf_writer *w, const rp_model_file *f, const char *key) {
    int64_t iv;
    double fv;
    switch (rp_model_file_meta_type(f, key)) {
    case RP_META_INT:
        if (!rp_model_file_meta_int(f, key, &iv)) break;
        return rp_gguf_writer_set_int(w, key, iv >= 0 && iv <= UINT32_MAX ? RP_GGUF_U32 : RP_GGUF_I64, iv);
    case RP_META_FLOAT:
        if (!rp_model_file_meta_float(f, key, &fv)) break;
        return rp_gguf_writer_set_float(w, key, RP_GGUF_F32, fv);
    default: break;
    }
    return rp_gguf_writer_copy_meta(w, f, key);
}

static rp_status build(rp_gguf_writer *w, const rp_model_file *f, const unsigned char *drop, int L, int kept) {
    int is_gguf = strcmp(rp_model_file_format(f), "gguf") == 0;
    for (int i = 0; i < rp_model_file_n_meta(f); i++) {
        const char *key = rp_model_file_meta_key_at(f, i);
        RP_TRY(is_gguf ? rp_gguf_writer_copy_meta(w, f, key) : copy_converted(w, f, key));
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
    if (!renum) return rp_fail(RP_ERR_NOMEM, "prune export: out of memory");
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

rp_status rp_prune_export(const rp_model_file *f, const unsigned char *drop, int n, const char *path) {
    rp_llama_config cfg;
    RP_TRY(rp_model_file_llama_config(f, &cfg));
    if (n != cfg.n_layer)
        return rp_fail(RP_ERR_INVAL, "prune export: a drop mask of %d layers for %s, which has %d", n, rp_model_file_path(f), cfg.n_layer);
    int kept = 0;
    for (int l = 0; l < n; l++) kept += !drop[l];
    if (kept == 0) return rp_fail(RP_ERR_INVAL, "prune export: dropping all %d layers of %s leaves no model", n, rp_model_file_path(f));
    rp_gguf_writer *w = rp_gguf_writer_new();
    if (!w) return rp_fail(RP_ERR_NOMEM, "prune export: out of memory");
    rp_status st = build(w, f, drop, n, kept);
    if (st == RP_OK) st = rp_gguf_writer_write(w, path);
    rp_gguf_writer_free(w);
    return st == RP_OK ? RP_OK : rp_fail_ctx(st, "exporting %s to %s: ", rp_model_file_path(f), path);
}
