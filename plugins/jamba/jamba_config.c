/* jamba_config.c: the named configurations (the released Jamba-v0.1 and the paper's Table 1 peers, each
 * with a "-tiny" version that keeps the layer pattern: depth, a:m, e, n, K and head ratios, at d_model 64),
 * the knob checks, and which mixer / feed-forward each layer has.
 * Sources: HF transformers' Jamba / Mixtral / Mistral / Llama configs for the released models (spec §1.2).
 * Invariant: every entry of the table passes rp_jamba_config_check. */
#include <stdio.h>
#include <string.h>
#include "plugins/jamba/jamba.h"

/* name, n_layer, l, a, m, attn_offset, e, moe_offset, n, K, renorm, d, H, KV, hd, ffn, vocab, N, d_conv,
 * expand, dt_rank, conv_bias, inner_norms, rope, tied, rope_theta, eps, init_std */
static const rp_jamba_config CONFIGS[] = {
    { "jamba-v0.1", 32, 8, 1, 7, 4, 2, 1, 16, 2, 0, 4096, 32, 8, 128, 14336, 65536, 16, 4, 2, 256, 1, 1, 0, 0, 10000, 1e-6f, 0.02f },
    { "mixtral-8x7b", 32, 1, 1, 0, 0, 1, 0, 8, 2, 1, 4096, 32, 8, 128, 14336, 32000, 16, 4, 2, 256, 1, 1, 1, 0, 1e6f, 1e-5f, 0.02f },
    { "mistral-7b", 32, 1, 1, 0, 0, 0, 0, 1, 1, 0, 4096, 32, 8, 128, 14336, 32000, 16, 4, 2, 256, 1, 1, 1, 0, 10000, 1e-5f, 0.02f },
    { "llama-2-7b", 32, 1, 1, 0, 0, 0, 0, 1, 1, 0, 4096, 32, 32, 128, 11008, 32000, 16, 4, 2, 256, 1, 1, 1, 0, 10000, 1e-5f, 0.02f },
    { "llama-2-70b", 80, 1, 1, 0, 0, 0, 0, 1, 1, 0, 8192, 64, 8, 128, 28672, 32000, 16, 4, 2, 256, 1, 1, 1, 0, 10000, 1e-5f, 0.02f },
    { "jamba-v0.1-tiny", 32, 8, 1, 7, 4, 2, 1, 16, 2, 0, 64, 4, 1, 16, 224, 256, 16, 4, 2, 4, 1, 1, 0, 0, 10000, 1e-6f, 0.02f },
    { "mixtral-8x7b-tiny", 32, 1, 1, 0, 0, 1, 0, 8, 2, 1, 64, 4, 1, 16, 224, 256, 16, 4, 2, 4, 1, 1, 1, 0, 1e6f, 1e-5f, 0.02f },
    { "mistral-7b-tiny", 32, 1, 1, 0, 0, 0, 0, 1, 1, 0, 64, 4, 1, 16, 224, 256, 16, 4, 2, 4, 1, 1, 1, 0, 10000, 1e-5f, 0.02f },
    { "llama-2-7b-tiny", 32, 1, 1, 0, 0, 0, 0, 1, 1, 0, 64, 4, 4, 16, 172, 256, 16, 4, 2, 4, 1, 1, 1, 0, 10000, 1e-5f, 0.02f },
    { "llama-2-70b-tiny", 80, 1, 1, 0, 0, 0, 0, 1, 1, 0, 64, 8, 1, 8, 224, 256, 16, 4, 2, 4, 1, 1, 1, 0, 10000, 1e-5f, 0.02f },
};
#define N_CONFIGS ((int)(sizeof CONFIGS / sizeof CONFIGS[0]))

static const char *const NAMES[] = { "jamba-v0.1", "mixtral-8x7b", "mistral-7b", "llama-2-7b", "llama-2-70b",
    "jamba-v0.1-tiny", "mixtral-8x7b-tiny", "mistral-7b-tiny", "llama-2-7b-tiny", "llama-2-70b-tiny", NULL };

const char *const *rp_jamba_config_names(void) { return NAMES; }

rp_status rp_jamba_config_get(const char *name, rp_jamba_config *out) {
    for (int i = 0; i < N_CONFIGS; i++)
        if (name && strcmp(name, CONFIGS[i].name) == 0) { *out = CONFIGS[i]; return RP_OK; }
    char list[512] = "";
    for (int i = 0; NAMES[i]; i++) { if (i) strcat(list, ", "); strcat(list, NAMES[i]); }
    return rp_fail(RP_ERR_NOTFOUND, "jamba: no configuration '%s' (known: %s)", name ? name : "(null)", list);
}

