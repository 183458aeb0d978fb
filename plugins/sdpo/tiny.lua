-- tiny.lua: the sDPO experiments' tiny-model preset (model = "tiny", require("plugins.sdpo.tiny")): a synthetic
-- preference task with an easy and a hard source, and an SFT model S trained on it from scratch in seconds, so
-- the paper's qualitative effects (each step's reference prefers the chosen answers more, the S-initialised step 2
-- starts above ln 2, sDPO against DPO) show without any download, and the smoke tests can check them.
-- The task: a prompt of LEN random symbols between BOS and SEP; the right answer is the prompt reversed, then END.
-- S is a 2-layer Llama trained by cross-entropy on right answers for SFT.steps (40) steps: it has learned the answer
-- format but not yet the reversal, an SFT model that DPO can still improve. Every pair's chosen answer is the right
-- one; the rejected one is
--   easy (D_1, the paper's OpenOrca role): LEN random symbols, mostly far from the right answer;
--   hard (D_2 and the held-out set, the UltraFeedback role): the right answer with two adjacent, unequal symbols
--   swapped, a near miss that S often ranks close to the right answer.
-- S is written as a GGUF file (F32, no tokenizer) under the sDPO cache folder, keyed by everything that makes it,
-- and the experiments build their trainers (LoRA or full) on it as on any model file.
-- Invariant: everything is drawn from math.random in a fixed order, so a run's seed fixes the data and S bit for bit.
local M = {}

local unpack = table.unpack or unpack   -- Lua 5.4, LuaJIT
local BOS, SEP, END, FIRST = 1, 2, 3, 4   -- token ids; 0 is the rows' padding
M.SYMBOLS, M.LEN = 8, 5
M.CONFIG = { n_layer = 2, dim = 32, n_head = 4, n_head_kv = 4, ffn_dim = 64, vocab = FIRST + M.SYMBOLS }
M.SFT = { steps = 40, batch = 16, lr = 3e-3 }

local function symbols(n)
  local o = {}
  for i = 1, n do o[i] = FIRST + math.random(0, M.SYMBOLS - 1) end
  return o
end

local function reversed(s)
  local o = {}
  for i = #s, 1, -1 do o[#o + 1] = s[i] end
  return o
end

local function same(a, b)
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return #a == #b
end

local function with_end(s)
  local o = { unpack(s) }
  o[#o + 1] = END
  return o
end

--- A prompt and its right answer: {BOS, s..., SEP}, {reversed s..., END}.
function M.question()
  local s
  repeat s = symbols(M.LEN) until s[1] ~= s[2] or s[2] ~= s[3] or s[3] ~= s[4] or s[4] ~= s[5]   -- a swap exists
  local prompt = { BOS }
  for i = 1, #s do prompt[#prompt + 1] = s[i] end
  prompt[#prompt + 1] = SEP
  return prompt, with_end(reversed(s))
end

--- The rejected answer of a source ("easy" or "hard") for the right answer `right` (END last).
function M.rejected(right, source)
  local body = { unpack(right, 1, #right - 1) }
  if source == "easy" then
    local r
    repeat r = symbols(#body) until not same(r, body)
    return with_end(r)
  end
  local cand = {}
  for i = 1, #body - 1 do if body[i] ~= body[i + 1] then cand[#cand + 1] = i end end
  local i = cand[math.random(1, #cand)]
  body[i], body[i + 1] = body[i + 1], body[i]
  return with_end(body)
end

--- n encoded pairs of a source, in sdpo.encode's form ({prompt=, chosen=, rejected=, source=, record=}).
function M.pairs(n, source)
  local out = {}
  for i = 1, n do
    local prompt, right = M.question()
    out[i] = { prompt = prompt, chosen = right, rejected = M.rejected(right, source), source = source, record = i, truncated = false }
  end
  return out
end

--- Trains S from scratch on right answers (cross-entropy on the answer tokens) and writes it to path as F32 GGUF.
--- row(prompt, resp, W) is sdpo.row. Returns the trainer's last loss.
function M.train_sft(path, o, row)
  local train = require("repro.train")
  local W = M.LEN + 2 + M.LEN   -- prompt + answer, less the last target
  local tr = train.new { config = M.CONFIG, method = "full", batch = M.SFT.batch, seq_len = W, seed = o.seed, threads = o.threads,
                         optimizer = { lr = M.SFT.lr, weight_decay = 0, clip = 1.0 } }
  local loss
  for _ = 1, M.SFT.steps do
    local b = { tokens = {}, targets = {}, mask = {} }
    for r = 1, M.SFT.batch do
      local prompt, right = M.question()
      b.tokens[r], b.targets[r], b.mask[r] = row(prompt, right, W)
    end
    loss = tr:step(b)
  end
  local tmp = path .. ".tmp"
  tr:export_gguf(tmp, { type = "f32" })
  tr:close()
  assert(os.rename(tmp, path))
  return loss
end

return M
