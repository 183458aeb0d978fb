-- sdpo_test.lua: the sDPO plugin's Lua side (run by `repro exec`; skips without the mirror).
--  * masking: a response's sequence log-probability from the trainer (prompt masked, summed) equals the sum of
--    the inference engine's per-token log-probabilities (m:score) over the response positions only: two
--    independent code paths;
--  * the chat template: SmolLM2's ChatML through the engine, the same prompt ids for chosen and rejected;
--  * the reference cache: computed once, then a hit; a training step changes tr:digest() and so the key, and
--    the values are recomputed; a truncated cache file is reported damaged and recomputed, never read;
--  * a trainer scores a multiple-choice task as the inference engine does (repro.train_lm, fresh adapters);
--  * ln 2 at the start of a step (target = reference) through repro.train's loss hook;
--  * the loaders' record counts and errors; the splits.
local sdpo = require("sdpo")
local C = require("repro.sdpo")
local model = require("repro.model")
local train = require("repro.train")
local T = require("tests.luacheck")
local check, errors_with = T.check, T.errors_with

-- the binding's closed form (the C test covers the rest)
local l, g, s = C.dpo_loss({ -10, -12 }, { -11, -11 }, 0.1)
check(math.abs(l - math.log(1 + math.exp(-0.2))) < 1e-15, "dpo_loss closed form")
check(math.abs(g[1] + 0.1 / (1 + math.exp(0.2))) < 1e-15 and g[2] == -g[1], "dpo_loss gradient")
check(s.accuracy == 1 and math.abs(s.margin - 0.2) < 1e-15, "dpo_loss stats")
errors_with(function() C.dpo_loss({ 1, 2, 3 }, { 1, 2, 3 }, 0.1) end, "even number", "odd length")
errors_with(function() C.parse_pairs('{"prompt": "x", "chosen": "y"}', "ultrafeedback", "mine.jsonl") end,
            "mine.jsonl: record 1: field 'rejected'", "loader error names file, record and field")
errors_with(function() sdpo.load("orcaa") end, "unknown data set 'orcaa'", "unknown data set")

