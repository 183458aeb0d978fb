-- safe_test.lua: the repro.safe binding's contracts, offline (run by `repro exec`): F1@K values against
-- closed forms, parsers, object lifetimes (use after close raises), option tables reject unknown keys,
-- the BM25 backend over a temporary folder, the cache (export/import), and replay misses as errors.
local C = require("repro.safe")
local safe = require("safe")

local T = require("tests.luacheck")
local check, errors_with = T.check, T.errors_with
local function near(a, b, tol) return a ~= nil and math.abs(a - b) <= tol end

-- F1@K closed forms (App. D)
check(near(C.f1k(1, 0, 64), 2 / 65, 1e-15), "one supported fact")
check(near(C.f1k(100, 0, 178), 200 / 278, 1e-15), "100 S beyond K")
check(C.f1k(0, 9, 64) == 0, "only NS")
for _, c in ipairs(safe.f1k_cases()) do
  check(near(C.f1k(c[2], c[3], c[4]), c[5], c[4] >= 1000000 and 1e-5 * c[5] or 1e-12), "case " .. c[1])
end
errors_with(function() C.f1k(1, 0, 0) end, "K >= 1", "K = 0 rejected")
errors_with(function() C.f1k(1.5, 0, 64) end, "", "fractional count rejected")
local sm = C.summarize({ { s = 64, ns = 0 }, { s = 0, ns = 10 }, { s = 0, ns = 0, ir = 3 } }, 64)
check(near(sm.f1, 1 / 3, 1e-15) and sm.n_prec == 2 and near(sm.prec, 0.5, 1e-15) and near(sm.ir, 1, 1e-15), "summarize per response")
check(C.precision(0, 0) == nil, "precision undefined without facts")

-- parsers
local s = C.split_sentences("Sure, here you go. Dr. Smith was born in 1950. He died in 2001.")
check(#s == 2 and s[1] == "Dr. Smith was born in 1950.", "sentences, boilerplate skipped")
check(#C.split_sentences("Sure. Yes.", false) == 2, "boilerplate kept when asked")
local f = C.parse_facts("Facts:\n- A is B.\n- C is D.\nDone.")
check(#f == 2 and f[2] == "C is D.", "bulleted facts")
check(C.parse_relevance("so [Not Foo].") == "irrelevant" and C.parse_relevance("[Foo]") == "relevant", "relevance labels")
check(C.parse_rating("[Supported]") == "supported" and C.parse_rating("[maybe]") == "unparsed", "rating labels")
check(type(C.postamble) == "string" and C.postamble:find("specific details", 1, true) ~= nil, "postamble")

-- a temporary folder for the index and caches
local tmp = os.tmpname()
os.remove(tmp)
assert(os.execute("mkdir -p " .. tmp .. "/docs"))
local fh = assert(io.open(tmp .. "/docs/Apollo_13.txt", "w"))
fh:write("Apollo 13 launched on April 11, 1970.\n\nThe crew returned safely on April 17, 1970.\n")
fh:close()
check(C.bm25_build(tmp .. "/index.db", tmp .. "/docs") == 2, "two passages indexed")
local srch = C.bm25(tmp .. "/index.db")
check(srch:name():find("^bm25:") ~= nil, "bm25 backend name")
check(srch:query("when did the crew return", 1):find("April 17", 1, true) ~= nil, "bm25 finds the passage")
srch:close()
errors_with(function() srch:query("x") end, "after close", "search used after close")
srch:close()   -- idempotent

local cache = C.cache(tmp .. "/cache.db")
check(cache:count() == 0, "new cache is empty")
errors_with(function() C.rate(nil, nil, { { question = "Q", response = "A is B." } }, { cache = cache, replay = true, llm_name = "x" }) end,
  "replay", "replay miss is an error")
errors_with(function() C.rate(nil, nil, {}, { cache = cache, bogus = 1 }) end, "bogus", "unknown rate option rejected")
errors_with(function() C.rate(nil, nil, { { question = "Q" } }, { cache = cache, replay = true }) end, "question and response",
  "item without response rejected")
errors_with(function() C.rate(nil, nil, {}, {}) end, "needs an LLM", "no backend and no cache")
local empty = C.rate(nil, nil, {}, { cache = cache, replay = true })
check(#empty == 0, "no items, no calls")
cache:export(tmp .. "/export.db")
local c2 = C.cache(tmp .. "/other.db")
check(c2:import(tmp .. "/export.db") == 0, "import of an empty cache adds nothing")
errors_with(function() c2:import(tmp .. "/missing.db") end, "no such file", "import of a missing file")
c2:close()
cache:close()
errors_with(function() cache:count() end, "after close", "cache used after close")

-- HTTP backends are built in; an unreachable endpoint is a per-call error, never a crash
local llm = C.openai { base_url = "http://127.0.0.1:9/v1", model = "none", max_retries = 0, timeout = 2 }
check(llm:name() == "openai:none", "openai backend name")
errors_with(function() llm:complete("hi") end, "llm:complete", "unreachable endpoint raises a clean error")
errors_with(function() C.openai { base_url = "x", model = "m", nonsense = 1 } end, "nonsense", "unknown openai option rejected")
llm:close()

-- The experiments pass the local model's path to every backend; the HTTP one must accept and ignore it.
if C.openai then
  local ok, b = pcall(safe.make_llm, "openai", { model_path = "smollm2", base_url = "http://127.0.0.1:9/v1", model = "m", api_key_env = "" })
  check(ok and b ~= nil, "openai backend built from the experiments' options (" .. tostring(b) .. ")")
  if ok and b and b.close then b:close() end
end

assert(os.execute("rm -rf " .. tmp))
T.done("safe_test.lua")
