-- jamba_test.lua: the repro.jamba binding's contracts (run by `repro exec`): configurations by name and
-- by table (unknown keys and bad knobs raise naming them), the walk-based counts against the spec's
-- exact figures, a built model's count and methods (score, forward, generate, timing), fractional and
-- out-of-range token ids rejected, use after close raises.
local C = require("repro.jamba")
local jamba = require("jamba")

local T = require("tests.luacheck")
local check, errors_with = T.check, T.errors_with

local names = C.names()
check(#names == 10 and names[1] == "jamba-v0.1", "ten named configurations")
local cfg = C.config("jamba-v0.1")
check(cfg.n_layer == 32 and cfg.attn == 1 and cfg.mamba == 7 and cfg.moe_every == 2 and cfg.top_k == 2 and cfg.rope == 0, "released knobs")
errors_with(function() C.config("jamba-v0.1", { mamba = 6 }) end, "ratio a:m = 1:6 does not divide the block of l = 8", "bad ratio")
errors_with(function() C.config("jamba-v0.1", { top_k = 17 }) end, "top_k 17 must be in [1, n_experts = 16]", "top-K above n")
errors_with(function() C.config("jamba-v0.1", { bogus = 1 }) end, "unknown option 'bogus'", "unknown key")
errors_with(function() C.config("jamba-v0.1", { top_k = 1.5 }) end, "", "fractional knob")
errors_with(function() C.config("nope") end, "no configuration 'nope'", "unknown name")
local custom = C.config({ name = "jamba-v0.1-tiny", n_layer = 8, attn = 1, mamba = 3, attn_offset = 1 })
check(custom.n_layer == 8 and custom.mamba == 3, "overrides from a table")

local k = C.count("jamba-v0.1")
check(k.total == jamba.EXACT.jamba_total and k.active == jamba.EXACT.jamba_active, "Jamba exact counts")
check(k.kv_values_per_token * 2 == jamba.EXACT.jamba_kv_bytes_per_token, "KV bytes per token")
local tensors = C.tensors("jamba-v0.1")
local sum = 0
for _, t in ipairs(tensors) do sum = sum + t.numel end
check(#tensors == k.n_tensors and sum == k.total, "tensor list sums to the count")
check(tensors[1].name == "model.embed_tokens.weight" and tensors[1].shape[1] == 65536, "checkpoint names and shapes")
check(jamba.kv_bytes("llama-2-7b", 262144, 2) == 128 * jamba.GIB, "Llama-2 KV at 256K")

local m = C.new(custom, { seed = 5 })
local info = m:info()
check(info.n_params == C.count(custom).total, "built model count equals the walk")
local lp, aux = m:score({ 1, 2, 3, 4, 5, 6 })
check(#lp == 5 and lp[1] < 0 and aux >= 1 and aux <= 16, "score: log-probabilities and aux loss")
local logits = m:forward({ 1, 2, 3, 4, 5 })
check(#logits == info.vocab, "forward: one row of logits")
local toks, st = m:generate({ tokens = { 1, 2, 3 }, max_tokens = 4, seed = 3 })
check(#toks == 4 and st.n_prompt == 3, "generate")
local sec, bytes = m:time_decode({ context = 64, steps = 2 })
check(sec > 0 and bytes > 0, "time_decode")
errors_with(function() m:score({ 1, 2.5 }) end, "", "fractional token id")
errors_with(function() m:score({ 1, info.vocab }) end, "outside the vocabulary", "token id out of range")
errors_with(function() m:generate({ tokens = { 1 }, bogus = 1 }) end, "unknown option 'bogus'", "generate keys")
m:close()
errors_with(function() m:info() end, "used after close", "use after close")
m:close()
T.done("jamba_test.lua")
