-- gpu_check.lua: the CUDA backend against the CPU on one Llama model, as a recorded run (tools/gpu_check.sh
-- runs it with --device cuda, so the run's provenance names the GPU). The same file is loaded on both
-- backends; on staged prompts (fixed pseudo-random token ids, the same on every machine) greedy decoding must
-- give the same tokens, teacher-forced log-probabilities must agree within `tol` nats (fp32 on both sides:
-- only summation order differs), and each side's decoding speed is recorded. Without a GPU the run finishes
-- with a not_reproducible target saying why, so `make demo` passes on CPU-only machines.
local experiment = require("repro.experiment")
local model = require("repro.model")

local function median(v)
  table.sort(v)
  local n = #v
  return n % 2 == 1 and v[(n + 1) / 2] or (v[n / 2] + v[n / 2 + 1]) / 2
end

return experiment.define {
  name = "gpu_check",
  paper = "engine",
  description = "CUDA backend vs CPU on one model: greedy tokens, log-probabilities, decode speed",
  version = 1,
  resources = { threads = 2, memory = "2G", gpu = 1 },
  params = {
    model = { type = "string", default = "", doc = "model path (empty: the mirror's SmolLM2-135M-Instruct Q4_1)" },
    tokens = { type = "integer", default = 32, min = 1, max = 512, doc = "greedy tokens per prompt" },
    prompts = { type = "integer", default = 3, min = 1, max = 16, doc = "staged prompts" },
    tol = { type = "number", default = 5e-3, doc = "largest |log p(cuda) - log p(cpu)| allowed, nats" },
  },
  seconds = { smoke = 1, demo = 1 },   -- without a GPU it stops at once; with one, about 10 s
  presets = {
    smoke = { tokens = 8, prompts = 1 },
    demo = { tokens = 32, prompts = 3 },
    full = { tokens = 128, prompts = 8 },
    paper = { tokens = 32, prompts = 3 },
  },
  run = function(ctx, p)
    local path = p.model ~= "" and p.model or nil
    local ok, g = pcall(model.load, path or "/nonexistent-probe.gguf", { backend = "cuda" })
    if not ok and tostring(g):find("cuda") then
      ctx:target { name = "greedy tokens and log-probabilities on cuda = cpu", kind = "not_reproducible", paper = 1,
                   reason = "no GPU here: " .. tostring(g) }
      return
    end
    path = path or ctx:asset("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not ok then g = model.load(path, { backend = "cuda" }) end
    local c = model.load(path, { backend = "cpu" })
    local V = g:info().vocab
    local seed, same, worst, gtps, ctps = 12345, 1, 0, {}, {}
    for i = 1, p.prompts do
      local ids = {}
      for t = 1, 8 + 8 * i do
        seed = (seed * 16807) % 2147483647
        ids[t] = seed % V
      end
      local _, gi = g:generate { tokens = ids, max_tokens = p.tokens, temperature = 0 }
      local _, ci = c:generate { tokens = ids, max_tokens = p.tokens, temperature = 0 }
      local equal = #gi.tokens == #ci.tokens
      for k = 1, #ci.tokens do equal = equal and gi.tokens[k] == ci.tokens[k] end
      if not equal then same = 0 end
      local lg, lc = g:score(ids, 0), c:score(ids, 0)
      local d = 0
      for k = 1, #lc do d = math.max(d, math.abs(lg[k] - lc[k])) end
      worst = math.max(worst, d)
      gtps[#gtps + 1], ctps[#ctps + 1] = gi.tokens_per_s, ci.tokens_per_s
      ctx:log("max_logprob_diff", i, d)
      ctx:log("greedy_equal", i, equal and 1 or 0)
    end
    ctx:summary("max_logprob_diff_nats", worst, { better = "lower" })
    ctx:summary("cuda_decode_tokens_per_s", median(gtps), { better = "higher" })
    ctx:summary("cpu_decode_tokens_per_s", median(ctps), { better = "higher" })
    ctx:target { name = "greedy tokens on cuda = cpu", kind = "exact", paper = 1, value = same, tolerance = 0,
                 note = p.prompts .. " prompts x " .. p.tokens .. " tokens" }
    ctx:target { name = "log-probabilities on cuda vs cpu", kind = "exact", paper = 0, value = worst, tolerance = p.tol,
                 note = "largest |difference| in nats over every scored position" }
    g:close()
    c:close()
  end,
}
