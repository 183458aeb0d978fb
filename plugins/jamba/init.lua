-- init.lua: require("jamba"): the Lua side of the Jamba plugin (Lieber et al. 2024, "Jamba: A Hybrid
-- Transformer-Mamba Language Model"; spec shared/papers/jamba.md): the paper's reported numbers (Table 1,
-- Figure 2, Figure 3), the spec's exact counts, and the memory accounting built on the configurations'
-- tensor walks (repro.jamba), the scaled-down ablation variants shared by the training experiments, and
-- the synthetic in-context-learning tasks (Table 6 analogue). Written in the subset shared by Lua 5.4 and LuaJIT.
local C = require("repro.jamba")

local M = { VERSION = 2, C = C }

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

-- The ablation variants (paper §6): overrides of the scaled-down base configuration (jamba-v0.1-tiny's
-- knobs, 8 layers, byte vocabulary), and their labels.
M.VARIANTS = {
  attention = { attn = 1, mamba = 0, attn_offset = 0, moe_every = 0 },
  attention_rope = { attn = 1, mamba = 0, attn_offset = 0, moe_every = 0, rope = 1 },
  mamba = { attn = 0, mamba = 1, attn_offset = 0, moe_every = 0 },
  hybrid13 = { attn = 1, mamba = 3, attn_offset = 2, moe_every = 0 },
  hybrid17 = { attn = 1, mamba = 7, attn_offset = 4, moe_every = 0 },
  hybrid17_moe = { attn = 1, mamba = 7, attn_offset = 4, moe_every = 2, moe_offset = 1 },
  hybrid17_moe_rope = { attn = 1, mamba = 7, attn_offset = 4, moe_every = 2, moe_offset = 1, rope = 1 },
}
M.VARIANT_LABEL = { attention = "attention only", attention_rope = "attention only + RoPE", mamba = "Mamba only",
                    hybrid13 = "Jamba 1:3", hybrid17 = "Jamba 1:7", hybrid17_moe = "Jamba 1:7 + MoE",
                    hybrid17_moe_rope = "Jamba 1:7 + MoE + RoPE" }

