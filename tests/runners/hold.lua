-- hold.lua: a tiny experiment for the runner tests (tests/sweep_test.sh, tests/slurm_test.sh). It logs
-- value * k for k = 1..10, its figure and a summary, fails when fail = true, and first waits while the file named by
-- hold exists (up to 120 s, checking for SIGINT/SIGTERM every 50 ms), so a test can keep a point running
-- while it kills a worker, a Slurm task or the sweep, then release it.
local experiment = require("repro.experiment")
return experiment.define {
  name = "runner_hold", paper = "none", version = 1,
  description = "runner test fixture: waits on a file, logs a line, can fail on purpose",
  resources = { threads = 1, memory = "256M", gpu = 0, time_min = 5 },
  params = {
    value = { type = "number", default = 1, doc = "slope of the logged line" },
    hold = { type = "string", default = "", doc = "wait while this file exists (empty: no wait)" },
    fail = { type = "boolean", default = false, doc = "raise an error after logging" },
  },
  presets = { smoke = { value = 2 }, demo = { value = 2 }, full = { value = 2 }, paper = { value = 2 } },
  run = function(ctx, p)
    local function held()
      local f = p.hold ~= "" and io.open(p.hold, "r")
      if f then f:close() end
      return f
    end
    local waited = 0
    while held() and waited < 2400 do
      if ctx:interrupted() then error("interrupted while holding") end
      os.execute("sleep 0.05")
      waited = waited + 1
    end
    local xs, ys = {}, {}
    for k = 1, 10 do ctx:log("line", k, p.value * k); xs[k] = k; ys[k] = p.value * k end
    ctx:figure { name = "line", type = "lines", series = { { label = "value * k", x = xs, y = ys } } }
    ctx:summary("slope", p.value, { better = "higher" })
    if p.fail then error("failing on purpose (fail=true)") end
  end,
}
