-- init.lua: require("jamba"): the Lua side of the Jamba plugin (Lieber et al. 2024, "Jamba: A Hybrid
-- Transformer-Mamba Language Model"; spec shared/papers/jamba.md): the paper's reported numbers (Table 1,
-- Figure 2, Figure 3), the spec's exact counts, and the memory accounting built on the configurations'
-- tensor walks (repro.jamba). Written in the subset shared by Lua 5.4 and LuaJIT.
local C = require("repro.jamba")

local M = { VERSION = 1, C = C }

M.GIB = 1024 * 1024 * 1024

-- Table 1 (Sec. 1), 16-bit, KV cache at 256K tokens. The paper writes "GB"; the values are GiB.
M.TABLE1 = {
  { config = "llama-2-7b", label = "Llama-2 7B", total = 6.7e9, active = 6.7e9, kv_gib = 128, digits = 1 },
  { config = "mistral-7b", label = "Mistral 7B", total = 7.2e9, active = 7.2e9, kv_gib = 32, digits = 1 },
  { config = "mixtral-8x7b", label = "Mixtral 8x7B", total = 46.7e9, active = 12.9e9, kv_gib = 32, digits = 1 },
  { config = "jamba-v0.1", label = "Jamba", total = 52e9, active = 12e9, kv_gib = 4, digits = 0 },
}

-- The spec's exact counts (§1.4, computed from the released config) and first-principles checks (§2).
M.EXACT = {
  jamba_total = 51570323328, jamba_active = 12110311296, jamba_kv_bytes_per_token = 16384,
  jamba_mamba_state_values = 4587520,
  mixtral_total_2d = 46.70e9, mixtral_active_2d = 12.88e9, llama_total_2d = 6.74e9, mistral_total_2d = 7.24e9,
}

-- Figure 2 (Sec. 3.1): longest context on one 80GB A100. The paper claims Jamba 2x Mixtral and 7x
-- Llama-2-70B; the release and model card state 140K tokens for Jamba with 8-bit weights (Mamba kept in
-- 16-bit); a secondary summary gives Mixtral 64K and Llama-2-70B 16K.
M.FIG2 = { ratio_mixtral = 2, ratio_llama70b = 7, jamba_release = 140000, mixtral_secondary = 64000, llama70b_secondary = 16000 }

--- Bytes of the weights of cfg at `bytes` per parameter; with keep_mamba, Mamba tensors stay 16-bit
-- (the model card's llm_int8_skip_modules = ["mamba"]). Sums the configuration's tensor walk.
function M.weight_bytes(cfg, bytes, keep_mamba)
  local total = 0
  for _, t in ipairs(C.tensors(cfg)) do
    local b = bytes
    if keep_mamba and t.name:find(".mamba.", 1, true) then b = 2 end
    total = total + t.numel * b
  end
  return total
end

--- KV cache bytes of cfg for `tokens` tokens at `bytes` per value (from the walk's per-token count).
function M.kv_bytes(cfg, tokens, bytes)
  return C.count(cfg).kv_values_per_token * tokens * bytes
end

--- Longest context whose KV cache fits beside the weights in gpu_bytes (the KV-only bound: activations
-- and framework memory not counted); 0 when the weights alone do not fit.
function M.max_context(cfg, gpu_bytes, weight_bytes, kv_value_bytes)
  local free = gpu_bytes - weight_bytes
  if free <= 0 then return 0 end
  local per = C.count(cfg).kv_values_per_token * kv_value_bytes
  if per == 0 then return math.huge end
  return math.floor(free / per)
end

return M
