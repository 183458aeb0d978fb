-- example.lua: a small, complete experiment showing every part of the experiment API, checked
-- against closed forms: Monte Carlo estimates of pi converge to pi with an error shrinking as n^-1/2.
-- Metrics (the estimate per batch), summaries with standard errors, all figure kinds (lines with log
-- axes, error bars, bars, scatter, heatmap) and the four kinds of target (exact, statistical, shape, not reproducible).
local experiment = require("repro.experiment")

local function estimate(n)
  local inside = 0
  for _ = 1, n do
    local x, y = math.random(), math.random()
    if x * x + y * y <= 1 then inside = inside + 1 end
  end
  return 4 * inside / n
end

return experiment.define {
  name = "example_pi",
  paper = "example",
  description = "Monte Carlo estimate of pi: convergence rate and calibration of standard errors",
  version = 1,
  resources = { threads = 1, memory = "256M" },   -- one core; the demo preset peaks at 23 MB RSS
  params = {
    n = { type = "integer", default = 20000, min = 1, doc = "samples per estimate at the largest size" },
    repeats = { type = "integer", default = 20, min = 2, doc = "independent estimates per size" },
    sizes = { type = "integer", default = 6, min = 2, max = 12, doc = "number of sample sizes (halving from n)" },
  },
  seconds = { demo = 2 },   -- idle 2-core estimate from measured CPU time (see README)
  presets = {
    smoke = { n = 2000, repeats = 8, sizes = 4 },
    demo = { n = 200000, repeats = 30, sizes = 8 },
    full = { n = 2000000, repeats = 50, sizes = 10 },
    paper = { n = 2000000, repeats = 100, sizes = 12 },
  },
  run = function(ctx, p)
    local xs, rmse, means, ses = {}, {}, {}, {}
    local heat = {}
    for s = 1, p.sizes do
      local n = math.max(1, math.floor(p.n / 2 ^ (p.sizes - s)))
      local est, sq = {}, 0
      for r = 1, p.repeats do
        est[r] = estimate(n)
        ctx:log("estimate_n" .. n, r, est[r])
        sq = sq + (est[r] - math.pi) ^ 2
      end
      local mean, se = ctx:mean_se("pi_n" .. n, est, { better = "none" })
      xs[s], means[s], ses[s] = n, mean, se
      rmse[s] = math.sqrt(sq / p.repeats)
      ctx:log("rmse", n, rmse[s])
      heat[s] = {}
      for r = 1, math.min(p.repeats, 10) do heat[s][r] = est[r] - math.pi end
      if ctx:interrupted() then break end
    end
    -- Fit log(rmse) = a + b log(n): theory says b = -1/2.
    local k, sx, sy, sxx, sxy = #xs, 0, 0, 0, 0
    for i = 1, k do
      local lx, ly = math.log(xs[i]), math.log(rmse[i])
      sx, sy, sxx, sxy = sx + lx, sy + ly, sxx + lx * lx, sxy + lx * ly
    end
    local slope = (k * sxy - sx * sy) / (k * sxx - sx * sx)
    ctx:summary("convergence_slope", slope, { better = "none" })
    local theory = {}
    for i = 1, k do theory[i] = math.sqrt(math.pi * (4 - math.pi) / xs[i]) end
    ctx:figure { name = "rmse", type = "lines", title = "RMSE of the estimate vs samples", xlabel = "samples",
                 ylabel = "RMSE", logx = true, logy = true,
                 series = { { label = "measured", x = xs, y = rmse }, { label = "closed form sqrt(pi(4-pi)/n)", x = xs, y = theory } } }
    ctx:figure { name = "estimates", type = "errorbars", title = "Mean estimate ± standard error", xlabel = "samples",
                 ylabel = "estimate", logx = true, series = { { label = "mean ± se", x = xs, y = means, yerr = ses } } }
    local labels, last = {}, {}
    for i = 1, k do labels[i] = tostring(xs[i]); last[i] = math.abs(means[i] - math.pi) end
    ctx:figure { name = "abs_error", type = "bars", title = "|mean - pi| per size", ylabel = "abs error",
                 categories = labels, series = { { label = "abs error", y = last } } }
    ctx:figure { name = "scatter", type = "scatter", title = "Standard error vs RMSE", xlabel = "RMSE", ylabel = "se * sqrt(repeats)",
                 series = { { label = "sizes", x = rmse, y = (function() local t = {} for i = 1, k do t[i] = ses[i] * math.sqrt(p.repeats) end return t end)() } } }
    ctx:figure { name = "deviations", type = "heatmap", title = "estimate - pi (size x repeat)", matrix = heat }

    local big = means[k]
    ctx:target { name = "pi at the largest size", kind = "exact", paper = math.pi, value = big,
                 tolerance = 4 * math.sqrt(math.pi * (4 - math.pi) / (xs[k] * p.repeats)),
                 note = "tolerance: 4 standard errors of the mean from the closed-form variance" }
    ctx:target { name = "pi within 3 standard errors", kind = "statistical", paper = math.pi, value = big,
                 stderr = ses[k], n = p.repeats, z = 3,
                 note = "the repeats' sample standard error, not the closed form: a correct estimator fails about 0.3% of seeds (about 2% at 8 repeats)" }
    ctx:target { name = "error shrinks as n^-1/2", kind = "shape", holds = math.abs(slope + 0.5) < 0.15,
                 note = string.format("fitted slope %.3f", slope) }
    ctx:target { name = "pi to 10 digits", kind = "not_reproducible", paper = 3.1415926536,
                 reason = "Monte Carlo error at these sizes is far above 1e-10; shown for illustration" }
  end,
}