-- splits
local ex = {}
for i = 1, 10 do ex[i] = { source = i <= 3 and "orca" or "ultrafeedback", id = i } end
local ch, desc = sdpo.split(ex, "source", { order = { "orca", "ultrafeedback" } })
check(#ch == 2 and #ch[1] == 3 and #ch[2] == 7 and ch[1][1].id == 1 and desc.rule == "source", "split by source")
ch = sdpo.split(ex, "random", { sizes = { 3, 7 } })
local seen = {}
for _, c in ipairs(ch) do for _, e in ipairs(c) do seen[e.id] = (seen[e.id] or 0) + 1 end end
local all_once = true
for i = 1, 10 do if seen[i] ~= 1 then all_once = false end end
check(#ch[1] == 3 and #ch[2] == 7 and all_once, "random split keeps every example once")
local okst, errst = pcall(sdpo.stepwise, { optimizer = "keep", chunks = {}, new_trainer = function() error("not reached") end })
check(not okst and tostring(errst):find("optimizer 'keep' is not one of reset, carry", 1, true) ~= nil, "stepwise rejects an unknown optimizer rule: " .. tostring(errst))
check(#sdpo.H4 == 4 and sdpo.H4[1].task == "arc_challenge" and sdpo.H4[4].metric == "mc2", "the H4 columns as repro.eval tasks")
ch = sdpo.split(ex, "score", { T = 2, score = function(e) return -e.id end })
check(#ch[1] == 5 and ch[1][1].id == 1 and ch[2][5].id == 10, "split by score, easiest first")
errors_with(function() sdpo.split(ex, "source", { order = { "hh" } }) end, "no examples from source 'hh'", "empty source")

local mirror = os.getenv("REPRO_MIRROR")
local sp = mirror and (mirror .. "/stories260K/stories260K.bin")
local fh = sp and io.open(sp, "rb")
if not fh then print("skip [mirror]: stories260K not in the mirror"); T.done("sdpo_test"); return end
fh:close()

check(#sdpo.load("orca") == 284 and #sdpo.load("ultrafeedback_eval") == 200, "staged record counts")
local orca = sdpo.load("orca", { limit = 3 })
check(#orca == 3 and orca[1].source == "orca" and orca[1].messages[1].role == "system", "orca pairs with their system turn")

-- masking, on stories260K (plain chat style) with the inference engine as the independent path
local m = model.load(sp, { tokenizer = mirror .. "/stories260K/tok512.bin" })
local enc = sdpo.chat_encoder(m)
local pairs_ = { { messages = { { role = "user", content = "Tell me a story about a cat." } },
                   chosen = "Once upon a time, there was a cat named Tom.", rejected = "No.", source = "hand" },
                 { messages = { { role = "user", content = "Who is Lily?" } },
                   chosen = "Lily is a little girl who likes to play.", rejected = "A dog ran to the park and saw a big tree.", source = "hand" } }
local Tlen = 48
local exs = sdpo.encode(enc, pairs_, Tlen)
check(#exs == 2 and not exs[1].truncated, "encoded")
local tr = train.new { model = sp, method = "lora", rank = 4, alpha = 8, batch = 4, seq_len = Tlen, seed = 5, threads = 1,
                       optimizer = { lr = 5e-3 } }
local lp = sdpo.logps(tr, exs, 2)
check(#lp == 4, "two log-probabilities per pair")
local worst = 0
for i, e in ipairs(exs) do
  for k, resp in ipairs({ e.chosen, e.rejected }) do
    local ids = {}
    for _, v in ipairs(e.prompt) do ids[#ids + 1] = v end
    for _, v in ipairs(resp) do ids[#ids + 1] = v end
    local per = m:score(ids)          -- per[j] = log p(ids[j+1] | ids[1..j])
    local sum = 0
    for j = #e.prompt, #ids - 1 do sum = sum + per[j] end
    local all = 0
    for j = 1, #ids - 1 do all = all + per[j] end
    worst = math.max(worst, math.abs(sum - lp[2 * (i - 1) + k]))
    check(math.abs(all - lp[2 * (i - 1) + k]) > 0.5, "the prompt's tokens are not in the sum")
  end
end
check(worst < 2e-3, string.format("trainer's masked sum equals m:score over the response (worst %.2g)", worst))

-- ln 2 at step start (target = reference), through repro.train's loss hook
local ref = sdpo.logps(tr, exs, 2)
local st
local loss = tr:forward_backward(sdpo.batch(exs, { 1, 2 }), { loss = function(x) local a, b, c = C.dpo_loss(x, ref, 0.1); st = c; return a, b end })
check(math.abs(loss - math.log(2)) < 1e-6 and st.accuracy == 0, string.format("loss %.9f = ln 2 at step start", loss))
tr:update()

-- the reference cache
local dir = os.tmpname()
os.remove(dir)
local notes = {}
local o = { base = C.file_digest(sp), dir = dir, ppb = 2, note = function(fmt, ...) notes[#notes + 1] = string.format(fmt, ...) end }
local tr2 = train.new { model = sp, method = "lora", rank = 4, alpha = 8, batch = 4, seq_len = Tlen, seed = 5, threads = 1, optimizer = { lr = 5e-3 } }
local v1, k1, how1 = sdpo.reference_logps(tr2, exs, o)
local v2, k2, how2 = sdpo.reference_logps(tr2, exs, o)
check(how1 == "missing" and how2 == "hit" and k1 == k2, "computed once, then read from the cache (" .. how1 .. ", " .. how2 .. ")")
local same = true
for i = 1, 4 do if v1[i] ~= v2[i] then same = false end end
check(same, "cached values are the computed ones")
tr2:step(sdpo.batch(exs, { 1, 2 }), { loss = function(x) local a, b = C.dpo_loss(x, v1, 0.1); return a, b end })
tr2:step(sdpo.batch(exs, { 1, 2 }), { loss = function(x) local a, b = C.dpo_loss(x, v1, 0.1); return a, b end })
local v3, k3, how3 = sdpo.reference_logps(tr2, exs, o)
check(k3 ~= k1 and how3 == "missing", "a changed reference (a trained step) invalidates the cache")
check(v3[1] - v3[2] > v1[1] - v1[2], "the new reference's γ moved up after DPO steps")
-- truncate the cached file: reported damaged and recomputed, never read as numbers
local path = dir .. "/" .. k3 .. ".bin"
local f = io.open(path, "rb")
local bytes = f:read("a")
f:close()
f = io.open(path, "wb")
f:write(bytes:sub(1, #bytes - 9))
f:close()
local none, why = C.cache_read(path, k3, 4)
check(none == nil and why == "damaged", "truncated cache file is damaged")
local v4, _, how4 = sdpo.reference_logps(tr2, exs, o)
check(how4 == "damaged" and #notes == 1 and notes[1]:find(path, 1, true), "damaged file noted and recomputed")
same = true
for i = 1, 4 do if v4[i] ~= v3[i] then same = false end end
check(same, "recomputed values equal the original ones")
local _, _, how5 = sdpo.reference_logps(tr2, exs, o)
check(how5 == "hit", "rewritten whole")
-- a trainer as a repro.eval model: with fresh adapters (B = 0) it scores as the inference engine does
local eval = require("repro.eval")
local ok_arc, arc = pcall(eval.load, "arc_easy")
if ok_arc then
  local fresh = train.new { model = sp, method = "lora", rank = 4, alpha = 8, batch = 8, seq_len = 96, seed = 5, threads = 1 }
  local r1 = eval.evaluate(m, arc, { limit = 12, seed = 1 })
  local r2 = eval.evaluate(require("repro.train_lm")(fresh, m, 8, 96), arc, { limit = 12, seed = 1 })
  check(r1.n == 12 and r1.acc == r2.acc and r1.acc_norm == r2.acc_norm,
        string.format("trainer_lm scores ARC-Easy as the model does (acc %s vs %s, acc_norm %s vs %s)", r1.acc, r2.acc, r1.acc_norm, r2.acc_norm))
  fresh:close()
else
  print("skip [mirror]: arc_easy not available (" .. tostring(arc) .. ")")
end

os.remove(path)
os.remove(dir .. "/" .. k1 .. ".bin")
os.remove(dir)
tr:close(); tr2:close(); m:close()

-- SmolLM2's ChatML through the engine: the same prompt for both responses, each closed by <|im_end|>
local smol = mirror .. "/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
local sf = io.open(smol, "rb")
if not sf then print("skip [mirror]: SmolLM2 not in the mirror"); T.done("sdpo_test"); return end
sf:close()
local sm = model.load(smol)
local senc = sdpo.chat_encoder(sm)
local se = sdpo.encode(senc, orca, 256)
local ptxt = sm:detokenize(se[1].prompt, { special = true })
check(ptxt:find("<|im_start|>system\n", 1, true) == 1 and ptxt:sub(-#"<|im_start|>assistant\n") == "<|im_start|>assistant\n",
      "ChatML prompt: " .. ptxt:sub(1, 40))
local ctxt = sm:detokenize(se[2].chosen, { special = true })
local full = sm:detokenize(sm:tokenize(orca[2].chosen, { special = false, bos = false }), {})
check(ctxt:find("<|im_end|>", 1, true) ~= nil or se[2].truncated, "chosen response closed by <|im_end|>")
check(#full > 0, "tokenizer round trip")
sm:close()
T.done("sdpo_test")
