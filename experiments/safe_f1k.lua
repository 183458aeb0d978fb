-- safe_f1k.lua: the long-form factuality benchmark of Wei et al. 2024: responses to the 250 LongFact-Objects
-- benchmark prompts (+ the length postamble, temperature 0) from one or more models, rated by SAFE
-- (split, revise, relevance, 5 searches, rate), F1@64 and F1@178 per model (Fig. 6 bars) with precision
-- and supported-fact counts. Exact targets: F1@K arithmetic from the paper's definitions, LongFact counts.
-- The paper's 13-model table is shown beside, marked not reproducible without the same APIs.
-- Every LLM call and search goes through the SQLite cache (`cache`): a rerun is free and offline, an
-- interrupted run resumes, and `llm=replay search=replay` re-scores a shared cache file without keys.
local experiment = require("repro.experiment")
local safe = require("safe")
local C = safe.C

local function close(a, b, tol) return math.abs(a - b) <= tol end

local function exact_targets(ctx)
  for _, c in ipairs(safe.f1k_cases()) do
    local name, s, ns, k, want = c[1], c[2], c[3], c[4], c[5]
    local tol = k >= 1000000 and 1e-5 * want or 1e-12
    ctx:target { name = "F1@K: " .. name, kind = "exact", paper = want, value = C.f1k(s, ns, k), tolerance = tol,
                 note = "closed form from the paper's definition (App. D)" }
  end
  -- per-response averaging, not a ratio of means: (64,0) and (0,10) at K=64 average to 0.5
  local sm = C.summarize({ { s = 64, ns = 0 }, { s = 0, ns = 10 } }, 64)
  ctx:target { name = "F1@K averaged per response", kind = "exact", paper = 0.5, value = sm.f1, tolerance = 1e-12 }
  local dir = safe.data_dir()
  local total, topics = 0, {}
  for _, subset in ipairs({ "objects", "concepts" }) do
    local ps = C.longfact(dir, subset)
    local per, ntop = {}, 0
    for _, p in ipairs(ps) do
      if not per[p.topic] then per[p.topic] = 0; ntop = ntop + 1 end
      per[p.topic] = per[p.topic] + 1
      topics[p.topic] = true
    end
    local all30 = true
    for _, n in pairs(per) do if n ~= 30 then all30 = false end end
    ctx:target { name = "LongFact-" .. subset .. " prompts", kind = "exact", paper = 1140, value = #ps, tolerance = 0 }
    ctx:target { name = "LongFact-" .. subset .. " topics", kind = "exact", paper = 38, value = ntop, tolerance = 0 }
    ctx:target { name = "LongFact-" .. subset .. ": 30 prompts per topic", kind = "shape", holds = all30 }
    total = total + #ps
  end
  ctx:target { name = "LongFact prompts (both subsets)", kind = "exact", paper = 2280, value = total, tolerance = 0 }
  local b = C.benchmark(dir .. "/longfact-objects_benchmark250.jsonl")
  local bt, nbt = {}, 0
  for _, p in ipairs(b) do if not bt[p.topic] then bt[p.topic] = true; nbt = nbt + 1 end end
  ctx:target { name = "benchmark prompts", kind = "exact", paper = 250, value = #b, tolerance = 0 }
  ctx:target { name = "benchmark topics", kind = "exact", paper = 38, value = nbt, tolerance = 0 }
  return b
end

return experiment.define {
  name = "safe_f1k",
  paper = "safe",
  description = "LongFact benchmark: SAFE ratings and F1@64 / F1@178 per model (Wei et al. 2024, Table 2, Fig. 6)",
  version = 1,
  params = safe.params {
    n_prompts = { type = "integer", default = 250, min = 0, max = 250, doc = "benchmark prompts to answer and rate (0: exact targets only)" },
    models = { type = "string", default = "gpt-3.5-turbo-0125", doc = "comma-separated model names at base_url to benchmark" },
    base_url = { type = "string", default = "https://api.openai.com/v1", doc = "OpenAI-compatible endpoint of the benchmarked models" },
    rater_base_url = { type = "string", default = "", doc = "rater endpoint (empty: base_url)" },
    response_tokens = { type = "integer", default = 1024, min = 1, doc = "response length limit (paper: 1,024)" },
    postamble = { type = "boolean", default = true, doc = "append the paper's length postamble to each prompt" },
    k_results = { type = "integer", default = 3, min = 1, doc = "results per search" },
  },
  seconds = { demo = 35 },   -- idle 2-core estimate from measured CPU time (see README)
  presets = {
    smoke = { n_prompts = 0 },
    demo = { n_prompts = 1, models = "SmolLM2-135M-Instruct", serve = "smollm2", rater_model = "SmolLM2-135M-Instruct", llm = "local",
             rater_labels = "score",
             search = "bm25", response_tokens = 32, n_queries = 1, max_retries = 1, rater_tokens = 64, timeout = 900, query_fallback = true,
             price_in = 0, price_out = 0, concurrency = 1, cache = "results/safe/demo-cache.db" },
    full = { n_prompts = 250 },
    paper = { n_prompts = 250 },
  },
  run = function(ctx, p)
    local bench = exact_targets(ctx)
    local names, f64p, f178p = {}, {}, {}
    for _, row in ipairs(safe.PAPER_TABLE) do
      ctx:target { name = row.model .. " F1@64 (%)", kind = "not_reproducible", paper = row.f1_64,
                   reason = "needs the paper's model API, gpt-3.5-turbo-0125 as rater and live Google search via Serper" }
      ctx:target { name = row.model .. " F1@178 (%)", kind = "not_reproducible", paper = row.f1_178,
                   reason = "needs the paper's model API, gpt-3.5-turbo-0125 as rater and live Google search via Serper" }
      names[#names + 1] = row.model; f64p[#f64p + 1] = row.f1_64; f178p[#f178p + 1] = row.f1_178
    end
    ctx:figure { name = "paper_f1k", type = "bars", title = "Paper (Fig. 6): F1@64 and F1@178 per model (%)", ylabel = "%",
                 categories = names, series = { { label = "F1@64", y = f64p }, { label = "F1@178", y = f178p } } }
    if p.n_prompts == 0 then return end

    local server, cache, search, rater = safe.open_rater(ctx, p, p.rater_base_url)
    local demos = C.demos(safe.data_dir() .. "/factscore/demos/demons.json")
    local prompts = {}
    for i = 1, p.n_prompts do
      prompts[i] = p.postamble and (bench[i].prompt .. " " .. C.postamble) or bench[i].prompt
    end
    local labels, m64, m178 = {}, {}, {}
    for _, model in ipairs(safe.split_csv(p.models)) do
      local llm = p.llm == "local" and rater or safe.make_llm(p.llm, { base_url = p.base_url, model = model, api_key_env = p.api_key_env, max_concurrent = p.concurrency,
                                         timeout = p.timeout })
      local gen = C.generate(llm, prompts, { cache = cache, replay = p.llm == "replay", llm_name = llm and llm:name() or ("openai:" .. model),
                                             temperature = 0, max_tokens = p.response_tokens })
      local items, keys, gen_net = {}, {}, 0
      for i, g in ipairs(gen) do
        gen_net = gen_net + (g.net_retries or 0)
        if g.text then items[#items + 1] = { question = bench[i].prompt, response = g.text }; keys[#items] = i
        else
          -- a prompt whose response could not be generated still leaves its record, with the error
          ctx:note("model %s, prompt %d: no response (%s)", model, i, g.error)
          ctx:record("safe_response", model .. "/" .. i, { question = bench[i].prompt, status = "generation_failed",
                                                           error = g.error, net_retries = g.net_retries })
        end
      end
      local res = C.rate(rater, search, items, {
        cache = cache, replay = p.llm == "replay" or p.search == "replay", demos = demos,
        llm_name = rater and rater:name() or ("openai:" .. p.rater_model), search_name = search and search:name() or "serper",
        n_queries = p.n_queries, k_results = p.k_results, max_retries = p.max_retries, max_failures = p.max_failures,
        max_tokens = p.rater_tokens, query_fallback = p.query_fallback, max_batch = 4 * p.concurrency })
      local counts, unparsed, failed, cost, calls, net = {}, 0, 0, 0, 0, gen_net
      for i, r in ipairs(res) do
        ctx:record("safe_response", model .. "/" .. keys[i], r.record)
        counts[i] = { s = r.supported, ns = r.not_supported, ir = r.irrelevant }
        unparsed, failed = unparsed + r.unparsed, failed + r.failed
        cost, calls, net = cost + r.cost, calls + r.llm_calls, net + r.net_retries
        ctx:log(model .. "/f1_64", keys[i], C.f1k(r.supported, r.not_supported, 64))
      end
      -- how many of the prompts' responses were rated: F1@K below averages over these only
      ctx:summary(model .. "/responses_rated", #res, { better = "higher", n = #prompts })
      ctx:summary(model .. "/responses_failed", #prompts - #res, { better = "lower", n = #prompts })
      if #res > 0 then
        local s64, s178 = C.summarize(counts, 64), C.summarize(counts, 178)
        ctx:summary(model .. "/supported", s64.s, { better = "higher", n = s64.n })
        ctx:summary(model .. "/not_supported", s64.ns, { better = "lower", n = s64.n })
        ctx:summary(model .. "/irrelevant", s64.ir, { better = "none", n = s64.n })
        if s64.prec then ctx:summary(model .. "/precision", 100 * s64.prec, { better = "higher", n = s64.n_prec }) end
        ctx:summary(model .. "/f1_64", 100 * s64.f1, { better = "higher", n = s64.n })
        ctx:summary(model .. "/f1_178", 100 * s178.f1, { better = "higher", n = s64.n })
        labels[#labels + 1] = model; m64[#m64 + 1] = 100 * s64.f1; m178[#m178 + 1] = 100 * s178.f1
      else
        ctx:note("model %s: none of %d responses could be generated; no F1@K for it", model, #prompts)
      end
      ctx:summary(model .. "/facts_unparsed", unparsed, { better = "lower" })
      ctx:summary(model .. "/facts_failed", failed, { better = "lower" })
      ctx:summary(model .. "/cost_usd", cost, { better = "lower" })
      ctx:summary(model .. "/llm_calls", calls, { better = "none" })
      ctx:summary(model .. "/net_retries", net, { better = "lower" })
    end
    local st = cache:stats()
    ctx:summary("cache/net_llm_calls", st.net_llm_calls, { better = "none" })
    ctx:summary("cache/net_search_calls", st.net_search_calls, { better = "none" })
    ctx:summary("cache/net_retries", st.net_retries, { better = "lower" })
    ctx:summary("cache/llm_hits", st.llm_hits, { better = "none" })
    ctx:summary("cache/cost_spent_usd", st.cost_spent, { better = "lower" })
    if #labels > 0 then ctx:figure { name = "f1k", type = "bars", title = "Reproduced: F1@64 and F1@178 per model (%)", ylabel = "%",
                 categories = labels, series = { { label = "F1@64", y = m64 }, { label = "F1@178", y = m178 } } } end
    if p.rater_model:find("135M") or p.rater_model:find("SmolLM") then
      ctx:note("note: a %s rater's verdicts are not comparable to GPT-3.5-Turbo's; these numbers exercise the pipeline only", p.rater_model)
      ctx:target { name = "rater comparable to the paper's", kind = "not_reproducible", reason =
        "the rater is " .. p.rater_model .. " (135M parameters), not gpt-3.5-turbo-0125, and search is a local BM25 index over " ..
        "WikiText-2, not Google: its verdicts and F1@K are not comparable to the paper's" }
    end
    cache:close()
    if server then server:close() end
  end,
}
