-- init.lua: require("sdpo"): the Lua side of the sDPO plugin (Kim et al. 2024, "sDPO: Don't Use Your Data All at
-- Once", arXiv 2403.19270): the staged preference data through the asset registry, chat-template encoding of
-- pairs (the same template for chosen and rejected; the loss sees response tokens only), the data split into
-- T chunks, reference log-probabilities cached on disk per (reference weights, data), DPO training through
-- repro.train's per-sequence loss hook, the stepwise procedure (whole, or one step at a time with the epochs'
-- orders drawn up front and trainer checkpoints between steps, for runs made of memo units), and the paper's
-- reported numbers.
-- Invariants: a batch of P pairs is 2P rows, chosen then rejected per pair (the layout sdpo.dpo_loss expects);
-- the reference of step t is the trainer's state at the start of step t (M_{t-1}), keyed by tr:digest().
-- Written in the subset shared by Lua 5.4 and LuaJIT.
local C = require("repro.sdpo")
local assets = require("repro.assets")

local M = { VERSION = 2, C = C }

-- The staged preference data (asset, file, record format). Orca: 284 pairs (the paper: 12.9K); UltraFeedback:
-- 1,000 train + 200 held-out pairs (the paper: 60.8K); HH-RLHF: the helpful and harmless test sets.
M.DATA = {
  orca = { asset = "orca-dpo-pairs-slice", file = "validation.jsonl", format = "orca" },
  ultrafeedback = { asset = "ultrafeedback-binarized-slice", file = "train_clean.jsonl", format = "ultrafeedback" },
  ultrafeedback_eval = { asset = "ultrafeedback-binarized-slice", file = "eval_clean.jsonl", format = "ultrafeedback" },
  hh_helpful = { asset = "hh-rlhf", file = "helpful-base-test.jsonl.gz", format = "hh" },
  hh_harmless = { asset = "hh-rlhf", file = "harmless-base-test.jsonl.gz", format = "hh" },
}

