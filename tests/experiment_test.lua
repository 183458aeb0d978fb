-- experiment_test.lua: the experiment API's contracts, run by `repro exec` (no run recorded):
-- declaration checks, param resolution order and errors, target verdicts, the seeded generator.
local experiment = require("repro.experiment")
local json = require("repro.json")

local T = require("tests.luacheck")
local check, errors_with = T.check, T.errors_with

local spec = experiment.define {
  name = "t", paper = "none",
  params = { n = { type = "integer", default = 3, doc = "n" }, lr = { type = "number", default = 0.5, doc = "lr" },
             mode = { type = "string", default = "a", choices = { "a", "b" }, doc = "mode" },
             flag = { type = "boolean", default = false, doc = "flag" } },
  presets = { smoke = { n = 1 }, demo = { n = 10, lr = 0.25 } },
  run = function() end,
}
-- Resolution order: defaults, preset, overrides.
local p = experiment.resolve(spec, "", {})
check(p.n == 3 and p.lr == 0.5 and p.mode == "a" and p.flag == false, "defaults")
p = experiment.resolve(spec, "demo", { n = "7", flag = "true" })
check(p.n == 7 and p.lr == 0.25 and p.flag == true, "preset then overrides")
errors_with(function() experiment.resolve(spec, "", { nn = "1" }) end, "unknown param 'nn'", "unknown param named")
errors_with(function() experiment.resolve(spec, "", { nn = "1" }) end, "lr (number, default 0.5)", "valid params listed")
errors_with(function() experiment.resolve(spec, "", { n = "1.5" }) end, "must be an integer", "fraction rejected")
errors_with(function() experiment.resolve(spec, "", { lr = "abc" }) end, "expects a number", "non-number rejected")
errors_with(function() experiment.resolve(spec, "", { mode = "c" }) end, "must be one of a, b", "choices enforced")
errors_with(function() experiment.resolve(spec, "nope", {}) end, "no preset 'nope' (presets: demo, smoke)", "unknown preset")
errors_with(function() experiment.define { name = "x", run = function() end, params = { a = { type = "integer" } } } end,
  "needs a default", "param without default")
errors_with(function() experiment.define { name = "x", run = function() end, bogus = 1 } end, "unknown field 'bogus'", "unknown decl field")
errors_with(function() experiment.define { name = "x", run = function() end, params = { a = { type = "integer", default = 1 } },
  presets = { smoke = { b = 2 } } } end, "sets unknown param 'b'", "preset with unknown param")

-- Targets: verdicts follow the declared tolerance.
local got = {}
local ctx_spec = experiment.define { name = "t2", run = function(ctx)
  got[1] = ctx:target { name = "a", kind = "exact", paper = 1.0, value = 1.04, tolerance = 0.05 }
  got[2] = ctx:target { name = "b", kind = "exact", paper = 1.0, value = 1.06, tolerance = 0.05 }
  got[3] = ctx:target { name = "c", kind = "exact", paper = 100, value = 104, tolerance = 0.05, relative = true }
  got[4] = ctx:target { name = "d", kind = "shape", holds = false }
  got[5] = ctx:target { name = "e", kind = "not_reproducible", paper = 72, reason = "needs GPT-3.5" }
  local m, se = ctx:mean_se("m", { 1, 2, 3, 4 })
  got[6], got[7] = m, se
end }
local n, failed = experiment._execute(ctx_spec, {}, { preset = "", seed = 1 })
check(got[1] == "pass" and got[2] == "fail" and got[3] == "pass" and got[4] == "fail" and got[5] == "not_reproducible", "target verdicts")
check(n == 5 and failed == 2, "target counts")
check(got[6] == 2.5 and math.abs(got[7] - math.sqrt(5 / 3 / 4)) < 1e-12, "mean and standard error")
errors_with(function() experiment._execute(experiment.define { name = "t3", run = function(ctx)
  ctx:target { name = "x", kind = "not_reproducible" } end }, {}, {}) end, "need a reason", "not_reproducible needs a reason")

