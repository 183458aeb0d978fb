-- init.lua: require("prune"): the Lua side of the deeper-layer pruning plugin (Gromov et al. 2024, "The
-- Unreasonable Ineffectiveness of the Deeper Layers", arXiv 2403.17887; spec shared/papers/prune.md).
-- Samples of a text as token windows, hidden-state capture into the C statistics (repro.prune), the four
-- selection rules, evaluation of a model with layers skipped (normalized loss, bits per byte, multiple-
-- choice accuracy with standard errors), and the paper's reported figures. Layers are 0-based, as
-- m:skip_layers takes them. Written in the subset shared by Lua 5.4 and LuaJIT.
local C = require("repro.prune")
local eval = require("repro.eval")
local now = require("repro.core").now

local M = { VERSION = 1, C = C }

-- Sec. 4.1 / Fig. 2: the fraction of layers dropped at which MMLU collapses to chance (similarity rule,
-- healed), per model family; Fig. 1(d): Llama-2-70B's sharp QA transition between 40% and 50%.
M.PAPER = {
  collapse = {
    { family = "Llama-2", lo = 0.45, hi = 0.55 },
    { family = "Mistral-7B", lo = 0.35, hi = 0.35 },
    { family = "Phi-2", lo = 0.25, hi = 0.25 },
    { family = "Qwen", lo = 0.20, hi = 0.20 },
  },
  llama70b_transition = { 0.40, 0.50 },
  healing = { lora_alpha_eq_rank = true, dropout = 0.05, targets = "ffn_gate,ffn_up,ffn_down", schedule = "cosine",
              warmup = 100, steps = 5000, batch = 16, lr = 3e-4 },
}

-- Chance accuracy of the staged multiple-choice tasks (choices per item).
M.CHANCE = { arc_easy = 0.25, arc_challenge = 0.25, hellaswag = 0.25, piqa = 0.5, boolq = 0.5, mmlu = 0.25, winogrande = 0.5 }

M.RULES = { "angular", "heuristic", "influence", "random" }

-- The models and texts the experiments name (asset, file).
M.MODELS = {
  ["smollm2-135m-instruct"] = { file = "SmolLM2-135M-Instruct.Q4_1.gguf" },
  stories260K = { file = "stories260K.bin", tokenizer = "tok512.bin" },
}
M.TEXTS = { wikitext2 = { "wikitext2", "wiki.test.raw" }, tinystories = { "tinystories-valid-slice", "tinystories_val.txt" } }

--- Load a model of M.MODELS through the run's asset registry (recording which bytes were used).
function M.load_model(ctx, name)
  local spec = M.MODELS[name]
  if not spec then error("prune: unknown model '" .. tostring(name) .. "'", 0) end
  local tok = spec.tokenizer and ctx:asset(name, spec.tokenizer) or nil
  return require("repro.model").load(ctx:asset(name, spec.file), { tokenizer = tok }), ctx:asset(name, spec.file)
end

--- The whole text of M.TEXTS[name], through the asset registry.
function M.load_text(ctx, name)
  local spec = M.TEXTS[name]
  if not spec then error("prune: unknown text '" .. tostring(name) .. "'", 0) end
  return ctx:asset_text(spec[1], spec[2])
end

--- Progress on stderr: returns tick(i, reused) printing done/total, rate and ETA at most every `every` seconds.
-- reused: how many of the first i items were read back (a resumed run's memo units) rather than computed; they
-- count as done but not in the rate, so a resumed run's ETA is not inflated by the units it skipped.
function M.progress(what, total, every)
  local t0, last = now(), -math.huge
  every = every or 5
  return function(i, reused)
    local t = now()
    if i < total and t - last < every then return end
    last = t
    local dt = math.max(t - t0, 1e-3)
    local rate = (i - (reused or 0)) / dt
    local eta = i >= total and "0s" or rate > 0 and string.format("%ds", math.floor((total - i) / rate + 0.5)) or "?"
    io.stderr:write(string.format("%s: %d/%d  %.3g/s  ETA %s\n", what, i, total, rate, eta))
  end
end

-- The token ids M.windows cuts n windows of len from and the tokens each window takes from the text (len less
-- its BOS), or nil, nil and an error naming the text, the tokens it gives, the tokens needed and how many
-- windows of len do fit.
local function window_ids(m, text, n, len, name)
  local info = m:info()
  local body = len - ((info.add_bos and info.bos >= 0) and 1 or 0)
  local want = n * body
  local ids = m:tokenize(text:sub(1, want * 8), { bos = false })
  if #ids >= want then return ids, body end
  return nil, nil, string.format("prune.windows: %s gives %d tokens in its first %d bytes, %d windows of %d need %d (at most %d of %d fit: "
                                 .. "use fewer or shorter windows, or stage a longer text)", name or "text", #ids, math.min(want * 8, #text), n,
                                 len, want, math.floor(#ids / body), len)
end

--- Whether n windows of `len` tokens fit in text: true, or false and the error M.windows would raise.
function M.windows_fit(m, text, n, len, name)
  local _, _, err = window_ids(m, text, n, len, name)
  return err == nil, err
end

--- N windows of `len` tokens from text (consecutive, in order), each starting with BOS when the model adds
-- one. Raises, naming the text, when it holds too few tokens.
function M.windows(m, text, n, len, name)
  local ids, body, err = window_ids(m, text, n, len, name)
  if not ids then error(err, 0) end
  local bos = m:info().bos
  local out = {}
  for w = 1, n do
    local row = {}
    if body < len then row[1] = bos end
    for k = 1, body do row[#row + 1] = ids[(w - 1) * body + k] end
    out[w] = row
  end
  return out
end

--- Capture every layer's input for each sample (m:hidden_states) into a repro.prune.stats: the angular
-- distance over the last token (opts.all_tokens: every token), block influence over every token.
function M.capture(m, samples, opts)
  opts = opts or {}
  local info = m:info()
  local st = C.stats(info.n_layer + 1, info.dim)
  local tick = opts.progress ~= false and M.progress("capture", #samples) or function() end
  for i, ids in ipairs(samples) do
    local h = m:hidden_states(ids)
    st:add(h, { all_tokens = opts.all_tokens or false })
    h:close()
    tick(i)
  end
  return st
end

--- What the stats-based rules (angular, influence) drop for every n in 1..L-1, taken from a capture's stats:
--- {angular = {[n] = layers}, influence = {[n] = layers}}, a few hundred integers that a memo unit can keep in
--- place of the stats (M.select takes either).
function M.selections(stats, L)
  local out = { angular = {}, influence = {} }
  for n = 1, L - 1 do
    out.angular[n] = (stats:select("angular", n))
    out.influence[n] = stats:select("influence", n)
  end
  return out
end

-- The layers a stats-based rule drops for n: from the stats object, or from M.selections' table (integers
-- again after a JSON round trip); an n the table lacks is an error.
local function stats_select(stats, rule, n)
  if type(stats) ~= "table" then return (stats:select(rule, n)) end
  local got = stats[rule] and stats[rule][n]
  if not got then error(string.format("prune.select: the kept selections hold no %s block of n = %d", rule, n), 0) end
  local out = {}
  for i, l in ipairs(got) do out[i] = math.floor(l) end
  return out
end

--- The layers a rule drops: rule in M.RULES; stats (or M.selections' table) for angular / influence; seed for
--- random.
function M.select(rule, n, L, stats, seed)
  if n == 0 then return {} end
  if rule == "angular" or rule == "influence" then return stats_select(stats, rule, n)
  elseif rule == "heuristic" then return C.select_heuristic(L, n)
  elseif rule == "random" then return C.select_random(L, n, seed or 1)
  end
  error("prune.select: unknown rule '" .. tostring(rule) .. "' (angular, heuristic, influence, random)", 0)
end

--- Evaluate m with `layers` skipped: loss on text (mean NLL per token, normalized by ln V as the paper's
-- Fig. 3, and bits per byte) and, for each task in opts.tasks ({name=, task=, shots=}), accuracy with its
-- standard error. opts: ctx (tokens per chunk), chunks, limit, seed. Restores no mask: the caller owns it.
function M.evaluate(m, layers, text, opts)
  m:skip_layers(layers)
  local V = m:info().vocab
  local r = { layers = layers }
  if text then
    local ppl = eval.perplexity(m, text, { ctx = opts.ctx or 256, chunks = opts.chunks or 0 })
    r.nll, r.loss_norm, r.bpb, r.n_tokens = ppl.mean_nll, ppl.mean_nll / math.log(V), ppl.bpb, ppl.n_scored
  end
  r.tasks = M.accuracy(m, opts.tasks, opts)
  return r
end

--- Multiple-choice accuracy of a repro.eval language model (a repro.model, or a table LM such as a healing
-- trainer's) on each task of `tasks` ({name=, task=, shots=}): {[name] = {acc=, stderr=, n=, chance=}}, acc_norm
-- where the task has it. opts: limit (items, a seeded subset; a task's own t.limit wins), seed.
function M.accuracy(lm, tasks, opts)
  local out = {}
  for _, t in ipairs(tasks or {}) do
    local e = eval.evaluate(lm, t.task, { shots = t.shots or 0, limit = t.limit or opts.limit, seed = opts.seed })
    local acc, se = e.acc_norm or e.acc, e.acc_norm_stderr or e.acc_stderr
    out[t.name] = { acc = acc, stderr = se, n = e.n, chance = M.CHANCE[t.name] }
  end
  return out
end

--- The piece of text between fractions lo and hi of its length, cut at line starts (so the calibration,
-- healing and held-out pieces of one text never overlap).
function M.piece(text, lo, hi)
  local function cut(f)
    if f <= 0 then return 1 end
    if f >= 1 then return #text + 1 end
    local i = math.floor(#text * f)
    local nl = text:find("\n", i, true)
    return nl and nl + 1 or #text + 1
  end
  return text:sub(cut(lo), cut(hi) - 1)
end

--- Deterministic training batches of B rows of T+1 ids from a token list (repro.train_data.windows, exact on
-- both runtimes): returns next_batch().
function M.batches(ids, B, T, seed)
  return require("repro.train_data").windows(ids, B, T, seed % 2147483646 + 1)
end

--- Heal a pruned model file by QLoRA as the paper's App. A.1, scaled down: LoRA on the feed-forward linears
-- (gate, up, down) of a frozen NF4 base, alpha = rank, dropout 0.05, AdamW with a cosine schedule and
-- warm-up. opts: path (the pruned GGUF), train_ids / eval_ids (token lists: healing text and held-out text),
-- steps, batch, seq_len, rank, lr, warmup, seed, threads, eval_batches, log(step, loss) (optional); tasks
-- ({name=, task=, shots=}), model (a repro.model giving the tokenizer), eval_len (tokens an item may span;
-- longer ones are cut from the left), limit, task_seed: accuracy through the trainer's own forward (NF4 base +
-- adapters, repro.train_lm) before and after. Returns {before=, after=} mean held-out NLL per token (same
-- batches before and after), acc_before / acc_after (as M.accuracy), and losses. export (optional: a path
-- where the healed model, adapters merged, is written as GGUF) and export_type ("base": the pruned file's
-- tensor types, the default; "f16"; "f32").
function M.heal(opts)
  local train = require("repro.train")
  local T = math.max(opts.seq_len, opts.tasks and #opts.tasks > 0 and opts.eval_len or 0)
  local tr = train.new { model = opts.path, method = "qlora", targets = M.PAPER.healing.targets,
                         rank = opts.rank, alpha = opts.rank, dropout = M.PAPER.healing.dropout,
                         batch = opts.batch, seq_len = T, seed = opts.seed, threads = opts.threads,
                         optimizer = { lr = opts.lr, schedule = "cosine", warmup = opts.warmup, total_steps = opts.steps,
                                       lr_min = 0, weight_decay = 0, clip = 1.0 } }
  local held = M.batches(opts.eval_ids, opts.batch, opts.seq_len, 7)
  local eval_set = {}
  for i = 1, opts.eval_batches or 4 do eval_set[i] = held() end
  local function held_loss()
    local s = 0
    for _, b in ipairs(eval_set) do s = s + tr:eval(b) end
    return s / #eval_set
  end
  local function acc()
    if not opts.tasks or #opts.tasks == 0 then return {} end
    local lm = require("repro.train_lm")(tr, opts.model, opts.batch, T)
    return M.accuracy(lm, opts.tasks, { limit = opts.limit, seed = opts.task_seed })
  end
  local r = { before = held_loss(), acc_before = acc(), losses = {} }
  local next_batch = M.batches(opts.train_ids, opts.batch, opts.seq_len, opts.seed or 1)
  local tick = M.progress("heal", opts.steps)
  for step = 1, opts.steps do
    local loss = tr:step(next_batch())
    r.losses[step] = loss
    if opts.log then opts.log(step, loss) end
    tick(step)
  end
  r.after, r.acc_after = held_loss(), acc()
  if opts.export then tr:export_gguf(opts.export, { type = opts.export_type or "base" }) end
  tr:close()
  return r
end

--- Comma-separated integers ("1,2,4") as a list.
function M.int_list(s)
  local out = {}
  for w in tostring(s):gmatch("[^,%s]+") do
    local v = tonumber(w)
    if not v or v ~= math.floor(v) then error("prune: '" .. w .. "' in '" .. s .. "' is not an integer", 0) end
    out[#out + 1] = v
  end
  return out
end

--- Comma-separated layer counts n (what a param such as ns holds) checked against [0, L) of the model; an error
--- names the param, the value and the model.
function M.layer_counts(s, L, what, model)
  local out = M.int_list(s)
  for _, n in ipairs(out) do
    if n < 0 or n >= L then error(string.format("prune: %s holds %d, outside [0, %d) for %s", what, n, L, model or "the model"), 0) end
  end
  return out
end

-- Comma- or space-separated words.
local function words(s)
  local out = {}
  for w in tostring(s):gmatch("[^,%s]+") do out[#out + 1] = w end
  return out
end

--- Comma-separated selection rules, each checked against M.RULES; an error names the param and the rule.
function M.rule_list(s, what)
  local out = words(s)
  for _, r in ipairs(out) do
    local ok = false
    for _, k in ipairs(M.RULES) do ok = ok or k == r end
    if not ok then error(string.format("prune: %s holds unknown rule '%s' (%s)", what, r, table.concat(M.RULES, ", ")), 0) end
  end
  return out
end

--- Comma-separated multiple-choice task names loaded through repro.eval: {name=, task=, shots=} (MMLU takes
--- mmlu_shots examples, the others none); an unknown or unstaged task fails here, before any work.
function M.load_tasks(s, mmlu_shots)
  local out = {}
  for _, w in ipairs(words(s)) do
    -- "name" or "name:N" (N items of that task, overriding the run's limit; MMLU 5-shot costs ~10x an item)
    local name, n = w:match("^([^:]+):(%d+)$")
    if not name and w:find(":", 1, true) then error("tasks: '" .. w .. "' is not NAME or NAME:ITEMS", 0) end
    name = name or w
    out[#out + 1] = { name = name, task = eval.load(name), shots = name == "mmlu" and mmlu_shots or 0, limit = tonumber(n) }
  end
  return out
end

--- "{21,22,23}"-style text for notes.
function M.show(layers) return "{" .. table.concat(layers, ",") .. "}" end

return M
