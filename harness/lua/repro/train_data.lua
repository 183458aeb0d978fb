-- repro/train_data.lua: training data for repro.train, from staged files (resolve them by name with
-- repro.assets.path, which looks in the mirror first): plain text packed into fixed-length sequences, and
-- prompt/response records (JSON lines) as masked sequences, each split into training and held-out parts,
-- and turned into batches in a deterministic order.
--
--   td.pack(ids, {seq_len=, holdout=, max_seqs=})  -> {train = {seq...}, valid = {seq...}, n_tokens=, dropped=}
--       ids (0-based token ids, one long stream) cut into non-overlapping windows of seq_len+1 ids that
--       share their edge token (window k covers ids[k*T+1 .. k*T+T+1]); the last `holdout` fraction of the
--       windows (at least one when holdout > 0) is held out, so held-out text never precedes training text
--       and no window straddles the two; a tail shorter than a window is dropped (counted in `dropped`).
--   td.text{path=, tokenize=fn(text)->ids, seq_len=, holdout=, max_bytes=, max_seqs=} -> pack() of the file
--   td.pairs{path=, tokenize=, seq_len=, prompt=, response=, eos=, pad=, holdout=, max_records=, format=}
--       -> {train = {seq...}, valid = {seq...}, n_records=, truncated=}
--       One JSON object per line. prompt / response: a field name, a dotted path ("input.messages.2.content",
--       list indices 1-based) or a function(record) returning a string. Each record becomes
--       tokenize(format(prompt)) .. tokenize(response) .. {eos}, cut to seq_len+1 ids (counted in
--       `truncated`), padded with `pad`; its mask scores response and eos targets only. Every 1/holdout-th
--       record (by position, deterministic) is held out.
--   td.batches(seqs, B, {seed=, epoch=, drop_last=}) -> list of batches {tokens = {{T+1 ids}...}[, mask =
--       {{T flags}...}]}: a permutation of seqs by (seed, epoch) (Park-Miller, exact on Lua 5.4 and LuaJIT),
--       cut into batches of B (the last one shorter unless drop_last).
--   td.windows(ids, B, T, state) -> next_batch(): endless batches {tokens = {{T+1 ids}...}} of B windows at
--       Park-Miller offsets into one token stream; state (an integer in [1, 2147483646]) starts the generator,
--       so the same state gives the same batches on Lua 5.4 and LuaJIT.
-- A sequence is {ids = {T+1 ids}} or {ids = ..., mask = {T flags}}. Bad input raises an error naming the
-- file, the line (record) and the field.
local json = require("repro.json")

local M = {}

local function check_keys(t, what, allowed)
  local ok = {}
  for _, k in ipairs(allowed) do ok[k] = true end
  for k in pairs(t) do
    if not ok[k] then error(what .. ": unknown option '" .. tostring(k) .. "' (valid: " .. table.concat(allowed, ", ") .. ")", 3) end
  end
end

local function positive_int(v, what)
  if type(v) ~= "number" or v < 1 or v % 1 ~= 0 then error(what .. " must be an integer >= 1 (got " .. tostring(v) .. ")", 3) end
  return v
end

local function fraction(v, what)
  v = v or 0
  if type(v) ~= "number" or v < 0 or v >= 1 then error(what .. " must be in [0, 1) (got " .. tostring(v) .. ")", 3) end
  return v
end