-- Statistical targets: |value - paper| <= z * sqrt(stderr^2 + paper_stderr^2); with a resolution, the n
-- it needs is n * (z * stderr / resolution)^2 (standard errors shrink as n^-1/2).
local st = {}
local st_spec = experiment.define { name = "t4", run = function(ctx)
  -- 0.50 vs 0.52, stderr 0.0125: 2 * 0.0125 = 0.025 >= 0.02 passes; at z = 1 (0.0125) it fails.
  st[1] = ctx:target { name = "s1", kind = "statistical", paper = 0.52, value = 0.50, stderr = 0.0125, n = 1600 }
  st[2] = ctx:target { name = "s2", kind = "statistical", paper = 0.52, value = 0.50, stderr = 0.0125, n = 1600, z = 1 }
  -- The paper's own error widens the band: sqrt(0.0125^2 + 0.03^2) = 0.0325 >= 0.02 at z = 1.
  st[3] = ctx:target { name = "s3", kind = "statistical", paper = 0.52, value = 0.50, stderr = 0.0125, n = 1600, z = 1, paper_stderr = 0.03 }
  -- 100 items, stderr 0.05, z = 2: band 0.1; resolving 0.025 needs 100 * (0.1 / 0.025)^2 = 1600 items.
  st[4] = ctx:target { name = "s4", kind = "statistical", paper = 0.52, value = 0.50, stderr = 0.05, n = 100, resolution = 0.025 }
  -- At 1600 items (stderr 0.0125) the same resolution is met and the verdict is a real pass.
  st[5] = ctx:target { name = "s5", kind = "statistical", paper = 0.52, value = 0.50, stderr = 0.0125, n = 1600, resolution = 0.025 }
  -- and a real gap fails there: 0.60 vs 0.52.
  st[6] = ctx:target { name = "s6", kind = "statistical", paper = 0.52, value = 0.60, stderr = 0.0125, n = 1600, resolution = 0.025 }
  -- Every item alike (8 of 8 right): a zero standard error gives no band to judge by.
  st[7] = ctx:target { name = "s7", kind = "statistical", paper = 0.52, value = 1.0, stderr = 0, n = 8 }
end }
local sn, sfailed = experiment._execute(st_spec, {}, { preset = "", seed = 1 })
check(st[1] == "pass" and st[2] == "fail" and st[3] == "pass", "statistical verdicts: " .. table.concat({ st[1], st[2], st[3] }, " "))
check(st[4] == "inconclusive" and st[5] == "pass" and st[6] == "fail", "statistical n needed: " .. table.concat({ st[4], st[5], st[6] }, " "))
check(st[7] == "inconclusive", "zero stderr is inconclusive, got " .. tostring(st[7]))
check(sn == 7 and sfailed == 2, "statistical target counts")
local function one_target(t) return function() experiment._execute(experiment.define { name = "t5", run = function(ctx) ctx:target(t) end }, {}, {}) end end
errors_with(one_target { name = "x", kind = "statistical", paper = 1, value = 1, n = 10 }, "need numbers paper, value, stderr and n", "statistical needs a stderr")
errors_with(one_target { name = "x", kind = "statistical", paper = 1, value = 1, stderr = 0.1, n = 10, tolerance = 1 }, "not tolerance", "statistical rejects a tolerance")
errors_with(one_target { name = "x", kind = "statistical", paper = 1, value = 1, stderr = 0.1, n = 2.5 }, "n must be a positive integer", "statistical n is an integer")
errors_with(one_target { name = "x", kind = "statistical", paper = 1, value = 1, stderr = 0.1, n = 10, z = -1 }, "z must be a positive number", "statistical z > 0")

-- The seeded generator: same seed, same sequence; integer ranges honoured.
math.randomseed(42)
local a = { math.random(), math.random(1, 6), math.random(10) }
math.randomseed(42)
local b = { math.random(), math.random(1, 6), math.random(10) }
check(a[1] == b[1] and a[2] == b[2] and a[3] == b[3], "seeded sequence repeats")
check(a[2] >= 1 and a[2] <= 6 and a[2] == math.floor(a[2]), "integer range")
errors_with(function() math.random(1.5) end, "integer expected", "fractional bound rejected")

-- JSON round trip through the C DOM.
local t = json.decode(json.encode { x = { 1, 2, 3 }, s = "a\"b\n", b = true })
check(t.x[3] == 3 and t.s == "a\"b\n" and t.b == true, "json round trip")
errors_with(function() json.decode("{\"a\": ") end, "offset", "json error names the offset")

-- Object keys are encoded sorted: equal params always give equal text.
local big = {}
for i = 1, 40 do big["k" .. string.char(65 + (i * 7) % 26) .. i] = i end
local enc = json.encode(big)
local last, sorted = "", true
for k in enc:gmatch('"(k[^"]+)"') do if k < last then sorted = false end; last = k end
check(sorted and enc == json.encode(json.decode(enc)), "object keys sorted and stable")
check(json.encode({ [2] = "b", x = 1 }) == '{"2":"b","x":1}', "mixed keys sorted as text")

-- Per-preset resources: a preset's values over the experiment's, the rest inherited; bad ones are errors.
local rs = experiment.define { name = "r", run = function() end,
  resources = { threads = 2, memory = "2G", time_min = 30, presets = { full = { memory = "11G" }, paper = { memory = "12G", time_min = 600 } } } }
local function res(preset) return experiment._describe(rs, preset).resources end
check(res(nil).memory == "2G" and res("demo").memory == "2G" and res("demo").threads == 2, "no preset, or one without its own: the experiment's")
check(res("full").memory == "11G" and res("full").threads == 2 and res("full").time_min == 30, "full: its memory, the rest inherited")
check(res("paper").memory == "12G" and res("paper").time_min == 600, "paper: its memory and time")
errors_with(function() experiment.define { name = "x", run = function() end, resources = { presets = { huge = { memory = "1G" } } } } end,
            "unknown preset 'huge'", "resources for an unknown preset")
errors_with(function() experiment.define { name = "x", run = function() end, resources = { presets = { full = { memory = "lots" } } } } end,
            "resources.presets.full.memory", "a preset's bad memory named")
errors_with(function() experiment.define { name = "x", run = function() end, resources = { presets = { full = { presets = {} } } } } end,
            "unknown field 'presets'", "no nesting")

T.done("experiment_test")
