-- prune_curves.lua: what dropping layers costs, as Gromov et al. 2024 (arXiv 2403.17887) Figs. 1-3, 5 and 6:
-- held-out loss (mean NLL per token / ln V, so 1.0 is uniform guessing; and bits per byte) and multiple-choice
-- accuracy (with standard errors and the chance level drawn) against the fraction of layers dropped, for each
-- selection rule: the paper's similarity rule (block l*..l*+n-1 of smallest angular distance), its simple
-- heuristic (the n layers before the last), ShortGPT's lowest block influence, and random layers (several
-- seeds). Layers are skipped in place (m:skip_layers, no copy). Healing: the pruned model is exported as GGUF
-- and fine-tuned by QLoRA on the feed-forward linears (alpha = rank, dropout 0.05, cosine with warm-up, the
-- paper's App. A.1 recipe scaled down), its held-out loss measured before and after on the same batches.
-- Texts: calibration = the first 40% of the text, healing = 40-80%, held-out loss = the last 20%.
-- The paper's collapse fractions (MMLU to chance at 20-55% of layers dropped, per family) are shown beside
-- ours and marked not reproducible here: a 135M model already sits near MMLU chance, so the collapse is
-- looked for on the tasks where it is above chance (ARC-Easy, PIQA, HellaSwag, BoolQ).
local experiment = require("repro.experiment")
local eval = require("repro.eval")
local prune = require("prune")

local function csv(s)
  local out = {}
  for w in tostring(s):gmatch("[^,%s]+") do out[#out + 1] = w end
  return out
end

-- The smallest fraction at which accuracy is no longer above chance by two standard errors (nil: never).
local function collapse_at(points, chance)
  for _, pt in ipairs(points) do
    if pt.x > 0 and pt.y - chance < 2 * pt.se then return pt.x end
  end
  return nil
end

return experiment.define {
  name = "prune_curves",
  paper = "prune",
  description = "loss and accuracy vs fraction of layers dropped, per selection rule, before and after QLoRA healing",
  version = 1,
  params = {
    model = { type = "string", default = "smollm2-135m-instruct", choices = { "smollm2-135m-instruct", "stories260K" }, doc = "model asset" },
    text = { type = "string", default = "wikitext2", choices = { "wikitext2", "tinystories" }, doc = "text for calibration, healing and held-out loss" },
    n_calib = { type = "integer", default = 256, min = 2, doc = "calibration samples for the angular distance and block influence" },
    calib_len = { type = "integer", default = 128, min = 2, max = 512, doc = "tokens per calibration sample" },
    ns = { type = "string", default = "0,2,4,6,8,10,12,14,16,18,20,22,24,26", doc = "layers dropped (comma-separated)" },
    rules = { type = "string", default = "angular,heuristic,influence,random", doc = "selection rules" },
    seeds = { type = "integer", default = 3, min = 1, doc = "seeds of the random rule" },
    eval_chars = { type = "integer", default = 40000, min = 200, doc = "bytes of held-out text for the loss" },
    eval_ctx = { type = "integer", default = 256, min = 16, doc = "tokens per loss window" },
    tasks = { type = "string", default = "arc_easy,piqa,hellaswag,boolq,mmlu", doc = "multiple-choice tasks ('' for none)" },
    limit = { type = "integer", default = 200, min = 0, doc = "items per task, a seeded subset (0: all)" },
    mmlu_shots = { type = "integer", default = 5, min = 0, doc = "few-shot examples for MMLU (the paper: 5); other tasks 0-shot" },
    heal_ns = { type = "string", default = "0,4,8,12", doc = "layers dropped for the healed points ('' for no healing)" },
    heal_rules = { type = "string", default = "angular,heuristic", doc = "rules healed" },
    heal_steps = { type = "integer", default = 200, min = 1, doc = "QLoRA steps per healed model" },
    heal_batch = { type = "integer", default = 8, min = 1, doc = "sequences per step" },
    heal_seq = { type = "integer", default = 128, min = 8, doc = "tokens per sequence" },
    heal_rank = { type = "integer", default = 8, min = 1, doc = "LoRA rank (alpha = rank)" },
    heal_lr = { type = "number", default = 3e-4, doc = "peak learning rate (the paper: 3e-4 for most models)" },
    heal_warmup = { type = "integer", default = 10, min = 0, doc = "warm-up steps (the paper: 100 of 5000)" },
  },
  presets = {
    smoke = { model = "stories260K", text = "tinystories", n_calib = 16, calib_len = 64, ns = "0,1,2,3", seeds = 2,
              eval_chars = 3000, eval_ctx = 128, tasks = "arc_easy", limit = 6, heal_ns = "2", heal_steps = 4,
              heal_batch = 2, heal_seq = 32, heal_rank = 4, heal_lr = 1e-3, heal_warmup = 1 },
    demo = { n_calib = 48, calib_len = 64, ns = "0,6,12", rules = "angular,heuristic,influence,random", seeds = 1,
             eval_chars = 3000, tasks = "arc_easy,piqa", limit = 20, heal_ns = "6", heal_steps = 8, heal_batch = 4,
             heal_seq = 64, heal_warmup = 2 },
    full = {},
    paper = { n_calib = 2000, calib_len = 256, ns = "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28",
              seeds = 5, eval_chars = 200000, limit = 0, heal_ns = "0,2,4,6,8,10,12,14,16,18,20", heal_steps = 1000,
              heal_batch = 16, heal_seq = 256 },
  },
  seconds = { smoke = 10, demo = 150 },   -- demo: 9 evaluations + 2 x 8 QLoRA steps; from CPU time measured under load (README)
  resources = { threads = 2, memory = "2G" },
  reproduces = "Figs. 1-3, 5, 6; Sec. 4.1, 4.4, App. A",
  run = function(ctx, p)
    local m, mpath = prune.load_model(ctx, p.model)
    local text = prune.load_text(ctx, p.text)
    local info = m:info()
    local L, lnV = info.n_layer, math.log(info.vocab)
    local ns = prune.int_list(p.ns)
    for _, n in ipairs(ns) do
      if n < 0 or n >= L then error(string.format("prune_curves: ns holds %d, outside [0, %d) for %s", n, L, p.model), 0) end
    end
    local rules = csv(p.rules)
    for _, r in ipairs(rules) do
      local ok = false
      for _, k in ipairs(prune.RULES) do ok = ok or k == r end
      if not ok then error("prune_curves: unknown rule '" .. r .. "' (angular, heuristic, influence, random)", 0) end
    end
    local held = prune.piece(text, 0.8, 1):sub(1, p.eval_chars)
    local st = prune.capture(m, prune.windows(m, prune.piece(text, 0, 0.4), p.n_calib, p.calib_len, p.text))
    local tasks = {}
    for _, name in ipairs(csv(p.tasks)) do
      tasks[#tasks + 1] = { name = name, task = eval.load(name), shots = name == "mmlu" and p.mmlu_shots or 0 }
    end
    local opts = { ctx = p.eval_ctx, tasks = tasks, limit = p.limit > 0 and p.limit or nil, seed = ctx.seed }

    -- every (rule, n, seed) point; n = 0 once, shared by all rules
    local jobs = {}
    for _, rule in ipairs(rules) do
      for _, n in ipairs(ns) do
        if n > 0 then for s = 1, rule == "random" and p.seeds or 1 do jobs[#jobs + 1] = { rule = rule, n = n, seed = s } end end
      end
    end
    local tick = prune.progress("evaluate", #jobs + 1, 1)
    local base = prune.evaluate(m, {}, held, opts)
    tick(1)
    local curves = {}   -- curves[rule][n] = list of results (one per seed)
    for i, job in ipairs(jobs) do
      local layers = prune.select(job.rule, job.n, L, st, 1000 * ctx.seed + job.seed)
      local r = prune.evaluate(m, layers, held, opts)
      curves[job.rule] = curves[job.rule] or {}
      curves[job.rule][job.n] = curves[job.rule][job.n] or {}
      table.insert(curves[job.rule][job.n], r)
      ctx:note("%s n=%d %s: loss/lnV %.4f, bpb %.3f", job.rule, job.n, prune.show(layers), r.loss_norm, r.bpb)
      tick(i + 1)
      if ctx:interrupted() then error("interrupted", 0) end
    end
    m:skip_layers {}

    -- mean over seeds of a field, with the spread (standard error over seeds when there are several)
    local function agg(list, get)
      local s, k = 0, #list
      for _, r in ipairs(list) do s = s + get(r) end
      local mean, v = s / k, 0
      for _, r in ipairs(list) do v = v + (get(r) - mean) ^ 2 end
      return mean, k > 1 and math.sqrt(v / (k - 1) / k) or 0
    end
    local function points(rule, get, get_se)
      local out = { { x = 0, y = get(base), se = get_se and get_se(base) or 0 } }
      for _, n in ipairs(ns) do
        local list = curves[rule] and curves[rule][n]
        if n > 0 and list then
          local y, spread = agg(list, get)
          local se = get_se and agg(list, get_se) or 0
          out[#out + 1] = { x = n / L, y = y, se = math.sqrt(se ^ 2 + spread ^ 2) }
        end
      end
      return out
    end
    local function series(label, pts)
      local s = { label = label, x = {}, y = {}, yerr = {} }
      for i, pt in ipairs(pts) do s.x[i], s.y[i], s.yerr[i] = pt.x, pt.y, pt.se end
      return s
    end
    local function flat(label, y)
      return { label = label, x = { 0, (ns[#ns] or 1) / L }, y = { y, y }, yerr = { 0, 0 } }
    end

    -- loss figures and metrics
    local loss_series, bpb_series = {}, {}
    for _, rule in ipairs(rules) do
      local lp = points(rule, function(r) return r.loss_norm end)
      local bp = points(rule, function(r) return r.bpb end)
      for _, pt in ipairs(lp) do ctx:log("loss_norm_" .. rule, math.floor(pt.x * L + 0.5), pt.y) end
      ctx:summary("loss_norm_" .. rule .. "_at_max_n", lp[#lp].y, { better = "lower" })
      for _, pt in ipairs(bp) do ctx:log("bpb_" .. rule, math.floor(pt.x * L + 0.5), pt.y) end
      loss_series[#loss_series + 1] = series(rule .. (rule == "random" and (" (" .. p.seeds .. " seeds)") or ""), lp)
      bpb_series[#bpb_series + 1] = series(rule, bp)
    end
    loss_series[#loss_series + 1] = flat("uniform guessing (1.0)", 1.0)
    ctx:figure { name = "loss_vs_fraction", type = "errorbars", title = "held-out loss / ln V vs fraction of layers dropped (no healing), " .. p.model,
                 xlabel = "fraction of layers dropped", ylabel = "mean NLL / ln V", series = loss_series }
    ctx:figure { name = "bpb_vs_fraction", type = "errorbars", title = "held-out bits per byte vs fraction of layers dropped (no healing)",
                 xlabel = "fraction of layers dropped", ylabel = "bits per byte", series = bpb_series }
    ctx:summary("loss_norm_unpruned", base.loss_norm, { better = "lower" })
    ctx:summary("bpb_unpruned", base.bpb, { better = "lower" })

    -- accuracy figures, collapse fractions
    local collapse = {}
    for _, t in ipairs(tasks) do
      local chance = prune.CHANCE[t.name] or 0
      local b = base.tasks[t.name]
      ctx:summary(t.name .. "_acc_unpruned", b.acc, { stderr = b.stderr, n = b.n, better = "higher" })
      local ser = {}
      for _, rule in ipairs(rules) do
        local pts = points(rule, function(r) return r.tasks[t.name].acc end, function(r) return r.tasks[t.name].stderr end)
        for _, pt in ipairs(pts) do ctx:log("acc_" .. t.name .. "_" .. rule, math.floor(pt.x * L + 0.5), pt.y) end
        ser[#ser + 1] = series(rule, pts)
        local c = collapse_at(pts, chance)
        collapse[#collapse + 1] = { task = t.name, rule = rule, at = c, above = b.acc - chance >= 2 * b.stderr }
        if c and b.acc - chance >= 2 * b.stderr then ctx:summary("collapse_fraction_" .. t.name .. "_" .. rule, c, { better = "higher" }) end
      end
      ser[#ser + 1] = flat("chance (" .. chance .. ")", chance)
      ctx:figure { name = "acc_" .. t.name, type = "errorbars",
                   title = string.format("%s accuracy (%d-shot, %s items) vs fraction dropped, no healing", t.name, t.shots, p.limit > 0 and p.limit or "all"),
                   xlabel = "fraction of layers dropped", ylabel = "accuracy", series = ser }
      ctx:note("%s unpruned: %.3f ± %.3f (chance %.2f)", t.name, b.acc, b.stderr, chance)
    end
    local cats, ours, paper_lo, paper_hi = {}, {}, {}, {}
    for _, fam in ipairs(prune.PAPER.collapse) do
      cats[#cats + 1] = "paper " .. fam.family .. " (MMLU)"; ours[#ours + 1] = "nan"; paper_lo[#paper_lo + 1] = fam.lo; paper_hi[#paper_hi + 1] = fam.hi
    end
    for _, c in ipairs(collapse) do
      if c.above and c.rule ~= "random" then
        cats[#cats + 1] = c.task .. " " .. c.rule; ours[#ours + 1] = c.at or "nan"; paper_lo[#paper_lo + 1] = "nan"; paper_hi[#paper_hi + 1] = "nan"
      end
    end
    ctx:figure { name = "collapse_fraction", type = "bars", title = "fraction of layers dropped where accuracy reaches chance: paper (7-70B, MMLU) vs " .. p.model,
                 ylabel = "fraction dropped", categories = cats,
                 series = { { label = "paper (low)", y = paper_lo }, { label = "paper (high)", y = paper_hi }, { label = "ours (no healing)", y = ours } } }

    -- healing
    local healed = {}
    local heal_ns = prune.int_list(p.heal_ns)
    if #heal_ns > 0 then
      local ids = m:tokenize(prune.piece(text, 0.4, 0.8):sub(1, math.max(200000, p.heal_steps * p.heal_batch * p.heal_seq * 6)), { bos = false })
      local held_ids = m:tokenize(held, { bos = false })
      local tmp = os.tmpname()
      for _, rule in ipairs(csv(p.heal_rules)) do
        for _, n in ipairs(heal_ns) do
          if n >= L then error(string.format("prune_curves: heal_ns holds %d, outside [0, %d)", n, L), 0) end
          local layers = prune.select(rule, n, L, st, 1000 * ctx.seed + 1)
          prune.C.export(mpath, tmp, layers)
          ctx:note("healing %s n=%d %s: %d QLoRA steps", rule, n, prune.show(layers), p.heal_steps)
          local r = prune.heal { path = tmp, train_ids = ids, eval_ids = held_ids, steps = p.heal_steps, batch = p.heal_batch,
                                 seq_len = p.heal_seq, rank = p.heal_rank, lr = p.heal_lr, warmup = p.heal_warmup,
                                 seed = ctx.seed, threads = 2,
                                 log = function(step, loss) ctx:log("heal_loss_" .. rule .. "_" .. n, step, loss) end }
          healed[#healed + 1] = { rule = rule, n = n, before = r.before / lnV, after = r.after / lnV }
          ctx:note("  held-out loss / ln V: %.4f before, %.4f after", r.before / lnV, r.after / lnV)
          ctx:summary(string.format("healed_loss_norm_%s_n%d_before", rule, n), r.before / lnV, { better = "lower" })
          ctx:summary(string.format("healed_loss_norm_%s_n%d_after", rule, n), r.after / lnV, { better = "lower" })
          ctx:log("healed_before_" .. rule, n, r.before / lnV)
          ctx:log("healed_after_" .. rule, n, r.after / lnV)
        end
      end
      os.remove(tmp)
      local hs = {}
      for _, rule in ipairs(csv(p.heal_rules)) do
        local before, after = { label = rule .. " before healing", x = {}, y = {} }, { label = rule .. " after healing", x = {}, y = {} }
        for _, h in ipairs(healed) do
          if h.rule == rule then
            before.x[#before.x + 1], before.y[#before.y + 1] = h.n / L, h.before
            after.x[#after.x + 1], after.y[#after.y + 1] = h.n / L, h.after
          end
        end
        hs[#hs + 1] = before; hs[#hs + 1] = after
      end
      ctx:figure { name = "healed_loss", type = "lines", title = string.format("held-out loss / ln V before and after QLoRA healing (%d steps of %dx%d, rank %d)", p.heal_steps, p.heal_batch, p.heal_seq, p.heal_rank),
                   xlabel = "fraction of layers dropped", ylabel = "mean NLL / ln V (NF4 base)", series = hs }
    end

    -- targets
    local function mean_gap(a, b, get)
      local s, k = 0, 0
      for _, n in ipairs(ns) do
        if n > 0 and curves[a] and curves[b] and curves[a][n] and curves[b][n] then
          s = s + agg(curves[a][n], get) - agg(curves[b][n], get); k = k + 1
        end
      end
      return k > 0 and s / k or nil
    end
    local gap = mean_gap("heuristic", "angular", function(r) return r.loss_norm end)
    if gap then
      ctx:summary("loss_gap_heuristic_minus_angular", gap, { better = "none" })
      ctx:target { name = "without healing the simple heuristic loses more than the similarity rule (Fig. 5, Sec. 4.4)", kind = "shape",
                   holds = gap > 0, note = string.format("mean over the measured n of (heuristic - similarity) loss / ln V = %.4f", gap) }
    end
    if #healed > 0 then
      local better, pre, post = 0, {}, {}
      for _, h in ipairs(healed) do
        if h.after < h.before then better = better + 1 end
        pre[h.rule .. h.n], post[h.rule .. h.n] = h.before, h.after
      end
      ctx:target { name = "healing lowers the held-out loss (Fig. 3 right)", kind = "shape", holds = better == #healed,
                   note = string.format("%d of %d healed models end below their pre-healing loss (%d steps, a scaled-down recipe)", better, #healed, p.heal_steps) }
      local closer, pairs_n = 0, 0
      for _, n in ipairs(heal_ns) do
        local a, h = "angular" .. n, "heuristic" .. n
        if n > 0 and pre[a] and pre[h] then
          pairs_n = pairs_n + 1
          if math.abs(post[h] - post[a]) < math.abs(pre[h] - pre[a]) then closer = closer + 1 end
        end
      end
      if pairs_n > 0 then
        ctx:target { name = "after healing the heuristic and the similarity rule are close (Fig. 5 right)", kind = "shape", holds = closer == pairs_n,
                     note = string.format("the gap between the two rules shrinks with healing for %d of %d block sizes", closer, pairs_n) }
      end
    end
    for _, fam in ipairs(prune.PAPER.collapse) do
      ctx:target { name = "MMLU collapse fraction, " .. fam.family .. " (Sec. 4.1)", kind = "not_reproducible", paper = fam.lo,
                   reason = string.format("paper: %s of layers; the family's weights and compute are not here, and a %d-layer model this small sits near MMLU chance unpruned, so no collapse can show (see the collapse on the tasks above chance)",
                                          fam.lo == fam.hi and string.format("%.0f%%", 100 * fam.lo) or string.format("%.0f-%.0f%%", 100 * fam.lo, 100 * fam.hi), L) }
    end
    local mm = base.tasks.mmlu
    if mm then
      ctx:note("MMLU (%d-shot) unpruned: %.3f ± %.3f vs chance 0.25: %s", p.mmlu_shots, mm.acc, mm.stderr,
               mm.acc - 0.25 >= 2 * mm.stderr and "above chance" or "not above chance by two standard errors")
    end
    for _, c in ipairs(collapse) do
      if c.above and c.rule == "angular" then
        ctx:note("%s (similarity rule): accuracy reaches chance at %s of layers dropped", c.task, c.at and string.format("%.0f%%", 100 * c.at) or "no measured fraction")
      end
    end
    m:close()
  end,
}
