/* gguf_layers.h: writing a model file without some of its decoder layers (layer pruning's export, and
 * `repro export --drop`): kept blocks renumbered in order, tensors copied byte for byte, the dropped indices
 * recorded under "repro.prune.dropped". */
#ifndef RP_MODEL_GGUF_LAYERS_H
#define RP_MODEL_GGUF_LAYERS_H
#include "model/model_file.h"
#include "util/err.h"

/* Write f (a Llama-family model of n layers) to path as GGUF without the layers l where drop[l] != 0. A mask of
 * another length or one dropping every layer is RP_ERR_INVAL; the file appears only when complete. */
rp_status rp_gguf_write_without_layers(const rp_model_file *f, const unsigned char *drop, int n, const char *path);

#endif
