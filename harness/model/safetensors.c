/* safetensors.c: placeholder until the safetensors reader lands. */
#include "model/model_file_impl.h"

/* Whether the bytes look like a safetensors file. */
int rp_safetensors_sniff(const uint8_t *p, size_t n) { (void)p; (void)n; return 0; }
/* Parse a safetensors file. */
rp_status rp_safetensors_parse(rp_model_file *f) { return rp_fail(RP_ERR_UNSUPPORTED, "%s: safetensors not supported yet", f->path); }
