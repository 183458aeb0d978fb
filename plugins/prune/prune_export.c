/* prune_export.c: a pruned model as a GGUF file that llama.cpp-compatible readers load: the engine's
 * rp_gguf_write_without_layers (model/gguf_layers.c: kept blocks renumbered, tensors copied byte for byte,
 * "repro.prune.dropped" recorded, a llama2.c tokenizer written as keys), which `repro export --drop` shares. */
#include "prune.h"
#include "model/gguf_layers.h"

rp_status rp_prune_export(const rp_model_file *f, const unsigned char *drop, int n, const char *path) {
    rp_status st = rp_gguf_write_without_layers(f, drop, n, path);
    return st == RP_OK ? RP_OK : rp_fail_ctx(st, "prune export: ");
}
