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

T.done("experiment_test")
