/* lm_model.h: an engine model seen through the evaluation module's LM interface (eval/lm.h). Evaluation
 * adapts to the engine (this file lives in eval/ and uses only nn/llama.h), never the other way round. */
#ifndef RP_EVAL_LM_MODEL_H
#define RP_EVAL_LM_MODEL_H
#include "eval/lm.h"
#include "nn/llama.h"

/* The rp_lm of a model (with a tokenizer). Scoring runs on a session the model keeps for it (created on
 * first use with n_ctx = min(context length, 2048), freed with the model); the rp_lm is valid while the
 * model lives. */
rp_lm rp_model_as_lm(rp_model *m);

#endif
