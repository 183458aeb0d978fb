-- jamba_test.lua: the repro.jamba binding's contracts (run by `repro exec`): configurations by name and
-- by table (unknown keys and bad knobs raise naming them), the walk-based counts against the spec's
-- exact figures, a built model's count and methods (score, forward, generate, timing), fractional and
-- out-of-range token ids rejected, use after close raises. The in-context-learning pieces (jamba_icl.lua):
-- the task generators' layout, the trainer's loss mask against scores of an independent forward, predict
-- against score, and an attention model that learns associative recall well above chance in seconds.
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

local mc = C.machine()
check(mc.cpus >= 1 and mc.gflops_cpu > 0 and mc.gflops_wall > 0 and mc.gflops_wall <= 1.2 * mc.gflops_cpu, "machine probe: FMA rates per wall and CPU second")

-- ICL task generators: layout and masks (a fixed generator, so the sequences are known)
local seq = { 0, 1, 0, 1, 1, 0, 1, 0 }
local si = 0
local function fixed(a, b) si = si % #seq + 1; return math.min(b, a + seq[si]) end
local f = jamba.icl_format_sequence(fixed, 3, 2, 8, 4)
check(#f.ids == 4 * 5 - 1 + 0 and #f.mask == #f.ids - 1, "format: shots x (x_len + 3) - 1 tokens, one mask weight per prediction")
local a1 = f.answers[1]
check(f.ids[a1.pos] == jamba.ICL.SEP and f.ids[a1.pos + 1] == a1.want and (a1.want == a1.labels[1] or a1.want == a1.labels[2]),
      "format: the answer follows the query's ':' and is one of the sequence's two label words")
local masked, shown = 0, {}
for i, w in ipairs(f.mask) do
  if w == 1 then
    masked = masked + 1
    check(f.ids[i] == jamba.ICL.SEP, "format: only ':' positions are trained on")
    check(shown[f.ids[i + 1]], "format: a trained label was shown before")
  end
  if f.ids[i] == jamba.ICL.SEP then shown[f.ids[i + 1]] = true end
end
check(masked >= 1 and f.mask[a1.pos] == 1, "format: the query's answer is trained on")
local r = jamba.icl_recall_sequence(math.random, 5, 10, 12)
check(#r.ids == 20 and #r.answers == 5, "recall: 2 x pairs tokens of pairs, then pairs queries")
local kv = {}
for i = 1, 10, 2 do kv[r.ids[i]] = r.ids[i + 1] end
for _, a in ipairs(r.answers) do
  check(kv[r.ids[a.pos]] == a.want and r.ids[a.pos + 1] == a.want and r.mask[a.pos] == 1, "recall: each query's answer is its pair's value")
end
errors_with(function() jamba.icl_recall_sequence(math.random, 5, 4, 12) end, "n_keys 4", "recall: fewer keys than pairs")
errors_with(function() jamba.icl_format_sequence(math.random, 1, 2, 8, 4) end, "shots 1", "format: one shot")
errors_with(function() jamba.variant_config("nope", 32, 4) end, "valid: attention", "unknown variant")

-- the loss mask: a one-hot mask's loss equals -log p of that token from an independent forward (score),
-- all-ones equals the plain mean; predict's lp equals score's, its top is the argmax at the answer
local cfg_small = jamba.variant_config("hybrid13", 32, 4)
local tr = C.trainer(cfg_small, { seed = 3, T = 16 })
local ids = { 5, 9, 3, 7, 5, 9, 3, 7, 2 }
local top, plp = tr:predict(ids)
local total, n = tr:score(ids)
local sum = 0
for i = 1, #plp do sum = sum + plp[i] end
check(#top == #ids and #plp == #ids - 1 and math.abs(sum - total) < 1e-9 and n == #ids - 1, "predict: lp matches score")
local onehot = {}
for i = 1, #ids - 1 do onehot[i] = i == 4 and 1 or 0 end
local l1 = tr:step(ids, onehot)
check(math.abs(l1 + plp[4]) < 1e-4 * math.max(1, math.abs(l1)), string.format("one-hot mask loss %.6f = -lp %.6f", l1, -plp[4]))
local ones = {}
for i = 1, #ids - 1 do ones[i] = 1 end
check(math.abs(tr:step(ids, ones) + sum / n) < 1e-4, "all-ones mask: the mean loss")
errors_with(function() tr:step(ids, { 1, 1 }) end, "mask has 2 weights for 8", "mask length")
local neg = {}
for i = 1, #ids - 1 do neg[i] = i == 2 and -1 or 1 end
errors_with(function() tr:step(ids, neg) end, "loss mask -1 at position 1", "negative mask weight")
local zeros = {}
for i = 1, #ids - 1 do zeros[i] = 0 end
errors_with(function() tr:step(ids, zeros) end, "weights no position", "all-zero mask")
tr:close()

-- learning check: attention (with RoPE) trained a few seconds on associative recall answers far above
-- chance (1 / n_values) on fresh sequences of its training distribution; an untrained model does not
local function recall_accuracy(t, seqs)
  local ok, all = 0, 0
  for _, e in ipairs(seqs) do
    local tp = t:predict(e.ids)
    for _, a in ipairs(e.answers) do ok, all = ok + (tp[a.pos] == a.want and 1 or 0), all + 1 end
  end
  return ok / all
end
local rng_state = 12345
local function rand(a, b)   -- MINSTD (products below 2^53): the same sequences on both Lua builds
  rng_state = (rng_state * 48271) % 2147483647
  return a + math.floor(rng_state / 65536) % (b - a + 1)
end
local heldout = {}
for i = 1, 40 do heldout[i] = jamba.icl_recall_sequence(rand, 2, 4, 8) end
local att = C.trainer(jamba.variant_config("attention_rope", 32, 4, { n_layer = 2, block_len = 1 }), { seed = 1, T = 8 })
local before = recall_accuracy(att, heldout)
for _ = 1, 200 do
  for _ = 1, 8 do
    local e = jamba.icl_recall_sequence(rand, 2, 4, 8)
    att:step(e.ids, e.mask)
  end
  att:update({ lr = 1e-2, scale = 1 / 8 })
end
local after = recall_accuracy(att, heldout)
att:close()
local learn_msg = string.format("attention learns recall: accuracy %.3f after 200 steps (%.3f before, chance 0.125)", after, before)
io.stderr:write(learn_msg, "\n")
check(after >= 0.4 and after > before + 0.2, learn_msg)
-- step_all: two trainers (threads = 1 each) stepped side by side end with exactly the weights that the same
-- micro-batches give stepped one trainer after the other, each batch with its own trainer (a mix-up of
-- trainers, batches or masks changes the predictions); the losses returned are the steps' own
local function pair(seed_a, seed_b)
  local c = jamba.variant_config("hybrid17", 32, 4)
  return C.trainer(c, { seed = seed_a, T = 16, threads = 1 }), C.trainer(c, { seed = seed_b, T = 16, threads = 1 })
end
local seqs = { { { 1, 2, 3, 4, 5, 6 }, { 7, 8, 9, 1, 2 } }, { { 3, 3, 4, 4, 5, 5, 6 }, { 9, 8, 7, 6, 5, 4, 3 } } }
local masks = { { nil, { 0, 1, 0, 1 } }, { { 1, 1, 1, 1, 1, 1 }, nil } }
local pa, pb = pair(11, 12)
local res = C.step_all({ pa, pb }, seqs, masks)
pa:update({ lr = 1e-2, scale = 0.5 }); pb:update({ lr = 1e-2, scale = 0.5 })
local sa, sb = pair(11, 12)
local la = { sa:step(seqs[1][1]), sa:step(seqs[1][2], masks[1][2]) }
local lb = { sb:step(seqs[2][1], masks[2][1]), sb:step(seqs[2][2]) }
sa:update({ lr = 1e-2, scale = 0.5 }); sb:update({ lr = 1e-2, scale = 0.5 })
check(#res == 2 and res[1].loss[1] == la[1] and res[1].loss[2] == la[2] and res[2].loss[1] == lb[1] and res[2].loss[2] == lb[2],
      "step_all: each trainer's losses are its own micro-batches'")
local probe = { 2, 4, 6, 8, 1, 3 }
local _, qa = pa:predict(probe)
local _, qs = sa:predict(probe)
local _, qb = pb:predict(probe)
local _, qt = sb:predict(probe)
local same = true
for i = 1, #qa do same = same and qa[i] == qs[i] and qb[i] == qt[i] end
check(same and qa[1] ~= qb[1], "step_all: the weights equal sequential steps' (and the two trainers differ)")
local many, many_masks = { {}, {} }, { {}, {} }   -- more micro-batches than Lua's stack holds without growing it
for i = 1, 60 do
  for t = 1, 2 do many[t][i], many_masks[t][i] = { 1, 2, 3, 4, 5 }, { 1, 0, 1, 1 } end
end
local big = C.step_all({ pa, pb }, many, many_masks)
check(#big[1].loss == 60 and #big[2].loss == 60 and big[1].loss[60] == big[1].loss[1], "step_all: 60 masked micro-batches each")
errors_with(function() C.step_all({ pa, pa }, { seqs[1], seqs[1] }) end, "are the same trainer", "step_all: one trainer twice")
errors_with(function() C.step_all({ pa, pb }, { seqs[1] }) end, "2 trainers and 1 batches", "step_all: batches per trainer")
errors_with(function() C.step_all({ pa, pb }, seqs, { { { 1 }, nil }, nil }) end, "mask has 1 weights for 5", "step_all: mask length")
if os.getenv("REPRO_REFERENCE") ~= "1" then
  local shared = C.trainer(jamba.variant_config("mamba", 32, 4), { seed = 1, T = 8 })
  errors_with(function() C.step_all({ pa, shared }, seqs) end, "trainer 2 shares the default CPU backend", "step_all: a shared pool")
  shared:close()
end
pa:close(); pb:close(); sa:close(); sb:close()
T.done("jamba_test.lua")