--- The checked configuration of ablation variant `name` at width d_model with `experts` experts (top 2),
-- extra overriding any knob; an unknown variant raises naming the valid ones.
function M.variant_config(name, d_model, experts, extra)
  if not M.VARIANTS[name] then
    local valid = {}
    for k in pairs(M.VARIANTS) do valid[#valid + 1] = k end
    table.sort(valid)
    error("variant: unknown '" .. tostring(name) .. "' (valid: " .. table.concat(valid, ", ") .. ")", 0)
  end
  local c = { name = "jamba-v0.1-tiny", n_layer = 8, block_len = 8, d_model = d_model, n_head = 4, n_head_kv = 2,
              head_dim = math.floor(d_model / 4), ffn_dim = math.floor(d_model * 7 / 2), vocab = 256,
              d_state = 16, d_conv = 4, expand = 2, dt_rank = math.max(1, math.floor(d_model / 16)),
              n_experts = experts, top_k = 2, moe_renorm = 0, rope = 0, inner_norms = 1, tied = 0, init_std = 0.02 }
  for k, v in pairs(M.VARIANTS[name]) do c[k] = v end
  for k, v in pairs(extra or {}) do c[k] = v end
  return C.config(c)
end

--- A progress line on stderr for long training loops: call the returned function once per step; it
-- prints done/total, the rate and the ETA every `every` steps (wall seconds, whole-second clock).
function M.progress(total, what, every)
  local done, t0 = 0, os.time()
  every = every or 10
  return function()
    done = done + 1
    if done % every == 0 or done == total then
      local el = math.max(os.difftime(os.time(), t0), 1)
      io.stderr:write(string.format("\r%d/%d steps%s, %.1f steps/s, ETA %.0f s   ", done, total, what or "", done / el,
        el / done * (total - done)))
    end
  end
end

--- The learning rate at `step` (1-based) of `steps`: linear warm-up over `warmup` steps, then a cosine
-- decay to 10% of lr at the last step.
function M.lr_at(step, lr, warmup, steps)
  local warm = math.min(1, step / math.max(1, warmup))
  if step <= warmup then return lr * warm end
  return lr * (0.5 * (1 + math.cos(math.pi * (step - warmup) / math.max(1, steps - warmup))) * 0.9 + 0.1)
end

--- Train several models side by side, in lockstep: at each step every live job's `opt.batch` micro-batches
-- (job.next() -> ids [, mask]) go through repro.jamba's step_all (the trainers concurrently over the
-- machine's threads: make them with threads = 1), then each job takes its AdamW update (opt: steps, batch,
-- lr, warmup, clip, weight_decay; the learning rate M.lr_at's). after(job, step, r): r = step_all's values
-- for the job's micro-batches (r.loss[i] ...). A job whose update fails (a non-finite gradient: diverged)
-- gets job.diverged = step and job.error and leaves the group. stop() returning true ends training early.
-- The jobs' results equal training each alone with the same micro-batches.
function M.train_together(jobs, opt, after, stop)
  for step = 1, opt.steps do
    local live, trs, batches, masks = {}, {}, {}, {}
    for _, j in ipairs(jobs) do
      if not j.diverged then
        local b, m = {}, {}
        for i = 1, opt.batch do b[i], m[i] = j.next() end
        live[#live + 1] = j
        trs[#live], batches[#live], masks[#live] = j.tr, b, m
      end
    end
    if #live == 0 then return end
    local res = C.step_all(trs, batches, masks)
    local lr = M.lr_at(step, opt.lr, opt.warmup, opt.steps)
    for i, j in ipairs(live) do
      local ok, err = pcall(j.tr.update, j.tr, { lr = lr, scale = 1 / opt.batch, clip = opt.clip, weight_decay = opt.weight_decay })
      if ok then after(j, step, res[i]) else j.diverged, j.error = step, tostring(err) end
    end
    if stop and stop() then return end
  end
end

-- ---- synthetic in-context-learning tasks (Table 6 analogue; spec §3: "synthetic few-shot label format
-- task or multi-query associative recall"). Byte token ids; every sequence carries its own answers' key,
-- so only a model that reads its context can score above chance. ----
M.ICL = { SEP = 58, NL = 10, CONTENT = 64, LABELS = 160, KEYS = 64, VALUES = 160 }   -- ':' '\n' and id ranges

--- One few-shot label-format sequence: `shots` examples "x1..xk : L_c \n" then the query "x1..xk :",
-- each example's class c in {0, 1} fixed by its content (every x from the lower or the upper half of
-- `n_content` content tokens: learnable in the weights), its label word L_c one of two words drawn per
-- sequence from `n_labels` (arbitrary: only the examples say which word means which class). Both classes
-- appear among the shots. rand(a, b): an integer in [a, b]. Returns {ids, mask, answers}: ids ends with
-- the query's ':' followed by the right label (so ids can be trained on), mask[i] = 1 where ids[i+1] is
-- a label whose class was shown before (the only predictable labels), answers = {{pos=, want=, labels={L0, L1}}}
-- for the query (pos: index in ids of the ':' whose next token is the answer).
--- Figure 8's induction-like heads in a trained model (tr: a trainer or model with attention_maps): for
-- each attention head, the mean attention mass from each format sequence's query position (the final
-- separator, answers[1].pos) onto the prior label tokens (earlier positions holding one of its two label
-- words), and the mass a uniform head would put there (their count over the query's keys). Returns
-- {{layer=, head=, mass=, uniform=, ratio=}...} (ratio = mass / uniform) and, for the strongest head,
-- its rows over the sequences (a matrix for a heatmap). No attention layers: an empty list.
function M.induction_heads(tr, cfg, seqs)
  local heads, rows = {}, {}
  for _, layer in ipairs(C.attention_layers(cfg)) do
    local sums, uni, per = {}, 0, {}
    for si, e in ipairs(seqs) do
      local a = e.answers[1]
      local maps = tr:attention_maps(e.ids, { layer = layer, positions = { a.pos } })[1]
      local nl = 0
      for j = 1, a.pos - 1 do if e.ids[j] == a.labels[1] or e.ids[j] == a.labels[2] then nl = nl + 1 end end
      uni = uni + nl / a.pos
      for h, row in ipairs(maps) do
        local m = 0
        for j = 1, a.pos - 1 do if e.ids[j] == a.labels[1] or e.ids[j] == a.labels[2] then m = m + row[j] end end
        sums[h] = (sums[h] or 0) + m
        per[h] = per[h] or {}
        per[h][si] = row
      end
    end
    for h = 1, #sums do
      local mass, u = sums[h] / #seqs, uni / #seqs
      heads[#heads + 1] = { layer = layer, head = h, mass = mass, uniform = u, ratio = mass / u }
      rows[#heads] = per[h]
    end
  end
  local best
  for i, hd in ipairs(heads) do if not best or hd.ratio > heads[best].ratio then best = i end end
  return heads, best and heads[best], best and rows[best]
end

function M.icl_format_sequence(rand, shots, x_len, n_content, n_labels)
  local I = M.ICL
  if shots < 2 or x_len < 1 or n_content < 2 or n_content > 96 or n_labels < 2 or n_labels > 96 then
    error(string.format("icl format: shots %d (>= 2), x_len %d (>= 1), n_content %d (2..96), n_labels %d (2..96)",
      shots, x_len, n_content, n_labels), 0)
  end
  local l0 = rand(0, n_labels - 1)
  local l1 = rand(0, n_labels - 2)
  if l1 >= l0 then l1 = l1 + 1 end
  local labels = { I.LABELS + l0, I.LABELS + l1 }
  local classes = {}
  repeat
    local seen = { 0, 0 }
    for s = 1, shots + 1 do classes[s] = rand(0, 1); if s <= shots then seen[classes[s] + 1] = 1 end end
  until seen[1] + seen[2] == 2
  local half = math.floor(n_content / 2)
  local ids, mask, shown = {}, {}, {}
  for s = 1, shots + 1 do
    local c = classes[s]
    for _ = 1, x_len do
      ids[#ids + 1] = I.CONTENT + (c == 0 and rand(0, half - 1) or rand(half, n_content - 1))
      mask[#ids] = 0
    end
    ids[#ids + 1] = I.SEP
    mask[#ids] = shown[c] and 1 or 0
    ids[#ids + 1] = labels[c + 1]
    mask[#ids] = 0
    shown[c] = true
    if s <= shots then ids[#ids + 1] = I.NL; mask[#ids] = 0 end
  end
  mask[#ids] = nil   -- the last token predicts nothing
  return { ids = ids, mask = mask, answers = { { pos = #ids - 1, want = ids[#ids], labels = labels } } }
end

--- One multi-query associative-recall sequence (Zoology's MQAR): `pairs` key-value pairs "k v" (distinct
-- keys of `n_keys`, values of `n_values`, both drawn per sequence), then every key again in a shuffled
-- order, each followed by its value. Returns {ids, mask, answers} as icl_format_sequence, mask = 1 on the
-- queried keys (predicting their values), answers one per query.
function M.icl_recall_sequence(rand, pairs, n_keys, n_values)
  local I = M.ICL
  if pairs < 1 or n_keys < pairs or n_keys > 96 or n_values < 2 or n_values > 96 then
    error(string.format("icl recall: pairs %d (>= 1), n_keys %d (pairs..96), n_values %d (2..96)", pairs, n_keys, n_values), 0)
  end
  local keys, pool = {}, {}
  for i = 0, n_keys - 1 do pool[i + 1] = i end
  for i = 1, pairs do   -- a partial Fisher-Yates draw of distinct keys
    local j = rand(i, n_keys)
    pool[i], pool[j] = pool[j], pool[i]
    keys[i] = I.KEYS + pool[i]
  end
  local value, ids, mask = {}, {}, {}
  for i = 1, pairs do
    value[keys[i]] = I.VALUES + rand(0, n_values - 1)
    ids[#ids + 1] = keys[i]; mask[#ids] = 0
    ids[#ids + 1] = value[keys[i]]; mask[#ids] = 0
  end
  local order = {}
  for i = 1, pairs do order[i] = keys[i] end
  for i = pairs, 2, -1 do local j = rand(1, i); order[i], order[j] = order[j], order[i] end
  local answers = {}
  for i = 1, pairs do
    ids[#ids + 1] = order[i]; mask[#ids] = 1
    answers[#answers + 1] = { pos = #ids, want = value[order[i]] }
    ids[#ids + 1] = value[order[i]]; mask[#ids] = 0
  end
  mask[#ids] = nil
  return { ids = ids, mask = mask, answers = answers }
end

return M
