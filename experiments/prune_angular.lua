-- prune_angular.lua: the angular distance d(l, n) = arccos(cos(x^(l), x^(l+n))) / pi between the residual
-- stream entering block l and block l+n (last token, averaged over samples, with its standard error) for
-- every block start l and size n, as Gromov et al. 2024 (arXiv 2403.17887) Figs. 1(c) and 4: the heat map
-- (raw, and each row rescaled to [0, 1] as the paper draws it), the optimal start l*(n) (with its stability
-- across two halves of the samples), d against l for a few n, and ShortGPT's block influence beside it.
-- The paper's observations become shape targets: deeper blocks are more similar (for most n the deeper half
-- of the starts has the lower mean distance); blocks that contain the final layer are (near-)maximal.
-- Calibration text: the first 40% of WikiText-2's test set (smoke: TinyStories validation); the paper used
-- 10k C4 validation samples, which are not staged here (40 C4 documents are).
local experiment = require("repro.experiment")
local prune = require("prune")

return experiment.define {
  name = "prune_angular",
  paper = "prune",
  description = "angular distance between layer inputs d(l, n), the optimal block l*(n), block influence",
  version = 1,
  params = {
    model = { type = "string", default = "smollm2-135m-instruct", choices = { "smollm2-135m-instruct", "stories260K" }, doc = "model asset" },
    text = { type = "string", default = "wikitext2", choices = { "wikitext2", "tinystories" }, doc = "calibration text (its first 40%)" },
    n_samples = { type = "integer", default = 960, min = 4, doc = "samples (windows of the text; the first 40% of WikiText-2's test split holds about 124K tokens: 960 of 128 or 480 of 256)" },
    seq_len = { type = "integer", default = 128, min = 2, max = 512, doc = "tokens per sample" },
    all_tokens = { type = "boolean", default = false, doc = "average d over every token, not only the last (the paper: last)" },
  },
  presets = {
    smoke = { model = "stories260K", text = "tinystories", n_samples = 32, seq_len = 64 },
    demo = { n_samples = 64, seq_len = 64 },
    full = { n_samples = 960, seq_len = 128 },   -- the spec's N = 500-2,000; 1,000 of 256 do not fit the staged text
    paper = { n_samples = 10000, seq_len = 256 },
  },
  seconds = { smoke = 2, demo = 15, full = 900 },   -- demo: 96 samples took 18 CPU-s (README)
  -- memory: 0.4 GB peak at full's shape with 128 samples (2026-12-06, /usr/bin/time -v); before the CPU backend
  -- mapped big blocks itself, the full run held 8.9 GB (one 9 MB capture per sample, left in a fragmented heap)
  resources = { threads = 2, memory = "1G" },
  reproduces = "Figs. 1(c), 4; Sec. 4.3",
  run = function(ctx, p)
    local m, text = prune.load_model(ctx, p.model), prune.load_text(ctx, p.text)
    local info = m:info()
    local L = info.n_layer
    local samples = prune.windows(m, prune.piece(text, 0, 0.4), p.n_samples, p.seq_len, p.text)
    local all = prune.C.stats(L + 1, info.dim)
    local halves = { prune.C.stats(L + 1, info.dim), prune.C.stats(L + 1, info.dim) }
    local tick = prune.progress("capture", #samples)
    local t0 = require("repro.core").now()
    for i, ids in ipairs(samples) do
      local h = m:hidden_states(ids)
      all:add(h, { all_tokens = p.all_tokens })
      halves[i % 2 + 1]:add(h, { all_tokens = p.all_tokens })
      h:close()
      tick(i)
      if ctx:interrupted() then error("interrupted", 0) end
    end
    ctx:summary("capture_tokens_per_s", #samples * p.seq_len / math.max(require("repro.core").now() - t0, 1e-3), { better = "higher" })
    local mx = all:matrix()
    -- heat maps: row n (1..L), column l (0..L-1); NaN where the block runs past the last layer
    local raw, scaled, yt, xt = {}, {}, {}, {}
    for l = 0, L - 1 do xt[l + 1] = tostring(l) end
    local lstar, lstar_a, lstar_b, stable = {}, {}, {}, 0
    for n = 1, L do
      local row, srow, lo, hi = {}, {}, math.huge, -math.huge
      for l = 0, L - 1 do
        local d = (l + n <= L) and mx.mean[l + 1][n] or nil
        row[l + 1] = d or "nan"
        if d then lo, hi = math.min(lo, d), math.max(hi, d) end
      end
      for l = 0, L - 1 do
        local d = row[l + 1]
        srow[l + 1] = d == "nan" and "nan" or (hi > lo and (d - lo) / (hi - lo) or 0)
      end
      raw[n], scaled[n], yt[n] = row, srow, tostring(n)
      local _, ls = all:select("angular", n)
      local _, la = halves[1]:select("angular", n)
      local _, lb = halves[2]:select("angular", n)
      lstar[n], lstar_a[n], lstar_b[n] = ls, la, lb
      if la == lb then stable = stable + 1 end
      local d, se = all:distance(ls, n)
      ctx:log("l_star", n, ls)
      ctx:log("d_min", n, d)
      ctx:log("d_min_stderr", n, se)
    end
    ctx:figure { name = "angular_heatmap", type = "heatmap", title = "d(l, n): angular distance, " .. p.model .. " (" .. p.n_samples .. " samples)",
                 xlabel = "block start l", ylabel = "block size n", matrix = raw, xticks = xt, yticks = yt }
    ctx:figure { name = "angular_heatmap_rescaled", type = "heatmap", title = "d(l, n) with each row rescaled to [0, 1] (paper Fig. 4 style)",
                 xlabel = "block start l", ylabel = "block size n", matrix = scaled, xticks = xt, yticks = yt }
    local ns = {}
    for n = 1, L do ns[n] = n end
    ctx:figure { name = "l_star", type = "lines", title = "optimal block start l*(n) (argmin of d), and on each half of the samples",
                 xlabel = "block size n", ylabel = "l*",
                 series = { { label = "all samples", x = ns, y = lstar }, { label = "half A", x = ns, y = lstar_a }, { label = "half B", x = ns, y = lstar_b } } }
    local series = {}
    for _, n in ipairs { 1, 2, 4, 8, math.floor(L / 2) } do
      if n <= L - 1 then
        local xs, ys, es = {}, {}, {}
        for l = 0, L - n do xs[#xs + 1] = l; ys[#ys + 1] = mx.mean[l + 1][n]; es[#es + 1] = mx.stderr[l + 1][n] end
        series[#series + 1] = { label = "n = " .. n, x = xs, y = ys, yerr = es }
      end
    end
    ctx:figure { name = "d_vs_l", type = "errorbars", title = "d(l, n) vs block start (Fig. 1c style), mean ± standard error",
                 xlabel = "block start l", ylabel = "angular distance", series = series }
    local bi, ls0 = all:influence(), {}
    for l = 0, L - 1 do ls0[l + 1] = l end
    ctx:figure { name = "block_influence", type = "lines", title = "ShortGPT block influence 1 - cos(x^(l), x^(l+1)), all tokens",
                 xlabel = "layer l", ylabel = "BI", series = { { label = "BI", x = ls0, y = bi } } }

    -- shape targets: deeper blocks more similar; blocks containing the final layer (near-)maximal
    local deeper, final_max, counted = 0, 0, 0
    for n = 1, L - 2 do
      local starts = L - n + 1        -- l = 0 .. L-n
      local half = math.floor(starts / 2)
      local s_lo, s_hi = 0, 0
      for l = 0, half - 1 do s_lo = s_lo + mx.mean[l + 1][n] end
      for l = starts - half, starts - 1 do s_hi = s_hi + mx.mean[l + 1][n] end
      if s_hi < s_lo then deeper = deeper + 1 end
      local rank = 0          -- how many starts have a larger d than the block ending at the last layer
      for l = 0, L - n - 1 do if mx.mean[l + 1][n] > mx.mean[L - n + 1][n] then rank = rank + 1 end end
      if rank <= math.max(1, math.floor(0.1 * starts)) then final_max = final_max + 1 end
      counted = counted + 1
    end
    ctx:summary("deeper_more_similar_fraction", deeper / counted, { better = "none" })
    ctx:summary("final_block_near_max_fraction", final_max / counted, { better = "none" })
    ctx:summary("l_star_halves_agree_fraction", stable / L, { better = "higher" })
    ctx:summary("l_star_n1", lstar[1], { better = "none" })
    ctx:summary("l_star_n_quarter", lstar[math.max(1, math.floor(L / 4))], { better = "none" })
    ctx:note("l*(n) for n = 1..%d: %s", L, table.concat(lstar, ","))
    -- where the optimal block sits as a fraction of depth: its start l*/L, and its start within the starts
    -- it could take, l*/(L-n) (0: the first layers, 1: the block ending at the last layer); the paper's Fig. 4
    -- puts it deep (the block just before the last layer for most n)
    local depth, deeper_half, frac = {}, 0, {}
    for n = 1, L - 1 do
      depth[n] = lstar[n] / (L - n)
      frac[n] = string.format("%d:%.2f", n, lstar[n] / L)
      if lstar[n] >= (L - n) / 2 then deeper_half = deeper_half + 1 end
      ctx:log("l_star_depth_fraction", n, lstar[n] / L)
      ctx:log("l_star_position_in_starts", n, depth[n])
    end
    ctx:summary("l_star_in_deeper_half_fraction", deeper_half / (L - 1), { better = "none" })
    ctx:note("l*(n) / L (n:fraction): %s", table.concat(frac, " "))
    ctx:note("l*(n) lies in the deeper half of its possible starts for %d of %d block sizes (paper, Fig. 4: deep, just before the final layer)", deeper_half, L - 1)
    local nn, pos = {}, {}
    for n = 1, L - 1 do nn[n], pos[n] = n / L, depth[n] end
    ctx:figure { name = "l_star_position", type = "lines", title = "where the optimal block starts: l*(n) / (L - n), 0 = first layer, 1 = just before the end",
                 xlabel = "fraction of layers dropped n / L", ylabel = "l* / (L - n)", series = { { label = p.model, x = nn, y = pos } } }
    ctx:note("deeper half more similar for %d of %d block sizes; final-layer block near-maximal for %d of %d", deeper, counted, final_max, counted)
    ctx:target { name = "deeper blocks are more similar (Sec. 4.3)", kind = "shape", holds = deeper / counted > 0.5,
                 note = string.format("for %d of %d block sizes n the deeper half of the block starts has the lower mean d(l, n)", deeper, counted) }
    ctx:target { name = "blocks containing the final layer are (near-)maximal (Sec. 4.3)", kind = "shape", holds = final_max / counted > 0.5,
                 note = string.format("for %d of %d block sizes the block ending at the last layer is within the top 10%% of d(l, n)", final_max, counted) }
    ctx:target { name = "10k C4 validation samples (Sec. 4.3)", kind = "not_reproducible",
                 reason = "no C4 validation slice is staged (40 documents are); calibration uses WikiText-2 / TinyStories windows, on models of 30 and 5 layers, not 7-70B" }
    m:close()
  end,
}
