-- train_data_test.lua: repro.train_data (run by `repro exec`). Packing against its closed form (window k
-- is ids k*T .. k*T+T, held-out windows last, the short tail dropped), batches as a seeded permutation that
-- is the same for the same seed and epoch and differs across epochs, prompt/response records from JSON lines
-- with the prompt masked and errors naming file, line and field, and text from the mirror through the asset
-- registry (skipped without it).
local td = require("repro.train_data")
local T = require("tests.luacheck")
local check, errors_with = T.check, T.errors_with

-- pack: 0..102 with T = 10 -> 10 windows (ids 0..100), 2 tokens left over
local ids = {}
for i = 1, 103 do ids[i] = i - 1 end
local p = td.pack(ids, { seq_len = 10, holdout = 0.2 })
check(#p.train == 8 and #p.valid == 2, "pack: 8 train + 2 held-out windows (got " .. #p.train .. " + " .. #p.valid .. ")")
check(p.dropped == 2 and p.n_tokens == 103, "pack: 2 tokens dropped (got " .. tostring(p.dropped) .. ")")
local good = true
for k, s in ipairs(p.train) do
  for i = 1, 11 do good = good and s.ids[i] == (k - 1) * 10 + i - 1 end
end
for k, s in ipairs(p.valid) do
  for i = 1, 11 do good = good and s.ids[i] == (k + 7) * 10 + i - 1 end
end
check(good, "pack: window k holds ids k*T .. k*T+T, held-out windows at the end")
errors_with(function() td.pack({ 1, 2, 3 }, { seq_len = 10 }) end, "3 tokens make 0 sequence", "pack: too few tokens")
errors_with(function() td.pack(ids, { seq_len = 0 }) end, "seq_len must be an integer", "pack: bad seq_len")
errors_with(function() td.pack(ids, { seq_len = 4, holdout = 1 }) end, "holdout must be in [0, 1)", "pack: bad holdout")
errors_with(function() td.pack(ids, { seq_len = 4, hold = 0.1 }) end, "unknown option 'hold'", "pack: unknown key")

-- batches: a permutation, deterministic by (seed, epoch)
local function order(bs)
  local o = {}
  for _, b in ipairs(bs) do for _, row in ipairs(b.tokens) do o[#o + 1] = row[1] end end
  return table.concat(o, ",")
end
local b1, b2, b3 = td.batches(p.train, 3, { seed = 5 }), td.batches(p.train, 3, { seed = 5 }), td.batches(p.train, 3, { seed = 5, epoch = 1 })
check(#b1 == 3 and #b1[3].tokens == 2, "batches: 8 sequences in batches of 3, 3, 2")
check(order(b1) == order(b2), "batches: same seed and epoch, same order")
check(order(b1) ~= order(b3), "batches: another epoch, another order")
local seen, n = {}, 0
for _, b in ipairs(b1) do for _, row in ipairs(b.tokens) do if not seen[row[1]] then n = n + 1 end; seen[row[1]] = true end end
check(n == 8, "batches: every sequence exactly once (got " .. n .. " distinct)")
check(#td.batches(p.train, 3, { seed = 5, drop_last = true }) == 2, "batches: drop_last")

-- pairs: a byte tokenizer, prompt masked, eos scored, padding not scored
local function bytes(s) local t = {}; for i = 1, #s do t[i] = s:byte(i) end; return t end
local path = os.tmpname()
local fh = io.open(path, "wb")
fh:write('{"prompt": "ab", "response": "cde"}\n\n{"prompt": "x", "input": {"messages": [{"content": "x"}, {"content": "yz"}]}, "response": "w"}\n')
fh:write('{"prompt": "pq", "response": "rs"}\n')
fh:close()
local d = td.pairs { path = path, tokenize = bytes, seq_len = 7, eos = 2, pad = 0 }
check(d.n_records == 3 and #d.train == 3 and #d.valid == 0, "pairs: 3 records")
local s1 = d.train[1]
check(table.concat(s1.ids, ",") == "97,98,99,100,101,2,0,0", "pairs: prompt .. response .. eos, padded (got " .. table.concat(s1.ids, ",") .. ")")
check(table.concat(s1.mask, ",") == "0,1,1,1,1,0,0", "pairs: only response and eos targets scored (got " .. table.concat(s1.mask, ",") .. ")")
local d2 = td.pairs { path = path, tokenize = bytes, seq_len = 3, prompt = function(r) return r.prompt or "q" end }
check(d2.truncated == 1 and #d2.train[1].ids == 4, "pairs: long records cut to seq_len+1 and counted (" .. d2.truncated .. ")")
errors_with(function() td.pairs { path = path, tokenize = bytes, seq_len = 8, prompt = "question" } end,
            path .. ":1: prompt field question: 'question' missing", "pairs: a missing field names file, line and field")
errors_with(function() td.pairs { path = path, tokenize = bytes, seq_len = 8, prompt = "input.messages.2.content" } end,
            ":1: prompt field input.messages.2.content: 'input' missing", "pairs: dotted path missing on line 1")
local d3 = td.pairs { path = path, tokenize = bytes, seq_len = 8, prompt = "prompt", max_records = 2, holdout = 0.5 }
check(d3.n_records == 2 and #d3.train == 1 and #d3.valid == 1, "pairs: max_records and every 2nd record held out")
fh = io.open(path, "wb"); fh:write('{"input": {"messages": [{"content": "x"}, {"content": "yz"}]}, "response": "w"}\n'); fh:close()
local d4 = td.pairs { path = path, tokenize = bytes, seq_len = 4, prompt = "input.messages.2.content" }
check(table.concat(d4.train[1].ids, ",") == "121,122,119,0,0", "pairs: dotted path with a 1-based list index (got " .. table.concat(d4.train[1].ids, ",") .. ")")
fh = io.open(path, "wb"); fh:write('{"prompt": "a", "response": 5}\n{"prompt": "a",\n'); fh:close()
errors_with(function() td.pairs { path = path, tokenize = bytes, seq_len = 8 } end, ":1: response field response: a number, not a string",
            "pairs: a wrongly typed field")
fh = io.open(path, "wb"); fh:write('{"prompt": "a", "response": "b"}\n{"prompt": "a",\n'); fh:close()
errors_with(function() td.pairs { path = path, tokenize = bytes, seq_len = 8 } end, path .. ":2: not a JSON object", "pairs: malformed JSON line")
os.remove(path)

-- text from the mirror through the asset registry
local assets = require("repro.assets")
local ok, tpath = pcall(assets.path, "tinyshakespeare", "input.txt")
if ok then
  local t = td.text { path = tpath, tokenize = bytes, seq_len = 64, holdout = 0.1, max_bytes = 6401 }
  check(#t.train == 90 and #t.valid == 10, "text: 6401 bytes -> 90 + 10 windows of 64+1 (got " .. #t.train .. " + " .. #t.valid .. ")")
  check(t.train[1].ids[1] == string.byte("F"), "text: starts at the file's first byte")
else
  print("skip [mirror]: tinyshakespeare not available (" .. tostring(tpath) .. ")")
end
errors_with(function() td.text { path = "/nonexistent/x.txt", tokenize = bytes, seq_len = 4 } end, "cannot open", "text: missing file")

T.done("train_data_test")
