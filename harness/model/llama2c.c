/* llama2c.c: placeholder until the llama2.c checkpoint reader lands. */
#include "model/model_file_impl.h"

/* Parse a llama2.c checkpoint. */
rp_status rp_llama2c_parse(rp_model_file *f) {
    return rp_fail(RP_ERR_FORMAT, "%s: not a GGUF file (bad magic)", f->path);
}
