-- sdpo_vs_dpo.lua: the sDPO paper's main comparison (Tables 2-3, Fig. 3) on a model that runs here:
--   DPO       one run on D_1 ∪ D_2 against S (the baseline: same data, same hyperparameters)
--   sDPO      step 1 on D_1 (Orca) against S, step 2 on D_2 (UltraFeedback) against M_1, target from M_{t-1}
--   sDPO rand the same two steps on a random partition of the pooled data with the same chunk sizes (Table 3)
--   sDPO S-init step 2 initialised from S instead of M_1, reference M_1 (Fig. 3's contrast)
-- Measured on held-out UltraFeedback pairs: reward accuracy and margin against S (one reference for every
-- variant, so they compare), the share of pairs the model itself prefers (γ > 0), mean γ; and the H4 columns
-- (ARC-Challenge, HellaSwag, MMLU, TruthfulQA MC2, zero-shot on a seeded subset) plus ARC-Easy (the benchmark
-- SmolLM2-135M is clearly above chance on) before and after, through repro.eval on the trainer's model in place
-- (LoRA adapters unmerged). The paper's 10.7B numbers are shown beside as not reproducible at this scale; the
-- shape claims are measured and can fail. Fig. 3's contrast is measured on the first batch (as the paper's
-- curve) and on all of D_2 at the start (the mean over pairs, with its standard error).
local experiment = require("repro.experiment")
local eval = require("repro.eval")
local sdpo = require("sdpo")

