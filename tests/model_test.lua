-- model_test.lua: the repro.model binding on stories260K (run by `repro exec`; skips without the mirror):
-- greedy generation against llama2.c's expected text, tokenize/detokenize, scoring consistency, hidden
-- states and layer skipping, the LM table that repro.eval consumes (perplexity against llama.cpp's
-- figure for c = 128), and the binding's error contracts.
local model = require("repro.model")

local T = require("tests.luacheck")
local check, errors_with = T.check, T.errors_with

local mirror = os.getenv("REPRO_MIRROR")
local path = mirror and (mirror .. "/stories260K/stories260K.bin")
local f = path and io.open(path, "rb")
if not f then print("skip [mirror]: stories260K not in the mirror"); print("ok model_test: 0 checks"); return end
f:close()

local m = model.load(path)
local info = m:info()
check(info.n_layer == 5 and info.dim == 64 and info.vocab == 512 and info.bos == 1, "info")
check(info.format == "llama2c" and info.add_bos == true, "format and BOS convention")

-- greedy from BOS, 200 tokens: llama2.c's expected output byte for byte
local want = io.open(mirror .. "/stories260K/greedy200.txt", "rb"):read("a")
local text, gi = m:generate { tokens = { info.bos }, max_tokens = 200, temperature = 0 }
check(text == want, "greedy 200 equals greedy200.txt")
check(#gi.tokens == 200 and gi.stop_reason == "max_tokens" and gi.tokens_per_s > 0, "generation info")
local t2 = m:generate { tokens = { info.bos }, max_tokens = 30, temperature = 0.8, top_p = 0.9, seed = 7 }
local t3 = m:generate { tokens = { info.bos }, max_tokens = 30, temperature = 0.8, top_p = 0.9, seed = 7 }
check(t2 == t3, "same seed, same sample")
local cut = m:generate { tokens = { info.bos }, max_tokens = 200, temperature = 0, stop = { "Lily" } }
check(cut == "Once upon a time, there was a little girl named ", "stop string cuts before it (got " .. cut .. ")")

-- a list of prompts: decoded together (continuous batching over 2 slots), each equal to its own call
local prompts = { "Once upon a time", "The cat", "Lily and Tom went to the park", "A" }
local texts, infos = m:generate { prompt = prompts, max_tokens = 25, temperature = 0, batch = 2 }
check(#texts == 4 and #infos == 4, "one text and one info per prompt")
for i, p in ipairs(prompts) do
  local one, oi = m:generate { prompt = p, max_tokens = 25, temperature = 0 }
  check(texts[i] == one and #infos[i].tokens == #oi.tokens, "batched prompt " .. i .. " equals its own call")
end
local lists = m:generate { tokens = { { info.bos }, { info.bos, 403 } }, max_tokens = 10, temperature = 0.8, seed = 3 }
check(lists[1] == m:generate { tokens = { info.bos }, max_tokens = 10, temperature = 0.8, seed = 3 }, "token lists, sampled, equal their own calls")
errors_with(function() m:generate { prompt = { "x", 5 } } end, "prompt[2] must be a string", "bad prompt list entry")

-- tokenize / detokenize
local ids = m:tokenize("Once upon a time")
check(ids[1] == info.bos and #ids > 2, "tokenize adds BOS by the model's convention")
check(m:detokenize(ids) == "Once upon a time", "round trip")
check(m:tokenize("Once upon a time", { bos = false })[1] ~= info.bos, "bos = false")

-- scoring: the text form equals the sum over the id form
local ctx_ids = m:tokenize("Once upon a time, there was")
local all = m:tokenize("Once upon a time, there was a little girl")
local lp, greedy = m:score(all, #ctx_ids - 1)
local sum = 0
for i = 1, #lp do sum = sum + lp[i] end
local ll, is_greedy = m:score { context = "Once upon a time, there was", continuation = " a little girl" }
check(#lp == #all - #ctx_ids, "score length")
check(math.abs(ll - sum) < 1e-4, "score{context, continuation} = sum of per-token log-probs")
check(type(is_greedy) == "boolean" and #greedy == #lp, "greedy flags")
check(ll < 0, "log-likelihood negative")

-- hidden states and layer skipping (repro.tensor objects; nested tables behind :totable())
local h = m:hidden_states(all)
local hshape = h:shape()
check(h:dtype() == "f32" and hshape[1] == info.n_layer + 1 and hshape[2] == #all and hshape[3] == info.dim, "hidden state shape")
local hn = h:totable()
check(#hn == info.n_layer + 1 and #hn[1] == #all and #hn[1][1] == info.dim and hn[3][2][5] == h:get(3, 2, 5), "totable nests rows")
local hl = m:hidden_states(all, { last = true })
check(#hl == info.n_layer + 1 and hl:shape()[2] == info.dim and hl:get(3, 5) == h:get(3, #all, 5), "last-token hidden states")
check(math.abs(hl:row(3):cosine(h:row(3):row(#all)) - 1) < 1e-6, "a row view equals the same vector")
m:skip_layers { 2 }
local hs = m:hidden_states(all, { last = true })
check(hs:get(3, 1) == hl:get(3, 1) and hs:get(4, 1) == hs:get(3, 1) and hs:get(4, 1) ~= hl:get(4, 1), "skipped layer is the identity")
m:skip_layers {}
check(m:hidden_states(all, { last = true }):get(4, 1) == hl:get(4, 1), "mask cleared")

-- logits at every position: the last row's log-softmax at the next token equals score's log-prob
local lg = m:logits(all)
check(lg:shape()[1] == #all and lg:shape()[2] == info.vocab, "logits shape")
local row = lg:row(#ctx_ids)
local mx, z = -math.huge, 0
for v = 1, info.vocab do mx = math.max(mx, row:get(v)) end
for v = 1, info.vocab do z = z + math.exp(row:get(v) - mx) end
local lp_next = row:get(all[#ctx_ids + 1] + 1) - mx - math.log(z)
check(math.abs(lp_next - lp[1]) < 1e-4, "logits agree with score (" .. lp_next .. " vs " .. lp[1] .. ")")
check(greedy[1] == (row:argmax() - 1 == all[#ctx_ids + 1]), "argmax agrees with score's greedy flag")

-- the LM table for repro.eval: llama.cpp's perplexity protocol, c = 128, 50 chunks: 3.9143
local ok_eval, eval = pcall(require, "repro.eval")
local tf = io.open(mirror .. "/tinystories-valid-slice/tinystories_val.txt", "rb")
if ok_eval and tf then
  local r = eval.perplexity(m:as_lm(), tf:read("a"), { ctx = 128, chunks = 50, protocol = "llamacpp" })
  check(math.abs(r.ppl / 3.9143 - 1) < 0.005, "perplexity c=128 vs llama.cpp 3.9143 (got " .. r.ppl .. ")")
  tf:close()
end

-- error contracts
errors_with(function() model.load(path, { bogus = 1 }) end, "unknown option 'bogus'", "unknown load option")
errors_with(function() m:generate { prompt = "x", maxtokens = 3 } end, "unknown option 'maxtokens'", "unknown generate option")
errors_with(function() m:score({ 1, 9999 }) end, "outside the vocabulary", "bad token id")
errors_with(function() m:skip_layers { 1.5 } end, "", "fractional layer index")
errors_with(function() model.load("/nonexistent/model.gguf") end, "model.load", "missing file")
m:close()
errors_with(function() m:info() end, "used after close", "use after close")

T.done("model_test")