function M.pack(ids, o)
  o = o or {}
  check_keys(o, "train_data.pack", { "seq_len", "holdout", "max_seqs" })
  local T = positive_int(o.seq_len, "train_data.pack: seq_len")
  local holdout = fraction(o.holdout, "train_data.pack: holdout")
  if type(ids) ~= "table" then error("train_data.pack: ids must be a list of token ids", 2) end
  local n = math.floor((#ids - 1) / T)
  if o.max_seqs then n = math.min(n, positive_int(o.max_seqs, "train_data.pack: max_seqs")) end
  if n < 1 or (holdout > 0 and n < 2) then
    error(string.format("train_data.pack: %d tokens make %d sequence(s) of %d+1 (need %d)", #ids, math.max(n, 0), T,
                        holdout > 0 and 2 or 1), 2)
  end
  local n_valid = holdout > 0 and math.max(1, math.floor(n * holdout + 0.5)) or 0
  if n_valid >= n then n_valid = n - 1 end
  local train, valid = {}, {}
  for k = 0, n - 1 do
    local seq = {}
    for i = 1, T + 1 do seq[i] = ids[k * T + i] end
    local dst = k < n - n_valid and train or valid
    dst[#dst + 1] = { ids = seq }
  end
  return { train = train, valid = valid, n_tokens = #ids, dropped = #ids - 1 - n * T }
end

local function read_file(path, what)
  if type(path) ~= "string" then error(what .. ": path must be a string", 3) end
  local fh, err = io.open(path, "rb")
  if not fh then error(what .. ": cannot open " .. tostring(err), 3) end
  local s = fh:read("*a")
  fh:close()
  return s
end

local function tokens_of(tokenize, s, where)
  local ids = tokenize(s)
  if type(ids) ~= "table" then error(where .. ": tokenize must return a list of ids", 3) end
  return ids
end

function M.text(o)
  check_keys(o, "train_data.text", { "path", "tokenize", "seq_len", "holdout", "max_bytes", "max_seqs" })
  if type(o.tokenize) ~= "function" then error("train_data.text: tokenize must be a function(text) -> ids", 2) end
  local s = read_file(o.path, "train_data.text")
  if o.max_bytes then s = s:sub(1, positive_int(o.max_bytes, "train_data.text: max_bytes")) end
  if #s == 0 then error("train_data.text: " .. o.path .. " is empty", 2) end
  local ok, r = pcall(M.pack, tokens_of(o.tokenize, s, "train_data.text: " .. o.path),
                      { seq_len = o.seq_len, holdout = o.holdout, max_seqs = o.max_seqs })
  if not ok then error(o.path .. ": " .. tostring(r), 2) end
  return r
end

-- The string at a field name, dotted path or function of a record; nil and a reason when absent.
local function field(rec, spec)
  if type(spec) == "function" then return spec(rec) end
  local v = rec
  for part in tostring(spec):gmatch("[^%.]+") do
    if type(v) ~= "table" then return nil, "'" .. part .. "' of a " .. type(v) end
    local k = tonumber(part)
    local nv = v[part]
    if nv == nil and k then nv = v[k] end
    if nv == nil then return nil, "'" .. part .. "' missing" end
    v = nv
  end
  return v
end

function M.pairs(o)
  check_keys(o, "train_data.pairs", { "path", "tokenize", "seq_len", "prompt", "response", "eos", "pad", "holdout",
                                      "max_records", "format" })
  if type(o.tokenize) ~= "function" then error("train_data.pairs: tokenize must be a function(text) -> ids", 2) end
  local T = positive_int(o.seq_len, "train_data.pairs: seq_len")
  local holdout = fraction(o.holdout, "train_data.pairs: holdout")
  local pspec, rspec = o.prompt or "prompt", o.response or "response"
  local pad = o.pad or 0
  local s = read_file(o.path, "train_data.pairs")
  local train, valid, n, truncated, line_no = {}, {}, 0, 0, 0
  local every = holdout > 0 and math.max(2, math.floor(1 / holdout + 0.5)) or nil
  for line in s:gmatch("([^\n]*)\n?") do
    line_no = line_no + 1
    if line:match("%S") then
      if o.max_records and n >= o.max_records then break end
      local where = string.format("%s:%d", o.path, line_no)
      local ok, rec = pcall(json.decode, line)
      if not ok then error(where .. ": not a JSON object (" .. tostring(rec) .. ")", 2) end
      if type(rec) ~= "table" then error(where .. ": record is a " .. type(rec) .. ", not an object", 2) end
      local p, why = field(rec, pspec)
      if type(p) ~= "string" then error(where .. ": prompt field " .. tostring(pspec) .. ": " .. (why or ("a " .. type(p) .. ", not a string")), 2) end
      local r, why2 = field(rec, rspec)
      if type(r) ~= "string" then error(where .. ": response field " .. tostring(rspec) .. ": " .. (why2 or ("a " .. type(r) .. ", not a string")), 2) end
      if o.format then p = o.format(p) end
      local pi, ri = tokens_of(o.tokenize, p, where), tokens_of(o.tokenize, r, where)
      local ids, score = {}, {}
      for i = 1, #pi do ids[#ids + 1] = pi[i]; score[#ids] = false end
      for i = 1, #ri do ids[#ids + 1] = ri[i]; score[#ids] = true end
      if o.eos then ids[#ids + 1] = o.eos; score[#ids] = true end
      if #ids > T + 1 then truncated = truncated + 1 end
      if #pi >= T + 1 then error(where .. ": prompt of " .. #pi .. " tokens leaves no response within seq_len " .. T, 2) end
      local seq, mask = {}, {}
      for i = 1, T + 1 do seq[i] = ids[i] or pad end
      -- mask[t] scores the target seq[t+1]
      for t = 1, T do mask[t] = (ids[t + 1] ~= nil and score[t + 1]) and 1 or 0 end
      n = n + 1
      local dst = (every and n % every == 0) and valid or train
      dst[#dst + 1] = { ids = seq, mask = mask }
    end
  end
  if n == 0 then error("train_data.pairs: " .. o.path .. " holds no records", 2) end
  return { train = train, valid = valid, n_records = n, truncated = truncated }
end

function M.batches(seqs, B, o)
  o = o or {}
  check_keys(o, "train_data.batches", { "seed", "epoch", "drop_last" })
  positive_int(B, "train_data.batches: B")
  if type(seqs) ~= "table" or #seqs == 0 then error("train_data.batches: no sequences", 2) end
  local x = ((o.seed or 1) * 7919 + (o.epoch or 0) * 104729) % 2147483646 + 1
  local order = {}
  for i = 1, #seqs do order[i] = i end
  for i = #order, 2, -1 do   -- Fisher-Yates with Park-Miller draws
    x = (x * 16807) % 2147483647
    local j = x % i + 1
    order[i], order[j] = order[j], order[i]
  end
  local out = {}
  for s = 1, #order, B do
    if o.drop_last and s + B - 1 > #order then break end
    local toks, masks = {}, {}
    for k = s, math.min(s + B - 1, #order) do
      local q = seqs[order[k]]
      toks[#toks + 1] = q.ids
      if q.mask then masks[#masks + 1] = q.mask end
    end
    out[#out + 1] = { tokens = toks, mask = #masks > 0 and masks or nil }
  end
  return out
end

function M.windows(ids, B, T, state)
  positive_int(B, "train_data.windows: B")
  positive_int(T, "train_data.windows: T")
  if type(ids) ~= "table" or #ids < T + 2 then
    error(string.format("train_data.windows: %d tokens, a window needs %d", type(ids) == "table" and #ids or 0, T + 2), 2)
  end
  if type(state) ~= "number" or state ~= math.floor(state) or state < 1 or state > 2147483646 then
    error("train_data.windows: state must be an integer in [1, 2147483646], got " .. tostring(state), 2)
  end
  local x = state
  return function()
    local rows = {}
    for b = 1, B do
      x = (x * 16807) % 2147483647
      local off = x % (#ids - T - 1)
      local row = {}
      for t = 1, T + 1 do row[t] = ids[off + t] end
      rows[b] = row
    end
    return { tokens = rows }
  end
end

return M