#define NEED(cond, ...) do { if (!(cond)) return rp_fail(RP_ERR_INVAL, __VA_ARGS__); } while (0)

rp_status rp_jamba_config_check(const rp_jamba_config *c) {
    const char *n = c->name[0] ? c->name : "(unnamed)";
    NEED(c->n_layer >= 1, "jamba config '%s': n_layer must be >= 1 (got %d)", n, c->n_layer);
    NEED(c->block_len >= 1, "jamba config '%s': block_len (l, layers per block) must be >= 1 (got %d)", n, c->block_len);
    NEED(c->n_layer % c->block_len == 0, "jamba config '%s': n_layer %d is not a whole number of blocks of l = %d layers",
         n, c->n_layer, c->block_len);
    NEED(c->attn >= 0 && c->mamba >= 0 && c->attn + c->mamba >= 1,
         "jamba config '%s': ratio a:m = %d:%d needs a, m >= 0 and a + m >= 1", n, c->attn, c->mamba);
    NEED(c->block_len % (c->attn + c->mamba) == 0,
         "jamba config '%s': ratio a:m = %d:%d does not divide the block of l = %d layers (a + m = %d)",
         n, c->attn, c->mamba, c->block_len, c->attn + c->mamba);
    NEED(c->attn_offset >= 0 && c->attn_offset < c->attn + c->mamba,
         "jamba config '%s': attn_offset %d outside [0, a + m = %d)", n, c->attn_offset, c->attn + c->mamba);
    NEED(c->moe_every >= 0, "jamba config '%s': moe_every (e) must be >= 0, 0 meaning no MoE (got %d)", n, c->moe_every);
    if (c->moe_every > 0) {
        NEED(c->moe_offset >= 0 && c->moe_offset < c->moe_every,
             "jamba config '%s': moe_offset %d outside [0, e = %d)", n, c->moe_offset, c->moe_every);
        NEED(c->n_experts >= 1, "jamba config '%s': n_experts must be >= 1 (got %d)", n, c->n_experts);
        NEED(c->top_k >= 1 && c->top_k <= c->n_experts,
             "jamba config '%s': top_k %d must be in [1, n_experts = %d]", n, c->top_k, c->n_experts);
    }
    NEED(c->d_model >= 1 && c->vocab >= 1 && c->ffn_dim >= 1, "jamba config '%s': d_model %d, vocab %d, ffn_dim %d must be >= 1",
         n, c->d_model, c->vocab, c->ffn_dim);
    if (c->attn > 0) {
        NEED(c->n_head >= 1 && c->n_head_kv >= 1 && c->head_dim >= 1,
             "jamba config '%s': n_head %d, n_head_kv %d, head_dim %d must be >= 1", n, c->n_head, c->n_head_kv, c->head_dim);
        NEED(c->n_head % c->n_head_kv == 0, "jamba config '%s': n_head %d is not a multiple of n_head_kv %d", n, c->n_head, c->n_head_kv);
        NEED(!c->rope || (c->head_dim % 2 == 0 && c->rope_theta > 0),
             "jamba config '%s': RoPE needs an even head_dim (got %d) and rope_theta > 0 (got %g)", n, c->head_dim, (double)c->rope_theta);
    }
    if (c->mamba > 0) {
        NEED(c->d_state >= 1 && c->d_state <= 256, "jamba config '%s': d_state %d outside [1, 256]", n, c->d_state);
        NEED(c->d_conv >= 1 && c->d_conv <= 64, "jamba config '%s': d_conv %d outside [1, 64]", n, c->d_conv);
        NEED(c->expand >= 1 && c->dt_rank >= 1, "jamba config '%s': expand %d and dt_rank %d must be >= 1", n, c->expand, c->dt_rank);
    }
    NEED(c->norm_eps > 0 && c->init_std > 0, "jamba config '%s': norm_eps %g and init_std %g must be > 0", n,
         (double)c->norm_eps, (double)c->init_std);
    return RP_OK;
}

int rp_jamba_layer_is_attn(const rp_jamba_config *c, int i) {
    int g = c->attn + c->mamba;
    return ((i - c->attn_offset) % g + g) % g < c->attn;
}

int rp_jamba_layer_is_moe(const rp_jamba_config *c, int i) {
    return c->moe_every > 0 && i % c->moe_every == c->moe_offset;
}

int rp_jamba_d_inner(const rp_jamba_config *c) { return c->expand * c->d_model; }