local function concat(a, b)
  local o = {}
  for _, x in ipairs(a) do o[#o + 1] = x end
  for _, x in ipairs(b) do o[#o + 1] = x end
  return o
end

return experiment.define {
  name = "sdpo_vs_dpo",
  paper = "sdpo",
  description = "sDPO vs DPO vs random-split sDPO vs S-initialised step 2: held-out reward accuracy and margin, H4 columns before/after",
  version = 3,
  params = sdpo.params {
    mc_limit = { type = "integer", default = 100, min = 0,
                 doc = "items of each multiple-choice task scored before/after (ARC-Easy and the four H4 columns; a seeded subset, seed 1; 0: skip)" },
    eval_len = { type = "integer", default = 256, min = 16, doc = "widest benchmark sequence scored (longer contexts are cut from the left)" },
  },
  -- demo: 637 CPU-s on 2 threads measured 2026-12-05 (load 9-15, 26:50 wall). full: an estimate from per-pair costs
  -- measured 2026-12-06 on 1 thread (AMD EPYC, AVX2): 2.15 CPU-s to score and 4.5 to train a pair at 256 tokens.
  -- Training 3 D1 + 4 D2 pairs (6,100 s), references about 1,200 pairs (2,600 s), held out 5 x 128 (1,400 s),
  -- 5 x 5 x 50 benchmark items through the trainer (about 2,100 s): about 12,000 CPU-s, a session on 2 cores
  seconds = { smoke = 15, demo = 340, full = 12000 },
  -- memory: the trainer is planned for 2 ppb sequences of max(seq_len, eval_len) tokens. Peak RSS measured 2026-12-06:
  -- demo 2.7 GB (/usr/bin/time -v, mc_limit=0, SIGINT after the DPO unit); 16 x 512 tokens (the paper preset's
  -- shape, and full's before it was sized to a session) 10.4 GB; full now plans 16 x 256, like sdpo_gamma full (5.2 GB)
  resources = { threads = 2, memory = "3G", gpu = 0, time_min = 240,
                presets = { full = { memory = "6G", time_min = 240 }, paper = { memory = "11G", time_min = 2700 } } },
  presets = {
    smoke = { model = "stories260K", seq_len = 48, n_orca = 8, n_uf = 8, n_heldout = 8, ppb = 2, lr = 3e-3, mc_limit = 4, eval_len = 160 },
    -- tiny: S trained here from scratch on a synthetic task (plugins/sdpo/tiny.lua), easy then hard pairs: seconds
    tiny = { model = "tiny", seq_len = 16, n_orca = 256, n_uf = 256, n_heldout = 256, ppb = 8, lr = 1e-2, mc_limit = 0, eval_len = 16 },
    demo = { model = "smollm2", seq_len = 128, n_orca = 12, n_uf = 20, n_heldout = 24, ppb = 4, mc_limit = 20 },
    -- full: every staged Orca pair, 128 UltraFeedback pairs for D_2 and 128 held out (sdpo_gamma full's data), 50
    -- items of each benchmark: what one 2-core machine finishes in a session; all 1,000 pairs are the paper preset's
    full = { model = "smollm2", seq_len = 256, n_orca = 0, n_uf = 128, n_heldout = 128, ppb = 8, mc_limit = 50, eval_len = 256 },
    paper = { model = "smollm2", seq_len = 512, n_orca = 0, n_uf = 0, n_heldout = 0, ppb = 8, epochs = 3, mc_limit = 1000, eval_len = 512 },
  },
  run = function(ctx, p)
    local s = sdpo.prepare(ctx, p)
    local mc
    if p.mc_limit > 0 then
      mc = { arc_easy = eval.load("arc_easy") }
      for _, c in ipairs(sdpo.H4) do mc[c.key] = eval.load(c.task) end
    end
    local results = {}
    local refS_held
    -- score one trained model (a unit's result): held-out log-probs, and (with_mc) ARC-Easy and the H4 columns
    local function score(tr, with_mc)
      local r = { lp = sdpo.logps(tr, s.heldout, p.ppb) }
      if mc and with_mc then
        local lm = require("repro.train_lm")(tr, s.m, 2 * p.ppb, s.T)
        local a = eval.evaluate(lm, mc.arc_easy, { limit = p.mc_limit, seed = 1 })
        r.arc = { acc = a.acc, acc_stderr = a.acc_stderr, acc_norm = a.acc_norm, acc_norm_stderr = a.acc_norm_stderr, n = a.n }
        r.h4 = sdpo.h4_scores(lm, mc, { limit = p.mc_limit, seed = 1 })
        r.cut = lm.cut
      end
      return r
    end
    -- log a scored model: held-out stats against S (S's own held-out log-probs, the first model scored)
    local function measure(label, r)
      refS_held = refS_held or r.lp
      local st = sdpo.stats(r.lp, refS_held, p.beta)
      r.stats = st
      ctx:summary(label .. "_heldout_reward_accuracy", st.accuracy, { stderr = st.accuracy_stderr, n = st.n, better = "higher" })
      ctx:summary(label .. "_heldout_reward_margin", st.margin, { n = st.n, better = "higher" })
      ctx:summary(label .. "_heldout_pref_accuracy", st.pref_accuracy, { n = st.n, better = "higher" })
      ctx:summary(label .. "_heldout_gamma", st.gamma_policy, { stderr = st.gamma_stderr, n = st.n, better = "higher" })
      ctx:note("%s: held-out reward accuracy %.3f, margin %.4f, prefers chosen %.3f, mean gamma %.3f", label, st.accuracy, st.margin,
               st.pref_accuracy, st.gamma_policy)
      if r.h4 then
        local a = r.arc
        ctx:summary(label .. "_arc_easy_acc", a.acc, { stderr = a.acc_stderr, n = a.n, better = "higher" })
        ctx:summary(label .. "_arc_easy_acc_norm", a.acc_norm, { stderr = a.acc_norm_stderr, n = a.n, better = "higher" })
        for _, c in ipairs(sdpo.H4) do
          local v = r.h4[c.key]
          ctx:summary(string.format("%s_%s_%s", label, c.task, c.metric), v.value, { stderr = v.stderr, n = v.n, better = "higher" })
        end
        ctx:summary(label .. "_h4_zero_shot", r.h4.h4.value, { stderr = r.h4.h4.stderr, better = "higher" })
        ctx:note("%s: ARC-Easy acc %.3f; zero-shot ARC-C %.3f, HellaSwag %.3f, MMLU %.3f, TruthfulQA MC2 %.3f, mean %.3f +- %.3f (%d sequences cut)",
                 label, a.acc, r.h4.arc.value, r.h4.hs.value, r.h4.mmlu.value, r.h4.tqa.value, r.h4.h4.value, r.h4.h4.stderr, r.cut)
      end
      results[label] = r
    end
    -- a loss curve from a unit's result (logged after the unit, so a resumed run holds the reused ones too)
    local function log_curve(name, losses) for i, l in ipairs(losses) do ctx:log(name, i, l) end end
    -- each model trained and scored is a unit of work (ctx:memo): `--resume` after a kill skips the finished ones

    -- S is scored and then trained as the DPO run (a new trainer would be the same weights built again); its
    -- digest keys the on-disk reference cache, so it is built even when both units are reused
    local tr = s.new_trainer()
    measure("sft", ctx:memo("sft", function() return score(tr, true) end))

    -- DPO: one run on all the data against S
    local pooled = concat(s.D1, s.D2)
    local ref = sdpo.reference_logps(tr, pooled, { base = s.base, ppb = p.ppb, note = s.note })
    local dpo = ctx:memo("dpo", function()
      local losses = sdpo.train(tr, pooled, ref, { beta = p.beta, ppb = p.ppb, epochs = p.epochs, note = s.note, label = "DPO" })
      return { losses = losses, scored = score(tr, true) }
    end)
    tr:close()
    log_curve("dpo_loss", dpo.losses)
    measure("dpo", dpo.scored)

    -- sDPO, easy to hard by source (Orca first, as the paper); the measured per-source ease is recorded beside
    local ease, order = sdpo.source_ease(pooled, ref)
    local src1, src2 = s.sources[1], s.sources[2]
    ctx:record("split", "sdpo", { rule = "source", order = { src1, src2 }, why = "the paper's order",
                                  measured_share_gamma_S_positive = ease, measured_order = order })
    ctx:note("share of pairs S already prefers: %s %.3f, %s %.3f (the spec's workable easy-to-hard measure)",
             src1, ease[src1] or 0, src2, ease[src2] or 0)
    ctx:summary("ease_" .. src1 .. "_gamma_S_positive", ease[src1] or 0, { better = "none" })
    ctx:summary("ease_" .. src2 .. "_gamma_S_positive", ease[src2] or 0, { better = "none" })
    local function run_sdpo(label, chunks)
      local r = ctx:memo(label, function()
        local sr = sdpo.stepwise { new_trainer = s.new_trainer, chunks = chunks, beta = p.beta, ppb = p.ppb, epochs = p.epochs, base = s.base,
                                   note = s.note, label = label, optimizer = p.optimizer_state }
        local out = { losses = sr.losses, refs = sr.refs, scored = score(sr.trainer, true) }
        sr.trainer:close()
        return out
      end)
      for t, losses in ipairs(r.losses) do log_curve(string.format("%s_step%d_loss", label, t), losses) end
      measure(label, r.scored)
      return r
    end
    local sd = run_sdpo("sdpo", { s.D1, s.D2 })
    local rchunks, rdesc = sdpo.split(pooled, "random", { sizes = { #s.D1, #s.D2 } })
    ctx:record("split", "sdpo_rand", rdesc)
    run_sdpo("sdpo_rand", rchunks)
    -- Fig. 3's contrast: step 2 from S against M_1 (the reference log-probs sDPO cached)
    -- the S-initialised start over all of D_2: per pair softplus(-beta (gamma_S - gamma_M1)), its mean and SE;
    -- gamma_S on D_2: S's log-probs of D_2 are the second part of the pooled reference (pooled = D_1 then D_2)
    local lpS = {}
    for i = 1, 2 * #s.D2 do lpS[i] = ref[2 * #s.D1 + i] end
    local ref2 = sd.refs[2]
    local n2, lsum, lsq, dsum, dsq, dpos = #s.D2, 0, 0, 0, 0, 0
    for i = 1, n2 do
      local d = (ref2[2 * i - 1] - ref2[2 * i]) - (lpS[2 * i - 1] - lpS[2 * i])   -- gamma_M1 - gamma_S
      local l = sdpo.C.softplus_neg(p.beta * -d)
      lsum, lsq, dsum, dsq = lsum + l, lsq + l * l, dsum + d, dsq + d * d
      if d > 0 then dpos = dpos + 1 end
    end
    local function se(sum, sq) return n2 > 1 and math.sqrt(math.max(0, (sq - sum * sum / n2) / (n2 - 1)) / n2) or 0 end
    local start_all, start_all_se = lsum / n2, se(lsum, lsq)
    local dgamma, dgamma_se = dsum / n2, se(dsum, dsq)
    ctx:summary("sft_init_step2_loss_at_start_all_D2", start_all, { stderr = start_all_se, n = n2, better = "none" })
    ctx:summary("gamma_M1_minus_gamma_S_on_D2", dgamma, { stderr = dgamma_se, n = n2, better = "none" })
    ctx:summary("share_D2_pairs_gamma_M1_above_gamma_S", dpos / n2, { n = n2, better = "none" })
    ctx:note("Fig. 3 contrast: over all %d pairs of D_2 the S-initialised step 2 starts at %.5f +- %.5f (ln 2 = %.5f); gamma_M1 - gamma_S = %.4f +- %.4f, positive on %d pairs",
             n2, start_all, start_all_se, math.log(2), dgamma, dgamma_se, dpos)
    local sinit = ctx:memo("sdpo_sft_init", function()
      local fresh = s.new_trainer()
      local losses = sdpo.train(fresh, s.D2, sd.refs[2], { beta = p.beta, ppb = p.ppb, epochs = p.epochs, note = s.note, label = "S-init step 2" })
      local out = { losses = losses, scored = score(fresh, false) }
      fresh:close()
      return out
    end)
    local srun = sinit.losses
    log_curve("sft_init_step2_loss", srun)
    ctx:figure { name = "step2_loss", type = "lines", title = "step 2 loss against M_1: target from M_1 (sDPO) vs from S", xlabel = "step",
                 ylabel = "DPO loss", series = { { label = "from M_1", x = (function() local x = {} for i = 1, #sd.losses[2] do x[i] = i end return x end)(), y = sd.losses[2] },
                                                 { label = "from S", x = (function() local x = {} for i = 1, #srun do x[i] = i end return x end)(), y = srun } } }
    measure("sdpo_sft_init", sinit.scored)
    local curves = { dpo = dpo.losses }

    -- figures and targets
    local labels = { "sft", "dpo", "sdpo", "sdpo_rand", "sdpo_sft_init" }
    local acc, pref = {}, {}
    for i, l in ipairs(labels) do acc[i] = results[l].stats.accuracy; pref[i] = results[l].stats.pref_accuracy end
    ctx:figure { name = "heldout", type = "bars", title = "held-out " .. s.sources[2] .. " pairs", ylabel = "share", categories = labels,
                 series = { { label = "reward accuracy vs S", y = acc }, { label = "model prefers chosen", y = pref } } }
    local R = results
    for t = 1, 2 do
      ctx:target { name = string.format("sDPO step %d starts at ln 2 (target = reference)", t), kind = "exact", paper = math.log(2),
                   value = sd.losses[t][1], tolerance = 1e-5 }
    end
    ctx:target { name = "DPO starts at ln 2 (target = reference = S)", kind = "exact", paper = math.log(2), value = curves.dpo[1], tolerance = 1e-5 }
    ctx:target { name = "shape: sDPO >= DPO on held-out reward accuracy (paper: 74.31 vs 72.67 H4)", kind = "shape",
                 holds = R.sdpo.stats.accuracy >= R.dpo.stats.accuracy,
                 note = string.format("sDPO %.3f vs DPO %.3f (n = %d; stderr about %.3f)", R.sdpo.stats.accuracy, R.dpo.stats.accuracy,
                                      R.dpo.stats.n, R.dpo.stats.accuracy_stderr) }
    ctx:target { name = "shape: easy-to-hard sDPO >= random-split sDPO on held-out reward accuracy (paper: 74.31 vs 72.56 H4)", kind = "shape",
                 holds = R.sdpo.stats.accuracy >= R.sdpo_rand.stats.accuracy,
                 note = string.format("sDPO %.3f vs random %.3f", R.sdpo.stats.accuracy, R.sdpo_rand.stats.accuracy) }
    ctx:target { name = "shape: S-initialised step 2 starts with a higher loss than M_1-initialised, first batch (Fig. 3)", kind = "shape",
                 holds = srun[1] > sd.losses[2][1],
                 note = string.format("from S %.4f vs from M_1 %.4f on %d pairs", srun[1], sd.losses[2][1], math.min(p.ppb, #s.D2)) }
    ctx:target { name = "shape: S-initialised step 2 starts with a higher loss than M_1-initialised, all of D_2 (Fig. 3)", kind = "shape",
                 holds = start_all > math.log(2),
                 note = string.format("from S %.5f +- %.5f vs ln 2 over %d pairs; gamma_M1 - gamma_S %.4f +- %.4f", start_all, start_all_se, n2,
                                      dgamma, dgamma_se) }
    local T2 = {}
    for _, r in ipairs(sdpo.TABLE2) do T2[r.model] = r end
    -- Table 2 (and Table 3's random row) beside ours: every column not reproducible at this scale
    local rows = { { "SOLAR 10.7B + SFT + sDPO", "sdpo", T2["SOLAR 10.7B + SFT + sDPO"] }, { "SOLAR 10.7B + SFT + DPO", "dpo", T2["SOLAR 10.7B + SFT + DPO"] },
                   { "SOLAR 10.7B + SFT", "sft", T2["SOLAR 10.7B + SFT"] }, { "SOLAR 10.7B + SFT + sDPO Rand. (Table 3)", "sdpo_rand", sdpo.TABLE3_RANDOM } }
    local why = string.format("the paper: SOLAR 10.7B, 12.9K + 60.8K pairs, leaderboard shot counts; here: %s + %s on %d + %d pairs, zero-shot, %d items a task",
                              p.model, p.method, #s.D1, #s.D2, p.mc_limit)
    for _, row in ipairs(rows) do
      local h4 = R[row[2]].h4
      for _, c in ipairs(sdpo.H4) do
        ctx:target { name = string.format("Table 2 %s %s (%d-shot)", row[1], c.label, c.shots), kind = "not_reproducible", paper = row[3][c.key],
                     value = h4 and 100 * h4[c.key].value or nil, reason = why }
      end
      ctx:target { name = string.format("Table 2 %s H4", row[1]), kind = "not_reproducible", paper = row[3].h4,
                   value = h4 and 100 * h4.h4.value or nil, reason = why }
    end
    if R.sft.h4 then
      local cats, series = {}, {}
      for i, c in ipairs(sdpo.H4) do cats[i] = c.label end
      cats[#cats + 1] = "mean (H4)"
      for _, l in ipairs({ "sft", "dpo", "sdpo", "sdpo_rand" }) do
        local y = {}
        for i, c in ipairs(sdpo.H4) do y[i] = R[l].h4[c.key].value end
        y[#y + 1] = R[l].h4.h4.value
        series[#series + 1] = { label = l, y = y }
      end
      ctx:figure { name = "h4_columns", type = "bars", title = string.format("H4 columns, zero-shot, %d items each", p.mc_limit),
                   ylabel = "score", categories = cats, series = series }
      ctx:target { name = "shape: sDPO >= DPO on the zero-shot H4 mean (paper: 74.31 vs 72.67)", kind = "shape",
                   holds = R.sdpo.h4.h4.value >= R.dpo.h4.h4.value,
                   note = string.format("sDPO %.4f vs DPO %.4f (stderr about %.4f each)", R.sdpo.h4.h4.value, R.dpo.h4.h4.value, R.dpo.h4.h4.stderr) }
    end
    s.close()
  end,
}
