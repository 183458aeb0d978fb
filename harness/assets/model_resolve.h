/* model_resolve.h: the host's step before the engine: from what a user types (a file path, an asset name
 * such as "smollm2-135m-instruct", or "asset/file") to the model file the engine opens. The engine itself
 * takes only paths (nn/llama.h); asset names, the mirror and downloads stay on the host's side. */
#ifndef RP_ASSETS_MODEL_RESOLVE_H
#define RP_ASSETS_MODEL_RESOLVE_H
#include <stddef.h>
#include "nn/llama.h"
#include "util/err.h"

/* The file a model name stands for: an existing file path as is, else an asset name fetched and verified
 * by the asset registry (a folder asset gives its .gguf, else .safetensors, else model .bin). */
rp_status rp_model_resolve(const char *name, char *out, size_t n);
/* rp_model_load after rp_model_resolve. */
rp_status rp_model_load_named(const char *name, const rp_model_opts *opts, rp_model **out);

#endif
