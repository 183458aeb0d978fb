-- train_test.lua: repro.train end to end (run by `repro exec`; skips without the mirror). A tiny Llama
-- trained from scratch on tinyshakespeare (characters as tokens, via the asset registry) must reach a
-- held-out loss that the best character-level bigram model, fitted on the same training text in this
-- test (add-k smoothing, k chosen on the held-out text itself, which favours the baseline), cannot; a
-- run saved and resumed mid-way gives the same losses as the uninterrupted run; bad arguments are errors
-- naming the field.
local train = require("repro.train")
local assets = require("repro.assets")
local T = require("tests.luacheck")
local check, errors_with = T.check, T.errors_with

local ok, path = pcall(assets.path, "tinyshakespeare", "input.txt")
local fh = ok and io.open(path, "rb")
if not fh then print("skip: tinyshakespeare not available (" .. tostring(path) .. ")"); print("ok train_test: 0 checks"); return end
local text = fh:read("a")
fh:close()
check(#text == 1115394, "tinyshakespeare size")

-- characters -> ids (0-based), over the whole text so held-out characters have ids
local id_of, V = {}, 0
for i = 1, #text, 4096 do
  local chunk = { text:byte(i, math.min(i + 4095, #text)) }
  for j = 1, #chunk do
    local b = chunk[j]
    if not id_of[b] then id_of[b] = V; V = V + 1 end
  end
end
local n_train, n_held = 200000, 20000
local train_ids, held_ids = {}, {}
for i = 1, n_train do train_ids[i] = id_of[text:byte(i)] end
for i = 1, n_held do held_ids[i] = id_of[text:byte(#text - n_held + i)] end

-- the bigram baseline: counts on the training slice, the best add-k on the held-out slice
local counts, rows = {}, {}
for a = 0, V - 1 do counts[a] = {}; rows[a] = 0; for b = 0, V - 1 do counts[a][b] = 0 end end
for i = 1, n_train - 1 do
  local a, b = train_ids[i], train_ids[i + 1]
  counts[a][b] = counts[a][b] + 1; rows[a] = rows[a] + 1
end
local bigram = math.huge
for _, k in ipairs { 0.01, 0.03, 0.1, 0.3, 1 } do
  local nll = 0
  for i = 1, n_held - 1 do
    local a, b = held_ids[i], held_ids[i + 1]
    nll = nll - math.log((counts[a][b] + k) / (rows[a] + k * V))
  end
  bigram = math.min(bigram, nll / (n_held - 1))
end
check(bigram > 2.3 and bigram < 2.7, "bigram held-out loss in the known range (got " .. bigram .. ")")

-- deterministic batches: Park-Miller offsets (exact on both runtimes)
local B, S = 8, 64
local function batches(ids, seed) return require("repro.train_data").windows(ids, B, S, seed) end

local config = { n_layer = 2, dim = 64, n_head = 4, n_head_kv = 2, ffn_dim = 192, vocab = V }
local function new_trainer(total)
  return train.new { config = config, batch = B, seq_len = S, seed = 42, threads = 2,
                     optimizer = { lr = 5e-3, schedule = "cosine", warmup = math.min(20, total), total_steps = total, lr_min = 5e-4,
                                   weight_decay = 0.01, clip = 1.0 } }
end

local steps = 200
local tr = new_trainer(steps)
local info = tr:info()
check(info.method == "full" and info.vocab == V and info.params > 50000, "info")
local next_batch = batches(train_ids, 12345)
local t0 = os.clock()
local first, last
for s = 1, steps do
  local loss, gn, lr = tr:step(next_batch())
  if s == 1 then first = loss end
  last = loss
  check(gn == gn and lr > 0, "finite grad norm and positive lr at step " .. s)
end
local secs = os.clock() - t0
local held_batch = batches(held_ids, 777)
local held = 0
for _ = 1, 8 do held = held + tr:eval(held_batch()) end
held = held / 8
print(string.format("tinyshakespeare chars: %d steps of %dx%d in %.1f s CPU; train loss %.3f -> %.3f; held-out %.3f vs bigram %.3f",
                    steps, B, S, secs, first, last, held, bigram))
check(math.abs(first - math.log(V)) < 0.3, "initial loss near log V (got " .. first .. ")")
check(held < bigram - 0.05, "held-out loss " .. held .. " below the bigram baseline " .. bigram)
tr:close()

-- save at step 3, resume in a fresh trainer: steps 4..6 give the same losses
local ckpt = os.tmpname()
local a = new_trainer(6)
local nb = batches(train_ids, 99)
local la, lb = {}, {}
for s = 1, 6 do
  la[s] = a:step(nb())
  if s == 3 then a:save(ckpt) end
end
local b = new_trainer(6)
b:load(ckpt)
check(b:info().step == 3, "resumed at step 3")
nb = batches(train_ids, 99)
for _ = 1, 3 do nb() end
for s = 4, 6 do lb[s] = b:step(nb()) end
check(la[4] == lb[4] and la[5] == lb[5] and la[6] == lb[6],
      string.format("resumed losses equal the uninterrupted ones (%.9g %.9g vs %.9g %.9g)", la[6], lb[6] or 0, la[5], lb[5] or 0))
os.remove(ckpt)

-- a plugin loss over per-sequence log-probabilities: the mean of -seq_logp over 2 sequences
local two = nb()
two.tokens = { two.tokens[1], two.tokens[2] }
local lp_loss = b:forward_backward(two, { loss = function(lp) return -(lp[1] + lp[2]) / 2, { -0.5, -0.5 } end })
local ce, lps = b:eval(two)
check(math.abs(lp_loss - ce * S) < 1e-3 * S and #lps == 2, "loss hook sees the summed log-probabilities")
b:update()

errors_with(function() train.new { config = config, batch = B, seq_len = S, methd = "full" } end, "methd", "unknown key")
errors_with(function() train.new { config = config, batch = B, seq_len = S, method = "lora2" } end, "lora2", "bad method")
errors_with(function() train.new { config = config, batch = B, seq_len = S, precision = "fp16" } end, "fp16", "bad precision")
do   -- precision "bf16": what ran is reported (bf16 on a unit, or fp32 where the machine has none)
  local t16 = train.new { config = config, batch = B, seq_len = S, precision = "bf16" }
  local p16 = t16:info().precision
  check(p16 == "bf16 (amx)" or p16 == "bf16 (avx512_bf16)" or p16 == "fp32 (no bf16 unit)", "precision reported: " .. tostring(p16))
  check(info.precision == "fp32", "default precision fp32")
  t16:close()
end
errors_with(function() train.new { config = config, batch = B, seq_len = S, optimizer = { schedule = "cosine" } } end,
            "total_steps", "cosine needs total_steps")
errors_with(function() b:step { tokens = { { 1, 2, 3 } }, mask = { { 1 } } } end, "mask row 1", "mask shape")
errors_with(function() b:step { tokens = { { 1, 2, V } } } end, "outside vocabulary", "token id range")
errors_with(function() b:forward_backward(two, { loss = function() return 1 end }) end, "list of 2", "loss hook contract")
a:close(); b:close()
errors_with(function() b:info() end, "used after close", "use after close")
T.done("train_test")
