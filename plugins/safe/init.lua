-- init.lua: require("safe"): the Lua side of the SAFE plugin (Wei et al. 2024, "Long-form factuality in
-- large language models"): where the data lives, the paper's reported numbers, the F1@K known-answer
-- cases, backend construction from experiment params, and the human-label side of FActScore.
-- Written in the subset shared by Lua 5.4 and LuaJIT.
local C = require("repro.safe")

local M = { VERSION = 1, C = C, SERPER_URL = "https://google.serper.dev/search" }

local assets = require("repro.assets")

--- The longfact data set's folder, through the asset registry (mirror, cache or download; verified).
function M.data_dir()
  return assets.path("longfact")
end

M.FACTSCORE_FILES = { "ChatGPT", "InstructGPT", "PerplexityAI" }

-- Paper Table 30 (NeurIPS camera-ready; Table 2 / Fig. 6 subsets): mean S, NS, I per response and
-- percentages. Not reproducible here: needs the same closed models, gpt-3.5-turbo-0125 and live Google.
M.PAPER_TABLE = {
  { model = "Gemini-Ultra", s = 83.4, ns = 13.1, i = 7.6, prec = 86.2, f1_64 = 91.7, f1_178 = 60.3 },
  { model = "Gemini-Pro", s = 66.6, ns = 12.1, i = 5.5, prec = 82.0, f1_64 = 83.7, f1_178 = 50.4 },
  { model = "GPT-4-Turbo", s = 93.6, ns = 8.3, i = 6.1, prec = 91.7, f1_64 = 95.0, f1_178 = 66.4 },
  { model = "GPT-4", s = 59.1, ns = 7.0, i = 2.4, prec = 89.4, f1_64 = 88.0, f1_178 = 48.0 },
  { model = "GPT-3.5-Turbo", s = 46.9, ns = 4.5, i = 1.2, prec = 90.8, f1_64 = 79.6, f1_178 = 40.5 },
  { model = "Claude-3-Opus", s = 63.8, ns = 8.1, i = 2.8, prec = 88.5, f1_64 = 89.3, f1_178 = 50.6 },
  { model = "Claude-3-Sonnet", s = 65.4, ns = 8.4, i = 2.6, prec = 88.5, f1_64 = 89.4, f1_178 = 51.4 },
  { model = "Claude-3-Haiku", s = 39.8, ns = 2.8, i = 1.3, prec = 92.8, f1_64 = 73.5, f1_178 = 35.8 },
  { model = "Claude-2.1", s = 38.3, ns = 6.5, i = 1.9, prec = 84.8, f1_64 = 67.9, f1_178 = 33.7 },
  { model = "Claude-2.0", s = 38.5, ns = 6.3, i = 1.3, prec = 85.5, f1_64 = 68.7, f1_178 = 34.0 },
  { model = "Claude-Instant", s = 43.9, ns = 8.1, i = 1.3, prec = 84.4, f1_64 = 73.8, f1_178 = 37.6 },
  { model = "PaLM-2-L-IT-RLHF", s = 72.9, ns = 8.7, i = 4.3, prec = 89.1, f1_64 = 91.0, f1_178 = 55.3 },
  { model = "PaLM-2-L-IT", s = 13.2, ns = 1.8, i = 0.1, prec = 88.8, f1_64 = 31.1, f1_178 = 13.2 },
}

-- F1@K cases worked from the paper's definitions (App. D.2-D.3): {name, S, NS, K, closed-form value}.
function M.f1k_cases()
  local cases = {}
  for _, k in ipairs({ 1, 48, 64, 84, 178 }) do
    cases[#cases + 1] = { "one supported fact, K=" .. k, 1, 0, k, 2 / (k + 1) }
    cases[#cases + 1] = { "100 S 0 NS, K=" .. k, 100, 0, k, k <= 100 and 1 or 200 / (k + 100) }
    cases[#cases + 1] = { "only NS facts, K=" .. k, 0, 7, k, 0 }
  end
  for _, sn in ipairs({ { 3, 1 }, { 30, 10 }, { 9, 41 } }) do
    local p = sn[1] / (sn[1] + sn[2])
    cases[#cases + 1] = { string.format("F1@1 = 2P/(P+1), S=%d NS=%d", sn[1], sn[2]), sn[1], sn[2], 1, 2 * p / (p + 1) }
  end
  cases[#cases + 1] = { "K*F1@K -> 2S (S=5, NS=2, K=1e7), as 2S", 5, 2, 10000000, 2 * 5 / 10000000 }
  return cases
end

-- Harness regression targets computed from FActScore's human labels (spec §5; not in the paper): mean over
-- pairs with >= 1 human label, precision over pairs with S+NS > 0, IR ignored.
M.HUMAN_TARGETS = {
  ChatGPT = { s = 20.3, ns = 10.8, prec = 62.3, f1_64 = 41.5, f1_178 = 19.2 },
  InstructGPT = { s = 11.6, ns = 10.9, prec = 47.4, f1_64 = 25.6, f1_178 = 11.3 },
  PerplexityAI = { s = 30.5, ns = 4.8, prec = 84.0, f1_64 = 58.6, f1_178 = 27.9 },
}

--- Per-response human counts of one FActScore file: list of {s, ns, ir} for pairs with >= 1 label.
function M.human_counts(items)
  local out = {}
  for _, it in ipairs(items) do
    if #it.facts > 0 then
      local c = { s = 0, ns = 0, ir = 0 }
      for _, f in ipairs(it.facts) do
        if f.label == "S" then c.s = c.s + 1 elseif f.label == "NS" then c.ns = c.ns + 1 else c.ir = c.ir + 1 end
      end
      out[#out + 1] = c
    end
  end
  return out
end

--- The params both SAFE experiments take for the rater, search, cache and rate limits, merged under the
--- experiment's own (which win): safe.params{ own params }.
function M.params(own)
  local p = {
    api_key_env = { type = "string", default = "OPENAI_API_KEY", doc = "environment variable holding the API key (never stored)" },
    rater_model = { type = "string", default = "gpt-3.5-turbo-0125", doc = "SAFE's rater model" },
    search = { type = "string", default = "serper", choices = { "serper", "bm25", "replay" }, doc = "search backend" },
    search_url = { type = "string", default = M.SERPER_URL, doc = "Serper endpoint (any Serper-compatible search API) for search=serper" },
    search_key_env = { type = "string", default = "SERPER_API_KEY", doc = "environment variable holding the Serper key (never stored)" },
    index = { type = "string", default = "results/safe/bm25.db", doc = "BM25 index file" },
    cache = { type = "string", default = "results/safe/cache.db", doc = "SQLite cache of every call" },
    serve = { type = "string", default = "", doc = "serve this local model (a GGUF path, or smollm2) in-process as the endpoint for every LLM call" },
    n_queries = { type = "integer", default = 5, min = 0, doc = "searches per relevant fact" },
    max_retries = { type = "integer", default = 10, min = 0, doc = "re-asks per unparseable answer" },
    max_failures = { type = "integer", default = 3, min = 0, doc = "transport failures (after HTTP retries) per fact before it is recorded failed" },
    http_retries = { type = "integer", default = 5, min = 1, doc = "HTTP-level retries per request (429, 5xx, timeouts; recorded as net_retries)" },
    rater_labels = { type = "string", default = "text", choices = { "text", "score" }, doc =
      "how the relevance and rating steps are answered: text (parse the rater's free text, as the paper) or score " ..
      "(llm=local only: the allowed label with the highest log-likelihood under the local model)" },
    query_fallback = { type = "boolean", default = false, doc = "search the fact itself when no query can be parsed (not in the paper; for small raters)" },
    rater_tokens = { type = "integer", default = 512, min = 1, doc = "output token limit of each SAFE call (paper: 512)" },
    timeout = { type = "number", default = 120, doc = "seconds per HTTP attempt before a retry" },
    rpm = { type = "number", default = 0, min = 0, doc = "rater requests per minute limit (0: none)" },
    tpm = { type = "number", default = 0, min = 0, doc = "rater tokens per minute limit (0: none)" },
    concurrency = { type = "integer", default = 4, min = 1, doc = "requests in flight" },
    price_in = { type = "number", default = 0.5, doc = "rater $ per million input tokens (gpt-3.5-turbo-0125)" },
    price_out = { type = "number", default = 1.5, doc = "rater $ per million output tokens" },
    llm = { type = "string", default = "openai", choices = { "openai", "local", "replay" }, doc = "LLM backend: openai (any compatible endpoint), local (the `serve` model in this process, no HTTP), replay (cache only)" },
    base_url = { type = "string", default = "https://api.openai.com/v1", doc = "OpenAI-compatible endpoint of the LLM calls" },
    docs = { type = "string", default = "", doc = "documents folder for the bm25 search (indexed once into `index`)" },
  }
  for k, v in pairs(own) do p[k] = v end
  return p
end

--- A path param: absolute paths as given, relative ones under the project root (so results/safe/... lands
--- in the project's results folder whatever the working directory).
function M.project_path(path)
  if path == "" or path:sub(1, 1) == "/" or not REPRO_ROOT then return path end
  return REPRO_ROOT .. "/" .. path
end

--- The rater side of a run, from the shared params (safe.params): the local model served in this process
--- when `serve` is set (p.base_url then points at it), the call cache, the search backend and the rater
--- LLM (at rater_url when given, else p.base_url). Returns server (or nil), cache, search, rater.
function M.open_rater(ctx, p, rater_url)
  local server
  if p.serve ~= "" and p.llm == "openai" then
    server, p.base_url = M.serve(p.serve, { ctx = 2048 })
    p.api_key_env = ""
    ctx:note("serving %s at %s (a 135M model's verdicts are not comparable to GPT-3.5-Turbo's)", p.serve, p.base_url)
  end
  local cache_path = M.project_path(p.cache)
  local dirname = cache_path:match("^(.*)/")
  if dirname then assert(os.execute("mkdir -p '" .. dirname .. "'")) end
  if p.rater_labels == "score" and p.llm ~= "local" then
    error("safe: rater_labels=score needs llm=local (an API model's log-likelihoods are not available; use rater_labels=text)", 0)
  end
  local cache = C.cache(cache_path)
  local search = M.make_search(p.search, { index = M.project_path(p.index), docs = M.project_path(p.docs), url = p.search_url,
                                           api_key_env = p.search_key_env, max_concurrent = p.concurrency, timeout = p.timeout,
                                           max_retries = p.http_retries })
  local rater = M.make_llm(p.llm, { model_path = p.serve, base_url = (rater_url and rater_url ~= "") and rater_url or p.base_url,
                                    model = p.rater_model, api_key_env = p.api_key_env, price_in = p.price_in,
                                    price_out = p.price_out, max_concurrent = p.concurrency, timeout = p.timeout,
                                    rpm = p.rpm, tpm = p.tpm, max_retries = p.http_retries,
                                    score_labels = p.rater_labels == "score" })
  return server, cache, search, rater
end

local function split_csv(s)
  local t = {}
  for w in tostring(s):gmatch("[^,]+") do t[#t + 1] = (w:gsub("^%s+", ""):gsub("%s+$", "")) end
  return t
end
M.split_csv = split_csv

--- The options of `t` whose names are in `keys` (each backend takes only its own; the rest are another's).
local function pick(t, keys)
  local o = {}
  for _, k in ipairs(keys) do o[k] = t[k] end
  return o
end

--- An LLM backend from params: kind "openai" (any OpenAI-compatible endpoint: base_url, model, key env),
--- "local" (opts.model_path served in this process without HTTP; opts.score_labels answers the label steps
--- by log-likelihood) or "replay" (answers from the cache only).
function M.make_llm(kind, opts)
  if kind == "replay" then return nil end
  if kind == "local" then return C.local_model(M.model_path(opts.model_path), { ctx = 2048, score_labels = opts.score_labels or false }) end
  if kind == "openai" then
    if not C.openai then error("safe: this build has no HTTP LLM backend (harness/net/http.h missing)", 0) end
    return C.openai(pick(opts, { "base_url", "model", "api_key_env", "price_in", "price_out", "max_concurrent", "rpm", "tpm",
                                 "max_retries", "timeout" }))
  end
  error("safe: unknown LLM backend '" .. tostring(kind) .. "' (valid: openai, local, replay)", 0)
end

--- Start a local model behind the OpenAI-compatible endpoint in this process (what `repro serve` runs);
--- name "smollm2" means the mirror's SmolLM2-135M-Instruct Q4_1 GGUF. Returns the server and its base URL.
function M.model_path(name)
  if name == "smollm2" then
    return assets.path("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
  end
  if not name or name == "" then error("safe: no local model given (param serve: a GGUF path or smollm2)", 0) end
  return name
end

function M.serve(name, opts)
  local srv = require("repro.serve").start(M.model_path(name), opts)
  return srv, srv:url()
end

--- Stage the mirror's WikiText-2 test articles (Wikipedia text) as one .txt file per article under dest,
--- the offline corpus for the BM25 search backend; returns dest and the number of articles.
function M.stage_wikitext(dest)
  local src = assets.path("wikitext2", "wiki.test.raw")
  local f = io.open(src, "rb")
  if not f then error("safe: cannot read WikiText-2 at " .. src .. " for the BM25 corpus", 0) end
  local text = f:read("*a")
  f:close()
  assert(os.execute("mkdir -p '" .. dest .. "'"))
  local n, title, buf = 0, nil, {}
  local function flush()
    if title and #buf > 0 then
      n = n + 1
      local name = title:gsub("[^%w]+", "_"):sub(1, 80)
      local out = assert(io.open(string.format("%s/%03d_%s.txt", dest, n, name), "wb"))
      out:write(title, "\n\n", table.concat(buf, "\n\n"), "\n")
      out:close()
    end
    buf = {}
  end
  for line in text:gmatch("[^\r\n]+") do
    local t = line:match("^ = ([^=].-) = $")
    if t then flush(); title = t
    elseif title then buf[#buf + 1] = (line:gsub("^%s+", ""):gsub(" @(.)@ ", "%1")) end
  end
  flush()
  return dest, n
end

--- A search backend from params: "bm25" (opts.index, built from opts.docs when missing), "serper" (opts.url,
--- api_key_env, max_concurrent, timeout, max_retries; other options are ignored), "replay" (nil).
function M.make_search(kind, opts)
  if kind == "replay" then return nil end
  if kind == "bm25" then
    local idx = opts.index
    local f = io.open(idx, "rb")
    if f then f:close() else
      local docs = opts.docs
      if not docs or docs == "" then docs = M.stage_wikitext((idx:match("^(.*)/") or ".") .. "/docs-wikitext2") end
      C.bm25_build(idx, docs)
    end
    return C.bm25(idx)
  end
  if kind == "serper" then
    if not C.serper then error("safe: this build has no HTTP search backend (harness/net/http.h missing)", 0) end
    return C.serper(pick(opts, { "url", "api_key_env", "max_concurrent", "timeout", "max_retries" }))
  end
  error("safe: unknown search backend '" .. tostring(kind) .. "' (valid: bm25, serper, replay)", 0)
end

return M