--- Load a staged preference set by name (M.DATA); opts.ctx records the asset in the run, opts.limit keeps the
--- first n pairs (0 or nil: all; more than the set holds is an error naming both). Each pair gets .source = name.
function M.load(name, opts)
  opts = opts or {}
  local d = M.DATA[name]
  if not d then
    local names = {}
    for k in pairs(M.DATA) do names[#names + 1] = k end
    table.sort(names)
    error(string.format("sdpo.load: unknown data set '%s' (valid: %s)", tostring(name), table.concat(names, ", ")), 2)
  end
  local path = opts.ctx and opts.ctx:asset(d.asset, d.file) or assets.path(d.asset, d.file)
  local all = C.load_pairs(path, d.format)
  if opts.limit and opts.limit > #all then
    error(string.format("sdpo.load: %s asks for %d pairs, %s holds %d", name, opts.limit, path, #all), 2)
  end
  local out = {}
  for i = 1, (opts.limit and opts.limit > 0) and math.min(opts.limit, #all) or #all do
    all[i].source = name
    out[#out + 1] = all[i]
  end
  return out
end

--- An encoder over a repro.model's tokenizer and chat template: prompt(messages) -> ids ending with the
--- assistant turn's opening; response(messages, text) -> ids of the assistant turn's text and its closing, as
--- the template writes them after that prompt. Chosen and rejected go through the same two calls.
function M.chat_encoder(m)
  local info = m:info()
  local function ids(text, bos) return m:tokenize(text, { special = true, bos = bos }) end
  local enc = {}
  function enc.prompt(msgs) return ids(m:chat_format(msgs, { assistant = true }), info.add_bos) end
  function enc.response(msgs, text)
    local p = m:chat_format(msgs, { assistant = true })
    local convo = {}
    for i = 1, #msgs do convo[i] = msgs[i] end
    convo[#convo + 1] = { role = "assistant", content = text }
    local full = m:chat_format(convo, { assistant = false })
    if full:sub(1, #p) ~= p then error("sdpo.chat_encoder: the template's prompt is not a prefix of the conversation", 2) end
    return ids(full:sub(#p + 1), false)
  end
  return enc
end

-- The last n of a list and the first n of a list.
local function tail(t, n) local o = {} for i = #t - n + 1, #t do o[#o + 1] = t[i] end return o end
local function head(t, n) local o = {} for i = 1, n do o[i] = t[i] end return o end

--- Encode pairs into examples of at most T+1 tokens per sequence: {prompt=ids, chosen=ids, rejected=ids,
--- source=, score=, record=, truncated=bool}. The prompt is cut from the left and the responses from the
--- right, the same prompt for both responses; at least half the window is left to the responses.
function M.encode(enc, pairs, T)
  local out, n = {}, T + 1
  for i, p in ipairs(pairs) do
    local pr = enc.prompt(p.messages)
    local c, r = enc.response(p.messages, p.chosen), enc.response(p.messages, p.rejected)
    local longest = math.max(#c, #r)
    local keep_r = math.min(longest, math.max(n - #pr, math.floor(n / 2)))
    local keep_p = math.min(#pr, n - keep_r)
    local room = n - keep_p
    out[i] = { prompt = tail(pr, keep_p), chosen = head(c, math.min(#c, room)), rejected = head(r, math.min(#r, room)),
               source = p.source, score = p.score, record = p.record,
               truncated = keep_p < #pr or #c > room or #r > room }
  end
  return out
end

--- The trainer rows of one sequence (prompt ++ response) padded to width W: tokens, targets, mask (1 where the
--- target is a response token).
function M.row(prompt, resp, W)
  local seq = {}
  for i = 1, #prompt do seq[i] = prompt[i] end
  for i = 1, #resp do seq[#seq + 1] = resp[i] end
  local tok, tgt, mask = {}, {}, {}
  for t = 1, W do
    tok[t] = seq[t] or 0
    tgt[t] = seq[t + 1] or 0
    mask[t] = (seq[t + 1] ~= nil and t + 1 > #prompt) and 1 or 0
  end
  return tok, tgt, mask
end

--- A batch of the examples at indices idx (2 rows per pair), as wide as its longest sequence.
function M.batch(examples, idx)
  local W = 1
  for _, i in ipairs(idx) do
    local e = examples[i]
    W = math.max(W, #e.prompt + #e.chosen - 1, #e.prompt + #e.rejected - 1)
  end
  local b = { tokens = {}, targets = {}, mask = {} }
  for _, i in ipairs(idx) do
    local e = examples[i]
    for _, resp in ipairs({ e.chosen, e.rejected }) do
      local tok, tgt, mask = M.row(e.prompt, resp, W)
      b.tokens[#b.tokens + 1], b.targets[#b.targets + 1], b.mask[#b.mask + 1] = tok, tgt, mask
    end
  end
  return b
end

local function range(a, b) local o = {} for i = a, b do o[#o + 1] = i end return o end

--- Per-sequence log-probabilities of the responses (2 per example, chosen then rejected) under the trainer's
--- current weights, forward only, ppb pairs per batch.
function M.logps(tr, examples, ppb)
  local out = {}
  for s = 1, #examples, ppb do
    local _, lp = tr:eval(M.batch(examples, range(s, math.min(s + ppb - 1, #examples))))
    for i = 1, #lp do out[#out + 1] = lp[i] end
  end
  return out
end

--- A content digest of encoded examples (the token ids the log-probabilities are computed on).
function M.data_digest(examples)
  local parts = {}
  for i, e in ipairs(examples) do
    parts[i] = { "pair", table.concat(e.prompt, ",") .. "|" .. table.concat(e.chosen, ",") .. "|" .. table.concat(e.rejected, ",") }
  end
  return C.cache_key(parts)
end

--- The cache folder: $REPRO_CACHE/sdpo-ref (default ~/.cache/repro/sdpo-ref); with create, made if missing.
function M.cache_dir(create)
  local base = os.getenv("REPRO_CACHE")
  if not base or base == "" then base = (os.getenv("HOME") or "/tmp") .. "/.cache/repro" end
  if create then C.mkdirs(base .. "/sdpo-ref") end
  return base .. "/sdpo-ref"
end

--- Reference log-probabilities of examples under the trainer's current weights, computed once per (reference
--- weights, data) and cached on disk. o.base: digest of the frozen base model file ("" for from-scratch
--- training); o.dir: cache folder; o.ppb: pairs per batch; o.note: function(fmt, ...) for messages.
--- Returns values, key, and how they were obtained ("hit", or why they were recomputed: missing/stale/damaged).
function M.reference_logps(tr, examples, o)
  local key = C.cache_key { { "base", o.base or "" }, { "weights", tr:digest() }, { "data", M.data_digest(examples) },
                            { "layout", "chosen,rejected per pair; response tokens summed; v1" } }
  local path = (o.dir or M.cache_dir()) .. "/" .. key .. ".bin"
  local v, why, msg = C.cache_read(path, key, 2 * #examples)
  if v then return v, key, "hit" end
  if why == "damaged" and o.note then o.note("reference cache: %s; recomputing", msg) end
  v = M.logps(tr, examples, o.ppb or 4)
  C.cache_write(path, key, v)
  return v, key, why
end

--- Summary statistics of log-probabilities lp against a reference ref (both 2N): the DPO stats (loss, rewards,
--- reward accuracy, margin, mean γ of each), plus pref_accuracy (share of pairs with γ_policy > 0) and the
--- standard errors of the reward accuracy and of mean γ_policy.
function M.stats(lp, ref, beta)
  local _, _, s = C.dpo_loss(lp, ref, beta)
  local N = #lp / 2
  local pref, acc, g, gg = 0, 0, {}, 0
  for i = 1, N do
    g[i] = lp[2 * i - 1] - lp[2 * i]
    if g[i] > 0 then pref = pref + 1 end
    if beta * (lp[2 * i - 1] - ref[2 * i - 1]) > beta * (lp[2 * i] - ref[2 * i]) then acc = acc + 1 end
  end
  for i = 1, N do gg = gg + (g[i] - s.gamma_policy) ^ 2 end
  s.pref_accuracy = pref / N
  s.accuracy_stderr = math.sqrt(s.accuracy * (1 - s.accuracy) / N)
  s.gamma_stderr = N > 1 and math.sqrt(gg / (N - 1) / N) or 0
  s.n = N
  return s
end

--- Split examples into chunks. rule = "source": one chunk per source in opts.order (a list of source names);
--- "score": sorted by opts.score(example) descending (easiest first) into opts.T equal chunks; "random": pooled
--- and shuffled with math.random (the run's seeded generator) into chunks of opts.sizes (default: equal T).
--- Returns the chunks and a description to record in the run.
function M.split(examples, rule, opts)
  opts = opts or {}
  local chunks = {}
  if rule == "source" then
    for t, src in ipairs(opts.order) do
      chunks[t] = {}
      for _, e in ipairs(examples) do if e.source == src then chunks[t][#chunks[t] + 1] = e end end
      if #chunks[t] == 0 then error(string.format("sdpo.split: no examples from source '%s'", src), 2) end
    end
    return chunks, { rule = "source", order = opts.order }
  end
  local idx = range(1, #examples)
  if rule == "score" then
    local sc = {}
    for i, e in ipairs(examples) do sc[i] = opts.score(e) end
    table.sort(idx, function(a, b) if sc[a] ~= sc[b] then return sc[a] > sc[b] end return a < b end)
  elseif rule == "random" then
    for i = #idx, 2, -1 do local j = math.random(i); idx[i], idx[j] = idx[j], idx[i] end
  else
    error(string.format("sdpo.split: rule '%s' is not one of source, score, random", tostring(rule)), 2)
  end
  local sizes = opts.sizes
  if not sizes then
    sizes = {}
    local T = opts.T or 2
    for t = 1, T do sizes[t] = math.floor(#examples * t / T) - math.floor(#examples * (t - 1) / T) end
  end
  local k = 0
  for t, n in ipairs(sizes) do
    chunks[t] = {}
    for _ = 1, n do k = k + 1; chunks[t][#chunks[t] + 1] = examples[idx[k]] end
  end
  if k ~= #examples then error(string.format("sdpo.split: chunk sizes add up to %d, not %d", k, #examples), 2) end
  return chunks, { rule = rule, sizes = sizes }
end

--- The per-source easy-to-hard measure the spec names as a workable choice: the share of a source's pairs the
--- initial (SFT) model already prefers (γ_S > 0), from log-probabilities lp of the examples (2 per example).
--- Returns {source = share} and the sources sorted by it, highest (easiest) first.
function M.source_ease(examples, lp)
  local n, pos = {}, {}
  for i, e in ipairs(examples) do
    n[e.source] = (n[e.source] or 0) + 1
    if lp[2 * i - 1] - lp[2 * i] > 0 then pos[e.source] = (pos[e.source] or 0) + 1 end
  end
  local share, order = {}, {}
  for s, c in pairs(n) do share[s] = (pos[s] or 0) / c; order[#order + 1] = s end
  table.sort(order, function(a, b) if share[a] ~= share[b] then return share[a] > share[b] end return a < b end)
  return share, order
end

--- Shuffle a list in place with the run's seeded generator; returns it.
local function shuffled(n)
  local idx = range(1, n)
  for i = n, 2, -1 do local j = math.random(i); idx[i], idx[j] = idx[j], idx[i] end
  return idx
end

--- The example orders of `epochs` passes over n examples, drawn now from the run's seeded generator exactly as
--- M.train draws them (one shuffle per epoch): a run made of memo units (which reseed math.random) draws every
--- order up front, in the order an unsplit run drew them, and hands them to M.train as o.orders.
function M.orders(n, epochs)
  local out = {}
  for e = 1, epochs do out[e] = shuffled(n) end
  return out
end

--- One DPO run of `epochs` passes over examples against reference log-probabilities ref (2 per example):
--- ppb pairs per optimizer step, the order reshuffled each epoch (or o.orders[epoch], from M.orders).
--- on_step(step, loss, stats, grad_norm) is called after every step (stats: the batch's rewards, accuracy,
--- margin). Returns the list of step losses.
function M.train(tr, examples, ref, o)
  local losses, step = {}, 0
  local total = o.epochs * math.ceil(#examples / o.ppb)
  local t0 = os.time()
  for e = 1, o.epochs do
    local order = o.orders and o.orders[e] or shuffled(#examples)
    if #order ~= #examples then error(string.format("sdpo.train: order %d lists %d examples, not %d", e, #order, #examples), 2) end
    for s = 1, #order, o.ppb do
      local idx, refb = {}, {}
      for k = s, math.min(s + o.ppb - 1, #order) do
        local i = order[k]
        idx[#idx + 1] = i
        refb[#refb + 1], refb[#refb + 2] = ref[2 * i - 1], ref[2 * i]
      end
      local st
      local loss, gn = tr:step(M.batch(examples, idx), { loss = function(lp)
        local l, g, s2 = C.dpo_loss(lp, refb, o.beta)
        st = s2
        return l, g
      end })
      step = step + 1
      losses[step] = loss
      if o.on_step then o.on_step(step, loss, st, gn) end
      if o.note and (step % 10 == 0 or step == total) then
        local el = os.time() - t0
        o.note("%s: step %d/%d loss %.4f (%.2f steps/s, ETA %d s)", o.label or "dpo", step, total, loss,
               el > 0 and step / el or 0, el > 0 and math.floor((total - step) * el / step) or 0)
      end
    end
  end
  return losses
end

local function check_optimizer(optimizer, level)
  if optimizer ~= "reset" and optimizer ~= "carry" then
    error(string.format("sdpo.stepwise: optimizer '%s' is not one of reset, carry", tostring(optimizer)), level + 1)
  end
end

--- Step t of the stepwise procedure on the trainer's current model M_{t-1}: ref_t = log-probs of chunk under
--- M_{t-1} (cached), the target from M_{t-1} (o.init = "previous") or from a new S (o.init = "sft", t > 1: tr is
--- closed and o.new_trainer() takes its place), the optimizer reset or carried (o.optimizer), then DPO on chunk
--- (o.orders: the epochs' orders, else drawn now). Returns the trainer now holding M_t and {ref, key, how, losses}.
function M.step(tr, t, chunk, o)
  local optimizer = o.optimizer or "reset"
  check_optimizer(optimizer, 2)
  local ref, key, how = M.reference_logps(tr, chunk, { base = o.base, ppb = o.ppb, note = o.note, dir = o.cache_dir })
  if o.init == "sft" and t > 1 then tr:close(); tr = o.new_trainer()
  elseif t > 1 and optimizer == "reset" then tr:reset_optimizer() end
  local losses = M.train(tr, chunk, ref, { beta = o.beta, ppb = o.ppb, epochs = o.epochs, note = o.note, orders = o.orders,
                                           label = string.format("%s step %d", o.label or "sdpo", t),
                                           on_step = o.on_step and function(...) o.on_step(t, ...) end })
  return tr, { ref = ref, key = key, how = how, losses = losses }
end

--- The stepwise procedure (Sec. 3.2): M_0 = S = new_trainer(); for t = 1..T: M_t = M.step(M_{t-1}, t, chunk t):
--- ref_t = log-probs of chunk t under M_{t-1} (cached), target_t initialised from M_{t-1} (o.init = "previous",
--- the paper) or from S (o.init = "sft", Fig. 3's contrast: ref_t still from M_{t-1}), M_t = DPO(target_t, ref_t,
--- chunk t). o.optimizer: "reset" (the default: each step is an ordinary DPO run with a fresh AdamW, as the
--- paper's algorithm reads) or "carry" (the AdamW moments and step count of step t-1 go on into step t). o:
--- new_trainer, chunks, beta, ppb, epochs, base (digest), note, on_step(t, ...), on_model(t, tr) (called with
--- M_0 .. M_T). Returns {trainer = M_T, refs = {ref_t}, losses = {per step t}, ref_source = {hit/missing/...}}.
function M.stepwise(o)
  check_optimizer(o.optimizer or "reset", 2)
  local tr = o.new_trainer()
  local res = { refs = {}, losses = {}, ref_source = {}, keys = {} }
  if o.on_model then o.on_model(0, tr) end
  for t, chunk in ipairs(o.chunks) do
    local r
    tr, r = M.step(tr, t, chunk, o)
    res.refs[t], res.keys[t], res.ref_source[t], res.losses[t] = r.ref, r.key, r.how, r.losses
    if o.on_model then o.on_model(t, tr) end
  end
  res.trainer = tr
  return res
end

--- Where a trainer's model is kept between the units of a resumable run: the reference cache's folder (a step's
--- reference was cached there, so it exists), one file per (base model, trained weights).
local function checkpoint_path(base, digest, create)
  return M.cache_dir(create) .. "/" .. C.cache_key { { "base", base or "" }, { "weights", digest } } .. ".ckpt"
end

--- Keep the trainer's state (weights, AdamW moments, step) on disk for a later unit; returns the weights'
--- digest, which M.load_checkpoint needs to find and verify it.
function M.save_checkpoint(tr, base)
  local digest = tr:digest()
  tr:save(checkpoint_path(base, digest, true))
  return digest
end

--- Load into tr (built as the saved trainer was) the state M.save_checkpoint kept for weights digest `digest`;
--- returns true when loaded and verified, false (tr untouched or to be discarded) when the file is missing,
--- damaged or holds other weights, with the reason as a second value.
function M.load_checkpoint(tr, base, digest)
  local path = checkpoint_path(base, digest)
  local fh = io.open(path, "rb")
  if not fh then return false, "no checkpoint " .. path end
  fh:close()
  local ok, err = pcall(tr.load, tr, path)
  if not ok then return false, tostring(err) end
  if tr:digest() ~= digest then return false, path .. " holds other weights" end
  return true
end

--- The H4 columns of the Open LLM Leaderboard (the paper's Table 2) as repro.eval tasks: key (the field in
--- M.TABLE2), task, the metric the leaderboard reports, and the leaderboard's shot count.
M.H4 = {
  { key = "arc", task = "arc_challenge", metric = "acc_norm", shots = 25, label = "ARC-Challenge" },
  { key = "hs", task = "hellaswag", metric = "acc_norm", shots = 10, label = "HellaSwag" },
  { key = "mmlu", task = "mmlu", metric = "acc", shots = 5, label = "MMLU" },
  { key = "tqa", task = "truthfulqa_mc2", metric = "mc2", shots = 0, label = "TruthfulQA MC2" },
}

--- Score a repro.eval language model on the H4 columns: tasks = {key = loaded task}, o = {limit=, seed=, shots=}.
--- Returns {key = {value=, stderr=, n=}} for each column plus h4 = {value = their mean, stderr = the root sum of
--- their squared standard errors / 4 (the columns are independent item sets)}; values are fractions, not percent.
function M.h4_scores(lm, tasks, o)
  local eval = require("repro.eval")
  local out, sum, var = {}, 0, 0
  for _, c in ipairs(M.H4) do
    local r = eval.evaluate(lm, tasks[c.key], { limit = o.limit, seed = o.seed or 1, shots = o.shots or 0 })
    out[c.key] = { value = r[c.metric], stderr = r[c.metric .. "_stderr"], n = r.n }
    sum, var = sum + r[c.metric], var + r[c.metric .. "_stderr"] ^ 2
  end
  out.h4 = { value = sum / #M.H4, stderr = math.sqrt(var) / #M.H4 }
  return out
end

--- The params both sDPO experiments take, merged under the experiment's own (which win).
function M.params(own)
  local p = {
    model = { type = "string", default = "smollm2", choices = { "smollm2", "stories260K", "tiny" },
              doc = "SFT model S: SmolLM2-135M-Instruct (ChatML), stories260K (plain template; for smoke tests), or tiny (a 2-layer model trained here from scratch on a synthetic task: n_orca easy pairs, n_uf hard pairs, n_heldout hard pairs held out; no benchmarks)" },
    seq_len = { type = "integer", default = 128, min = 16, doc = "tokens per sequence (prompt cut from the left, response from the right)" },
    n_orca = { type = "integer", default = 16, min = 0, doc = "Orca DPO pairs (D_1; 0: all 284)" },
    n_uf = { type = "integer", default = 32, min = 0, doc = "UltraFeedback train pairs (D_2; 0: all 1000)" },
    n_heldout = { type = "integer", default = 32, min = 0, doc = "UltraFeedback held-out pairs (eval_clean; 0: all 200)" },
    beta = { type = "number", default = 0.1, min = 0, doc = "DPO beta (Zephyr: 0.1)" },
    lr = { type = "number", default = 5e-4, min = 0, doc = "AdamW learning rate (constant; LoRA adapters)" },
    method = { type = "string", default = "lora", choices = { "lora", "full" },
               doc = "LoRA adapters (reference = base + the previous steps' adapters) or full fine-tuning (small models)" },
    rank = { type = "integer", default = 8, min = 1, doc = "LoRA rank (alpha = 2 rank)" },
    targets = { type = "string", default = "attn_q,attn_v", doc = "LoRA target linears" },
    ppb = { type = "integer", default = 4, min = 1, doc = "pairs per optimizer step (2 sequences each)" },
    epochs = { type = "integer", default = 1, min = 1, doc = "passes over each step's data" },
    threads = { type = "integer", default = 2, min = 0, doc = "CPU threads (0: all cores)" },
    optimizer_state = { type = "string", default = "reset", choices = { "reset", "carry" },
                        doc = "AdamW moments at an sDPO step boundary: reset (each step a fresh DPO run, the paper's algorithm) or carry them over" },
  }
  for k, v in pairs(own or {}) do p[k] = v end
  return p
end

--- The tiny preset's S and data (tiny.lua): D1 easy, D2 and the held-out set hard; S trained from scratch and
--- written under the cache folder. Returns the model file's path.
local function prepare_tiny(ctx, p, s)
  local tiny = require("plugins.sdpo.tiny")
  for k, v in pairs { n_orca = p.n_orca, n_uf = p.n_uf, n_heldout = p.n_heldout } do
    if v < 1 then error(string.format("sdpo: model=tiny draws its pairs: %s must be at least 1 (got %d)", k, v), 0) end
  end
  if (p.mc_limit or 0) > 0 then error("sdpo: model=tiny has no text tokenizer for the benchmarks: set mc_limit=0", 0) end
  if p.seq_len < tiny.LEN * 2 + 2 then error(string.format("sdpo: model=tiny needs seq_len >= %d (got %d)", tiny.LEN * 2 + 2, p.seq_len), 0) end
  local sft_seed = math.random(1, 2 ^ 30)
  s.D1, s.D2, s.heldout = tiny.pairs(p.n_orca, "easy"), tiny.pairs(p.n_uf, "hard"), tiny.pairs(p.n_heldout, "hard")
  -- the file's name: everything that makes S (so runs of other seeds or settings never write the same file)
  local c, sft = tiny.CONFIG, tiny.SFT
  local key = C.cache_key { { "task", tiny.LEN .. " " .. tiny.SYMBOLS }, { "config", table.concat({ c.n_layer, c.dim, c.n_head, c.n_head_kv, c.ffn_dim, c.vocab }, " ") },
                            { "sft", table.concat({ sft.steps, sft.batch, sft.lr }, " ") }, { "seed", tostring(sft_seed) } }
  local path = M.cache_dir(true) .. "/tiny-sft-" .. key .. ".gguf"
  local loss = tiny.train_sft(path, { seed = sft_seed, threads = p.threads }, M.row)
  ctx:record("data", "tiny", { task = string.format("reverse %d of %d symbols", tiny.LEN, tiny.SYMBOLS), config = tiny.CONFIG, sft = tiny.SFT,
                               sft_final_loss = loss, easy = "rejected: random symbols", hard = "rejected: two adjacent symbols swapped" })
  s.note("tiny S: %d-layer model trained from scratch for %d steps on the reversal task (last loss %.4f)", tiny.CONFIG.n_layer, tiny.SFT.steps, loss)
  return path
end

--- Everything a run needs from its params: the model m (tokenizer, chat template; nil for the tiny model), the
--- base model's digest (cache key), the encoded chunks D1 (Orca, or the tiny task's easy source) and D2
--- (UltraFeedback, or the hard source), the held-out set, the sources' names (sources), close(), and
--- new_trainer() -> a trainer at S (LoRA: fresh adapters with B = 0, so it computes exactly S; full: S's weights).
function M.prepare(ctx, p)
  local model, train = require("repro.model"), require("repro.train")
  local s = { sources = { "orca", "ultrafeedback" } }
  function s.note(fmt, ...) ctx:note(fmt, ...) end
  function s.close() if s.m then s.m:close() end end
  local path, tok
  if p.model == "tiny" then
    path = prepare_tiny(ctx, p, s)
    s.sources = { "easy", "hard" }
  else
    if p.model == "smollm2" then
      path = ctx:asset("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
    else
      path = ctx:asset("stories260K", "stories260K.bin")
      tok = ctx:asset("stories260K", "tok512.bin")
    end
    s.m = model.load(path, tok and { tokenizer = tok } or nil)
    local enc = M.chat_encoder(s.m)
    local function enc_set(name, n) return M.encode(enc, M.load(name, { ctx = ctx, limit = n }), p.seq_len) end
    s.D1, s.D2, s.heldout = enc_set("orca", p.n_orca), enc_set("ultrafeedback", p.n_uf), enc_set("ultrafeedback_eval", p.n_heldout)
  end
  s.path, s.base = path, C.file_digest(path)
  local trunc = 0
  for _, set in ipairs({ s.D1, s.D2, s.heldout }) do for _, e in ipairs(set) do if e.truncated then trunc = trunc + 1 end end end
  ctx:record("data", "sizes", { [s.sources[1]] = #s.D1, [s.sources[2]] = #s.D2, heldout = #s.heldout, truncated = trunc, seq_len = p.seq_len,
                                template = s.m and (s.m:info().chat and "model chat template (ChatML for SmolLM2)" or "plain") or "none (token ids)" })
  local seed = math.random(1, 2 ^ 30)   -- one adapter initialisation for every variant of the run
  -- training batches are at most seq_len wide; the planned width may be larger for scoring benchmarks (p.eval_len)
  s.T = math.max(p.seq_len, p.eval_len or 0)
  function s.new_trainer()
    return train.new { model = path, method = p.method, rank = p.rank, alpha = 2 * p.rank, dropout = 0, targets = p.targets,
                       batch = 2 * p.ppb, seq_len = s.T, seed = seed, threads = p.threads,
                       optimizer = { lr = p.lr, weight_decay = 0, clip = 1.0 } }
  end
  return s
end

-- The paper's Table 2 (H4 and its four columns; ARC 25-shot, HellaSwag 10-shot, MMLU 5-shot, TruthfulQA mc2).
M.TABLE2 = {
  { model = "SOLAR 10.7B + SFT + sDPO", h4 = 74.31, arc = 71.33, hs = 88.08, mmlu = 65.39, tqa = 72.45 },
  { model = "SOLAR 10.7B + SFT + DPO", h4 = 72.67, arc = 69.62, hs = 87.16, mmlu = 66.00, tqa = 67.90 },
  { model = "Mixtral 8x7B-Instruct-v0.1", h4 = 73.40, arc = 70.22, hs = 87.63, mmlu = 71.16, tqa = 64.58 },
  { model = "SOLAR-0-70B-16bit", h4 = 72.93, arc = 71.08, hs = 87.89, mmlu = 70.58, tqa = 62.25 },
  { model = "Qwen 72B", h4 = 72.17, arc = 65.19, hs = 85.94, mmlu = 77.37, tqa = 60.19 },
  { model = "Yi 34B", h4 = 70.72, arc = 64.59, hs = 85.69, mmlu = 76.35, tqa = 56.23 },
  { model = "SOLAR 10.7B + SFT", h4 = 69.51, arc = 67.32, hs = 85.96, mmlu = 65.95, tqa = 58.80 },
  { model = "Mistral 7B-Instruct-v0.2", h4 = 69.27, arc = 63.14, hs = 84.88, mmlu = 60.78, tqa = 68.26 },
  { model = "Falcon 180B", h4 = 68.57, arc = 69.45, hs = 88.86, mmlu = 70.50, tqa = 45.47 },
  { model = "Mixtral 8x7B-v0.1", h4 = 67.78, arc = 66.04, hs = 86.49, mmlu = 71.82, tqa = 46.78 },
  { model = "Llama 2 70B", h4 = 67.35, arc = 67.32, hs = 87.33, mmlu = 69.83, tqa = 44.92 },
  { model = "Zephyr", h4 = 66.36, arc = 62.03, hs = 84.52, mmlu = 61.44, tqa = 57.44 },
  { model = "Qwen 14B", h4 = 64.85, arc = 58.28, hs = 83.99, mmlu = 67.70, tqa = 49.43 },
  { model = "SOLAR 10.7B", h4 = 64.27, arc = 61.95, hs = 84.60, mmlu = 65.48, tqa = 45.04 },
  { model = "Mistral 7B", h4 = 62.40, arc = 59.98, hs = 83.31, mmlu = 64.16, tqa = 42.15 },
}
-- Table 3: the random-partition ablation.
M.TABLE3_RANDOM = { model = "SOLAR 10.7B + SFT + sDPO Rand.", h4 = 72.56, arc = 69.20, hs = 87.27, mmlu = 65.96, tqa = 67.81 }
-- Table 4: EQ Bench and MT Bench.
M.TABLE4 = { sdpo = { eq = 68.83, mt = 7.43 }, dpo = { eq = 61.02, mt = 7.35 }, sft = { eq = 60.48, mt = 7.14 } }
-- Figure 2: mean γ of the reference on UltraFeedback Cleaned: S, M_1 (after the OpenOrca step), M_2.
M.FIG2_GAMMA = { S = -38.60, M1 = -25.10, M2 = 84.35 }
-- The row whose printed H4 is not the rounded mean of its columns (the spec's arithmetic check).
M.H4_MISPRINT = "SOLAR-0-70B-16bit"

return M
