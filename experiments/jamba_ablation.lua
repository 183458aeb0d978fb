-- jamba_ablation.lua: Jamba's ablations (paper §6: Tables 4, 7, 8, Figures 6-7, §6.4) in shape, trained
-- from scratch on this machine: attention-only, Mamba-only, 1:3 and 1:7 hybrids, the 1:7 hybrid with
-- MoE, and that with RoPE, byte-level on a staged text, the same token budget, data order and seeds for
-- every variant. Reported: held-out log-probability per byte (the paper's C4 / Books / Code metric,
-- here in nats on the text's last 10%) with the spread over seeds, and the training-loss curves. The
-- inner-RMSNorm check (§6.4): a Mamba-only model at a high learning rate with and without the norms on
-- dt, B and C, logging the largest raw dt / B / C activation and loss spikes.
-- The models are tiny (d_model 64 for the demo) and train for minutes: the paper's 1.3B / 7B models
-- trained on 250B / 50B tokens are not reproducible here, and at this scale the ranking can differ; the
-- targets state the paper's findings and say plainly whether this run shows them.
-- The in-context-learning finding (Table 6) is experiments/jamba_icl.lua.
local experiment = require("repro.experiment")
local C = require("repro.jamba")

local jamba = require("jamba")
local VARIANTS, LABEL = jamba.VARIANTS, jamba.VARIANT_LABEL
-- Table 4 (1.3B, 250B tokens), C4 log-prob per byte, for the figure beside ours (no MoE rows there)
local PAPER_C4 = { attention = -0.543, mamba = -0.543, hybrid13 = -0.533, hybrid17 = -0.533 }

local function config(p, name, extra) return jamba.variant_config(name, p.d_model, p.experts, extra) end

local function mean_sd(xs)
  local s, n = 0, #xs
  for _, x in ipairs(xs) do s = s + x end
  local m = s / n
  local v = 0
  for _, x in ipairs(xs) do v = v + (x - m) ^ 2 end
  return m, n > 1 and math.sqrt(v / (n - 1)) or 0
end

-- token ids (bytes) of s[i .. i+n-1]
local function window(text, i, n)
  local ids = { string.byte(text, i, i + n - 1) }
  return ids
end

-- Train models side by side (jamba.train_together: the trainers concurrently over the machine's threads;
-- each model's result is what training it alone gives), one job per {cfg=, seed=, order=, tag=}, all with
-- learning rate lr for `steps` steps. Returns per job {curve = smoothed training loss per step, lp = held-out
-- log-prob per byte (-inf when it diverged), max_inner, max_resid (the §6.4 activations), spikes (loss jumps
-- above the running mean), diverged = the step or nil}.
local function train(ctx, p, models, train_text, val_offsets, val_text, lr, steps, progress)
  local jobs = {}
  for i, md in ipairs(models) do
    local k = 1
    jobs[i] = { tr = C.trainer(md.cfg, { seed = md.seed, T = p.T, aux_coef = p.aux_coef, threads = 1 }), tag = md.tag,
                curve = {}, spikes = 0, max_inner = 0, max_resid = 0,
                next = function() local off = md.order[k]; k = k % #md.order + 1; return window(train_text, off, p.T + 1) end }
  end
  jamba.train_together(jobs, { steps = steps, batch = p.batch, lr = lr, warmup = p.warmup, clip = p.clip, weight_decay = 0.1 },
    function(j, step, r)
      local loss_sum = 0
      for i = 1, #r.loss do
        loss_sum = loss_sum + r.loss[i]
        if r.max_inner[i] > j.max_inner then j.max_inner = r.max_inner[i] end
        if r.max_resid[i] > j.max_resid then j.max_resid = r.max_resid[i] end
      end
      local loss = loss_sum / #r.loss
      if j.ema and loss > j.ema + 1.0 then j.spikes = j.spikes + 1 end   -- a jump of a nat above the running mean
      j.ema = j.ema and (0.9 * j.ema + 0.1 * loss) or loss
      j.curve[step] = j.ema
      ctx:log("train_loss/" .. j.tag, step, loss)
      progress(step)
    end, function() return ctx:interrupted() end)
  local out = {}
  for i, j in ipairs(jobs) do
    local lp = -math.huge
    if j.diverged then   -- a diverged run is a result (recorded), not a crash
      ctx:record("diverged", j.tag, { step = j.diverged, error = j.error })
    else
      local lp_sum, n = 0, 0
      for _, off in ipairs(val_offsets) do
        local sc, c = j.tr:score(window(val_text, off, p.T + 1))
        lp_sum, n = lp_sum + sc, n + c
      end
      lp = lp_sum / n
    end
    j.tr:close()
    out[i] = { curve = j.curve, lp = lp, max_inner = j.max_inner, max_resid = j.max_resid, spikes = j.spikes, diverged = j.diverged }
  end
  return out
end

return experiment.define {
  name = "jamba_ablation",
  paper = "jamba",
  description = "Jamba §6 ablations at tiny scale: attention / Mamba / 1:3 / 1:7 / +MoE / +RoPE trained from scratch; held-out log-prob per byte; inner RMSNorm check",
  version = 2,
  params = {
    data = { type = "string", default = "tinyshakespeare", choices = { "tinyshakespeare", "tinystories" }, doc = "staged text (bytes)" },
    variants = { type = "string", default = "attention,mamba,hybrid13,hybrid17,hybrid17_moe,hybrid17_moe_rope", doc = "comma-separated variants" },
    d_model = { type = "integer", default = 64, min = 16, max = 1024, doc = "width (multiple of 4)" },
    experts = { type = "integer", default = 8, min = 2, max = 64, doc = "MoE experts (top 2)" },
    T = { type = "integer", default = 128, min = 8, max = 4096, doc = "training / evaluation window (bytes)" },
    steps = { type = "integer", default = 150, min = 1, doc = "optimizer steps per model" },
    batch = { type = "integer", default = 4, min = 1, doc = "windows per step (gradient accumulation)" },
    lr = { type = "number", default = 3e-3, doc = "peak learning rate (warm-up, then cosine to 10%)" },
    warmup = { type = "integer", default = 15, min = 0, doc = "warm-up steps" },
    clip = { type = "number", default = 1.0, doc = "gradient-norm clip" },
    aux_coef = { type = "number", default = 0.001, doc = "load-balancing loss coefficient (released model: 0.001)" },
    seeds = { type = "integer", default = 2, min = 1, max = 16, doc = "seeds (init and data order) per variant" },
    eval_windows = { type = "integer", default = 32, min = 1, doc = "held-out windows scored" },
    norm_check = { type = "boolean", default = true, doc = "run the §6.4 inner-RMSNorm check (Mamba-only at high LR, with / without)" },
    norm_lr = { type = "number", default = 3e-2, doc = "learning rate of the inner-RMSNorm check" },
    norm_steps = { type = "integer", default = 60, min = 1, doc = "steps of the inner-RMSNorm check" },
  },
  seconds = { smoke = 5, demo = 60 },   -- 14 models trained side by side on 2 threads: 94.5 CPU-s, 4:28 wall at load 8.6-12.7 (2026-12-06 05:33, h6/flat; wall inflated by the load: ~50 s idle); 86 CPU-s earlier (load 5-12; was ~200 CPU-s one model at a time)
  resources = { threads = 2, memory = "512M" },
  presets = {
    smoke = { d_model = 32, experts = 4, T = 32, steps = 3, batch = 1, warmup = 1, seeds = 1, eval_windows = 2, norm_steps = 3 },
    demo = { d_model = 64, T = 128, steps = 150, batch = 4, seeds = 2, eval_windows = 32, norm_steps = 60 },
    full = { d_model = 128, T = 256, steps = 1000, batch = 8, seeds = 3, eval_windows = 128, norm_steps = 300 },
    paper = { d_model = 256, T = 512, steps = 4000, batch = 8, seeds = 3, eval_windows = 256, norm_steps = 1000 },
  },
  run = function(ctx, p)
    if p.d_model % 4 ~= 0 then error("d_model must be a multiple of 4 (got " .. p.d_model .. ")") end
    local file = p.data == "tinyshakespeare" and { "tinyshakespeare", "input.txt" } or { "tinystories-valid-slice", "tinystories_val.txt" }
    local text = ctx:asset_text(file[1], file[2])
    local cut = math.floor(#text * 0.9)
    local train_text, val_text = text:sub(1, cut), text:sub(cut + 1)
    local names = {}
    for v in p.variants:gmatch("[^,%s]+") do
      if not VARIANTS[v] then error("variants: unknown '" .. v .. "' (valid: attention, mamba, hybrid13, hybrid17, hybrid17_moe, hybrid17_moe_rope)") end
      names[#names + 1] = v
    end
    local val_offsets = {}
    for i = 1, p.eval_windows do val_offsets[i] = 1 + math.floor((i - 1) * (#val_text - p.T - 1) / p.eval_windows) end
    local n_models = #names * p.seeds + (p.norm_check and 2 or 0)
    local total_steps = #names * p.seeds * p.steps + (p.norm_check and 2 * p.norm_steps or 0)
    local progress = jamba.progress(total_steps, string.format(" over %d models", n_models))
    -- the data order per seed, shared by every variant: the same windows in the same order
    local orders = {}
    for s = 1, p.seeds do
      local o = {}
      for i = 1, p.steps * p.batch do o[i] = math.random(1, #train_text - p.T - 1) end
      orders[s] = o
    end
    local res, models = {}, {}
    for _, v in ipairs(names) do
      local cfg = config(p, v)
      ctx:summary("active_params/" .. v, C.count(cfg).active, { better = "none" })
      res[v] = { lps = {}, curves = {} }
      for s = 1, p.seeds do models[#models + 1] = { v = v, seed = s, cfg = cfg, order = orders[s], tag = v .. "/seed" .. s } end
    end
    local trained = train(ctx, p, models, train_text, val_offsets, val_text, p.lr, p.steps, progress)
    for i, md in ipairs(models) do
      res[md.v].lps[md.seed], res[md.v].curves[md.seed] = trained[i].lp, trained[i].curve
      ctx:log("heldout_logprob_per_byte/" .. md.v, md.seed, trained[i].lp)
    end
    for _, v in ipairs(names) do
      res[v].mean, res[v].sd = mean_sd(res[v].lps)
      ctx:summary("heldout_logprob_per_byte/" .. v, res[v].mean, { better = "higher" })
      local last = {}
      for s = 1, p.seeds do last[s] = res[v].curves[s][#res[v].curves[s]] end
      res[v].final_loss = mean_sd(last)
      ctx:summary("final_train_loss/" .. v, res[v].final_loss, { better = "lower" })
    end
    io.stderr:write("\n")
    -- figures: training-loss curves (mean over seeds), held-out log-prob per byte with the spread
    local series, xs = {}, {}
    for i = 1, p.steps do xs[i] = i end
    for _, v in ipairs(names) do
      local y = {}
      for i = 1, p.steps do
        local s, n = 0, 0
        for sd = 1, p.seeds do local c = res[v].curves[sd][i]; if c then s, n = s + c, n + 1 end end
        y[i] = n > 0 and s / n or 0 / 0
      end
      series[#series + 1] = { label = LABEL[v], x = xs, y = y }
    end
    ctx:figure { name = "training_loss", type = "lines", xlabel = "step", ylabel = "training loss (nats/byte, EMA 0.9, mean of seeds)",
                 title = "Figures 6-7 analogue: training loss", series = series }
    local cats, ys, yerr, xi = {}, {}, {}, {}
    for i, v in ipairs(names) do cats[i], ys[i], yerr[i], xi[i] = LABEL[v], res[v].mean, res[v].sd, i end
    ctx:figure { name = "heldout_logprob", type = "errorbars", xlabel = "variant (" .. table.concat(cats, ", ") .. ")",
                 ylabel = "held-out log-prob per byte (nats; higher is better)", title = "Tables 4/7/8 analogue (±1 sd over seeds)",
                 series = { { label = "this run", x = xi, y = ys, yerr = yerr } } }

    -- the paper's findings as shape targets: each says what this run shows, with the spread
    local function fmt(v) return res[v] and string.format("%s %.4f ± %.4f", LABEL[v], res[v].mean, res[v].sd) or "" end
    local function has(...) for _, v in ipairs({ ... }) do if not res[v] then return false end end return true end
    -- the noise band between two variants: two pooled seed standard deviations (0.005 nats with one seed)
    local function band(a, b) return math.max(2 * math.sqrt((res[a].sd ^ 2 + res[b].sd ^ 2) / 2), p.seeds > 1 and 0 or 0.005) end
    local function tie(a, b) return math.abs(res[a].mean - res[b].mean) <= band(a, b) end
    if has("attention", "mamba", "hybrid13", "hybrid17") then
      local best_pure = math.max(res.attention.mean, res.mamba.mean)
      ctx:target { name = "hybrids above pure attention and pure Mamba in held-out log-prob (Table 4)", kind = "shape",
                   holds = res.hybrid13.mean > best_pure and res.hybrid17.mean > best_pure,
                   note = table.concat({ fmt("attention"), fmt("mamba"), fmt("hybrid13"), fmt("hybrid17") }, "; ") .. " (paper C4: -0.543, -0.543, -0.533, -0.533)" }
      ctx:target { name = "hybrid training loss below both pure models (Figures 6-7)", kind = "shape",
                   holds = math.max(res.hybrid13.final_loss, res.hybrid17.final_loss) < math.min(res.attention.final_loss, res.mamba.final_loss),
                   note = string.format("final EMA loss: attention %.4f, Mamba %.4f, 1:3 %.4f, 1:7 %.4f", res.attention.final_loss,
                     res.mamba.final_loss, res.hybrid13.final_loss, res.hybrid17.final_loss) }
      ctx:target { name = "1:3 and 1:7 indistinguishable (Table 4, Figure 6)", kind = "shape", holds = tie("hybrid13", "hybrid17"),
                   note = fmt("hybrid13") .. "; " .. fmt("hybrid17") .. " (paper: -0.533 both)" }
    end
    if has("hybrid17", "hybrid17_moe") then
      ctx:target { name = "MoE improves the 1:7 hybrid beyond the seed spread (Table 7)", kind = "shape",
                   holds = res.hybrid17_moe.mean - res.hybrid17.mean > band("hybrid17", "hybrid17_moe"),
                   note = fmt("hybrid17") .. "; " .. fmt("hybrid17_moe") .. string.format(" (band %.4f; paper C4: -0.547 -> -0.534 at 7B)", band("hybrid17", "hybrid17_moe")) }
    end
    if has("hybrid17_moe", "hybrid17_moe_rope") then
      ctx:target { name = "RoPE not needed: no PE about equal to RoPE (Table 8)", kind = "shape", holds = tie("hybrid17_moe", "hybrid17_moe_rope"),
                   note = fmt("hybrid17_moe") .. "; " .. fmt("hybrid17_moe_rope") .. " (paper: identical log-probs -0.516)" }
    end
    ctx:target { name = "Tables 4-8 absolute values (1.3B / 7B models, 50-250B tokens, C4 / Books / Code)", kind = "not_reproducible",
                 reason = string.format("needs ~2e21 FLOPs and the paper's data; here d_model %d, %d steps x %d x %d bytes of %s", p.d_model, p.steps, p.batch, p.T, p.data) }

    if p.norm_check then
      local nm = {}
      for _, inner in ipairs({ 1, 0 }) do
        nm[#nm + 1] = { inner = inner, seed = 1, cfg = config(p, "mamba", { inner_norms = inner }), order = orders[1], tag = "norm_check/inner_norms" .. inner }
      end
      local nt, nr = train(ctx, p, nm, train_text, val_offsets, val_text, p.norm_lr, p.norm_steps, progress), {}
      for i, md in ipairs(nm) do
        local inner = md.inner
        nr[inner] = nt[i]
        ctx:summary("norm_check/max_inner_activation/inner_norms" .. inner, nr[inner].max_inner, { better = "none" })
        ctx:summary("norm_check/max_residual/inner_norms" .. inner, nr[inner].max_resid, { better = "none" })
        ctx:summary("norm_check/loss_spikes/inner_norms" .. inner, nr[inner].spikes, { better = "lower" })
      end
      io.stderr:write("\n")
      ctx:target { name = "inner RMSNorm removes loss spikes and huge activations in Mamba (§6.4, Figure 9)", kind = "shape",
                   holds = nr[1].spikes <= nr[0].spikes and nr[1].max_resid < nr[0].max_resid,
                   note = string.format("lr %g: with norms %d spikes, max residual %.3g, max raw dt/B/C %.3g; without %d spikes, max residual %.3g, max raw dt/B/C %.3g%s (paper: spikes only at the 52B scale; none seen up to 1.3B)",
                     p.norm_lr, nr[1].spikes, nr[1].max_resid, nr[1].max_inner, nr[0].spikes, nr[0].max_resid, nr[0].max_inner,
                     nr[0].diverged and string.format("; without norms diverged at step %d", nr[0].diverged) or "") }
    end
  end,
}
